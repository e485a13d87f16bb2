"""The portal: access by label, the API, path safety, methods, headers, no real values."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import shutil
from html import unescape
from pathlib import Path
from urllib.parse import unquote, urlencode, urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient
from governance_fixtures import CANARY, CANARY_NUMBER, make_candidate, plant_real_table

from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.db import audit_events
from pulsesynth.governance.grants import add_grant
from pulsesynth.governance.lifecycle import approve
from pulsesynth.governance.publishable import unlisted_api_fields, unlisted_fields
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.governance.tokens import create_token, revoke_tokens
from pulsesynth.paths import Paths
from pulsesynth.portal import create_app
from pulsesynth.portal.app import SESSION_COOKIE

SECRET_ID = "patient_tests"
SECRET_TITLE = "Patient tests"


class Site:
    """A published root with an open dataset (two versions) and a confidential one."""

    def __init__(self, root: Path) -> None:
        self.paths = Paths(root)
        self.snapshots: list[str] = []
        for dataset, runs in (("taxi_trips", [("r1", "open"), ("r2", "open")]),
                              (SECRET_ID, [("r1", "confidential")])):
            snapshot = plant_real_table(self.paths, dataset)
            self.snapshots.append(snapshot)
            for i, (run, label) in enumerate(runs):
                cand = make_candidate(self.paths, dataset, run, label=label, seed=i,
                                      snapshot_id=snapshot)
                rel = register_candidate(self.paths, dataset, cand, f"m-{run}")
                approve(self.paths, rel.candidate_id, "alice")
                publish_approved(self.paths)
        self.token, _ = create_token(self.paths, "health-authority")
        add_grant(self.paths, "health-authority", SECRET_ID, steward="alice")
        self.revoked, _ = create_token(self.paths, "old-entity")
        revoke_tokens(self.paths, "old-entity")
        self.app = create_app(self.paths)
        self.client = TestClient(self.app)
        index = json.loads((self.paths.published / "index.json").read_text())["dataset"]
        self.secret = next(e for e in index if e["id"] == SECRET_ID)
        self.open_v2 = next(e for e in index if e["version"] == "v2")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return Site(tmp_path_factory.mktemp("portal"))


def _secret_urls(site: Site) -> list[str]:
    return [f"/datasets/{SECRET_ID}", f"/datasets/{SECRET_ID}/v1",
            f"/api/datasets/{SECRET_ID}"] + [f["downloadURL"] for f in site.secret["files"]]


def _bad_credentials(site: Site) -> list[dict]:
    """Anonymous, a wrong token and a revoked token, as a bearer header and in the session
    cookie (a token is no session id; a ``?token=`` is never used: see test_grants)."""
    out: list[dict] = [{}]
    for token in ("not-a-real-token", site.revoked):
        out += [{"headers": {"Authorization": f"Bearer {token}"}},
                {"cookies": {SESSION_COOKIE: token}}]
    return out


def test_every_published_field_is_declared_public_or_dp(site: Site) -> None:
    """index.json, every card and every API answer carry only fields declared publishable
    (public facts or DP figures); the private snapshot's hash appears nowhere."""
    auth = {"Authorization": f"Bearer {site.token}"}
    published = site.paths.published
    assert unlisted_fields(json.loads((published / "index.json").read_text())) == []
    cards = sorted(published.glob("*/v*/datacard.json"))
    assert len(cards) == 3
    for card in cards:
        assert unlisted_fields(json.loads(card.read_text())) == [], card
    answers = [site.client.get("/api/datasets", headers=auth).json()]
    answers += [site.client.get(f"/api/datasets/{d}", headers=auth).json()
                for d in ("taxi_trips", SECRET_ID)]
    for answer in answers:
        assert unlisted_api_fields(answer) == []
    text = json.dumps(answers) + "".join(p.read_text() for p in cards)
    for snapshot in site.snapshots:
        assert snapshot not in text


