"""Per-entity grants: which entity's tokens may see which dataset's confidential releases.

A token proves *who* is asking (an entity, see :mod:`.tokens`); a grant, made by a data
steward, says *what* that entity may see: the confidential releases of one dataset — its
synthetic table, classifier and generative model (catalogue ids ``<dataset>``,
``<dataset>_classifier``, ``<dataset>_model``). An entity with a valid token but no grant
sees only open releases, exactly like an anonymous visitor.

Grants live in the ``grants`` table of the governance store; every add and remove is
written to the append-only ``audit_log`` in the same transaction, so the table says who may
see what now and the log says who decided it and when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pulsesynth.governance.db import log_event, now_iso, open_db, transaction
from pulsesynth.governance.errors import GovernanceError
from pulsesynth.ids import DatasetIdError, check_dataset_id
from pulsesynth.paths import Paths

#: A dataset id as the catalogue and the portal accept it (ASCII lower-case identifier).
MAX_NAME_LENGTH = 200


class GrantError(GovernanceError):
    """A grant request names no entity, a malformed dataset id, or a grant that is not there."""


@dataclass(frozen=True)
class Grant:
    """One entity's access to one dataset's confidential releases."""

    entity: str
    dataset: str
    steward: str
    note: str
    granted_at: str


def _entity(entity: str) -> str:
    """The entity name as tokens store it (stripped); refused if empty or unprintable."""
    entity = (entity or "").strip()
    if not entity:
        raise GrantError("an entity name is required")
    if len(entity) > MAX_NAME_LENGTH or not entity.isprintable():
        raise GrantError(f"an entity name is at most {MAX_NAME_LENGTH} printable characters")
    return entity


def _dataset(dataset: str) -> str:
    """The dataset id, checked by the one rule every id entry point uses."""
    try:
        return check_dataset_id(dataset)
    except DatasetIdError as exc:
        raise GrantError(str(exc)) from None


def add_grant(paths: Paths, entity: str, dataset: str, *, steward: str, note: str = "",
              now: datetime | None = None) -> Grant:
    """Grant ``entity`` the confidential releases of ``dataset`` (logged as ``grant.add``).

    Granting again what is already granted is refused, so the audit log never records a
    decision that changed nothing.
    """
    entity, dataset = _entity(entity), _dataset(dataset)
    steward = (steward or "").strip()
    if not steward:
        raise GrantError("a grant needs the deciding steward (--steward NAME)")
    with open_db(paths) as conn, transaction(conn):
        if conn.execute("SELECT 1 FROM grants WHERE entity = ? AND dataset = ?",
                        (entity, dataset)).fetchone():
            raise GrantError(f"{entity} already has a grant on {dataset}")
        at = now_iso(now)
        conn.execute("INSERT INTO grants (entity, dataset, steward, note, granted_at) "
                     "VALUES (?, ?, ?, ?, ?)", (entity, dataset, steward, note, at))
        log_event(conn, steward, "grant.add", entity, {"dataset": dataset, "note": note}, now)
        return Grant(entity, dataset, steward, note, at)


def remove_grant(paths: Paths, entity: str, dataset: str, *, actor: str = "steward",
                 note: str = "", now: datetime | None = None) -> Grant:
    """Remove ``entity``'s grant on ``dataset`` (logged as ``grant.remove``); returns it.

    Takes effect on the entity's next request: the portal reads grants per request.
    """
    entity, dataset = _entity(entity), _dataset(dataset)
    with open_db(paths) as conn, transaction(conn):
        row = conn.execute("SELECT * FROM grants WHERE entity = ? AND dataset = ?",
                           (entity, dataset)).fetchone()
        if row is None:
            raise GrantError(f"{entity} has no grant on {dataset}")
        conn.execute("DELETE FROM grants WHERE entity = ? AND dataset = ?", (entity, dataset))
        log_event(conn, actor, "grant.remove", entity,
                  {"dataset": dataset, "note": note, "granted_by": row["steward"],
                   "granted_at": row["granted_at"]}, now)
        return Grant(row["entity"], row["dataset"], row["steward"], row["note"],
                     row["granted_at"])


def list_grants(paths: Paths, entity: str | None = None) -> list[Grant]:
    """Current grants (of one entity, or all), by entity then dataset."""
    sql = "SELECT * FROM grants"
    args: tuple[str, ...] = ()
    if entity is not None:
        sql, args = sql + " WHERE entity = ?", (_entity(entity),)
    with open_db(paths) as conn:
        return [Grant(r["entity"], r["dataset"], r["steward"], r["note"], r["granted_at"])
                for r in conn.execute(sql + " ORDER BY entity, dataset", args)]


def granted_datasets(paths: Paths, entity: str | None) -> frozenset[str]:
    """The datasets whose confidential releases ``entity`` may see (none for anonymous)."""
    if entity is None:
        return frozenset()
    with open_db(paths) as conn:
        return frozenset(r["dataset"] for r in conn.execute(
            "SELECT dataset FROM grants WHERE entity = ?", (entity,)))
