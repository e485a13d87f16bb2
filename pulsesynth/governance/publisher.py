"""The atomic publisher: approved candidates become versioned directories under ``published/``.

Each kind has its own catalogue id and version sequence: ``<dataset>`` for tables,
``<dataset>_classifier`` and ``<dataset>_model`` for the others. Publication builds
``published/.tmp-*/`` and renames it to ``published/<catalogue id>/<version>/``;
``published/index.json`` is then rewritten (:mod:`.catalogue`). A crash at any point
leaves either the old or the new state; a rerun adopts a version directory whose rename
happened but whose database update did not.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    with _publish_lock(paths):
        _clean_temp(paths)
        for rel in list_releases(paths, status="approved")[::-1]:
            try:
                published.append(_publish_one(paths, rel, _builder(rel.kind), actor, now, hook))
            except (TamperedCandidate, CandidateError) as exc:
                failures.append(exc)
                with open_db(paths) as conn, transaction(conn):
                    log_event(conn, actor, "release.publish_refused", rel.candidate_id,
                              {"dataset": rel.dataset, "kind": rel.kind, "error": str(exc)},
                              now)
        hook("before_index")
        with open_db(paths) as conn:
            write_index(paths, conn, now=now)
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
    dataset_dir.mkdir(parents=True, exist_ok=True)
    version = _adoptable_version(dataset_dir, rel.candidate_id)
    if version is None:
        version = f"v{_next_version_number(paths, rel.dataset, rel.kind, dataset_dir)}"
        tmp = paths.published / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            build(tmp, files, rel, dict(approval), version, paths)
            hook("before_rename")
            os.rename(tmp, dataset_dir / version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
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


@contextmanager
def _publish_lock(paths: Paths) -> Iterator[None]:
    """One publisher at a time (a second waits): temp-dir cleanup must not race a build."""
    lock_path = paths.warehouse / "publish.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _clean_temp(paths: Paths) -> None:
    """Remove half-built temporary directories left by a crash (never listed or served)."""
    for child in paths.published.glob(".tmp-*"):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
