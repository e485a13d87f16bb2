"""Unit-grouped splits and the per-unit row cap.

DP guarantees and membership audits are stated per *privacy unit* (a person, a crash, a
patient), not per row: every row of one unit must land on the same side of a split, and
a unit may contribute at most ``max_rows_per_unit`` rows to training so that one unit's
influence is bounded. Without a declared privacy unit every row is its own unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from pulsesynth.schema import DatasetSchema

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.6, "holdout": 0.2, "reference": 0.2}


def unit_codes(df: pd.DataFrame, schema: DatasetSchema) -> np.ndarray:
    """Integer id of each row's privacy unit, numbered in sorted key order.

    Numbering by sorted key (not by row order) makes splits independent of how the rows
    happen to be ordered. Missing key values form their own unit.
    """
    unit = list(schema.privacy_unit)
    if not unit:
        return np.arange(len(df), dtype=np.int64)
    missing = [c for c in unit if c not in df.columns]
    if missing:
        raise KeyError(f"table lacks privacy-unit column(s): {', '.join(missing)}")
    codes = df.groupby(unit, sort=True, dropna=False).ngroup()
    return codes.to_numpy(dtype=np.int64)


def split_by_unit(
    df: pd.DataFrame,
    schema: DatasetSchema,
    fractions: Mapping[str, float] | None = None,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Split ``df`` into named parts with all rows of one privacy unit in one part.

    Units (not rows) are shuffled with ``seed`` and cut by the cumulative ``fractions``
    (which must sum to 1), so part sizes are exact in units and approximate in rows. The
    original index and row order are kept; each part records the rule in ``.attrs["split"]``.
    """
    fractions = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    if not fractions or any(f < 0 or not math.isfinite(f) for f in fractions.values()):
        raise ValueError("fractions must be non-negative numbers")
    if abs(sum(fractions.values()) - 1.0) > 1e-9:
        raise ValueError(f"fractions must sum to 1, got {sum(fractions.values())}")
    codes = unit_codes(df, schema)
    n_units = int(codes.max()) + 1 if len(codes) else 0
    order = np.random.default_rng(seed).permutation(n_units)
    cuts = np.rint(np.cumsum(list(fractions.values())) * n_units).astype(np.int64)
    cuts[-1] = n_units
    part_of_unit = np.empty(n_units, dtype=np.int64)
    start = 0
    for i, stop in enumerate(cuts):
        part_of_unit[order[start:stop]] = i
        start = stop
    part_of_row = part_of_unit[codes] if len(codes) else np.zeros(0, dtype=np.int64)
    record = {
        "seed": seed,
        "fractions": fractions,
        "unit": list(schema.privacy_unit) or ["<row>"],
        "units": n_units,
    }
    parts: dict[str, pd.DataFrame] = {}
    for i, name in enumerate(fractions):
        part = df[part_of_row == i].copy()
        part.attrs["split"] = dict(record, part=name)
        parts[name] = part
    return parts


def cap_rows_per_unit(
    df: pd.DataFrame, schema: DatasetSchema, max_rows: int, seed: int = 0
) -> pd.DataFrame:
    """Keep at most ``max_rows`` rows of each privacy unit, chosen at random with ``seed``.

    Bounding rows per unit turns a row-level DP guarantee into a unit-level one (with
    group privacy over ``max_rows`` rows). Kept rows stay in their original order.
    """
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    codes = unit_codes(df, schema)
    keys = np.random.default_rng(seed).random(len(df))
    order = np.lexsort((keys, codes))
    sorted_codes = codes[order]
    first = np.r_[True, sorted_codes[1:] != sorted_codes[:-1]] if len(order) else np.zeros(0, bool)
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    rank = np.arange(len(order)) - group_start
    keep = np.zeros(len(df), dtype=bool)
    keep[order[rank < max_rows]] = True
    return df[keep].copy()
