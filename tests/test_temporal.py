"""Date, time and datetime columns: declarations, typed ingest, GX checks, component
encoding and decoding to valid values inside the bounds."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pulsesynth import cli
from pulsesynth.audit.distances import GowerSpace
from pulsesynth.audit.one_run import make_canaries
from pulsesynth.encoding import FeatureEncoder, TableEncoder
from pulsesynth.errors import SchemaError
from pulsesynth.frames import conform
from pulsesynth.paths import Paths
from pulsesynth.schema import ComponentColumn, TemporalColumn, parse_schema
from pulsesynth.temporal import assemble
from pulsesynth.validation import validate
from pulsesynth.warehouse import Warehouse, validate_file

#: A small accidents-like table: a date and a time read from text, and a datetime.
CRASHES = {
    "id": "crashes",
    "title": "Crashes",
    "classification": "confidential",
    "steward": "test-steward",
    "target": "severe",
    "row_key": "case",
    "min_rows": 3,
    "privacy": {"epsilon": 1.0, "lifetime_epsilon": 5.0, "refresh_days": 1},
    "columns": [
        {"name": "case", "type": "integer", "role": "identifier", "bounds": [1, 100000]},
        {"name": "acd_date", "type": "date", "role": "quasi_identifier",
         "bounds": ["2015-01-01", "2025-12-31"], "format": "%d/%m/%Y",
         "components": ["year", "month", "weekday"]},
        {"name": "acd_time", "type": "time", "role": "quasi_identifier",
         "bounds": ["00:00", "23:59"], "format": "%H:%M", "components": ["hour"],
         "nullable": True},
        {"name": "reported", "type": "datetime", "role": "other",
         "bounds": ["2015-01-01 00:00:00", "2025-12-31 23:59:59"],
         "format": "%Y-%m-%d %H:%M", "components": ["year", "day", "hour", "minute"]},
        {"name": "severe", "type": "categorical", "role": "target", "categories": ["no", "yes"]},
    ],
}


def crash_schema(**changes: object):
    raw = copy.deepcopy(CRASHES)
    raw.update(changes)
    return parse_schema(raw)


def crash_text(n: int, seed: int = 0) -> pd.DataFrame:
    """Rows as a police export writes them: dates and times as text."""
    rng = np.random.default_rng(seed)
    days = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 4017, n), unit="D")
    minutes = rng.integers(0, 24 * 60, n)
    return pd.DataFrame({
        "case": np.arange(1, n + 1),
        "acd_date": days.strftime("%d/%m/%Y"),
        "acd_time": [f"{m // 60:02d}:{m % 60:02d}" for m in minutes],
        "reported": (days + pd.to_timedelta(minutes + 30, unit="min")).strftime(
            "%Y-%m-%d %H:%M"),
        "severe": np.where(np.arange(n) % 2 == 0, "no", "yes"),
    })


def column_error(column: dict, *, field: str = "acd_date") -> str:
    raw = copy.deepcopy(CRASHES)
    raw["columns"][1] = {"name": field, "role": "quasi_identifier", **column}
    with pytest.raises(SchemaError) as err:
        parse_schema(raw)
    message = str(err.value)
    assert "\n" not in message
    return message


# --- declarations ---------------------------------------------------------------------


def test_temporal_columns_parse_to_typed_bounds_and_public_component_levels() -> None:
    schema = crash_schema()
    date = schema.column("acd_date")
    assert isinstance(date, TemporalColumn)
    assert date.bounds == (dt.date(2015, 1, 1), dt.date(2025, 12, 31))
    assert date.levels("year") == tuple(range(2015, 2026))
    assert date.levels("weekday") == tuple(range(7))
    time = schema.column("acd_time")
    assert isinstance(time, TemporalColumn) and time.bounds == (dt.time(0), dt.time(23, 59))
    assert [c.name for c in schema.synthesized_columns] == [
        "acd_date.year", "acd_date.month", "acd_date.weekday", "acd_time.hour",
        "reported.year", "reported.day", "reported.hour", "reported.minute", "severe"]
    assert [c.name for c in schema.released_columns] == [
        "acd_date", "acd_time", "reported", "severe"]
    hour = schema.synthesized_columns[3]
    assert isinstance(hour, ComponentColumn) and hour.categories == tuple(range(24))
    assert hour.nullable and hour.role == "quasi_identifier"


def test_time_bounds_narrow_the_public_hours() -> None:
    col = crash_schema().column("acd_time")
    raw = copy.deepcopy(CRASHES)
    raw["columns"][2]["bounds"] = ["06:00", "21:30"]
    narrowed = parse_schema(raw).column("acd_time")
    assert isinstance(col, TemporalColumn) and isinstance(narrowed, TemporalColumn)
    assert narrowed.levels("hour") == tuple(range(6, 22))


def test_unquoted_yaml_dates_and_a_date_bounding_a_datetime() -> None:
    text = yaml.safe_dump(CRASHES, sort_keys=False).replace("'2015-01-01'", "2015-01-01")
    raw = yaml.safe_load(text)
    raw["columns"][3]["bounds"] = [dt.date(2015, 1, 1), "2025-12-31"]
    schema = parse_schema(raw)
    assert schema.column("acd_date").bounds[0] == dt.date(2015, 1, 1)  # type: ignore[union-attr]
    assert schema.column("reported").bounds == (  # type: ignore[union-attr]
        dt.datetime(2015, 1, 1), dt.datetime(2025, 12, 31, 23, 59, 59))


@pytest.mark.parametrize(("column", "message"), [
    ({"type": "date", "bounds": ["2015-01-01", "2025-12-31"], "components": ["quarter"]},
     "acd_date).components: unknown component 'quarter' (expected one of year, month, day, "
     "weekday, hour, minute)"),
    ({"type": "date", "bounds": ["2015-01-01", "2025-12-31"], "components": ["year", "hour"]},
     "acd_date).components: 'hour' is not a component of a date (expected one of year, "
     "month, day, weekday)"),
    ({"type": "time", "bounds": ["00:00", "23:59"], "components": ["month"]},
     "acd_date).components: 'month' is not a component of a time (expected one of hour, "
     "minute)"),
    ({"type": "date", "bounds": ["2025-12-31", "2015-01-01"], "components": ["year"]},
     "acd_date).bounds: low must be before high"),
    ({"type": "date", "bounds": ["2015-01-01", "31/12/2025"], "components": ["year"]},
     "acd_date).bounds: must be two ISO date values in quotes, e.g. ['2015-01-01', "
     "'2025-12-31']"),
    ({"type": "time", "bounds": [0, 1439], "components": ["hour"]},
     "acd_date).bounds: must be two ISO time values in quotes, e.g. ['00:00', '23:59']"),
    ({"type": "date", "bounds": ["2015-01-01"], "components": ["year"]},
     "acd_date).bounds: must be [low, high], two date values"),
    ({"type": "date", "bounds": ["2015-01-01", "2025-12-31"]},
     "acd_date).components: a synthesized date column needs the components to model, "
     "e.g. [year, month, weekday]"),
    ({"type": "date", "bounds": ["2015-01-01", "2025-12-31"], "components": ["year", "year"]},
     "acd_date).components: contains duplicates"),
    ({"type": "date", "bounds": ["2015-01-01", "2025-12-31"], "components": ["year"],
      "format": "dd/mm/yyyy"},
     "acd_date).format: must be a strptime format such as '%d/%m/%Y'"),
    ({"type": "date", "bounds": ["2015-01-01", "2025-12-31"], "components": ["year"],
      "bins": [1, 2]},
     "acd_date).bins: a date column has bounds and components, not bins"),
    ({"type": "datetime", "bounds": ["2015-01-01 00:00+04:00", "2025-12-31 00:00+04:00"],
      "components": ["year"]},
     "acd_date).bounds: must be local times without a time-zone offset"),
    ({"type": "categorical", "categories": ["a", "b"], "components": ["year"]},
     "acd_date).components: only date, time and datetime columns have a components"),
])
def test_bad_temporal_declarations_fail_in_one_line_naming_the_field(
        column: dict, message: str) -> None:
    assert column_error(column).endswith(message)


def test_a_component_name_taken_by_a_declared_column_is_refused() -> None:
    raw = copy.deepcopy(CRASHES)
    raw["columns"].append({"name": "acd_date.year", "type": "integer", "role": "other",
                           "bounds": [0, 1], "bins": [0, 1]})
    with pytest.raises(SchemaError, match=r"columns: acd_date\.year is the name of a "
                                          r"component of acd_date; rename the column$"):
        parse_schema(raw)


def test_an_unsynthesized_temporal_column_needs_no_components() -> None:
    raw = copy.deepcopy(CRASHES)
    raw["columns"][3].pop("components")
    raw["columns"][3]["synthesize"] = False
    schema = parse_schema(raw)
    assert [c.name for c in schema.released_columns] == ["acd_date", "acd_time", "severe"]


# --- storage and validation -------------------------------------------------------------


def test_text_in_the_declared_format_is_stored_typed() -> None:
    frame = conform(crash_text(5), crash_schema())
    assert all(isinstance(v, dt.date) for v in frame["acd_date"])
    assert all(isinstance(v, dt.time) for v in frame["acd_time"])
    assert str(frame["reported"].dtype) == "datetime64[us]"
    assert validate(frame, crash_schema()).success


def test_placeholders_fail_with_a_count_and_no_value() -> None:
    text = crash_text(10)
    text.loc[[2, 5, 7], "acd_date"] = "#########"
    text.loc[4, "acd_time"] = "########"
    text.loc[1, "acd_date"] = "31/12/2030"  # parses, but after the declared bounds
    report = validate(conform(text, crash_schema()), crash_schema())
    assert not report.success
    assert [f.describe() for f in report.failed] == [
        "expect_column_values_to_parse_as_declared on acd_date (3 of 10 rows)",
        "expect_column_temporal_values_to_be_between on acd_date (1 of 10 rows)",
        "expect_column_values_to_parse_as_declared on acd_time (1 of 10 rows)",
    ]
    assert "#" not in str(report.to_dict()) and "2030" not in str(report.to_dict())


def test_gx_result_document_of_the_temporal_checks_holds_no_cell_value() -> None:
    """GX's own result for both temporal expectations, under the pinned result format,
    carries counts only; GX's default format would have copied the placeholder."""
    import json

    import great_expectations as gx

    from pulsesynth.gx_temporal import EXPECTATIONS
    from pulsesynth.validation import VALUE_FREE_RESULT_FORMAT, _context, expectation_specs

    text = crash_text(8)
    text.loc[2, "acd_date"] = "CANARY-4411"
    text.loc[5, "acd_date"] = "31/12/2031"
    ctx = _context()
    suite = gx.ExpectationSuite(name="temporal-canary")
    for spec in expectation_specs(crash_schema()):
        if spec["type"] in EXPECTATIONS and spec["kwargs"]["column"] == "acd_date":
            suite.add_expectation(EXPECTATIONS[spec["type"]](**spec["kwargs"]))
    asset = ctx.data_sources.add_pandas("temporal-canary").add_dataframe_asset("t")
    batch = asset.add_batch_definition_whole_dataframe("w").get_batch(
        batch_parameters={"dataframe": conform(text, crash_schema())})
    result = batch.validate(suite, result_format=VALUE_FREE_RESULT_FORMAT)
    document = json.dumps(result.to_json_dict())
    assert [r.result["unexpected_count"] for r in result.results] == [1, 1]
    assert "CANARY" not in document and "2031" not in document
    leaky = batch.validate(suite, result_format="SUMMARY")
    assert "CANARY" in json.dumps(leaky.to_json_dict())


