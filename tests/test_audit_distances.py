"""Gower distance, DCR share and exact matches on declared domains."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pulsesynth.audit.distances import (
    GowerSpace,
    distance_report,
    exact_matches,
    nearest_distance,
    unique_matches,
)
from pulsesynth.schema import parse_schema

SCHEMA = parse_schema({
    "id": "toy", "title": "Toy", "classification": "secret", "steward": "s",
    "target": "label", "row_key": "rid", "min_rows": 2,
    "privacy": {"epsilon": 1.0, "lifetime_epsilon": 5.0, "refresh_days": 1},
    "columns": [
        {"name": "rid", "type": "integer", "role": "identifier", "bounds": [0, 10**6]},
        {"name": "age", "type": "integer", "role": "quasi_identifier", "bounds": [0, 100],
         "bins": [0, 50, 100]},
        {"name": "income", "type": "float", "role": "sensitive", "nullable": True,
         "bounds": [0, 1000], "bins": [0, 500, 1000]},
        {"name": "city", "type": "categorical", "role": "quasi_identifier", "nullable": True,
         "categories": ["a", "b", "c"]},
        {"name": "label", "type": "categorical", "role": "target", "categories": ["n", "y"]},
    ],
})


def random_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.uniform(0, 1000, n)
    income[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "rid": np.arange(n),
        "age": rng.integers(0, 101, n),
        "income": income,
        "city": pd.Series(rng.choice(["a", "b", "c", None], n), dtype="str"),
        "label": pd.Series(rng.choice(["n", "y"], n), dtype="str"),
    })


def brute_force_gower(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    out = []
    for _, x in a.iterrows():
        best = np.inf
        for _, y in b.iterrows():
            d = abs(x.age - y.age) / 100
            xi, yi = x.income, y.income
            d += (abs(xi - yi) / 1000 if pd.notna(xi) and pd.notna(yi)
                  else float(pd.isna(xi) != pd.isna(yi)))
            d += float(not ((pd.isna(x.city) and pd.isna(y.city)) or x.city == y.city))
            d += float(x.label != y.label)
            best = min(best, d / 4)
        out.append(best)
    return np.array(out)


def test_nearest_distance_matches_brute_force_gower_with_missing_values() -> None:
    a, b = random_frame(30, 1), random_frame(40, 2)
    space = GowerSpace(SCHEMA)
    fast = nearest_distance(space.encode(a), space.encode(b), chunk_bytes=4096)
    np.testing.assert_allclose(fast, brute_force_gower(a, b), atol=1e-5)


def test_encoding_uses_declared_bounds_not_the_data() -> None:
    """A row encodes the same alone or among others: no min/max of the private rows."""
    space = GowerSpace(SCHEMA)
    frame = random_frame(60, 3)
    alone = space.encode(frame.iloc[[0]])
    among = space.encode(frame)
    np.testing.assert_array_equal(alone.numeric[0], among.numeric[0])
    np.testing.assert_array_equal(alone.onehot[0], among.onehot[0])
    assert alone.numeric[0, 0] == frame["age"].iloc[0] / 100


def test_exact_matches_count_copies_and_unique_copies() -> None:
    train = random_frame(200, 5)
    train = pd.concat([train, train.iloc[[0]]], ignore_index=True)  # row 0 now not unique
    synthetic = pd.concat([train.iloc[[0, 1, 2]], random_frame(50, 6)], ignore_index=True)
    total, unique = exact_matches(GowerSpace(SCHEMA), train, synthetic)
    assert (total, unique) == (3, 2)


def test_dcr_share_flags_copied_training_rows_and_not_fresh_samples() -> None:
    train, holdout = random_frame(400, 7), random_frame(400, 8)
    copied = distance_report(SCHEMA, train, holdout, train.sample(400, random_state=0))
    fresh = distance_report(SCHEMA, train, holdout, random_frame(400, 9))
    assert copied["dcr_share"] > 0.95 and copied["exact_matches"] == 400
    assert copied["exact_matches_unique"] >= 390  # a few random rows coincide
    assert copied["median_gower"] == 0.0 < copied["gower_reference"]
    assert 0.4 < fresh["dcr_share"] < 0.6
    assert fresh["exact_matches"] < 20  # only chance collisions among rows missing income
    assert fresh["median_gower"] > 0



def test_distances_use_a_bounded_sample_of_query_rows_and_every_row_for_matches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Above MAX_QUERY_ROWS each nearest-record search takes a random sample of its query
    rows (linear, not N², in the table's size); the figures stay close to the full ones
    and exact matches still count every row."""
    import pulsesynth.audit.distances as distances

    train, holdout, fake = random_frame(1200, 7), random_frame(1200, 8), random_frame(1200, 9)
    full = distance_report(SCHEMA, train, holdout, fake)
    sizes: list[int] = []
    search = distances.nearest_distance

    def counting(queries, reference, **kw):  # type: ignore[no-untyped-def]
        sizes.append(len(queries))
        return search(queries, reference, **kw)

    monkeypatch.setattr(distances, "MAX_QUERY_ROWS", 300)
    monkeypatch.setattr(distances, "nearest_distance", counting)
    capped = distance_report(SCHEMA, train, holdout, fake)
    assert sizes == [300, 300, 300, 300]
    assert capped["query_rows_max"] == 300 and full["query_rows_max"] == 20_000
    assert abs(capped["median_gower"] - full["median_gower"]) < 0.02
    assert abs(capped["gower_reference"] - full["gower_reference"]) < 0.02
    assert abs(capped["dcr_share"] - full["dcr_share"]) < 0.08
    assert (capped["exact_matches"], capped["exact_match_control"]) == (
        full["exact_matches"], full["exact_match_control"])


