"""Values placed inside their public bins by DP shares of sub-bins (pulsesynth.synth.within_bin)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_encoding import TOY, toy_frame

from pulsesynth.artifacts import RELEASE_CONFIG_JSON
from pulsesynth.encoding import TableEncoder
from pulsesynth.schema import DatasetSchema, parse_schema
from pulsesynth.synth import DPVAESynthesizer, within_bin
from pulsesynth.synth.marginals import SELECTION_NOISE_FLOOR, MarginalPlan
from pulsesynth.synth.within_bin import (
    SHAPE_EVIDENCE,
    SUB_BIN_SHARE,
    SubBins,
    WithinBin,
    _evidence,
    _level_shares,
    split_noise,
)

FAST = {"epochs": 3, "hidden": (32, 32), "latent_dim": 4}

#: One numeric column with a single wide bin: only where inside it a value lies tells the
#: classes apart.
PLANTED = {
    "id": "planted", "title": "Planted", "classification": "sensitive", "steward": "tests",
    "target": "label", "row_key": "rid",
    "privacy": {"epsilon": 8.0, "delta": None, "lifetime_epsilon": 80.0, "refresh_days": 30,
                "max_rows_per_unit": 1},
    "columns": [
        {"name": "rid", "type": "integer", "role": "identifier", "bounds": [1, 10**7]},
        {"name": "x", "type": "float", "role": "other", "bounds": [0, 10], "bins": [0, 10]},
        {"name": "n", "type": "integer", "role": "other", "bounds": [0, 3], "bins": [0, 3]},
        {"name": "label", "type": "categorical", "role": "target", "categories": ["no", "yes"]},
    ],
}


def planted_frame(rows: int, seed: int) -> pd.DataFrame:
    """``yes`` rows have x in [0, 2.5) and n = 0, ``no`` rows x in [7.5, 10) and n = 3."""
    rng = np.random.default_rng(seed)
    yes = rng.random(rows) < 0.4
    return pd.DataFrame({
        "rid": np.arange(1, rows + 1),
        "x": np.where(yes, 0.0, 7.5) + rng.uniform(0, 2.5, rows),
        "n": np.where(yes, 0, 3).astype("int64"),
        "label": pd.Series(np.where(yes, "yes", "no"), dtype="str"),
    })


def counted(schema: DatasetSchema, rows: int, seed: int) -> tuple[
        TableEncoder, np.ndarray, np.ndarray, MarginalPlan]:
    """The planted table's encoder, levels, positions and (column, target) plan."""
    enc = TableEncoder(schema)
    frame = planted_frame(rows, seed)
    levels = enc.levels(frame)
    plan = MarginalPlan.for_columns(enc.column_names, [b.width for b in enc.block_specs],
                                    schema.target)
    return enc, levels, enc.bin_positions(frame, levels), plan


@pytest.fixture(scope="module")
def toy() -> DatasetSchema:
    return parse_schema(copy.deepcopy(TOY))


@pytest.fixture(scope="module")
def planted() -> DatasetSchema:
    return parse_schema(copy.deepcopy(PLANTED))


def test_positions_invert_the_decoders_draw_for_every_numeric_kind(toy: DatasetSchema) -> None:
    enc = TableEncoder(toy)
    frame = toy_frame(2000, seed=4)
    levels = enc.levels(frame)
    positions = enc.bin_positions(frame, levels)
    again = enc.decode_levels(levels, np.random.default_rng(0), positions)
    # Floats come back where they were; integers (linear, log scale, with an exact value
    # inside the domain) to the same integer.
    for name in ("age", "gain", "year", "ratio", "dist"):
        got, want = again[name].astype("float64"), frame[name].astype("float64")
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=name)
    np.testing.assert_array_equal(np.isnan(positions[:, enc.column_names.index("color")]), True)
    assert ((positions[~np.isnan(positions)] >= 0) & (positions[~np.isnan(positions)] < 1)).all()


def test_an_integer_bin_splits_into_at_most_its_integers(toy: DatasetSchema) -> None:
    enc = TableEncoder(toy)
    sub = SubBins.of(enc, most=4, keep=("label",))
    parts = dict(zip(enc.column_names, sub.parts, strict=True))
    assert parts["age"] == (4, 4, 4, 4)
    assert parts["gain"] == (1, 4, 4, 4)  # <zero> is an exact level of its own
    assert parts["year"] == (4, 4, 4, 1)  # <missing> stays whole
    assert parts["color"] == (1, 1, 1, 1) and parts["label"] == (1, 1)
    assert SubBins.of(TableEncoder(parse_schema(copy.deepcopy(PLANTED))), most=8).parts[1] == (4,)


