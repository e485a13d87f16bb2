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
