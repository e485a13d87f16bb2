"""Gower distance on the declared domains, nearest-record search, DCR and exact matches.

Gower distance (seed 000 §6.5) averages per-column distances in [0, 1]: |x − y| divided by
the column's *declared* range for numerics, 0/1 mismatch for categoricals (missing is a
level of its own). Ranges come from the schema, never from the data, so the metric itself
leaks nothing. The nearest-record search is chunked matrix work in torch: categorical
matches are one matrix product of one-hot blocks, numerics add one |a − b| plane per
column, so 50k × 50k rows run in bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from pulsesynth.encoding import require_column
from pulsesynth.schema import (
    CategoricalColumn,
    Column,
    DatasetSchema,
    NumericColumn,
    TemporalColumn,
)

# Bytes of float32 scratch per chunk (a chunk × reference block); keeps peak memory bounded.
CHUNK_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class EncodedRows:
    """Rows in Gower space: scaled numerics (NaN = missing) and categorical one-hots."""

    numeric: np.ndarray
    onehot: np.ndarray
    n_categorical: int

    def __len__(self) -> int:
        return len(self.numeric) if self.numeric.size else len(self.onehot)

    def take(self, rows: np.ndarray) -> EncodedRows:
        """The given rows (indices), in that order."""
        return EncodedRows(self.numeric[rows], self.onehot[rows], self.n_categorical)


class GowerSpace:
    """Encodes frames of one schema for Gower distance over the given (public) columns."""

    def __init__(self, schema: DatasetSchema, columns: list[str] | None = None) -> None:
        chosen = columns or [c.name for c in schema.synthesized_columns]
        # A temporal column is measured on its components (public categorical levels).
        known: dict[str, Column] = {c.name: c for c in schema.synthesized_columns}
        self.columns: list[Column] = []
        for name in chosen:
            col = known.get(name) or schema.column(name)
            self.columns += (list(col.component_columns()) if isinstance(col, TemporalColumn)
                             else [col])
        # A text column has no public domain to measure a distance on: it is left out.
        self.numeric = [c for c in self.columns if isinstance(c, NumericColumn)]
        self.categorical = [c for c in self.columns if isinstance(c, CategoricalColumn)]

    def encode(self, frame: pd.DataFrame) -> EncodedRows:
        n = len(frame)
        numeric = self._scaled_numeric(frame)
        blocks = []
        for cat, codes in zip(self.categorical, self._category_codes(frame), strict=True):
            block = np.zeros((n, len(cat.categories) + 1), dtype=np.float32)
            block[np.arange(n), codes] = 1.0
            blocks.append(block)
        onehot = np.hstack(blocks) if blocks else np.zeros((n, 0), dtype=np.float32)
        return EncodedRows(numeric, onehot, len(self.categorical))

    def _scaled_numeric(self, frame: pd.DataFrame) -> np.ndarray:
        """Numerics scaled by their declared range into [0, 1] (float32, NaN = missing)."""
        numeric = np.empty((len(frame), len(self.numeric)), dtype=np.float32)
        for j, col in enumerate(self.numeric):
            lo, hi = col.bounds
            values = pd.to_numeric(require_column(frame, col, "input"),
                                   errors="coerce").to_numpy(
                dtype=float, na_value=np.nan)
            numeric[:, j] = np.clip((values - lo) / (hi - lo), 0.0, 1.0)
        return numeric

    def _category_codes(self, frame: pd.DataFrame) -> list[np.ndarray]:
        """Per categorical column, each row's level index (NA/unknown: one extra level)."""
        out = []
        for cat in self.categorical:
            levels = list(cat.categories)
            codes = pd.Categorical(require_column(frame, cat, "input"),
                                   categories=levels).codes  # NA/unknown -> -1
            out.append(np.where(codes < 0, len(levels), codes))
        return out

    def row_keys(self, frame: pd.DataFrame) -> np.ndarray:
        """One integer id per distinct row (equal ids ⇔ identical on every column).

        Keyed on the level codes, not the one-hot blocks (the same equivalence): a row is
        one float64 per column, so 2M rows take 0.2 GB instead of 2 GB and sort faster.
        """
        numeric = np.nan_to_num(self._scaled_numeric(frame), nan=-1.0).round(7)
        codes = self._category_codes(frame)
        matrix = np.empty((len(frame), numeric.shape[1] + len(codes)), dtype=np.float64)
        matrix[:, :numeric.shape[1]] = numeric
        for j, c in enumerate(codes):
            matrix[:, numeric.shape[1] + j] = c
        _, ids = np.unique(matrix, axis=0, return_inverse=True)
        return ids.ravel()


