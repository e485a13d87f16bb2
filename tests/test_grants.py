"""Per-entity grants: a steward grants an entity a dataset's confidential releases; the
portal shows an entity only those (404 for the rest, byte for byte as for an unknown id);
sign-in: a token exchanged once for a server-side session (cookie attributes, expiry,
sign-out, revocation, cross-site refusal); ``?token=`` refused; credentials kept out of logs."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from governance_fixtures import make_candidate, plant_real_table

from pulsesynth.cli import main
from pulsesynth.command import cli_command
from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.db import audit_events, db_path, open_db
from pulsesynth.governance.grants import (
    Grant,
    GrantError,
    add_grant,
    granted_datasets,
    list_grants,
    remove_grant,
)
from pulsesynth.governance.lifecycle import approve
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.governance.sessions import SESSION_TTL, hash_session, start_session
from pulsesynth.governance.tokens import create_token, revoke_tokens
from pulsesynth.paths import Paths
from pulsesynth.portal import create_app
from pulsesynth.portal.app import (
    SESSION_COOKIE,
    SESSION_COOKIE_MAX_AGE_S,
    RedactToken,
    redact_token,
)

GRANTED = "patient_tests"          # confidential, granted to ENTITY
OTHER = "traffic_accidents"        # confidential, granted to another entity only
OPEN = "taxi_trips"
ENTITY = "health-authority"


class Site:
    """One open and two confidential datasets; three entities with different grants."""

    def __init__(self, root: Path) -> None:
        self.paths = Paths(root)
        for dataset, label in ((OPEN, "open"), (GRANTED, "confidential"),
                               (OTHER, "confidential")):
            cand = make_candidate(self.paths, dataset, label=label,
                                  snapshot_id=plant_real_table(self.paths, dataset))
            rel = register_candidate(self.paths, dataset, cand, "m1")
            approve(self.paths, rel.candidate_id, "alice")
        publish_approved(self.paths)
        self.token, _ = create_token(self.paths, ENTITY)
        self.police, _ = create_token(self.paths, "dubai-police")
        self.ungranted, _ = create_token(self.paths, "no-grants-entity")
        add_grant(self.paths, ENTITY, GRANTED, steward="alice")
        add_grant(self.paths, "dubai-police", OTHER, steward="alice")
        self.app = create_app(self.paths)
        self.client = TestClient(self.app)
        self.index = {e["id"]: e for e in json.loads(
            (self.paths.published / "index.json").read_text())["dataset"]}

    def urls(self, dataset: str) -> list[str]:
        """Every route that serves a release: pages, the API and each file."""
        return [f"/datasets/{dataset}", f"/datasets/{dataset}/v1", f"/api/datasets/{dataset}",
                *(f["downloadURL"] for f in self.index[dataset]["files"])]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return Site(tmp_path_factory.mktemp("grants"))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _answer(r) -> tuple[int, bytes, list[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    return r.status_code, r.content, sorted(r.headers.multi_items())


# --- the grant store ------------------------------------------------------------------------


def test_grants_are_added_listed_removed_and_every_change_is_audited(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    a = add_grant(paths, " health-authority ", "patient_tests", steward="alice",
                  note="case 7")
    b = add_grant(paths, "dubai-police", "traffic_accidents", steward="bob")
    add_grant(paths, "health-authority", "census_income", steward="alice")
    assert (a.entity, a.dataset, a.steward, a.note) == (
        "health-authority", "patient_tests", "alice", "case 7")
    assert [(g.entity, g.dataset) for g in list_grants(paths)] == [
        ("dubai-police", "traffic_accidents"), ("health-authority", "census_income"),
        ("health-authority", "patient_tests")]
    assert [g.dataset for g in list_grants(paths, "health-authority")] == [
        "census_income", "patient_tests"]
    assert granted_datasets(paths, "health-authority") == {"census_income", "patient_tests"}
    assert granted_datasets(paths, None) == frozenset()
    removed = remove_grant(paths, "health-authority", "patient_tests", actor="carol",
                           note="case closed")
    assert removed == a
    assert list_grants(paths, "health-authority") == [
        Grant("health-authority", "census_income", "alice", "", a.granted_at)]
    assert list_grants(paths, "dubai-police") == [b]
    added = [(e["actor"], e["subject"], e["detail"]) for e in audit_events(paths, "grant.add")]
    assert added == [
        ("alice", "health-authority", {"dataset": "patient_tests", "note": "case 7"}),
        ("bob", "dubai-police", {"dataset": "traffic_accidents", "note": ""}),
        ("alice", "health-authority", {"dataset": "census_income", "note": ""})]
    [gone] = audit_events(paths, "grant.remove")
    assert (gone["actor"], gone["subject"], gone["detail"]) == (
        "carol", "health-authority",
        {"dataset": "patient_tests", "note": "case closed", "granted_by": "alice",
         "granted_at": a.granted_at})


@pytest.mark.parametrize(("call", "message"), [
    (lambda p: add_grant(p, "health-authority", "patient_tests", steward="bob"),
     "health-authority already has a grant on patient_tests"),
    (lambda p: remove_grant(p, "health-authority", "census_income"),
     "health-authority has no grant on census_income"),
    (lambda p: remove_grant(p, "nobody", "patient_tests"),
     "nobody has no grant on patient_tests"),
    (lambda p: add_grant(p, "   ", "patient_tests", steward="alice"),
     "an entity name is required"),
    (lambda p: add_grant(p, "e\x1b[2J", "patient_tests", steward="alice"),
     "an entity name is at most 200 printable characters"),
    (lambda p: add_grant(p, "health-authority", "census_income", steward=" "),
     "a grant needs the deciding steward (--steward NAME)"),
    (lambda p: add_grant(p, "health-authority", "p\u0430tient_tests", steward="alice"),
     "dataset id must be 1 to 64 ASCII characters: a lower-case letter, then lower-case "
     "letters, digits or _ (got non-ASCII U+0430 at position 2)"),
    (lambda p: add_grant(p, "health-authority", "Patient_Tests", steward="alice"),
     "dataset id must be 1 to 64 ASCII characters: a lower-case letter, then lower-case "
     "letters, digits or _ (got 'Patient_Tests')"),
    (lambda p: add_grant(p, "health-authority", "x" * 65, steward="alice"),
     "dataset id must be 1 to 64 ASCII characters: a lower-case letter, then lower-case "
     "letters, digits or _ (got 65 characters)"),
], ids=["duplicate", "remove-missing", "remove-unknown-entity", "empty-entity",
        "control-chars", "no-steward", "cyrillic-lookalike", "upper-case", "too-long"])
def test_refused_grant_requests_say_why_and_change_nothing(tmp_path: Path, call,  # type: ignore[no-untyped-def]
                                                            message: str) -> None:
    paths = Paths(tmp_path)
    add_grant(paths, "health-authority", "patient_tests", steward="alice")
    before = (list_grants(paths), audit_events(paths))
    with pytest.raises(GrantError) as err:
        call(paths)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert (list_grants(paths), audit_events(paths)) == before


def test_a_version_4_store_gains_the_grants_table_on_open(tmp_path: Path) -> None:
    """A governance store from before grants (schema version 4, no ``grants`` table) is
    brought up to date on first open, its other rows kept."""
    paths = Paths(tmp_path)
    create_token(paths, "health-authority")
    with sqlite3.connect(db_path(paths)) as conn:
        conn.execute("DROP TABLE grants")
        conn.execute("PRAGMA user_version = 4")
    add_grant(paths, "health-authority", "patient_tests", steward="alice")
    with open_db(paths) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 6
        assert conn.execute("SELECT count(*) FROM access_tokens").fetchone()[0] == 1
    assert [g.dataset for g in list_grants(paths)] == ["patient_tests"]


def test_a_version_5_store_gains_the_sessions_table_on_open(tmp_path: Path) -> None:
    """A store from before portal sessions (version 5) gains ``portal_sessions`` on open,
    its tokens kept, and a session can start at once."""
    paths = Paths(tmp_path)
    token, _ = create_token(paths, "health-authority")
    with sqlite3.connect(db_path(paths)) as conn:
        conn.execute("DROP TABLE portal_sessions")
        conn.execute("PRAGMA user_version = 5")
    started = start_session(paths, token)
    assert started is not None and started[1] == "health-authority"
    with open_db(paths) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 6
        assert conn.execute("SELECT count(*) FROM portal_sessions").fetchone()[0] == 1


# --- the CLI --------------------------------------------------------------------------------


def test_cli_grants_add_list_remove(project_root: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grants", "add", "health-authority", "patient_tests", "--steward", "alice",
                 "--note", "case 7"]) == 0
    out, err = capsys.readouterr()
    assert out == ("granted health-authority the confidential releases of patient_tests "
                   "(decided by alice; in the audit log)\n")
    assert err == ("note: no release of patient_tests is registered yet; the grant applies "
                   "to those published later\n")
    assert main(["grants", "list", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert {k: row[k] for k in ("entity", "dataset", "steward", "note")} == {
        "entity": "health-authority", "dataset": "patient_tests", "steward": "alice",
        "note": "case 7"}
    assert main(["grants", "list", "health-authority"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("health-authority") and line.rstrip().endswith(": case 7")
    assert main(["grants", "add", "health-authority", "patient_tests",
                 "--steward", "bob"]) == 2
    assert capsys.readouterr().err == (
        "error: health-authority already has a grant on patient_tests\n")
    assert main(["grants", "remove", "health-authority", "patient_tests",
                 "--steward", "carol"]) == 0
    assert capsys.readouterr().out == (
        "removed health-authority's grant on patient_tests (in the audit log)\n")
    assert main(["grants", "list"]) == 0
    assert capsys.readouterr().out == "no grants\n"
    assert [e["action"] for e in audit_events(Paths(project_root))] == ["grant.add",
                                                                        "grant.remove"]


def test_cli_token_create_says_an_entity_without_grants_sees_open_releases_only(
        project_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokens", "create", "--entity", "dubai-police"]) == 0
    out, err = capsys.readouterr()
    assert len(out.strip()) == 43                                      # the token, once
    assert err.splitlines()[1] == ("dubai-police has no grants yet: it sees open releases "
                                   f"only ({cli_command()} grants add 'dubai-police' "
                                   "DATASET --steward NAME)")
    assert err.splitlines()[2] == ("the entity signs in at the portal's /signin page (API "
                                   "clients send Authorization: Bearer TOKEN); never put it "
                                   "in a link")


# --- the portal: what each entity sees ------------------------------------------------------


def test_entity_lists_open_releases_and_only_its_granted_confidential_ones(site: Site) -> None:
    def listed(**kw) -> list[str]:  # type: ignore[no-untyped-def]
        return [d["id"] for d in site.client.get("/api/datasets", **kw).json()]

    assert listed() == [OPEN]
    assert listed(headers=_bearer(site.token)) == [GRANTED, OPEN]
    assert listed(headers=_bearer(site.police)) == [OPEN, OTHER]
    assert listed(headers=_bearer(site.ungranted)) == [OPEN]           # a token alone: open
    page = site.client.get("/", headers=_bearer(site.token)).text
    assert GRANTED in page and OTHER not in page and "Confidential" in page
    bare = site.client.get("/?label=confidential", headers=_bearer(site.ungranted)).text
    assert GRANTED not in bare and OTHER not in bare and "Confidential" not in bare


def test_granted_release_is_served_on_every_route(site: Site) -> None:
    auth = _bearer(site.token)
    for url in site.urls(GRANTED):
        assert site.client.get(url, headers=auth).status_code == 200, url
        assert site.client.head(url, headers=auth).status_code == 200, url
    csv = next(f for f in site.index[GRANTED]["files"] if f["name"] == "synthetic.csv")
    site.client.get(csv["downloadURL"], headers=auth)
    last = audit_events(site.paths, "release.download")[-1]
    assert (last["actor"], last["subject"]) == (ENTITY, f"{GRANTED}/v1/synthetic.csv")


def test_ungranted_confidential_release_answers_exactly_like_an_unknown_id(site: Site) -> None:
    """Entity A (granted X) asking for Y's confidential release, and an entity with a token
    but no grant asking for either: the same status, bytes and headers as an unknown id,
    with the token as a header or through a session, in GET and HEAD."""
    unknown = site.client.get("/datasets/no_such_dataset")
    unknown_head = site.client.head("/datasets/no_such_dataset")
    assert unknown.status_code == 404
    downloads_before = len(audit_events(site.paths, "release.download"))
    cases = [(site.token, OTHER), (site.ungranted, GRANTED), (site.ungranted, OTHER)]
    for token, dataset in cases:
        session = start_session(site.paths, token)
        assert session is not None
        for how in ({"headers": _bearer(token)}, {"cookies": {SESSION_COOKIE: session[0]}}):
            client = TestClient(site.app)
            for url in site.urls(dataset) + [f"/datasets/{dataset}/v2"]:
                assert _answer(client.get(url, **how)) == _answer(unknown), (url, how)
                assert _answer(client.head(url, **how)) == _answer(unknown_head), url
    assert len(audit_events(site.paths, "release.download")) == downloads_before


def test_removing_a_grant_hides_the_release_from_the_next_request(site: Site) -> None:
    auth = _bearer(site.police)
    url = f"/api/datasets/{OTHER}"
    assert site.client.get(url, headers=auth).status_code == 200
    remove_grant(site.paths, "dubai-police", OTHER, actor="alice")
    try:
        assert _answer(site.client.get(url, headers=auth)) == _answer(
            site.client.get("/api/datasets/no_such_dataset"))
    finally:
        add_grant(site.paths, "dubai-police", OTHER, steward="alice")
    assert site.client.get(url, headers=auth).status_code == 200


# --- sign-in sessions and ?token= -----------------------------------------------------------


def _session_cookie(r) -> str:  # type: ignore[no-untyped-def]
    """The session id a sign-in answer set."""
    [header] = r.headers.get_list("set-cookie")
    return header.split(";")[0].removeprefix(f"{SESSION_COOKIE}=")


def test_signin_form_exchanges_the_token_for_a_hashed_strict_session(site: Site) -> None:
    client = TestClient(site.app, follow_redirects=False)
    r = client.post("/signin", data={"token": site.token,
                                     "next": "/api/datasets?all_versions=true&q=pat"})
    assert r.status_code == 303 and r.content == b""
    assert r.headers["location"] == "/api/datasets?all_versions=true&q=pat"
    session = _session_cookie(r)
    assert len(session) == 43 and session != site.token
    assert r.headers.get_list("set-cookie") == [
        f"{SESSION_COOKIE}={session}; HttpOnly; Max-Age={SESSION_COOKIE_MAX_AGE_S}; "
        "Path=/; SameSite=strict"]
    assert SESSION_COOKIE_MAX_AGE_S == 8 * 3600 == SESSION_TTL.total_seconds()
    assert r.headers["x-frame-options"] == "DENY"                 # security headers too
    followed = client.get(r.headers["location"], cookies={SESSION_COOKIE: session})
    assert [d["id"] for d in followed.json()] == [GRANTED]
    # Stored only hashed, bound to the token's row, expiring 8 h after it started.
    with open_db(site.paths) as conn:
        row = conn.execute("SELECT * FROM portal_sessions WHERE session_hash = ?",
                           (hash_session(session),)).fetchone()
        token_id = conn.execute("SELECT id FROM access_tokens WHERE entity = ?",
                                (ENTITY,)).fetchone()[0]
    assert (row["entity"], row["token_id"]) == (ENTITY, token_id)
    assert (datetime.fromisoformat(row["expires_at"])
            - datetime.fromisoformat(row["created_at"])) == SESSION_TTL
    raw = b"".join(p.read_bytes() for p in db_path(site.paths).parent.glob("governance.db*"))
    assert session.encode() not in raw and site.token.encode() not in raw
    event = audit_events(site.paths, "session.start")[-1]
    assert (event["actor"], event["detail"]) == (
        ENTITY, {"token_id": token_id, "expires_at": row["expires_at"]})


def test_bearer_post_signs_in_and_a_bad_token_gets_401_and_no_cookie(site: Site) -> None:
    client = TestClient(site.app, follow_redirects=False)
    r = client.post("/signin", headers=_bearer(site.token))
    assert (r.status_code, r.headers["location"]) == (303, "/")
    assert r.headers["set-cookie"].startswith(f"{SESSION_COOKIE}=")
    for token in ("not-a-real-token", "", "x" * 300):
        bad = client.post("/signin", data={"token": token, "next": "/"},
                          headers={"accept": "text/html"})
        assert bad.status_code == 401 and "set-cookie" not in bad.headers
        assert ("That token was not accepted: it is unknown, revoked or mistyped."
                in bad.text)
        assert client.post("/signin", headers=_bearer(token or "x")).json() == {
            "detail": "invalid token"}


def test_signin_redirects_only_to_paths_on_the_portal(site: Site) -> None:
    client = TestClient(site.app, follow_redirects=False)
    for wanted, landed in (("//evil.example/x", "/"), ("/\\evil.example", "/"),
                           ("https://evil.example/", "/"), ("/a\r\nSet-Cookie: x=1", "/"),
                           ("", "/"), ("/caf\u00e9", "/"), ("/caf%C3%A9", "/caf%C3%A9"),
                           (f"/datasets/{GRANTED}?token=abc&q=1",
                                       f"/datasets/{GRANTED}?q=1")):
        r = client.post("/signin", data={"token": site.token, "next": wanted})
        assert r.headers["location"] == landed, wanted


def test_only_signin_and_signout_answer_post(site: Site) -> None:
    client = TestClient(site.app, follow_redirects=False)
    for method in ("PUT", "DELETE", "PATCH"):
        r = client.request(method, "/signin")
        assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD, POST")
    r = client.post("/api/datasets")
    assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD")
    assert client.post("/signout").status_code == 303          # no session: still signed out


def test_cross_site_signin_and_signout_are_refused(site: Site) -> None:
    client = TestClient(site.app, follow_redirects=False)
    for headers in ({"origin": "https://evil.example"}, {"origin": "null"},
                    {"sec-fetch-site": "cross-site"},
                    {"sec-fetch-site": "same-site"}):
        r = client.post("/signin", data={"token": site.token}, headers=headers)
        assert r.status_code == 403 and "set-cookie" not in r.headers
        assert client.post("/signout", headers=headers).status_code == 403
    same = client.post("/signin", data={"token": site.token},
                       headers={"origin": "http://testserver", "sec-fetch-site": "same-origin"})
    assert same.status_code == 303


def test_signout_deletes_the_session_row_and_clears_the_cookie(site: Site) -> None:
    client = TestClient(site.app, follow_redirects=False)
    session = _session_cookie(client.post("/signin", data={"token": site.token}))
    cookies = {SESSION_COOKIE: session}
    assert client.get(f"/api/datasets/{GRANTED}", cookies=cookies).status_code == 200
    out = client.post("/signout", cookies=cookies)
    assert (out.status_code, out.headers["location"]) == (303, "/")
    assert out.headers["set-cookie"] == (
        f'{SESSION_COOKIE}=""; expires=' + out.headers["set-cookie"].split("expires=")[1])
    assert "Max-Age=0" in out.headers["set-cookie"]
    with open_db(site.paths) as conn:
        assert conn.execute("SELECT count(*) FROM portal_sessions WHERE session_hash = ?",
                            (hash_session(session),)).fetchone()[0] == 0
    assert client.get(f"/api/datasets/{GRANTED}", cookies=cookies).status_code == 404


def test_expired_and_revoked_sessions_are_refused(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    cand = make_candidate(paths, GRANTED, label="confidential",
                          snapshot_id=plant_real_table(paths, GRANTED))
    approve(paths, register_candidate(paths, GRANTED, cand, "m1").candidate_id, "alice")
    publish_approved(paths)
    token, _ = create_token(paths, ENTITY)
    add_grant(paths, ENTITY, GRANTED, steward="alice")
    client = TestClient(create_app(paths))
    url = f"/api/datasets/{GRANTED}"
    first, second = (start_session(paths, token) for _ in range(2))
    assert first is not None and second is not None
    assert client.get(url, cookies={SESSION_COOKIE: first[0]}).status_code == 200
    with open_db(paths) as conn:
        conn.execute("UPDATE portal_sessions SET expires_at = '2000-01-01T00:00:00+00:00' "
                     "WHERE session_hash = ?", (hash_session(first[0]),))
    assert client.get(url, cookies={SESSION_COOKIE: first[0]}).status_code == 404
    assert client.get(url, cookies={SESSION_COOKIE: second[0]}).status_code == 200
    # The next sign-in sweeps the expired row; revoking the token ends the live one.
    assert start_session(paths, token) is not None
    revoke_tokens(paths, ENTITY)
    assert client.get(url, cookies={SESSION_COOKIE: second[0]}).status_code == 404
    with open_db(paths) as conn:
        assert conn.execute("SELECT count(*) FROM portal_sessions").fetchone()[0] == 0
    assert start_session(paths, token) is None


def test_query_token_is_refused_with_a_redirect_to_the_signin_page(site: Site) -> None:
    client = TestClient(site.app, follow_redirects=False)
    for token in (site.token, "not-a-real-token", "", "x" * 300):
        r = client.get(f"/api/datasets?all_versions=true&token={token}&q=pat")
        assert r.status_code == 303 and r.content == b""
        assert r.headers["location"] == (
            "/signin?next=%2Fapi%2Fdatasets%3Fall_versions%3Dtrue%26q%3Dpat&reason=link")
        assert "set-cookie" not in r.headers
    # The same answer whether or not the path names a release (nothing to learn from it).
    for url in (f"/datasets/{OTHER}", "/datasets/no_such_dataset"):
        r = client.get(url, params={"token": site.token})
        assert (r.status_code, r.content) == (303, b"")
        assert r.headers["location"] == "/signin?next=" + url.replace("/", "%2F") + \
            "&reason=link"
    page = client.get(r.headers["location"])
    assert "does not accept tokens in links: it was not used" in " ".join(page.text.split())
    assert 'name="next" value="/datasets/no_such_dataset"' in page.text


def test_session_cookie_is_secure_when_served_over_https(site: Site) -> None:
    client = TestClient(site.app, base_url="https://testserver", follow_redirects=False)
    r = client.post("/signin", data={"token": site.token})
    assert r.status_code == 303 and r.headers["location"] == "/"
    session = _session_cookie(r)
    assert r.headers["set-cookie"] == (
        f"{SESSION_COOKIE}={session}; HttpOnly; Max-Age={SESSION_COOKIE_MAX_AGE_S}; "
        "Path=/; SameSite=strict; Secure")


def test_redirect_never_leaves_the_portal(site: Site) -> None:
    """A ``//host`` path would make a protocol-relative Location (an open redirect)."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    # Sent as raw ASGI: an HTTP client would read ``//evil.example`` as a host.
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "///evil.example/x",
             "raw_path": b"///evil.example/x", "query_string": b"token=abc",
             "root_path": "", "headers": [(b"host", b"testserver")],
             "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    asyncio.run(site.app(scope, receive, send))
    start = sent[0]
    assert start["status"] == 303
    assert dict(start["headers"])[b"location"] == (
        b"/signin?next=%2Fevil.example%2Fx&reason=link")