def test_sub_bin_counts_sum_back_to_the_bin_counts(toy: DatasetSchema) -> None:
    enc = TableEncoder(toy)
    frame = toy_frame(3000, seed=5)
    levels = enc.levels(frame)
    plan = MarginalPlan.for_columns(enc.column_names, [b.width for b in enc.block_specs],
                                    toy.target)
    sub = SubBins.of(enc, keep=("label",))
    finer = MarginalPlan(plan.columns, sub.widths, plan.groups)
    fine_levels = sub.fine_levels(levels, enc.bin_positions(frame, levels))
    for group in plan.groups:
        _, fine_cells = finer.cell_index(fine_levels, group)
        _, cells = plan.cell_index(levels, group)
        fine = np.bincount(fine_cells, minlength=finer.cells(group)).astype(float)
        np.testing.assert_array_equal(sub.coarsen(fine, group, plan),
                                      np.bincount(cells, minlength=plan.cells(group)))


def test_shares_follow_each_class_where_the_noise_is_small(planted: DatasetSchema) -> None:
    enc, levels, positions, plan = counted(planted, 20_000, seed=1)
    sub = SubBins.of(enc, keep=("label",))
    marginals, within = within_bin.measure(levels, positions, plan,
                                           sub, 1.0, np.random.default_rng(0))
    x = enc.column_names.index("x")
    no, yes = within.shares[x][0]  # classes in declared order
    assert within.given[x] == enc.column_names.index("label")
    assert no.argmax() == 3 and no[3] > 0.99 and yes.argmax() == 0 and yes[0] > 0.99
    # The bin-level tables are the sums: one bin per class, the class shares as counted.
    np.testing.assert_allclose(marginals.probabilities[0], [0.6, 0.4], atol=0.01)


def test_a_column_whose_counts_show_no_shape_beyond_noise_stays_uniform(
        planted: DatasetSchema) -> None:
    enc, levels, positions, plan = counted(planted, 40, seed=2)
    _, within = within_bin.measure(levels, positions, plan,
                                   SubBins.of(enc, keep=("label",)), 200.0,
                                   np.random.default_rng(3))
    assert within is None


def test_the_evidence_separates_a_shape_by_class_from_chance() -> None:
    rng = np.random.default_rng(0)
    # 8 bins of 4 parts x 2 classes, 2,000 rows a bin, noise std 20 a cell.
    same = [rng.multinomial(2000, np.full(8, 1 / 8)).reshape(4, 2) + rng.normal(0, 20, (4, 2))
            for _ in range(8)]
    apart = [rng.multinomial(2000, [0.2, 0.05, 0.15, 0.1, 0.1, 0.15, 0.05, 0.2]).reshape(4, 2)
             + rng.normal(0, 20, (4, 2)) for _ in range(8)]
    counts = [np.full(2, 1000.0)] * 8
    assert abs(_evidence(same, counts, 20.0)) < SHAPE_EVIDENCE
    assert _evidence(apart, counts, 20.0) > 10 * SHAPE_EVIDENCE


def test_a_drowned_cell_leans_on_its_bins_shape_then_on_uniform() -> None:
    # Two classes; the bin holds 4 rows of the first and 4,000 of the second.
    noisy = np.array([[30.0, 4000.0], [-20.0, 0.0], [10.0, 0.0], [-5.0, 0.0]])
    shares = _level_shares(noisy, np.array([4.0, 4000.0]), std=10.0)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert shares[1, 0] > 0.97  # the big class keeps its own shape
    assert abs(shares[0, 0] - shares[1, 0]) < 0.1  # the small one borrows it


def test_the_bins_and_their_parts_are_counted_as_one_gaussian_mechanism_of_sigma() -> None:
    bins, parts = split_noise(6.0)
    assert 1 / bins ** 2 + 1 / parts ** 2 == pytest.approx(1 / 6.0 ** 2, rel=1e-12)
    assert parts == pytest.approx(6.0 / np.sqrt(SUB_BIN_SHARE))


def test_a_bins_count_combines_both_counts_by_inverse_variance(
        planted: DatasetSchema) -> None:
    enc, levels, positions, plan = counted(planted, 2000, seed=3)
    sub = SubBins.of(enc, keep=("label",))
    # With σ tiny every estimate is the exact count: the yes share of the rows.
    marginals, _ = within_bin.measure(levels, positions, plan, sub,
                                      1e-9, np.random.default_rng(0))
    share = float((levels[:, enc.column_names.index("label")] == 1).mean())  # "yes"
    np.testing.assert_allclose(marginals.probabilities[0], [1 - share, share], atol=1e-9)
    # A bin's variance: its count at σ_bins², its 4 parts' sum at 4 σ_parts².
    bins, parts = split_noise(5.0)
    draws = np.array([within_bin.measure(levels, positions, plan, sub,
                                         5.0, np.random.default_rng(s))[0].probabilities[0]
                      for s in range(300)])
    combined = 1 / (1 / bins ** 2 + 1 / (4 * parts ** 2))
    # Each of the two tables holds half the privacy (variance 2 × combined a cell), and
    # the class counts are their mean (combined); the yes share then moves by
    # sqrt((no² + yes²) × combined) / n.
    expected = np.sqrt(((1 - share) ** 2 + share ** 2) * combined)
    assert draws[:, 1].std() * 2000 == pytest.approx(expected, rel=0.15)


