"""The synthetic open portal: a read-only web app over ``published/`` and the token table.

Access by label and grant: ``open`` releases are public; a ``confidential`` release exists
only for a request of an entity a steward has granted the release's dataset
(:mod:`pulsesynth.governance.grants`). An API client sends its token on each request as
``Authorization: Bearer <token>``. A browser exchanges it once for a server-side session
(:mod:`pulsesynth.portal.signin`): the sign-in form POSTs it, the answer is a 303 to a
URL without it and a ``pulsesynth_session`` cookie (HttpOnly, SameSite=Strict, Secure over
HTTPS) holding a random session id the store keeps only hashed, with an 8-hour expiry;
``POST /signout`` ends it, and revoking the token ends it too. A token in a URL
(``?token=``) is never used: :class:`QueryTokenRefusal` answers it with a 303 to the
sign-in page, the token dropped. :func:`install_access_log_filter` keeps tokens and session
ids out of uvicorn's logs. To anyone else — no token, a revoked one, or an
entity without a grant on that dataset — a confidential release answers exactly like an
unknown id: 404, in pages, downloads, the API and the sample endpoint. Every download of a
non-open file is recorded in ``audit_log``.

Nothing outside ``published/`` is reachable: every file is looked up by name in the
release's file list from ``index.json`` (never by a client-built path), each path
component is checked not to be a symlink, and the bytes served must match the SHA-256 the
index records. Only GET and HEAD are answered (405 otherwise); every response carries
security headers.

Release kinds: a synthetic ``table`` (catalogue id ``<dataset>``), a DP ``classifier``
(``<dataset>_classifier``) and the DP generative ``model`` (``<dataset>_model``, never
open). Their pages render the data card or the model card. A published model can be
sampled by entities granted its dataset — ``GET /datasets/{id}/{version}/sample?n=N&seed=S
&format=csv|json``; this module checks access, and :mod:`pulsesynth.portal.sampling` does
the rest (bounds, per-entity rate limit, audit, model cache).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote_plus, urlencode

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pulsesynth.artifacts import SYNTHETIC_CSV, card_json_name, index_json
from pulsesynth.governance.db import log_event, open_db, transaction
from pulsesynth.governance.grants import granted_datasets
from pulsesynth.governance.sessions import SESSION_TTL, session_entity
from pulsesynth.governance.tokens import verify_token
from pulsesynth.labels import OPEN, RELEASE_LABELS
from pulsesynth.paths import Paths
from pulsesynth.portal.errors import error_page, install_error_pages, wants_html
from pulsesynth.portal.licences import licence
from pulsesynth.portal.sampling import SampleLimits, SampleService
from pulsesynth.release_kinds import REGISTRY, TABLE, get_kind, kinds
from pulsesynth.settings import ContactSettings

__all__ = ["SampleLimits", "create_app"]  # SampleLimits: re-exported for existing callers

HERE = Path(__file__).resolve().parent
#: The browser's session cookie: a random session id, never the token.
SESSION_COOKIE = "pulsesynth_session"
#: The cookie lives as long as the session it names (the store's expiry decides).
SESSION_COOKIE_MAX_AGE_S = int(SESSION_TTL.total_seconds())
#: The query parameter a token must never travel in (see :class:`QueryTokenRefusal`).
TOKEN_PARAM = "token"
#: The only paths that answer POST: signing in and out.
POST_PATHS = frozenset({"/signin", "/signout"})
#: Query parameters whose values :class:`RedactToken` hides in logs (compared lower-case).
SECRET_PARAMS = frozenset({TOKEN_PARAM, "access_token", "session", SESSION_COOKIE})
#: One ``key=value`` query parameter in a logged request line, for :class:`RedactToken`.
_QUERY_PARAM = re.compile(r"([?&])([^=&\s\"']*)=([^&\s\"']*)")
#: A bearer credential or a session cookie as they would appear in a logged header.
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s,;\"']+")
_COOKIE = re.compile(rf"(?i)({SESSION_COOKIE}=)[^\s,;&\"']+")
# Labels and kinds come from their owners (pulsesynth.labels, pulsesynth.release_kinds).
LABELS = RELEASE_LABELS
KIND_TEXT = {k.name: k.text for k in kinds()}
#: Labels a kind may carry in the portal (a model is never open, whatever the index says).
KIND_LABELS = {k.name: k.label_caps for k in kinds()}
STATIC_FILES = {"portal.css": "text/css; charset=utf-8"}
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_VERSION = re.compile(r"^v[1-9][0-9]{0,5}$")
_UNSET = object()
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; img-src 'self'; style-src 'self'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # same-origin, not no-referrer: under no-referrer a browser sends ``Origin: null`` with
    # a form POST, and the sign-in form's same-origin check needs the real origin. Other
    # sites still get no referrer, and no portal URL carries a token.
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "cache-control": "no-store",
}


class FileInfo(BaseModel):
    """One downloadable file of a release."""

    name: str
    bytes: int
    sha256: str
    mediaType: str  # noqa: N815 (DCAT spelling)
    downloadURL: str  # noqa: N815


class DatasetVersion(BaseModel):
    """One published (or superseded) version as the catalogue lists it."""

    id: str
    identifier: str
    dataset: str | None = None
    kind: str = TABLE.name
    title: str
    description: str = ""
    label: str
    label_text: str = ""
    version: str
    status: str
    epsilon: float | None = None
    delta: float | None = None
    issued: str | None = None
    files: list[FileInfo] = []


class DatasetDetail(DatasetVersion):
    """The latest visible version with its card (the data card of a table, the model card
    of a classifier or model), plus every visible version."""

    datacard: dict[str, Any]
    versions: list[DatasetVersion]


class Guard:
    """ASGI middleware: GET/HEAD only (and POST on :data:`POST_PATHS`), security headers on
    every response, no bodies on HEAD."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method not in ("GET", "HEAD") and not (method == "POST"
                                                  and scope.get("path") in POST_PATHS):
            allow = "GET, HEAD, POST" if scope.get("path") in POST_PATHS else "GET, HEAD"
            resp: Response = PlainTextResponse("Method Not Allowed", status_code=405,
                                               headers={"Allow": allow, **SECURITY_HEADERS})
            if wants_html(scope):
                resp = error_page(405, {"Allow": allow, **SECURITY_HEADERS})
            await resp(scope, receive, send)
            return
        path = scope.get("path", "")
        if "\\" in path or "\x00" in path or any(p in ("..", ".") for p in path.split("/")):
            resp = JSONResponse({"detail": "Not Found"}, status_code=404,
                                headers=SECURITY_HEADERS)
            if wants_html(scope):
                resp = error_page(404, SECURITY_HEADERS)
            await resp(scope, receive, send)
            return
        head = method == "HEAD"
        if head:
            scope = dict(scope, method="GET")
            scope["pulsesynth.head"] = True  # no body is sent: not a download

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    # /docs alone sets its own policy (pulsesynth.portal.errors)
                    if not (key == "content-security-policy" and path == "/docs"
                            and key in headers):
                        headers[key] = value
            elif message["type"] == "http.response.body" and head:
                message = {"type": "http.response.body", "body": b"",
                           "more_body": message.get("more_body", False)}
            await send(message)

        await self.app(scope, receive, guarded_send)


