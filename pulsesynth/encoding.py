"""Schema-bound encodings of a table: one-hot blocks and back (:class:`TableEncoder`, the
synthesizer's), and a feature matrix for classifiers (:class:`FeatureEncoder`, utility's
and the DP classifier's), with the codebook codings they share.

Every level of every block comes from the declared schema (category lists, public bin
edges), never from the rows being encoded: the encoder's state is a function of the
schema alone, so it can be saved next to a model without leaking anything about the
private table. Only the per-column counts of out-of-domain cells are learned from the
data, and they are kept in :attr:`TableEncoder.last_transform_report`, not in the state.

Layout of one row: for each synthesized column in schema order, one block whose levels are

* categorical: the declared categories, then ``<missing>`` if the column is nullable;
* numeric: one level per declared exact value (``<zero>`` for 0, ``<exactly 45>`` …),
  then one level per public bin ``[e_i, e_{i+1})`` (the last bin also holds the upper
  bound; values drawn in a bin leave its exact values out), then ``<missing>`` if
  nullable;
* date, time, datetime: one categorical block per declared component (``d.year``,
  ``d.month`` ...) over its public levels, derived from the column's values on encoding
  and decoded back to one valid value inside the bounds (:mod:`pulsesynth.temporal`).

Out-of-domain rule (counted per column, never silently):

* numeric values outside the bounds are clipped to the bounds;
* a missing value in a nullable column goes to its ``<missing>`` level;
* a category absent from the declared list goes to ``<missing>`` if the column is nullable;
* otherwise (unknown category, or a missing value in a non-nullable column) the cell's
  block is left all-zero: the row is kept, the cell is treated as unobserved (it adds
  nothing to the reconstruction loss) and the cell never reaches the output domain.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pulsesynth.schema import (
    CategoricalColumn,
    Column,
    ComponentColumn,
    DatasetSchema,
    DomainColumn,
    NumericColumn,
    TemporalColumn,
)
from pulsesynth.temporal import assemble, component_series, with_components

MISSING = "<missing>"
ZERO = "<zero>"


def exact_level(value: float) -> str:
    """The label of a declared exact value's level (``0`` keeps its historical label, which
    saved models' encoder states record)."""
    return ZERO if value == 0 else f"<exactly {value:g}>"


@dataclass(frozen=True)
class Block:
    """One column's slice of the encoded row and the meaning of each of its levels."""

    name: str
    kind: str  # "categorical" | "integer" | "float"
    start: int
    width: int
    levels: tuple[Any, ...]  # categories, or exact-value labels, (lo, hi) bin edges, MISSING
    nullable: bool
    scale: str = "linear"
    bounds: tuple[float, float] | None = None

    @property
    def stop(self) -> int:
        return self.start + self.width


def _empty_counts() -> dict[str, int]:
    return {"clipped": 0, "unknown_category": 0, "missing": 0, "unobserved": 0}