def test_sub_bins_are_measured_only_where_their_noise_is_small(planted: DatasetSchema) -> None:
    enc = TableEncoder(planted)
    plan = MarginalPlan.for_columns(enc.column_names, [b.width for b in enc.block_specs],
                                    planted.target)
    assert SubBins.for_plan(enc, plan, 1.0, rows=100_000) is not None
    # Fewer rows: the finer tables' noise per cell passes the floor, bins only.
    assert SubBins.for_plan(enc, plan, 1.0, rows=100) is None
    # A plan noisy enough to choose its tables never splits them.
    ratio = SELECTION_NOISE_FLOOR * 1.01
    rows = int(np.sqrt(2) * np.mean([plan.cells(g) for g in plan.groups]) / ratio)
    assert SubBins.for_plan(enc, plan, 1.0, rows=rows) is None


def test_a_release_keeps_the_signal_inside_a_bin(planted: DatasetSchema,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data = planted_frame(5000, seed=4)
    synth = DPVAESynthesizer(planted, seed=5, **FAST).fit(data)
    assert synth.within is not None and synth.metadata["within_bin"] is not None
    table = synth.sample(4000, seed=6)
    yes = table["label"] == "yes"
    # The shares keep a sliver of their prior (uniform), so a few rows in 1,000 may stray.
    assert (table.loc[yes, "x"] < 2.5).mean() > 0.99
    assert (table.loc[~yes, "x"] >= 7.5).mean() > 0.99
    assert (table.loc[yes, "n"] == 0).mean() > 0.99 and (table.loc[~yes, "n"] == 3).mean() > 0.99
    # The bins alone (the sub-bin floor at 0): values spread over the whole bin.
    monkeypatch.setattr(within_bin, "SUB_BIN_NOISE_FLOOR", 0.0)
    plain = DPVAESynthesizer(planted, seed=5, **FAST).fit(data)
    assert plain.within is None and plain.metadata["within_bin"] is None
    flat = plain.sample(4000, seed=6)
    assert 4.0 < flat.loc[flat["label"] == "yes", "x"].mean() < 6.0
    assert (flat.loc[flat["label"] == "yes", "x"] >= 7.5).mean() > 0.2


def test_shares_survive_save_load_and_model_release(planted: DatasetSchema,
                                                    tmp_path: Path) -> None:
    synth = DPVAESynthesizer(planted, seed=3, **FAST).fit(planted_frame(5000, seed=7))
    synth.save(tmp_path / "m")
    loaded = DPVAESynthesizer.load(tmp_path / "m", planted)
    pd.testing.assert_frame_equal(loaded.sample(300, seed=9), synth.sample(300, seed=9))
    synth.export_release(tmp_path / "r")
    released = DPVAESynthesizer.from_release(tmp_path / "r", planted)
    assert isinstance(released.within, WithinBin)
    pd.testing.assert_frame_equal(released.sample(300, seed=9), synth.sample(300, seed=9))
    model_json = json.loads((tmp_path / "r" / RELEASE_CONFIG_JSON).read_text(encoding="utf-8"))
    assert "sub-bins" in model_json["sampling"]["decoding"]
    assert model_json["within_bin"] == synth.within.to_dict()


def test_sub_bins_cost_the_same_one_accountant_entry(planted: DatasetSchema,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    data = planted_frame(5000, seed=8)
    split = DPVAESynthesizer(planted, seed=5, **FAST).fit(data)
    monkeypatch.setattr(within_bin, "SUB_BIN_NOISE_FLOOR", 0.0)
    whole = DPVAESynthesizer(planted, seed=5, **FAST).fit(data)
    assert split.metadata["prior_mechanisms"] == whole.metadata["prior_mechanisms"]
    assert split.metadata["epsilon"] == whole.metadata["epsilon"]
    assert split.marginals is not None and whole.marginals is not None
    assert split.marginals.noise_multiplier == whole.marginals.noise_multiplier


def test_the_ceiling_diagnostic_keeps_each_row_in_its_own_sub_bin_or_redraws_it(
        toy: DatasetSchema) -> None:
    from benchmarks.within_bin_ceiling import redraw

    enc = TableEncoder(toy)
    frame = toy_frame(1500, seed=6)
    levels = enc.levels(frame)
    positions = enc.bin_positions(frame, levels)
    sub = SubBins.of(enc, keep=("label",))
    target = enc.column_names.index("label")
    own = redraw(levels, positions, sub, "own_part", target, np.random.default_rng(0))
    np.testing.assert_array_equal(np.isnan(own), np.isnan(positions))
    age = enc.column_names.index("age")
    np.testing.assert_array_equal(np.floor(own[:, age] * 4), np.floor(positions[:, age] * 4))
    # Drawn from the same (bin, class) rows: every part drawn is one some such row holds.
    shared = redraw(levels, positions, sub, "class_share", target, np.random.default_rng(0))
    for k in range(4):
        for c in (0, 1):
            at = (levels[:, age] == k) & (levels[:, target] == c)
            assert set(np.floor(shared[at, age] * 4)) <= set(np.floor(positions[at, age] * 4))
