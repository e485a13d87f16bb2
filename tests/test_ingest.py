"""Ingest: validate first, write atomically; every bad input ends in a specific error and an
unchanged warehouse."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from pulsesynth import cli
from pulsesynth.errors import CatalogError, SchemaError, SourceError, ValidationFailed
from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse, file_sha256

TOY_SCHEMA = {
    "id": "toy_trips",
    "title": "Toy trips",
    "classification": "confidential",
    "steward": "test-steward",
    "target": "paid",
    "row_key": ["day", "trip"],
    "min_rows": 3,
    "privacy": {"epsilon": 1.0, "lifetime_epsilon": 5.0, "refresh_days": 1},
    "columns": [
        {"name": "day", "type": "integer", "role": "other", "bounds": [1, 31],
         "bins": [1, 10, 20, 31]},
        {"name": "trip", "type": "integer", "role": "identifier", "bounds": [1, 1000]},
        {"name": "zone", "type": "categorical", "role": "quasi_identifier",
         "categories": ["north", "south", "east"]},
        {"name": "fare", "type": "float", "role": "sensitive", "bounds": [0, 100],
         "bins": [0, 10, 50, 100]},
        {"name": "note", "type": "text", "role": "other", "nullable": True},
        {"name": "paid", "type": "categorical", "role": "target", "categories": ["no", "yes"]},
    ],
}


def good_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "day": [1, 1, 2, 3, 4],
        "trip": [1, 2, 1, 1, 1],
        "zone": ["north", "south", "east", "north", "south"],
        "fare": [5.5, 12.0, 40.0, 99.0, 0.0],
        "note": ["a", None, "b", "c", "d"],
        "paid": ["yes", "no", "yes", "yes", "no"],
    })


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "project"
    (root / "schemas").mkdir(parents=True)
    schema_path = root / "schemas" / "toy_trips.yaml"
    schema_path.write_text(yaml.safe_dump(TOY_SCHEMA, sort_keys=False))
    monkeypatch.setenv("PULSESYNTH_ROOT", str(root))
    wh = Warehouse(Paths(root))
    first = tmp_path / "first.csv"
    good_frame().to_csv(first, index=False)
    wh.ingest(first, "toy_trips", schema_path)
    return wh, schema_path, tmp_path


def fingerprint(wh: Warehouse) -> tuple:
    files = sorted((p.name, file_sha256(p)) for p in wh.paths.tables.iterdir())
    return files, wh.catalog()


def test_good_file_is_ingested_and_catalogued(setup) -> None:
    wh, _, _ = setup
    entry = wh.entry("toy_trips")
    assert entry["rows"] == 5 and entry["origin"] == "ingested"
    snap = wh.pull("toy_trips")
    assert snap.frame["fare"].dtype == "float64" and snap.frame["day"].dtype == "int64"


def test_parquet_ingest_and_classification_override(setup) -> None:
    wh, schema_path, tmp = setup
    path = tmp / "trips.parquet"
    good_frame().to_parquet(path, index=False)
    wh.ingest(path, "toy_trips", schema_path, classification="secret")
    assert wh.entry("toy_trips")["classification"] == "secret"
    assert wh.schema("toy_trips").classification == "secret"


def _csv(tmp: Path, frame: pd.DataFrame, name: str = "bad.csv") -> Path:
    path = tmp / name
    frame.to_csv(path, index=False)
    return path


def _expect_validation_failure(setup, frame: pd.DataFrame, expectation: str,
                               column: str | None) -> ValidationFailed:
    wh, schema_path, tmp = setup
    before = fingerprint(wh)
    with pytest.raises(ValidationFailed) as err:
        wh.ingest(_csv(tmp, frame), "toy_trips", schema_path)
    assert (expectation, column) in {(f.expectation, f.column) for f in err.value.report.failed}
    assert fingerprint(wh) == before
    return err.value


def test_missing_column(setup) -> None:
    err = _expect_validation_failure(setup, good_frame().drop(columns="zone"),
                                     "expect_table_columns_to_match_set", None)
    assert "missing column(s) zone" in str(err)


def test_extra_column(setup) -> None:
    err = _expect_validation_failure(setup, good_frame().assign(extra=1),
                                     "expect_table_columns_to_match_set", None)
    assert "1 undeclared column(s)" in str(err) and "extra" not in str(err)


def test_wrong_type(setup) -> None:
    frame = good_frame().astype({"fare": object})
    frame.loc[2, "fare"] = "forty"
    err = _expect_validation_failure(setup, frame, "expect_column_values_to_be_of_type", "fare")
    assert "forty" not in str(err)


def test_null_in_non_nullable_column(setup) -> None:
    frame = good_frame().astype({"zone": object})
    frame.loc[1, "zone"] = None
    _expect_validation_failure(setup, frame, "expect_column_values_to_not_be_null", "zone")


def test_numeric_out_of_declared_bounds(setup) -> None:
    frame = good_frame()
    frame.loc[0, "fare"] = 250.0
    err = _expect_validation_failure(setup, frame, "expect_column_values_to_be_between", "fare")
    assert "250" not in str(err)


def test_category_outside_declared_list(setup) -> None:
    frame = good_frame()
    frame.loc[0, "zone"] = "atlantis"
    err = _expect_validation_failure(setup, frame, "expect_column_values_to_be_in_set", "zone")
    assert "atlantis" not in str(err)


def test_duplicate_compound_row_key(setup) -> None:
    frame = good_frame()
    frame.loc[1, "trip"] = 1
    _expect_validation_failure(setup, frame, "expect_compound_columns_to_be_unique", "day+trip")


def test_empty_table(setup) -> None:
    _expect_validation_failure(setup, good_frame().head(0),
                               "expect_table_row_count_to_be_between", None)


def test_single_row_table(setup) -> None:
    err = _expect_validation_failure(setup, good_frame().head(1),
                                     "expect_table_row_count_to_be_between", None)
    assert "1 rows, at least 3 required" in str(err)


def test_target_with_a_single_class(setup) -> None:
    _expect_validation_failure(setup, good_frame().assign(paid="yes"),
                               "expect_column_unique_value_count_to_be_between", "paid")


def _expect_source_error(setup, path: Path, message: str) -> None:
    wh, schema_path, _ = setup
    before = fingerprint(wh)
    with pytest.raises(SourceError, match=message):
        wh.ingest(path, "toy_trips", schema_path)
    assert fingerprint(wh) == before


def test_file_that_is_not_csv_parquet_or_excel(setup) -> None:
    path = setup[2] / "table.json"
    path.write_bytes(b'{"not": "a table"}')
    _expect_source_error(setup, path, "unsupported file type .json")


def test_broken_xlsx_is_refused_in_one_line(setup) -> None:
    path = setup[2] / "table.xlsx"
    path.write_bytes(b"PK\x03\x04 not a table")
    _expect_source_error(setup, path, "not a readable Excel")


def test_corrupt_parquet(setup) -> None:
    path = setup[2] / "broken.parquet"
    path.write_bytes(b"PAR1 truncated")
    _expect_source_error(setup, path, "not a readable Parquet file")


def test_unreadable_path(setup) -> None:
    _expect_source_error(setup, setup[2] / "nowhere.csv", "no such file")
    _expect_source_error(setup, setup[2], "not a regular file")


def test_non_utf8_text(setup) -> None:
    path = setup[2] / "latin1.csv"
    text = good_frame().to_csv(index=False).replace("north", "nörth")
    path.write_bytes(text.encode("latin-1"))
    _expect_source_error(setup, path, "not valid UTF-8")


def test_duplicate_column_names(setup) -> None:
    path = setup[2] / "dupes.csv"
    path.write_text("day,trip,zone,zone,fare,note,paid\n1,1,north,north,1.0,a,yes\n")
    _expect_source_error(setup, path, "duplicate column name")


def test_schema_with_unknown_type_or_role(setup) -> None:
    wh, _, tmp = setup
    before = fingerprint(wh)
    for key, value in (("type", "timestamp"), ("role", "vip")):
        raw = yaml.safe_load(yaml.safe_dump(TOY_SCHEMA))
        raw["columns"][2][key] = value
        bad_schema = tmp / f"bad_{key}.yaml"
        bad_schema.write_text(yaml.safe_dump(raw))
        with pytest.raises(SchemaError, match=f"columns\\[2\\] \\(zone\\).{key}: unknown {key}"):
            wh.ingest(_csv(tmp, good_frame()), "toy_trips", bad_schema)
    assert fingerprint(wh) == before


def test_classification_outside_the_four_levels(setup) -> None:
    wh, schema_path, tmp = setup
    before = fingerprint(wh)
    with pytest.raises(SchemaError, match="'public' is not one of open, confidential"):
        wh.ingest(_csv(tmp, good_frame()), "toy_trips", schema_path, classification="public")
    assert fingerprint(wh) == before


def test_dataset_id_must_match_schema(setup) -> None:
    wh, schema_path, tmp = setup
    with pytest.raises(CatalogError, match="declares dataset 'toy_trips'"):
        wh.ingest(_csv(tmp, good_frame()), "other_id", schema_path)


def test_failed_catalog_write_restores_previous_table(setup, monkeypatch) -> None:
    """A crash between the file replace and the catalog commit leaves the old version."""
    wh, schema_path, tmp = setup
    before = fingerprint(wh)
    changed = good_frame()
    changed.loc[0, "fare"] = 7.0

    def broken_connect(*args, **kwargs):
        raise RuntimeError("simulated crash")

    real_connect = wh.connect
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 2:  # the first connect reads the catalog; the second writes it
            return broken_connect()
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(wh, "connect", flaky)
    with pytest.raises(RuntimeError, match="simulated crash"):
        wh.ingest(_csv(tmp, changed), "toy_trips", schema_path)
    monkeypatch.setattr(wh, "connect", real_connect)
    assert fingerprint(wh) == before


def test_ingest_cli_prints_each_failing_expectation(setup, capsys) -> None:
    _, schema_path, tmp = setup
    frame = good_frame()
    frame.loc[0, "zone"] = "atlantis"
    frame.loc[1, "fare"] = 1000.0
    code = cli.main(["ingest", str(_csv(tmp, frame)), "--dataset", "toy_trips",
                     "--schema", str(schema_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "expect_column_values_to_be_in_set on zone" in err
    assert "expect_column_values_to_be_between on fare" in err
    assert "atlantis" not in err and "1000" not in err


# --- header-less files and value-free messages ----------------------------------------------

CANARY = "CANARY-4d1e"


def test_file_saved_without_its_header_row_is_named_as_such(setup, capsys) -> None:
    wh, schema_path, tmp = setup
    before = fingerprint(wh)
    path = tmp / "headless.csv"
    good_frame().to_csv(path, index=False, header=False)
    with pytest.raises(SourceError) as err:
        wh.ingest(path, "toy_trips", schema_path)
    message = str(err.value)
    assert message == (f"{path}: no header row: the first line holds none of the 6 declared "
                       "column names and looks like data; save the file with its header row")
    assert fingerprint(wh) == before
    code = cli.main(["ingest", str(path), "--dataset", "toy_trips", "--schema",
                     str(schema_path)])
    assert code == 2 and capsys.readouterr().err == f"error: {message}\n"


def test_header_less_file_with_a_column_fewer_is_still_header_less(setup) -> None:
    """Column counts differ, but a cell of the first line is a number or a category."""
    wh, schema_path, tmp = setup
    path = tmp / "headless.csv"
    good_frame().drop(columns="note").to_csv(path, index=False, header=False)
    with pytest.raises(SourceError, match="no header row"):
        wh.ingest(path, "toy_trips", schema_path)


def test_real_header_with_a_numeric_extra_column_is_not_taken_for_data(setup) -> None:
    err = _expect_validation_failure(setup, good_frame().assign(**{"2024": 1}),
                                     "expect_table_columns_to_match_set", None)
    assert "1 undeclared column(s)" in str(err) and "2024" not in str(err)


def test_undeclared_header_names_are_counted_never_printed(setup, capsys) -> None:
    _, schema_path, tmp = setup
    frame = good_frame().rename(columns={"zone": CANARY}).assign(**{f"{CANARY}-2": 1})
    err = _expect_validation_failure(setup, frame, "expect_table_columns_to_match_set", None)
    assert "missing column(s) zone; 2 undeclared column(s)" in str(err)
    assert CANARY not in str(err) and CANARY not in json_of(err)
    code = cli.main(["ingest", str(_csv(tmp, frame)), "--dataset", "toy_trips",
                     "--schema", str(schema_path)])
    assert code == 1 and CANARY not in capsys.readouterr().err


def json_of(err: ValidationFailed) -> str:
    import json

    return json.dumps(err.report.to_dict())


def test_duplicate_undeclared_names_are_counted_never_printed(setup) -> None:
    path = setup[2] / "dupes.csv"
    path.write_text(f"day,trip,zone,fare,note,paid,{CANARY},{CANARY}\n"
                    "1,1,north,1.0,a,yes,x,y\n")
    _expect_source_error(setup, path, "1 duplicate undeclared column name")
    wh, schema_path, _ = setup
    with pytest.raises(SourceError) as err:
        wh.ingest(path, "toy_trips", schema_path)
    assert CANARY not in str(err.value)


def test_malformed_row_names_its_line_not_its_text(setup) -> None:
    path = setup[2] / "ragged.csv"
    path.write_text("day,trip,zone,fare,note,paid\n1,1,north,1.0,a,yes\n"
                    f"2,1,south,2.0,{CANARY},no,surplus\n")
    wh, schema_path, _ = setup
    before = fingerprint(wh)
    with pytest.raises(SourceError) as err:
        wh.ingest(path, "toy_trips", schema_path)
    assert str(err.value) == (f"{path}: not a readable CSV file (malformed row at line 3: "
                              "7 fields, 6 expected)")
    assert fingerprint(wh) == before


def test_bad_utf8_byte_offset_is_exact_across_read_blocks(setup) -> None:
    path = setup[2] / "long.csv"
    text = good_frame().to_csv(index=False)
    padding = "1,1,north,1.0," + "x" * 100 + ",yes\n"
    body = text.encode() + padding.encode() * ((1 << 20) // len(padding) + 5)
    offset = len(body) - 3
    path.write_bytes(body[:offset] + b"\xe9" + body[offset + 1:])
    _expect_source_error(setup, path, f"first bad byte at offset {offset}\\)")


def test_csv_types_follow_the_declared_storage_types(setup) -> None:
    """Integral values written as 2.0 are integers; a fraction or a word in an integer
    column fails the type check, as pandas' reading did."""
    wh, schema_path, tmp = setup
    path = tmp / "typed.csv"
    good_frame().assign(day=["1.0", "1", "2", "3.0", "4"]).to_csv(path, index=False)
    wh.ingest(path, "toy_trips", schema_path)
    frame = wh.pull("toy_trips").frame
    assert frame["day"].dtype == "int64" and frame["day"].tolist() == [1, 1, 2, 3, 4]
    fraction = good_frame().assign(day=[1.5, 1, 2, 3, 4])
    err = _expect_validation_failure(setup, fraction, "expect_column_values_to_be_of_type",
                                     "day")
    assert "stored type float64, declared int64" in str(err)
    word = good_frame().astype({"day": object})
    word.loc[2, "day"] = "two"
    err = _expect_validation_failure(setup, word, "expect_column_values_to_be_of_type", "day")
    assert "two" not in str(err)