def _distance_blocks(queries: EncodedRows, reference: EncodedRows, chunk_bytes: int):
    """(start, Gower distances of a chunk of queries to every reference row), chunk by chunk."""
    if len(reference) == 0:
        raise ValueError("nearest: empty reference set")
    n_cols = queries.numeric.shape[1] + queries.n_categorical
    ref_num = torch.from_numpy(reference.numeric)
    ref_hot = torch.from_numpy(reference.onehot)
    ref_present = ~torch.isnan(ref_num)
    ref_num = torch.nan_to_num(ref_num)
    m = len(reference)
    chunk = max(1, min(len(queries), chunk_bytes // (4 * m * 3)))
    for start in range(0, len(queries), chunk):
        q_num = torch.from_numpy(queries.numeric[start:start + chunk])
        q_hot = torch.from_numpy(queries.onehot[start:start + chunk])
        # Categorical mismatches: columns minus matches (one-hot dot product counts matches).
        dist = queries.n_categorical - q_hot @ ref_hot.T
        q_present = ~torch.isnan(q_num)
        q_num = torch.nan_to_num(q_num)
        for j in range(q_num.shape[1]):
            both = q_present[:, j, None] & ref_present[None, :, j]
            one = q_present[:, j, None] ^ ref_present[None, :, j]
            diff = (q_num[:, j, None] - ref_num[None, :, j]).abs()
            dist += torch.where(both, diff, one.to(diff.dtype))
        yield start, dist / n_cols


def nearest(queries: EncodedRows, reference: EncodedRows,
            chunk_bytes: int = CHUNK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Gower distance from each query row to its nearest reference row, and that row's index."""
    distances = np.empty(len(queries), dtype=np.float32)
    indices = np.empty(len(queries), dtype=np.int64)
    for start, dist in _distance_blocks(queries, reference, chunk_bytes):
        best = dist.min(dim=1)
        distances[start:start + len(dist)] = best.values.numpy()
        indices[start:start + len(dist)] = best.indices.numpy()
    return distances, indices


def mean_knn_distance(queries: EncodedRows, reference: EncodedRows, k: int, *,
                      skip_first: bool = False,
                      chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Mean Gower distance from each query row to its ``k`` nearest reference rows;
    ``skip_first`` drops the nearest one (the query itself when it is in ``reference``)."""
    take = min(len(reference), k + int(skip_first))
    out = np.empty(len(queries), dtype=np.float32)
    for start, dist in _distance_blocks(queries, reference, chunk_bytes):
        smallest = torch.topk(dist, take, dim=1, largest=False).values
        out[start:start + len(dist)] = smallest[:, int(skip_first):].mean(dim=1).numpy()
    return out


def nearest_distance(queries: EncodedRows, reference: EncodedRows,
                     chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Gower distance from each query row to its nearest reference row."""
    return nearest(queries, reference, chunk_bytes)[0]


def distance_report(schema: DatasetSchema, train: pd.DataFrame, holdout: pd.DataFrame,
                    synthetic: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
    """Seed 000 §6.5 distances plus the DCR share and exact matches.

    - ``median_gower``: median over training rows of the distance to the nearest synthetic
      row; ``gower_reference``: the same median between two halves of the real training
      data — synthetic data much closer than real data is to itself suggests copying.
    - ``dcr_share``: share of synthetic rows closer to a training row than to a holdout
      row, with train and holdout subsampled to equal size (0.5 is ideal; ties count half).
    - ``exact_matches`` / ``exact_matches_unique``: synthetic rows identical to a training
      row, and to a training row that is unique in the training set.
    - ``exact_match_control``: on the equal-size training and holdout samples of the DCR
      share, how many rows unique within each sample appear verbatim in the synthetic
      table. A model that generalises reproduces unique unseen rows as often as unique
      training rows (rare-but-plausible combinations in low-dimensional tables);
      memorisation shows as more on the training side. ``p_value`` is the exact,
      noise-free one-sided test of that (:func:`exact_match_test`) — for the steward only:
      what is published is the DP release report's noisy version.
    """
    rng = np.random.default_rng(seed)
    space = GowerSpace(schema)
    enc_train, enc_syn = space.encode(train), space.encode(synthetic)

    to_syn = nearest_distance(_queries(enc_train, rng), enc_syn)
    order = rng.permutation(len(train))
    half = len(order) // 2
    first, second = train.iloc[order[:half]], train.iloc[order[half:2 * half]]
    reference = nearest_distance(_queries(space.encode(first), rng), space.encode(second))

    size = min(len(train), len(holdout))
    tr = train.iloc[rng.choice(len(train), size, replace=False)]
    ho = holdout.iloc[rng.choice(len(holdout), size, replace=False)]
    syn_queries = _queries(enc_syn, rng)
    d_train = nearest_distance(syn_queries, space.encode(tr))
    d_hold = nearest_distance(syn_queries, space.encode(ho))
    share = float(np.mean((d_train < d_hold) + 0.5 * (d_train == d_hold)))

    exact, exact_unique = exact_matches(space, train, synthetic)
    control_train, control_holdout = unique_matches(space, [tr, ho], synthetic)
    edges = np.linspace(0.0, 1.0, 51)  # fixed public bins: counts of distances, no rows
    return {
        "dcr_histogram": {
            "edges": edges.round(3).tolist(),
            "to_train": np.histogram(d_train, edges)[0].tolist(),
            "to_holdout": np.histogram(d_hold, edges)[0].tolist(),
        },
        "median_gower": float(np.median(to_syn)),
        "gower_reference": float(np.median(reference)),
        "dcr_share": share,
        "dcr_rows": int(size),
        "exact_matches": exact,
        "exact_matches_unique": exact_unique,
        "exact_match_control": {"rows": int(size), "train_unique": control_train,
                                "holdout_unique": control_holdout,
                                "p_value": exact_match_test(control_train, control_holdout,
                                                            int(size))},
        "synthetic_rows": int(len(synthetic)),
        "query_rows_max": MAX_QUERY_ROWS,
    }


#: The most query rows a nearest-record median or share is computed from. Each search
#: costs (queries × reference) pairs; with every row a query the report grew as N² (a
#: day of CPU at a million rows, benchmarks/scale.py), with at most this many it grows
#: linearly. A median or a share over 20,000 random rows is within about ±0.007 of the
#: full one (binomial standard error at 95%); exact matches still use every row.
MAX_QUERY_ROWS = 20_000


def _queries(encoded: EncodedRows, rng: np.random.Generator) -> EncodedRows:
    """``encoded``, or a seeded random :data:`MAX_QUERY_ROWS` of its rows when larger (a
    public seed is fine: the report is the steward's and the rows stay inside it)."""
    if len(encoded) <= MAX_QUERY_ROWS:
        return encoded
    return encoded.take(np.sort(rng.choice(len(encoded), MAX_QUERY_ROWS, replace=False)))


def exact_match_test(train_unique: int, holdout_unique: int, rows: int) -> float:
    """One-sided p-value of H0 "training rows are reproduced no more often than unseen
    rows", from ``train_unique`` and ``holdout_unique`` reproduced rows out of ``rows``
    each: Fisher's exact test (alternative "greater") on the 2×2 table. Exact figures of
    the private rows: steward only, never published."""
    from scipy.stats import fisher_exact

    if rows <= 0:
        return 1.0
    table = [[train_unique, rows - train_unique], [holdout_unique, rows - holdout_unique]]
    return float(fisher_exact(table, alternative="greater").pvalue)


def exact_matches(space: GowerSpace, train: pd.DataFrame,
                  synthetic: pd.DataFrame) -> tuple[int, int]:
    """(synthetic rows equal to some training row, ... to a training row unique in train)."""
    train_keys, syn_keys = _row_keys(space, [train, synthetic])
    counts = np.bincount(train_keys, minlength=int(syn_keys.max(initial=-1)) + 1)
    in_train = counts[syn_keys] > 0
    unique_in_train = counts[syn_keys] == 1
    return int(in_train.sum()), int(unique_in_train.sum())


def unique_matches(space: GowerSpace, real_sets: list[pd.DataFrame],
                   synthetic: pd.DataFrame) -> list[int]:
    """Per real set: its rows that are unique within the set and appear verbatim in the
    synthetic table (people reproduced, each counted once however often it is emitted)."""
    *real_keys, syn_keys = _row_keys(space, [*real_sets, synthetic])
    emitted = np.unique(syn_keys)
    return [int(np.isin(np.flatnonzero(np.bincount(keys) == 1), emitted).sum())
            for keys in real_keys]


def _row_keys(space: GowerSpace, frames: list[pd.DataFrame]) -> list[np.ndarray]:
    """Row ids shared across ``frames`` (equal ids ⇔ identical rows), split per frame."""
    # A temporal column counts by its components (derived where a frame lacks them).
    parts = [pd.DataFrame({c.name: require_column(f, c, "input").reset_index(drop=True)
                           for c in space.columns}) for f in frames]
    keys = space.row_keys(pd.concat(parts, ignore_index=True))
    return np.split(keys, np.cumsum([len(f) for f in frames])[:-1])
