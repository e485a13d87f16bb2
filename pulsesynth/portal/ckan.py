"""A read-only, CKAN-compatible Action API over the portal's catalogue.

CKAN harvesters and clients (``ckanapi``, ckanext-harvest's CKAN harvester, Dubai Pulse's
own CKAN) read the portal through ``/api/3/action/<action>`` (and ``/api/action/<action>``,
the path ``ckanapi`` calls): ``package_list``, ``package_show``, ``package_search``,
``resource_show``, ``organization_list`` and ``organization_show``, with CKAN's envelope
``{"help", "success", "result"}`` or ``{"help", "success": false, "error": {"__type", ...}}``.

The portal answers GET only (its :class:`~pulsesynth.portal.app.Guard`), so a ``ckanapi``
client is made with ``RemoteCKAN(url, get_only=True)``. What a caller sees is decided by the
portal's own access functions (``_visible``/``_versions`` with the caller's grants): open
releases for everyone, a confidential one only for an entity granted its dataset, and an
id the caller may not see answers exactly like an unknown one (404 ``Not Found Error``,
same bytes). Organisations are listed only when a visible package names them.

Mapping: a catalogue id is a package (name = the id; id = a UUID derived from it) at its
current visible version; each of that version's downloadable files is a resource with an
absolute URL, its format, size and SHA-256; the organisation is the steward's office from
the declared schema; tags are the label and the kind; ε and δ are extras.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as FastAPIPath
from fastapi.responses import JSONResponse

from pulsesynth.labels import OPEN
from pulsesynth.portal.app import _granted, _latest, _portal, _visible
from pulsesynth.portal.dcat import base_url, publisher, publisher_title, safe_card
from pulsesynth.portal.licences import licence
from pulsesynth.settings import ContactSettings

#: Namespace of the portal's derived UUIDs (package, resource and organisation ids).
NAMESPACE = uuid.UUID("4d6f1e52-7c1b-5d8e-9a0f-5055f1e5e7a1")
#: CKAN's own bounds on ``package_search``'s ``rows``.
MAX_ROWS = 1000
DEFAULT_ROWS = 10
FORMATS = {"text/csv": "CSV", "application/vnd.apache.parquet": "PARQUET",
           "image/png": "PNG", "text/markdown": "Markdown", "application/json": "JSON"}
_ACTION = re.compile(r"^[a-z_]{1,64}$")


class ActionError(Exception):
    """A CKAN action error: HTTP status, CKAN ``__type`` and message (never a private value)."""

    def __init__(self, status: int, kind: str, message: str,
                 fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.fields = status, kind, message, fields or {}


def _not_found() -> ActionError:
    # One answer for an unknown id and an invisible one: the id is not echoed.
    return ActionError(404, "Not Found Error", "Not found")


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def _help(request: Request, action: str) -> str:
    return f"{base_url(request)}/api/3/action/help_show?name={action}"


# --- the mapping ----------------------------------------------------------------------------


def organization(name: str) -> dict[str, Any]:
    """The CKAN organisation of a steward's office."""
    return {"id": _uid("organization", name), "name": name, "title": publisher_title(name),
            "display_name": publisher_title(name), "type": "organization",
            "is_organization": True, "state": "active", "approval_status": "approved",
            "description": f"Data steward of the city: {publisher_title(name)}.",
            "image_url": ""}


def resource(base: str, package_id: str, entry: dict[str, Any], f: dict[str, Any],
             position: int) -> dict[str, Any]:
    """One downloadable file of ``entry`` as a CKAN resource (absolute URL)."""
    media = f.get("mediaType") or "application/octet-stream"
    return {
        "id": _uid("resource", entry["id"], entry["version"], f["name"]),
        "package_id": package_id, "name": f["name"], "description": "",
        "url": base + f["downloadURL"], "url_type": None, "format": FORMATS.get(media, ""),
        "mimetype": media, "size": int(f["bytes"]), "hash": f["sha256"],
        "hash_algorithm": "sha256", "created": entry.get("issued"),
        "last_modified": entry.get("issued"), "metadata_modified": entry.get("issued"),
        "position": position, "state": "active",
    }


