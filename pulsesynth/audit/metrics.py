"""How an attack is scored: accuracy with a confidence interval, ROC AUC, TPR at low FPR,
advantage and an effective-ε lower bound.

Every membership attack is evaluated on a *balanced* set of members and non-members, so
accuracy 0.5 is a coin flip (seed 000: 100% privacy) and advantage = TPR − FPR = 2·acc − 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import beta
from sklearn.metrics import roc_auc_score, roc_curve


@dataclass(frozen=True)
class AttackResult:
    """The scored outcome of one attack against one target."""

    attack: str
    accuracy: float
    ci_low: float
    ci_high: float
    auc: float
    tpr_at_1pct_fpr: float
    tpr_at_01pct_fpr: float
    auc_ci_low: float
    auc_ci_high: float
    advantage: float
    advantage_ci_high: float
    effective_epsilon: float
    n_members: int
    n_non_members: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def privacy(self) -> float:
        """Seed 000's privacy score: 2 × (1 − accuracy), capped to [0, 1]."""
        return float(min(1.0, max(0.0, 2.0 * (1.0 - self.accuracy))))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"privacy": self.privacy}


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval."""
    if trials == 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(
        beta.ppf(1 - alpha / 2, successes + 1, trials - successes)
    )
    return low, high


def score_attack(attack: str, member_scores: np.ndarray, non_member_scores: np.ndarray,
                 threshold: float, details: dict[str, Any] | None = None) -> AttackResult:
    """Score an attack whose higher scores mean "member", guessing member above ``threshold``.

    The threshold must come from the attacker's own data (shadow models), never from the
    evaluation set, or the accuracy would be optimistic. The sets are balanced first by
    truncating the larger one (caller shuffles).
    """
    n = min(len(member_scores), len(non_member_scores))
    if n == 0:
        raise ValueError(f"{attack}: no members or non-members to evaluate")
    members = np.asarray(member_scores[:n], dtype=float)
    non_members = np.asarray(non_member_scores[:n], dtype=float)
    tp = int((members > threshold).sum())
    fp = int((non_members > threshold).sum())
    correct = tp + (n - fp)
    accuracy = correct / (2 * n)
    ci_low, ci_high = clopper_pearson(correct, 2 * n)
    labels = np.r_[np.ones(n), np.zeros(n)]
    scores = np.r_[members, non_members]
    auc = float(roc_auc_score(labels, scores)) if np.ptp(scores) > 0 else 0.5
    fpr, tpr, _ = roc_curve(labels, scores)
    auc_low, auc_high = auc_interval(auc, n, n)
    return AttackResult(
        attack=attack,
        accuracy=float(accuracy),
        ci_low=ci_low,
        ci_high=ci_high,
        auc=auc,
        tpr_at_1pct_fpr=tpr_at_fpr(fpr, tpr, 0.01),
        tpr_at_01pct_fpr=tpr_at_fpr(fpr, tpr, 0.001),
        auc_ci_low=auc_low,
        auc_ci_high=auc_high,
        advantage=float(2 * accuracy - 1),
        advantage_ci_high=float(2 * ci_high - 1),
        effective_epsilon=effective_epsilon_lower_bound(tp, fp, n),
        n_members=n,
        n_non_members=n,
        details=(details or {}) | {"roc": _roc_points(fpr, tpr)},
    )


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
    """The highest TPR of any threshold whose FPR is at most ``max_fpr`` (0 if none).

    With n non-members the smallest non-zero FPR is 1/n, so at 0.1% FPR and fewer than
    1,000 non-members this is the TPR at FPR = 0: the members scored above every
    non-member (the report states n beside it)."""
    ok = fpr <= max_fpr
    return float(np.max(tpr[ok])) if np.any(ok) else 0.0


def auc_interval(auc: float, n_members: int, n_non_members: int,
                 confidence: float = 0.95) -> tuple[float, float]:
    """Hanley & McNeil (1982) normal interval for a ROC AUC, clipped to [0, 1].

    Closed form, so it is deterministic and cheap for every attack and target set;
    ``confidence`` may be raised for a multiple-testing correction (Bonferroni)."""
    from scipy.stats import norm

    if n_members == 0 or n_non_members == 0:
        return 0.0, 1.0
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_members - 1) * (q1 - auc * auc)
           + (n_non_members - 1) * (q2 - auc * auc)) / (n_members * n_non_members)
    half = float(norm.ppf(1 - (1 - confidence) / 2)) * math.sqrt(max(var, 0.0))
    return float(max(0.0, auc - half)), float(min(1.0, auc + half))


def effective_epsilon_lower_bound(tp: int, fp: int, n: int, confidence: float = 0.95) -> float:
    """A lower bound on the ε that would explain the attack (as TAPAS reports it).

    Any (ε, δ≈0)-DP mechanism forces TPR ≤ e^ε·FPR and 1−FPR ≤ e^ε·(1−TPR); with
    Clopper–Pearson bounds (TPR low, FPR high) the bound holds at the given confidence.
    """
    tpr_low, _ = clopper_pearson(tp, n, confidence)
    _, fpr_high = clopper_pearson(fp, n, confidence)
    tnr_low, _ = clopper_pearson(n - fp, n, confidence)
    _, fnr_high = clopper_pearson(n - tp, n, confidence)
    bounds = [0.0]
    if tpr_low > 0 and fpr_high > 0:
        bounds.append(math.log(tpr_low / fpr_high))
    if tnr_low > 0 and fnr_high > 0:
        bounds.append(math.log(tnr_low / fnr_high))
    return float(max(bounds))


def _roc_points(fpr: np.ndarray, tpr: np.ndarray, points: int = 60) -> dict[str, list[float]]:
    """A thinned ROC curve for plots (rates only: no scores, no records), on a grid dense
    near FPR 0 so that log–log plots show the low-FPR regime."""
    grid = np.unique(np.r_[0.0, np.geomspace(1e-4, 1, points - 1)])
    return {"fpr": grid.round(4).tolist(),
            "tpr": np.interp(grid, fpr, tpr).round(4).tolist()}
