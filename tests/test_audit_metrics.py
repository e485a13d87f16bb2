"""Attack scoring: accuracy CI, AUC, TPR at 1% FPR, advantage, effective-ε bound."""

from __future__ import annotations

import numpy as np

from pulsesynth.audit.metrics import clopper_pearson, score_attack


def test_clopper_pearson_matches_known_values() -> None:
    low, high = clopper_pearson(50, 100)
    assert round(low, 4) == 0.3983 and round(high, 4) == 0.6017
    assert clopper_pearson(0, 10)[0] == 0.0 and clopper_pearson(10, 10)[1] == 1.0


def test_perfectly_separable_scores_are_a_total_breach() -> None:
    rng = np.random.default_rng(0)
    result = score_attack("x", rng.uniform(1, 2, 500), rng.uniform(-2, -1, 500), 0.0)
    assert result.accuracy == 1.0 and result.auc == 1.0 and result.tpr_at_1pct_fpr == 1.0
    assert result.advantage == 1.0 and result.privacy == 0.0
    assert result.effective_epsilon > 4


def test_indistinguishable_scores_look_like_a_coin_flip() -> None:
    rng = np.random.default_rng(1)
    result = score_attack("x", rng.normal(size=2000), rng.normal(size=2000), 0.0)
    assert result.ci_low < 0.5 < result.ci_high
    assert abs(result.auc - 0.5) < 0.05 and result.effective_epsilon < 0.2
    assert result.privacy > 0.9


def test_sets_are_balanced_before_scoring() -> None:
    result = score_attack("x", np.ones(10), np.zeros(30), 0.5)
    assert result.n_members == result.n_non_members == 10


def test_tpr_at_low_fpr_counts_members_above_every_tolerated_false_alarm() -> None:
    # 1,000 non-members at 0..999 and members 10 above the top 20 non-members' range:
    # at FPR 0.1% one non-member may be above the threshold, at 1% ten may.
    non_members = np.arange(1000, dtype=float)
    members = np.r_[np.full(5, 2000.0), np.full(10, 995.5), np.full(985, -1.0)]
    result = score_attack("x", members, non_members, 0.0)
    assert result.tpr_at_01pct_fpr == 0.005  # only the 5 members above every non-member
    assert result.tpr_at_1pct_fpr == 0.015  # 995.5 beats all but 4 non-members


def test_auc_interval_matches_hanley_mcneil_and_narrows_with_more_records() -> None:
    from pulsesynth.audit.metrics import auc_interval

    low, high = auc_interval(0.5, 100, 100)
    # Hanley & McNeil at AUC 0.5: var = (0.25 + 99·(1/3 − 1/4)·2) / 10⁴ = 0.0016750
    assert round(high - 0.5, 4) == round(1.959964 * 0.0016750 ** 0.5, 4)
    assert round(0.5 - low, 6) == round(high - 0.5, 6)
    wide = auc_interval(0.6, 50, 50)
    narrow = auc_interval(0.6, 5000, 5000)
    assert wide[1] - wide[0] > 5 * (narrow[1] - narrow[0])
    assert auc_interval(0.99, 10, 10)[1] == 1.0
    stricter = auc_interval(0.6, 500, 500, confidence=0.999)
    assert stricter[0] < auc_interval(0.6, 500, 500)[0]


def test_roc_points_resolve_low_false_positive_rates_for_log_plots() -> None:
    rng = np.random.default_rng(2)
    result = score_attack("x", rng.normal(1, 1, 3000), rng.normal(0, 1, 3000), 0.5)
    fpr = result.details["roc"]["fpr"]
    assert fpr[0] == 0.0 and fpr[-1] == 1.0 and sum(f <= 0.01 for f in fpr) >= 20
    assert result.auc_ci_low < result.auc < result.auc_ci_high