def package(base: str, versions: list[dict[str, Any]], entry: dict[str, Any],
            card: dict[str, Any], contact: ContactSettings | None = None) -> dict[str, Any]:
    """One catalogue id at ``entry``'s version as a CKAN package (``maintainer_email`` and
    ``author_email``: the publishing office's address from ``contact``, configuration)."""
    pkg_id = _uid("package", entry["id"])
    org = organization(publisher(card))
    lic = licence(entry)
    landing = f"{base}/datasets/{entry['id']}"
    tags = [{"name": t, "display_name": t, "state": "active", "vocabulary_id": None}
            for t in (entry["label"], entry["kind"], "synthetic")]
    extras = {"epsilon": entry.get("epsilon"), "delta": entry.get("delta"),
              "privacy_label": entry["label"], "label_text": entry.get("label_text"),
              "identifier": entry["identifier"], "kind": entry["kind"],
              "dcat_metadata": f"{base}/api/datasets/{entry['id']}/dcat"}
    resources = [resource(base, pkg_id, entry, f, i)
                 for i, f in enumerate(entry.get("files", []))]
    return {
        "id": pkg_id, "name": entry["id"], "title": entry.get("title") or entry["id"],
        "notes": entry.get("description") or "", "type": "dataset", "state": "active",
        "private": entry["label"] != OPEN, "isopen": entry["label"] == OPEN,
        "license_id": lic.ckan_id, "license_title": lic.title,
        "license_url": lic.url or f"{base}/datasets/{entry['id']}/{entry['version']}#terms",
        "organization": org, "owner_org": org["id"], "author": org["title"],
        "maintainer": org["title"], "url": landing, "version": entry["version"],
        "maintainer_email": (contact or ContactSettings()).email(org["name"]),
        "author_email": (contact or ContactSettings()).email(org["name"]),
        "metadata_created": min((v.get("issued") or "") for v in versions) or None,
        "metadata_modified": entry.get("issued"),
        "tags": tags, "num_tags": len(tags), "groups": [],
        "extras": [{"key": k, "value": "" if v is None else str(v)} for k, v in extras.items()],
        "resources": resources, "num_resources": len(resources),
        "relationships_as_object": [], "relationships_as_subject": [],
    }


# --- the actions ----------------------------------------------------------------------------


def _packages(request: Request) -> list[dict[str, Any]]:
    """Every catalogue id the caller may see, as packages, by name."""

    paths = _portal(request).paths
    visible = _visible(paths, _granted(request, paths))
    base = base_url(request)
    out = []
    for entry in _latest(visible):
        versions = [e for e in visible if e["id"] == entry["id"]]
        out.append(package(base, versions, entry, safe_card(paths, entry),
                           _portal(request).contact))
    return out


def _int_param(request: Request, name: str, default: int, top: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ActionError(409, "Validation Error", f"{name}: Invalid integer",
                          {name: ["Invalid integer"]}) from None
    if not 0 <= value <= top:
        raise ActionError(409, "Validation Error", f"{name}: out of range",
                          {name: [f"Must be between 0 and {top}"]})
    return value


def _id_param(request: Request) -> str:
    value = request.query_params.get("id") or request.query_params.get("name_or_id")
    if not value:
        raise ActionError(409, "Validation Error", "id: Missing value", {"id": ["Missing value"]})
    return value


def package_list(request: Request) -> list[str]:
    """Names of every visible package (``limit``/``offset`` as CKAN)."""
    names = sorted(p["name"] for p in _packages(request))
    offset = _int_param(request, "offset", 0, 1 << 31)
    limit = _int_param(request, "limit", len(names), 1 << 31)
    return names[offset:offset + limit]


def package_show(request: Request) -> dict[str, Any]:
    """One visible package by name or id."""
    wanted = _id_param(request)
    for p in _packages(request):
        if wanted in (p["name"], p["id"]):
            return p
    raise _not_found()


def package_search(request: Request) -> dict[str, Any]:
    """``q`` (words matched in name, title and notes; ``*:*`` is everything), ``fq``
    (``field:value`` terms on organization, tags, license_id, name, res_format), ``sort``
    (``name``, ``title_string``, ``metadata_modified`` or ``metadata_created``, each
    ``asc``/``desc``, comma-separated; CKAN's ``score desc`` ranks by name here), ``rows``,
    ``start``, and ``facet.field`` (a JSON list of the ``fq`` fields) with ``facet.limit``
    and ``facet.mincount``, as CKAN answers them: ``facets`` (value → count) and
    ``search_facets`` (items with display names). ``count`` is the number of matches
    before paging; facets count every match, not just the page."""
    q = (request.query_params.get("q") or "").strip()
    rows = _int_param(request, "rows", DEFAULT_ROWS, MAX_ROWS)
    start = _int_param(request, "start", 0, 1 << 31)
    sort = (request.query_params.get("sort") or DEFAULT_SORT).strip()
    order = _sort_keys(sort)
    fields = _facet_fields(request.query_params.get("facet.field"))
    limit = _int_param(request, "facet.limit", 50, 1 << 31)
    mincount = _int_param(request, "facet.mincount", 1, 1 << 31)
    found = _packages(request)
    if q and q != "*:*":
        words = q.lower().split()
        found = [p for p in found if all(
            w in f"{p['name']} {p['title']} {p['notes']}".lower() for w in words)]
    for term in _fq_terms(request.query_params.get("fq") or ""):
        found = [p for p in found if term(p)]
    # Stable sorts, last key first, so the first key decides and later ones break ties.
    for key, reverse in reversed(order):
        found = sorted(found, key=key, reverse=reverse)
    facets, search_facets = _facets(found, fields, limit, mincount)
    return {"count": len(found), "results": found[start:start + rows], "sort": sort,
            "facets": facets, "search_facets": search_facets}


#: The sort ``package_search`` applies when none is asked for.
DEFAULT_SORT = "name asc"
#: Sortable fields: CKAN's name → the package's value.
_SORT_FIELDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "name": lambda p: p["name"], "score": lambda p: p["name"],
    "title_string": lambda p: str(p["title"]).lower(),
    "metadata_modified": lambda p: p.get("metadata_modified") or "",
    "metadata_created": lambda p: p.get("metadata_created") or "",
}
#: Facet display names: the field's value → what a reader sees (CKAN's ``display_name``).
_FACET_DISPLAY: dict[str, Callable[[dict[str, Any], str], str]] = {
    "organization": lambda p, v: p["organization"]["title"],
    "license_id": lambda p, v: p["license_title"],
}


