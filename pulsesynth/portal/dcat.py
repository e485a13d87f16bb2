"""DCAT-AP 3 JSON-LD for the portal's catalogue and each dataset, and the catalogue facts
the machine-readable interfaces share (licence, publisher, absolute URLs).

``GET /api/datasets/{id}/dcat`` describes one catalogue id (its current visible version,
with every visible version linked) and ``GET /catalog.jsonld`` the whole catalogue the
caller may see. Access is the portal's own: entries come from
:func:`pulsesynth.portal.app._visible` / ``_versions`` with the caller's grants, so a
confidential release is in a document only for an entity granted its dataset, and an
invisible id answers exactly like an unknown one (404).

Each document carries its ``@context`` inline (no remote context to fetch), download
URLs are absolute (from the request's base URL), and every field is public (the declared
schema's steward, title, description, label, version, dates, ε and δ) or DP (the files and
their hashes) — the same fields the JSON API already serves.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from pulsesynth.labels import OPEN
from pulsesynth.paths import Paths
from pulsesynth.portal.app import (
    _card,
    _current,
    _granted,
    _latest,
    _portal,
    _versions,
    _visible,
)
from pulsesynth.portal.licences import OPEN_LICENCE, licence
from pulsesynth.settings import ContactSettings

#: The publisher used when a card names no steward (the city data office of the terms).
DEFAULT_PUBLISHER = "city-data-office"
JSONLD = "application/ld+json"

#: The JSON-LD context, inline: DCAT-AP 3's vocabularies with the ranges it requires.
CONTEXT: dict[str, Any] = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "spdx": "http://spdx.org/rdf/terms#",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "title": {"@id": "dct:title", "@language": "en"},
    "description": {"@id": "dct:description", "@language": "en"},
    "identifier": "dct:identifier",
    "issued": {"@id": "dct:issued", "@type": "xsd:dateTime"},
    "modified": {"@id": "dct:modified", "@type": "xsd:dateTime"},
    "publisher": {"@id": "dct:publisher", "@type": "@id"},
    "license": {"@id": "dct:license", "@type": "@id"},
    "accessRights": {"@id": "dct:accessRights", "@type": "@id"},
    "name": "foaf:name",
    "homepage": {"@id": "foaf:homepage", "@type": "@id"},
    "landingPage": {"@id": "dcat:landingPage", "@type": "@id"},
    "dataset": {"@id": "dcat:dataset", "@container": "@set"},
    "distribution": {"@id": "dcat:distribution", "@container": "@set"},
    "downloadURL": {"@id": "dcat:downloadURL", "@type": "@id"},
    "accessURL": {"@id": "dcat:accessURL", "@type": "@id"},
    "mediaType": {"@id": "dcat:mediaType", "@type": "@id"},
    "byteSize": {"@id": "dcat:byteSize", "@type": "xsd:nonNegativeInteger"},
    "checksum": "spdx:checksum",
    "algorithm": {"@id": "spdx:algorithm", "@type": "@id"},
    "checksumValue": {"@id": "spdx:checksumValue", "@type": "xsd:hexBinary"},
    "keyword": {"@id": "dcat:keyword", "@container": "@set"},
    "version": "dcat:version",
    "hasVersion": {"@id": "dcat:hasVersion", "@type": "@id", "@container": "@set"},
    "contactPoint": "dcat:contactPoint",
    "fn": "vcard:fn",
    "hasURL": {"@id": "vcard:hasURL", "@type": "@id"},
    "hasEmail": {"@id": "vcard:hasEmail", "@type": "@id"},
}
IANA = "http://www.iana.org/assignments/media-types/"
EU_ACCESS = "http://publications.europa.eu/resource/authority/access-right/"


def base_url(request: Request) -> str:
    """The portal's absolute base URL for this request, without a trailing slash."""
    return str(request.base_url).rstrip("/")


def publisher(card: dict[str, Any]) -> str:
    """The steward's office that publishes a release (the declared schema's ``steward``)."""
    steward = (card.get("schema") or {}).get("steward")
    return steward if isinstance(steward, str) and steward else DEFAULT_PUBLISHER


def publisher_title(name: str) -> str:
    """``transport-data-office`` → ``Transport data office``."""
    return name.replace("-", " ").replace("_", " ").capitalize()


def safe_card(paths: Paths, entry: dict[str, Any]) -> dict[str, Any]:
    """The entry's card, or ``{}`` when it cannot be served (one bad card must not take a
    whole catalogue listing down; the HTML page still answers 404 for it)."""

    try:
        return _card(paths, entry)
    except (HTTPException, ValueError):
        return {}


def _distribution(base: str, entry: dict[str, Any], f: dict[str, Any]) -> dict[str, Any]:
    url = base + f["downloadURL"]
    page = f"{base}/datasets/{entry['id']}/{entry['version']}"
    return {
        # The distribution is not the file (the file is its downloadURL): its own IRI.
        "@id": f"{page}#distribution-{f['name']}", "@type": "dcat:Distribution",
        "title": f["name"],
        "downloadURL": url, "accessURL": page,
        "mediaType": IANA + f.get("mediaType", "application/octet-stream"),
        "byteSize": int(f["bytes"]),
        "checksum": {"@type": "spdx:Checksum",
                     "algorithm": "spdx:checksumAlgorithm_sha256",
                     "checksumValue": f["sha256"]},
        "issued": entry.get("issued"), "license": _licence_iri(base, entry),
    }


