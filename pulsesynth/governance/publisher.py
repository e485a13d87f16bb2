"""The atomic publisher: approved candidates become versioned directories under ``published/``.

Each kind has its own catalogue id and version sequence: ``<dataset>`` for tables,
``<dataset>_classifier`` and ``<dataset>_model`` for the others. Publication builds
``published/.tmp-<pid>-*/`` and renames it to ``published/<catalogue id>/<version>/``;
``published/index.json`` is then rewritten (:mod:`.catalogue`). A crash at any point
leaves either the old or the new state; a rerun adopts a version directory whose rename
happened but whose database update did not, and removes the temporary entries of dead
writers (never a live one's: :func:`~pulsesynth.governance.locks.remove_stale_temps`).
Publication and withdrawal hold the same lock
(:func:`~pulsesynth.governance.locks.publication_lock`).

A disk that is full or refuses writes (``OSError``) ends publication with one
:class:`PublishError` line saying what failed and what was left published: the release
being built stays approved, its temporary files are removed, and nothing half-built is
ever listed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pulsesynth.artifacts import ReleaseDir
from pulsesynth.governance.candidate import candidate_id_of, content_hash, read_candidate
from pulsesynth.governance.catalogue import write_index
from pulsesynth.governance.db import log_event, open_db, transaction
from pulsesynth.governance.errors import (
    CandidateError,
    PublishError,
    ReleaseStateError,
    TamperedCandidate,
)
from pulsesynth.governance.lifecycle import mark_published, supersede_published
from pulsesynth.governance.locks import (
    os_error_reason,
    publication_lock,
    remove_stale_temps,
    temp_name,
)
from pulsesynth.governance.record import (
    Release,
    check_kind,
    find_row,
    list_releases,
    release_of,
)
from pulsesynth.paths import Paths

_VERSION = re.compile(r"^v([1-9][0-9]*)$")

#: Called with a stage name ("before_rename", "after_rename", "before_index") during
#: publication. Production passes nothing; a test passes a hook that raises at one stage to
#: simulate a crash there.
FaultHook = Callable[[str], None]


def _no_fault(stage: str) -> None:
    """The production hook: publication runs through every stage."""


def publish_approved(paths: Paths, *, actor: str = "publisher", now: datetime | None = None,
                     fault_hook: FaultHook | None = None) -> list[Release]:
    """Publish every approved candidate (oldest approval first); returns what was published.

    Raises :class:`TamperedCandidate` for a candidate whose files changed since approval
    (after publishing the others); the index is rewritten in every case. ``fault_hook`` is
    for crash tests only (see :data:`FaultHook`).
    """
    hook = fault_hook or _no_fault
    paths.published.mkdir(parents=True, exist_ok=True)
    published: list[Release] = []
    failures: list[Exception] = []
    current: Release | None = None
    with publication_lock(paths):
        try:
            remove_stale_temps(paths.published)
            for current in list_releases(paths, status="approved")[::-1]:
                try:
                    published.append(_publish_one(paths, current, _builder(current.kind),
                                                  actor, now, hook))
                except (TamperedCandidate, CandidateError) as exc:
                    failures.append(exc)
                    with open_db(paths) as conn, transaction(conn):
                        log_event(conn, actor, "release.publish_refused",
                                  current.candidate_id,
                                  {"dataset": current.dataset, "kind": current.kind,
                                   "error": str(exc)}, now)
            current = None
            hook("before_index")
            with open_db(paths) as conn:
                write_index(paths, conn, now=now)
        except (OSError, sqlite3.OperationalError) as exc:
            if isinstance(exc, sqlite3.OperationalError) and "full" not in str(exc):
                raise
            raise PublishError(_disk_failure(exc, current, published)) from None
    if failures:
        raise failures[0] if len(failures) == 1 else PublishError(
            "; ".join(str(f) for f in failures))
    return published


def _builder(kind: str) -> Callable[..., Any]:
    """The function that writes a release directory of this kind."""
    return check_kind(kind).card_builder()


def _publish_one(paths: Paths, rel: Release, build: Callable[..., Any], actor: str,
                 now: datetime | None, hook: FaultHook) -> Release:
    with open_db(paths) as conn:
        approval = conn.execute(
            "SELECT * FROM approvals WHERE candidate_id = ? AND decision = 'approved' "
            "ORDER BY id DESC LIMIT 1", (rel.candidate_id,)).fetchone()
    if approval is None:
        raise ReleaseStateError(f"{rel.dataset} {rel.candidate_id[:12]}: no approval recorded")
    files = read_candidate(paths.resolve(rel.candidate_dir), rel.kind)
    if (candidate_id_of(files, rel.label, rel.kind) != rel.candidate_id
            or content_hash(files, rel.kind) != approval["candidate_hash"]):
        raise TamperedCandidate(
            f"{rel.dataset} {rel.candidate_id[:12]}: the candidate's files changed after "
            f"{approval['steward']} approved them on {approval['decided_at']}; the approval "
            "no longer counts — re-register and approve the new candidate")
    dataset_dir = paths.published / rel.catalogue_id
    created = not dataset_dir.exists()
    dataset_dir.mkdir(parents=True, exist_ok=True)
    version = _adoptable_version(dataset_dir, rel.candidate_id)
    if version is None:
        version = f"v{_next_version_number(paths, rel.dataset, rel.kind, dataset_dir)}"
        tmp = paths.published / temp_name()
        tmp.mkdir()
        try:
            build(tmp, files, rel, dict(approval), version, paths)
            hook("before_rename")
            os.rename(tmp, dataset_dir / version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if created:  # a first version that failed leaves no empty dataset directory
                with contextlib.suppress(OSError):
                    dataset_dir.rmdir()
            raise
    hook("after_rename")
    target = dataset_dir / version
    with open_db(paths) as conn, transaction(conn):
        supersede_published(conn, rel, version, actor, now)
        mark_published(conn, rel, version, paths.relative(target), approval["candidate_hash"],
                       actor, now)
        return release_of(find_row(conn, rel.candidate_id))


def _adoptable_version(dataset_dir: Path, candidate_id: str) -> str | None:
    """A version directory already renamed into place for this candidate (crash recovery)."""
    for child in sorted(dataset_dir.iterdir()):
        if not _VERSION.match(child.name) or child.is_symlink():
            continue
        version_dir = ReleaseDir(child)
        for card in (version_dir.datacard_json, version_dir.modelcard_json):
            if not card.is_file():
                continue
            try:
                if json.loads(card.read_text("utf-8")).get("candidate_id") == candidate_id:
                    return child.name
            except (OSError, json.JSONDecodeError):
                continue
    return None


def _next_version_number(paths: Paths, dataset: str, kind: str, dataset_dir: Path) -> int:
    """One past the highest version on disk or in the database (a withdrawn number is
    never reused)."""
    numbers = [int(m.group(1)) for c in dataset_dir.iterdir() if (m := _VERSION.match(c.name))]
    with open_db(paths) as conn:
        for row in conn.execute("SELECT version FROM releases WHERE dataset = ? AND kind = ? "
                                "AND version IS NOT NULL", (dataset, kind)):
            if m := _VERSION.match(row["version"]):
                numbers.append(int(m.group(1)))
    return max(numbers, default=0) + 1


def _disk_failure(exc: OSError | sqlite3.OperationalError, rel: Release | None,
                  published: list[Release]) -> str:
    """One line for a steward: what failed, and what is (not) published now."""
    if isinstance(exc, OSError):
        reason = os_error_reason(exc)
    else:
        reason = "the governance store could not be written (database or disk is full)"
    done = (f"{len(published)} release(s) were published before it "
            f"({', '.join(f'{r.catalogue_id} {r.version}' for r in published)})"
            if published else "nothing was published")
    if rel is None:
        return (f"publish failed while rewriting published/index.json: {reason}; {done}, "
                "but the portal's index may still list the previous state: run publish "
                "again once the disk is fixed")
    return (f"publish failed: {reason} while publishing {rel.dataset} "
            f"{rel.candidate_id[:12]} ({rel.kind}); it stays approved and its temporary "
            f"files were removed; {done}; published/index.json is unchanged — run publish "
            "again once the disk is fixed")
