"""Concurrency: publish and withdraw share one lock and never delete each other's temporary
files; stale temporary entries of dead publishers are removed; the sample rate limit counts
sub-second time; one run per dataset at a time (a second one is ``skipped: another run
holds the lock``, the lock dies with its holder)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from governance_fixtures import make_candidate

from pulsesynth import pipeline
from pulsesynth.cli import main as cli_main
from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.db import open_db
from pulsesynth.governance.lifecycle import approve, withdraw
from pulsesynth.governance.locks import (
    LOCK_HELD,
    RunLocked,
    pid_alive,
    publication_lock,
    remove_stale_temps,
    run_lock,
    temp_name,
    temp_owner,
)
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.governance.record import Release, get_release
from pulsesynth.paths import Paths
from pulsesynth.portal.sampling import SampleLimits, rate_limited

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path)


def _python(code: str, *args: str, **kw) -> subprocess.Popen[str]:
    env = dict(os.environ, PULSESYNTH_THREADS="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _register(paths: Paths, run_id: str, seed: int) -> Release:
    cand = make_candidate(paths, run_id=run_id, seed=seed)
    return register_candidate(paths, "taxi_trips", cand, f"model-{run_id}", "Taxi trips")


# --- publish and withdraw -------------------------------------------------------------------

PUBLISH_LOOP = """
import sys, pathlib
from pulsesynth.paths import Paths
from pulsesynth.governance.publisher import publish_approved
paths, stop = Paths(pathlib.Path(sys.argv[1])), pathlib.Path(sys.argv[2])
n = 0
while not stop.exists():
    publish_approved(paths, actor="loop")
    n += 1
print(n)
"""


def _wait_status(paths: Paths, candidate_id: str, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while get_release(paths, candidate_id).status != status:
        assert time.monotonic() < deadline, f"{candidate_id[:12]} never became {status}"
        time.sleep(0.05)


@pytest.mark.integration  # ten rounds of real processes: CI tier, not the unit tier
def test_withdraw_during_a_publish_loop_never_crashes_and_ends_consistent(
        paths: Paths) -> None:
    """10 withdrawals, each while another process publishes in a loop (and a new approved
    candidate is being published): none fails, and the end state is consistent."""
    stop = paths.root / "stop"
    loop = _python(PUBLISH_LOOP, str(paths.root), str(stop))
    withdrawn = []
    try:
        previous = _register(paths, "run0", seed=0)
        approve(paths, previous.candidate_id, "alice")
        _wait_status(paths, previous.candidate_id, "published")
        for trial in range(1, 11):
            nxt = _register(paths, f"run{trial}", seed=trial)
            approve(paths, nxt.candidate_id, "alice")  # the loop publishes it meanwhile
            rel = withdraw(paths, previous.candidate_id, "alice", note=f"trial {trial}")
            assert rel.status == "withdrawn"
            withdrawn.append(rel)
            _wait_status(paths, nxt.candidate_id, "published")
            previous = nxt
    finally:
        stop.touch()
        out, err = loop.communicate(timeout=120)
    assert loop.returncode == 0, err
    assert int(out) > 0
    index = json.loads((paths.published / "index.json").read_text())["dataset"]
    with open_db(paths) as conn:
        live = {r["version"] for r in conn.execute(
            "SELECT version FROM releases WHERE status = 'published'")}
    assert {e["version"] for e in index} == live == {"v11"}
    for entry in index:
        assert (paths.published / entry["path"]).is_dir()
    for rel in withdrawn:
        assert not (paths.published / "taxi_trips" / str(rel.version)).exists()
    assert sorted(p.name for p in (paths.state / "withdrawn" / "taxi_trips").iterdir()
                  if p.is_dir()).__len__() == 10
    assert not list(paths.published.glob(".tmp-*"))


def test_withdraw_waits_for_the_publication_lock(paths: Paths) -> None:
    rel = _register(paths, "run1", seed=1)
    approve(paths, rel.candidate_id, "alice")
    publish_approved(paths)
    done = threading.Event()
    with publication_lock(paths):
        worker = threading.Thread(target=lambda: (withdraw(
            paths, rel.candidate_id, "alice", note="after the lock"), done.set()))
        worker.start()
        time.sleep(0.5)
        # flock excludes two open files of one process too: the withdrawal waits.
        assert not done.is_set()
        assert get_release(paths, rel.candidate_id).status == "published"
    worker.join(timeout=30)
    assert done.is_set() and get_release(paths, rel.candidate_id).status == "withdrawn"


def test_publish_removes_stale_temporaries_of_dead_writers_only(paths: Paths) -> None:
    paths.published.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "60"])
    try:
        stale_dir = paths.published / f".tmp-{dead.pid}-{'a' * 32}"
        stale_index = paths.published / f".tmp-index-{dead.pid}-{'b' * 32}.json"
        legacy = paths.published / f".tmp-{'c' * 32}"  # written before names carried a pid
        live_dir = paths.published / f".tmp-{live.pid}-{'d' * 32}"
        live_index = paths.published / f".tmp-index-{live.pid}-{'e' * 32}.json"
        for d in (stale_dir, legacy, live_dir):
            d.mkdir()
            (d / "data.csv").write_text("x\n")
        for f in (stale_index, live_index):
            f.write_text("{}")
        publish_approved(paths)
        left = sorted(p.name for p in paths.published.glob(".tmp-*"))
        assert left == sorted([live_dir.name, live_index.name])
    finally:
        live.kill()
        live.wait()
    # Once its writer is gone, the next publication removes it too.
    publish_approved(paths)
    assert not list(paths.published.glob(".tmp-*"))


PUBLISH_THEN_HANG = """
import sys, time, pathlib
from pulsesynth.paths import Paths
from pulsesynth.governance.publisher import publish_approved

