"""One run's privacy budget: how its ε is split, and the DP counts it pays for.

A run is charged its whole (ε, δ) on the ledger before anything touches the rows, and
that ε is spent by three mechanisms composed sequentially (basic composition):

- ``training`` — the DP marginals (Gaussian mechanism, :mod:`pulsesynth.synth.marginals`)
  and DP-SGD, composed in one Opacus accountant that lands at or just below this share;
- ``row_count`` — Laplace counts of the rows in each data role (train / holdout /
  reference). A unit lies in exactly one role and has at most ``k`` rows there, so the
  count vector has L1 sensitivity ``k`` and one Laplace(k/ε) draw per role is ε-DP.
  These counts size everything that would otherwise reveal the exact row count: the
  DP-SGD schedule, the number of released rows, the denominators of the release report;
- ``release_report`` — the DP statistics that the gate decides on and the cards publish
  (:mod:`pulsesynth.audit.release_stats`).

The split is public (it is printed on every card). δ is the declared one, else a fixed
public default (:data:`pulsesynth.synth.train.DEFAULT_DELTA`), never a function of n.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy only types an argument: the CLI imports the ceilings below
    import numpy as np

#: Shares of a run's ε (public, recorded in every privacy report).
TRAINING_SHARE = 0.85
ROW_COUNT_SHARE = 0.03
RELEASE_REPORT_SHARE = 0.12
#: The smallest public row count a schedule or a report divides by.
MIN_PUBLIC_ROWS = 10
#: Public ceilings on ε. Above ε = 10 a run's likelihood ratio bound (e^10 ≈ 22,000) no
#: longer protects anyone, and a lifetime above 100 is ten such runs: a declaration beyond
#: either is a typo or an attempt to switch privacy off, so it is refused where a value
#: enters: schema files (:func:`pulsesynth.schema.parse_schema`), the CLI's ``--epsilon``,
#: ``--per-run`` and ``--lifetime`` (:mod:`pulsesynth.cli_types`) and every run's ε
#: (:func:`pulsesynth.pipeline.run_epsilon`). The ceilings are hard: raising them is a
#: reviewed change of this file, never a runtime option. Below them, a steward raises a
#: dataset's budget with ``pulsesynth budget set``.
MAX_RUN_EPSILON = 10.0
MAX_LIFETIME_EPSILON = 100.0


@dataclass(frozen=True)
class BudgetSplit:
    """The run's ε and its parts (training + row count + release report = total)."""

    total: float
    training: float
    row_count: float
    release_report: float

    @classmethod
    def of(cls, epsilon: float) -> BudgetSplit:
        if not (epsilon > 0 and math.isfinite(epsilon)):
            raise ValueError(f"epsilon must be a positive number, got {epsilon!r}")
        return cls(total=float(epsilon), training=epsilon * TRAINING_SHARE,
                   row_count=epsilon * ROW_COUNT_SHARE,
                   release_report=epsilon * RELEASE_REPORT_SHARE)

    @property
    def table(self) -> float:
        """What the released table itself costs: the training share and the DP row count
        that sizes it (the release report's share pays for figures about the table)."""
        return self.training + self.row_count

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def laplace_counts(counts: dict[str, int], sensitivity: float, epsilon: float,
                   rng: np.random.Generator) -> dict[str, int]:
    """Each count plus Laplace(sensitivity / ε) noise, rounded and floored at
    :data:`MIN_PUBLIC_ROWS`: ε-DP for a vector whose L1 sensitivity is ``sensitivity``
    (one unit changes one role's count by at most its rows there)."""
    if not (epsilon > 0 and sensitivity > 0):
        raise ValueError("a Laplace count needs positive epsilon and sensitivity")
    scale = sensitivity / epsilon
    return {name: max(MIN_PUBLIC_ROWS, int(round(n + rng.laplace(0.0, scale))))
            for name, n in counts.items()}


def budget_report(split: BudgetSplit, delta: float) -> dict[str, Any]:
    """The public description of a run's budget (for privacy.json and the cards)."""
    return {"epsilon_total": split.total, "delta": delta, "parts": split.to_dict(),
            "composition": "basic (sequential): training + row counts + release report"}