def test_index_lists_open_releases_with_label_epsilon_version(site: Site) -> None:
    r = site.client.get("/")
    assert r.status_code == 200
    assert "taxi_trips" in r.text and "Open — synthetic" in r.text and "v2" in r.text
    assert 'data-label="open"' in r.text
    api = site.client.get("/api/datasets").json()
    assert [(d["id"], d["version"], d["epsilon"]) for d in api] == [("taxi_trips", "v2", 1.0)]
    both = site.client.get("/api/datasets", params={"all_versions": "true"}).json()
    assert [(d["version"], d["status"]) for d in both] == [("v1", "superseded"),
                                                           ("v2", "published")]
    assert site.client.get("/", params={"q": "zzz"}).text.count("dataset-row") == 0
    assert site.client.get("/", params={"q": "TAXI"}).text.count('class="dataset-row"') == 1
    assert site.client.get("/datasets/taxi_trips/v1").status_code == 200   # superseded stays


def test_confidential_release_does_not_exist_without_a_valid_token(site: Site) -> None:
    unknown = site.client.get("/datasets/no_such_dataset")
    for creds in _bad_credentials(site):
        client = TestClient(site.app)
        for url in _secret_urls(site):
            r = client.get(url, **creds)
            assert r.status_code == 404, (url, creds)
            assert r.content == unknown.content            # indistinguishable from unknown
        for url in ("/", "/api/datasets", "/api/datasets?all_versions=true",
                    "/?label=confidential"):
            text = client.get(url, **creds).text
            assert SECRET_ID not in text and SECRET_TITLE not in text
            assert "Confidential" not in text
        assert "set-cookie" not in client.get("/", **creds).headers


def test_valid_token_sees_and_downloads_confidential_and_download_is_logged(site: Site) -> None:
    auth = {"Authorization": f"Bearer {site.token}"}
    listed = site.client.get("/api/datasets", headers=auth).json()
    assert {d["id"] for d in listed} == {"taxi_trips", SECRET_ID}
    filtered = site.client.get("/api/datasets", params={"label": "confidential"},
                               headers=auth).json()
    assert [d["id"] for d in filtered] == [SECRET_ID]
    detail = site.client.get(f"/api/datasets/{SECRET_ID}", headers=auth).json()
    assert detail["label"] == "confidential"
    assert detail["datacard"]["label_text"] == "Shared: Confidential — synthetic"
    page = site.client.get(f"/datasets/{SECRET_ID}", headers=auth)
    assert page.status_code == 200 and "Shared: Confidential — synthetic" in page.text
    # the measured fit-for-purpose verdict and the DP figures are on the page
    assert 'data-verdict="useful"' in page.text and 'data-stat="tstr_accuracy"' in page.text
    before = len(audit_events(site.paths, "release.download"))
    csv = next(f for f in site.secret["files"] if f["name"] == "synthetic.csv")
    assert site.client.head(csv["downloadURL"], headers=auth).status_code == 200
    r = site.client.get(csv["downloadURL"], headers=auth)
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == csv["sha256"]
    assert "attachment" in r.headers["content-disposition"]
    events = audit_events(site.paths, "release.download")
    assert len(events) == before + 1
    assert events[-1]["actor"] == "health-authority"
    assert events[-1]["subject"] == f"{SECRET_ID}/v1/synthetic.csv"
    # A browser signs in once with the form: a 303 to a token-less URL and a session cookie.
    browser = TestClient(site.app)
    first = browser.post("/signin", data={"token": site.token, "next": "/"})
    [exchange] = first.history
    assert exchange.status_code == 303 and exchange.headers["location"] == "/"
    assert "httponly" in exchange.headers["set-cookie"].lower()
    assert site.token not in exchange.headers["set-cookie"]
    assert str(first.url) == "http://testserver/" and SECRET_ID in first.text
    assert browser.get(f"/datasets/{SECRET_ID}").status_code == 200
    # Open downloads are not logged.
    open_csv = next(f for f in site.open_v2["files"] if f["name"] == "synthetic.csv")
    assert site.client.get(open_csv["downloadURL"]).status_code == 200
    assert len(audit_events(site.paths, "release.download")) == before + 1


def _raw_get(app, raw_path: bytes, cookie: str | None = None) -> int:
    """Send a path exactly as given (httpx would normalise ``..`` before sending)."""
    return _raw_response(app, raw_path, cookie)[0]


