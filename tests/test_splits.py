"""Unit-grouped splits and the per-unit row cap."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from pulsesynth.schema import DatasetSchema, parse_schema
from pulsesynth.splits import cap_rows_per_unit, split_by_unit, unit_codes

BASE = {
    "id": "units",
    "title": "Units",
    "classification": "sensitive",
    "steward": "tests",
    "row_key": ["crash", "seat"],
    "privacy_unit": ["year", "crash"],
    "privacy": {"epsilon": 1.0, "delta": None, "lifetime_epsilon": 10.0, "refresh_days": 30,
                "max_rows_per_unit": 2},
    "columns": [
        {"name": "year", "type": "categorical", "role": "other", "categories": [2000, 2001]},
        {"name": "crash", "type": "integer", "role": "identifier", "bounds": [1, 10**6]},
        {"name": "seat", "type": "integer", "role": "identifier", "bounds": [1, 10]},
        {"name": "x", "type": "float", "role": "other", "bounds": [0, 1], "bins": [0, 0.5, 1]},
    ],
}
FRACTIONS = {"train": 0.6, "holdout": 0.2, "reference": 0.2}


def schema(unit: bool = True) -> DatasetSchema:
    raw = copy.deepcopy(BASE)
    if not unit:
        del raw["privacy_unit"]
    return parse_schema(raw)


def frame(n_units: int = 300, seed: int = 0) -> pd.DataFrame:
    """Units of 1-5 rows each; the same crash number recurs across years."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_units):
        year, crash = 2000 + u % 2, u // 2 + 1
        for seat in range(1, int(rng.integers(1, 6)) + 1):
            rows.append((year, crash, seat, float(rng.random())))
    return pd.DataFrame(rows, columns=["year", "crash", "seat", "x"])


def units_of(df: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(df["year"], df["crash"], strict=True))


def test_split_keeps_units_together_and_covers_all_rows() -> None:
    df = frame()
    parts = split_by_unit(df, schema(), FRACTIONS, seed=1)
    assert list(parts) == list(FRACTIONS)
    assert sum(len(p) for p in parts.values()) == len(df)
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not units_of(parts[a]) & units_of(parts[b])
            assert not set(parts[a].index) & set(parts[b].index)
    # unit counts follow the fractions exactly (rounded)
    assert len(units_of(parts["train"])) == 180
    assert len(units_of(parts["holdout"])) == 60
    assert parts["train"].attrs["split"]["seed"] == 1
    assert parts["train"].attrs["split"]["unit"] == ["year", "crash"]


def test_split_is_deterministic_and_order_independent() -> None:
    df = frame()
    a = split_by_unit(df, schema(), FRACTIONS, seed=5)
    b = split_by_unit(df, schema(), FRACTIONS, seed=5)
    shuffled = df.sample(frac=1.0, random_state=3)
    c = split_by_unit(shuffled, schema(), FRACTIONS, seed=5)
    d = split_by_unit(df, schema(), FRACTIONS, seed=6)
    for name in FRACTIONS:
        pd.testing.assert_frame_equal(a[name], b[name])
        assert set(a[name].index) == set(c[name].index)
    assert set(a["train"].index) != set(d["train"].index)


def test_split_without_unit_is_by_row() -> None:
    df = frame(50)
    parts = split_by_unit(df, schema(unit=False), {"train": 0.5, "holdout": 0.5}, seed=0)
    assert len(parts["train"]) == round(len(df) / 2)
    assert parts["train"].attrs["split"]["unit"] == ["<row>"]


def test_split_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError):
        split_by_unit(frame(10), schema(), {"train": 0.5, "holdout": 0.6})
    with pytest.raises(ValueError):
        split_by_unit(frame(10), schema(), {"train": 1.2, "holdout": -0.2})


def test_unit_codes_group_multi_column_key() -> None:
    df = frame(20)
    codes = unit_codes(df, schema())
    assert len(set(codes)) == 20
    assert list(unit_codes(df, schema(unit=False))) == list(range(len(df)))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_cap_rows_per_unit(k: int) -> None:
    df = frame()
    capped = cap_rows_per_unit(df, schema(), k, seed=0)
    per_unit = capped.groupby(["year", "crash"]).size()
    assert per_unit.max() <= k
    assert units_of(capped) == units_of(df)  # every unit keeps at least one row
    full = df.groupby(["year", "crash"]).size().clip(upper=k)
    assert len(capped) == int(full.sum())
    assert capped.index.is_monotonic_increasing  # original order kept
    pd.testing.assert_frame_equal(capped, df.loc[capped.index])


def test_cap_is_seeded() -> None:
    df = frame()
    a = cap_rows_per_unit(df, schema(), 1, seed=0)
    b = cap_rows_per_unit(df, schema(), 1, seed=0)
    c = cap_rows_per_unit(df, schema(), 1, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert not a.index.equals(c.index)


def test_cap_without_unit_keeps_every_row() -> None:
    df = frame(30)
    assert len(cap_rows_per_unit(df, schema(unit=False), 1, seed=0)) == len(df)
    with pytest.raises(ValueError):
        cap_rows_per_unit(df, schema(), 0)