class QueryTokenRefusal:
    """ASGI middleware: a request with ``?token=`` is never served and its token never used;
    the answer is a 303 to the sign-in page, with the URL it asked for (token dropped) as
    ``next``.

    Why refuse rather than sign in: a token in a URL has already been copied to wherever the
    URL went (mail, chat, proxy and server logs, browser history and sync), and a GET that
    signs in lets any site sign a visitor in as *its* entity (login CSRF). The sign-in form
    keeps the token out of every URL, and its POST is same-origin only. Every such request
    gets the same redirect, valid token or not and whatever the path, so the answer says
    nothing about tokens or releases; no cookie is set.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kept, token = _without_token(scope.get("query_string", b""))
        if token is None:
            await self.app(scope, receive, send)
            return
        path = (scope.get("raw_path") or scope["path"].encode("utf-8")).decode("latin-1")
        wanted = "/" + path.lstrip("/") + ("?" + kept.decode("latin-1") if kept else "")
        location = "/signin?" + urlencode({"next": wanted, "reason": "link"})
        await Response(status_code=303, headers={"location": location})(scope, receive, send)


def _without_token(query: bytes) -> tuple[bytes, str | None]:
    """The query string without its ``token`` parameters (every other byte kept as sent)
    and the token's value (the last one given, as Starlette reads it), or None."""
    kept: list[bytes] = []
    token = None
    for part in query.split(b"&") if query else []:
        key, _, value = part.partition(b"=")
        if unquote_plus(key.decode("latin-1")) == TOKEN_PARAM:
            token = unquote_plus(value.decode("latin-1"))
        else:
            kept.append(part)
    return b"&".join(kept), token