def test_digits_only_dates_read_as_numbers_by_pandas_still_parse() -> None:
    raw = copy.deepcopy(CRASHES)
    raw["columns"][1]["format"] = "%Y%m%d"
    schema = parse_schema(raw)
    text = crash_text(3)
    text["acd_date"] = [20240131, 20150101, 20251231]  # what pandas.read_csv gives
    frame = conform(text, schema)
    assert frame["acd_date"].tolist() == [
        dt.date(2024, 1, 31), dt.date(2015, 1, 1), dt.date(2025, 12, 31)]


def test_typed_values_outside_the_bounds_fail_with_a_count() -> None:
    frame = conform(crash_text(6), crash_schema())
    frame.loc[0, "reported"] = pd.Timestamp("2014-12-31 23:00")
    frame.loc[3, "reported"] = pd.Timestamp("2026-01-01 00:00")
    report = validate(frame, crash_schema())
    assert [f.describe() for f in report.failed] == [
        "expect_column_temporal_values_to_be_between on reported (2 of 6 rows)"]


def test_synthetic_suite_checks_the_released_temporal_columns() -> None:
    schema = crash_schema()
    synthetic = conform(crash_text(5), schema).drop(columns=["case"])
    assert validate(synthetic, schema, synthetic=True).success
    report = validate(synthetic.drop(columns=["acd_time"]), schema, synthetic=True)
    assert "expect_table_columns_to_match_set: missing column(s) acd_time" in [
        f.describe() for f in report.failed]


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "project"
    (root / "schemas").mkdir(parents=True)
    schema_path = root / "schemas" / "crashes.yaml"
    schema_path.write_text(yaml.safe_dump(CRASHES, sort_keys=False))
    monkeypatch.setenv("PULSESYNTH_ROOT", str(root))
    return Warehouse(Paths(root)), schema_path, tmp_path