def coarse_frame(n: int, seed: int) -> pd.DataFrame:
    """Coarse values (income in hundreds): about 10,000 possible rows, so a fresh draw from
    the same population reproduces some unique rows by chance (the taxi-like case)."""
    frame = random_frame(n, seed)
    frame["income"] = frame["income"].round(-2)
    return frame


def test_unique_matches_counts_per_real_set() -> None:
    train, holdout = random_frame(100, 12), random_frame(100, 13)
    synthetic = pd.concat([train.iloc[:5], holdout.iloc[:2], random_frame(20, 14)],
                          ignore_index=True)
    assert unique_matches(GowerSpace(SCHEMA), [train, holdout], synthetic) == [5, 2]


def test_exact_match_control_separates_chance_reproductions_from_copies() -> None:
    train, holdout = coarse_frame(600, 15), coarse_frame(600, 16)
    fresh = distance_report(SCHEMA, train, holdout, coarse_frame(600, 17))
    copied = distance_report(SCHEMA, train, holdout,
                             pd.concat([coarse_frame(300, 17), train.iloc[:300]],
                                       ignore_index=True))
    chance = fresh["exact_match_control"]
    # A model that never saw the training rows still hits unique ones: the strict gate
    # count is positive, and the control shows the same rate on unseen rows.
    assert fresh["exact_matches_unique"] > 0
    assert chance["rows"] == 600 and chance["train_unique"] > 0 and chance["holdout_unique"] > 0
    assert abs(chance["train_unique"] - chance["holdout_unique"]) <= 3 * np.sqrt(
        chance["train_unique"] + chance["holdout_unique"])
    copies = copied["exact_match_control"]
    assert copies["train_unique"] > copies["holdout_unique"] + 100
    # The steward's exact one-sided test: chance is not significant, copying is.
    assert chance["p_value"] > 0.01 and copies["p_value"] < 1e-10


@pytest.mark.slow
def test_nearest_distance_scales_to_50k_by_50k() -> None:
    space = GowerSpace(SCHEMA)
    a, b = space.encode(random_frame(50_000, 10)), space.encode(random_frame(50_000, 11))
    out = nearest_distance(a, b)
    assert out.shape == (50_000,) and np.all(out >= 0)
