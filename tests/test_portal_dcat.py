"""The portal's DCAT-AP 3 JSON-LD, expanded with ``pyld`` against its inline context.

The document loader refuses every URL, so the expansion proves the context is complete
in the document itself (nothing is fetched) and that each term lands on its DCAT, DCTERMS,
FOAF or SPDX IRI.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from governance_fixtures import CANARY, CANARY_NUMBER, make_candidate, plant_real_table
from pyld import jsonld

from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.grants import add_grant
from pulsesynth.governance.lifecycle import approve
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.governance.tokens import create_token
from pulsesynth.paths import Paths
from pulsesynth.portal import create_app

SECRET_ID = "patient_tests"
BASE = "http://testserver"
DCAT = "http://www.w3.org/ns/dcat#"
DCT = "http://purl.org/dc/terms/"
SPDX = "http://spdx.org/rdf/terms#"
XSD = "http://www.w3.org/2001/XMLSchema#"
FOAF = "http://xmlns.com/foaf/0.1/"


class RemoteFetch(AssertionError):
    """pyld asked for a remote document: the context was not self-contained."""


def refuse_remote(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    raise RemoteFetch(url)


def expand(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The expanded form, with no document fetched."""
    return jsonld.expand(doc, {"documentLoader": refuse_remote})


def nodes(expanded: Any, type_iri: str) -> list[dict[str, Any]]:
    """Every node object of ``type_iri`` anywhere in an expanded document."""
    out = []
    if isinstance(expanded, list):
        for item in expanded:
            out += nodes(item, type_iri)
    elif isinstance(expanded, dict):
        if type_iri in expanded.get("@type", []):
            out.append(expanded)
        for value in expanded.values():
            out += nodes(value, type_iri)
    return out


def one(node: dict[str, Any], iri: str) -> Any:
    """The single value of property ``iri``: ``@id`` or ``@value`` (with its type)."""
    [value] = node[iri]
    if "@id" in value and len(value) == 1:
        return value["@id"]
    return (value.get("@value"), value.get("@type", value.get("@language")))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Paths, TestClient, str]:
    paths = Paths(tmp_path_factory.mktemp("dcat"))
    for dataset, runs in (("taxi_trips", [("r1", "open"), ("r2", "open")]),
                          (SECRET_ID, [("r1", "confidential")])):
        snapshot = plant_real_table(paths, dataset)
        for i, (run, label) in enumerate(runs):
            cand = make_candidate(paths, dataset, run, label=label, seed=i,
                                  snapshot_id=snapshot)
            rel = register_candidate(paths, dataset, cand, f"m-{run}")
            approve(paths, rel.candidate_id, "alice")
            publish_approved(paths)
    token, _ = create_token(paths, "health-authority")
    add_grant(paths, "health-authority", SECRET_ID, steward="alice")
    return paths, TestClient(create_app(paths)), token


