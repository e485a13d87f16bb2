"""DP marginals and raking: accounting in one accountant, projection, IPF, sampling."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_encoding import TOY, toy_frame

from pulsesynth.encoding import TableEncoder
from pulsesynth.schema import DatasetSchema, parse_schema
from pulsesynth.synth import DPVAESynthesizer
from pulsesynth.synth.marginals import (
    SCORE_SENSITIVITY,
    SELECTION_NOISE_FLOOR,
    SINGLE_NOISE_RATIO,
    MarginalPlan,
    NoisyMarginals,
    _consistent,
    _project,
    independent_draws,
    interaction_l1,
    measure,
    measure_selected,
    noise_to_cells,
    noisy_counts,
    rake,
    resample,
)
from pulsesynth.synth.train import (
    Schedule,
    TrainConfig,
    gaussian_noise_for,
    noise_for_schedule,
    planned_epsilon,
)
from pulsesynth.utility import marginal_tv

FAST = {"epochs": 3, "hidden": (32, 32), "latent_dim": 4}


@pytest.fixture(scope="module")
def schema() -> DatasetSchema:
    return parse_schema(copy.deepcopy(TOY))


def test_plan_pairs_every_column_with_the_target() -> None:
    plan = MarginalPlan.for_columns(["a", "b", "y"], [3, 4, 2], "y")
    assert plan.describe() == [["a", "y"], ["b", "y"]]
    assert [plan.cells(g) for g in plan.groups] == [6, 8]
    assert MarginalPlan.for_columns(["a", "b"], [3, 4], None).describe() == [["a"], ["b"]]


def test_projection_subtracts_a_constant_and_clips() -> None:
    np.testing.assert_allclose(_project(np.array([5.0, -3.0, 1.0]), 4.0), [4.0, 0.0, 0.0])
    np.testing.assert_allclose(_project(np.array([2.0, 2.0, 2.0]), 3.0), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(_project(np.array([100.0, 3.0, -2.0, 4.0]), 100.0),
                               [97 + 2 / 3, 2 / 3, 0.0, 1 + 2 / 3])


def test_consistent_tables_share_one_target_marginal() -> None:
    plan = MarginalPlan.for_columns(["a", "b", "y"], [2, 3, 2], "y")
    noisy = [np.array([40.0, 10.0, 35.0, 15.0]), np.array([20.0, 5.0, 30.0, 10.0, 25.0, 8.0])]
    tables = _consistent(plan, noisy)
    a_y = tables[0].reshape(2, 2).sum(axis=0)
    b_y = tables[1].reshape(3, 2).sum(axis=0)
    np.testing.assert_allclose(a_y, b_y)
    # The shared class counts weight each table by 1 / (its cells per class).
    raw = (np.array([75.0, 25.0]) / 2 + np.array([75.0, 23.0]) / 3) / (1 / 2 + 1 / 3)
    np.testing.assert_allclose(a_y, _project(raw, 99.0) / 99.0)
    assert all(t.sum() == pytest.approx(1.0) and (t >= 0).all() for t in tables)


def test_raking_reaches_consistent_marginals_on_a_full_support_pool() -> None:
    rng = np.random.default_rng(0)
    pool = np.column_stack([rng.integers(0, 3, 20_000), rng.integers(0, 2, 20_000)])
    plan = MarginalPlan.for_columns(["a", "y"], [3, 2], "y")
    want = np.array([0.05, 0.15, 0.30, 0.10, 0.25, 0.15])
    weights = rake(pool, NoisyMarginals(plan, 1.0, (want,)))
    got = np.bincount(pool[:, 0] * 2 + pool[:, 1], weights=weights, minlength=6)
    np.testing.assert_allclose(got, want, atol=1e-9)
    idx = resample(weights, 10_000, rng)
    drawn = np.bincount(pool[idx, 0] * 2 + pool[idx, 1], minlength=6) / 10_000
    np.testing.assert_allclose(drawn, want, atol=0.015)  # ~3.5 binomial SDs of a cell


def test_each_count_gets_gaussian_noise_of_std_sigma_sqrt_m() -> None:
    plan = MarginalPlan.for_columns(["a", "b"], [5000, 5000], None)
    levels = np.zeros((0, 2), dtype=np.int64)  # no rows: the counts are pure noise
    noise = np.concatenate(noisy_counts(levels, plan, 3.0, np.random.default_rng(1)))
    assert np.std(noise) == pytest.approx(3.0 * np.sqrt(2), rel=0.03)
    assert abs(np.mean(noise)) < 0.1
    with pytest.raises(ValueError, match="positive noise multiplier"):
        noisy_counts(levels, plan, 0.0, np.random.default_rng(1))


def test_measure_keeps_a_dominant_cell_through_the_noise() -> None:
    plan = MarginalPlan.for_columns(["a"], [4], None)
    levels = np.zeros((1000, 1), dtype=np.int64)
    out = measure(levels, plan, 2.0, np.random.default_rng(1))
    assert out.probabilities[0][0] > 0.98 and out.probabilities[0].sum() == pytest.approx(1)


def test_marginals_and_dp_sgd_compose_in_one_accountant() -> None:
    schedule = Schedule.plan(5000, TrainConfig())
    sigma_m = gaussian_noise_for(0.5, 1e-6, "prv")
    assert planned_epsilon(1e6, schedule, 1e-6, "prv", [(sigma_m, 1.0, 1)]) == pytest.approx(
        0.5, rel=0.01)
    alone = noise_for_schedule(1.0, 1e-6, schedule, "prv")
    joint = noise_for_schedule(1.0, 1e-6, schedule, "prv", [(sigma_m, 1.0, 1)])
    assert joint > alone  # the marginals' cost is charged: training gets more noise
    total = planned_epsilon(joint, schedule, 1e-6, "prv", [(sigma_m, 1.0, 1)])
    assert 0.99 * 1.0 <= total <= 1.0
    # ... and sub-additively: training keeps far more than half of its noise budget.
    assert planned_epsilon(joint, schedule, 1e-6, "prv") > 0.5


def test_fit_charges_marginals_and_dp_sgd_to_the_one_target(schema: DatasetSchema) -> None:
    data = toy_frame(600, seed=11)
    synth = DPVAESynthesizer(schema, seed=3, **FAST).fit(data)
    rep = synth.privacy_report
    assert 0.98 <= rep["epsilon"] <= 1.0
    assert rep["marginal_share"] == 0.8
    (sigma, q, steps), = rep["prior_mechanisms"]
    assert (q, steps) == (1.0, 1)
    assert sigma == pytest.approx(gaussian_noise_for(0.8, rep["delta"], "prv"))
    assert synth.marginals is not None
    assert synth.marginals.plan.describe()[0] == ["color", "label"]


def test_raked_samples_follow_the_marginals_better_than_raw_draws(
        schema: DatasetSchema) -> None:
    data = toy_frame(3000, seed=5)
    data.loc[data["size"] == "L", "label"] = "yes"  # a strong pair for the plan to carry
    kwargs = {**FAST, "epsilon": 20.0, "seed": 4}
    raked = DPVAESynthesizer(schema, **kwargs).fit(data).sample(3000, seed=1)
    plain = DPVAESynthesizer(schema, marginal_share=0, **kwargs).fit(data).sample(3000, seed=1)
    assert marginal_tv(schema, raked, data, 1) < 0.5 * marginal_tv(schema, plain, data, 1)
    share_l = raked.loc[raked["size"] == "L", "label"].eq("yes").mean()
    assert share_l > 0.95


def test_marginals_survive_save_load_and_model_release(schema: DatasetSchema,
                                                       tmp_path: Path) -> None:
    synth = DPVAESynthesizer(schema, seed=3, **FAST).fit(toy_frame(600, seed=11))
    synth.save(tmp_path / "m")
    loaded = DPVAESynthesizer.load(tmp_path / "m", schema)
    pd.testing.assert_frame_equal(loaded.sample(200, seed=9), synth.sample(200, seed=9))
    synth.export_release(tmp_path / "r")
    released = DPVAESynthesizer.from_release(tmp_path / "r", schema)
    pd.testing.assert_frame_equal(released.sample(200, seed=9), synth.sample(200, seed=9))


def test_non_private_fits_measure_nothing(schema: DatasetSchema) -> None:
    synth = DPVAESynthesizer(schema, private=False, seed=3, **FAST).fit(toy_frame(300, 2))
    assert synth.marginals is None and synth.metadata["marginals"] is None


def test_levels_round_trip_through_decode(schema: DatasetSchema) -> None:
    enc = TableEncoder(schema)
    levels = enc.levels(toy_frame(500, seed=3))
    assert (levels >= 0).all()
    again = enc.levels(enc.decode_levels(levels, np.random.default_rng(0)))
    np.testing.assert_array_equal(again, levels)


def test_marginal_tv_is_zero_on_itself_and_one_on_disjoint_supports(
        schema: DatasetSchema) -> None:
    a = toy_frame(400, seed=1)
    assert marginal_tv(schema, a, a, 1) == 0.0 and marginal_tv(schema, a, a, 2) == 0.0
    b, c = a.copy(), a.copy()
    b["size"], c["size"] = "S", "L"
    one = marginal_tv(schema, b[["size"] + [x for x in a if x != "size"]], c, 1)
    assert one == pytest.approx(1.0 / len(TableEncoder(schema).columns))


def test_independent_draws_follow_the_dp_conditionals() -> None:
    plan = MarginalPlan.for_columns(["a", "y"], [3, 2], "y")
    want = np.array([0.05, 0.15, 0.30, 0.10, 0.25, 0.15])  # (a, y) cells, a-major
    draws = independent_draws(NoisyMarginals(plan, 1.0, (want,)), 40_000,
                              np.random.default_rng(3))
    got = np.bincount(draws[:, 0] * 2 + draws[:, 1], minlength=6) / 40_000
    np.testing.assert_allclose(got, want, atol=0.01)


def test_pool_support_reaches_cells_the_vae_never_draws() -> None:
    plan = MarginalPlan.for_columns(["a", "y"], [3, 2], "y")
    want = np.array([0.05, 0.15, 0.30, 0.10, 0.25, 0.15])
    marginals = NoisyMarginals(plan, 1.0, (want,))
    rng = np.random.default_rng(4)
    vae_like = np.column_stack([np.zeros(5000, dtype=np.int64), rng.integers(0, 2, 5000)])
    pool = np.vstack([vae_like, independent_draws(marginals, 1000, rng)])
    weights = rake(pool, marginals)
    got = np.bincount(pool[:, 0] * 2 + pool[:, 1], weights=weights, minlength=6)
    np.testing.assert_allclose(got, want, atol=1e-9)


def _target_driven_levels(n: int, seed: int) -> np.ndarray:
    """Columns (a, b, c, y): ``a`` (2 levels) follows the binary target ``y`` 9 times in 10,
    ``b`` (10 levels) and ``c`` (12 levels) are independent of it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < 0.9, y, 1 - y)
    return np.column_stack([a, rng.integers(0, 10, n), rng.integers(0, 12, n), y])