def test_csv_ingest_stores_date_time_and_timestamp_types(warehouse) -> None:
    wh, schema_path, tmp = warehouse
    path = tmp / "crashes.csv"
    crash_text(20).to_csv(path, index=False)
    wh.ingest(path, "crashes", schema_path)
    table = wh.paths.resolve(wh.entry("crashes")["table_path"])
    arrow = pq.read_schema(table)
    assert str(arrow.field("acd_date").type) == "date32[day]"
    assert str(arrow.field("acd_time").type) == "time64[us]"
    assert str(arrow.field("reported").type) == "timestamp[us]"
    described = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{table}')").fetchall()
    types = {row[0]: row[1] for row in described}
    assert (types["acd_date"], types["acd_time"], types["reported"]) == (
        "DATE", "TIME", "TIMESTAMP")
    snap = wh.pull("crashes")
    expected = conform(crash_text(20), crash_schema())
    assert snap.frame["acd_date"].tolist() == expected["acd_date"].tolist()
    assert snap.frame["acd_time"].tolist() == expected["acd_time"].tolist()


def test_csv_placeholders_refuse_the_ingest_with_a_count(warehouse, capsys) -> None:
    wh, schema_path, tmp = warehouse
    first = tmp / "first.csv"
    crash_text(6).to_csv(first, index=False)
    wh.ingest(first, "crashes", schema_path)
    before = wh.catalog(), sorted(p.name for p in wh.paths.tables.iterdir())
    text = crash_text(20)
    text.loc[[3, 9], "acd_date"] = "#########"
    path = tmp / "crashes.csv"
    text.to_csv(path, index=False)
    code = cli.main(["ingest", str(path), "--dataset", "crashes", "--schema",
                     str(schema_path)])
    err = capsys.readouterr().err
    assert code != 0
    assert "expect_column_values_to_parse_as_declared on acd_date (2 of 20 rows)" in err
    assert "#" not in err and "Traceback" not in err
    assert (wh.catalog(), sorted(p.name for p in wh.paths.tables.iterdir())) == before
    report = validate_file(path, crash_schema(), wh.paths)
    assert [f.describe() for f in report.failed] == [
        "expect_column_values_to_parse_as_declared on acd_date (2 of 20 rows)"]