# --- chunked validation: same report as one whole-frame GX run ------------------------------

def _corrupted() -> list[pd.DataFrame]:
    big = pd.concat([good_frame()] * 3, ignore_index=True)
    big["trip"] = range(1, len(big) + 1)
    broken = big.copy()
    broken.loc[2, "fare"] = 250.0
    broken.loc[9, "fare"] = -1.0
    broken.loc[4, "zone"] = "atlantis"
    broken.loc[11, "zone"] = None
    broken.loc[[3, 5], "trip"] = 1
    broken.loc[5, "day"] = 1
    return [big, broken, broken.assign(paid="yes"), broken.head(0),
            broken.drop(columns="trip").assign(extra=1)]


@pytest.mark.parametrize("case", range(5))
@pytest.mark.parametrize("chunk_rows", [2, 1000])
def test_chunked_validation_reports_exactly_what_whole_frame_validation_does(
        setup, case: int, chunk_rows: int) -> None:
    import duckdb

    from pulsesynth.frames import conform
    from pulsesynth.validation import validate, validate_relation

    wh, _, _ = setup
    schema = wh.schema("toy_trips")
    frame = _corrupted()[case]
    con = duckdb.connect()
    con.register("frame", frame)
    whole = validate(conform(frame, schema), schema)
    chunked = validate_relation(con, "frame", schema, chunk_rows=chunk_rows)
    assert sorted(chunked.failed, key=str) == sorted(whole.failed, key=str)
    assert (chunked.success, chunked.rows, chunked.evaluated) == (
        whole.success, whole.rows, whole.evaluated)


