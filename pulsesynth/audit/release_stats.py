"""The DP release report: the only audit and utility figures that leave the trust boundary.

The audit's exact figures (attack accuracies, AUC, distances, exact-match counts, TRTR)
are statistics of the private rows; they stay in ``audit.json`` / ``utility.json`` for the
steward. What the gate decides on and the cards publish is this report: a few statistics
released with the Laplace mechanism, charged to the ledger with the run (the
``release_report`` part of :class:`~pulsesynth.budget.BudgetSplit`).

**Why the sensitivities hold.** Every statistic is a sum over real rows of a per-row term
that depends only on that row and on DP outputs (the model, the synthetic table, rules
learnt from shadows trained on synthetic rows), divided by a public DP row count ñ of
its role. A privacy unit lies in exactly one role and keeps at most ``k`` rows there
(:func:`pulsesynth.pipeline.run_data`), so adding or removing it moves each sum by at
most ``k``:

- ``max_attack_advantage``: the largest over attacks of TP/ñ_train − FP/ñ_holdout, where
  TP and FP count training and holdout rows the attack calls "member" (the max of
  functions of sensitivity Δ has sensitivity Δ): Δ = k / min(ñ_train, ñ_holdout);
- ``exact_match_excess``: (rows unique within a keyed-hash subsample of training of the
  holdout's expected size, reproduced verbatim) / (ñ_train · share) − (the same for
  holdout) / ñ_holdout. Removing a unit removes its ≤ k rows and can make at most k
  other rows unique: Δ = k / min(ñ_train · share, ñ_holdout);
- ``tstr_accuracy``: holdout rows a classifier trained on the synthetic table gets right,
  over ñ_holdout: Δ = k / ñ_holdout;
- ``majority_accuracy``: the largest class count of the holdout target over ñ_holdout:
  Δ = k / ñ_holdout.

Each gets Laplace(Δ/ε_i) noise with ε_i its share of the report's ε (sequential
composition: the shares sum to the report's ε). The intervals are stated at 95%:
sampling error bounded from the public counts (worst case p = 1/2) plus the Laplace
tail, joined by a union bound.

**Are training rows copied more often than chance?** Beside the noisy
``exact_match_excess`` the report gives ``p_value``, a one-sided test of H0 "unique
training rows are reproduced verbatim no more often than unique unseen rows". Under H0
the noisy value is at most (sampling error, bounded by a normal with the public
worst-case sd ``sampling_sd`` used for the interval) + Laplace(``laplace_scale``), so
``p_value`` = P(N + L ≥ published value) for that normal–Laplace sum
(:func:`excess_p_value`, exact closed form). It reads only the published value and
public quantities (the DP row counts, the scale), so it is post-processing of a DP output
and may be published; anyone can recompute it from the card. The gate blocks when it is
below the policy's ``exact_match_alpha``. The null is conservative: its normal takes
p = 1/2 where reproduction rates are about 1% (taxi_trips: sd bound 0.016 against an
actual 0.003), which also covers the small bias of dividing by DP rather than exact
counts; at taxi_trips' size a table at chance level fails α = 0.01 about 0.5% of the time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import erfcx, log_ndtr, ndtr

from pulsesynth.reports import ReleaseStats

#: How the report's ε is shared between its statistics (public).
SHARES = {"max_attack_advantage": 0.35, "exact_match_excess": 0.35, "tstr_accuracy": 0.15,
          "majority_accuracy": 0.15}
#: Two-sided 95%: a Laplace(b) draw exceeds b·ln(20) in absolute value with probability 5%.
LAPLACE_95 = math.log(20.0)
Z_975 = 1.959963984540054


def excess_p_value(observed: float, sampling_sd: float, laplace_scale: float) -> float:
    """P(N + L ≥ ``observed``) for N ~ Normal(0, ``sampling_sd``²) and L ~ Laplace(0,
    ``laplace_scale``), independent: the one-sided p-value of a noisy excess under H0.

    With z = x/σ and a = σ/b, the survival function of the normal–Laplace sum is
    Φc(z) + φ(z)·[R(a − z) − R(a + z)]/2, R(t) = Φc(t)/φ(t) being Mills' ratio
    (integrate the normal tail against each exponential half of the Laplace density;
    φ is even, so φ(z) = φ(−z)). Each term is taken in log space, so the far tails
    neither overflow nor cancel.
    """
    x, sd, b = float(observed), float(sampling_sd), float(laplace_scale)
    if not (math.isfinite(x) and sd >= 0 and b >= 0):
        raise ValueError("the p-value needs a finite value and non-negative scales")
    if sd == 0 and b == 0:
        return 1.0 if x <= 0 else 0.0
    if b == 0:
        return float(ndtr(-x / sd))
    if sd == 0:  # Laplace alone
        return 0.5 * math.exp(-x / b) if x >= 0 else 1.0 - 0.5 * math.exp(x / b)
    z, a = x / sd, sd / b
    half = float(ndtr(-z)) + 0.5 * (math.exp(_log_phi_mills(z, a))
                                    - math.exp(_log_phi_mills(-z, a)))
    return float(min(1.0, max(0.0, half)))


def _log_phi_mills(z: float, a: float) -> float:
    """log(φ(z)·R(a − z)), R(t) = Φc(t)/φ(t) being Mills' ratio: the term of the Laplace
    draw's half towards ``z``. For a ≥ z it is −z²/2 + log R(a − z) (``erfcx`` keeps R
    finite); for a < z the two squares cancel exactly to a²/2 − a·z + log Φ(z − a)."""
    if a >= z:
        return (-0.5 * z * z - 0.5 * math.log(2 * math.pi)
                + math.log(math.sqrt(math.pi / 2) * float(erfcx((a - z) / math.sqrt(2)))))
    return 0.5 * a * a - a * z + float(log_ndtr(z - a))


@dataclass(frozen=True)
class MembershipDecisions:
    """One attack's member/non-member call for *every* training and holdout row."""

    attack: str
    members: np.ndarray
    non_members: np.ndarray