def test_parquet_with_native_date_time_and_timestamp_types_ingests(warehouse) -> None:
    wh, schema_path, tmp = warehouse
    frame = conform(crash_text(12), crash_schema())
    table = pa.Table.from_pandas(frame, preserve_index=False)
    assert str(table.schema.field("acd_date").type) == "date32[day]"
    path = tmp / "crashes.parquet"
    pq.write_table(table, path)
    wh.ingest(path, "crashes", schema_path)
    snap = wh.pull("crashes")
    assert snap.frame["acd_time"].tolist() == frame["acd_time"].tolist()
    assert snap.frame["reported"].tolist() == frame["reported"].tolist()


def test_parquet_date_column_written_as_midnight_timestamps_is_stored_as_dates(
        warehouse) -> None:
    wh, schema_path, tmp = warehouse
    frame = conform(crash_text(8), crash_schema())
    frame["acd_date"] = pd.to_datetime(frame["acd_date"])  # pandas writes timestamps
    path = tmp / "crashes.parquet"
    frame.to_parquet(path, index=False)
    wh.ingest(path, "crashes", schema_path)
    table = wh.paths.resolve(wh.entry("crashes")["table_path"])
    assert str(pq.read_schema(table).field("acd_date").type) == "date32[day]"


# --- encoding and decoding --------------------------------------------------------------


