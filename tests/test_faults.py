"""Faults: a full disk or a refused write during a run or a publication ends in one line
that says what failed and what was (not) charged or published, leaving the ledger and
``published/`` consistent (no double charge on retry); a killed nightly run leaves no
child process (its temporary Prefect server) behind."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from governance_fixtures import make_candidate

from pulsesynth import pipeline
from pulsesynth.artifacts import RunDir
from pulsesynth.cli import main as cli_main
from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.errors import PublishError
from pulsesynth.governance.ledger import Ledger
from pulsesynth.governance.lifecycle import approve, withdraw
from pulsesynth.governance.locks import pid_alive
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.governance.record import Release, get_release
from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent
DS = "taxi_trips"


def _enospc(path: str = "") -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path or None)


def _tree(root: Path) -> dict[str, str]:
    """Every entry under a directory (files with their hash) to compare states exactly."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "dir" for p in sorted(root.rglob("*"))}


# --- publication ----------------------------------------------------------------------------


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path)


def _approved(paths: Paths, run_id: str, seed: int) -> Release:
    cand = make_candidate(paths, run_id=run_id, seed=seed)
    rel = register_candidate(paths, DS, cand, f"model-{run_id}", "Taxi trips")
    return approve(paths, rel.candidate_id, "alice")


def _failing_at(stage: str, error: OSError) -> Callable[[str], None]:
    def hook(at: str) -> None:
        if at == stage:
            raise error
    return hook


def test_disk_full_while_building_a_release_publishes_nothing_and_says_so(
        paths: Paths) -> None:
    first = _approved(paths, "run1", seed=1)
    publish_approved(paths)
    second = _approved(paths, "run2", seed=2)
    before = _tree(paths.published)
    with pytest.raises(PublishError) as err:
        publish_approved(paths, fault_hook=_failing_at("before_rename", _enospc()))
    message = str(err.value)
    assert "\n" not in message
    assert message == (
        f"publish failed: No space left on device (ENOSPC) while publishing {DS} "
        f"{second.candidate_id[:12]} (table); it stays approved and its temporary files "
        "were removed; nothing was published; published/index.json is unchanged — run "
        "publish again once the disk is fixed")
    assert _tree(paths.published) == before  # no version, no temporary entry, same index
    assert get_release(paths, second.candidate_id).status == "approved"
    assert get_release(paths, first.candidate_id).status == "published"
    # Once there is space, the retry publishes it as the next version.
    [done] = publish_approved(paths)
    assert (done.candidate_id, done.version) == (second.candidate_id, "v2")
    assert not list(paths.published.glob(".tmp-*"))


def test_permission_error_on_the_index_keeps_the_previous_index(paths: Paths) -> None:
    _approved(paths, "run1", seed=1)
    publish_approved(paths)
    index_before = (paths.published / "index.json").read_bytes()
    second = _approved(paths, "run2", seed=2)
    denied = OSError(errno.EACCES, os.strerror(errno.EACCES), "index.json")
    with pytest.raises(PublishError) as err:
        publish_approved(paths, fault_hook=_failing_at("before_index", denied))
    assert str(err.value) == (
        "publish failed while rewriting published/index.json: Permission denied (EACCES); "
        f"1 release(s) were published before it ({DS} v2), but the portal's index may still "
        "list the previous state: run publish again once the disk is fixed")
    assert (paths.published / "index.json").read_bytes() == index_before
    # The next publication only rewrites the index: the release is listed, nothing doubled.
    assert publish_approved(paths) == []
    index = json.loads((paths.published / "index.json").read_text())["dataset"]
    assert [e["version"] for e in index] == ["v1", "v2"]
    assert get_release(paths, second.candidate_id).version == "v2"