class TableEncoder:
    """One-hot encoder whose levels are fixed by the declared schema alone."""

    def __init__(self, schema: DatasetSchema) -> None:
        from pulsesynth.relations import derived_columns

        self.schema = schema
        # Columns a codebook relation derives from another are not modelled: sampling
        # fills them from their source (pulsesynth.relations).
        derived = derived_columns(schema.relations)
        self.columns: list[DomainColumn] = [c for c in schema.synthesized_columns
                                      if c.name not in derived]
        if not self.columns:
            raise ValueError(f"{schema.id}: schema declares no synthesized column")
        self._blocks: list[Block] = []
        start = 0
        for col in self.columns:
            block = _make_block(col, start)
            self._blocks.append(block)
            start = block.stop
        self.width = start
        self.last_transform_report: dict[str, Any] | None = None

    # --- layout -----------------------------------------------------------------------

    @property
    def blocks(self) -> list[tuple[str, int, int]]:
        """``(column name, start, width)`` for every block, in schema order."""
        return [(b.name, b.start, b.width) for b in self._blocks]

    @property
    def block_specs(self) -> list[Block]:
        """Full block descriptions (levels, kind) for callers that need more than slices."""
        return list(self._blocks)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def state_dict(self) -> dict[str, Any]:
        """JSON-able description of the layout; depends only on the schema."""
        return {
            "schema_hash": self.schema.hash,
            "width": self.width,
            "blocks": [
                {
                    "name": b.name,
                    "kind": b.kind,
                    "start": b.start,
                    "width": b.width,
                    "levels": [_jsonable_level(v) for v in b.levels],
                    "nullable": b.nullable,
                    "scale": b.scale,
                    "bounds": list(b.bounds) if b.bounds is not None else None,
                }
                for b in self._blocks
            ],
        }

    # --- encode ---------------------------------------------------------------------

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Encode the synthesized columns of ``df`` as a float32 one-hot matrix.

        Rows stay aligned with ``df``; out-of-domain cells follow the module's rule and
        are counted in :attr:`last_transform_report` (counts only, no values).
        """
        return self.one_hot(self.levels(df))

    def one_hot(self, levels: np.ndarray) -> np.ndarray:
        """Rows of block levels (``-1``: unobserved, an all-zero block) as the float32
        one-hot matrix the VAE trains on."""
        out = np.zeros((len(levels), self.width), dtype=np.float32)
        rows = np.arange(len(levels))
        for j, block in enumerate(self._blocks):
            idx = levels[:, j]
            ok = idx >= 0
            out[rows[ok], block.start + idx[ok]] = 1.0
        return out

    def levels(self, df: pd.DataFrame) -> np.ndarray:
        """Each row's level index in every block, ``(n, columns)`` int64; -1 where the
        cell is unobserved (see the module's out-of-domain rule, counted the same way)."""
        df = with_components(df, self.schema)
        missing_cols = list(dict.fromkeys(  # a temporal column once, not per component
            c.parent.name if isinstance(c, ComponentColumn) else c.name
            for c in self.columns if c.name not in df.columns))
        if missing_cols:
            raise KeyError(f"table lacks synthesized column(s): {', '.join(missing_cols)}")
        out = np.full((len(df), len(self._blocks)), -1, dtype=np.int64)
        report: dict[str, Any] = {"rows": len(df), "columns": {}}
        for j, (col, block) in enumerate(zip(self.columns, self._blocks, strict=True)):
            counts = _empty_counts()
            if isinstance(col, CategoricalColumn):
                out[:, j] = self._categorical_index(col, block, df[col.name], counts)
            else:
                out[:, j] = self._numeric_index(col, block, df[col.name], counts)
            report["columns"][col.name] = counts
        self.last_transform_report = report
        return out

    def bin_positions(self, df: pd.DataFrame, levels: np.ndarray) -> np.ndarray:
        """Where each numeric cell of ``df`` lies inside its bin, ``(n, columns)`` in
        [0, 1) on the bin's scale (an integer: the middle of its slot, as decoding would
        draw it); NaN for categorical columns and for exact, missing or unobserved cells.
        ``levels`` is :meth:`levels` of the same rows. A function of the rows: only ever
        released through a DP mechanism (:mod:`pulsesynth.synth.within_bin`)."""
        out = np.full(levels.shape, np.nan)
        for j, (col, block) in enumerate(zip(self.columns, self._blocks, strict=True)):
            if not isinstance(col, NumericColumn):
                continue
            values = np.clip(pd.to_numeric(df[col.name], errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan), *col.bounds)
            for k, level in enumerate(block.levels):
                rows = np.nonzero(levels[:, j] == k)[0]
                if isinstance(level, tuple) and len(rows):
                    out[rows, j] = _position(values[rows], col, block, level)
        return out

    def _categorical_index(
        self, col: CategoricalColumn, block: Block, series: pd.Series, counts: dict[str, int]
    ) -> np.ndarray:
        cats = list(col.categories)
        lookup = {c: i for i, c in enumerate(cats)}
        values = series
        if cats and isinstance(cats[0], int) and not pd.api.types.is_numeric_dtype(series):
            values = pd.to_numeric(series.astype(object), errors="coerce")
        isna = values.isna().to_numpy()
        mapped = values.astype(object).map(lambda v: lookup.get(_key(v), -1))
        idx = np.where(isna, -1, mapped.to_numpy(dtype=np.float64, na_value=-1)).astype(np.int64)
        unknown = (~isna) & (idx < 0)
        counts["missing"] = int(isna.sum())
        counts["unknown_category"] = int(unknown.sum())
        if col.nullable:
            idx[isna | unknown] = block.width - 1
        else:
            counts["unobserved"] = int((isna | unknown).sum())
        return idx

    def _numeric_index(
        self, col: NumericColumn, block: Block, series: pd.Series, counts: dict[str, int]
    ) -> np.ndarray:
        if not pd.api.types.is_numeric_dtype(series):
            series = series.astype(object)
        values = pd.to_numeric(series, errors="coerce").astype("float64").to_numpy(
            na_value=np.nan
        )
        isna = np.isnan(values)
        lo, hi = col.bounds
        outside = (~isna) & ((values < lo) | (values > hi))
        values = np.clip(values, lo, hi)
        edges = np.asarray(col.bins, dtype=np.float64)
        n_bins = len(edges) - 1
        offset = len(col.exact_values)
        bin_idx = np.searchsorted(edges, np.nan_to_num(values, nan=lo), side="right") - 1
        idx = np.clip(bin_idx, 0, n_bins - 1) + offset
        for k, exact in enumerate(col.exact_values):
            idx[(~isna) & (values == exact)] = k
        counts["clipped"] = int(outside.sum())
        counts["missing"] = int(isna.sum())
        if col.nullable:
            idx[isna] = block.width - 1
        else:
            idx[isna] = -1
            counts["unobserved"] = int(isna.sum())
        return idx.astype(np.int64)

    # --- decode ---------------------------------------------------------------------

    def sample_levels(self, probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw one level per block and row from per-block probabilities (any row scale)."""
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[1] != self.width:
            raise ValueError(f"expected an (n, {self.width}) array, got {probs.shape}")
        n = probs.shape[0]
        levels = np.zeros((n, len(self._blocks)), dtype=np.int64)
        u = 1.0 - rng.random((n, len(self._blocks)))  # in (0, 1]: never picks a zero level
        for j, b in enumerate(self._blocks):
            p = np.clip(probs[:, b.start:b.stop], 0.0, None)
            total = p.sum(axis=1, keepdims=True)
            p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / b.width)
            cum = np.cumsum(p, axis=1)
            levels[:, j] = np.minimum((cum < u[:, j:j + 1] * cum[:, -1:]).sum(axis=1), b.width - 1)
        return levels

    def inverse_transform(self, probs: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """Sample a table from per-block probabilities (a one-hot matrix decodes to its levels).

        Numeric values are drawn uniformly inside the sampled bin (log-uniform in log1p
        space for ``scale: log``), integers uniformly among the bin's integers; outputs
        always lie in the declared domain and carry the source dtypes.
        """
        return self.decode_levels(self.sample_levels(probs, rng), rng)

    def decode_levels(self, levels: np.ndarray, rng: np.random.Generator,
                      positions: np.ndarray | None = None) -> pd.DataFrame:
        """The table whose cells lie at ``levels`` (``(n, columns)``, as :meth:`levels`
        returns, without -1): numeric values drawn inside their bin as
        :meth:`inverse_transform` describes, or at ``positions`` (``(n, columns)`` in
        [0, 1), as :meth:`bin_positions` returns; NaN: drawn uniformly)."""
        levels = np.asarray(levels, dtype=np.int64)
        if levels.ndim != 2 or levels.shape[1] != len(self._blocks):
            raise ValueError(f"expected an (n, {len(self._blocks)}) level array, "
                             f"got {levels.shape}")
        if positions is not None and positions.shape != levels.shape:
            raise ValueError(f"positions {positions.shape} do not match levels {levels.shape}")
        data: dict[str, pd.Series] = {}
        parts: dict[str, dict[str, np.ndarray]] = {}
        missing: dict[str, np.ndarray] = {}
        for j, (col, b) in enumerate(zip(self.columns, self._blocks, strict=True)):
            lv = levels[:, j]
            if isinstance(col, ComponentColumn):
                cats = np.asarray(col.categories, dtype=np.int64)
                # -1 marks a <missing> level: assemble draws that component instead.
                parts.setdefault(col.parent.name, {})[col.component] = np.where(
                    lv >= len(cats), -1, cats[np.minimum(lv, len(cats) - 1)])
                # The first component's <missing> level decides (module docstring).
                missing.setdefault(col.parent.name, lv >= len(cats))
            elif isinstance(col, CategoricalColumn):
                data[col.name] = _decode_categorical(col, b, lv)
            else:
                data[col.name] = _decode_numeric(
                    col, b, lv, rng, None if positions is None else positions[:, j])
        out: dict[str, pd.Series] = {}
        for released in self.schema.released_columns:
            if isinstance(released, TemporalColumn):
                out[released.name] = assemble(released, parts[released.name],
                                              missing[released.name], rng)
            elif released.name in data:
                out[released.name] = data[released.name]
        return pd.DataFrame(out)


# --- helpers -----------------------------------------------------------------------------


def _make_block(col: DomainColumn, start: int) -> Block:
    if isinstance(col, CategoricalColumn):
        levels: list[Any] = list(col.categories)
        if col.nullable:
            levels.append(MISSING)
        return Block(col.name, "categorical", start, len(levels), tuple(levels), col.nullable)
    edges = col.bins
    levels = [exact_level(v) for v in col.exact_values]
    levels += [(float(a), float(b)) for a, b in zip(edges, edges[1:], strict=False)]
    if col.nullable:
        levels.append(MISSING)
    scale = col.scale
    if scale == "log" and col.bounds[0] <= -1:
        scale = "linear"  # log1p undefined at or below -1: fall back, keep the domain
    return Block(col.name, col.type, start, len(levels), tuple(levels), col.nullable, scale,
                 (float(col.bounds[0]), float(col.bounds[1])))


def _key(value: Any) -> Any:
    """Normalise a cell for lookup: numpy scalars to Python, integral floats to int."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _jsonable_level(level: Any) -> Any:
    return list(level) if isinstance(level, tuple) else level


def _decode_categorical(col: CategoricalColumn, block: Block, levels: np.ndarray) -> pd.Series:
    cats = list(col.categories)
    is_int = bool(cats) and isinstance(cats[0], int)
    missing = levels >= len(cats)
    safe = np.where(missing, 0, levels)
    if is_int:
        values = np.asarray(cats, dtype=np.int64)[safe]
        if col.nullable:
            return pd.Series(pd.array(values, dtype="Int64")).mask(missing)
        return pd.Series(values, dtype="int64")
    obj = np.asarray(cats, dtype=object)[safe]
    series = pd.Series(obj, dtype="str")
    return series.mask(missing) if col.nullable else series


def _decode_numeric(
    col: NumericColumn, block: Block, levels: np.ndarray, rng: np.random.Generator,
    positions: np.ndarray | None = None,
) -> pd.Series:
    n = len(levels)
    lo_b, hi_b = float(col.bounds[0]), float(col.bounds[1])  # as the block states them
    out = np.zeros(n, dtype=np.float64)
    missing = np.zeros(n, dtype=bool)
    u = rng.random(n)
    if positions is not None:  # where a value sits in its bin, drawn elsewhere (NaN: here)
        u = np.where(np.isnan(positions), u, positions)
    is_int = col.type == "integer"
    exact = col.exact_values
    for k, level in enumerate(block.levels):
        sel = levels == k
        if not sel.any():
            continue
        if k < len(exact):
            out[sel] = exact[k]
            continue
        if level == MISSING:
            missing[sel] = True
            continue
        a, b = level
        # A bin's draws leave out its exact values: those rows have a level of their own.
        if is_int:
            ia, ib, inner = integer_range(level, exact, hi_b)
            if ia > ib:  # no integer inside this bin: nearest in-domain integer
                mid = min(max(round((a + b) / 2), math.ceil(lo_b)), math.floor(hi_b))
                out[sel] = mid
                continue
            x = np.clip(np.floor(_draw(u[sel], ia, ib + 1 - len(inner), block.scale)), ia,
                        ib - len(inner))
            for e in inner:  # step over each exact value inside the range
                x = x + (x >= e)
            out[sel] = x
        else:
            x = _draw(u[sel], a, b, block.scale)
            for e in exact:
                if a <= e <= b:  # off the exact value, towards the inside of the bin
                    inward = np.nextafter(e, b) if e < b else np.nextafter(e, a)
                    x = np.where((x == e) | ((e == a) & (x <= e)), inward, x)
            out[sel] = np.clip(x, a, b)
    if is_int:
        if col.nullable:
            return pd.Series(pd.array(out.astype(np.int64), dtype="Int64")).mask(missing)
        return pd.Series(out.astype(np.int64), dtype="int64")
    out[missing] = np.nan
    return pd.Series(out, dtype="float64")


def integer_range(level: tuple[float, float], exact: Sequence[float],
                  upper: float) -> tuple[int, int, list[float]]:
    """The integers an integer column's bin ``level`` decodes to: ``(first, last, the
    exact values strictly between)``, its exact values left out (``first > last``: none).
    ``upper`` is the column's upper bound, which the last bin holds."""
    a, b = level
    ia = math.ceil(a)
    ib = math.floor(b) if b == upper else math.ceil(b) - 1
    while ia in exact:
        ia += 1
    while ib in exact and ib >= ia:
        ib -= 1
    return ia, ib, [e for e in exact if ia < e < ib]


def _position(values: np.ndarray, col: NumericColumn, block: Block,
              level: tuple[float, float]) -> np.ndarray:
    """Where ``values`` (inside the bin ``level``) lie in it, in [0, 1): the inverse of
    the uniform draw :func:`_decode_numeric` makes there (an integer: its slot's middle)."""
    a, b = level
    if col.type != "integer":
        fa, fb, fv = (_scaled_value(x, block.scale) for x in (a, b, values))
        return np.clip((fv - fa) / (fb - fa), 0.0, np.nextafter(1.0, 0.0))
    ia, ib, inner = integer_range(level, col.exact_values, float(col.bounds[1]))
    if ia > ib:
        return np.full(len(values), 0.5)
    slots = ib + 1 - ia - len(inner)
    x = np.round(values)
    x = x - np.sum([x > e for e in inner], axis=0) if inner else x  # undo the steps
    lo, hi = (_scaled_value(v, block.scale) for v in (float(ia), float(ia + slots)))
    mid = (_scaled_value(x, block.scale) + _scaled_value(x + 1, block.scale)) / 2
    return np.clip((mid - lo) / (hi - lo), 0.0, np.nextafter(1.0, 0.0))


def _scaled_value(x: Any, scale: str) -> Any:
    return np.log1p(x) if scale == "log" else x


def _draw(u: np.ndarray, a: float, b: float, scale: str) -> np.ndarray:
    """Map uniforms in [0, 1) to [a, b): linear, or log-uniform in log1p space."""
    if scale == "log":
        la, lb = math.log1p(a), math.log1p(b)
        return np.expm1(la + u * (lb - la))
    return a + u * (b - a)


# --- schema-only column coding and the feature matrix (utility, classifier) ---------


def require_column(frame: pd.DataFrame, name: str | Column, what: str) -> pd.Series:
    """Fetch a column, failing with a value-free message that names the table and column;
    a temporal column's component is derived from it when the frame lacks its own."""
    if isinstance(name, ComponentColumn):
        series = component_series(frame, name)
        if series is None:
            raise ValueError(f"{what} table lacks declared column {name.parent.name!r}")
        return series
    key = name if isinstance(name, str) else name.name
    if key not in frame.columns:
        raise ValueError(f"{what} table lacks declared column {key!r}")
    return frame[key]


def numeric_values(series: pd.Series) -> np.ndarray:
    """Float values with NaN for missing (handles Int64/Float64/object with pandas NA)."""
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def category_codes(series: pd.Series, col: CategoricalColumn) -> np.ndarray:
    """Codes over the declared categories: 0..K-1, K = missing, K+1 = outside the codebook.

    Matching is by declared value only, so an undeclared value never gets its own slot.
    """
    cats = list(col.categories)
    k = len(cats)
    missing = series.isna().to_numpy()
    if cats and all(isinstance(c, int) for c in cats):
        values = numeric_values(series)
        codes = pd.Index([float(c) for c in cats]).get_indexer(values)
    else:
        values = series.astype(object).to_numpy()
        as_text = np.array([None if m else str(v) for v, m in zip(values, missing, strict=True)],
                           dtype=object)
        codes = pd.Index([str(c) for c in cats], dtype=object).get_indexer(as_text)
    out = np.where(codes >= 0, codes, k + 1).astype(np.int64)
    out[missing] = k
    return out


def bin_codes(values: np.ndarray, col: NumericColumn) -> np.ndarray:
    """Codes over the declared bins: 0..m-1 (ends clipped into the end bins), m = missing."""
    edges = np.asarray(col.bins, dtype=float)
    m = len(edges) - 1
    codes = np.searchsorted(edges[1:-1], np.nan_to_num(values), side="right").astype(np.int64)
    codes[np.isnan(values)] = m
    return codes


def code_count(col: DomainColumn) -> int:
    """Size of a column's discrete coding (categories/bins plus missing, plus 'other')."""
    if isinstance(col, CategoricalColumn):
        return len(col.categories) + 2
    return len(col.bins)


def _scaled(values: np.ndarray, col: NumericColumn) -> np.ndarray:
    """Map a numeric onto [0, 1] via its declared bounds (log scale if declared)."""
    lo, hi = (float(b) for b in col.bounds)
    x = np.clip(values, lo, hi)
    if col.scale == "log":
        return np.log1p(x - lo) / math.log1p(hi - lo)
    return (x - lo) / (hi - lo)


@dataclass(frozen=True)
class FeatureEncoder:
    """Schema-fixed feature matrix: one-hot + missing flag, scaled numerics + missing flag.

    Holds no state learned from data, so the same layout serves real and synthetic rows
    and no private statistic leaks into a model through the encoding. Numerics are scaled
    by their declared bounds onto [0, 1] (so logistic regression converges); a missing
    numeric becomes the constant 0 (the scaled lower bound) next to its indicator.
    """

    columns: tuple[DomainColumn, ...]

    @classmethod
    def from_schema(cls, schema: DatasetSchema, exclude: Iterable[str] = ()) -> FeatureEncoder:
        """Encode every synthesized column except ``exclude`` (usually the target); a
        temporal column named there is excluded with all its components."""
        skip = set(exclude)
        return cls(tuple(c for c in schema.synthesized_columns if c.name not in skip and not (
            isinstance(c, ComponentColumn) and c.parent.name in skip)))

    @property
    def feature_names(self) -> list[str]:
        """Names of the matrix columns (declared category names are public)."""
        names: list[str] = []
        for col in self.columns:
            if isinstance(col, CategoricalColumn):
                names += [f"{col.name}={c}" for c in col.categories]
            else:
                names.append(col.name)
            names.append(f"{col.name}:missing")
        return names

    def transform(self, frame: pd.DataFrame, what: str = "input") -> np.ndarray:
        """The float matrix for ``frame`` (rows in frame order)."""
        n = len(frame)
        blocks: list[np.ndarray] = []
        for col in self.columns:
            series = require_column(frame, col, what)
            if isinstance(col, CategoricalColumn):
                k = len(col.categories)
                codes = category_codes(series, col)
                onehot = np.zeros((n, k + 1), dtype=float)
                # Outside-the-codebook values are flagged like missing ones.
                onehot[np.arange(n), np.minimum(codes, k)] = 1.0
                blocks.append(onehot)
            else:
                values = numeric_values(series)
                miss = np.isnan(values)
                scaled = np.where(miss, 0.0, _scaled(np.where(miss, 0.0, values), col))
                blocks.append(np.column_stack([scaled, miss.astype(float)]))
        if not blocks:
            return np.zeros((n, 0), dtype=float)
        return np.hstack(blocks)