def test_encoder_levels_come_from_the_schema_alone() -> None:
    schema = crash_schema()
    a, b = TableEncoder(schema), TableEncoder(schema)
    a.transform(conform(crash_text(50, seed=1), schema))
    assert a.state_dict() == b.state_dict()
    blocks = {name: width for name, _, width in a.blocks}
    assert blocks == {"acd_date.year": 11, "acd_date.month": 12, "acd_date.weekday": 7,
                      "acd_time.hour": 25, "reported.year": 11, "reported.day": 31,
                      "reported.hour": 24, "reported.minute": 60, "severe": 2}


def test_encode_decode_round_trip_keeps_the_modelled_components() -> None:
    schema = crash_schema()
    frame = conform(crash_text(300, seed=2), schema)
    frame.loc[::7, "acd_time"] = None
    enc = TableEncoder(schema)
    onehot = enc.transform(frame)
    assert enc.last_transform_report is not None
    assert all(sum(counts.values()) == 0 for name, counts in
               enc.last_transform_report["columns"].items() if name != "acd_time.hour")
    decoded = enc.inverse_transform(onehot, np.random.default_rng(0))
    assert list(decoded.columns) == ["acd_date", "acd_time", "reported", "severe"]
    for name, part in (("acd_date", "year"), ("acd_date", "month")):
        assert [getattr(v, part) for v in decoded[name]] == [
            getattr(v, part) for v in frame[name]]
    assert [v.weekday() for v in decoded["acd_date"]] == [v.weekday() for v in frame["acd_date"]]
    assert decoded["acd_time"].isna().tolist() == frame["acd_time"].isna().tolist()
    kept = frame["acd_time"].notna()
    assert [v.hour for v in decoded["acd_time"][kept]] == [v.hour for v in frame["acd_time"][kept]]
    # reported's month is not modelled: drawn, so a day past its end becomes its last
    early = frame["reported"].dt.day <= 28
    assert (decoded["reported"].dt.day[early] == frame["reported"].dt.day[early]).all()
    assert (decoded["reported"].dt.minute == frame["reported"].dt.minute).all()
    assert validate(decoded, schema, synthetic=True).success


def test_every_decoded_value_is_valid_and_inside_the_bounds_for_any_levels() -> None:
    raw = copy.deepcopy(CRASHES)
    raw["columns"][1]["bounds"] = ["2016-02-10", "2018-11-20"]
    raw["columns"][1]["components"] = ["year", "month", "day", "weekday"]
    raw["columns"][2]["bounds"] = ["06:30", "21:15"]
    raw["columns"][2]["components"] = ["hour", "minute"]
    schema = parse_schema(raw)
    enc = TableEncoder(schema)
    rng = np.random.default_rng(3)
    decoded = enc.inverse_transform(rng.random((5000, enc.width)), rng)
    dates = decoded["acd_date"]
    assert all(isinstance(v, dt.date) for v in dates)
    assert min(dates) >= dt.date(2016, 2, 10) and max(dates) <= dt.date(2018, 11, 20)
    times = decoded["acd_time"].dropna()
    assert min(times) >= dt.time(6, 30) and max(times) <= dt.time(21, 15)
    assert decoded["reported"].between("2015-01-01", "2025-12-31 23:59:59").all()
    assert str(decoded["reported"].dtype) == "datetime64[us]"
    assert validate(decoded, schema, synthetic=True).success


def test_encoding_a_table_without_its_temporal_column_names_the_column() -> None:
    schema = crash_schema()
    frame = conform(crash_text(5), schema).drop(columns=["reported"])
    with pytest.raises(KeyError, match="table lacks synthesized column\\(s\\): reported'"):
        TableEncoder(schema).transform(frame)


