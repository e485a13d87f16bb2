"""The portal in a real headless Chromium (Debian's ``/usr/bin/chromium`` via Playwright).

Never skipped: without the browser the test fails and says how to install it. With
``PULSESYNTH_SCREENSHOTS=1`` the phone/desktop test also writes the README's screenshots
into ``docs/``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from governance_fixtures import make_candidate, plant_real_table
from model_fixtures import make_classifier_candidate
from portal_server import served

from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.db import open_db
from pulsesynth.governance.grants import add_grant
from pulsesynth.governance.lifecycle import approve
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.governance.tokens import create_token
from pulsesynth.paths import Paths
from pulsesynth.portal import create_app
from pulsesynth.portal.app import SESSION_COOKIE

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
DOCS = Path(__file__).resolve().parent.parent / "docs"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
#: The pages a reader meets: the catalogue, a table release, a model (classifier) release and
#: the sign-in form.
PAGES = {"index": "/", "table": "/datasets/taxi_trips", "model": "/datasets/taxi_trips_classifier",
         "signin": "/signin"}
#: Jargon ids and missing values a public page must never show raw.
RAW = ("model_mia", "distance_mia", "synthetic_mia", "seed 000", "quasi_identifier", "null",
       "None", "nan")
#: Basic accessibility facts of the page, measured in the browser.
A11Y_JS = """() => {
  const imgs = Array.from(document.querySelectorAll('img'));
  const heads = Array.from(document.querySelectorAll('h1,h2,h3,h4,h5,h6'))
      .map(h => Number(h.tagName[1]));
  const fields = Array.from(document.querySelectorAll('input,select,textarea'))
      .filter(f => !['hidden', 'submit', 'button'].includes(f.type));
  return {
    img_without_alt: imgs.filter(i => !(i.getAttribute('alt') || '').trim()).length,
    h1: heads.filter(h => h === 1).length,
    first_heading: heads[0],
    skipped_levels: heads.slice(1).filter((h, i) => h > heads[i] + 1).length,
    unlabelled: fields.filter(f => f.labels.length === 0 && !f.getAttribute('aria-label'))
      .map(f => f.id || f.name),
    images_loaded: imgs.every(i => i.complete && i.naturalWidth > 0),
  };
}"""


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Paths, str]]:
    paths = Paths(tmp_path_factory.mktemp("browser"))
    for dataset, label in (("taxi_trips", "open"), ("patient_tests", "confidential")):
        cand = make_candidate(paths, dataset, label=label,
                              snapshot_id=plant_real_table(paths, dataset))
        rel = register_candidate(paths, dataset, cand, "m1")
        approve(paths, rel.candidate_id, "alice", note="browser test")
    rel = register_candidate(paths, "taxi_trips", make_classifier_candidate(paths), "c1",
                             kind="classifier")
    approve(paths, rel.candidate_id, "alice", note="browser test")
    publish_approved(paths)
    token, _ = create_token(paths, "health-authority")
    add_grant(paths, "health-authority", "patient_tests", steward="alice")
    with served(create_app(paths)) as base:
        yield base, paths, token


def test_browser_filters_opens_dataset_sees_plots_and_downloads_csv(
        portal: tuple[str, Paths, str]) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium "
                    "with apt-get) or `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    base, paths, token = portal
    OUTPUT.mkdir(exist_ok=True)
    index = json.loads((paths.published / "index.json").read_text())["dataset"]
    entry = next(e for e in index if e["id"] == "taxi_trips")
    csv_sha = next(f["sha256"] for f in entry["files"] if f["name"] == "synthetic.csv")
    card = json.loads((paths.published / "taxi_trips/v1/datacard.json").read_text())
    assert next(f["sha256"] for f in card["files"] if f["name"] == "synthetic.csv") == csv_sha

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.goto(base + "/")
            assert page.locator("tr.dataset-row").count() == 2          # anonymous: open only
            assert "patient_tests" not in page.content()
            page.fill("#search", "nothing-like-this")
            page.click("#apply")
            assert page.locator("tr.dataset-row").count() == 0
            page.select_option("#label-filter", "open")
            page.fill("#search", "taxi")
            page.click("#apply")
            assert "label=open" in page.url and "q=taxi" in page.url
            assert page.locator("tr.dataset-row").count() == 2
            page.click("tr.dataset-row[data-id='taxi_trips'] a")
            page.wait_for_url("**/datasets/taxi_trips")
            assert page.locator(".badge-open").first.inner_text() == "Open — synthetic"
            page.wait_for_load_state("load")
            images = page.locator("img.plot")
            # The column plots and the quality report's two (shape bars, heat map).
            assert images.count() == len(card["plots"]) + 2 == 6
            assert len(card["quality"]["plots"]) == 2
            loaded = page.evaluate("Array.from(document.querySelectorAll('img.plot'))"
                                   ".every(i => i.complete && i.naturalWidth > 0)")
            assert loaded, "a plot image did not load"
            shown = page.locator("code.sha256[data-name='synthetic.csv']").inner_text()
            with page.expect_download() as info:
                page.click("a.download[data-name='synthetic.csv']")
            data = Path(info.value.path()).read_bytes()
            assert hashlib.sha256(data).hexdigest() == csv_sha == shown
            page.screenshot(path=str(OUTPUT / "portal.png"), full_page=True)

            # An entity signs in once with the form; the token never enters a URL.
            page.click("#signin-link")
            page.wait_for_url("**/signin")
            page.fill("#token", token)
            page.click("#signin-submit")
            page.wait_for_url(base + "/")
            assert token not in page.url
            assert page.locator("tr.dataset-row").count() == 3
            assert page.inner_text("header.site .who").startswith(
                "signed in as entity health-authority")
            [cookie] = [c for c in context.cookies() if c["name"] == SESSION_COOKIE]
            assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (
                True, "Strict", False)
            assert cookie["value"] != token
            assert page.evaluate("document.cookie") == ""          # no script can read it
            page.goto(base + "/datasets/patient_tests")
            assert "Shared: Confidential — synthetic" in page.inner_text(".badge-confidential")
            page.screenshot(path=str(OUTPUT / "portal-confidential.png"), full_page=True)
            fresh = browser.new_context().new_page()
            assert fresh.goto(base + "/datasets/patient_tests").status == 404
            # Signing out ends the session: the release is gone again, as for the public.
            page.click("#signout")
            page.wait_for_url(base + "/")
            assert page.locator("tr.dataset-row").count() == 2
            assert [c for c in context.cookies() if c["name"] == SESSION_COOKIE] == []
            assert page.goto(base + "/datasets/patient_tests").status == 404
            # An expired session is refused: sign in again, then age the session in the store.
            page.goto(base + "/signin?next=/datasets/patient_tests")
            page.fill("#token", token)
            page.click("#signin-submit")
            page.wait_for_url(base + "/datasets/patient_tests")
            with open_db(paths) as conn:
                conn.execute("UPDATE portal_sessions SET expires_at = "
                             "'2000-01-01T00:00:00+00:00'")
            assert page.goto(base + "/datasets/patient_tests").status == 404
            page.goto(base + "/")
            assert page.inner_text("header.site .who").startswith("public access")
            assert page.locator("tr.dataset-row").count() == 2
            # A token in a link is not used: the sign-in page says so.
            page.goto(base + "/datasets/patient_tests?token=" + token)
            assert page.url == base + "/signin?next=%2Fdatasets%2Fpatient_tests&reason=link"
            assert page.locator("#link-notice").count() == 1
            assert page.locator("tr.dataset-row").count() == 0
        finally:
            browser.close()
    assert (OUTPUT / "portal.png").stat().st_size > 10_000


def test_live_server_refuses_raw_traversal_and_other_methods(
        portal: tuple[str, Paths, str]) -> None:
    base, _, _ = portal
    host, port = base.removeprefix("http://").split(":")
    for method, path, expected in (
            ("GET", "/datasets/../warehouse/governance.db", 404),
            ("GET", "/datasets/taxi_trips/v1/files/../../../warehouse/governance.db", 404),
            ("GET", "/datasets/taxi_trips/v1/files/%2e%2e/%2e%2e/index.json", 404),
            ("GET", "/static/../app.py", 404),
            ("POST", "/", 405), ("DELETE", "/datasets/taxi_trips", 405),
            ("POST", "/signin", 401), ("PUT", "/signin", 405)):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request(method, path)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == expected, (method, path)
        assert resp.getheader("x-content-type-options") == "nosniff"
        conn.close()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_pages_fit_the_screen_read_plainly_and_pass_basic_accessibility(
        portal: tuple[str, Paths, str], viewport: dict[str, int]) -> None:
    """Index, table page and model page at 390 px and 1280 px: no horizontal overflow (wide
    tables scroll inside their box), every image has alt text and loads, one h1, headings in
    order, every form field labelled, and no raw jargon id or missing value in the text."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    base, _, _ = portal
    shots = os.environ.get("PULSESYNTH_SCREENSHOTS") == "1"
    device = "phone" if viewport is PHONE else "desktop"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=viewport).new_page()
            page.set_default_timeout(15_000)
            for name, path in PAGES.items():
                assert page.goto(base + path).status == 200, path
                page.wait_for_load_state("load")
                width = page.evaluate("document.scrollingElement.scrollWidth")
                assert width <= viewport["width"], (name, width)
                facts = page.evaluate(A11Y_JS)
                assert facts == {"img_without_alt": 0, "h1": 1, "first_heading": 1,
                                 "skipped_levels": 0, "unlabelled": [],
                                 "images_loaded": True}, (name, facts)
                text = page.inner_text("body")
                assert [w for w in RAW if w in text.split() or f"_{w}" in text] == [], name
                if name in ("table", "model"):
                    summary = page.inner_text("#summary")
                    assert "Passed every privacy check for publishing openly." in summary
                    assert "ε = 1.00" in summary and "δ = 1e-" in summary
                    assert page.locator("#glossary dt").count() == 7
                if shots:
                    DOCS.mkdir(exist_ok=True)
                    page.screenshot(path=str(DOCS / f"portal-{name}-{device}.png"))
        finally:
            browser.close()