def test_an_interaction_score_moves_by_less_than_its_sensitivity_when_a_row_leaves() -> None:
    plan = MarginalPlan.for_columns(["a", "y"], [3, 2], "y")
    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 40):
        levels = np.column_stack([rng.integers(0, 3, n), rng.integers(0, 2, n)])
        base = interaction_l1(levels, plan, (0, 1))
        for cell in [(i, j) for i in range(3) for j in range(2)]:
            added = np.vstack([levels, [cell]])
            assert abs(interaction_l1(added, plan, (0, 1)) - base) < SCORE_SENSITIVITY
    skewed = np.array([[0, 0]] * 30 + [[1, 1]])  # the bound's worst case: a rare cell
    assert abs(interaction_l1(np.vstack([skewed, [[2, 1]]]), plan, (0, 1))
               - interaction_l1(skewed, plan, (0, 1))) > 2.5


def test_selection_pairs_only_the_column_that_carries_the_signal() -> None:
    plan = MarginalPlan.for_columns(["a", "b", "c", "y"], [2, 10, 12, 2], "y")
    assert noise_to_cells(plan, 10.0, 2000) == pytest.approx(10 * np.sqrt(3) * 16 / 2000)
    out = measure_selected(_target_driven_levels(2000, 1), plan, 10.0,
                           np.random.default_rng(2), rows=2000)
    assert out.selection == {"share": 0.1, "clear": True, "paired": ["a"]}
    assert out.plan.describe() == [["a", "y"], ["b"], ["c"]]
    single = 1 / SINGLE_NOISE_RATIO ** 2
    pair = 1 / (1 + 2 * single)
    assert out.plan.shares == pytest.approx((pair, pair * single, pair * single))
    assert out.noise_multiplier == 10.0
    a_given_y = out.probabilities[0].reshape(2, 2)
    assert a_given_y[1, 1] / a_given_y[:, 1].sum() == pytest.approx(0.9, abs=0.03)


