"""The run policy (``pulsesynth.runs.plan_for_key`` / ``decide_retrain``) without Prefect and
without training: run directories are built from their bookkeeping files alone
(``pulsesynth.artifacts``), the ledger is a fresh SQLite file in ``tmp_path``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pulsesynth import runs
from pulsesynth.artifacts import RunDir
from pulsesynth.governance.ledger import Ledger
from pulsesynth.paths import Paths
from pulsesynth.runs import Outcome, RetrainDecision, RunPlan
from pulsesynth.warehouse import Warehouse, file_sha256

DS = "taxi_trips"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CODE = "0.0.0+src.test"
CONTENT = {"snapshot_id": "snap-a", "schema_hash": "schema-1", "config_digest": "config-1",
           "lifetime_epsilon": 10.0, "refresh_days": 30.0, "code_version": CODE}
KEY = runs.cache_key("snap-a", "schema-1", "config-1", CODE)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path)


def make_run(paths: Paths, run_id: str, *, key: str | None = KEY, snapshot: str = "snap-a",
             complete: bool = False) -> Path:
    """A run directory holding only what the policy reads: ``run.json``, ``cache.json`` and,
    for a finished run, empty files where the model and the candidate's reports go."""
    run = RunDir.of(paths, DS, run_id)
    run.write_run({"dataset": DS, "snapshot_id": snapshot})
    if key is not None:
        runs.record_key(run.path, key, {"snapshot_id": snapshot})
    if complete:
        cand = run.candidate
        for path in (run.model.state_pt, cand.synthetic_parquet, cand.privacy_json,
                     cand.utility_json, cand.audit_json, cand.release_stats_json,
                     cand.gate_json):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    return run.path


def plan(paths: Paths, **overrides: object) -> RunPlan:
    return runs.plan_for_key(paths, DS, **(CONTENT | overrides))  # type: ignore[arg-type]


def charge(paths: Paths, key: str, snapshot: str = "snap-a", now: datetime = T0) -> None:
    Ledger(paths).charge(DS, run_id="run-x", snapshot_id=snapshot, epsilon=1.0, delta=1e-5,
                         accountant="prv", idempotency_key=key, lifetime_epsilon=10.0,
                         now=now)


# --- plan ---------------------------------------------------------------------------------


def test_plan_new_when_no_run_holds_the_key(paths: Paths) -> None:
    make_run(paths, "20260101T000000Z-other", key="another-key", complete=True)
    target = RunDir.of(paths, DS, "20260102T000000Z-new").path
    p = plan(paths, run_dir=target)
    assert p.outcome is Outcome.NEW
    assert (p.reuse, p.resume) == (False, False)
    assert p.run_dir == target
    assert p.key == KEY
    assert not target.exists()                                  # planned, not created


def test_plan_new_without_run_dir_makes_a_fresh_timestamped_one(paths: Paths) -> None:
    p = plan(paths)
    assert p.outcome is Outcome.NEW
    assert p.run_dir.parent == RunDir.of(paths, DS, "x").path.parent
    assert p.run_dir.name[:8].isdigit() and p.run_dir.name[15] == "Z"


def test_plan_reuses_the_newest_finished_run_under_the_key(paths: Paths) -> None:
    make_run(paths, "20260101T000000Z-old", complete=True)
    newest = make_run(paths, "20260103T000000Z-new", complete=True)
    make_run(paths, "20260104T000000Z-open", complete=False)    # unfinished: not reused
    p = plan(paths)
    assert p.outcome is Outcome.REUSE
    assert (p.reuse, p.resume) == (True, False)
    assert p.run_dir == newest


def test_plan_resumes_an_unfinished_run_under_the_key(paths: Paths) -> None:
    unfinished = make_run(paths, "20260101T000000Z-open", complete=False)
    p = plan(paths)
    assert p.outcome is Outcome.RESUME
    assert (p.reuse, p.resume) == (False, True)
    assert p.run_dir == unfinished


def test_plan_key_covers_the_code_version(paths: Paths) -> None:
    make_run(paths, "20260101T000000Z-done", complete=True)
    target = RunDir.of(paths, DS, "20260102T000000Z-new").path
    assert plan(paths, code_version="0.0.1+src.changed", run_dir=target).outcome is Outcome.NEW


def test_plan_dict_round_trip_is_what_the_task_returns(paths: Paths) -> None:
    unfinished = make_run(paths, "20260101T000000Z-open")
    p = plan(paths)
    assert p.as_dict() == {
        "dataset": DS, "key": KEY, "snapshot_id": "snap-a", "schema_hash": "schema-1",
        "config_hash": "config-1", "code_version": CODE, "run_dir": str(unfinished),
        "reuse": False, "resume": True, "lifetime_epsilon": 10.0, "refresh_days": 30.0}
    assert RunPlan.from_dict(p.as_dict()) == p