def test_playwright_as_a_ckan_client_reads_open_packages_and_granted_ones_with_a_bearer(
        portal: tuple[str, Paths, str]) -> None:
    """What a harvester does over HTTP (Playwright's request context, no page): list,
    search and show packages through the CKAN Action API; a Bearer token adds its
    granted confidential packages, and nothing else changes."""
    from playwright.sync_api import sync_playwright

    base, _, token = portal
    with sync_playwright() as p:
        public = p.request.new_context(base_url=base)
        holder = p.request.new_context(
            base_url=base, extra_http_headers={"Authorization": f"Bearer {token}"})
        try:
            listed = public.get("/api/3/action/package_list").json()
            assert listed["success"] is True
            assert listed["result"] == ["taxi_trips", "taxi_trips_classifier"]
            assert holder.get("/api/3/action/package_list").json()["result"] == [
                "patient_tests", "taxi_trips", "taxi_trips_classifier"]
            shown = public.get("/api/3/action/package_show", params={"id": "taxi_trips"})
            assert shown.status == 200
            resources = shown.json()["result"]["resources"]
            csv = next(r for r in resources if r["name"] == "synthetic.csv")
            assert csv["url"].startswith(base + "/") and public.get(csv["url"]).ok
            hidden = public.get("/api/3/action/package_show", params={"id": "patient_tests"})
            assert (hidden.status, hidden.json()["success"]) == (404, False)
            granted = holder.get("/api/3/action/package_show",
                                 params={"id": "patient_tests"})
            assert granted.status == 200
            found = holder.get("/api/3/action/package_search",
                               params={"q": "", "rows": "1", "sort": "name asc"}).json()
            assert (found["result"]["count"], len(found["result"]["results"])) == (3, 1)
        finally:
            public.dispose()
            holder.dispose()
