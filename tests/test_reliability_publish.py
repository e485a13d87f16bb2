"""Reliability: kill -9 during publication and withdrawal, and concurrent publishers.

Each trial copies a prepared project root (one version of each kind already published, a
newer table and classifier approved, so publication also supersedes), starts a real
publisher process and kills it with SIGKILL — at each named stage of the publisher (its
fault hook kills its own process there) and at uniformly random times over a measured
publication. What a reader would be served is then checked (every ``index.json`` entry's
files exist with the SHA-256 the index states), a recovery publication runs, and the end
state must be complete: every approved candidate published exactly once, the index equal
to the database, no temporary entry left under ``published/``.

Slow (about 6 minutes): ``make test-reliability`` (figures into
``benchmarks/results/reliability.json``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from governance_fixtures import make_candidate
from model_fixtures import make_classifier_candidate, make_untrained_model_candidate
from reliability_results import KillTrial, Section

from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.db import open_db
from pulsesynth.governance.lifecycle import approve
from pulsesynth.governance.publisher import publish_approved
from pulsesynth.governance.record import list_releases
from pulsesynth.paths import Paths

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

REPO = Path(__file__).resolve().parent.parent
STAGES = ("before_rename", "after_rename", "before_index")
RANDOM_PUBLISH_KILLS = 40
RANDOM_WITHDRAW_KILLS = 8
CONCURRENT_ROUNDS = 8

#: The publisher (or a withdrawal) in its own process. It prints ``ready`` when its imports
#: are done, so a random kill lands in the work, not in the interpreter's start-up.
CHILD = """
import os, signal, sys
from pathlib import Path
from pulsesynth.paths import Paths
paths, action, stage = Paths(Path(sys.argv[1])), sys.argv[2], sys.argv[3]
def hook(name):
    if name == stage:
        os.kill(os.getpid(), signal.SIGKILL)
print("ready", flush=True)
if action == "publish":
    from pulsesynth.governance.publisher import publish_approved
    for _ in range(20 if stage == "loop" else 1):
        publish_approved(paths, fault_hook=hook)
else:
    from pulsesynth.governance.lifecycle import withdraw
    for candidate_id in action.split(","):
        withdraw(paths, candidate_id, "reliability", "withdrawn by the reliability suite")
print("done", flush=True)
"""


@pytest.fixture(scope="module")
def section() -> Iterator[Section]:
    record = Section("publish")
    yield record
    record.write()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1 of a table, a classifier and a model published; newer table and classifier
    candidates approved and waiting."""
    root = tmp_path_factory.mktemp("template")
    shutil.copytree(REPO / "schemas", root / "schemas")
    paths = Paths(root)
    first = [("table", make_candidate(paths)), ("classifier", make_classifier_candidate(paths)),
             ("model", make_untrained_model_candidate(paths))]
    for kind, cand in first:
        rel = register_candidate(paths, "taxi_trips", cand, f"m1-{kind}", kind=kind)
        approve(paths, rel.candidate_id, "alice")
    publish_approved(paths)
    second = [("table", make_candidate(paths, run_id="run2", seed=1)),
              ("classifier", make_classifier_candidate(paths, run_id="c2", seed=1))]
    for kind, cand in second:
        rel = register_candidate(paths, "taxi_trips", cand, f"m2-{kind}", kind=kind)
        approve(paths, rel.candidate_id, "alice")
    return root


def _trial_root(template: Path, tmp_path: Path, n: int) -> Path:
    root = tmp_path / f"trial-{n}"
    shutil.copytree(template, root)
    return root


