"""Stable, unit-grouped data roles and the per-unit row cap, by keyed hash.

DP guarantees and membership audits are stated per *privacy unit* (a person, a crash, a
patient), not per row: every row of one unit lands in the same role, and a unit
contributes at most ``max_rows_per_unit`` rows to training.

Both decisions are made **per unit from that unit alone**: a unit's role is a keyed hash
(HMAC-SHA-256 with a secret per-dataset salt) of its key, cut by the role fractions, and
the rows a unit keeps under the cap are the ``k`` with the smallest keyed hash of their
row key. Removing one unit from the table therefore changes only that unit's own rows in
every role (a seeded permutation of the whole table, as before, moved thousands). That
is what makes Opacus' add/remove-one-unit accounting of the *training set* hold for the
*table*: neighbouring tables give neighbouring training sets. The salt is secret so
nobody can tell from the outside which units were held out; tests and benchmarks use a
public salt (:func:`pulsesynth.randomness.salt_from_seed`). Without a declared privacy
unit every row is its own unit, keyed by the declared row key.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from pulsesynth.schema import DatasetSchema

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.6, "holdout": 0.2, "reference": 0.2}
_SEP = "\x1f"


def _key_strings(df: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One canonical string per row from ``columns`` (missing values spelled alike)."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"table lacks key column(s): {', '.join(missing)}")
    parts = [df[c].astype("string").fillna("<NA>") for c in columns]
    out = parts[0]
    for p in parts[1:]:
        out = out + _SEP + p
    return out.astype(object)


def unit_keys(df: pd.DataFrame, schema: DatasetSchema) -> pd.Series:
    """Each row's privacy-unit key (the row key where no unit is declared)."""
    return _key_strings(df, list(schema.privacy_unit or schema.row_key))


def with_fresh_units(df: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """Synthetic rows belong to nobody: give each its own unit and row key (the declared
    key columns, filled with ``syn-<i>``), so recipes that cap per unit can train on them."""
    out = df.copy()
    for name in dict.fromkeys([*schema.privacy_unit, *schema.row_key]):
        if name not in out.columns:
            out[name] = [f"syn-{i}" for i in range(len(out))]
    return out


def keyed_uniform(keys: pd.Series, salt: bytes, purpose: str) -> np.ndarray:
    """A uniform number in [0, 1) per key: HMAC-SHA-256(salt, purpose + key), 53 bits.

    Equal keys get equal numbers, and a key's number depends on nothing but the key, the
    salt and ``purpose`` (so roles and caps are independent draws).
    """
    if not salt:
        raise ValueError("a keyed hash needs a non-empty salt")
    prefix = purpose.encode() + b"\0"
    cache: dict[str, float] = {}
    out = np.empty(len(keys), dtype=np.float64)
    for i, key in enumerate(keys):
        value = cache.get(key)
        if value is None:
            digest = hmac.new(salt, prefix + str(key).encode(), hashlib.sha256).digest()
            value = (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)
            cache[key] = value
        out[i] = value
    return out


def _check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    fractions = dict(fractions)
    if not fractions or any(f < 0 or not math.isfinite(f) for f in fractions.values()):
        raise ValueError("fractions must be non-negative numbers")
    if abs(sum(fractions.values()) - 1.0) > 1e-9:
        raise ValueError(f"fractions must sum to 1, got {sum(fractions.values())}")
    return fractions


def split_by_unit(
    df: pd.DataFrame,
    schema: DatasetSchema,
    fractions: Mapping[str, float] | None = None,
    *,
    salt: bytes,
) -> dict[str, pd.DataFrame]:
    """Split ``df`` into named roles with all rows of one privacy unit in one role.

    A unit goes to the role whose cumulative-fraction interval holds its keyed hash, so
    role sizes are binomial around the fractions and a unit's role never depends on the
    other units. The original index and row order are kept; each part records the rule in
    ``.attrs["split"]`` (never the salt).
    """
    fractions = _check_fractions(DEFAULT_FRACTIONS if fractions is None else fractions)
    u = keyed_uniform(unit_keys(df, schema), salt, "role")
    edges = np.cumsum(list(fractions.values()))
    edges[-1] = 1.0
    part_of_row = np.minimum(np.searchsorted(edges, u, side="right"), len(edges) - 1)
    record = {"rule": "keyed hash of the unit (HMAC-SHA-256, secret salt)",
              "fractions": fractions, "unit": list(schema.privacy_unit) or ["<row>"]}
    parts: dict[str, pd.DataFrame] = {}
    for i, name in enumerate(fractions):
        part = df[part_of_row == i].copy()
        part.attrs["split"] = dict(record, part=name)
        parts[name] = part
    return parts


def sample_units(df: pd.DataFrame, schema: DatasetSchema, share: float, *,
                 salt: bytes) -> pd.DataFrame:
    """Keep each unit (all its rows) when its keyed hash is below ``share``: a unit-level
    Poisson sample whose membership depends on the unit alone."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    if share >= 1:
        return df
    return df[keyed_uniform(unit_keys(df, schema), salt, "slice") < share]


def cap_rows_per_unit(
    df: pd.DataFrame, schema: DatasetSchema, max_rows: int, *, salt: bytes
) -> pd.DataFrame:
    """Keep at most ``max_rows`` rows of each privacy unit: those with the smallest keyed
    hash of their row key, so the choice depends on the unit's own rows only.

    Bounding rows per unit turns a row-level DP guarantee into a unit-level one (with
    group privacy over ``max_rows`` rows). Kept rows stay in their original order.
    """
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    if not schema.privacy_unit or len(df) == 0:
        return df.copy()
    units = unit_keys(df, schema)
    rank_key = keyed_uniform(_key_strings(df, list(schema.row_key)), salt, "cap")
    ranks = (pd.DataFrame({"unit": units.to_numpy(), "key": rank_key}, index=range(len(df)))
             .groupby("unit", sort=False)["key"].rank(method="first"))
    return df[ranks.to_numpy() <= max_rows].copy()


#: The key of the DP count of the rows a model trains on, where its per-unit cap is
#: below the schema's (see :func:`role_counts`).
TRAINED_ROWS = "train_trained"


def role_counts(roles: Mapping[str, pd.DataFrame], schema: DatasetSchema,
                trained_rows_per_unit: int) -> tuple[dict[str, int], int]:
    """The exact row count of each role (already capped at the schema's
    ``max_rows_per_unit``) and the vector's L1 sensitivity per unit, for
    :func:`pulsesynth.budget.laplace_counts`.

    A unit lies in one role and moves its count by at most k rows, so the sensitivity is
    k. Where the model keeps fewer rows per unit (``trained_rows_per_unit`` = c < k) the
    vector also holds :data:`TRAINED_ROWS`, the count of the ``"train"`` rows the model
    keeps (sum of min(rows, c) over the units: which rows does not matter), which one
    unit moves by at most c more: sensitivity k + c. Otherwise the vector is the roles'
    counts alone, so their noise draws are the same as before the key existed.
    """
    k = schema.privacy.max_rows_per_unit
    counts = {name: len(frame) for name, frame in roles.items()}
    c = min(int(trained_rows_per_unit), k)
    if not schema.privacy_unit or c >= k:
        return counts, k
    per_unit = roles["train"].groupby(unit_keys(roles["train"], schema).to_numpy(),
                                      sort=False).size()
    counts[TRAINED_ROWS] = int(per_unit.clip(upper=c).sum())
    return counts, k + c