def hang(stage):
    if stage == "before_rename":
        print("built", flush=True)
        time.sleep(600)

publish_approved(Paths(pathlib.Path(sys.argv[1])), fault_hook=hang)
"""


@pytest.mark.integration  # a real publisher process, killed
def test_a_publish_killed_mid_build_is_cleaned_up_by_the_next(paths: Paths) -> None:
    rel = _register(paths, "run1", seed=1)
    approve(paths, rel.candidate_id, "alice")
    proc = _python(PUBLISH_THEN_HANG, str(paths.root))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "built"
    [tmp] = paths.published.glob(".tmp-*")
    assert temp_owner(tmp.name) == proc.pid and tmp.is_dir()
    proc.kill()
    proc.wait()
    assert get_release(paths, rel.candidate_id).status == "approved"
    [done] = publish_approved(paths)
    assert (done.candidate_id, done.version) == (rel.candidate_id, "v1")
    assert not list(paths.published.glob(".tmp-*"))


def test_temporary_names_carry_the_owner_pid() -> None:
    assert temp_owner(temp_name()) == os.getpid()
    assert temp_owner(temp_name("index", ".json")) == os.getpid()
    assert temp_owner(f".tmp-{'f' * 32}") is None
    assert pid_alive(os.getpid()) and not pid_alive(0)


def test_a_live_foreign_temporary_is_never_touched(paths: Paths) -> None:
    paths.published.mkdir(parents=True)
    theirs = paths.published / f".tmp-{os.getppid()}-{'0' * 32}"
    theirs.mkdir()
    ours = paths.published / temp_name()
    ours.mkdir()
    with publication_lock(paths):
        removed = remove_stale_temps(paths.published)
    # Under the lock, this process's own leftovers are stale; the parent's entry is live.
    assert removed == [ours.name] and theirs.is_dir()


# --- the sample rate limit ------------------------------------------------------------------

LIMITS = SampleLimits(max_rows=10, default_rows=1, rate_limit=5, window_s=10)


def _served(paths: Paths, instants: list[datetime], entity: str = "e") -> list[bool]:
    return [rate_limited(paths, entity, "ds_model/v1", {"n": 1}, LIMITS, t) is None
            for t in instants]


def test_rate_limit_refuses_requests_inside_the_window_even_past_a_whole_second(
        paths: Paths) -> None:
    """5 per 10 s: five requests at 0.5–0.9 s, then five at 10.1–10.5 s. Whole-second
    timestamps dropped the first five at 10.1 s (their second, 0, left the window) and
    served all ten within 10 s; counted on sub-second instants, 10.1–10.4 are refused and
    10.5 (when the 0.5 s request leaves) is served."""
    t0 = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
    offsets = [0.5, 0.6, 0.7, 0.8, 0.9, 10.1, 10.2, 10.3, 10.4, 10.5]
    served = _served(paths, [t0 + timedelta(seconds=x) for x in offsets])
    assert served == [True] * 5 + [False] * 4 + [True]


def test_rate_limit_window_slides_on_sub_second_instants(paths: Paths) -> None:
    t0 = datetime(2026, 1, 1, 0, 0, 0, 900_000, tzinfo=UTC)
    assert _served(paths, [t0 + timedelta(seconds=0.2 * i) for i in range(5)]) == [True] * 5
    # 9.999 s after the first request the window still holds 5; at 10.0 s the first leaves.
    assert _served(paths, [t0 + timedelta(seconds=9.999)]) == [False]
    assert _served(paths, [t0 + timedelta(seconds=10.0)]) == [True]
    assert _served(paths, [t0 + timedelta(seconds=10.1)]) == [False]
    assert _served(paths, [t0 + timedelta(seconds=10.2)]) == [True]


def test_rate_limit_sweep_serves_exactly_five_per_window(paths: Paths) -> None:
    """A request every 0.5 s for 30 s: exactly 15 served (5 per 10 s window), the rest
    refused and audited as refusals."""
    t0 = datetime(2026, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)
    served = _served(paths, [t0 + timedelta(seconds=0.5 * i) for i in range(60)])
    assert sum(served) == 15
    assert [i for i, ok in enumerate(served) if ok] == [0, 1, 2, 3, 4, 20, 21, 22, 23, 24,
                                                        40, 41, 42, 43, 44]
    with open_db(paths) as conn:
        counts = dict(conn.execute("SELECT action, COUNT(*) FROM audit_log GROUP BY action"
                                   ).fetchall())
    assert counts == {"release.sample": 15, "release.sample_refused": 45}
    # Another entity has its own window.
    assert _served(paths, [t0 + timedelta(seconds=29.6)], entity="other") == [True]


def test_rate_limit_retry_after_is_the_exact_wait_rounded_up(paths: Paths) -> None:
    t0 = datetime(2026, 1, 1, 0, 0, 0, 0, tzinfo=UTC)
    _served(paths, [t0 + timedelta(seconds=0.5 * i) for i in range(5)])
    retry = rate_limited(paths, "e", "ds_model/v1", {"n": 1}, LIMITS,
                         t0 + timedelta(seconds=3.2))
    assert retry == 7  # the oldest (t0) leaves the window at t0 + 10 s: 6.8 s → 7


# --- one run per dataset --------------------------------------------------------------------

HOLD_LOCK = """
import sys, time, pathlib
from pulsesynth.paths import Paths
from pulsesynth.runs import run_lock
with run_lock(Paths(pathlib.Path(sys.argv[1])), sys.argv[2], by="test holder"):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
print("released", flush=True)
"""


def _holder(paths: Paths, dataset: str, seconds: float = 120) -> subprocess.Popen[str]:
    proc = _python(HOLD_LOCK, str(paths.root), dataset, str(seconds))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_of_a_dataset_is_skipped_while_another_process_holds_the_lock(
        paths: Paths, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    holder = _holder(paths, "taxi_trips")
    try:
        with pytest.raises(RunLocked) as err:
            with run_lock(paths, "taxi_trips"):
                pass
        assert str(err.value) == (f"taxi_trips: skipped: {LOCK_HELD} (pid {holder.pid}, by "
                                  f"test holder, since {err.value.holder['since']})")
        # The pipeline's entry refuses before writing anything.
        run_dir = pipeline.new_run_dir(paths, "taxi_trips")
        with pytest.raises(RunLocked):
            pipeline.start_run("taxi_trips", run_dir, paths=paths)
        assert not run_dir.exists()
        # The CLI: one line, exit 2, nothing started.
        monkeypatch.setenv("PULSESYNTH_ROOT", str(paths.root))
        assert cli_main(["train", "taxi_trips"]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"error: taxi_trips: skipped: {LOCK_HELD} (pid {holder.pid}")
        assert not (paths.state / "runs").exists()
        # Another dataset is not blocked.
        with run_lock(paths, "patient_tests"):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_kill_9_releases_the_run_lock(paths: Paths) -> None:
    holder = _holder(paths, "taxi_trips")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with run_lock(paths, "taxi_trips"):  # immediately free: the kernel dropped the flock
        pass


def test_a_waiting_run_takes_the_lock_when_the_holder_finishes(paths: Paths) -> None:
    holder = _holder(paths, "taxi_trips", seconds=1.0)
    t0 = time.monotonic()
    with run_lock(paths, "taxi_trips", wait_s=30):
        waited = time.monotonic() - t0
    holder.wait(timeout=30)
    assert 0.3 < waited < 30


def test_run_lock_is_reentrant_for_its_holder_but_not_for_another_thread(
        paths: Paths) -> None:
    seen: list[BaseException | None] = []

    def other() -> None:
        try:
            with run_lock(paths, "taxi_trips"):
                seen.append(None)
        except RunLocked as exc:
            seen.append(exc)

    with run_lock(paths, "taxi_trips"):
        with run_lock(paths, "taxi_trips"):  # a pipeline step inside the flow's lock
            thread = threading.Thread(target=other)
            thread.start()
            thread.join()
    assert len(seen) == 1 and isinstance(seen[0], RunLocked)
    with run_lock(paths, "taxi_trips"):  # released at the outer block's end
        pass


# --- the flow reports a held lock as skipped ------------------------------------------------


@pytest.fixture(scope="module")
def harness() -> Iterator[str]:
    from flows.testing import close_test_harness, shared_test_harness

    yield shared_test_harness()
    close_test_harness()


def test_nightly_flow_skips_a_dataset_whose_run_lock_is_held(harness: str,
                                                            paths: Paths) -> None:
    """Nothing is planned, pulled or charged: the lock is taken before the first step (so
    the dataset need not even be catalogued here)."""
    from flows.nightly import format_table, run_nightly

    holder = _holder(paths, "taxi_trips")
    try:
        summary, state = run_nightly(datasets=["taxi_trips"], root=str(paths.root))
    finally:
        holder.kill()
        holder.wait()
    [row] = summary
    assert (row["status"], row["reason"], row["epsilon_spent"]) == (
        "skipped", LOCK_HELD, 0.0)
    assert row["note"].startswith(f"taxi_trips: skipped: {LOCK_HELD} (pid {holder.pid}")
    assert state.is_completed()
    assert f"skipped: {LOCK_HELD}" in format_table(summary)
    assert not (paths.state / "runs").exists()