def _licence_iri(base: str, entry: dict[str, Any]) -> str:
    lic = licence(entry)
    return lic.dcat or f"{base}/datasets/{entry['id']}/{entry['version']}#terms"


def _agent(base: str, name: str) -> dict[str, Any]:
    return {"@id": f"{base}/#publisher-{name}", "@type": "foaf:Agent",
            "name": publisher_title(name)}


def dataset_node(base: str, versions: list[dict[str, Any]], entry: dict[str, Any],
                 card: dict[str, Any], contact: ContactSettings | None = None) -> dict[str, Any]:
    """One ``dcat:Dataset``: the catalogue id at ``entry``'s version, its distributions and
    links to every version in ``versions`` (already filtered by the caller's access); its
    contact point carries the publishing office's address from ``contact`` (configuration)."""
    landing = f"{base}/datasets/{entry['id']}"
    org = publisher(card)
    node: dict[str, Any] = {
        "@id": f"{landing}#dataset", "@type": "dcat:Dataset",   # the page is its landingPage
        "identifier": entry["identifier"], "title": entry.get("title") or entry["id"],
        "description": entry.get("description") or "",
        "issued": min((v.get("issued") or "") for v in versions) or entry.get("issued"),
        "modified": entry.get("issued"), "version": entry["version"],
        "publisher": _agent(base, org),
        "contactPoint": {"@type": "vcard:Organization", "fn": publisher_title(org),
                         "hasEmail": "mailto:" + (contact or ContactSettings()).email(org),
                         "hasURL": landing},
        "license": _licence_iri(base, entry),
        "accessRights": EU_ACCESS + ("PUBLIC" if entry["label"] == OPEN else "RESTRICTED"),
        "landingPage": landing,
        "keyword": ["synthetic data", "differential privacy", entry["label"], entry["kind"]],
        "hasVersion": [f"{base}/datasets/{v['id']}/{v['version']}" for v in versions],
        "distribution": [_distribution(base, entry, f) for f in entry.get("files", [])],
    }
    return node


def dataset_document(request: Request, dataset: str) -> dict[str, Any]:
    """The DCAT-AP JSON-LD of one catalogue id as the caller may see it (404 otherwise)."""

    paths = _portal(request).paths
    versions = _versions(paths, _granted(request, paths), dataset)
    entry = _current(versions) or versions[-1]
    node = dataset_node(base_url(request), versions, entry, safe_card(paths, entry),
                        _portal(request).contact)
    return {"@context": CONTEXT, **node}


def catalog_document(request: Request) -> dict[str, Any]:
    """The DCAT-AP JSON-LD catalogue: every catalogue id the caller may see."""

    paths = _portal(request).paths
    visible = _visible(paths, _granted(request, paths))
    base = base_url(request)
    datasets = []
    for entry in _latest(visible):
        versions = sorted((e for e in visible if e["id"] == entry["id"]),
                          key=lambda e: int(e["version"][1:]))
        datasets.append(dataset_node(base, versions, entry, safe_card(paths, entry),
                                     _portal(request).contact))
    modified = max((d["modified"] for d in datasets if d.get("modified")), default=None)
    return {
        "@context": CONTEXT, "@id": f"{base}/catalog.jsonld", "@type": "dcat:Catalog",
        "title": "Pulse Synth — synthetic open portal",
        "description": "Differentially private synthetic copies of the city's shared tables.",
        "publisher": _agent(base, DEFAULT_PUBLISHER), "homepage": f"{base}/",
        "modified": modified, "license": OPEN_LICENCE.dcat, "dataset": datasets,
    }


#: The DCAT routes (included by :func:`pulsesynth.portal.app.create_app`).
router = APIRouter(tags=["DCAT-AP"])


@router.get("/api/datasets/{dataset}/dcat", response_class=JSONResponse,
            responses={200: {"content": {JSONLD: {}}}, 404: {"description": "unknown id"}})
def dcat_dataset(request: Request, dataset: str) -> JSONResponse:
    """One dataset as DCAT-AP 3 JSON-LD (inline ``@context``, absolute download URLs)."""
    return JSONResponse(_drop_none(dataset_document(request, dataset)), media_type=JSONLD)


@router.get("/catalog.jsonld", response_class=JSONResponse,
            responses={200: {"content": {JSONLD: {}}}})
def dcat_catalog(request: Request) -> JSONResponse:
    """The catalogue as DCAT-AP 3 JSON-LD: every dataset the caller may see."""
    return JSONResponse(_drop_none(catalog_document(request)), media_type=JSONLD)


def _drop_none(doc: Any) -> Any:
    """``doc`` without null values (JSON-LD drops them anyway; readers need not see them)."""
    if isinstance(doc, dict):
        return {k: _drop_none(v) for k, v in doc.items() if v is not None}
    if isinstance(doc, list):
        return [_drop_none(v) for v in doc]
    return doc
