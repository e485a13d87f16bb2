"""The shrinkage compared in :mod:`benchmarks.marginal_designs` (post-processing of the
DP marginals: it reads only the noisy counts and the public noise std)."""

from __future__ import annotations

import numpy as np

from benchmarks.marginal_designs import shrink_interactions, soft_threshold
from pulsesynth.synth.marginals import MarginalPlan


def test_shrinkage_scales_the_residual_by_its_wiener_factor() -> None:
    # One 2×2 table: π = (½, ½), E = 50 everywhere, R = ±10; a cell's noise variance
    # std²·(1 − 2π + Cπ²) = 100·½ = 50; τ² = (ΣR² − 4·50) / ΣE = (400 − 200) / 200 = 1,
    # so every cell keeps 50 / (50 + 50) = ½ of its residual.
    plan = MarginalPlan.for_columns(["a", "y"], [2, 2], "y")
    out, = shrink_interactions(plan, [np.array([60.0, 40.0, 40.0, 60.0])], std=10.0)
    np.testing.assert_allclose(out, [55.0, 45.0, 45.0, 55.0])


def test_shrinkage_leaves_independent_tables_and_level_sums_alone() -> None:
    plan = MarginalPlan.for_columns(["a", "b", "y"], [3, 2, 2], "y")
    independent = np.outer([30.0, 50.0, 20.0], [0.25, 0.75]).reshape(-1)
    # Class sums (25, 75) in both tables: the pooled shares are the independent one's.
    associated = np.array([20.0, 55.0, 5.0, 20.0])
    a, b = shrink_interactions(plan, [independent, associated], std=4.0)
    np.testing.assert_allclose(a, independent)
    np.testing.assert_allclose(b.reshape(2, 2).sum(axis=1), [75.0, 25.0])


def test_shrinkage_returns_independence_where_noise_explains_the_residual() -> None:
    # Residual energy 4·2² = 16 against noise energy 4·(10²·½) = 200: τ² = 0.
    plan = MarginalPlan.for_columns(["a", "y"], [2, 2], "y")
    out, = shrink_interactions(plan, [np.array([52.0, 48.0, 48.0, 52.0])], std=10.0)
    np.testing.assert_allclose(out, [50.0, 50.0, 50.0, 50.0])


def test_shrinkage_is_the_identity_without_noise_or_target() -> None:
    pairs = MarginalPlan.for_columns(["a", "y"], [2, 2], "y")
    table = np.array([60.0, 40.0, 40.0, 60.0])
    np.testing.assert_array_equal(shrink_interactions(pairs, [table], 0.0)[0], table)
    ones = MarginalPlan.for_columns(["a", "b"], [2, 2], None)
    got = shrink_interactions(ones, [table[:2], table[2:]], 5.0)
    np.testing.assert_array_equal(np.concatenate(got), table)


def test_residual_noise_variance_is_std_squared_times_v_c() -> None:
    # Pure noise around an independent table: the residual's variance per class is the
    # std²·(1 − 2π_c + C·π_c²) the shrinkage subtracts.
    rng = np.random.default_rng(7)
    pi = np.array([0.2, 0.3, 0.5])
    width, std = 20_000, 3.0
    truth = np.outer(np.full(width, 1000.0), pi)
    noisy = truth + rng.normal(0.0, std, truth.shape)
    resid = noisy - np.outer(noisy.sum(axis=1), pi)
    np.testing.assert_allclose(resid.var(axis=0), std ** 2 * (1 - 2 * pi + 3 * pi ** 2),
                               rtol=0.03)


def test_shrinkage_lowers_the_error_of_noisy_tables_with_a_rare_class() -> None:
    plan = MarginalPlan.for_columns(["a", "y"], [8, 3], "y")
    rng = np.random.default_rng(2)
    truth = np.outer(rng.dirichlet(np.ones(8)) * 3000, [0.6, 0.35, 0.05])
    truth[0] *= [0.7, 1.3, 1.8]  # a real association in one level
    std = 20.0
    base = shrunk = 0.0
    for _ in range(200):
        noisy = truth.reshape(-1) + rng.normal(0.0, std, truth.size)
        base += float(((noisy - truth.reshape(-1)) ** 2).sum())
        out, = shrink_interactions(plan, [noisy], std)
        shrunk += float(((out - truth.reshape(-1)) ** 2).sum())
    assert shrunk < 0.8 * base


def test_soft_threshold_zeroes_residuals_within_noise() -> None:
    # π = (½, ½), a cell's residual sd = 10·sqrt(½); residuals ±½ sd: SURE picks λ = ½
    # (risk −4 + 4·¼ = −3 against 4 at λ = 0), which takes every cell to independence.
    plan = MarginalPlan.for_columns(["a", "y"], [2, 2], "y")
    r = 0.5 * 10.0 * np.sqrt(0.5)
    out, = soft_threshold(plan, [np.array([50 + r, 50 - r, 50 - r, 50 + r])], std=10.0)
    np.testing.assert_allclose(out, [50.0, 50.0, 50.0, 50.0])


def test_soft_threshold_keeps_a_strong_association_whole() -> None:
    # Residuals ±10 sds: SURE is 4 at λ = 0 and 396 at λ = 10, so nothing moves.
    plan = MarginalPlan.for_columns(["a", "y"], [2, 2], "y")
    r = 10.0 * 10.0 * np.sqrt(0.5)
    table = np.array([500 + r, 500 - r, 500 - r, 500 + r])
    out, = soft_threshold(plan, [table], std=10.0)
    np.testing.assert_allclose(out, table)
    independent = np.outer([30.0, 70.0], [0.4, 0.6]).reshape(-1)
    np.testing.assert_allclose(soft_threshold(plan, [independent], 10.0)[0], independent)
