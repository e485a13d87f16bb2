"""Signing in and out of the portal: a token exchanged once for a server-side session.

``GET /signin`` shows a form where an entity pastes its token; ``POST /signin`` (the form,
``application/x-www-form-urlencoded``, or an empty POST with ``Authorization: Bearer``)
checks the token and starts a session (:mod:`pulsesynth.governance.sessions`), answering
with a 303 to ``next`` — a path on this portal, never a URL with the token — and the
session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's page sends
it), Secure when served over HTTPS, Max-Age the session's lifetime. A wrong, revoked or
missing token gets the form again, 401, with one message for every case. ``POST
/signout`` deletes the session's row and clears the cookie.

Both POSTs are refused (403) when the browser says the request came from another site
(``Origin`` not this portal, or ``Sec-Fetch-Site: cross-site``/``same-site``): no other
site can sign a visitor in as its own entity or out. Clients without those headers
(``curl``, scripts) are served.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from pulsesynth.governance.sessions import end_session, start_session
from pulsesynth.portal.app import (
    SESSION_COOKIE,
    SESSION_COOKIE_MAX_AGE_S,
    _portal,
    _without_token,
)
from pulsesynth.portal.errors import wants_html

#: The most a sign-in body may hold (a token is 43 characters; a form adds a few more).
MAX_FORM_BYTES = 4096
#: Where a sign-in without a usable ``next`` lands.
HOME = "/"
#: What the form says when a token was refused (the same words for every reason).
INVALID = ("That token was not accepted: it is unknown, revoked or mistyped. Paste it "
           "again, or ask your data steward for a new one.")

router = APIRouter(include_in_schema=False)


def safe_next(value: str | None) -> str:
    """``value`` if it is a path on this portal, else ``/``.

    Only ASCII ``/...`` paths: never ``//host`` or ``/\\host`` (a browser reads those as
    another site: an open redirect), nor control characters; a ``token`` parameter is
    dropped.
    """
    # ASCII only: a Location header is Latin-1, and a browser sends its URLs percent-encoded.
    if (not value or len(value) > 2000 or not value.startswith("/") or not value.isascii()
            or value[1:2] in ("/", "\\") or any(ord(c) < 32 or c == "\x7f" for c in value)):
        return HOME
    path, sep, query = value.partition("?")
    kept, _ = _without_token(query.encode("latin-1", errors="replace"))
    return path + ("?" + kept.decode("latin-1") if sep and kept else "")


def _cross_site(request: Request) -> bool:
    """Whether the browser says this request comes from another site."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        return True
    return request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form fields of the request's body (at most :data:`MAX_FORM_BYTES`)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        return {}
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in fields.items()}


def _page(request: Request, status: int = 200, **ctx: Any) -> HTMLResponse:
    ctx.setdefault("next", HOME)
    ctx.setdefault("reason", "")
    ctx.setdefault("error", "")
    return _portal(request).render(request, "signin.html", status=status, **ctx)


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request, next: str = HOME, reason: str = "") -> HTMLResponse:  # noqa: A002
    """The sign-in form (``reason=link``: the visitor followed a link with a token in it)."""
    return _page(request, next=safe_next(next), reason="link" if reason == "link" else "")


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Exchange a token (form field ``token`` or ``Authorization: Bearer``) for a session."""
    if _cross_site(request):
        return JSONResponse({"detail": "Forbidden"}, status_code=403)
    form = await _form(request)
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else form.get("token", "")
    token = token.strip()
    target = safe_next(form.get("next"))
    started = start_session(_portal(request).paths, token)
    if started is None:
        if wants_html(request.scope):
            return _page(request, status=401, next=target, error=INVALID)
        return JSONResponse({"detail": "invalid token"}, status_code=401)
    session_id, _ = started
    resp = Response(status_code=303, headers={"location": target})
    resp.set_cookie(SESSION_COOKIE, session_id, max_age=SESSION_COOKIE_MAX_AGE_S, path="/",
                    httponly=True, samesite="strict",
                    secure=request.url.scheme == "https")
    return resp


@router.post("/signout")
def signout(request: Request) -> Response:
    """End the browser's session: delete its row, clear the cookie, back to the catalogue."""
    if _cross_site(request):
        return JSONResponse({"detail": "Forbidden"}, status_code=403)
    end_session(_portal(request).paths, request.cookies.get(SESSION_COOKIE))
    resp = Response(status_code=303, headers={"location": HOME})
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                       secure=request.url.scheme == "https")
    return resp
