"""The privacy ledger: every training run's (ε, δ) charged before training starts.

Composition rule: **basic (sequential) composition** — a dataset's spent ε is the plain sum
of the ε of every charged run, and its spent δ the plain sum of their δ. This is the safe
floor (it holds for any mix of mechanisms and accountants); tighter cross-run accounting
(e.g. composing the runs' RDP curves) would spend less but needs every run's accountant
state, which the ledger does not keep. Sampling again from a trained model is
post-processing and is never charged.

A charge is one ``BEGIN IMMEDIATE`` transaction: read the spent budget, refuse if the new
charge would pass the lifetime ε, insert. The write lock is held from the first read, so
two processes racing cannot both pass the check. An idempotency key makes a retried task
charge once: the same key returns the recorded charge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pulsesynth.governance.db import log_event, now_iso, open_db, transaction
from pulsesynth.governance.errors import BudgetExceeded, LedgerError
from pulsesynth.paths import Paths

# Tolerance for float sums: 10 charges of ε=1.0 must fit a lifetime ε of 10.
EPS_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Charge:
    """One recorded charge; ``new`` is False when an idempotent retry found it."""

    id: int
    dataset: str
    run_id: str
    snapshot_id: str
    epsilon: float
    delta: float
    accountant: str
    idempotency_key: str
    charged_at: str
    new: bool = True


@dataclass(frozen=True)
class Spent:
    """A dataset's spent budget under basic composition."""

    dataset: str
    epsilon: float
    delta: float
    runs: int


@dataclass(frozen=True)
class RetrainDecision:
    """Whether to retrain, and why (truthy when a retrain is due)."""

    retrain: bool
    reason: str

    def __bool__(self) -> bool:
        return self.retrain