def _sort_keys(sort: str) -> list[tuple[Callable[[dict[str, Any]], str], bool]]:
    """``field asc|desc[, ...]`` as (key, reverse) pairs; anything else is a Search Query
    Error naming what is supported."""
    out = []
    for part in sort.split(","):
        words = part.split()
        if not words or len(words) > 2 or words[0] not in _SORT_FIELDS or (
                len(words) == 2 and words[1] not in ("asc", "desc")):
            raise ActionError(409, "Search Query Error", "Search Query is invalid: sort by "
                              f"{', '.join(_SORT_FIELDS)}, each asc or desc")
        # CKAN ranks by score, highest first; here score is the name, A first.
        reverse = len(words) == 2 and words[1] == "desc" and words[0] != "score"
        out.append((_SORT_FIELDS[words[0]], reverse))
    return out


def _facet_fields(raw: str | None) -> list[str]:
    """``facet.field``: a JSON list of field names (CKAN's form), each an ``fq`` field."""
    if not raw:
        return []
    try:
        fields = json.loads(raw)
    except json.JSONDecodeError:
        fields = None
    if not isinstance(fields, list) or not all(f in _FQ_FIELDS for f in fields):
        raise ActionError(409, "Validation Error", "facet.field: a JSON list of "
                          f"{', '.join(_FQ_FIELDS)}", {"facet.field": ["Invalid facet"]})
    return [str(f) for f in fields]


def _facets(found: list[dict[str, Any]], fields: list[str], limit: int,
            mincount: int) -> tuple[dict[str, dict[str, int]], dict[str, Any]]:
    """Value counts of each facet field over ``found``, most common first (ties by
    value), at most ``limit`` values of at least ``mincount`` packages each."""
    facets: dict[str, dict[str, int]] = {}
    search: dict[str, Any] = {}
    for field in fields:
        counts: dict[str, int] = {}
        shown: dict[str, str] = {}
        for p in found:
            for value in dict.fromkeys(_FQ_FIELDS[field](p)):   # a package counts once
                counts[value] = counts.get(value, 0) + 1
                shown[value] = _FACET_DISPLAY.get(field, lambda _p, v: v)(p, value)
        ranked = sorted((v for v in counts if counts[v] >= mincount),
                        key=lambda v: (-counts[v], v))[:limit]
        facets[field] = {v: counts[v] for v in ranked}
        search[field] = {"title": field, "items": [
            {"name": v, "display_name": shown[v], "count": counts[v]} for v in ranked]}
    return facets, search


#: One ``fq`` term: optional ``+``/``-``, a field, and a quoted value, a ``[A TO B]`` range
#: or a bare word.
_FQ_TERM = re.compile(r'([+-]?)([a-z_]+):("[^"]*"|\[[^\]]*\]|[^\s"\[]+)(?=\s|$)')
_FQ_FIELDS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "organization": lambda p: [p["organization"]["name"]],
    "tags": lambda p: [t["name"] for t in p["tags"]],
    "license_id": lambda p: [p["license_id"]],
    "name": lambda p: [p["name"]],
    "res_format": lambda p: [r["format"] for r in p["resources"]],
    "dataset_type": lambda p: [p["type"]],
}
#: Range fields (``metadata_modified:[2026-01-01T00:00:00Z TO *]``, as CKAN harvesters send).
_FQ_RANGES = ("metadata_modified", "metadata_created")