def test_plan_run_keys_the_catalogued_table(built_root: Path) -> None:
    """The catalog glue: the key is made from the stored file's hash, the declared schema's
    hash and the config (``built_root`` puts this test in the integration tier)."""
    paths = Paths(built_root)
    wh = Warehouse(paths)
    entry = wh.entry(DS)
    p = runs.plan_run(paths, DS, {"epochs": 1}, code_version=CODE)
    snapshot = file_sha256(paths.resolve(entry["table_path"]))
    assert (p.snapshot_id, p.schema_hash, p.config_hash) == (
        snapshot, wh.schema(DS).hash, runs.config_hash({"epochs": 1}))
    assert p.key == runs.cache_key(snapshot, wh.schema(DS).hash,
                                   runs.config_hash({"epochs": 1}), CODE)
    assert p.outcome is Outcome.NEW and not p.run_dir.exists()
    assert (p.lifetime_epsilon, p.refresh_days) == (entry["lifetime_epsilon"],
                                                    entry["refresh_days"])


# --- decide -------------------------------------------------------------------------------


def test_decide_train_on_the_first_run(paths: Paths) -> None:
    d = runs.decide_retrain(paths, plan(paths), now=T0)
    assert d == RetrainDecision(Outcome.TRAIN, f"{DS}: never trained")
    assert d.as_dict() == {"action": "train", "reason": f"{DS}: never trained"}


def test_decide_resume_when_this_key_was_already_charged(paths: Paths) -> None:
    charge(paths, runs.idempotency_key(DS, KEY))
    d = runs.decide_retrain(paths, plan(paths), now=T0 + timedelta(days=1))
    reason = (f"{DS}: resuming a run already charged under this key "
              "(the charge is not repeated)")
    assert d == RetrainDecision(Outcome.RESUME, reason)
    assert d.as_dict() == {"action": "train", "reason": reason}


def test_decide_reuse_a_finished_run_of_the_unchanged_snapshot(paths: Paths) -> None:
    charge(paths, "another-key")
    done = make_run(paths, "20260101T000000Z-done", key="old-config", complete=True)
    d = runs.decide_retrain(paths, plan(paths), now=T0 + timedelta(days=60))
    reason = f"{DS}: table unchanged since run run-x; nothing charged"
    assert d == RetrainDecision(Outcome.REUSE, reason, run_dir=done)
    assert d.as_dict() == {"action": "reuse", "run_dir": str(done), "reason": reason}


def test_decide_skip_when_the_policy_says_no_and_nothing_is_finished(paths: Paths) -> None:
    charge(paths, "another-key", snapshot="snap-old")
    make_run(paths, "20260101T000000Z-open", key="old", complete=False)
    make_run(paths, "20260101T000001Z-done", key="old", snapshot="snap-old", complete=True)
    d = runs.decide_retrain(paths, plan(paths), now=T0 + timedelta(days=5))
    due = (T0 + timedelta(days=30)).isoformat()
    reason = f"{DS}: snapshot changed but the refresh interval (30 days) ends {due}"
    assert d == RetrainDecision(Outcome.SKIP, reason)
    assert d.as_dict() == {"action": "skip", "reason": reason}


def test_decide_train_when_the_snapshot_changed_and_the_interval_passed(paths: Paths) -> None:
    charge(paths, "another-key", snapshot="snap-old")
    d = runs.decide_retrain(paths, plan(paths), now=T0 + timedelta(days=31))
    assert d == RetrainDecision(Outcome.TRAIN,
                                f"{DS}: snapshot changed and 30 days passed since run run-x")
    assert d.action == "train"


def test_decide_forced_retrain_overrides_reuse_and_skip(paths: Paths) -> None:
    charge(paths, "another-key")
    make_run(paths, "20260101T000000Z-done", key="old-config", complete=True)
    d = runs.decide_retrain(paths, plan(paths), force=True, now=T0 + timedelta(days=1))
    reason = (f"{DS}: table unchanged since run run-x; nothing charged; retraining forced "
              "(charged, within the lifetime budget)")
    assert d == RetrainDecision(Outcome.FORCED_RETRAIN, reason)
    assert d.as_dict() == {"action": "train", "reason": reason}


def test_force_keeps_the_policy_reason_when_a_retrain_is_due_anyway(paths: Paths) -> None:
    d = runs.decide_retrain(paths, plan(paths), force=True, now=T0)
    assert d == RetrainDecision(Outcome.TRAIN, f"{DS}: never trained")


def test_outcome_values_are_stable() -> None:
    """The values are what logs and summaries may show; renaming one is a visible change."""
    assert [o.value for o in Outcome] == ["new", "reuse", "resume", "train",
                                          "forced-retrain", "skip"]
