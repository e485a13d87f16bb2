"""Reliability: kill -9 of the nightly flow at several points, and two runs at once.

The real nightly flow (``python -m flows.nightly``, its own temporary Prefect server) runs
on a 1,000-row slice of ``taxi_trips`` for one epoch. One complete run is timed; each
trial then kills a fresh run with SIGKILL at a fraction of that time (validation, the
charge, training, the audit, registration), checks that no process it started is still
alive five seconds later, runs the flow again to completion and counts the ledger's
charges: a killed run's charge is reused by the next run (resume), never paid twice.
Two flows started together on the same dataset must both end cleanly with one charge.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from reliability_results import KillTrial, Section

from pulsesynth.governance.ledger import Ledger
from pulsesynth.governance.record import list_releases
from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

REPO = Path(__file__).resolve().parent.parent
DATASET = "taxi_trips"
FLOW_ARGS = ["--datasets", DATASET, "--max-rows", "1000", "--epochs", "1", "--json"]
FRACTIONS = (0.15, 0.35, 0.55, 0.75, 0.9)


@pytest.fixture(scope="module")
def section() -> Iterator[Section]:
    record = Section("nightly_flow")
    yield record
    record.write()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("flow-template")
    shutil.copytree(REPO / "schemas", root / "schemas")
    Warehouse(Paths(root)).build([DATASET])
    return root


def _root(template: Path, tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(template, root)
    return root


def _start_flow(root: Path) -> subprocess.Popen[str]:
    env = os.environ | {"PULSESYNTH_ROOT": str(root), "PREFECT_HOME": str(root / "prefect"),
                        "PULSESYNTH_THREADS": "1"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen([sys.executable, "-m", "flows.nightly", *FLOW_ARGS], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _charges(root: Path) -> int:
    return len(Ledger(Paths(root)).charges(DATASET))


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = proc.communicate(timeout=900)
    return proc.returncode, out + err


@pytest.fixture(scope="module")
def run_seconds(template: Path, tmp_path_factory: pytest.TempPathFactory) -> float:
    root = _root(template, tmp_path_factory.mktemp("timing"), "full")
    start = time.monotonic()
    code, output = _finish(_start_flow(root))
    assert code == 0, output[-2000:]
    assert _charges(root) == 1
    return time.monotonic() - start


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_a_killed_nightly_run_leaves_no_process_and_is_never_charged_twice(
        template: Path, tmp_path: Path, run_seconds: float, fraction: float,
        section: Section) -> None:
    root = _root(template, tmp_path, f"kill-{fraction}")
    proc = _start_flow(root)
    time.sleep(run_seconds * fraction)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    time.sleep(5)
    orphans = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    for child in orphans:   # do not leave them to the next trial
        child.kill()
    charged_when_killed = _charges(root)
    code, output = _finish(_start_flow(root))
    trial = KillTrial("nightly flow", f"{fraction:.0%} of a run", orphans=len(orphans),
                      double_charges=max(0, _charges(root) - 1))
    if code != 0:
        trial.inconsistencies.append(f"the next run failed: {output.strip().splitlines()[-1:]}")
    if not list_releases(Paths(root), DATASET):
        trial.inconsistencies.append("the next run registered no candidate")
    section.kills.append(trial)
    assert (trial.orphans, trial.double_charges, trial.inconsistencies) == (0, 0, []), (
        charged_when_killed, output[-1500:])


def test_two_runs_on_one_dataset_at_once_end_cleanly_with_one_charge(
        template: Path, tmp_path: Path, section: Section) -> None:
    root = _root(template, tmp_path, "twice")
    first, second = _start_flow(root), _start_flow(root)
    results = [_finish(first), _finish(second)]
    trial = KillTrial("two nightly flows at once", "concurrent",
                      double_charges=max(0, _charges(root) - 1))
    trial.inconsistencies += [f"exit {code}: {out.strip().splitlines()[-1:]}"
                              for code, out in results if code != 0]
    section.kills.append(trial)
    assert (trial.double_charges, trial.inconsistencies) == (0, [])