class Ledger:
    """The privacy ledger of one installation (``warehouse/governance.db``)."""

    def __init__(self, paths: Paths | None = None) -> None:
        self.paths = paths or Paths.default()

    def charge(self, dataset: str, run_id: str, snapshot_id: str, epsilon: float,
               delta: float, accountant: str, idempotency_key: str,
               lifetime_epsilon: float, *, actor: str = "pipeline",
               now: datetime | None = None) -> Charge:
        """Charge a training run before it starts; refuse past the lifetime budget.

        Raises :class:`BudgetExceeded` (dataset, spent, requested, remaining) or
        :class:`LedgerError` when the key was used for a different charge.
        """
        if not (epsilon > 0 and math.isfinite(epsilon)):
            raise LedgerError(f"{dataset}: epsilon must be a positive number, got {epsilon!r}")
        if not (0 <= delta < 1):
            raise LedgerError(f"{dataset}: delta must be in [0, 1), got {delta!r}")
        if not idempotency_key:
            raise LedgerError(f"{dataset}: an idempotency key is required")
        with open_db(self.paths) as conn, transaction(conn):
            row = conn.execute("SELECT * FROM privacy_ledger WHERE idempotency_key = ?",
                               (idempotency_key,)).fetchone()
            if row is not None:
                existing = _charge(row, new=False)
                if (existing.dataset, existing.run_id, existing.snapshot_id) != (
                        dataset, run_id, snapshot_id) or not math.isclose(
                        existing.epsilon, epsilon) or not math.isclose(existing.delta, delta):
                    raise LedgerError(
                        f"{dataset}: idempotency key {idempotency_key!r} was already used for "
                        f"a different charge ({existing.dataset}, run {existing.run_id})")
                return existing
            spent = _spent(conn, dataset)
            if spent.epsilon + epsilon > lifetime_epsilon + EPS_TOLERANCE:
                log_event(conn, actor, "ledger.refused", dataset,
                          {"run_id": run_id, "spent": spent.epsilon, "requested": epsilon,
                           "lifetime": lifetime_epsilon}, now)
                # The refusal is logged, then the transaction must still commit that log.
                refusal = BudgetExceeded(dataset, spent.epsilon, epsilon, lifetime_epsilon)
            else:
                refusal = None
                at = now_iso(now)
                cur = conn.execute(
                    "INSERT INTO privacy_ledger (dataset, run_id, snapshot_id, epsilon, delta, "
                    "accountant, idempotency_key, charged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (dataset, run_id, snapshot_id, float(epsilon), float(delta), accountant,
                     idempotency_key, at))
                log_event(conn, actor, "ledger.charge", dataset,
                          {"run_id": run_id, "snapshot_id": snapshot_id, "epsilon": epsilon,
                           "delta": delta, "accountant": accountant,
                           "idempotency_key": idempotency_key,
                           "spent_after": spent.epsilon + epsilon}, now)
                charge_id = int(cur.lastrowid or 0)
        if refusal is not None:
            raise refusal
        return Charge(charge_id, dataset, run_id, snapshot_id, float(epsilon), float(delta),
                      accountant, idempotency_key, at)

    def spent(self, dataset: str) -> Spent:
        """Spent (ε, δ) by basic composition: the sums over every charge."""
        with open_db(self.paths) as conn:
            return _spent(conn, dataset)

    def remaining(self, dataset: str, lifetime_epsilon: float) -> float:
        """Lifetime ε not yet spent (never negative)."""
        return max(0.0, lifetime_epsilon - self.spent(dataset).epsilon)

    def retrains_left(self, dataset: str, lifetime_epsilon: float,
                      per_run_epsilon: float) -> int:
        """How many more runs at ``per_run_epsilon`` the remaining budget allows."""
        if per_run_epsilon <= 0:
            raise LedgerError(f"{dataset}: per-run epsilon must be positive")
        return max(0, math.floor((self.remaining(dataset, lifetime_epsilon) + EPS_TOLERANCE)
                                 / per_run_epsilon))

    def charges(self, dataset: str | None = None) -> list[Charge]:
        """Every charge, oldest first (one dataset or all)."""
        with open_db(self.paths) as conn:
            if dataset is None:
                rows = conn.execute("SELECT * FROM privacy_ledger ORDER BY id")
            else:
                rows = conn.execute("SELECT * FROM privacy_ledger WHERE dataset = ? ORDER BY id",
                                    (dataset,))
            return [_charge(r, new=False) for r in rows]

    def last_charge(self, dataset: str) -> Charge | None:
        found = self.charges(dataset)
        return found[-1] if found else None

    def should_retrain(self, dataset: str, snapshot_id: str, refresh_days: float,
                       now: datetime | None = None) -> RetrainDecision:
        """Retrain only when the snapshot changed since the last charge AND the refresh
        interval has passed; the first run always trains."""
        last = self.last_charge(dataset)
        if last is None:
            return RetrainDecision(True, f"{dataset}: never trained")
        if last.snapshot_id == snapshot_id:
            return RetrainDecision(False, f"{dataset}: table unchanged since run "
                                          f"{last.run_id}; nothing charged")
        now = (now or datetime.now(UTC)).astimezone(UTC)
        due = datetime.fromisoformat(last.charged_at) + timedelta(days=refresh_days)
        if now < due:
            return RetrainDecision(False, f"{dataset}: snapshot changed but the refresh interval "
                                          f"({refresh_days:g} days) ends {due.isoformat()}")
        return RetrainDecision(True, f"{dataset}: snapshot changed and {refresh_days:g} days "
                                     f"passed since run {last.run_id}")

    def summary(self, dataset: str, lifetime_epsilon: float,
                per_run_epsilon: float) -> dict[str, Any]:
        """What ``pulsesynth budget`` prints for one dataset."""
        spent = self.spent(dataset)
        return {"dataset": dataset, "lifetime_epsilon": lifetime_epsilon,
                "per_run_epsilon": per_run_epsilon, "spent_epsilon": spent.epsilon,
                "spent_delta": spent.delta, "runs": spent.runs,
                "remaining_epsilon": self.remaining(dataset, lifetime_epsilon),
                "retrains_left": self.retrains_left(dataset, lifetime_epsilon, per_run_epsilon),
                "composition": "basic (sum of ε, sum of δ)"}


def _spent(conn: Any, dataset: str) -> Spent:
    rows = conn.execute("SELECT epsilon, delta FROM privacy_ledger WHERE dataset = ?",
                        (dataset,)).fetchall()
    return Spent(dataset, math.fsum(r["epsilon"] for r in rows),
                 math.fsum(r["delta"] for r in rows), len(rows))


def _charge(row: Any, new: bool) -> Charge:
    return Charge(row["id"], row["dataset"], row["run_id"], row["snapshot_id"], row["epsilon"],
                  row["delta"], row["accountant"], row["idempotency_key"], row["charged_at"],
                  new)
