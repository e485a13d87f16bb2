"""Unit-grouped splits and the per-unit row cap."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from pulsesynth.randomness import salt_from_seed
from pulsesynth.schema import DatasetSchema, parse_schema
from pulsesynth.splits import (
    TRAINED_ROWS,
    cap_rows_per_unit,
    role_counts,
    split_by_unit,
    unit_keys,
)

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


SALT = salt_from_seed(1)


def test_split_keeps_units_together_and_covers_all_rows() -> None:
    df = frame()
    parts = split_by_unit(df, schema(), FRACTIONS, salt=SALT)
    assert list(parts) == list(FRACTIONS)
    assert sum(len(p) for p in parts.values()) == len(df)
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not units_of(parts[a]) & units_of(parts[b])
            assert not set(parts[a].index) & set(parts[b].index)
    # keyed-hash roles: unit counts are binomial around the fractions (300 units)
    assert 150 <= len(units_of(parts["train"])) <= 210
    assert parts["train"].attrs["split"]["unit"] == ["year", "crash"]
    assert SALT.hex() not in json.dumps(parts["train"].attrs["split"], default=str)


def test_split_is_deterministic_order_independent_and_keyed() -> None:
    df = frame()
    a = split_by_unit(df, schema(), FRACTIONS, salt=SALT)
    b = split_by_unit(df, schema(), FRACTIONS, salt=SALT)
    shuffled = df.sample(frac=1.0, random_state=3)
    c = split_by_unit(shuffled, schema(), FRACTIONS, salt=SALT)
    d = split_by_unit(df, schema(), FRACTIONS, salt=salt_from_seed(2))
    for name in FRACTIONS:
        pd.testing.assert_frame_equal(a[name], b[name])
        assert set(a[name].index) == set(c[name].index)
    assert set(a["train"].index) != set(d["train"].index)


def roles_of(df: pd.DataFrame, salt: bytes) -> dict[tuple[int, int, int], str]:
    """Role of every row (by its row key) after split and cap, as run_data makes them."""
    out = {}
    for name, part in split_by_unit(df, schema(), FRACTIONS, salt=salt).items():
        kept = cap_rows_per_unit(part, schema(), 2, salt=salt)
        for key in zip(kept["year"], kept["crash"], kept["seat"], strict=True):
            out[key] = name
    return out


def test_removing_one_unit_moves_only_its_own_rows() -> None:
    df = frame(400)
    before = roles_of(df, SALT)
    for year, crash in [(2000, 1), (2001, 57), (2000, 120)]:
        gone = (df["year"] == year) & (df["crash"] == crash)
        after = roles_of(df[~gone], SALT)
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        assert changed, "the removed unit had rows in some role"
        assert all((k[0], k[1]) == (year, crash) for k in changed)


def test_split_without_unit_is_by_row_key() -> None:
    df = frame(50)
    parts = split_by_unit(df, schema(unit=False), {"train": 0.5, "holdout": 0.5}, salt=SALT)
    assert sum(len(p) for p in parts.values()) == len(df)
    assert parts["train"].attrs["split"]["unit"] == ["<row>"]
    # rows of one crash may now land in different roles: each row is its own unit
    crashes = [units_of(p) for p in parts.values()]
    assert crashes[0] & crashes[1]


def test_split_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError):
        split_by_unit(frame(10), schema(), {"train": 0.5, "holdout": 0.6}, salt=SALT)
    with pytest.raises(ValueError):
        split_by_unit(frame(10), schema(), {"train": 1.2, "holdout": -0.2}, salt=SALT)


def test_unit_keys_group_multi_column_key() -> None:
    df = frame(20)
    assert unit_keys(df, schema()).nunique() == 20
    # without a unit each row key is a unit (this frame's (crash, seat) recurs across years)
    assert unit_keys(df, schema(unit=False)).nunique() == len(
        df[["crash", "seat"]].drop_duplicates())


@pytest.mark.parametrize("k", [1, 2, 3])
def test_cap_rows_per_unit(k: int) -> None:
    df = frame()
    capped = cap_rows_per_unit(df, schema(), k, salt=SALT)
    per_unit = capped.groupby(["year", "crash"]).size()
    assert per_unit.max() <= k
    assert units_of(capped) == units_of(df)  # every unit keeps at least one row
    full = df.groupby(["year", "crash"]).size().clip(upper=k)
    assert len(capped) == int(full.sum())
    assert capped.index.is_monotonic_increasing  # original order kept
    pd.testing.assert_frame_equal(capped, df.loc[capped.index])


def test_cap_depends_on_the_salt_only() -> None:
    df = frame()
    a = cap_rows_per_unit(df, schema(), 1, salt=SALT)
    b = cap_rows_per_unit(df.sample(frac=1.0, random_state=4), schema(), 1, salt=SALT)
    c = cap_rows_per_unit(df, schema(), 1, salt=salt_from_seed(9))
    assert set(a.index) == set(b.index)
    assert not a.index.equals(c.index)


def test_cap_without_unit_keeps_every_row() -> None:
    df = frame(30)
    assert len(cap_rows_per_unit(df, schema(unit=False), 1, salt=SALT)) == len(df)
    with pytest.raises(ValueError):
        cap_rows_per_unit(df, schema(), 0, salt=SALT)


def test_role_counts_add_the_kept_rows_only_where_a_model_keeps_fewer_per_unit() -> None:
    """The kept rows' count is sum(min(rows, c)) over the training units, whichever rows
    are kept, and one unit then moves the vector by k + c in L1; at c = k nothing is
    added, so the roles' noise draws stay what they were."""
    s = schema()  # k = 2
    parts = split_by_unit(frame(), s, FRACTIONS, salt=SALT)
    roles = {name: cap_rows_per_unit(part, s, 2, salt=SALT) for name, part in parts.items()}
    counts, sensitivity = role_counts(roles, s, 1)
    assert sensitivity == 3
    assert counts[TRAINED_ROWS] == len(cap_rows_per_unit(roles["train"], s, 1, salt=SALT))
    assert counts[TRAINED_ROWS] == len(units_of(roles["train"])) < counts["train"]
    assert {k: counts[k] for k in roles} == {k: len(v) for k, v in roles.items()}
    assert role_counts(roles, s, 2) == ({k: len(v) for k, v in roles.items()}, 2)
    assert role_counts(roles, s, 7) == ({k: len(v) for k, v in roles.items()}, 2)
    assert role_counts(roles, schema(unit=False), 1) == ({k: len(v) for k, v in roles.items()}, 2)
