"""The DP release report: stated sensitivities hold, noise is Laplace at Δ/ε, values are
clipped to their ranges, and the same rng gives the same report."""

from __future__ import annotations

import numpy as np
import pytest

from pulsesynth.audit.release_stats import SHARES, MembershipDecisions, release_report

ROWS = {"train": 600, "holdout": 200}


def report(decisions, unique=(10, 3), tstr=150, counts=(120, 80), epsilon=1e12, seed=0):
    return release_report(decisions=decisions, unique_reproduced=unique, tstr_correct=tstr,
                          class_counts=list(counts), rows=ROWS, k=1, epsilon=epsilon,
                          rng=np.random.default_rng(seed), match_share=1 / 3)["statistics"]


def decisions(members: np.ndarray, non_members: np.ndarray) -> list[MembershipDecisions]:
    return [MembershipDecisions("a", members, non_members),
            MembershipDecisions("b", ~members, ~non_members)]


def test_noise_free_values_and_stated_sensitivities() -> None:
    rng = np.random.default_rng(1)
    m, n = rng.random(600) < 0.6, rng.random(200) < 0.5
    stats = report(decisions(m, n))
    adv = max(m.sum() / 600 - n.sum() / 200, (~m).sum() / 600 - (~n).sum() / 200)
    assert stats["max_attack_advantage"]["value"] == pytest.approx(adv)
    assert stats["max_attack_advantage"]["sensitivity"] == pytest.approx(1 / 200)
    assert stats["exact_match_excess"]["value"] == pytest.approx(10 / 200 - 3 / 200)
    assert stats["tstr_accuracy"]["value"] == pytest.approx(0.75)
    assert stats["majority_accuracy"]["value"] == pytest.approx(0.6)
    # removing or adding one member/non-member moves the advantage by at most Δ
    for flip_m, flip_n in ((0, None), (None, 5)):
        m2, n2 = m.copy(), n.copy()
        if flip_m is not None:
            m2 = np.delete(m2, flip_m)
        if flip_n is not None:
            n2 = np.delete(n2, flip_n)
        moved = abs(report(decisions(m2, n2))["max_attack_advantage"]["value"]
                    - stats["max_attack_advantage"]["value"])
        assert moved <= 1 / 200 + 1e-12


def test_laplace_scale_is_sensitivity_over_its_share_of_epsilon() -> None:
    m, n = np.zeros(600, bool), np.zeros(200, bool)
    stats = report(decisions(m, n), epsilon=0.12)
    for name, s in stats.items():
        assert s["epsilon"] == pytest.approx(0.12 * SHARES[name])
        assert s["laplace_scale"] == pytest.approx(s["sensitivity"] / s["epsilon"])
    assert sum(SHARES.values()) == pytest.approx(1.0)
    assert report(decisions(m, n), epsilon=0.12) == stats  # same rng, same noise
    assert report(decisions(m, n), epsilon=0.12, seed=1) != stats


def test_values_and_intervals_are_clipped_to_their_ranges() -> None:
    m, n = np.zeros(600, bool), np.zeros(200, bool)
    draws = [report(decisions(m, n), epsilon=0.001, seed=s) for s in range(20)]
    for stats in draws:
        for name, s in stats.items():
            low = 0.0 if name in ("tstr_accuracy", "majority_accuracy") else -1.0
            assert low <= s["ci_low"] <= s["value"] <= s["ci_high"] <= 1.0
    assert any(d["tstr_accuracy"]["value"] in (0.0, 1.0) for d in draws)