def test_parquet_with_a_saved_pandas_index_ingests_its_columns_only(setup) -> None:
    wh, schema_path, tmp = setup
    path = tmp / "indexed.parquet"
    good_frame().set_index(pd.Index([3, 1, 4, 0, 2])).to_parquet(path)
    assert "__index_level_0__" in pq.read_schema(path).names
    wh.ingest(path, "toy_trips", schema_path)
    frame = wh.pull("toy_trips").frame
    assert list(frame.columns) == list(good_frame().columns) and len(frame) == 5


def test_refused_ingest_leaves_every_warehouse_byte_as_it_was(setup) -> None:
    wh, schema_path, tmp = setup
    frame = good_frame()
    frame.loc[0, "zone"] = "atlantis"

    def everything() -> dict[str, str]:
        return {str(p.relative_to(wh.paths.warehouse)): file_sha256(p)
                for p in sorted(wh.paths.warehouse.rglob("*")) if p.is_file()}

    before = everything()
    with pytest.raises(ValidationFailed):
        wh.ingest(_csv(tmp, frame), "toy_trips", schema_path)
    assert everything() == before


def test_validate_file_reports_what_ingest_refuses_and_stores_nothing(setup) -> None:
    from pulsesynth.warehouse import validate_file

    wh, schema_path, tmp = setup
    frame = good_frame()
    frame.loc[0, "zone"] = "atlantis"
    path = _csv(tmp, frame)
    before = fingerprint(wh)
    with pytest.raises(ValidationFailed) as err:
        wh.ingest(path, "toy_trips", schema_path)
    report = validate_file(path, wh.schema("toy_trips"), wh.paths)
    assert report.to_dict() == err.value.report.to_dict()
    assert [f.describe() for f in report.failed] == [
        "expect_column_values_to_be_in_set on zone (1 of 5 rows)"]
    assert validate_file(_csv(tmp, good_frame(), "good.csv"), wh.schema("toy_trips"),
                         wh.paths).success
    assert fingerprint(wh) == before
    assert not list(wh.paths.warehouse.glob(".spill-*"))