def _start(root: Path, action: str, stage: str = "") -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(root), action, stage],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=root, env=os.environ | {"PULSESYNTH_ROOT": str(root)})
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def served_inconsistencies(root: Path) -> list[str]:
    """What a portal reader would trip on: an index entry whose file is missing or differs."""
    published = root / "published"
    index = published / "index.json"
    if not index.exists():
        return []
    try:
        entries = json.loads(index.read_text("utf-8"))["dataset"]
    except (ValueError, KeyError) as exc:
        return [f"index.json unreadable: {type(exc).__name__}"]
    problems = []
    for entry in entries:
        for f in entry["files"]:
            path = published / entry["path"] / f["name"]
            if not path.is_file():
                problems.append(f"{entry['identifier']}: {f['name']} missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != f["sha256"]:
                problems.append(f"{entry['identifier']}: {f['name']} differs from the index")
    return problems


def final_inconsistencies(root: Path) -> list[str]:
    """After a recovery publication: the complete, consistent end state."""
    paths = Paths(root)
    problems = served_inconsistencies(root)
    if list_releases(paths, status="approved"):
        problems.append("an approved candidate was left unpublished")
    with open_db(paths) as conn:
        rows = conn.execute("SELECT candidate_id, kind, version, status FROM releases "
                            "WHERE status IN ('published', 'superseded')").fetchall()
    listed = {(e["candidate_id"], e["version"])
              for e in json.loads((paths.published / "index.json").read_text())["dataset"]}
    if listed != {(r["candidate_id"], r["version"]) for r in rows}:
        problems.append("index.json differs from the database")
    live = Counter(r["kind"] for r in rows if r["status"] == "published")
    if any(count != 1 for count in live.values()):
        problems.append(f"published per kind {dict(live)} (one expected)")
    cards = Counter()
    for card in paths.published.glob("*/v*/*card.json"):
        cards[json.loads(card.read_text())["candidate_id"]] += 1
    if any(count > 1 for count in cards.values()):
        problems.append("a candidate was published into two version directories")
    leftovers = [p.name for p in paths.published.iterdir() if p.name.startswith(".tmp-")]
    if leftovers:
        problems.append(f"{len(leftovers)} temporary entries left under published/")
    return problems


def _last_line(proc: subprocess.Popen[str]) -> str:
    err = proc.stderr.read() if proc.stderr else ""
    return (err.strip().splitlines() or [""])[-1]


def _kill_and_check(root: Path, proc: subprocess.Popen[str], target: str,
                    stage: str, delay: float | None) -> KillTrial:
    if delay is not None:
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=120)
    trial = KillTrial(target, stage)
    # Killed (-9) or finished first (0, a late random kill): anything else is a crash.
    if proc.returncode not in (0, -signal.SIGKILL):
        trial.inconsistencies.append(f"exit {proc.returncode}: {_last_line(proc)}")
    if stage in STAGES and proc.returncode != -signal.SIGKILL:
        trial.inconsistencies.append(f"the publisher never reached {stage}")
    trial.inconsistencies += [f"after kill: {p}" for p in served_inconsistencies(root)]
    publish_approved(Paths(root))   # the next night's publication recovers
    trial.inconsistencies += [f"after recovery: {p}" for p in final_inconsistencies(root)]
    return trial


@pytest.fixture(scope="module")
def publish_seconds(template: Path, tmp_path_factory: pytest.TempPathFactory) -> float:
    """How long one publication of the template takes after start-up (random kills span it)."""
    root = _trial_root(template, tmp_path_factory.mktemp("timing"), 0)
    proc = _start(root, "publish")
    start = time.perf_counter()
    assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    assert final_inconsistencies(root) == []
    return time.perf_counter() - start


@pytest.mark.parametrize("stage", STAGES)
def test_kill_at_each_publisher_stage_serves_old_or_new_and_recovers(
        template: Path, tmp_path: Path, stage: str, section: Section) -> None:
    root = _trial_root(template, tmp_path, 1)
    trial = _kill_and_check(root, _start(root, "publish", stage), "publish", stage, None)
    section.kills.append(trial)
    assert trial.inconsistencies == []


def test_random_kills_during_publication_never_serve_a_broken_release(
        template: Path, tmp_path: Path, publish_seconds: float, section: Section) -> None:
    rng = random.Random(20261202)   # public: only when the kills land
    trials = []
    for n in range(RANDOM_PUBLISH_KILLS):
        root = _trial_root(template, tmp_path, n)
        delay = rng.uniform(0, publish_seconds)
        trials.append(_kill_and_check(root, _start(root, "publish"), "publish",
                                      f"random {delay:.3f}s", delay))
        shutil.rmtree(root)
    section.kills += trials
    assert [t.inconsistencies for t in trials if t.inconsistencies] == []


def test_random_kills_during_withdrawal_never_serve_a_broken_release(
        template: Path, tmp_path: Path, section: Section) -> None:
    rng = random.Random(7)
    trials = []
    for n in range(RANDOM_WITHDRAW_KILLS):
        root = _trial_root(template, tmp_path, n)
        live = list_releases(Paths(root), status="published")[0].candidate_id
        delay = rng.uniform(0, 0.5)
        trials.append(_kill_and_check(root, _start(root, live), "withdraw",
                                      f"random {delay:.3f}s", delay))
        shutil.rmtree(root)
    section.kills += trials
    assert [t.inconsistencies for t in trials if t.inconsistencies] == []


def test_publishers_in_a_loop_and_withdrawals_all_succeed_and_agree(
        template: Path, tmp_path: Path, section: Section) -> None:
    failures: list[str] = []
    for n in range(CONCURRENT_ROUNDS):
        root = _trial_root(template, tmp_path, n)
        live = ",".join(r.candidate_id for r in list_releases(Paths(root), status="published"))
        procs = [_start(root, "publish", "loop") for _ in range(2)] + [_start(root, live)]
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            if proc.returncode != 0 or "done" not in out:
                failures.append(f"round {n}: exit {proc.returncode}: "
                                f"{(err.strip().splitlines() or [''])[-1]}")
        trial = KillTrial("2 publishers x 20 + 3 withdrawals", f"round {n}",
                          final_inconsistencies(root))
        section.kills.append(trial)
        failures += trial.inconsistencies
        shutil.rmtree(root)
    assert failures == []