def _noisy(value: float, sensitivity: float, epsilon: float, rng: np.random.Generator,
           sampling_sd: float, low: float) -> dict[str, float]:
    """Laplace release of ``value``; the value and its interval are then clipped to the
    statistic's range [``low``, 1] (post-processing: a rate of 1.3 helps nobody)."""
    scale = sensitivity / epsilon
    noisy = float(value + rng.laplace(0.0, scale))
    half = Z_975 * sampling_sd + scale * LAPLACE_95

    def clip(x: float) -> float:
        return float(min(1.0, max(low, x)))

    return {"value": clip(noisy), "ci_low": clip(noisy - half), "ci_high": clip(noisy + half),
            "sensitivity": sensitivity, "epsilon": epsilon, "laplace_scale": scale,
            "sampling_sd": sampling_sd}


def release_report(*, decisions: list[MembershipDecisions],
                   unique_reproduced: tuple[int, int] | None,
                   tstr_correct: int | None, class_counts: list[int] | None,
                   rows: dict[str, int], k: int, epsilon: float,
                   rng: np.random.Generator, match_share: float = 1.0) -> ReleaseStats:
    """The noisy statistics (see the module docstring) and how they were made.

    ``rows`` holds the public DP counts ``train`` and ``holdout``; ``unique_reproduced``
    is (training, holdout) unique rows found verbatim in the release, the training side
    counted on a unit-level subsample of share ``match_share`` (so both sides have about
    the same size, as uniqueness depends on it); ``tstr_correct``
    and ``class_counts`` are over holdout rows with a declared target class (None when
    the dataset has no target). ``rng`` must be seeded secretly in private runs.
    """
    if not decisions:
        raise ValueError("the release report needs at least one membership attack")
    n_tr, n_ho = float(rows["train"]), float(rows["holdout"])
    n_min = min(n_tr, n_ho)
    both_sd = math.sqrt(0.25 / n_tr + 0.25 / n_ho)
    stats: dict[str, Any] = {}
    advantages = {d.attack: float(d.members.sum()) / n_tr - float(d.non_members.sum()) / n_ho
                  for d in decisions}
    stats["max_attack_advantage"] = _noisy(
        max(advantages.values()), k / n_min, epsilon * SHARES["max_attack_advantage"], rng,
        both_sd, -1.0) | {"attacks": sorted(advantages)}
    if unique_reproduced is not None:  # kinds that release rows
        train_u, holdout_u = unique_reproduced
        n_eq = max(1.0, n_tr * match_share)
        excess = _noisy(train_u / n_eq - holdout_u / n_ho, k / min(n_eq, n_ho),
                        epsilon * SHARES["exact_match_excess"], rng,
                        math.sqrt(0.25 / n_eq + 0.25 / n_ho), -1.0)
        # From the published (clipped) value and public scales only: post-processing.
        # A value clipped at 1 stands for "1 or more", so its p-value only grows.
        excess["p_value"] = excess_p_value(excess["value"], excess["sampling_sd"],
                                           excess["laplace_scale"])
        stats["exact_match_excess"] = excess
    holdout_sd = math.sqrt(0.25 / n_ho)
    if tstr_correct is not None:
        stats["tstr_accuracy"] = _noisy(tstr_correct / n_ho, k / n_ho,
                                        epsilon * SHARES["tstr_accuracy"], rng, holdout_sd,
                                        0.0)
    if class_counts:
        stats["majority_accuracy"] = _noisy(max(class_counts) / n_ho, k / n_ho,
                                            epsilon * SHARES["majority_accuracy"], rng,
                                            holdout_sd, 0.0)
    return {"mechanism": "Laplace", "epsilon": epsilon, "shares": SHARES,
            "rows_dp": {"train": int(rows["train"]), "holdout": int(rows["holdout"])},
            "max_rows_per_unit": k, "confidence": 0.95, "statistics": stats}
