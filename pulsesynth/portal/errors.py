"""HTML error pages for browsers and ``/docs`` served from the installed Swagger UI.

Errors. A request whose ``Accept`` names ``text/html`` (a browser), outside the JSON
interfaces (``/api/``, ``/openapi.json``, ``*.jsonld``), gets a small HTML page with the
same status and headers (``Allow``, ``Retry-After``); every other client keeps FastAPI's
JSON answer, byte for byte. A 404 page never names the path or the id, so an invisible
release and an unknown id answer with the same bytes, in HTML as in JSON. A 500 page says
nothing about the failure (no exception text can carry a value into a page).

Docs. ``/docs`` is FastAPI's Swagger UI page pointed at the JavaScript and CSS of Swagger
UI 5 as the ``fastapi-offline`` package ships them, served by the portal itself under
``/docs/assets/``:
nothing is fetched from another origin. Only ``/docs`` gets a Content-Security-Policy that
lets that page run: its one inline script by hash, scripts and styles from the portal
itself (Swagger UI also sets inline styles and uses ``data:`` images); every other
response keeps the portal's ``default-src 'none'`` policy.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from pulsesynth.settings import ContactSettings

HERE = Path(__file__).resolve().parent
#: What a browser is told, per status (never the path, the id or an exception's text).
PAGES = {
    404: ("Not found", "There is no page here. Check the address, or go back to the "
                       "catalogue. Some releases are shown only to holders of an access "
                       "token."),
    405: ("Method not allowed", "This portal is read-only: it answers GET and HEAD only "
                                "(and POST to sign in and out)."),
    422: ("Invalid request", "A parameter of this request is out of bounds or malformed."),
    429: ("Too many requests", "The rate limit for this request was reached. Try again "
                               "later."),
    500: ("Something went wrong", "The portal could not answer this request. Nothing was "
                                  "changed; try again later."),
}
_JSON_PATHS = re.compile(r"^/(api/|openapi\.json$)|\.jsonld$")
#: Swagger UI's files, served from the installed ``swagger-ui-bundle`` package.
DOCS_ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
               "swagger-ui.css": "text/css; charset=utf-8",
               "favicon.png": "image/png"}
DOCS_PREFIX = "/docs/assets/"


def wants_html(scope: Scope) -> bool:
    """Whether the request is a browser's page load (``Accept`` names ``text/html``) for a
    path outside the JSON interfaces."""
    if _JSON_PATHS.search(scope.get("path", "")):
        return False
    accept = b"".join(v for k, v in scope.get("headers", []) if k == b"accept").lower()
    return b"text/html" in accept or b"application/xhtml+xml" in accept


@cache
def _templates() -> Environment:
    return Environment(loader=FileSystemLoader(HERE / "templates"),
                       autoescape=select_autoescape(["html"]))


def error_page(status: int, headers: Mapping[str, str] | None = None,
               details: list[str] | None = None) -> HTMLResponse:
    """The HTML page for ``status`` (the same bytes for every request with that status
    and these ``details``)."""
    try:
        title, message = PAGES.get(status) or (HTTPStatus(status).phrase, "")
    except ValueError:                        # a status code the standard does not name
        title, message = "Error", ""
    # The installation's contact (configuration, the same on every error page).
    html = _templates().get_template("error.html").render(
        status=status, title=title, message=message, details=details or [],
        contact=ContactSettings.from_env().email())
    return HTMLResponse(html, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not wants_html(request.scope):
        return await http_exception_handler(request, exc)
    details = []
    # 422 and 429 details are the portal's own sentences (bounds, limits); a 404's is
    # never shown (it would have to be the same for every id anyway).
    if exc.status_code in (422, 429) and isinstance(exc.detail, str):
        details = [exc.detail]
    return error_page(exc.status_code, exc.headers, details)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not wants_html(request.scope):
        return await request_validation_exception_handler(request, exc)
    # Name the parameters, never echo what was sent.
    names = sorted({str(e.get("loc", ("", ""))[-1]) for e in exc.errors()})
    return error_page(422, details=[f"invalid parameter: {n}" for n in names])


def install_error_pages(app: FastAPI, security_headers: Mapping[str, str]) -> None:
    """Answer browsers with HTML error pages (JSON clients keep JSON).

    A 500 is answered outside every middleware (Starlette's outermost error handler), so
    it carries ``security_headers`` itself."""

    async def server_error(request: Request, exc: Exception) -> Response:
        if wants_html(request.scope):
            return error_page(500, security_headers)
        return PlainTextResponse("Internal Server Error", status_code=500,
                                 headers=dict(security_headers))

    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(500, server_error)


# --- /docs ----------------------------------------------------------------------------------


def _asset_dir() -> Path:
    """Swagger UI 5's files as the ``fastapi-offline`` package ships them (Swagger UI 4, as
    in ``swagger-ui-bundle``, cannot render the OpenAPI 3.1 that FastAPI writes)."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


@cache
def _docs_page(openapi_url: str, title: str) -> tuple[bytes, str]:
    """The Swagger UI page and the CSP that lets exactly it run."""
    page = get_swagger_ui_html(
        openapi_url=openapi_url, title=f"{title} — API",
        swagger_js_url=DOCS_PREFIX + "swagger-ui-bundle.js",
        swagger_css_url=DOCS_PREFIX + "swagger-ui.css",
        swagger_favicon_url=DOCS_PREFIX + "favicon.png",
        oauth2_redirect_url=None).body
    inline = re.findall(rb"<script>(.*?)</script>", page, flags=re.S)
    hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(s).digest()).decode()
                      + "'" for s in inline)
    csp = (f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' "
           "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; "
           "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    return bytes(page), csp


#: ``/docs`` and its assets (included by :func:`pulsesynth.portal.app.create_app`).
router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    """Swagger UI for the portal's OpenAPI document, from the installed package."""
    app: Any = request.app
    body, csp = _docs_page(app.openapi_url or "/openapi.json", app.title)
    return HTMLResponse(body, headers={"content-security-policy": csp})


@router.get(DOCS_PREFIX + "{name}")
def docs_asset(name: str) -> Response:
    """One of Swagger UI's files (a fixed list: nothing else of the package is served)."""
    if name not in DOCS_ASSETS:
        raise HTTPException(404)
    return Response((_asset_dir() / name).read_bytes(), media_type=DOCS_ASSETS[name])