def _raw_response(app, raw_path: bytes, cookie: str | None = None) -> tuple[int, dict]:
    """Status and headers of a GET of ``raw_path`` sent as is (with a session cookie)."""
    path, _, query = raw_path.partition(b"?")
    headers = [(b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", f"{SESSION_COOKIE}={cookie}".encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": unquote(path.decode("latin-1")),
             "raw_path": path, "query_string": query, "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1),
             "server": ("testserver", 80)}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], {k.decode(): v.decode("latin-1") for k, v in start["headers"]}


TRAVERSALS = [
    b"/datasets/../warehouse/governance.db",
    b"/datasets/taxi_trips/v2/files/../../../warehouse/governance.db",
    b"/datasets/taxi_trips/v2/files/plots/../../../index.json",
    b"/datasets/taxi_trips/v2/files/%2e%2e/%2e%2e/%2e%2e/warehouse/governance.db",
    b"/datasets/taxi_trips/v2/files/..%2f..%2f..%2fwarehouse%2fgovernance.db",
    b"/datasets/taxi_trips/v2/files/%2E%2E%2F%2E%2E%2Fpatient_tests%2Fv1%2Fsynthetic.csv",
    b"/datasets/taxi_trips/v2/files/%252e%252e%252f%252e%252e%252fwarehouse%252fgovernance.db",
    b"/datasets/taxi_trips/v2/files/..%5c..%5c..%5cwarehouse%5cgovernance.db",
    b"/datasets/taxi_trips/v2/files/synthetic.csv%00.png",
    b"/datasets/%2e%2e/v1/files/governance.db",
    b"/datasets/taxi_trips/v2/files//etc/passwd",
    b"/datasets/taxi_trips/v2/files/audit_members.json",
    b"/datasets/taxi_trips/v2/files/privacy.json",
    b"/static/../app.py",
    b"/static/%2e%2e%2fapp.py",
    b"/static/..%2ftemplates%2fbase.html",
    b"/index.json",
    b"/published/index.json",
    b"/warehouse/governance.db",
    b"/datasets/no_such/v1",
    b"/datasets/taxi_trips/v9",
    b"/datasets/taxi_trips/v2/files/nope.csv",
    b"/api/datasets/no_such",
    b"/api/datasets/..%2f..%2fwarehouse",
]


@pytest.mark.parametrize("raw", TRAVERSALS, ids=lambda b: b.decode()[:60])
def test_traversal_and_unknown_ids_are_404(site: Site, raw: bytes) -> None:
    from pulsesynth.governance.sessions import start_session

    session = start_session(site.paths, site.token)
    assert session is not None
    assert _raw_get(site.app, raw) == 404
    assert _raw_get(site.app, raw, cookie=session[0]) == 404
    # A token in the query is never used: a 303 to the sign-in page, the path it asked for
    # as ``next`` — unless the path is refused outright — and no cookie either way.
    status, headers = _raw_response(site.app, raw + f"?token={site.token}".encode())
    assert "set-cookie" not in headers
    if status == 303:
        assert headers["location"] == "/signin?" + urlencode(
            {"next": "/" + raw.decode().lstrip("/"), "reason": "link"})
    else:
        assert status == 404


