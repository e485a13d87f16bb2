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
    MarginalPlan,
    NoisyMarginals,
    _consistent,
    _project,
    independent_draws,
    measure,
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