def test_dataset_document_expands_to_dcat_ap_with_absolute_download_urls(site) -> None:
    paths, client, _ = site
    r = client.get("/api/datasets/taxi_trips/dcat")
    assert r.status_code == 200 and r.headers["content-type"] == "application/ld+json"
    doc = r.json()
    assert isinstance(doc["@context"], dict)                  # inline, nothing to fetch
    [ds] = nodes(expand(doc), DCAT + "Dataset")
    index = {(e["id"], e["version"]): e for e in json.loads(
        (paths.published / "index.json").read_text())["dataset"]}
    entry = index[("taxi_trips", "v2")]
    assert ds["@id"] == f"{BASE}/datasets/taxi_trips#dataset"
    assert one(ds, DCAT + "landingPage") == f"{BASE}/datasets/taxi_trips"
    assert one(ds, DCT + "title") == (entry["title"], "en")
    assert one(ds, DCT + "description") == (entry["description"], "en")
    assert one(ds, DCT + "identifier") == ("taxi_trips/v2", None)
    assert one(ds, DCAT + "version") == ("v2", None)
    assert one(ds, DCT + "license") == (
        "http://publications.europa.eu/resource/authority/licence/CC_BY_4_0")
    assert one(ds, DCT + "accessRights").endswith("/access-right/PUBLIC")
    assert one(ds, DCT + "modified") == (entry["issued"], XSD + "dateTime")
    assert one(ds, DCT + "issued") == (index[("taxi_trips", "v1")]["issued"],
                                       XSD + "dateTime")
    [publisher] = ds[DCT + "publisher"]
    assert publisher["@type"] == [FOAF + "Agent"]
    assert one(publisher, FOAF + "name") == ("Transport data office", None)
    assert [v["@id"] for v in ds[DCAT + "hasVersion"]] == [
        f"{BASE}/datasets/taxi_trips/v1", f"{BASE}/datasets/taxi_trips/v2"]
    dists = ds[DCAT + "distribution"]
    assert len(dists) == len(entry["files"])
    for dist, f in zip(dists, entry["files"], strict=True):
        url = f"{BASE}{f['downloadURL']}"
        assert dist["@type"] == [DCAT + "Distribution"]
        assert dist["@id"] == f"{BASE}/datasets/taxi_trips/v2#distribution-{f['name']}"
        assert one(dist, DCAT + "accessURL") == f"{BASE}/datasets/taxi_trips/v2"
        assert one(dist, DCAT + "downloadURL") == url
        assert one(dist, DCAT + "mediaType") == (
            "http://www.iana.org/assignments/media-types/" + f["mediaType"])
        assert one(dist, DCAT + "byteSize") == (f["bytes"],
                                                XSD + "nonNegativeInteger")
        [checksum] = dist[SPDX + "checksum"]
        assert one(checksum, SPDX + "algorithm") == SPDX + "checksumAlgorithm_sha256"
        assert one(checksum, SPDX + "checksumValue") == (f["sha256"], XSD + "hexBinary")
        # The URL serves exactly the bytes the checksum names.
        assert hashlib.sha256(client.get(url).content).hexdigest() == f["sha256"]


def test_catalog_lists_what_the_caller_may_see(site) -> None:
    _, client, token = site
    anon = expand(client.get("/catalog.jsonld").json())
    [catalog] = nodes(anon, DCAT + "Catalog")
    assert catalog["@id"] == f"{BASE}/catalog.jsonld"
    assert [d["@id"] for d in catalog[DCAT + "dataset"]] == [
        f"{BASE}/datasets/taxi_trips#dataset"]
    granted = client.get("/catalog.jsonld", headers={"Authorization": f"Bearer {token}"})
    datasets = nodes(expand(granted.json()), DCAT + "Dataset")
    assert [d["@id"] for d in datasets] == [f"{BASE}/datasets/{SECRET_ID}#dataset",
                                            f"{BASE}/datasets/taxi_trips#dataset"]
    assert CANARY not in granted.text and str(CANARY_NUMBER) not in granted.text
    secret = datasets[0]
    assert one(secret, DCT + "accessRights").endswith("/access-right/RESTRICTED")
    assert one(secret, DCT + "license") == f"{BASE}/datasets/{SECRET_ID}/v1#terms"
    for ds in datasets:
        for dist in ds[DCAT + "distribution"]:
            assert one(dist, DCAT + "downloadURL").startswith(f"{BASE}/datasets/")


def test_confidential_dataset_document_is_404_like_an_unknown_id(site) -> None:
    _, client, token = site
    hidden = client.get(f"/api/datasets/{SECRET_ID}/dcat")
    unknown = client.get("/api/datasets/no_such_dataset/dcat")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.content == unknown.content
    assert SECRET_ID not in client.get("/catalog.jsonld").text
    granted = client.get(f"/api/datasets/{SECRET_ID}/dcat",
                         headers={"Authorization": f"Bearer {token}"})
    assert granted.status_code == 200


def test_the_loader_really_refuses_remote_contexts() -> None:
    """The check above is meaningful: a remote context would fail expansion."""
    with pytest.raises(jsonld.JsonLdError):
        expand({"@context": "https://www.w3.org/ns/dcat.jsonld", "title": "x"})


def test_absolute_urls_follow_the_request_host(site) -> None:
    _, client, _ = site
    doc = client.get("/api/datasets/taxi_trips/dcat",
                     headers={"host": "data.example.org"}).json()
    [dist] = [d for d in doc["distribution"] if d["title"] == "synthetic.csv"]
    assert dist["downloadURL"] == (
        "http://data.example.org/datasets/taxi_trips/v2/files/synthetic.csv")
    assert Path(dist["downloadURL"]).name == "synthetic.csv"
