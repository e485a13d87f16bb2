"""Date, time and datetime columns: storage values, components and decoding.

A :class:`~pulsesynth.schema.TemporalColumn` is stored typed (DuckDB/Parquet ``DATE``,
``TIME``, ``TIMESTAMP``; in pandas ``datetime.date`` and ``datetime.time`` objects, and
``datetime64[us]``) and modelled as its declared components, each a categorical column
over public levels (:meth:`~pulsesynth.schema.TemporalColumn.levels`).

Decoding sampled components back to one value (:func:`assemble`) follows a public rule
that depends on the schema and fresh randomness only:

* a component that is not modelled is drawn uniformly over its public levels (the year
  over the bounds' years, month 1-12, hour over the public hours, minute 0-59); the day,
  when not modelled, uniformly over the valid days of the chosen month; seconds are 0;
* a day past the end of its month (30 February) becomes the month's last day;
* a modelled weekday is honoured: the day becomes the day of the month with that weekday
  nearest to the modelled (or drawn) day, the earlier one on a tie;
* the value is then clamped into the declared bounds (so a clamped value may have
  another weekday or hour than sampled: only at the ends of the domain);
* in a nullable column the value is missing when its first component is; another
  component sampled as missing in a row with a value is drawn as if not modelled.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from pulsesynth.schema import ComponentColumn, DatasetSchema, TemporalColumn

#: The ``datetime64`` unit of a stored datetime column (Parquet ``timestamp[us]``).
DATETIME_DTYPE = "datetime64[us]"


def storage_series(values: list[Any], column: TemporalColumn) -> pd.Series:
    """A column's values (``date``/``time``/``datetime`` or ``None``) in storage dtype."""
    if column.type == "datetime":
        return pd.Series(pd.to_datetime(pd.Series(values, dtype=object)), dtype=DATETIME_DTYPE)
    return pd.Series(values, dtype=object)


def _typed(value: Any, column: TemporalColumn) -> Any:
    """``value`` as the column's Python type, or ``None`` when it is not one (nor NA)."""
    if value is None or value is pd.NaT:
        return None
    if column.type == "time":
        return value if isinstance(value, dt.time) else None
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return None  # bounds are local times: an offset has no declared meaning here
    if column.type == "date":
        if isinstance(value, dt.datetime):
            return value.date() if value.time() == dt.time() else None
        return value if isinstance(value, dt.date) else None
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.combine(value, dt.time()) if isinstance(value, dt.date) else None


def parse_text(value: str, column: TemporalColumn) -> Any:
    """A text cell read with the declared ``format`` (``None`` when it does not parse or no
    format is declared): what DuckDB's ``try_strptime`` does at ingest."""
    if column.format is None:
        return None
    try:
        parsed = dt.datetime.strptime(value.strip(), column.format)  # noqa: DTZ007 - naive
    except ValueError:
        return None
    if column.type == "date":
        return parsed.date()
    if column.type == "time":
        return parsed.time()
    return parsed


