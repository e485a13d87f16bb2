"""What would unblock a blocked candidate, and what a retrain costs in ε.

Read by ``pulsesynth releases show``, ``pulsesynth audit`` and the nightly flow's summary.
Everything here is a public fact or a DP figure: the gate's thresholds and the DP release
report's values it compared (``gate.json``), the dataset's declared (or steward-governed)
budget and the ledger's spent ε. Nothing is read from the private tables.
"""

from __future__ import annotations

import math
from typing import Any

from pulsesynth.command import cli_command
from pulsesynth.paths import Paths

__all__ = ["budget_status", "failed_checks", "unblock_advice"]


def budget_status(paths: Paths, dataset: str) -> dict[str, Any] | None:
    """The dataset's budget as ``pulsesynth budget`` shows it (a steward's decision wins
    over the schema file), or ``None`` when the dataset has no declared schema."""
    from pulsesynth.errors import PulseSynthError
    from pulsesynth.governance.ledger import Ledger
    from pulsesynth.schema import load_schema

    path = paths.schemas / f"{dataset}.yaml"
    if not path.is_file():
        return None
    try:
        schema = load_schema(path)
    except PulseSynthError:
        return None
    ledger = Ledger(paths)
    governed = ledger.governed(dataset)
    return ledger.summary(
        dataset, governed.lifetime_epsilon if governed else schema.privacy.lifetime_epsilon,
        governed.per_run_epsilon if governed else schema.privacy.epsilon)


def failed_checks(gate: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """The label with the loosest thresholds (the gate checks labels most open first, so
    it is the last) and its failed checks: what has to change for the candidate to be
    released at all."""
    checks = [c for c in gate.get("checks") or [] if isinstance(c, dict)]
    labels = list(dict.fromkeys(c.get("label") for c in checks))
    target = labels[-1] if labels else None
    return target, [c for c in checks if c.get("label") == target and not c.get("passed")]


def _gap(check: dict[str, Any]) -> str:
    value, threshold = check.get("value"), check.get("threshold")
    what = check.get("name", "?")
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{what}: missing from the DP release report (re-run the audit)"
    if not isinstance(threshold, (int, float)):
        return f"{what} = {value:.4g}"
    if check.get("at_least"):
        return (f"{what} must rise by {threshold - value:.3g} "
                f"({value:.3g} now, at least {threshold:g} needed)")
    return (f"{what} must fall by {value - threshold:.3g} "
            f"({value:.3g} now, at most {threshold:g} allowed)")


def unblock_advice(gate: dict[str, Any], budget: dict[str, Any] | None) -> list[str]:
    """Plain lines for a blocked candidate: which threshold failed by how much, and what a
    retrain would cost in ε against the remaining lifetime budget. Empty when the gate
    released the candidate."""
    if gate.get("label") != "blocked":
        return []
    lines: list[str] = []
    reason = str(gate.get("reason") or "")
    target, failed = failed_checks(gate)
    if "non-private" in reason:
        lines.append("to unblock: train with DP (a non-private artifact is never released)")
    elif failed and target:
        lines.append(f"to be released as {target}: " + "; ".join(_gap(c) for c in failed))
        if any(c.get("name") == "max_epsilon" for c in failed):
            limit = next(c["threshold"] for c in failed if c.get("name") == "max_epsilon")
            lines.append(f"  a retrain with --epsilon at most {limit:g} meets the ε limit")
        else:
            lines.append("  a retrain draws new noise and is attacked afresh; a smaller ε "
                         "(stronger privacy) weakens membership attacks")
    elif reason:
        lines.append(f"to unblock: {reason}")
    if budget is not None:
        left = int(budget.get("retrains_left") or 0)
        cost = (f"a retrain costs ε {budget['per_run_epsilon']:g} (per run) of the "
                f"{budget['remaining_epsilon']:.3g} left of its lifetime ε "
                f"{budget['lifetime_epsilon']:g}")
        lines.append(cost + (f": {left} retrain(s) left" if left else
                             f": none left (only a steward's `{cli_command()} budget set` "
                             "adds budget)"))
    return lines
