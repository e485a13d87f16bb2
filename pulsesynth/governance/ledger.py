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

from pulsesynth.budget import MAX_LIFETIME_EPSILON, MAX_RUN_EPSILON
from pulsesynth.command import cli_command
from pulsesynth.governance.db import log_event, now_iso, open_db, transaction
from pulsesynth.governance.errors import BudgetChanged, BudgetExceeded, LedgerError
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
class Budget:
    """A dataset's governed privacy block: a promise about the people in the table."""

    lifetime_epsilon: float
    per_run_epsilon: float
    privacy_unit: tuple[str, ...]
    max_rows_per_unit: int

    @classmethod
    def declared(cls, schema: Any) -> Budget:
        """The privacy block a declared schema states."""
        return cls(float(schema.privacy.lifetime_epsilon), float(schema.privacy.epsilon),
                   tuple(schema.privacy_unit), int(schema.privacy.max_rows_per_unit))

    def differences(self, other: Budget) -> list[str]:
        names = ("lifetime_epsilon", "per_run_epsilon", "privacy_unit", "max_rows_per_unit")
        return [f"{n} {getattr(self, n)!r} → {getattr(other, n)!r}" for n in names
                if getattr(self, n) != getattr(other, n)]


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

    def charge(self, dataset: str, *, run_id: str, snapshot_id: str, epsilon: float,
               delta: float, accountant: str, idempotency_key: str,
               lifetime_epsilon: float, actor: str = "pipeline",
               now: datetime | None = None) -> Charge:
        """Charge a training run before it starts; refuse past the lifetime budget.

        Everything after ``dataset`` is keyword-only: two ε's, two ids and a key sit side
        by side, and a swapped positional pair would charge the wrong amount silently.

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

    def budget(self, dataset: str, declared: Budget, *, actor: str = "pipeline") -> Budget:
        """The governed budget of ``dataset``: recorded from ``declared`` at first use;
        afterwards a declaration that differs (a raised lifetime ε after re-ingest or an
        edited schema file, another privacy unit) is refused with :class:`BudgetChanged`:
        only :meth:`set_budget` — a steward's recorded decision — changes it."""
        with open_db(self.paths) as conn, transaction(conn):
            row = conn.execute("SELECT * FROM budgets WHERE dataset = ?", (dataset,)).fetchone()
            if row is None:
                _write_budget(conn, dataset, declared)
                log_event(conn, actor, "budget.recorded", dataset, _budget_detail(declared))
                return declared
        recorded = _budget(row)
        _refuse_changes(dataset, recorded, declared)
        return recorded

    def check_budget(self, dataset: str, declared: Budget, *, current: Budget) -> None:
        """Refuse (:class:`BudgetChanged`) a declaration that :meth:`budget` would refuse,
        writing nothing: ``current`` (the catalogued schema's block) stands for the
        governed budget before its first use. For a re-ingest, checked before the file is."""
        _refuse_changes(dataset, self.governed(dataset) or current, declared)

    def governed(self, dataset: str) -> Budget | None:
        """The recorded budget of ``dataset`` (None before its first use)."""
        with open_db(self.paths) as conn:
            row = conn.execute("SELECT * FROM budgets WHERE dataset = ?", (dataset,)).fetchone()
        return None if row is None else _budget(row)

    def set_budget(self, dataset: str, steward: str, note: str, *,
                   lifetime_epsilon: float | None = None,
                   per_run_epsilon: float | None = None,
                   declared: Budget | None = None) -> Budget:
        """A steward's decision on a dataset's budget, in the audit log with the spent ε.
        Lowering is always allowed; raising is recorded as such (``raised: true``)."""
        if not steward.strip() or not note.strip():
            raise LedgerError(f"{dataset}: a budget decision needs --steward and --note")
        for name, value, ceiling in (("lifetime", lifetime_epsilon, MAX_LIFETIME_EPSILON),
                                     ("per-run", per_run_epsilon, MAX_RUN_EPSILON)):
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise LedgerError(f"{dataset}: {name} ε must be a positive number, "
                                  f"got {value!r}")
            # The same public ceilings the CLI and the schema enforce (pulsesynth.budget).
            if value is not None and value > ceiling:
                raise LedgerError(f"{dataset}: {name} ε {value:g} is above the ceiling "
                                  f"{ceiling:g}")
        with open_db(self.paths) as conn, transaction(conn):
            row = conn.execute("SELECT * FROM budgets WHERE dataset = ?", (dataset,)).fetchone()
            before = _budget(row) if row is not None else declared
            if before is None:
                raise LedgerError(f"{dataset}: no budget recorded or declared yet")
            after = Budget(
                float(lifetime_epsilon if lifetime_epsilon is not None
                      else before.lifetime_epsilon),
                float(per_run_epsilon if per_run_epsilon is not None
                      else before.per_run_epsilon),
                before.privacy_unit, before.max_rows_per_unit)
            if after.per_run_epsilon > after.lifetime_epsilon:
                raise LedgerError(f"{dataset}: per-run ε exceeds the lifetime ε")
            _write_budget(conn, dataset, after)
            spent = _spent(conn, dataset).epsilon
            log_event(conn, steward, "budget.set", dataset, {
                "before": _budget_detail(before), "after": _budget_detail(after),
                "spent_epsilon": spent, "note": note,
                "raised": after.lifetime_epsilon > before.lifetime_epsilon
                or after.per_run_epsilon > before.per_run_epsilon})
        return after

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


def _refuse_changes(dataset: str, governed: Budget, declared: Budget) -> None:
    diffs = governed.differences(declared)
    if diffs:
        raise BudgetChanged(
            f"{dataset}: the declared privacy block differs from the governed one "
            f"({'; '.join(diffs)}); a budget changes only by a steward's decision: "
            f"`{cli_command()} budget set {dataset} --lifetime E [--per-run E] --steward NAME "
            "--note TEXT`, then declare the same values (a new privacy unit needs a new "
            "dataset id)")


def _write_budget(conn: Any, dataset: str, budget: Budget) -> None:
    import json

    conn.execute(
        "INSERT INTO budgets (dataset, lifetime_epsilon, per_run_epsilon, privacy_unit, "
        "max_rows_per_unit, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (dataset) DO "
        "UPDATE SET lifetime_epsilon = excluded.lifetime_epsilon, per_run_epsilon = "
        "excluded.per_run_epsilon, updated_at = excluded.updated_at",
        (dataset, budget.lifetime_epsilon, budget.per_run_epsilon,
         json.dumps(list(budget.privacy_unit)), budget.max_rows_per_unit, now_iso()))


def _budget(row: Any) -> Budget:
    import json

    return Budget(float(row["lifetime_epsilon"]), float(row["per_run_epsilon"]),
                  tuple(json.loads(row["privacy_unit"])), int(row["max_rows_per_unit"]))


def _budget_detail(budget: Budget) -> dict[str, Any]:
    return {"lifetime_epsilon": budget.lifetime_epsilon,
            "per_run_epsilon": budget.per_run_epsilon,
            "privacy_unit": list(budget.privacy_unit),
            "max_rows_per_unit": budget.max_rows_per_unit}


def _charge(row: Any, new: bool) -> Charge:
    return Charge(row["id"], row["dataset"], row["run_id"], row["snapshot_id"], row["epsilon"],
                  row["delta"], row["accountant"], row["idempotency_key"], row["charged_at"],
                  new)