class RedactToken(logging.Filter):
    """Hide credentials in a log record: the value of any secret query parameter
    (:data:`SECRET_PARAMS`), a ``Bearer`` credential and a session cookie become
    ``[redacted]``. uvicorn's access log prints each request's full path and query; its
    error log may print a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_token(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_token(a) if isinstance(a, str) else a
                                for a in record.args)
        return True


def redact_token(text: str) -> str:
    """``text`` with every credential replaced by ``[redacted]``: the values of the
    :data:`SECRET_PARAMS` query parameters — the key percent-decoded as
    :class:`QueryTokenRefusal` reads it, so ``%74oken=`` is caught too, and in any case
    (``TOKEN=`` is no token to the portal, but a mistyped one is still a secret) —,
    ``Bearer <credential>`` and ``pulsesynth_session=<id>``."""
    def one(m: re.Match[str]) -> str:
        if unquote_plus(m.group(2)).lower() not in SECRET_PARAMS:
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}=[redacted]"
    text = _QUERY_PARAM.sub(one, text)
    text = _BEARER.sub(r"\1[redacted]", text)
    return _COOKIE.sub(r"\1[redacted]", text)


#: The uvicorn loggers the filter guards (the access log, and the error log's tracebacks).
LOGGERS = ("uvicorn.access", "uvicorn.error")


def install_access_log_filter(logger_names: tuple[str, ...] = LOGGERS) -> None:
    """Add :class:`RedactToken` to uvicorn's loggers (once per process and logger).

    A logger's filters survive uvicorn's own ``dictConfig`` (which replaces handlers, not
    filters), so installing it when the app is built covers ``pulsesynth portal`` and any
    server an operator points at :func:`create_app`.
    """
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactToken) for f in logger.filters):
            logger.addFilter(RedactToken())


def create_app(paths: Paths | None = None, *, limits: SampleLimits | None = None,
               clock: Callable[[], datetime] | None = None,
               contact: ContactSettings | None = None) -> FastAPI:
    """Build the portal for one installation's ``published/`` directory.

    ``limits`` bounds the model sample endpoint (default: :meth:`SampleLimits.from_env`);
    ``clock`` gives the current UTC time (tests move it to expire rate-limit windows);
    ``contact`` is the publisher's contact address (default:
    :meth:`ContactSettings.from_env`, configuration, never data).
    """
    paths = paths or Paths.default()
    limits = limits or SampleLimits.from_env()
    contact = contact or ContactSettings.from_env()
    clock = clock or (lambda: datetime.now(UTC))
    app = FastAPI(title="Pulse Synth synthetic open portal", version="1.0",
                  description="Read-only catalogue of differentially private synthetic "
                              "releases. Confidential releases need an entity token "
                              "(Authorization: Bearer; browsers sign in at /signin).",
                  docs_url=None, redoc_url=None)
    # Added last = outermost: Guard answers first (methods, security headers on every
    # response, the redirect included), then the refusal of URL tokens, then the routes.
    app.add_middleware(QueryTokenRefusal)
    app.add_middleware(Guard)
    install_access_log_filter()
    # The routes are module-level (``router``); what differs per app lives in its state.
    app.state.portal = _Portal(
        paths=paths, limits=limits, contact=contact,
        sampler=SampleService(paths, limits, clock, _read_published),
        templates=_template_env())
    app.include_router(router)
    # CKAN and DCAT interfaces, /docs and browser error pages (their own modules; the
    # first two read the catalogue through this module's access functions).
    from pulsesynth.portal import ckan, dcat, errors, signin
    for extra in (ckan.router, dcat.router, errors.router, signin.router):
        app.include_router(extra)
    install_error_pages(app, SECURITY_HEADERS)
    return app


@dataclass(frozen=True)
class _Portal:
    """One portal app's state: its installation, sample limits and service, templates."""

    paths: Paths
    limits: SampleLimits
    contact: ContactSettings
    sampler: SampleService
    templates: Environment

    def render(self, request: Request, template: str, status: int = 200,
               **ctx: Any) -> HTMLResponse:
        """A page for the request's entity (every page names the portal's contact)."""
        entity = _entity(request, self.paths)
        ctx.setdefault("portal_contact", self.contact.email())
        html = self.templates.get_template(template).render(entity=entity, **ctx)
        return HTMLResponse(html, status_code=status)


def _portal(request: Request) -> _Portal:
    """The state of the app serving ``request`` (set by :func:`create_app`)."""
    return cast(_Portal, request.app.state.portal)


#: The portal's routes, the same for every app (module-level, so each can be read and tested
#: on its own); ``create_app`` includes them in the order they were always declared.
router = APIRouter()