def test_cli_publish_on_a_full_disk_prints_one_line(
        paths: Paths, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A real write path fails (the rename into published/), not the test hook."""
    from pulsesynth.governance import publisher

    rel = _approved(paths, "run1", seed=1)
    paths.published.mkdir(parents=True, exist_ok=True)
    before = _tree(paths.published)

    def full(src: Any, dst: Any) -> None:
        raise _enospc(str(dst))

    monkeypatch.setattr(publisher.os, "rename", full)
    monkeypatch.setenv("PULSESYNTH_ROOT", str(paths.root))
    assert cli_main(["publish"]) == 2
    monkeypatch.undo()
    assert capsys.readouterr().err == (
        f"error: publish failed: No space left on device (ENOSPC) while publishing {DS} "
        f"{rel.candidate_id[:12]} (table); it stays approved and its temporary files were "
        "removed; nothing was published; published/index.json is unchanged — run publish "
        "again once the disk is fixed\n")
    assert _tree(paths.published) == before
    assert get_release(paths, rel.candidate_id).status == "approved"


def test_disk_full_during_a_withdrawal_changes_nothing(
        paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    from pulsesynth.governance import catalogue

    rel = _approved(paths, "run1", seed=1)
    publish_approved(paths)
    before = _tree(paths.published)
    real_replace = catalogue.os.replace

    def full(src: Any, dst: Any) -> None:
        raise _enospc(str(dst))

    monkeypatch.setattr(catalogue.os, "replace", full)
    with pytest.raises(PublishError) as err:
        withdraw(paths, rel.candidate_id, "alice", note="disk full")
    assert str(err.value) == (
        f"{rel.candidate_id[:12]}: withdraw failed: No space left on device (ENOSPC); nothing "
        "changed (the release keeps its status and the portal's index its entry)")
    assert _tree(paths.published) == before
    assert get_release(paths, rel.candidate_id).status == "published"
    monkeypatch.setattr(catalogue.os, "replace", real_replace)
    assert withdraw(paths, rel.candidate_id, "alice", note="retry").status == "withdrawn"


# --- runs -----------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    shutil.copytree(REPO / "schemas", tmp_path / "schemas")
    paths = Paths(tmp_path)
    Warehouse(paths).build([DS])
    monkeypatch.setenv("PULSESYNTH_ROOT", str(tmp_path))
    return paths


def _charges(paths: Paths) -> list[Any]:
    return list(Ledger(paths).charges(DS))


def test_disk_full_in_the_run_directory_after_the_charge_is_one_line_and_charged_once(
        root: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = pipeline.new_run_dir(root, DS)
    pipeline.start_run(DS, run_dir, max_rows=300, paths=root)

    def full(self: RunDir, record: Any) -> Path:
        raise _enospc(str(self.sizes_json))

    monkeypatch.setattr(RunDir, "write_sizes", full)
    for attempt in range(2):  # the retry resumes under the same charge
        with pytest.raises(pipeline.RunError) as err:
            pipeline.train(run_dir, paths=root, epochs=1)
        [charge] = _charges(root)
        assert str(err.value) == (
            f"{DS}: train of run {run_dir.name} failed: No space left on device (ENOSPC) on "
            f"sizes.json; nothing was published; the ledger charge #{charge.id} "
            f"(ε = {charge.epsilon:g}) stands and resuming this run (same run directory) is "
            "not charged again"), attempt
    assert not RunDir(run_dir).model.state_pt.exists()


def test_permission_error_before_the_charge_charges_nothing(
        root: Paths, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def denied(self: RunDir, run: Any) -> Path:
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(self.run_json))

    monkeypatch.setattr(RunDir, "write_run", denied)
    run_dir = root.state / "runs" / DS / "r1"
    assert cli_main(["train", DS, "--max-rows", "300", "--epochs", "1",
                     "--out", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {DS}: start_run of run r1 failed: Permission denied (EACCES) on "
                   "run.json; nothing was published; nothing was charged to the ledger\n")
    assert _charges(root) == []


@pytest.mark.integration
def test_disk_full_saving_the_trained_model_then_a_retry_is_not_charged_again(
        root: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real training path: the fit runs, saving the model hits a full disk; the retry in
    the same run directory trains and saves under the one charge."""
    import torch

    run_dir = pipeline.new_run_dir(root, DS)
    pipeline.start_run(DS, run_dir, max_rows=300, paths=root)
    real_save = torch.save

    def full(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        raise _enospc(str(f))

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(pipeline.RunError) as err:
        pipeline.train(run_dir, paths=root, epochs=1)
    assert "No space left on device (ENOSPC) on model.pt" in str(err.value)
    assert "not charged again" in str(err.value)
    [charge] = _charges(root)
    monkeypatch.setattr(torch, "save", real_save)
    report = pipeline.train(run_dir, paths=root, epochs=1)
    assert report["charge_id"] == charge.id
    assert [c.id for c in _charges(root)] == [charge.id]
    assert RunDir(run_dir).model.state_pt.is_file()


# --- no orphan after kill -9 ----------------------------------------------------------------


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - found
        found |= frontier
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.slow
@pytest.mark.integration
def test_a_nightly_run_sends_its_last_logs_before_its_server_stops(root: Paths) -> None:
    """`python -m flows.nightly` ends without "Error logging to API": the flow's last log
    lines reach its temporary server before the server stops. Before the fix, a run that
    reused its model printed it every time (5 of 5 here); a first run, not always."""
    shutil.copy(REPO / "prefect.toml", root.root / "prefect.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PULSESYNTH_ROOT": str(root.root), "PULSESYNTH_THREADS": "1",
            "PYTHONPATH": str(REPO)}
    for _ in ("train", "reuse"):
        done = subprocess.run([sys.executable, "-m", "flows.nightly", "--datasets", DS,
                               "--max-rows", "300", "--epochs", "1"], cwd=root.root,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Stopping temporary server" in done.stderr
        assert "Error logging to API" not in done.stderr, done.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("runner", ["default", "dask"])
def test_kill_9_of_a_nightly_run_leaves_no_child_process(root: Paths, runner: str) -> None:
    """`python -m flows.nightly` (what `make run` runs) on a small slice, killed with -9
    once its temporary Prefect server is up and the dataset's run has started: within a few
    seconds no process it started (the uvicorn server above all, Dask's workers with the
    Dask runner) is left running."""
    shutil.copy(REPO / "prefect.toml", root.root / "prefect.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PULSESYNTH_ROOT": str(root.root), "PULSESYNTH_THREADS": "1",
            "PYTHONPATH": str(REPO), "PULSESYNTH_DASK_WORKERS": "1"}
    log = open(root.root / "nightly.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "flows.nightly", "--datasets", DS,
                             "--max-rows", "300", "--epochs", "50", "--task-runner", runner],
                            cwd=root.root, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    lock = root.state / "locks" / f"run-{DS}.lock"
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while not (lock.is_file() and lock.read_text()):
            assert proc.poll() is None, (root.root / "nightly.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the nightly run never started"
            time.sleep(0.5)
        children = _children(proc.pid)
        servers = [c for c in children if "uvicorn" in _cmdline(c)]
        assert len(servers) == 1, {c: _cmdline(c) for c in children}
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while any(pid_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = {c: _cmdline(c) for c in children if pid_alive(c)}
        assert survivors == {}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for c in children | _children(proc.pid):  # never leave a survivor behind
            if pid_alive(c):
                os.kill(c, signal.SIGKILL)
        log.close()
