"""Great Expectations expectations for date, time and datetime columns.

GX's own checks do not fit a temporal column: its type check cannot name ``datetime.date``
or ``datetime.time`` values, its strftime check refuses typed values, and its between
check compares mixed types. These two column-map expectations read each cell the way
:mod:`pulsesynth.temporal` does (a typed value, or text in the declared format), so a
placeholder such as ``#########`` is one counted unexpected value; like every map
expectation they report counts, never values, under the value-free result format.

* ``expect_column_values_to_parse_as_declared``: a value of the column's type, or text that
  parses in the declared ``strftime_format``.
* ``expect_column_temporal_values_to_be_between``: inside the declared bounds (ISO text);
  a cell that does not parse is left to the first expectation (not counted twice).

Importing this module registers both with GX.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

from pulsesynth.schema import Temporal, TemporalColumn
from pulsesynth.temporal import check_values


def declared_column(kind: str, strftime_format: str | None, min_value: str,
                    max_value: str) -> TemporalColumn:
    """The :class:`TemporalColumn` an expectation's parameters describe (ISO bounds)."""
    parse: Any = {"date": dt.date.fromisoformat, "time": dt.time.fromisoformat,
                  "datetime": dt.datetime.fromisoformat}[kind]
    bounds: tuple[Temporal, Temporal] = (parse(min_value), parse(max_value))
    return TemporalColumn(name="value", type=kind,  # type: ignore[arg-type]  # checked above
                          role="other", bounds=bounds, format=strftime_format)


class ColumnValuesParseAsDeclared(ColumnMapMetricProvider):
    """Per cell: a value of the declared temporal type, or text in the declared format."""

    condition_metric_name = "column_values.pulsesynth_parse_as_declared"
    condition_value_keys = ("kind", "strftime_format", "min_value", "max_value")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, kind: str, strftime_format: str | None,
                min_value: str, max_value: str, **kwargs: Any) -> pd.Series:
        valid, _ = check_values(column, declared_column(kind, strftime_format, min_value,
                                                        max_value))
        return pd.Series(valid, index=column.index)


class ColumnTemporalValuesBetween(ColumnMapMetricProvider):
    """Per cell: inside the declared bounds (cells that do not parse pass here)."""

    condition_metric_name = "column_values.pulsesynth_temporal_between"
    condition_value_keys = ("kind", "strftime_format", "min_value", "max_value")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, kind: str, strftime_format: str | None,
                min_value: str, max_value: str, **kwargs: Any) -> pd.Series:
        valid, inside = check_values(column, declared_column(kind, strftime_format,
                                                             min_value, max_value))
        return pd.Series(inside | ~valid, index=column.index)


class ExpectColumnValuesToParseAsDeclared(ColumnMapExpectation):
    """Expect each value to be a date/time/datetime, or text in the declared format."""

    kind: str
    strftime_format: str | None = None
    min_value: str
    max_value: str

    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": [],
                                                  "contributors": [], "requirements": []}
    map_metric = "column_values.pulsesynth_parse_as_declared"
    success_keys = ("kind", "strftime_format", "min_value", "max_value", "mostly")
    args_keys = ("column", "kind", "strftime_format", "min_value", "max_value")


class ExpectColumnTemporalValuesToBeBetween(ColumnMapExpectation):
    """Expect each date/time/datetime value inside the declared bounds (inclusive)."""

    kind: str
    strftime_format: str | None = None
    min_value: str
    max_value: str

    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": [],
                                                  "contributors": [], "requirements": []}
    map_metric = "column_values.pulsesynth_temporal_between"
    success_keys = ("kind", "strftime_format", "min_value", "max_value", "mostly")
    args_keys = ("column", "kind", "strftime_format", "min_value", "max_value")


#: The expectation classes by the snake-case names the suite uses.
EXPECTATIONS = {
    "expect_column_values_to_parse_as_declared": ExpectColumnValuesToParseAsDeclared,
    "expect_column_temporal_values_to_be_between": ExpectColumnTemporalValuesToBeBetween,
}
