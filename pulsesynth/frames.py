"""Storage dtypes: one pandas dtype per declared column type.

Frames read from CSV, Parquet or the source packages are brought to these dtypes before
validation, so the Great Expectations type check compares like with like. Conversion is
lossless only: a value that would need changing (text in a numeric column, a fraction in
an integer column) keeps its original dtype and fails validation as a wrong type.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pulsesynth.schema import Column, DatasetSchema, TemporalColumn
from pulsesynth.temporal import conform_series


def storage_type(column: Column) -> str:
    """The GX/pandas type name a stored column must have (``str``, ``int64`` or ``float64``;
    ``date``, ``time`` or ``datetime64`` for a temporal column, checked value by value by
    :func:`pulsesynth.validation.expectation_specs`' temporal expectations)."""
    if column.type == "categorical":
        return "int64" if isinstance(column.categories[0], int) else "str"
    if column.type == "integer":
        return "int64"
    if column.type == "float":
        return "float64"
    if column.type == "datetime":
        return "datetime64"
    if column.type in ("date", "time"):
        return column.type
    return "str"


def conform(df: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """Return a copy whose declared columns carry their storage dtypes where lossless."""
    out = df.copy()
    for column in schema.columns:
        if column.name not in out.columns:
            continue
        if isinstance(column, TemporalColumn):
            out[column.name] = conform_series(out[column.name], column)
        else:
            out[column.name] = _conform_series(out[column.name], storage_type(column))
    return out


def _conform_series(series: pd.Series, kind: str) -> pd.Series:
    if kind == "str":
        if pd.api.types.is_string_dtype(series) or series.dtype == object:
            if series.map(lambda v: v is None or isinstance(v, str) or _is_na(v)).all():
                return series.astype("str")
        return series
    if kind == "int64":
        if pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series):
            return series.astype("Int64") if series.isna().any() else series.astype("int64")
        if pd.api.types.is_float_dtype(series):
            values = series.dropna().to_numpy(dtype=float)
            if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
                return series.astype("Int64") if series.isna().any() else series.astype("int64")
        return series
    if kind == "float64":
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            return series.astype("float64")
        return series
    return series


def _is_na(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
