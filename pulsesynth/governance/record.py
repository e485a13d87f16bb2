"""The release record: one row of ``releases``, looked up and listed.

Shared by the candidate, lifecycle, publisher and catalogue modules: a release is
registered as a candidate, moves through the status machine, is published and appears in
the catalogue, and every step reads and returns the same :class:`Release`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from pulsesynth.governance.db import open_db
from pulsesynth.governance.errors import CandidateError, ReleaseNotFound
from pulsesynth.paths import Paths
from pulsesynth.release_kinds import TABLE, ReleaseKind, UnknownReleaseKind, get_kind


@dataclass(frozen=True)
class Release:
    """One row of ``releases``."""

    candidate_id: str
    dataset: str
    version: str | None
    model_id: str
    title: str
    label: str
    gate: dict[str, Any]
    status: str
    candidate_dir: str
    created_at: str
    published_dir: str | None
    published_at: str | None
    kind: str = TABLE.name

    @property
    def catalogue_id(self) -> str:
        """The portal id: ``<dataset>`` for tables, ``<dataset>_<kind>`` otherwise."""
        return catalogue_id(self.dataset, self.kind)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"catalogue_id": self.catalogue_id}


def catalogue_id(dataset: str, kind: str = TABLE.name) -> str:
    """``<dataset>`` for tables, ``<dataset>_classifier`` / ``<dataset>_model`` otherwise."""
    return check_kind(kind).catalogue_id(dataset)


def check_kind(kind: str) -> ReleaseKind:
    """The registered kind, or :class:`CandidateError` (what the governance callers catch)."""
    try:
        return get_kind(kind)
    except UnknownReleaseKind as exc:
        raise CandidateError(str(exc)) from None


def get_release(paths: Paths, candidate_id: str) -> Release:
    """A release by full id or unique prefix (at least 6 characters)."""
    with open_db(paths) as conn:
        return release_of(find_row(conn, candidate_id))


def list_releases(paths: Paths, dataset: str | None = None,
                  status: str | None = None, kind: str | None = None) -> list[Release]:
    """Releases, newest first, optionally of one dataset, status and/or kind."""
    sql = "SELECT * FROM releases WHERE 1=1"
    args: list[str] = []
    if dataset:
        sql, args = sql + " AND dataset = ?", [*args, dataset]
    if status:
        sql, args = sql + " AND status = ?", [*args, status]
    if kind:
        check_kind(kind)
        sql, args = sql + " AND kind = ?", [*args, kind]
    with open_db(paths) as conn:
        return [release_of(r) for r in conn.execute(
            sql + " ORDER BY created_at DESC, rowid DESC", args)]


def approvals(paths: Paths, candidate_id: str) -> list[dict[str, Any]]:
    """Every decision recorded on a release, oldest first."""
    with open_db(paths) as conn:
        cid = find_row(conn, candidate_id)["candidate_id"]
        return [dict(r) for r in conn.execute(
            "SELECT * FROM approvals WHERE candidate_id = ? ORDER BY id", (cid,))]


def find_row(conn: Any, candidate_id: str) -> Any:
    """The ``releases`` row of a full id or unique prefix (:class:`ReleaseNotFound`)."""
    cid = (candidate_id or "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{6,64}", cid):
        raise ReleaseNotFound(f"{candidate_id!r}: not a release id (6 to 64 hex characters)")
    rows = conn.execute("SELECT * FROM releases WHERE candidate_id LIKE ? LIMIT 2",
                        (cid + "%",)).fetchall()
    if not rows:
        raise ReleaseNotFound(f"{candidate_id}: no such release")
    if len(rows) > 1:
        raise ReleaseNotFound(f"{candidate_id}: ambiguous prefix; give more characters")
    return rows[0]


def release_of(row: Any) -> Release:
    """A :class:`Release` from a ``releases`` row."""
    return Release(row["candidate_id"], row["dataset"], row["version"], row["model_id"],
                   row["title"], row["label"], json.loads(row["gate_json"]), row["status"],
                   row["candidate_dir"], row["created_at"], row["published_dir"],
                   row["published_at"], row["kind"])