def test_access_log_never_prints_the_token_or_a_session_id(site: Site) -> None:
    """uvicorn's access log, configured as ``pulsesynth portal`` configures it, prints the
    request line of a ``?token=`` (or ``?session=``) request with the value redacted; its
    error log hides a bearer credential and a session cookie."""
    import uvicorn
    from uvicorn.logging import AccessFormatter
    from uvicorn.protocols.utils import get_path_with_query_string

    uvicorn.Config(site.app, log_level="info")       # uvicorn's dictConfig of its loggers
    logger = logging.getLogger("uvicorn.access")
    errors = logging.getLogger("uvicorn.error")
    assert sum(isinstance(f, RedactToken) for f in logger.filters) == 1
    create_app(site.paths)                            # a second app adds no second filter
    assert sum(isinstance(f, RedactToken) for f in logger.filters) == 1
    assert sum(isinstance(f, RedactToken) for f in errors.filters) == 1
    session = start_session(site.paths, site.token)
    assert session is not None
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    keep = Keep()
    keep.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s',
                                      use_colors=False))
    logger.addHandler(keep)
    try:
        for query in (f"token={site.token}&q=a", f"q=a&token={site.token}",
                      f"%74oken={site.token}", f"session={session[0]}"):
            scope = {"path": "/datasets/x", "query_string": query.encode(),
                     "root_path": ""}
            # The call uvicorn's protocol makes for each response.
            logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                        get_path_with_query_string(scope), "1.1", 303)  # type: ignore[arg-type]
        record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1,
                                   "request headers %s", (
                                       f"authorization: Bearer {site.token}; "
                                       f"cookie: {SESSION_COOKIE}={session[0]}",), None)
        assert errors.filters[0].filter(record)
        error_line = record.getMessage()
    finally:
        logger.removeHandler(keep)
    assert error_line == ("request headers authorization: Bearer [redacted]; "
                          f"cookie: {SESSION_COOKIE}=[redacted]")
    assert lines == [
        '127.0.0.1:5000 - "GET /datasets/x?token=[redacted]&q=a HTTP/1.1" 303 See Other',
        '127.0.0.1:5000 - "GET /datasets/x?q=a&token=[redacted] HTTP/1.1" 303 See Other',
        '127.0.0.1:5000 - "GET /datasets/x?%74oken=[redacted] HTTP/1.1" 303 See Other',
        '127.0.0.1:5000 - "GET /datasets/x?session=[redacted] HTTP/1.1" 303 See Other']


def test_redact_token_leaves_other_parameters_alone() -> None:
    assert redact_token("/a?token=abc") == "/a?token=[redacted]"
    assert redact_token("/a?mytoken=1&tokens=2&q=token=3") == "/a?mytoken=1&tokens=2&q=token=3"
    assert redact_token("GET /a?x=1&token=s3cr3t&y=2 HTTP/1.1") == (
        "GET /a?x=1&token=[redacted]&y=2 HTTP/1.1")
    assert redact_token("no query here") == "no query here"
    assert redact_token("/a?TOKEN=abc&Token=d") == "/a?TOKEN=[redacted]&Token=[redacted]"
    assert redact_token("/a?access_token=x&pulsesynth_session=y&sessions=z") == (
        "/a?access_token=[redacted]&pulsesynth_session=[redacted]&sessions=z")
    assert redact_token("Authorization: bearer abc.def") == "Authorization: bearer [redacted]"