def _fq_terms(fq: str) -> list[Callable[[dict[str, Any]], bool]]:
    """Filters for the supported ``fq`` terms (``field:value``, ``-field:value`` and
    ``metadata_modified:[FROM TO TO]``); anything else is a Search Query Error, which a
    CKAN harvester answers by harvesting everything."""
    terms: list[Callable[[dict[str, Any]], bool]] = []
    matches = list(_FQ_TERM.finditer(fq))
    if _FQ_TERM.sub("", fq).strip():
        raise _bad_query()
    for m in matches:
        sign, field, raw = m.groups()
        if field in _FQ_RANGES and raw.startswith("["):
            term = _fq_range(field, raw)
        elif field in _FQ_FIELDS and not raw.startswith("["):
            term = _fq_term(_FQ_FIELDS[field], raw.strip('"'))
        else:
            raise _bad_query()
        terms.append(_negate(term) if sign == "-" else term)
    return terms


def _bad_query() -> ActionError:
    return ActionError(409, "Search Query Error", "Search Query is invalid: supported are "
                       f"field:value terms on {', '.join(_FQ_FIELDS)} and [FROM TO TO] "
                       f"ranges on {', '.join(_FQ_RANGES)}")


def _fq_term(values: Callable[[dict[str, Any]], list[str]],
             value: str) -> Callable[[dict[str, Any]], bool]:
    return lambda p: value in values(p)


def _negate(term: Callable[[dict[str, Any]], bool]) -> Callable[[dict[str, Any]], bool]:
    return lambda p: not term(p)


def _fq_range(field: str, raw: str) -> Callable[[dict[str, Any]], bool]:
    low_high = raw[1:-1].split(" TO ")
    if len(low_high) != 2:
        raise _bad_query()
    low, high = (_when(b.strip()) for b in low_high)

    def inside(p: dict[str, Any]) -> bool:
        at = _when(p.get(field) or "")
        return at is not None and (low is None or at >= low) and (high is None or at <= high)
    return inside


def _when(text: str) -> datetime | None:
    """A timestamp of an ``fq`` range or a package (``*``: open end, naive = UTC)."""
    if text in ("*", ""):
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise _bad_query() from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def resource_show(request: Request) -> dict[str, Any]:
    """One resource of a visible package's current version, by id."""
    wanted = _id_param(request)
    for p in _packages(request):
        for r in p["resources"]:
            if r["id"] == wanted:
                return r
    raise _not_found()


def organization_list(request: Request) -> list[Any]:
    """The offices that publish a visible package (names, or dicts with ``all_fields``)."""
    orgs = {p["organization"]["name"]: p["organization"] for p in _packages(request)}
    if request.query_params.get("all_fields", "").lower() in ("true", "1"):
        return [orgs[n] for n in sorted(orgs)]
    return sorted(orgs)


def organization_show(request: Request) -> dict[str, Any]:
    """One office that publishes a visible package, by name or id."""
    wanted = _id_param(request)
    for p in _packages(request):
        if wanted in (p["organization"]["name"], p["organization"]["id"]):
            return p["organization"]
    raise _not_found()


ACTIONS: dict[str, Callable[[Request], Any]] = {
    "package_list": package_list, "package_show": package_show,
    "package_search": package_search, "resource_show": resource_show,
    "organization_list": organization_list, "organization_show": organization_show,
}

#: The CKAN routes (included by :func:`pulsesynth.portal.app.create_app`).
router = APIRouter(tags=["CKAN Action API"])


@router.get("/api/3/action/{action}")
@router.get("/api/action/{action}", include_in_schema=False)
def ckan_action(request: Request, action: str = FastAPIPath(
        description="package_list, package_show, package_search, resource_show, "
                    "organization_list or organization_show")) -> JSONResponse:
    """A read-only CKAN action (package_list, package_show?id=, package_search?q=&fq=
    &sort=&rows=&start=&facet.field=, resource_show?id=, organization_list,
    organization_show?id=)."""
    fn = ACTIONS.get(action) if _ACTION.match(action) else None
    help_url = _help(request, action if fn else "help_show")
    try:
        if fn is None:
            raise ActionError(400, "Bad Request", "Action name not known")
        return JSONResponse({"help": help_url, "success": True, "result": fn(request)})
    except ActionError as exc:
        error: dict[str, Any] = {"__type": exc.kind, "message": exc.message}
        error.update(exc.fields)
        return JSONResponse({"help": help_url, "success": False, "error": error},
                            status_code=exc.status)
    except HTTPException as exc:
        if exc.status_code != 404:
            raise
        # The portal's own 404 (no visible version): the same answer as an unknown id.
        err = _not_found()
        return JSONResponse({"help": help_url, "success": False,
                             "error": {"__type": err.kind, "message": err.message}},
                            status_code=404)
