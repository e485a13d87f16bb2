"""The governance store: one SQLite file, ``warehouse/governance.db``.

SQLite rather than the DuckDB warehouse because the nightly flow, the steward's CLI and
the portal write and read it from separate processes at once, and DuckDB admits one
writer process per file. WAL mode lets readers proceed while a writer commits; every
write runs in ``BEGIN IMMEDIATE`` so read-check-write sequences (the ledger's budget
check) hold the write lock from the first read. ``audit_log`` and ``privacy_ledger`` are
append-only: triggers abort any UPDATE or DELETE.

Schema versions (``PRAGMA user_version``): 1 — the first layout; 2 — ``releases.kind``
(``table``, ``classifier`` or ``model``; versions are numbered per dataset *and* kind) and
an index for the portal's per-entity sampling rate limit. Opening a version-1 database
migrates it in one transaction (the releases table is rebuilt, every row kept with
``kind = 'table'``); a second process opening it at the same time waits, then finds it
migrated. Versions 3 to 6 only add tables (budgets, dataset secrets, grants, and — 6 — the
portal's sign-in sessions), created on open by the idempotent schema script.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pulsesynth.paths import Paths

DB_NAME = "governance.db"
BUSY_TIMEOUT_MS = 30_000
SCHEMA_VERSION = 6

SCHEMA = """
CREATE TABLE IF NOT EXISTS privacy_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset TEXT NOT NULL,
    run_id TEXT NOT NULL,
    snapshot_id TEXT NOT NULL,
    epsilon REAL NOT NULL CHECK (epsilon > 0),
    delta REAL NOT NULL CHECK (delta >= 0 AND delta < 1),
    accountant TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    charged_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS privacy_ledger_dataset ON privacy_ledger (dataset, id);

CREATE TABLE IF NOT EXISTS releases (
    candidate_id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    version TEXT,
    model_id TEXT NOT NULL,
    title TEXT NOT NULL,
    label TEXT NOT NULL,
    gate_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('candidate', 'approved', 'rejected', 'published',
                                           'superseded', 'withdrawn', 'blocked')),
    candidate_dir TEXT NOT NULL,
    created_at TEXT NOT NULL,
    published_dir TEXT,
    published_at TEXT,
    kind TEXT NOT NULL DEFAULT 'table' CHECK (kind IN ('table', 'classifier', 'model')),
    UNIQUE (dataset, kind, version)
);
CREATE INDEX IF NOT EXISTS releases_dataset ON releases (dataset, status);

CREATE TABLE IF NOT EXISTS approvals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    candidate_id TEXT NOT NULL REFERENCES releases (candidate_id),
    steward TEXT NOT NULL,
    role TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('approved', 'rejected', 'withdrawn')),
    note TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    candidate_hash TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS access_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entity TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- Secret per-dataset keys (the salt of the keyed-hash data roles): sensitive, never exported.
CREATE TABLE IF NOT EXISTS dataset_secrets (
    dataset TEXT PRIMARY KEY,
    role_salt BLOB NOT NULL,
    created_at TEXT NOT NULL
);

