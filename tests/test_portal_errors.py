"""Browser error pages (HTML for ``Accept: text/html``, JSON otherwise) and ``/docs``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from governance_fixtures import make_candidate
from portal_server import served

from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.lifecycle import approve
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.paths import Paths
from pulsesynth.portal import create_app

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
SECRET_ID = "patient_tests"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    paths = Paths(tmp_path_factory.mktemp("errors"))
    for dataset, label in (("taxi_trips", "open"), (SECRET_ID, "confidential")):
        rel = register_candidate(paths, dataset, make_candidate(paths, dataset, label=label),
                                 "m")
        approve(paths, rel.candidate_id, "alice")
        publish_approved(paths)
    return TestClient(create_app(paths), raise_server_exceptions=False)


def test_browser_404_is_html_and_the_same_for_invisible_and_unknown(client) -> None:
    for hidden, unknown in ((f"/datasets/{SECRET_ID}", "/datasets/no_such_dataset"),
                            (f"/datasets/{SECRET_ID}/v1", "/datasets/no_such_dataset/v1"),
                            (f"/datasets/{SECRET_ID}/v1/files/synthetic.csv",
                             "/datasets/no_such_dataset/v1/files/synthetic.csv")):
        a, b = client.get(hidden, headers=BROWSER), client.get(unknown, headers=BROWSER)
        assert a.status_code == b.status_code == 404
        assert a.headers["content-type"] == "text/html; charset=utf-8"
        assert a.content == b.content
        assert dict(a.headers) == dict(b.headers)
        assert "<h1>Not found</h1>" in a.text
        assert SECRET_ID not in a.text and "no_such" not in a.text
    # Unrouted paths and paths the guard refuses get the page too.
    assert client.get("/nope", headers=BROWSER).content == a.content
    assert "<h1>Not found</h1>" in client.get("/datasets/taxi_trips/v1/files/x.csv",
                                              headers=BROWSER).text


def test_json_clients_keep_json_errors(client) -> None:
    for url in ("/datasets/no_such_dataset", f"/datasets/{SECRET_ID}", "/nope"):
        r = client.get(url)
        assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    # The JSON interfaces answer JSON even to a browser.
    r = client.get(f"/api/datasets/{SECRET_ID}", headers=BROWSER)
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    r = client.get("/api/datasets?all_versions=maybe")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "all_versions"]


def test_browser_405_is_html_and_other_clients_keep_plain_text(client) -> None:
    r = client.post("/", headers=BROWSER)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert "<h1>Method not allowed</h1>" in r.text
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert client.post("/").text == "Method Not Allowed"
    # A JSON interface's 422 stays JSON for a browser too.
    r = client.get("/api/datasets?all_versions=maybe", headers=BROWSER)
    assert r.status_code == 422 and r.headers["content-type"] == "application/json"


def test_browser_422_429_500_pages_on_added_routes(tmp_path: Path) -> None:
    """Routes that raise each status (added to a fresh app) answer browsers in HTML."""
    app = create_app(Paths(tmp_path))

    @app.get("/boom/{status}")
    def boom(status: int, n: int = 0) -> None:
        if status == 500:
            raise RuntimeError("secret-cell-value-8675309")
        raise HTTPException(status, detail="rate limit: at most 3 sample requests",
                            headers={"Retry-After": "60"} if status == 429 else None)

    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/boom/429", headers=BROWSER)
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    assert "<h1>Too many requests</h1>" in r.text and "at most 3 sample requests" in r.text
    r = client.get("/boom/422?n=zzz-typed-value", headers=BROWSER)
    assert r.status_code == 422 and "<h1>Invalid request</h1>" in r.text
    assert "invalid parameter: n" in r.text and "zzz-typed-value" not in r.text
    r = client.get("/boom/500", headers=BROWSER)
    assert r.status_code == 500 and "<h1>Something went wrong</h1>" in r.text
    assert "8675309" not in r.text and "RuntimeError" not in r.text
    assert "default-src 'none'" in r.headers["content-security-policy"]
    json_500 = client.get("/boom/500")
    assert json_500.status_code == 500 and "8675309" not in json_500.text


def test_docs_is_swagger_ui_from_same_origin_only(client) -> None:
    r = client.get("/docs", headers=BROWSER)
    assert r.status_code == 200 and "SwaggerUIBundle" in r.text
    refs = re.findall(r'(?:src|href)="([^"]*)"', r.text)
    assert refs and all(ref.startswith("/docs/assets/") for ref in refs), refs
    assert "'/openapi.json'" in r.text
    for ref in refs:
        asset = client.get(ref)
        assert asset.status_code == 200 and len(asset.content) > 0, ref
    assert "http://" not in r.text and "https://" not in r.text
    # The page's own policy: its inline script by hash, nothing from another origin.
    csp = r.headers["content-security-policy"]
    assert csp.startswith("default-src 'none'; script-src 'self' 'sha256-")
    assert "unsafe-eval" not in csp and "https:" not in csp and "*" not in csp
    # Every other response keeps the portal's strict policy.
    for url in ("/", "/docs/assets/swagger-ui.css", "/openapi.json"):
        assert client.get(url).headers["content-security-policy"].startswith(
            "default-src 'none'; img-src 'self'; style-src 'self'")
    assert client.get("/docs/assets/index.html").status_code == 404
    assert client.get("/docs/assets/..%2f__init__.py").status_code == 404


@pytest.mark.integration
def test_docs_renders_in_chromium_under_its_csp(tmp_path: Path) -> None:
    """Swagger UI runs under the page's policy (no CSP violation in the console), lists the
    portal's operations and loads nothing from another origin."""
    from playwright.sync_api import sync_playwright

    with served(create_app(Paths(tmp_path))) as base:
        origin = base.removeprefix("http://")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                         args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            console: list[str] = []
            hosts: set[str] = set()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
            page.goto(f"http://{origin}/docs")
            page.wait_for_selector(".opblock", timeout=15000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            browser.close()
    assert {"/api/datasets", "/api/3/action/{action}", "/catalog.jsonld"} <= {
        p.replace("\u200b", "") for p in paths}
    assert console == [] and hosts == {origin}