def read_value(value: Any, column: TemporalColumn) -> Any:
    """One non-missing cell as the column's Python value, or ``None``: a typed value, or
    text in the declared format (an integer as its digits: pandas reads ``20240131`` in a
    CSV as a number, DuckDB's ingest as text)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = str(value)
    if isinstance(value, str):
        return parse_text(value, column)
    return _typed(value, column)


def conform_series(series: pd.Series, column: TemporalColumn) -> pd.Series:
    """The column in its storage dtype when every value converts (text read with the
    declared format, a date-only timestamp as a date); otherwise unchanged, so the
    values that do not convert fail validation and are counted there."""
    if column.type == "datetime" and pd.api.types.is_datetime64_any_dtype(series):
        if getattr(series.dt, "tz", None) is None:
            return series.astype(DATETIME_DTYPE)
        return series
    out: list[Any] = []
    for value in series.astype(object).tolist():
        if value is None or _is_na(value):
            out.append(None)
            continue
        typed = read_value(value, column)
        if typed is None:
            return series
        out.append(typed)
    return storage_series(out, column)


def check_values(series: pd.Series, column: TemporalColumn) -> tuple[np.ndarray, np.ndarray]:
    """Per non-missing cell: (valid: typed or text that parses in the declared format,
    inside: valid and within the bounds). Missing cells count as valid and inside (the
    not-null expectation counts them)."""
    values = series.astype(object).tolist()
    valid = np.ones(len(values), dtype=bool)
    inside = np.ones(len(values), dtype=bool)
    low, high = column.bounds
    for i, value in enumerate(values):
        if value is None or _is_na(value):
            continue
        typed = read_value(value, column)
        if typed is None:
            valid[i] = inside[i] = False
        else:
            inside[i] = bool(low <= typed <= high)
    return valid, inside


def component_values(series: pd.Series, column: TemporalColumn, part: str) -> pd.Series:
    """One component of every cell (nullable ``Int64``; missing where the cell is missing
    or not a value of the column's type)."""
    stamps = _as_datetime64(series, column)
    if stamps is not None:  # vectorised: the stored form of a date or datetime column
        values = (stamps.dt.weekday if part == "weekday" else getattr(stamps.dt, part))
        return pd.Series(values, index=series.index).astype("Int64")
    out: list[int | None] = []
    for value in series.astype(object).tolist():
        typed = None if _is_na(value) else read_value(value, column)
        out.append(None if typed is None else _component(typed, part))
    return pd.Series(pd.array(out, dtype="Int64"), index=series.index)


def _as_datetime64(series: pd.Series, column: TemporalColumn) -> pd.Series | None:
    """``series`` as naive ``datetime64`` when it holds only values of a date or datetime
    column (a date column's timestamps must be midnights), else ``None``."""
    if column.type == "time":
        return None
    if pd.api.types.is_datetime64_any_dtype(series):
        if getattr(series.dt, "tz", None) is not None:
            return None
        if column.type == "date" and not (series.dropna() == series.dropna().dt.normalize()).all():
            return None
        return series
    if column.type == "date" and series.dtype == object and series.map(
            lambda v: _is_na(v) or (isinstance(v, dt.date) and not isinstance(v, dt.datetime))
    ).all():
        return pd.Series(pd.to_datetime(series, errors="coerce"), index=series.index)
    return None


def _component(value: Any, part: str) -> int:
    if part == "weekday":
        return int(value.weekday())
    return int(getattr(value, part))


def component_series(frame: pd.DataFrame, column: ComponentColumn) -> pd.Series | None:
    """A component column of ``frame``: its own column when present, else derived from its
    temporal column (``None`` when the frame has neither)."""
    if column.name in frame.columns:
        return frame[column.name]
    if column.parent.name in frame.columns:
        return component_values(frame[column.parent.name], column.parent, column.component)
    return None


def with_components(frame: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """``frame`` with the component columns of its synthesized temporal columns added
    (those it lacks): what the encoder, utility and the audit read. Unchanged (the same
    object) when there is nothing to add."""
    added: dict[str, pd.Series] = {}
    for col in schema.temporal_columns:
        if not col.is_synthesized or col.name not in frame.columns:
            continue
        for comp in col.component_columns():
            if comp.name not in frame.columns:
                added[comp.name] = component_values(frame[col.name], col, comp.component)
    if not added:
        return frame
    return frame.assign(**added)


def assemble(column: TemporalColumn, parts: dict[str, np.ndarray], missing: np.ndarray,
             rng: np.random.Generator) -> pd.Series:
    """Values of ``column`` from sampled components (``parts``: component → int levels,
    one per row, -1 where sampled as missing; ``missing``: rows whose value is missing),
    by the module's rule."""
    n = len(missing)
    low, high = column.bounds

    def draw(part: str) -> np.ndarray:
        levels = np.asarray(column.levels(part), dtype=np.int64)
        uniform = levels[rng.integers(0, len(levels), size=n)]
        if part not in parts:
            return uniform
        sampled = np.asarray(parts[part], dtype=np.int64)
        return np.where(sampled < 0, uniform, sampled)

    dates: list[dt.date] | None = None
    if column.type in ("date", "datetime"):
        years, months = draw("year"), draw("month")
        # 0 or -1 (not modelled, or sampled as missing): drawn inside the month below
        days = np.asarray(parts.get("day", np.zeros(n)), dtype=np.int64)
        u = rng.random(n)
        weekdays = parts.get("weekday")
        dates = []
        for i in range(n):
            year, month = int(years[i]), int(months[i])
            last = calendar.monthrange(year, month)[1]
            day = int(days[i]) if days[i] > 0 else 1 + min(int(u[i] * last), last - 1)
            day = min(day, last)
            if weekdays is not None and weekdays[i] >= 0:
                day = _nearest_weekday(year, month, day, int(weekdays[i]), last)
            dates.append(dt.date(year, month, day))
    times: list[dt.time] | None = None
    if column.type in ("time", "datetime"):
        hours, minutes = draw("hour"), draw("minute")
        times = [dt.time(int(h), int(m)) for h, m in zip(hours, minutes, strict=True)]
    values: list[Any] = []
    for i in range(n):
        if missing[i]:
            values.append(None)
            continue
        value: Any
        if dates is not None and times is not None:
            value = dt.datetime.combine(dates[i], times[i])
        elif dates is not None:
            value = dates[i]
        else:
            assert times is not None
            value = times[i]
        values.append(min(max(value, low), high))
    return storage_series(values, column)


def _nearest_weekday(year: int, month: int, day: int, weekday: int, last: int) -> int:
    """The day of the month with ``weekday`` nearest to ``day`` (the earlier on a tie);
    every weekday occurs at least four times in a month, so one always exists."""
    offset = (weekday - dt.date(year, month, day).weekday()) % 7  # forward to it
    later, earlier = day + offset, day + offset - 7
    if earlier >= 1 and (day - earlier <= later - day or later > last):
        return earlier
    return later


def _is_na(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
