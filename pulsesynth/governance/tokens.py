"""Entity access tokens for confidential releases.

A token identifies an entity; what the entity may see is a steward's grant per dataset
(:mod:`pulsesynth.governance.grants`). A token without grants sees open releases only.

A token is shown once when created (``secrets.token_urlsafe``) and stored only as its
SHA-256; a presented token is hashed and compared with every active hash using
``hmac.compare_digest`` (constant time per comparison, no early exit on a match).
Revoking a token ends the portal sessions it was exchanged for
(:mod:`pulsesynth.governance.sessions`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pulsesynth.governance.db import log_event, now_iso, open_db, transaction
from pulsesynth.governance.errors import TokenError
from pulsesynth.paths import Paths

TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 256


@dataclass(frozen=True)
class TokenInfo:
    """A stored token's metadata (never the token itself)."""

    id: int
    entity: str
    created_at: str
    revoked_at: str | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(paths: Paths, entity: str, *, actor: str = "steward",
                 now: datetime | None = None) -> tuple[str, TokenInfo]:
    """Create a token for an entity; returns (the token — shown once, its metadata)."""
    entity = (entity or "").strip()
    if not entity:
        raise TokenError("an entity name is required")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with open_db(paths) as conn, transaction(conn):
        at = now_iso(now)
        cur = conn.execute("INSERT INTO access_tokens (entity, token_hash, created_at) "
                           "VALUES (?, ?, ?)", (entity, hash_token(token), at))
        log_event(conn, actor, "token.create", entity, {"token_id": cur.lastrowid}, now)
        return token, TokenInfo(int(cur.lastrowid or 0), entity, at, None)


def revoke_tokens(paths: Paths, entity: str | None = None, token_id: int | None = None, *,
                  actor: str = "steward", now: datetime | None = None) -> list[TokenInfo]:
    """Revoke one token (by id) or every active token of an entity; returns those revoked."""
    if entity is None and token_id is None:
        raise TokenError("name an entity or a token id to revoke")
    with open_db(paths) as conn, transaction(conn):
        sql = "SELECT * FROM access_tokens WHERE revoked_at IS NULL"
        args: list[Any] = []
        if entity is not None:
            sql, args = sql + " AND entity = ?", [*args, entity]
        if token_id is not None:
            sql, args = sql + " AND id = ?", [*args, token_id]
        rows = conn.execute(sql, args).fetchall()
        if not rows:
            raise TokenError(f"no active token for {entity or f'id {token_id}'}")
        at = now_iso(now)
        for r in rows:
            conn.execute("UPDATE access_tokens SET revoked_at = ? WHERE id = ?", (at, r["id"]))
            # Its portal sessions end with it (a lookup also checks revoked_at).
            conn.execute("DELETE FROM portal_sessions WHERE token_id = ?", (r["id"],))
            log_event(conn, actor, "token.revoke", r["entity"], {"token_id": r["id"]}, now)
        return [TokenInfo(r["id"], r["entity"], r["created_at"], at) for r in rows]


def list_tokens(paths: Paths) -> list[TokenInfo]:
    with open_db(paths) as conn:
        return [TokenInfo(r["id"], r["entity"], r["created_at"], r["revoked_at"])
                for r in conn.execute("SELECT * FROM access_tokens ORDER BY id")]


def verify_token(paths: Paths, token: str | None) -> str | None:
    """The entity holding this active token, or None (unknown, revoked, malformed)."""
    found = find_token(paths, token)
    return None if found is None else found[1]


def find_token(paths: Paths, token: str | None) -> tuple[int, str] | None:
    """``(row id, entity)`` of this active token, or None (unknown, revoked, malformed)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    presented = hash_token(token)
    with open_db(paths) as conn:
        rows = conn.execute("SELECT id, entity, token_hash FROM access_tokens "
                            "WHERE revoked_at IS NULL").fetchall()
    found = None
    for r in rows:
        if hmac.compare_digest(presented, r["token_hash"]):
            found = (int(r["id"]), str(r["entity"]))
    return found
