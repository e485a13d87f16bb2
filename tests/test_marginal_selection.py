"""The private selection measured in :mod:`benchmarks.marginal_selection`: its mechanisms
compose to the deployed one, and it finds the table the model misses (so its negative
result on the suite is about the tables, not a blind selector)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import marginal_selection as sel
from pulsesynth.synth import marginals as dp_marginals
from pulsesynth.synth.marginals import MarginalPlan


def _planted(n: int, seed: int) -> tuple[MarginalPlan, np.ndarray]:
    """a, b, c with 3 levels and y = 1 exactly when a == b: no (column, target) table shows
    any association, only the (a, b, y) table carries the signal."""
    rng = np.random.default_rng(seed)
    a, b, c = (rng.integers(0, 3, n) for _ in range(3))
    levels = np.column_stack([a, b, c, (a == b).astype(np.int64)])
    return MarginalPlan.for_columns(["a", "b", "c", "y"], [3, 3, 3, 2], "y"), levels


def test_the_three_mechanisms_compose_to_the_deployed_one() -> None:
    s1, s_sel, s2 = sel.noise_split(4.0)
    assert s1 ** -2 + s_sel ** -2 + s2 ** -2 == pytest.approx(4.0 ** -2)


def test_candidates_are_public_functions_of_the_levels() -> None:
    plan, _ = _planted(10, 0)
    assert sel.candidates(plan, "pair") == ((0, 1), (0, 2), (1, 2))
    assert sel.candidates(plan, "triple") == ((0, 1, 3), (0, 2, 3), (1, 2, 3))


def test_selection_finds_the_interaction_the_model_misses() -> None:
    plan, levels = _planted(20_000, 1)
    first = sel.measure_first(levels, plan, 1.0, np.random.default_rng(2))
    # The "model": draws from the (column, target) tables alone, blind to a == b.
    pool = dp_marginals.independent_draws(first.marginals, 20_000, np.random.default_rng(3))
    chosen = sel.select(levels, first, sel.candidates(plan, "triple"), pool,
                        np.ones(len(pool)), 1.0, np.random.default_rng(4))
    assert chosen == [(0, 1, 3)]
    out = sel.measure_chosen(levels, first, chosen, 1.0, np.random.default_rng(5))
    weights = dp_marginals.rake(pool, out)
    hit = (pool[:, 3] == (pool[:, 0] == pool[:, 1])).astype(float)
    assert np.average(hit, weights=weights) > 0.95 and hit.mean() < 0.6
    # The (column, target) tables are raked last: the target's marginal is met exactly.
    want_y = out.probabilities[-1].reshape(3, 2).sum(axis=0)
    np.testing.assert_allclose(np.bincount(pool[:, 3], weights=weights, minlength=2),
                               want_y, atol=1e-9)


def test_a_model_that_is_already_right_gets_nothing_chosen() -> None:
    plan, levels = _planted(20_000, 1)
    first = sel.measure_first(levels, plan, 1.0, np.random.default_rng(2))
    assert sel.select(levels, first, sel.candidates(plan, "triple"), levels.copy(),
                      np.ones(len(levels)), 1.0, np.random.default_rng(4)) == []