-- The governed privacy block of each dataset: recorded at its first use, changed only by a
-- steward's decision (pulsesynth budget set), never by editing or re-ingesting a schema.
CREATE TABLE IF NOT EXISTS budgets (
    dataset TEXT PRIMARY KEY,
    lifetime_epsilon REAL NOT NULL CHECK (lifetime_epsilon > 0),
    per_run_epsilon REAL NOT NULL CHECK (per_run_epsilon > 0),
    privacy_unit TEXT NOT NULL,
    max_rows_per_unit INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_action_actor ON audit_log (action, actor, time);

CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS privacy_ledger_no_update BEFORE UPDATE ON privacy_ledger
BEGIN SELECT RAISE(ABORT, 'privacy_ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS privacy_ledger_no_delete BEFORE DELETE ON privacy_ledger
BEGIN SELECT RAISE(ABORT, 'privacy_ledger is append-only'); END;

-- Which entity may see which dataset's confidential releases (a steward's grant; every
-- change is in audit_log, so a removed grant is a deleted row here and a record there).
CREATE TABLE IF NOT EXISTS grants (
    entity TEXT NOT NULL,
    dataset TEXT NOT NULL,
    steward TEXT NOT NULL,
    note TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    PRIMARY KEY (entity, dataset)
);

-- Portal sign-in sessions (pulsesynth.governance.sessions): a browser's session id is kept
-- only as its SHA-256, bound to the token it was exchanged for; revoking the token or the
-- expiry ends it, sign-out deletes the row.
CREATE TABLE IF NOT EXISTS portal_sessions (
    session_hash TEXT PRIMARY KEY,
    token_id INTEGER NOT NULL REFERENCES access_tokens (id),
    entity TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS portal_sessions_token ON portal_sessions (token_id);
"""


def db_path(paths: Paths) -> Path:
    """Where the governance database lives: beside the DuckDB warehouse."""
    return paths.warehouse / DB_NAME


def now_iso(now: datetime | None = None) -> str:
    """UTC timestamps as ISO 8601 text (sortable, unambiguous across processes)."""
    return (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")


def connect(paths: Paths) -> sqlite3.Connection:
    """Open (creating if needed) the governance database in autocommit mode.

    Autocommit (``isolation_level=None``) so :func:`transaction` controls BEGIN itself.
    """
    path = db_path(paths)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
        _create_or_migrate(conn)
    return conn


def _create_or_migrate(conn: sqlite3.Connection) -> None:
    """Create the schema, or bring an older one up to :data:`SCHEMA_VERSION`.

    Foreign keys are off while the releases table is rebuilt (SQLite's documented
    procedure: the pragma only takes effect outside a transaction), and checked before
    the transaction commits.
    """
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        with transaction(conn):
            # Re-checked under the write lock: one process migrates, the others find it done.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version >= SCHEMA_VERSION:
                return
            has_releases = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'releases'"
            ).fetchone() is not None
            if has_releases and "kind" not in _columns(conn, "releases"):
                _migrate_releases_v1(conn)
            for statement in _statements(SCHEMA):
                conn.execute(statement)
            problems = conn.execute("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise sqlite3.IntegrityError(
                    f"{len(problems)} foreign-key violation(s) after migrating the schema")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    finally:
        conn.execute("PRAGMA foreign_keys = ON")


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r["name"] for r in conn.execute(f"PRAGMA table_info({table})")]


def _migrate_releases_v1(conn: sqlite3.Connection) -> None:
    """Version 1 → 2: rebuild ``releases`` with ``kind`` (every old row is a table) and
    versions unique per (dataset, kind, version)."""
    create = next(s for s in _statements(SCHEMA)
                  if s.startswith("CREATE TABLE IF NOT EXISTS releases "))
    conn.execute(create.replace("CREATE TABLE IF NOT EXISTS releases ",
                                "CREATE TABLE releases_v2 ", 1))
    old = [c for c in _columns(conn, "releases") if c != "kind"]
    names = ", ".join(old)
    conn.execute(f"INSERT INTO releases_v2 ({names}, kind) SELECT {names}, 'table' "
                 "FROM releases")
    conn.execute("DROP TABLE releases")
    conn.execute("ALTER TABLE releases_v2 RENAME TO releases")


@contextmanager
def open_db(paths: Paths) -> Iterator[sqlite3.Connection]:
    """A connection closed on exit (each call site owns its own short-lived connection)."""
    conn = connect(paths)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``: take the write lock up front, roll back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def log_event(conn: sqlite3.Connection, actor: str, action: str, subject: str,
              detail: dict[str, Any] | None = None, now: datetime | None = None) -> None:
    """Append one audit record (call inside the transaction that makes the change)."""
    conn.execute(
        "INSERT INTO audit_log (time, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
        (now_iso(now), actor, action, subject,
         json.dumps(detail or {}, sort_keys=True, default=str)),
    )


def audit_events(paths: Paths, action: str | None = None) -> list[dict[str, Any]]:
    """Read the audit log (oldest first), optionally one action only."""
    with open_db(paths) as conn:
        sql = "SELECT * FROM audit_log"
        rows = (conn.execute(sql + " WHERE action = ? ORDER BY id", (action,)) if action
                else conn.execute(sql + " ORDER BY id"))
        return [dict(r) | {"detail": json.loads(r["detail"])} for r in rows]


def _statements(script: str) -> list[str]:
    """Split the schema script on statement ends, keeping trigger bodies whole."""
    out: list[str] = []
    buf: list[str] = []
    for line in script.strip().splitlines():
        buf.append(line)
        text = "\n".join(buf).strip()
        if text.endswith(";") and (not text.upper().startswith("CREATE TRIGGER")
                                   or text.upper().endswith("END;")):
            out.append(text)
            buf = []
    return out