@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request, label: str = "", q: str = "", kind: str = "",
          publisher: str = "", licence_id: str = Query("", alias="licence"),
          sort: str = "title", page: str = "1") -> HTMLResponse:
    portal = _portal(request)
    granted = _granted(request, portal.paths)
    latest = _latest(_visible(portal.paths, granted))
    matching = _filter(latest, "", q)
    chosen = {"label": label, "kind": kind, "publisher": publisher, "licence": licence_id}
    values = [(e, _facet_values(portal.paths, e)) for e in matching]

    def keeps(v: dict[str, str], but: str | None = None) -> bool:
        return all(not chosen[f] or v[f] == chosen[f] for f in FACETS if f != but)

    # Facet counts: each facet counts the releases matching the search and the *other*
    # facets, so a reader sees what choosing a value would leave.
    counts = {f: _counts(v[f] for _, v in values if keeps(v, f)) for f in FACETS}
    shown = [e for e, v in values if keeps(v)]
    sort = sort if sort in SORTS else "title"
    _, key, reverse = SORTS[sort]
    shown = sorted(shown, key=key, reverse=reverse)
    pages = max(1, -(-len(shown) // PAGE_SIZE))
    # A page number past the last shows the last; anything else (or absurdly long) the first.
    number = min(max(int(page) if page.isdigit() and len(page) <= 6 else 1, 1), pages)
    names = {"publisher": {v["publisher"]: office_name(v["publisher"]) for _, v in values},
             "licence": {v["licence"]: v["licence_name"] for _, v in values}}
    # The confidential filter is offered only to an entity that may see such a release.
    return portal.render(request, "index.html",
                         datasets=shown[(number - 1) * PAGE_SIZE:number * PAGE_SIZE],
                         total=len(shown), label=label, q=q, kind=kind, publisher=publisher,
                         licence_id=licence_id, sort=sort,
                         sorts={k: v[0] for k, v in SORTS.items()}, page=number, pages=pages,
                         labels=[lb for lb in LABELS if lb == OPEN or granted],
                         label_counts=counts["label"], kinds=KIND_TEXT,
                         kind_counts=counts["kind"], publisher_counts=counts["publisher"],
                         licence_counts=counts["licence"], facet_names=names)


#: The index page's facets (query parameter names).
FACETS = ("label", "kind", "publisher", "licence")


def _facet_values(paths: Paths, entry: dict[str, Any]) -> dict[str, str]:
    """An entry's value for each facet: label, kind, the publishing office (the declared
    schema's steward, from its card) and the licence id (CKAN's)."""
    from pulsesynth.portal.dcat import publisher, safe_card  # dcat imports this module

    lic = licence(entry)
    return {"label": entry["label"], "kind": entry["kind"],
            "publisher": publisher(safe_card(paths, entry)), "licence": lic.ckan_id,
            "licence_name": lic.title}


def _counts(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


@router.get("/datasets/{dataset}", response_class=HTMLResponse, include_in_schema=False)
def dataset_page(request: Request, dataset: str) -> HTMLResponse:
    portal = _portal(request)
    versions = _versions(portal.paths, _granted(request, portal.paths), dataset)
    return _dataset_response(request, versions, _current(versions) or versions[-1],
                             portal)


@router.get("/datasets/{dataset}/{version}", response_class=HTMLResponse,
            include_in_schema=False)
def version_page(request: Request, dataset: str, version: str) -> HTMLResponse:
    portal = _portal(request)
    versions = _versions(portal.paths, _granted(request, portal.paths), dataset)
    entry = next((e for e in versions if e["version"] == version), None)
    if entry is None:
        raise HTTPException(404)
    return _dataset_response(request, versions, entry, portal)


@router.get("/datasets/{dataset}/{version}/files/{name:path}", include_in_schema=False)
def download(request: Request, dataset: str, version: str, name: str) -> Response:
    portal = _portal(request)
    entity = _entity(request, portal.paths)
    entry = next((e for e in _versions(portal.paths, _granted(request, portal.paths), dataset)
                  if e["version"] == version), None)
    if entry is None:
        raise HTTPException(404)
    info = next((f for f in entry.get("files", []) if f.get("name") == name), None)
    if info is None:
        raise HTTPException(404)
    data = _read_published(portal.paths, entry, name, info)
    if entry["label"] != OPEN and not request.scope.get("pulsesynth.head"):
        with open_db(portal.paths) as conn, transaction(conn):
            log_event(conn, entity or "anonymous", "release.download",
                      f"{dataset}/{version}/{name}",
                      {"label": entry["label"], "bytes": len(data),
                       "sha256": info["sha256"],
                       "client": request.client.host if request.client else None})
    headers = {}
    if not name.endswith(".png"):
        filename = f"{dataset}-{version}-{Path(name).name}"
        headers["content-disposition"] = f'attachment; filename="{filename}"'
    return Response(data, media_type=info.get("mediaType") or "application/octet-stream",
                    headers=headers)


@router.get("/datasets/{dataset}/{version}/sample",
            responses={200: {"content": {"text/csv": {}, "application/json": {}},
                             "description": "n seeded synthetic rows"},
                       404: {"description": "unknown, not a model, or no valid token"},
                       422: {"description": "n, seed or format out of bounds"},
                       429: {"description": "rate limit reached (see Retry-After)"}})
def sample(request: Request, dataset: str, version: str,
           n: str | None = Query(None, description="rows to draw (1..max, default 100)"),
           seed: str | None = Query(None, description="integer seed (default 0); the "
                                    "same seed gives the same rows"),
           fmt: str | None = Query(None, alias="format",
                                   description="csv (default) or json")) -> Response:
    """Draw synthetic rows from a published DP generative model (token holders of its
    label only). Post-processing: no privacy budget is spent. Every request is logged."""
    portal = _portal(request)
    entity = _entity(request, portal.paths)
    entry = next((e for e in _versions(portal.paths, _granted(request, portal.paths), dataset)
                  if e["version"] == version), None)
    if entry is None or not get_kind(entry["kind"]).samplable or entity is None:
        raise HTTPException(404)
    head = bool(request.scope.get("pulsesynth.head"))
    return portal.sampler.respond(entity=entity, entry=entry, dataset=dataset,
                                  version=version, n=n, seed=seed, fmt=fmt, head=head,
                                  client=request.client.host if request.client else None)


@router.get("/api/datasets", response_model=list[DatasetVersion])
def api_datasets(request: Request,
                 label: str = Query("", description="open or confidential"),
                 q: str = Query("", description="search in id and title"),
                 all_versions: bool = Query(False, description="include superseded")
                 ) -> list[dict[str, Any]]:
    """Every release the caller may see (latest version per dataset by default)."""
    portal = _portal(request)
    visible = _visible(portal.paths, _granted(request, portal.paths))
    return _filter(visible if all_versions else _latest(visible), label, q)


@router.get("/api/datasets/{dataset}", response_model=DatasetDetail)
def api_dataset(request: Request, dataset: str) -> dict[str, Any]:
    """One dataset: the current version's data card and every visible version."""
    portal = _portal(request)
    versions = _versions(portal.paths, _granted(request, portal.paths), dataset)
    entry = _current(versions) or versions[-1]
    return entry | {"datacard": _card(portal.paths, entry), "versions": versions}


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    if name not in STATIC_FILES:
        raise HTTPException(404)
    return Response((HERE / "static" / name).read_bytes(), media_type=STATIC_FILES[name])


# --- catalogue and access -------------------------------------------------------------------


def _entity(request: Request, paths: Paths) -> str | None:
    """The entity of the request (memoised per request): an API client's valid
    ``Authorization: Bearer`` token, else the browser's live session.

    A ``?token=`` never reaches a route (:class:`QueryTokenRefusal` redirects it away)."""
    cached = getattr(request.state, "entity", _UNSET)
    if cached is not _UNSET:
        return cast("str | None", cached)
    token = None
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    entity = (verify_token(paths, token) if token
              else session_entity(paths, request.cookies.get(SESSION_COOKIE)))
    request.state.entity = entity
    return entity


def _granted(request: Request, paths: Paths) -> frozenset[str]:
    """The datasets whose confidential releases the request's entity was granted (none
    without a valid token; memoised per request)."""
    cached = getattr(request.state, "granted", None)
    if cached is None:
        cached = granted_datasets(paths, _entity(request, paths))
        request.state.granted = cached
    return cast(frozenset[str], cached)


def _catalogue(paths: Paths) -> list[dict[str, Any]]:
    """Well-formed entries of ``published/index.json`` (anything odd is ignored)."""
    try:
        raw = json.loads(index_json(paths).read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    entries = []
    for e in raw.get("dataset", []) if isinstance(raw, dict) else []:
        if not isinstance(e, dict):
            continue
        kind = e.get("kind", TABLE.name)  # entries from before kinds existed are tables
        # Entries from before ``dataset`` was written are tables, whose id is the dataset.
        dataset = e.get("dataset", e.get("id"))
        if (kind in REGISTRY and _ID.match(str(e.get("id", "")))
                and isinstance(dataset, str) and _ID.match(dataset)
                # A grant on the dataset covers exactly the catalogue ids of its kinds.
                and REGISTRY[kind].catalogue_id(dataset) == e["id"]
                and _VERSION.match(str(e.get("version", "")))
                and e.get("label") in KIND_LABELS[kind]
                and e.get("status") in ("published", "superseded")
                and e.get("path") == f"{e['id']}/{e['version']}"):
            entries.append(e | {"kind": kind, "kind_text": KIND_TEXT[kind],
                                "dataset": dataset})
    return entries


def _visible(paths: Paths, granted: frozenset[str]) -> list[dict[str, Any]]:
    """Open releases, and the others of the datasets in ``granted``."""
    return [e for e in _catalogue(paths) if e["label"] == OPEN or e["dataset"] in granted]


def _versions(paths: Paths, granted: frozenset[str], dataset: str) -> list[dict[str, Any]]:
    """Visible versions of one catalogue id, oldest first; 404 when there are none (the
    same answer for an unknown id and for a release the caller may not see)."""
    found = [e for e in _visible(paths, granted) if e["id"] == dataset]
    if not found:
        raise HTTPException(404)
    return sorted(found, key=lambda e: int(e["version"][1:]))


def _current(versions: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((e for e in reversed(versions) if e["status"] == "published"), None)


def _latest(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per dataset: its published version, else its newest visible one."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_id.setdefault(e["id"], []).append(e)
    out = []
    for dataset in sorted(by_id):
        versions = sorted(by_id[dataset], key=lambda e: int(e["version"][1:]))
        out.append(_current(versions) or versions[-1])
    return out


def _filter(entries: list[dict[str, Any]], label: str, q: str) -> list[dict[str, Any]]:
    q = q.strip().lower()
    return [e for e in entries if (not label or e["label"] == label)
            and (not q or q in e["id"].lower() or q in str(e.get("title", "")).lower())]


def _read_published(paths: Paths, entry: dict[str, Any], name: str,
                    info: dict[str, Any]) -> bytes:
    """Bytes of one listed file, only if it is a regular, non-symlinked file inside
    ``published/`` whose SHA-256 matches the index; 404 otherwise."""
    parts = [entry["id"], entry["version"], *name.split("/")]
    if any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise HTTPException(404)
    root = paths.published.resolve()
    current = root
    for part in parts:
        current = current / part
        try:
            st = os.lstat(current)
        except OSError:
            raise HTTPException(404) from None
        if stat.S_ISLNK(st.st_mode):
            raise HTTPException(404)
    if not stat.S_ISREG(st.st_mode) or not current.resolve().is_relative_to(root):
        raise HTTPException(404)
    data = current.read_bytes()
    if hashlib.sha256(data).hexdigest() != info.get("sha256"):
        raise HTTPException(404)
    return data


def _card(paths: Paths, entry: dict[str, Any]) -> dict[str, Any]:
    """The release's card: ``datacard.json`` for tables, ``modelcard.json`` otherwise."""
    name = card_json_name(entry["kind"])
    info = next((f for f in entry.get("files", []) if f.get("name") == name), None)
    if info is None:
        raise HTTPException(404)
    return json.loads(_read_published(paths, entry, name, info))


def _dataset_response(request: Request, versions: list[dict[str, Any]], entry: dict[str, Any],
                      portal: _Portal) -> HTMLResponse:
    paths, render, limits = portal.paths, portal.render, portal.limits
    card = _card(paths, entry)
    files = {f["name"]: f for f in entry.get("files", [])}
    spec = get_kind(entry["kind"])
    downloads = [files[n] for n in spec.downloads if n in files]
    steward = (card.get("schema") or {}).get("steward")
    publisher = office_name(steward)
    contact = portal.contact.email(steward if isinstance(steward, str) and steward else None)
    common: dict[str, Any] = {
        "contact": contact, "portal_contact": contact,
        "entry": entry, "card": card, "downloads": downloads,
        "versions": list(reversed(versions)), "audit": audit_verdict(card),
        "fit": fit_verdict(card), "licence": licence(entry),
        "publisher": publisher, "dictionary": column_dictionary(card),
        "changelog": _changelog(paths, versions),
        "citation": citation(card, entry, publisher)}
    if not spec.releases_rows:
        can_sample = spec.samplable and _entity(request, paths) is not None
        return render(request, spec.portal_template, can_sample=can_sample, limits=limits,
                      **common)
    plots = [files[p] for p in card.get("plots", []) if p in files]
    quality_plots = [files[p] for p in (card.get("quality") or {}).get("plots", [])
                     if p in files]
    header, preview = _preview(paths, entry)
    return render(request, spec.portal_template, plots=plots, quality_plots=quality_plots,
                  preview_header=header, preview=preview,
                  update_frequency=update_frequency(card), **common)


# --- page context: plain words and rounded numbers for readers ------------------------------
# Pages show rounded figures and plain sentences; the exact values stay in the JSON (the
# card files and /api). Everything here reads the card (public and DP figures only), the
# index and the published synthetic rows: nothing private reaches a page.

#: Rows of the synthetic table a table page previews.
PREVIEW_ROWS = 10
#: Catalogue rows per index page.
PAGE_SIZE = 20
#: Index sort keys: query value → (label, sort key, newest/largest first).
SORTS: dict[str, tuple[str, Callable[[dict[str, Any]], Any], bool]] = {
    "title": ("name (A–Z)", lambda e: str(e.get("title", "")).lower(), False),
    "title_desc": ("name (Z–A)", lambda e: str(e.get("title", "")).lower(), True),
    "issued": ("newest first", lambda e: str(e.get("issued") or ""), True),
    "epsilon": ("strongest privacy first (smallest ε)",
                lambda e: e.get("epsilon") if e.get("epsilon") is not None else 1e9, False),
}
#: Plain words for the declared column roles (the schema's ids are jargon to a reader).
ROLE_TEXT = {
    "identifier": "row number or key",
    "quasi_identifier": "could help single a person out when combined with other columns",
    "target": "the column a model is asked to predict",
    "sensitive": "sensitive attribute",
    "other": "",
}
#: Plain words for the gate's labels.
GATE_TEXT = {
    OPEN: "Passed every privacy check for publishing openly.",
    "confidential": "Passed every privacy check for sharing with government entities.",
}


def fmt_epsilon(value: Any) -> str:
    """ε for reading: two decimals (``1.00``); the exact value is in the JSON."""
    return "—" if not isinstance(value, (int, float)) else f"{value:.2f}"


def fmt_delta(value: Any) -> str:
    """δ for reading: one significant digit in short scientific form (``1e-6``)."""
    if not isinstance(value, (int, float)):
        return "—"
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def fmt_percent(value: Any) -> str:
    """A share as a whole percentage (``0.714`` → ``71 %``)."""
    return "—" if not isinstance(value, (int, float)) else f"{value * 100:.0f} %"


def fmt_factor(epsilon: Any) -> str:
    """e^ε for reading (``1.0`` → ``2.7``): how much one record may change any chance."""
    return "—" if not isinstance(epsilon, (int, float)) else f"{math.exp(epsilon):.1f}"


def fmt_number(value: Any) -> str:
    """Any other figure for reading: three significant digits, thousands separated."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.3g}"


def quality_words(score: Any) -> str:
    """A quality score (0..1) in words for a reader."""
    if not isinstance(score, (int, float)):
        return "not measured"
    for floor, words in ((0.9, "very close"), (0.75, "close"), (0.5, "rough")):
        if score >= floor:
            return words
    return "poor"


def office_name(steward: Any) -> str:
    """A steward id as an office's name (``transport-data-office`` → ``Transport data
    office``)."""
    text = re.sub(r"[-_]+", " ", str(steward or "")).strip()
    return text[:1].upper() + text[1:] if text else "the city data office"


def _stat(card: dict[str, Any], name: str) -> dict[str, Any]:
    stats = (card.get("release_statistics") or {}).get("statistics") or {}
    value = stats.get(name)
    return value if isinstance(value, dict) else {}


def audit_verdict(card: dict[str, Any]) -> dict[str, str]:
    """The gate's label and the DP attack figure in plain words (never an exact audit
    figure: the attack advantage is the DP release report's noisy value)."""
    gate = card.get("gate") or {}
    label = gate.get("label")
    headline = GATE_TEXT.get(str(label), "Did not pass the privacy checks.")
    if gate.get("capped_from"):
        headline += (f" It would pass the checks for {gate['capped_from']} publication too, "
                     f"but a {card.get('kind_text') or 'model'} is capped at {label}: "
                     "whoever holds it could attack it or sample it without limit.")
    adv = _stat(card, "max_attack_advantage")
    detail = ""
    if adv.get("value") is not None:
        low = adv.get("ci_low")
        points = max(0.0, float(adv["value"])) * 100
        how = ("did no better than guessing" if points < 0.5 or (low is not None and low <= 0)
               else f"did {points:.0f} percentage points better than guessing")
        detail = ("The strongest membership attack — trying to tell whether a person's "
                  f"record was used in training — {how} (a differentially private figure; "
                  "0 means pure guessing).")
    return {"label": str(label or "blocked"), "headline": headline, "detail": detail}


def fit_verdict(card: dict[str, Any]) -> dict[str, str]:
    """The fit-for-purpose verdict in plain words, with its DP figures rounded."""
    fit = card.get("fit_for_purpose") or {}
    verdict = fit.get("verdict")
    if not verdict:
        return {"verdict": "", "text": "No fit-for-purpose measurement for this release."}
    subject = get_kind(card.get("kind") or TABLE.name).fit_subject
    target = fit.get("target")
    acc, base = _stat(card, "tstr_accuracy"), _stat(card, "majority_accuracy")
    numbers = (f" (right {fmt_percent(acc.get('value'))} of the time on real rows it never "
               f"saw, against {fmt_percent(base.get('value'))} by always guessing the most "
               "common answer)") if acc and base else ""
    text = {
        "useful": f"Fit for predicting “{target}”: {subject} does better than guessing",
        "not useful": f"Not fit for predicting “{target}”: {subject} does no better than "
                      "guessing",
    }.get(verdict, f"Unclear for predicting “{target}”: {subject} is not clearly better "
                   "than guessing")
    return {"verdict": str(verdict), "text": text + numbers + "."}


def plain_item(text: Any) -> str:
    """A suitable/not-suitable line without Markdown backticks."""
    return str(text).replace("`", "")


def column_dictionary(card: dict[str, Any]) -> list[dict[str, str]]:
    """The declared schema as a dictionary: name, type, description, domain."""
    out = []
    # A table card lists its synthetic columns; a declared column outside them (a row key,
    # a column the model does not synthesise) is said to be absent.
    published = card.get("columns") if isinstance(card.get("columns"), list) else None
    for c in (card.get("schema") or {}).get("columns") or []:
        if not isinstance(c, dict):
            continue
        if c.get("categories"):
            domain = ", ".join(str(v) for v in c["categories"])
        elif c.get("bounds"):
            low, high = c["bounds"]
            domain = f"{fmt_number(low)} to {fmt_number(high)}"
        else:
            domain = ""
        if c.get("nullable"):
            domain = f"{domain} (may be missing)" if domain else "may be missing"
        role = ROLE_TEXT.get(str(c.get("role")), "")
        if published is not None and c.get("name") not in published:
            role = f"{role}; not in the synthetic table" if role else "not in the synthetic table"
        out.append({"name": str(c.get("name")), "type": str(c.get("type") or ""),
                    "description": str(c.get("description") or ""), "role": role,
                    "domain": domain})
    return out


def update_frequency(card: dict[str, Any]) -> str:
    """How often the release is refreshed, from the schema's declared refresh policy."""
    days = (card.get("schema") or {}).get("refresh_days")
    if not isinstance(days, int) or isinstance(days, bool) or days <= 0:
        return "not stated"
    if days == 1:
        return "daily, when the source changes"
    if days % 7 == 0 and days <= 28:
        return f"at most every {days // 7} week(s), when the source changes"
    return f"at most every {days} days, when the source changes"


def citation(card: dict[str, Any], entry: dict[str, Any], publisher: str) -> str:
    """A 'cite this' line: publisher, year, title, version, kind, portal path."""
    year = str(entry.get("issued") or "")[:4] or "n.d."
    return (f"{publisher} ({year}). {card.get('title')} ({entry.get('version')}) "
            f"[{entry.get('kind_text') or 'synthetic data'}, differentially private, "
            f"ε = {fmt_epsilon(entry.get('epsilon'))}]. Pulse Synth synthetic open portal, "
            f"/datasets/{entry.get('id')}/{entry.get('version')}.")


def _preview(paths: Paths, entry: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The header and first :data:`PREVIEW_ROWS` rows of the published synthetic CSV."""
    info = next((f for f in entry.get("files", []) if f.get("name") == SYNTHETIC_CSV), None)
    if info is None:
        return [], []
    try:
        data = _read_published(paths, entry, SYNTHETIC_CSV, info)
    except HTTPException:
        return [], []
    rows = list(csv.reader(io.StringIO(data.decode("utf-8", errors="replace"))))
    return (rows[0], rows[1:PREVIEW_ROWS + 1]) if rows else ([], [])


def _changelog(paths: Paths, versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each visible version, newest first: date, status, ε, code version, model."""
    out = []
    for v in reversed(versions):
        try:
            prov = _card(paths, v).get("provenance") or {}
        except (HTTPException, ValueError):
            prov = {}
        out.append({"version": v["version"], "id": v["id"], "status": v["status"],
                    "label": v["label"], "label_text": v.get("label_text", ""),
                    "date": str(v.get("issued") or "")[:10],
                    "epsilon": fmt_epsilon(v.get("epsilon")),
                    "code_version": prov.get("code_version") or "—",
                    "model_id": prov.get("model_id") or "—"})
    return out


def _template_env() -> Environment:
    """The portal's templates with the reading filters (see ``fmt_*``)."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(["html"]))
    env.filters.update(eps=fmt_epsilon, delta=fmt_delta, pct=fmt_percent, num=fmt_number,
                       plain=plain_item, office=office_name, factor=fmt_factor,
                       quality_words=quality_words,
                       combine=lambda a, b: {**a, **b},
                       # Only the parameters that are set, so links stay short.
                       urlq=lambda d: urlencode({k: v for k, v in d.items() if v}))
    return env