def test_every_pair_is_measured_when_the_scores_show_no_signal() -> None:
    plan = MarginalPlan.for_columns(["a", "b", "c", "y"], [2, 3, 4, 2], "y")
    rng = np.random.default_rng(3)
    flat = np.column_stack([rng.integers(0, w, 300) for w in (2, 3, 4, 2)])
    out = measure_selected(flat, plan, 10.0, np.random.default_rng(4), rows=300)
    assert out.selection == {"share": 0.1, "clear": False, "paired": ["a", "b", "c"]}
    assert out.plan == plan and out.plan.shares == pytest.approx((1 / 3,) * 3)


def test_small_noise_beside_the_cells_measures_the_whole_plan_as_before() -> None:
    plan = MarginalPlan.for_columns(["a", "b", "c", "y"], [2, 10, 12, 2], "y")
    levels = _target_driven_levels(20_000, 1)
    assert noise_to_cells(plan, 10.0, 20_000) < SELECTION_NOISE_FLOOR
    out = measure_selected(levels, plan, 10.0, np.random.default_rng(2), rows=20_000)
    before = measure(levels, plan, 10.0, np.random.default_rng(2))
    assert out.selection is None and out.plan == plan
    for got, want in zip(out.probabilities, before.probabilities, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_plan_without_target_is_measured_whole_without_selection() -> None:
    plan = MarginalPlan.for_columns(["a", "b"], [2, 3], None)
    levels = np.zeros((50, 2), dtype=np.int64)
    out = measure_selected(levels, plan, 20.0, np.random.default_rng(1), rows=50)
    assert out.selection is None and out.plan == plan
def test_each_group_gets_noise_of_std_sigma_over_root_share() -> None:
    full = MarginalPlan.for_columns(["a", "b", "y"], [4000, 4000, 2], "y")
    plan = full.chosen([0])
    assert plan.describe() == [["a", "y"], ["b"]]
    assert sum(plan.shares) == pytest.approx(1.0)
    levels = np.zeros((0, 3), dtype=np.int64)
    pair, single = noisy_counts(levels, plan, 3.0, np.random.default_rng(1))
    assert np.std(pair) == pytest.approx(3.0 / np.sqrt(plan.shares[0]), rel=0.03)
    assert np.std(single) == pytest.approx(3.0 / np.sqrt(plan.shares[1]), rel=0.03)
    assert np.std(single) / np.std(pair) == pytest.approx(SINGLE_NOISE_RATIO, rel=0.05)


def test_mixed_plan_tables_are_consistent_and_drawn_as_measured() -> None:
    plan = MarginalPlan.for_columns(["a", "b", "y"], [2, 3, 2], "y").chosen([0])
    noisy = [np.array([40.0, 10.0, 35.0, 15.0]), np.array([30.0, -4.0, 74.0])]
    tables = _consistent(plan, noisy)
    np.testing.assert_allclose(tables[0], _project(noisy[0], 100.0) / 100.0)
    np.testing.assert_allclose(tables[1], [0.28, 0.0, 0.72])
    marginals = NoisyMarginals(plan, 1.0, tuple(tables), {"paired": ["a"]})
    draws = independent_draws(marginals, 40_000, np.random.default_rng(5))
    np.testing.assert_allclose(np.bincount(draws[:, 1], minlength=3) / 40_000, tables[1],
                               atol=0.01)
    np.testing.assert_allclose(np.bincount(draws[:, 0] * 2 + draws[:, 2], minlength=4)
                               / 40_000, tables[0], atol=0.01)
    again = NoisyMarginals.from_dict(marginals.to_dict())
    assert again.plan == plan and again.selection == {"paired": ["a"]}
