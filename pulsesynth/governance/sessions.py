"""Portal sign-in sessions: a token is exchanged once for a server-side session.

A browser never keeps the token. It signs in once (the portal's sign-in form, or a POST
with ``Authorization: Bearer``); the portal checks the token and starts a session: a fresh
random id (``secrets.token_urlsafe``) that goes to the browser in an HttpOnly,
SameSite=Strict cookie and is stored here only as its SHA-256, with the id of the token
it was exchanged for and an expiry :data:`SESSION_TTL` later. A session counts only while
it has not expired and its token is not revoked (checked on every lookup, so revoking a
token ends its sessions at once; :func:`pulsesynth.governance.tokens.revoke_tokens` also
deletes their rows). Signing out deletes the row.

Neither the token nor the session id is written anywhere in clear: not in this table, not
in ``audit_log`` (its events name the entity and the token's row id only).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from pulsesynth.governance.db import log_event, now_iso, open_db, transaction
from pulsesynth.governance.tokens import MAX_TOKEN_LENGTH, find_token
from pulsesynth.paths import Paths

#: How long a session lasts: a working day, then the entity signs in again.
SESSION_TTL = timedelta(hours=8)
SESSION_BYTES = 32
#: Longer presented ids are refused unhashed (``token_urlsafe(32)`` is 43 characters).
MAX_SESSION_LENGTH = 128


def hash_session(session_id: str) -> str:
    """The stored form of a session id."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def start_session(paths: Paths, token: str | None, *,
                  now: datetime | None = None) -> tuple[str, str] | None:
    """Exchange a valid, unrevoked token for a new session.

    Returns ``(session id — for the cookie only, entity)``, or None when the token is
    unknown, revoked or malformed (nothing is stored then). Expired sessions are swept in
    the same transaction, so the table holds live sessions only.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    found = find_token(paths, token)
    if found is None:
        return None
    token_id, entity = found
    session_id = secrets.token_urlsafe(SESSION_BYTES)
    at = now_iso(now)
    expires = now_iso((now or datetime.fromisoformat(at)) + SESSION_TTL)
    with open_db(paths) as conn, transaction(conn):
        conn.execute("DELETE FROM portal_sessions WHERE expires_at <= ?", (at,))
        conn.execute("INSERT INTO portal_sessions (session_hash, token_id, entity, "
                     "created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                     (hash_session(session_id), token_id, entity, at, expires))
        log_event(conn, entity, "session.start", entity,
                  {"token_id": token_id, "expires_at": expires}, now)
    return session_id, entity


def session_entity(paths: Paths, session_id: str | None, *,
                   now: datetime | None = None) -> str | None:
    """The entity of a live session: not expired, its token not revoked; else None."""
    if not session_id or len(session_id) > MAX_SESSION_LENGTH:
        return None
    with open_db(paths) as conn:
        row = conn.execute(
            "SELECT s.entity FROM portal_sessions s JOIN access_tokens t ON t.id = s.token_id "
            "WHERE s.session_hash = ? AND s.expires_at > ? AND t.revoked_at IS NULL",
            (hash_session(session_id), now_iso(now))).fetchone()
    return None if row is None else str(row["entity"])


def end_session(paths: Paths, session_id: str | None, *,
                now: datetime | None = None) -> bool:
    """Sign out: delete the session's row. True when there was one."""
    if not session_id or len(session_id) > MAX_SESSION_LENGTH:
        return False
    with open_db(paths) as conn, transaction(conn):
        row = conn.execute("SELECT entity, token_id FROM portal_sessions "
                           "WHERE session_hash = ?", (hash_session(session_id),)).fetchone()
        if row is None:
            return False
        conn.execute("DELETE FROM portal_sessions WHERE session_hash = ?",
                     (hash_session(session_id),))
        log_event(conn, row["entity"], "session.end", row["entity"],
                  {"token_id": row["token_id"]}, now)
    return True
