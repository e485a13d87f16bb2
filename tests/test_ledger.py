"""The privacy ledger: budget refusal, idempotency, races between processes, refresh policy."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pulsesynth.governance.db import audit_events, connect
from pulsesynth.governance.errors import BudgetExceeded, LedgerError
from pulsesynth.governance.ledger import Ledger
from pulsesynth.paths import Paths

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(Paths(tmp_path))


def _charge(ledger: Ledger, key: str, eps: float = 1.0, lifetime: float = 3.0,
            snapshot: str = "snap-a", now: datetime = T0, dataset: str = "taxi_trips"):
    return ledger.charge(dataset, run_id=f"run-{key}", snapshot_id=snapshot, epsilon=eps,
                         delta=1e-5, accountant="prv", idempotency_key=key,
                         lifetime_epsilon=lifetime, now=now)


def test_over_budget_is_refused_with_dataset_spent_requested_remaining(ledger: Ledger) -> None:
    _charge(ledger, "a", 1.0)
    _charge(ledger, "b", 1.5)
    with pytest.raises(BudgetExceeded) as err:
        _charge(ledger, "c", 1.0)
    msg = str(err.value)
    assert "taxi_trips" in msg and "spent ε=2.5" in msg and "requested ε=1" in msg
    assert "remaining ε=0.5" in msg and "lifetime ε=3" in msg
    assert (err.value.spent, err.value.requested, err.value.remaining) == (2.5, 1.0, 0.5)
    assert ledger.spent("taxi_trips").epsilon == 2.5          # nothing charged
    assert len(ledger.charges("taxi_trips")) == 2
    assert [e["subject"] for e in audit_events(ledger.paths, "ledger.refused")] == ["taxi_trips"]
    # A charge that exactly fills the budget is allowed; float sums do not cost a run.
    _charge(ledger, "d", 0.5)
    assert ledger.remaining("taxi_trips", 3.0) == 0.0
    other = Ledger(Paths(ledger.paths.root / "other"))
    for i in range(10):
        other.charge("census_income", run_id=f"r{i}", snapshot_id=f"s{i}", epsilon=0.1,
                     delta=0.0, accountant="rdp", idempotency_key=f"k{i}", lifetime_epsilon=1.0)
    assert other.retrains_left("census_income", 1.0, 0.1) == 0


def test_same_idempotency_key_charges_once(ledger: Ledger) -> None:
    first = _charge(ledger, "retry")
    again = _charge(ledger, "retry")
    assert first.new and not again.new and first.id == again.id
    assert ledger.spent("taxi_trips").epsilon == 1.0
    assert len(audit_events(ledger.paths, "ledger.charge")) == 1
    with pytest.raises(LedgerError, match="already used"):
        _charge(ledger, "retry", eps=2.0)


def test_spent_remaining_and_retrains_left_use_basic_composition(ledger: Ledger) -> None:
    _charge(ledger, "a", 1.0, lifetime=10)
    _charge(ledger, "b", 2.0, lifetime=10)
    spent = ledger.spent("taxi_trips")
    assert (spent.epsilon, spent.runs) == (3.0, 2)
    assert spent.delta == pytest.approx(2e-5)                  # δ sums too
    assert ledger.remaining("taxi_trips", 10) == 7.0
    assert ledger.retrains_left("taxi_trips", 10, 1.0) == 7
    assert ledger.retrains_left("taxi_trips", 10, 3.0) == 2
    assert ledger.spent("census_income").epsilon == 0.0        # per dataset


def test_refresh_interval_and_snapshot_change_both_required(ledger: Ledger) -> None:
    assert ledger.should_retrain("taxi_trips", "snap-a", 30, now=T0)       # first run
    _charge(ledger, "a", snapshot="snap-a", now=T0)
    late = T0 + timedelta(days=31)
    soon = T0 + timedelta(days=5)
    assert not ledger.should_retrain("taxi_trips", "snap-a", 30, now=late)  # unchanged
    decision = ledger.should_retrain("taxi_trips", "snap-b", 30, now=soon)  # too soon
    assert not decision and "refresh interval" in decision.reason
    assert ledger.should_retrain("taxi_trips", "snap-b", 30, now=late)


def test_ledger_and_audit_log_are_append_only(ledger: Ledger) -> None:
    _charge(ledger, "a")
    conn = connect(ledger.paths)
    try:
        for sql in ("UPDATE privacy_ledger SET epsilon = 0", "DELETE FROM privacy_ledger",
                    "UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
    finally:
        conn.close()
    assert ledger.spent("taxi_trips").epsilon == 1.0


def _race(root: str, worker: int, start, results) -> None:
    ledger = Ledger(Paths(Path(root)))
    start.wait()
    ok = 0
    for i in range(8):
        try:
            ledger.charge("taxi_trips", run_id=f"w{worker}-{i}", snapshot_id="snap",
                          epsilon=1.0, delta=1e-6, accountant="prv",
                          idempotency_key=f"w{worker}-{i}", lifetime_epsilon=10.0)
            ok += 1
        except BudgetExceeded:
            pass
    results.put(ok)


def test_two_processes_racing_cannot_overspend(tmp_path: Path) -> None:
    Ledger(Paths(tmp_path)).spent("taxi_trips")                 # create the database
    # spawn, not fork: the test process may hold threads (Prefect harness, torch) that a
    # forked child would inherit half-locked.
    ctx = mp.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), w, start, results))
             for w in range(2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    successes = results.get(timeout=5) + results.get(timeout=5)
    spent = Ledger(Paths(tmp_path)).spent("taxi_trips")
    assert successes == 10 and spent.runs == 10 and spent.epsilon == 10.0


def test_charge_takes_its_amounts_by_keyword_only(ledger: Ledger) -> None:
    # Two ε's, two ids and a key side by side: a swapped positional pair must not run.
    with pytest.raises(TypeError):
        ledger.charge("taxi_trips", "run-x", "snap", 1.0, 1e-5, "prv", "x", 3.0)
    assert ledger.charges("taxi_trips") == []
