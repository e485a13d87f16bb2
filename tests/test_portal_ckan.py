"""The portal's CKAN Action API, read by a real CKAN client (``ckanapi``).

``ckanapi.RemoteCKAN`` sends its requests through a ``requests``-compatible session; the
FastAPI TestClient is one, so the client's own request building and error mapping
(``NotFound`` from ``"__type": "Not Found Error"``) run unchanged against the app. One
test also runs it over real HTTP against uvicorn.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import ckanapi
import pytest
import requests
import yaml
from fastapi.testclient import TestClient
from governance_fixtures import CANARY, CANARY_NUMBER, make_candidate, plant_real_table
from portal_server import served

from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.grants import add_grant
from pulsesynth.governance.lifecycle import approve
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.governance.tokens import create_token
from pulsesynth.paths import Paths
from pulsesynth.portal import create_app

SECRET_ID = "patient_tests"
BASE = "http://testserver"
# ckanapi passes requests' ``timeout`` on every call; the TestClient ignores it, with a warning.
pytestmark = pytest.mark.filterwarnings("ignore:You should not use the 'timeout' argument")


class Site:
    """An open dataset with two versions and a confidential one granted to one entity."""

    def __init__(self, root: Path) -> None:
        self.paths = Paths(root)
        for dataset, runs in (("taxi_trips", [("r1", "open"), ("r2", "open")]),
                              (SECRET_ID, [("r1", "confidential")])):
            snapshot = plant_real_table(self.paths, dataset)
            for i, (run, label) in enumerate(runs):
                cand = make_candidate(self.paths, dataset, run, label=label, seed=i,
                                      snapshot_id=snapshot)
                if dataset == SECRET_ID:   # its own steward's office, a second organisation
                    schema = yaml.safe_load((cand / "schema.yaml").read_text())
                    schema["steward"] = "health-data-office"
                    (cand / "schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
                rel = register_candidate(self.paths, dataset, cand, f"m-{run}")
                approve(self.paths, rel.candidate_id, "alice")
                publish_approved(self.paths)
        self.token, _ = create_token(self.paths, "health-authority")
        add_grant(self.paths, "health-authority", SECRET_ID, steward="alice")
        self.other, _ = create_token(self.paths, "roads-authority")   # no grant
        self.app = create_app(self.paths)
        index = json.loads((self.paths.published / "index.json").read_text())["dataset"]
        self.index = {(e["id"], e["version"]): e for e in index}

    def ckan(self, token: str | None = None) -> ckanapi.RemoteCKAN:
        """A ckanapi client over the app (GET only: the portal is read-only)."""
        session = TestClient(self.app)
        if token:
            session.headers["Authorization"] = f"Bearer {token}"
        return ckanapi.RemoteCKAN(BASE, get_only=True, session=session)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return Site(tmp_path_factory.mktemp("ckan"))


def test_package_list_and_show_map_the_current_open_release(site: Site) -> None:
    ckan = site.ckan()
    assert ckan.action.package_list() == ["taxi_trips"]
    pkg = ckan.action.package_show(id="taxi_trips")
    entry = site.index[("taxi_trips", "v2")]
    assert (pkg["name"], pkg["title"], pkg["version"]) == ("taxi_trips", entry["title"], "v2")
    assert pkg["notes"] == entry["description"] and pkg["notes"]
    assert (pkg["license_id"], pkg["license_url"]) == (
        "cc-by", "https://creativecommons.org/licenses/by/4.0/")
    assert pkg["isopen"] is True and pkg["private"] is False
    assert pkg["organization"]["name"] == "transport-data-office"
    assert pkg["organization"]["title"] == "Transport data office"
    assert pkg["metadata_modified"] == entry["issued"]
    assert pkg["metadata_created"] == site.index[("taxi_trips", "v1")]["issued"]
    assert [t["name"] for t in pkg["tags"]] == ["open", "table", "synthetic"]
    extras = {e["key"]: e["value"] for e in pkg["extras"]}
    assert extras["epsilon"] == str(entry["epsilon"]) and extras["delta"] == str(entry["delta"])
    assert extras["dcat_metadata"] == f"{BASE}/api/datasets/taxi_trips/dcat"
    # The package is found by its id as well as its name.
    assert ckan.action.package_show(id=pkg["id"]) == pkg
    # One resource per downloadable file, absolute URL, size and SHA-256 as served.
    assert [r["name"] for r in pkg["resources"]] == [f["name"] for f in entry["files"]]
    assert pkg["num_resources"] == len(entry["files"])
    csv = next(r for r in pkg["resources"] if r["name"] == "synthetic.csv")
    assert csv["url"] == f"{BASE}/datasets/taxi_trips/v2/files/synthetic.csv"
    assert (csv["format"], csv["mimetype"], csv["hash_algorithm"]) == ("CSV", "text/csv",
                                                                     "sha256")
    body = TestClient(site.app).get(csv["url"]).content
    assert csv["size"] == len(body) and csv["hash"] == hashlib.sha256(body).hexdigest()
    assert {r["format"] for r in pkg["resources"]} >= {"CSV", "PARQUET", "PNG", "JSON"}


def test_resource_show_and_organization_list(site: Site) -> None:
    ckan = site.ckan()
    pkg = ckan.action.package_show(id="taxi_trips")
    for res in pkg["resources"]:
        assert ckan.action.resource_show(id=res["id"]) == res
    assert ckan.action.organization_list() == ["transport-data-office"]
    [org] = ckan.action.organization_list(all_fields=True)
    assert org == pkg["organization"]
    assert ckan.action.organization_show(id="transport-data-office") == org


def test_package_search_counts_and_pages(site: Site) -> None:
    anon, granted = site.ckan(), site.ckan(site.token)
    everything = granted.action.package_search(q="*:*", rows=10)
    assert everything["count"] == 2
    assert [p["name"] for p in everything["results"]] == [SECRET_ID, "taxi_trips"]
    page = granted.action.package_search(rows=1, start=1)
    assert page["count"] == 2 and [p["name"] for p in page["results"]] == ["taxi_trips"]
    assert granted.action.package_search(rows=1, start=2)["results"] == []
    taxi = anon.action.package_search(q="taxi")
    assert taxi["count"] == 1 and taxi["results"][0]["name"] == "taxi_trips"
    assert anon.action.package_search(q="zzz") == {
        "count": 0, "results": [], "sort": "name asc", "facets": {}, "search_facets": {}}
    assert [p["name"] for p in granted.action.package_search(
        fq="license_id:other-closed")["results"]] == [SECRET_ID]
    assert granted.action.package_search(fq="organization:health-data-office")["count"] == 1
    assert [p["name"] for p in granted.action.package_search(
        fq="-organization:health-data-office +dataset_type:dataset")["results"]] == [
        "taxi_trips"]
    with pytest.raises(ckanapi.ValidationError):
        anon.action.package_search(rows=-1)
    with pytest.raises(ckanapi.SearchQueryError):
        anon.action.package_search(fq="metadata_modified:[* TO NOW]")


def test_package_search_sorts_and_counts_facets_as_ckan_does(site: Site) -> None:
    anon, granted = site.ckan(), site.ckan(site.token)

    def names(**params: str) -> list[str]:
        return [p["name"] for p in granted.action.package_search(**params)["results"]]

    assert names(sort="name desc") == ["taxi_trips", SECRET_ID]
    assert names(sort="title_string desc") == ["taxi_trips", SECRET_ID]   # Taxi > Patient
    assert names(sort="score desc, metadata_modified desc") == [SECRET_ID, "taxi_trips"]
    assert names(sort="name desc", rows="1", start="1") == [SECRET_ID]
    assert granted.action.package_search(sort="name desc")["sort"] == "name desc"
    fields = json.dumps(["organization", "license_id", "tags"])
    found = granted.action.package_search(**{"facet.field": fields, "rows": "1"})
    assert found["facets"] == {
        "organization": {"health-data-office": 1, "transport-data-office": 1},
        "license_id": {"cc-by": 1, "other-closed": 1},
        "tags": {"synthetic": 2, "table": 2, "confidential": 1, "open": 1}}
    assert found["search_facets"]["organization"] == {"title": "organization", "items": [
        {"name": "health-data-office", "display_name": "Health data office", "count": 1},
        {"name": "transport-data-office", "display_name": "Transport data office",
         "count": 1}]}
    assert found["search_facets"]["license_id"]["items"][0] == {
        "name": "cc-by", "display_name": "Creative Commons Attribution 4.0", "count": 1}
    # The public's facets count the public's packages only (nothing about the other).
    assert anon.action.package_search(**{"facet.field": fields})["facets"] == {
        "organization": {"transport-data-office": 1}, "license_id": {"cc-by": 1},
        "tags": {"open": 1, "synthetic": 1, "table": 1}}
    limited = granted.action.package_search(**{"facet.field": '["tags"]', "facet.limit": "1",
                                               "facet.mincount": "2"})
    assert limited["facets"] == {"tags": {"synthetic": 2}}
    with pytest.raises(ckanapi.ValidationError):
        anon.action.package_search(**{"facet.field": '["nope"]'})
    with pytest.raises(ckanapi.SearchQueryError):
        anon.action.package_search(sort="nope asc")


def test_package_search_takes_a_harvesters_changed_since_query(site: Site) -> None:
    """ckanext-harvest asks for ``metadata_modified:[<last harvest> TO *]``."""
    ckan = site.ckan()
    issued = datetime.fromisoformat(site.index[("taxi_trips", "v2")]["issued"])
    before = (issued - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    after = (issued + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    changed = ckan.action.package_search(fq=f"metadata_modified:[{before} TO *]", rows=1000)
    assert [p["name"] for p in changed["results"]] == ["taxi_trips"]
    assert ckan.action.package_search(fq=f"metadata_modified:[{after} TO *]")["count"] == 0
    assert ckan.action.package_search(fq=f"metadata_modified:[* TO {after}]")["count"] == 1


def test_confidential_package_is_not_found_without_a_grant(site: Site) -> None:
    granted = site.ckan(site.token)
    secret = granted.action.package_show(id=SECRET_ID)
    assert secret["private"] is True and secret["license_id"] == "other-closed"
    assert secret["organization"]["name"] == "health-data-office"
    assert granted.action.package_list() == [SECRET_ID, "taxi_trips"]
    assert granted.action.organization_list() == ["health-data-office",
                                                  "transport-data-office"]
    res_id = secret["resources"][0]["id"]
    for client in (site.ckan(), site.ckan(site.other), site.ckan("not-a-token")):
        for action, ident in (("package_show", SECRET_ID), ("package_show", secret["id"]),
                              ("resource_show", res_id),
                              ("organization_show", "health-data-office")):
            with pytest.raises(ckanapi.NotFound):
                client.call_action(action, {"id": ident})
        assert client.action.package_list() == ["taxi_trips"]
        assert client.action.organization_list() == ["transport-data-office"]
        assert client.action.package_search(q=SECRET_ID)["count"] == 0
    # Invisible and unknown: the same status and the same bytes.
    raw = TestClient(site.app)
    hidden = raw.get("/api/3/action/package_show", params={"id": SECRET_ID})
    unknown = raw.get("/api/3/action/package_show", params={"id": "no_such_dataset"})
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.content == unknown.content
    assert unknown.json() == {
        "help": f"{BASE}/api/3/action/help_show?name=package_show", "success": False,
        "error": {"__type": "Not Found Error", "message": "Not found"}}


def test_envelope_missing_id_and_unknown_action(site: Site) -> None:
    raw = TestClient(site.app)
    ok = raw.get("/api/3/action/package_list").json()
    assert ok == {"help": f"{BASE}/api/3/action/help_show?name=package_list",
                  "success": True, "result": ["taxi_trips"]}
    missing = raw.get("/api/3/action/package_show")
    assert missing.status_code == 409
    assert missing.json()["error"] == {"__type": "Validation Error",
                                       "message": "id: Missing value",
                                       "id": ["Missing value"]}
    # Nothing of the real tables in any answer (public and DP fields only).
    everything = raw.get("/api/3/action/package_search",
                         headers={"Authorization": f"Bearer {site.token}"}).text
    assert SECRET_ID in everything
    assert CANARY not in everything and str(CANARY_NUMBER) not in everything
    unknown = raw.get("/api/3/action/package_create")
    assert unknown.status_code == 400 and unknown.json()["success"] is False
    # The portal stays read-only: a POST is refused before any action runs.
    assert raw.post("/api/3/action/package_list", json={}).status_code == 405


@pytest.fixture(scope="module")
def server(site: Site) -> Iterator[str]:
    """The portal under uvicorn on a free local port."""
    with served(site.app) as base:
        yield base


@pytest.mark.integration
def test_ckanapi_over_http_reads_the_portal(site: Site, server: str) -> None:
    with ckanapi.RemoteCKAN(server, get_only=True) as ckan:
        assert ckan.action.package_list() == ["taxi_trips"]
        pkg = ckan.action.package_show(id="taxi_trips")
        csv = next(r for r in pkg["resources"] if r["name"] == "synthetic.csv")
        assert csv["url"] == f"{server}/datasets/taxi_trips/v2/files/synthetic.csv"
        body = requests.get(csv["url"], timeout=10).content
        assert hashlib.sha256(body).hexdigest() == csv["hash"]
        assert ckan.action.package_search(q="taxi")["count"] == 1
        with pytest.raises(ckanapi.NotFound):
            ckan.action.package_show(id=SECRET_ID)
    with ckanapi.RemoteCKAN(server, get_only=True,
                            apikey=None) as granted:
        granted.session = requests.Session()
        granted.session.headers["Authorization"] = f"Bearer {site.token}"
        assert granted.action.package_show(id=SECRET_ID)["name"] == SECRET_ID