def test_symlinks_inside_published_are_never_followed(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    rel = register_candidate(paths, "taxi_trips", make_candidate(paths), "m")
    approve(paths, rel.candidate_id, "alice")
    publish_approved(paths)
    client = TestClient(create_app(paths))
    v1 = paths.published / "taxi_trips" / "v1"
    url = "/datasets/taxi_trips/v1/files/synthetic.csv"
    assert client.get(url).status_code == 200
    # Same bytes, but reached through a symlink pointing outside published/: refused.
    outside = tmp_path / "outside.csv"
    shutil.copyfile(v1 / "synthetic.csv", outside)
    (v1 / "synthetic.csv").unlink()
    os.symlink(outside, v1 / "synthetic.csv")
    assert client.get(url).status_code == 404
    # A symlinked version directory is refused too.
    moved = tmp_path / "moved-v1"
    v1.rename(moved)
    os.symlink(moved, v1)
    assert client.get("/datasets/taxi_trips/v1/files/datacard.md").status_code == 404


def test_only_get_and_head_are_allowed(site: Site) -> None:
    urls = ["/", "/api/datasets", "/datasets/taxi_trips",
            "/datasets/taxi_trips/v2/files/synthetic.csv", "/nope"]
    for url in urls:
        for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"):
            r = site.client.request(method, url)
            assert r.status_code == 405, (method, url)
            assert r.headers["allow"] == "GET, HEAD"
    head = site.client.head("/datasets/taxi_trips/v2/files/synthetic.csv")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0
    assert site.client.head(f"/datasets/{SECRET_ID}").status_code == 404


def test_security_headers_on_every_response(site: Site) -> None:
    for url in ("/", "/api/datasets", "/datasets/taxi_trips", "/nope", "/openapi.json",
                "/datasets/taxi_trips/v2/files/synthetic.csv", "/static/portal.css"):
        h = site.client.get(url).headers
        assert "default-src 'none'" in h["content-security-policy"], url
        assert h["x-content-type-options"] == "nosniff"
        assert h["x-frame-options"] == "DENY" and h["referrer-policy"] == "same-origin"
    assert "content-security-policy" in site.client.post("/").headers


def test_openapi_schema_documents_the_api(site: Site) -> None:
    spec = site.client.get("/openapi.json").json()
    assert {"/api/datasets", "/api/datasets/{dataset}"} <= set(spec["paths"])
    assert set(spec["paths"]["/api/datasets"]) == {"get"}
    # Swagger UI from the installed package, no CDN (tests/test_portal_errors.py).
    assert site.client.get("/docs").status_code == 200


def test_no_served_page_or_file_contains_the_canary(site: Site) -> None:
    """Crawl everything a valid token can reach; no byte of the real tables' canary."""
    auth = {"Authorization": f"Bearer {site.token}"}
    seen: dict[str, bytes] = {}
    queue = ["/", "/?label=open", "/?label=confidential", "/api/datasets?all_versions=true",
             "/openapi.json", "/api/datasets/taxi_trips", f"/api/datasets/{SECRET_ID}"]
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        r = site.client.get(url, headers=auth)
        assert r.status_code == 200, url
        seen[url] = r.content
        links: list[str] = []
        if "text/html" in r.headers.get("content-type", ""):
            links = re.findall(r'(?:href|src)="([^"]+)"', r.text)
        elif "json" in r.headers.get("content-type", "") and url.startswith("/api/"):
            links = re.findall(r'"downloadURL":\s*"([^"]+)"', r.text)
        for link in links:
            if link.startswith("mailto:"):                 # the contact address
                continue
            link = urljoin(url, link.replace("&amp;", "&"))
            if urlsplit(link).netloc in ("", "testserver"):
                queue.append(urlsplit(link).path + (
                    "?" + urlsplit(link).query if urlsplit(link).query else ""))
    assert any(u.endswith(".png") for u in seen) and any(u.endswith(".parquet") for u in seen)
    assert sum(u.endswith("synthetic.csv") for u in seen) >= 3
    needles = [CANARY.encode(), str(CANARY_NUMBER).encode(), b"8675309",
               CANARY.encode("utf-16-le")]
    for url, body in seen.items():
        for needle in needles:
            assert needle not in body, url
    # The canary is in the real table and the candidate's stray file, never in published/.
    real = (site.paths.tables / "taxi_trips.parquet").read_bytes()
    assert CANARY.encode() in real
    for p in site.paths.published.rglob("*"):
        if p.is_file():
            assert CANARY.encode() not in p.read_bytes(), p


# --- pages a non-expert can read ---------------------------------------------------------


def _text(html: str) -> str:
    """The visible words of a page (tags dropped, whitespace collapsed)."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_release_page_opens_with_label_audit_and_fit_verdicts_in_plain_words(
        site: Site) -> None:
    html = site.client.get("/datasets/taxi_trips").text
    summary = html[html.index('id="summary"'):html.index("</section>",
                                                        html.index('id="summary"'))]
    assert html.index('id="summary"') < html.index('id="downloads"')   # the page opens with it
    words = _text(summary)
    assert "Label Open — synthetic" in words
    assert ("Privacy audit Passed every privacy check for publishing openly. The strongest "
            "membership attack — trying to tell whether a person's record was used in "
            "training — did no better than guessing") in words
    assert ("Fit for purpose Fit for predicting “tip”: a model trained on this table does "
            "better than guessing (right 71 % of the time on real rows it never saw, against "
            "62 % by always guessing the most common answer).") in words
    assert "ε = 1.00 and δ = 1e-6" in words
    # Exact values stay in the JSON.
    detail = site.client.get("/api/datasets/taxi_trips").json()
    assert detail["epsilon"] == 1.0 and detail["datacard"]["privacy"]["delta"] == 1e-6
    # A glossary explains every technical term the page uses.
    glossary = _text(html[html.index('id="glossary"'):])
    for term in ("Synthetic data", "Differential privacy (DP)", "ε (epsilon)", "δ (delta)",
                 "Membership attack", "TSTR (train on synthetic, test on real)",
                 "Fit for purpose"):
        assert term in glossary
    # No raw jargon ids, raw floats or missing values.
    text = _text(html)
    for raw in ("model_mia", "distance_mia", "quasi_identifier", "seed 000", "None", "null",
                "TPR", "0.7100", "0.0100"):
        assert raw not in text, raw
    assert "`" not in text                                   # no Markdown code marks


def test_number_formats_round_for_reading() -> None:
    from pulsesynth.portal.app import (
        fmt_delta,
        fmt_epsilon,
        fmt_number,
        fmt_percent,
        office_name,
        update_frequency,
    )

    assert fmt_epsilon(0.9973125478103765) == "1.00" and fmt_epsilon(None) == "—"
    assert fmt_delta(8.333333333333333e-05) == "8e-5" and fmt_delta(1e-6) == "1e-6"
    assert fmt_percent(-0.050000000000000044) == "-5 %" and fmt_percent(0.714) == "71 %"
    assert fmt_number(123456) == "123,456" and fmt_number(0.012345) == "0.0123"
    assert office_name("transport-data-office") == "Transport data office"
    assert update_frequency({"schema": {"refresh_days": 30}}) == \
        "at most every 30 days, when the source changes"
    assert update_frequency({"schema": {"refresh_days": 7}}) == \
        "at most every 1 week(s), when the source changes"
    assert update_frequency({"schema": {}}) == "not stated"


def test_table_page_has_the_open_data_basics(site: Site) -> None:
    html = site.client.get("/datasets/taxi_trips").text
    facts = _text(html[html.index('id="facts"'):html.index('id="downloads"')])
    assert ("Publisher Transport data office Contact open-data@city.example (Transport data "
            "office, the data steward for this dataset; approving steward: alice) Licence "
            "Creative Commons Attribution 4.0 (CC BY 4.0) Update frequency not stated Rows 120 "
            "synthetic rows Columns 4") in facts
    assert 'rel="license" href="https://creativecommons.org/licenses/by/4.0/"' in html
    # The column dictionary, from the declared schema.
    assert re.search(r'data-column="tip">.*?</tr>', html, re.S)
    tip = _text(re.search(r'data-column="tip">(.*?)</tr>', html, re.S).group(1))
    assert tip == "tip categorical the column a model is asked to predict no, yes"
    key = _text(re.search(r'data-column="rownames">(.*?)</tr>', html, re.S).group(1))
    assert key == "rownames integer row number or key; not in the synthetic table 1 to 10,000,000"
    hour = _text(re.search(r'data-column="hour">(.*?)</tr>', html, re.S).group(1))
    assert hour == ("hour integer could help single a person out when combined with other "
                    "columns 0 to 23")
    # The preview: the first 10 rows of the published synthetic CSV, as published.
    csv_file = next(f for f in site.open_v2["files"] if f["name"] == "synthetic.csv")
    lines = site.client.get(csv_file["downloadURL"]).text.splitlines()
    preview = html[html.index('id="preview"'):html.index("</section>", html.index('id="preview"'))]
    cells = re.findall(r"<tr>(.*?)</tr>", preview[preview.index("<tbody>"):], re.S)
    assert len(cells) == 10
    assert [",".join(re.findall(r"<td>(.*?)</td>", c)) for c in cells] == lines[1:11]
    assert _text(re.search(r"<thead>(.*?)</thead>", preview, re.S).group(1)) == \
        " ".join(lines[0].split(","))
    # The changelog: every version with its date, ε and code version, newest first.
    rows = re.findall(r'data-version="(v\d)">(.*?)</tr>', html, re.S)
    assert [(v, _text(r).split()[2:]) for v, r in rows] == [
        ("v2", ["published", "1.00", "0.1.0-test"]), ("v1", ["superseded", "1.00", "0.1.0-test"])]
    # Cite this.
    cite = _text(re.search(r'class="citation">(.*?)</code>', html, re.S).group(1))
    assert cite.startswith("Transport data office (20") and cite.endswith(
        "Taxi trips (v2) [synthetic table, differentially private, ε = 1.00]. Pulse Synth "
        "synthetic open portal, /datasets/taxi_trips/v2.")


def test_publisher_contact_comes_from_configuration_on_every_page_dcat_and_ckan(
        site: Site) -> None:
    """``PULSESYNTH_CONTACT_EMAIL`` (here with ``{steward}``: one address per office) is on
    every page, the card's facts, DCAT's contactPoint and CKAN's maintainer_email."""
    from pulsesynth.settings import ContactSettings

    contact = ContactSettings.from_env({"PULSESYNTH_CONTACT_EMAIL": "{steward}@data.city.example"})
    client = TestClient(create_app(site.paths, contact=contact))
    office = "transport-data-office@data.city.example"
    portal = "city-data-office@data.city.example"      # pages of no one office
    for url, shown in (("/", portal), ("/signin", portal), ("/datasets/taxi_trips", office)):
        assert (f'Contact: <a class="contact-email" href="mailto:{shown}">{shown}</a>'
                in client.get(url).text), url
    # Error pages read the installation's setting (unset here: the placeholder default).
    error = client.get("/nope", headers={"accept": "text/html"}).text
    assert 'href="mailto:open-data@city.example">open-data@city.example</a>' in error
    facts = _text(client.get("/datasets/taxi_trips").text)
    assert f"Contact {office} (Transport data office, the data steward" in facts
    dcat = client.get("/api/datasets/taxi_trips/dcat").json()
    assert dcat["contactPoint"] == {"@type": "vcard:Organization",
                                    "fn": "Transport data office",
                                    "hasEmail": f"mailto:{office}",
                                    "hasURL": "http://testserver/datasets/taxi_trips"}
    pkg = client.get("/api/3/action/package_show", params={"id": "taxi_trips"}).json()
    assert (pkg["result"]["maintainer_email"], pkg["result"]["author_email"]) == (office,
                                                                                  office)


def test_index_searches_with_facets_sorts_and_pages(site: Site,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    auth = {"Authorization": f"Bearer {site.token}"}

    def ids(**params: str) -> list[str]:
        html = site.client.get("/", params=params, headers=auth).text
        return re.findall(r'class="dataset-row" data-id="([a-z_]+)"', html)

    html = site.client.get("/", headers=auth).text
    assert 'data-label="open" href="/?label=open">open (1)' in html
    assert 'data-label="confidential" href="/?label=confidential">confidential (1)' in html
    assert 'data-kind="table" href="/?kind=table">synthetic table (2)' in html
    assert ids() == ["patient_tests", "taxi_trips"]                 # by name
    assert ids(kind="table", label="confidential") == ["patient_tests"]
    assert ids(kind="classifier") == []
    # Publisher (the declared schema's steward office) and licence facets.
    assert ('data-publisher="transport-data-office" href="/?publisher=transport-data-office">'
            'Transport data office (2)') in html
    assert 'data-licence="cc-by" href="/?licence=cc-by">Creative Commons Attribution 4.0 (1)' \
        in html
    assert ('data-licence="other-closed" href="/?licence=other-closed">Other (Not Open): '
            'Shared — Confidential terms of the data card (1)') in html
    assert ids(licence="other-closed") == ["patient_tests"]
    assert ids(licence="cc-by", publisher="transport-data-office") == ["taxi_trips"]
    assert ids(publisher="no-such-office") == []
    narrowed = site.client.get("/", params={"licence": "cc-by"}, headers=auth).text
    assert 'href="/?publisher=transport-data-office&amp;licence=cc-by">Transport data office (1)' \
        in narrowed
    assert ids(sort="title_desc") == ["taxi_trips", "patient_tests"]
    assert ids(sort="issued") == ["patient_tests", "taxi_trips"]    # newest first
    assert ids(sort="no-such-sort") == ["patient_tests", "taxi_trips"]
    # Facets count what the other facet leaves.
    assert "open (1)" not in site.client.get("/", params={"label": "confidential",
                                                          "kind": "classifier"},
                                             headers=auth).text
    monkeypatch.setattr("pulsesynth.portal.app.PAGE_SIZE", 1)
    assert ids(page="1") == ["patient_tests"] and ids(page="2") == ["taxi_trips"]
    assert ids(page="9") == ["taxi_trips"] and ids(page="x") == ["patient_tests"]
    assert ids(page="9" * 5000) == ["patient_tests"]           # no int() of a huge string
    second = site.client.get("/", params={"page": "2", "kind": "table"}, headers=auth).text
    assert 'rel="prev" href="/?kind=table&amp;page=1"' in second
    assert "page 2 of 2" in second


def _png_size_and_dpi(data: bytes) -> tuple[int, int, float]:
    """Width and height from the IHDR chunk, dots per inch from the pHYs chunk."""
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    at = data.index(b"pHYs") + 4
    per_metre = int.from_bytes(data[at:at + 4], "big")
    return width, height, round(per_metre * 0.0254)


def test_published_plots_are_readable_size(site: Site) -> None:
    plots = [f for f in site.open_v2["files"] if f["name"].startswith("plots/")]
    assert [f["name"] for f in plots] == ["plots/00-tip.png", "plots/01-distance.png",
                                          "plots/02-company.png", "plots/03-hour.png",
                                          "plots/quality-shapes.png",
                                          "plots/quality-associations.png"]
    sizes = [_png_size_and_dpi(site.client.get(f["downloadURL"]).content) for f in plots]
    # Column plots 640×360; the four shape bars 640×300; the 4×4 heat map 600×480.
    assert sizes == [(640, 360, 100)] * 4 + [(640, 300, 100), (600, 480, 100)]


def test_quality_report_compares_synthetic_rows_with_the_dp_marginals_only(
        site: Site) -> None:
    """The card's quality report is a function of the published synthetic rows and the
    model's DP marginals (never the real rows), and the table page says it plainly."""
    import numpy as np
    import pandas as pd
    from governance_fixtures import dp_marginals, schema_for

    from pulsesynth.quality import quality_report

    card = site.client.get("/api/datasets/taxi_trips").json()["datacard"]
    parquet = next(f for f in site.open_v2["files"] if f["name"] == "synthetic.parquet")
    table = pd.read_parquet(io.BytesIO(site.client.get(parquet["downloadURL"]).content))
    marginals = dp_marginals("taxi_trips", 1)                   # v2 was made with seed 1
    expected = quality_report(table, schema_for("taxi_trips"), marginals)
    assert {k: v for k, v in card["quality"].items() if k != "plots"} == expected
    # One score by hand: tip's share of yes/no against the DP (distance, tip) table's
    # tip margin (distance has 7 declared bins, tip 2 categories).
    dp_tip = np.asarray(marginals["probabilities"][0]).reshape(7, 2).sum(axis=0)
    syn_tip = table["tip"].value_counts(normalize=True).reindex(["no", "yes"]).to_numpy()
    tip = next(s["score"] for s in card["quality"]["shapes"] if s["column"] == "tip")
    assert tip == round(1 - 0.5 * float(np.abs(syn_tip - dp_tip).sum()), 4)
    assert [s["column"] for s in card["quality"]["shapes"]] == ["tip", "distance", "company",
                                                                "hour"]
    assert [p["columns"] for p in card["quality"]["pairs"]] == [
        ["distance", "tip"], ["company", "tip"], ["hour", "tip"]]
    assert card["quality"]["overall"] == round(
        (card["quality"]["shape_score"] + card["quality"]["pair_score"]) / 2, 4)
    # The page: plain words, percentages, both plots with alt text.
    html = site.client.get("/datasets/taxi_trips").text
    section = html[html.index('id="quality"'):html.index("</section>", html.index('id="quality"'))]
    words = _text(section)
    overall = round(card["quality"]["overall"] * 100)
    assert f"Overall score: {overall} % — very close." in words
    assert "never against the real rows" in words
    assert _text(re.search(r'data-column="tip">(.*?)</tr>', section, re.S).group(1)) == (
        f"tip {round(tip * 100)} % very close")
    assert section.count('class="plot quality-plot"') == 2
    assert 'alt="Heat map of how strongly each two synthetic columns are linked"' in section


def test_quality_scores_are_total_variation_and_cramers_v() -> None:
    import numpy as np

    from pulsesynth.quality import cramers_v, quality_report, total_variation

    assert total_variation(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0
    assert total_variation(np.array([2.0, 2.0]), np.array([1.0, 3.0])) == 0.25
    a = np.array([0, 0, 1, 1])
    assert cramers_v(a, np.array([1, 1, 0, 0]), 2, 2) == 1.0           # one decides the other
    assert cramers_v(a, np.array([0, 1, 0, 1]), 2, 2) == 0.0           # independent
    assert cramers_v(a, np.array([0, 0, 0, 0]), 2, 2) == 0.0           # constant column
    from governance_fixtures import schema_for, synthetic_table

    # Without DP marginals: associations only, no score.
    report = quality_report(synthetic_table(50, 0), schema_for("taxi_trips"), None)
    assert (report["shapes"], report["pairs"], report["overall"]) == ([], [], None)
    assert report["association"]["columns"] == ["tip", "distance", "company", "hour"]


def test_numeric_plots_are_densities_over_the_declared_unequal_bins() -> None:
    """Bar heights are count / bin width, so a wide bin does not look tall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from pulsesynth.governance.datacard import _density_bars

    values = pd.Series([0.5, 1.5, 1.6, 3.0, 4.0, 4.5, 30.0, 40.0])
    fig, ax = plt.subplots()
    try:
        _density_bars(ax, values, {"type": "float", "bounds": [0, 100],
                                   "bins": [0, 1, 2, 5, 50, 100]}, "distance")
        bars = [(p.get_x(), p.get_width(), p.get_height()) for p in ax.patches]
        assert bars == [(0, 1, 1.0), (1, 1, 2.0), (2, 3, 1.0), (5, 45, 2 / 45), (50, 50, 0.0)]
        assert ax.get_ylabel() == "synthetic rows per unit of distance"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "5", "50", "100"]
    finally:
        plt.close(fig)


def test_classifier_card_hides_missing_values_instead_of_null_or_none(tmp_path: Path) -> None:
    """A classifier whose config records no architecture, classes or F1: neither the
    Markdown card nor the portal page prints ``null`` or ``None``."""
    from test_publication_golden import publish_one_of_each

    from pulsesynth.governance.modelcard import modelcard_markdown
    from pulsesynth.portal.app import _template_env, audit_verdict, fit_verdict
    from pulsesynth.portal.licences import OPEN_LICENCE

    publish_one_of_each(tmp_path)
    card = json.loads((Paths(tmp_path).published / "taxi_trips_classifier/v1/modelcard.json")
                      .read_text())
    card["model"] |= {"architecture": None, "classes": None}
    md = modelcard_markdown(card)
    assert "architecture" not in md and "None" not in md and "null" not in md
    assert "- target: tip\n" in md
    entry = {"id": card["id"], "version": "v1", "label": "open", "status": "published",
             "kind": "classifier", "issued": "2026-01-02"}
    html = _template_env().get_template("model.html").render(
        entity=None, entry=entry, card=card, downloads=[], versions=[], can_sample=False,
        limits=None, audit=audit_verdict(card), fit=fit_verdict(card),
        licence=OPEN_LICENCE, publisher="Transport data office", dictionary=[],
        changelog=[], citation="")
    text = _text(html)
    assert "architecture" not in text and "None" not in text and "null" not in text
    assert "target: tip (the column it predicts)" in text
