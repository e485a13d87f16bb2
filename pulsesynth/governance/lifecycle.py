"""The release status machine: which steward or publisher action moves which status where.

Status flow::

    candidate ─approve→ approved ─publish→ published ─(newer version)→ superseded
        └─reject→ rejected           └─reject→ rejected      └─withdraw→ withdrawn
    blocked (gate failed or non-DP): terminal, never approvable (only rejectable)

:data:`TRANSITIONS` is the whole machine; :func:`next_status` is the one place that
refuses an action a status does not allow, so approve, reject, withdraw, publish and
supersede cannot drift apart from the table.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import datetime
from typing import Any

from pulsesynth.governance.candidate import candidate_id_of, content_hash, read_candidate
from pulsesynth.governance.catalogue import write_index
from pulsesynth.governance.db import log_event, now_iso, open_db, transaction
from pulsesynth.governance.errors import PublishError, ReleaseStateError, TamperedCandidate
from pulsesynth.governance.locks import os_error_reason, publication_lock
from pulsesynth.governance.record import Release, find_row, get_release, release_of
from pulsesynth.paths import Paths

APPROVE, REJECT, WITHDRAW, PUBLISH, SUPERSEDE = (
    "approve", "reject", "withdraw", "publish", "supersede")

#: (from status, action) → to status. Anything not listed is refused.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("candidate", APPROVE): "approved",
    ("candidate", REJECT): "rejected",
    ("approved", REJECT): "rejected",
    ("blocked", REJECT): "rejected",
    ("approved", PUBLISH): "published",
    ("published", SUPERSEDE): "superseded",
    ("approved", WITHDRAW): "withdrawn",
    ("published", WITHDRAW): "withdrawn",
    ("superseded", WITHDRAW): "withdrawn",
}


def _refusal(rel: Release, action: str) -> str:
    """Why ``action`` is refused on ``rel`` (the wording stewards have always seen)."""
    head = f"{rel.dataset} {rel.candidate_id[:12]}: "
    if action == APPROVE and rel.status == "blocked":
        return (head + f"blocked by the gate ({rel.gate.get('reason') or 'no releasable label'}"
                "); it cannot be approved")
    hint = {APPROVE: "only a candidate can be approved",
            REJECT: "withdraw a published release instead",
            WITHDRAW: "only approved or published releases can be withdrawn"}.get(
                action, f"{action} is not allowed")
    return head + f"status is {rel.status}; {hint}"


def next_status(rel: Release, action: str) -> str:
    """The status ``action`` moves ``rel`` to, or :class:`ReleaseStateError`."""
    to = TRANSITIONS.get((rel.status, action))
    if to is None:
        raise ReleaseStateError(_refusal(rel, action))
    return to


def sources_of(action: str) -> tuple[str, ...]:
    """Every status ``action`` may start from (for SQL that selects by status)."""
    return tuple(frm for (frm, act) in TRANSITIONS if act == action)


# --- steward decisions -----------------------------------------------------------------------


def approve(paths: Paths, candidate_id: str, steward: str, role: str = "data steward",
            note: str = "", *, now: datetime | None = None) -> Release:
    """Approve a candidate, binding the approval to the hash of its files right now."""
    _need(steward, "steward")
    with open_db(paths) as conn, transaction(conn):
        rel = release_of(find_row(conn, candidate_id))
        to = next_status(rel, APPROVE)
        files = read_candidate(paths.resolve(rel.candidate_dir), rel.kind)
        if candidate_id_of(files, rel.label, rel.kind) != rel.candidate_id:
            raise TamperedCandidate(f"{rel.dataset} {rel.candidate_id[:12]}: the candidate's "
                                    "files changed since registration; register it again")
        _decide(conn, rel, to, steward, role, note, content_hash(files, rel.kind), now)
        return release_of(find_row(conn, rel.candidate_id))


def reject(paths: Paths, candidate_id: str, steward: str, note: str,
           role: str = "data steward", *, now: datetime | None = None) -> Release:
    """Reject a candidate or an approved (not yet published) release; a note is required."""
    _need(steward, "steward")
    _need(note, "note (say why it is rejected)")
    with open_db(paths) as conn, transaction(conn):
        rel = release_of(find_row(conn, candidate_id))
        _decide(conn, rel, next_status(rel, REJECT), steward, role, note, "", now)
        return release_of(find_row(conn, rel.candidate_id))


def withdraw(paths: Paths, candidate_id: str, steward: str, note: str,
             role: str = "data steward", *, now: datetime | None = None) -> Release:
    """Withdraw an approved, published or superseded release: it leaves the portal's index
    and its directory moves out of ``published/`` (to ``state/withdrawn/``)."""
    _need(steward, "steward")
    _need(note, "note (say why it is withdrawn)")
    # The publisher's lock: the index rewrite and the move must not interleave with a
    # publication (which rewrites the index too and cleans temporary entries).
    with publication_lock(paths):
        try:
            with open_db(paths) as conn, transaction(conn):
                rel = release_of(find_row(conn, candidate_id))
                _decide(conn, rel, next_status(rel, WITHDRAW), steward, role, note, "", now)
                moved = None
                if rel.published_dir:
                    src = paths.resolve(rel.published_dir)
                    if src.is_dir():
                        dest = paths.state / "withdrawn" / rel.catalogue_id / (
                            f"{rel.version}-{uuid.uuid4().hex[:8]}")
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        moved = dest
                # Drop it from the index before moving the files: the portal never lists
                # a directory that is gone.
                write_index(paths, conn, now=now)
        except OSError as exc:  # rolled back: nothing changed
            raise PublishError(f"{candidate_id[:12]}: withdraw failed: {os_error_reason(exc)}"
                               "; nothing changed (the release keeps its status and the "
                               "portal's index its entry)") from None
        if moved is not None:
            try:
                shutil.move(str(paths.resolve(rel.published_dir or "")), str(moved))
            except OSError as exc:
                raise PublishError(
                    f"{rel.dataset} {rel.candidate_id[:12]}: withdrawn and removed from the "
                    f"portal's index, but its files could not be moved to state/withdrawn/ "
                    f"({os_error_reason(exc)}); they stay unlisted under "
                    f"{rel.published_dir}") from None
    return get_release(paths, rel.candidate_id)


def _decide(conn: Any, rel: Release, decision: str, steward: str, role: str, note: str,
            chash: str, now: datetime | None) -> None:
    """Record a steward decision and apply the status it leads to (one transaction)."""
    at = now_iso(now)
    conn.execute("INSERT INTO approvals (candidate_id, steward, role, decision, note, "
                 "decided_at, candidate_hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (rel.candidate_id, steward, role, decision, note, at, chash))
    conn.execute("UPDATE releases SET status = ? WHERE candidate_id = ?",
                 (decision, rel.candidate_id))
    log_event(conn, steward, f"release.{decision}", rel.candidate_id,
              {"dataset": rel.dataset, "kind": rel.kind, "from": rel.status, "to": decision,
               "role": role, "note": note, "candidate_hash": chash, "version": rel.version},
              now)


# --- publisher transitions (called inside the publisher's transaction) ------------------------


def supersede_published(conn: Any, rel: Release, version: str, actor: str,
                        now: datetime | None) -> None:
    """Mark every published version of ``rel``'s dataset and kind superseded by ``version``."""
    [frm] = sources_of(SUPERSEDE)
    to = TRANSITIONS[(frm, SUPERSEDE)]
    old = conn.execute("SELECT candidate_id, version FROM releases WHERE dataset = ? AND "
                       "kind = ? AND status = ?", (rel.dataset, rel.kind, frm)).fetchall()
    for o in old:
        conn.execute("UPDATE releases SET status = ? WHERE candidate_id = ?",
                     (to, o["candidate_id"]))
        log_event(conn, actor, "release.supersede", o["candidate_id"],
                  {"dataset": rel.dataset, "kind": rel.kind, "version": o["version"],
                   "by": version}, now)


def mark_published(conn: Any, rel: Release, version: str, published_dir: str,
                   candidate_hash: str, actor: str, now: datetime | None) -> None:
    """Move an approved release to published at ``version`` (a no-op on any other status:
    the SQL guards on the source status, so a concurrent decision is never overwritten)."""
    to = next_status(rel, PUBLISH)
    conn.execute("UPDATE releases SET status = ?, version = ?, published_dir = ?, "
                 "published_at = ? WHERE candidate_id = ? AND status = ?",
                 (to, version, published_dir, now_iso(now), rel.candidate_id, rel.status))
    log_event(conn, actor, "release.publish", rel.candidate_id,
              {"dataset": rel.dataset, "kind": rel.kind, "catalogue_id": rel.catalogue_id,
               "version": version, "label": rel.label, "candidate_hash": candidate_hash}, now)


def _need(value: str, what: str) -> None:
    if not value or not value.strip():
        raise ReleaseStateError(f"a {what} is required")