def test_decoding_rule_clamps_the_day_and_honours_the_weekday() -> None:
    col = crash_schema().column("acd_date")
    assert isinstance(col, TemporalColumn)
    day_col = TemporalColumn(name="d", type="date", role="other", bounds=col.bounds,
                             components=("year", "month", "day", "weekday"))
    rng = np.random.default_rng(0)
    parts = {"year": np.array([2023, 2024, 2024]), "month": np.array([2, 2, 3]),
             "day": np.array([30, 30, 31]), "weekday": np.array([1, 3, 0])}
    values = assemble(day_col, parts, np.zeros(3, dtype=bool), rng).tolist()
    # 30 Feb 2023 -> 28 Feb (a Tuesday, weekday 1); 29 Feb 2024 is a Thursday (3);
    # 31 Mar 2024 is a Sunday: the nearest Monday inside March is the 25th.
    assert values == [dt.date(2023, 2, 28), dt.date(2024, 2, 29), dt.date(2024, 3, 25)]


def test_a_component_sampled_missing_in_a_row_with_a_value_is_drawn() -> None:
    col = crash_schema().column("reported")
    assert isinstance(col, TemporalColumn)
    n = 2000
    parts = {"year": np.full(n, 2020), "day": np.full(n, -1), "hour": np.full(n, 7),
             "minute": np.full(n, -1)}
    values = assemble(col, parts, np.zeros(n, dtype=bool), np.random.default_rng(2))
    assert values.notna().all() and (values.dt.year == 2020).all()
    assert (values.dt.hour == 7).all()
    assert values.dt.minute.nunique() == 60 and values.dt.day.nunique() == 31


def test_unmodelled_day_is_drawn_inside_the_month_with_the_modelled_weekday() -> None:
    col = crash_schema().column("acd_date")
    assert isinstance(col, TemporalColumn)
    n = 400
    parts = {"year": np.full(n, 2024), "month": np.full(n, 2), "weekday": np.full(n, 4)}
    values = assemble(col, parts, np.zeros(n, dtype=bool), np.random.default_rng(1))
    assert {v.weekday() for v in values} == {4}
    assert {v.month for v in values} == {2}
    assert {v.day for v in values} == {2, 9, 16, 23}


def test_utility_and_audit_encoders_read_components_from_typed_frames() -> None:
    schema = crash_schema()
    frame = conform(crash_text(40, seed=4), schema)
    features = FeatureEncoder.from_schema(schema, exclude=["severe"])
    matrix = features.transform(frame)
    assert matrix.shape == (40, (11 + 1) + (12 + 1) + (7 + 1) + (24 + 1) + (11 + 1)
                            + (31 + 1) + (24 + 1) + (60 + 1))
    assert "acd_date.weekday=6" in features.feature_names
    space = GowerSpace(schema, ["acd_date", "acd_time.hour"])
    assert [c.name for c in space.categorical] == [
        "acd_date.year", "acd_date.month", "acd_date.weekday", "acd_time.hour"]
    assert len(set(space.row_keys(frame).tolist())) <= 40


def test_a_temporal_column_that_leaks_the_target_is_no_predictor() -> None:
    schema = crash_schema(leaks_target=["reported"])
    features = FeatureEncoder.from_schema(schema, exclude=schema.not_predictors)
    assert [c.name for c in features.columns] == [
        "acd_date.year", "acd_date.month", "acd_date.weekday", "acd_time.hour"]


def test_time_zone_aware_timestamps_fail_the_parse_check_with_a_count() -> None:
    frame = conform(crash_text(4), crash_schema())
    frame["reported"] = frame["reported"].dt.tz_localize("Asia/Dubai")
    report = validate(frame, crash_schema())
    assert [f.describe() for f in report.failed] == [
        "expect_column_values_to_parse_as_declared on reported (4 of 4 rows)"]


def test_canaries_hold_valid_temporal_values_drawn_from_the_schema() -> None:
    schema = crash_schema()
    canaries = make_canaries(schema, 200, np.random.default_rng(5))
    report = validate(conform(canaries, schema).drop(columns=["case"]), schema,
                      synthetic=True)
    failed = [f.describe() for f in report.failed]
    # acd_time is nullable: canaries may leave it missing; nothing else may fail
    assert failed == []
