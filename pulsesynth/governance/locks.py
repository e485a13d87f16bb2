"""Process locks: one publication at a time, one run per dataset at a time.

Both are ``fcntl.flock`` locks on files, not rows in the governance store, because the
kernel releases a ``flock`` when its holder dies, however it dies: a publisher or a
nightly run killed with ``kill -9`` leaves nothing held, where a row would need a liveness
check (pid and host, racing pid reuse) before anyone could take it over. The files sit
beside the data they protect (``warehouse/publish.lock``; ``state/locks/run-<id>.lock``),
on the same filesystem as the governance store, so they cover exactly the processes that
share that store. A ``flock`` belongs to an open file description, so two threads of one
process exclude each other too; re-entry by the same logical caller (a flow that holds a
dataset's lock calling a pipeline step that takes it again) is tracked in a context
variable, which Prefect copies into the threads it runs tasks in.

Temporary entries under ``published/`` carry their owner's pid (:func:`temp_name`), so the
publisher removes the ones whose owner is dead (a killed publish) and never one a live
process is still writing (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import contextvars
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from pulsesynth.errors import PulseSynthError
from pulsesynth.paths import Paths

#: The reason a run refused by a held lock reports (the flow's summary shows
#: ``skipped: another run holds the lock``).
LOCK_HELD = "another run holds the lock"

#: Lock files this logical caller (context) holds, for re-entry.
_HELD: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "pulsesynth_held_locks", default=frozenset())

#: ``.tmp-<pid>-<hex>`` and ``.tmp-<tag>-<pid>-<hex>[.ext]``: the pid of the writer.
_TEMP_OWNER = re.compile(r"^\.tmp-(?:[a-z]+-)?([0-9]+)-[0-9a-f]+(?:\.[a-z]+)?$")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class RunLocked(PulseSynthError):
    """Another process (or thread) is running this dataset; nothing was started here."""

    def __init__(self, dataset: str, holder: dict[str, object]) -> None:
        self.dataset = dataset
        self.holder = holder
        who = ", ".join(f"{k} {holder[k]}" for k in ("pid", "by", "since") if k in holder)
        super().__init__(f"{dataset}: skipped: {LOCK_HELD}" + (f" ({who})" if who else ""))


@contextmanager
def _flock(path: Path, *, wait_s: float | None) -> Iterator[tuple[bool, IO[str] | None]]:
    """Hold an exclusive ``flock`` on ``path`` for the block.

    Yields ``(held, fh)``: ``(True, file)`` when taken here, ``(True, None)`` on re-entry
    (this caller already holds it), ``(False, None)`` when it is held elsewhere and
    ``wait_s`` seconds ran out (``None``: wait as long as it takes).
    """
    key = str(path)
    if key in _HELD.get():
        yield True, None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as fh:
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (0 if deadline is None else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if deadline is None or time.monotonic() >= deadline:
                    yield False, None
                    return
                time.sleep(0.1)
        token = _HELD.set(_HELD.get() | {key})
        try:
            yield True, fh
        finally:
            _HELD.reset(token)
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def publication_lock(paths: Paths) -> Iterator[None]:
    """One writer of ``published/`` at a time (publish and withdraw; a second waits): the
    stale-temporary cleanup and the index rewrite must not race another writer."""
    with _flock(paths.warehouse / "publish.lock", wait_s=None):
        yield


def run_lock_path(paths: Paths, dataset: str) -> Path:
    """``state/locks/run-<dataset>.lock`` (a hash stands in for an id unfit for a name)."""
    name = dataset if _SAFE_ID.match(dataset) else hashlib.sha256(
        dataset.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return paths.state / "locks" / f"run-{name}.lock"


@contextmanager
def run_lock(paths: Paths, dataset: str, *, wait_s: float = 0.0,
             by: str = "pulsesynth") -> Iterator[None]:
    """Hold ``dataset``'s run lock for the block, or raise :class:`RunLocked` when another
    run holds it after ``wait_s`` seconds (0: do not wait). Re-entrant for the caller that
    holds it; released when the block ends or the process dies."""
    path = run_lock_path(paths, dataset)
    with _flock(path, wait_s=wait_s) as (held, fh):
        if not held:
            raise RunLocked(dataset, _holder(path))
        if fh is not None:
            # Who holds it, for the refusal message of the next comer (no data, no path).
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps({"pid": os.getpid(), "by": by, "since": datetime.now(
                UTC).isoformat(timespec="seconds")}))
            fh.flush()
        yield


def _holder(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def os_error_reason(exc: OSError) -> str:
    """``No space left on device (ENOSPC)``: an OS error for a one-line message (no path:
    the caller says which step failed)."""
    code = errno.errorcode.get(exc.errno or 0, "")
    return (exc.strerror or type(exc).__name__) + (f" ({code})" if code else "")


# --- temporary entries under published/ ---------------------------------------------------


def temp_name(tag: str = "", suffix: str = "") -> str:
    """A temporary entry name owned by this process: ``.tmp-[<tag>-]<pid>-<hex><suffix>``."""
    return f".tmp-{tag + '-' if tag else ''}{os.getpid()}-{uuid.uuid4().hex}{suffix}"


def temp_owner(name: str) -> int | None:
    """The pid in a :func:`temp_name`, or ``None`` (an older name without one)."""
    m = _TEMP_OWNER.match(name)
    return int(m.group(1)) if m else None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie, killed but not yet reaped, is not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def remove_stale_temps(directory: Path) -> list[str]:
    """Remove the ``.tmp-*`` entries of ``directory`` whose owner is dead (or unnamed: left
    by a version that did not record it); returns their names. Call it under
    :func:`publication_lock`: a live writer's entry is never touched. Entries of this very
    process are stale too: every writer takes the lock, and this caller holds it, so no
    other thread of this process is writing one (it is a leftover of a failed write)."""
    removed = []
    for child in directory.glob(".tmp-*"):
        owner = temp_owner(child.name)
        if owner is not None and owner != os.getpid() and pid_alive(owner):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
        removed.append(child.name)
    return removed
