"""Ingest of a real export through the schema's declared ``ingest:`` mapping: renamed and
dropped source columns, a generated row key, recoded labels, a CSV dialect (delimiter,
decimal comma, encoding, no header row) and Excel workbooks; a refused file changes
nothing, and an undeclared, unmapped column is still counted, never named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml

from pulsesynth import cli
from pulsesynth.errors import SchemaError, SourceError, ValidationFailed
from pulsesynth.paths import Paths
from pulsesynth.schema import NumericColumn, parse_schema
from pulsesynth.source_mapping import GENERATED_KEY
from pulsesynth.warehouse import Warehouse, file_sha256

#: A police-export-like table: no key, headers that are not the schema's names.
EXPORT_SCHEMA: dict[str, Any] = {
    "id": "accidents",
    "title": "Accidents export",
    "classification": "confidential",
    "steward": "test-steward",
    "target": "severity",
    "row_key": "generated",
    "min_rows": 3,
    "privacy": {"epsilon": 1.0, "lifetime_epsilon": 5.0, "refresh_days": 1},
    "columns": [
        {"name": "age", "type": "categorical", "role": "quasi_identifier",
         "categories": ["10-19", "20-29", "80-89"]},
        {"name": "speed", "type": "float", "role": "other", "bounds": [0, 200],
         "bins": [0, 50, 100, 200]},
        {"name": "weather", "type": "categorical", "role": "other",
         "categories": ["clear", "rain"]},
        {"name": "severity", "type": "categorical", "role": "target",
         "categories": ["minor", "serious"]},
    ],
    "ingest": {
        "columns": {"Age Band": "age", "Speed km/h": "speed"},
        "drop": ["OBJECTID"],
        "recode": {"age": {" 10 - 19": "10-19", "80- 89": "80-89"}},
    },
}

HEADER = ["OBJECTID", "Age Band", "Speed km/h", "weather", "severity"]
ROWS = [
    ["901", " 10 - 19", "42.5", "clear", "minor"],
    ["902", "20-29", "80", "rain", "serious"],
    ["903", "80- 89", "12.25", "clear", "minor"],
    ["904", "20-29", "0", "rain", "serious"],
]


def schema_file(root: Path, raw: dict[str, Any]) -> Path:
    (root / "schemas").mkdir(parents=True, exist_ok=True)
    path = root / "schemas" / f"{raw['id']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str] | None, rows: list[list[str]],
              delimiter: str = ",", encoding: str = "utf-8") -> Path:
    lines = ([delimiter.join(header)] if header else []) + [delimiter.join(r) for r in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def write_xlsx(path: Path, header: list[Any], rows: list[list[Any]],
               sheet: str = "Sheet1") -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    ws.title = sheet
    ws.append(header)
    for row in rows:
        ws.append(row)
    book.save(path)
    return path


def fingerprint(wh: Warehouse) -> tuple:
    """Every table file's bytes, the catalog and the database file: what a refusal keeps."""
    files = (sorted((p.name, file_sha256(p)) for p in wh.paths.tables.iterdir())
             if wh.paths.tables.exists() else [])
    database = file_sha256(wh.paths.database) if wh.paths.database.exists() else None
    return files, wh.catalog() if wh.exists else None, database


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    schema_file(root, EXPORT_SCHEMA)
    monkeypatch.setenv("PULSESYNTH_ROOT", str(root))
    return root


def ingest(root: Path, file: Path, raw: dict[str, Any] | None = None) -> Warehouse:
    path = schema_file(root, raw) if raw is not None else root / "schemas" / "accidents.yaml"
    wh = Warehouse(Paths(root))
    wh.ingest(file, "accidents", path)
    return wh


def test_renames_drops_recodes_and_numbers_rows_in_file_order(root: Path,
                                                               tmp_path: Path) -> None:
    wh = ingest(root, write_csv(tmp_path / "export.csv", HEADER, ROWS))
    frame = wh.pull("accidents").frame
    assert list(frame.columns) == [GENERATED_KEY, "age", "speed", "weather", "severity"]
    assert frame[GENERATED_KEY].tolist() == [1, 2, 3, 4]
    assert frame["age"].tolist() == ["10-19", "20-29", "80-89", "20-29"]
    assert frame["speed"].tolist() == [42.5, 80.0, 12.25, 0.0]
    assert frame[GENERATED_KEY].dtype == "int64" and frame["speed"].dtype == "float64"


def test_catalog_records_the_declared_mapping(root: Path, tmp_path: Path) -> None:
    wh = ingest(root, write_csv(tmp_path / "export.csv", HEADER, ROWS))
    entry = wh.entry("accidents")
    assert entry["row_key"] == [GENERATED_KEY]
    assert entry["ingest_mapping"] == {
        "columns": {"Age Band": "age", "Speed km/h": "speed"},
        "drop": ["OBJECTID"],
        "recode": {"age": {" 10 - 19": "10-19", "80- 89": "80-89"}},
        "row_key": {"generated": GENERATED_KEY,
                    "rule": "row number, 1..n in the source file's order"},
    }


def test_same_file_ingested_twice_is_the_same_snapshot(root: Path, tmp_path: Path) -> None:
    # Row numbers, not random UUIDs: an unchanged export is an unchanged table.
    export = write_csv(tmp_path / "export.csv", HEADER, ROWS)
    first = ingest(root, export).entry("accidents")["snapshot_id"]
    wh = Warehouse(Paths(root))
    result = wh.ingest(export, "accidents", root / "schemas" / "accidents.yaml")
    assert result.snapshot_id == first and result.changed is False


def test_generated_key_is_an_identifier_column_added_to_the_schema() -> None:
    schema = parse_schema(copy.deepcopy(EXPORT_SCHEMA))
    key = schema.column(GENERATED_KEY)
    assert isinstance(key, NumericColumn)
    assert (key.type, key.role, key.nullable, key.is_synthesized) == (
        "integer", "identifier", False, False)
    assert schema.row_key == (GENERATED_KEY,) and schema.privacy_unit == ()
    assert GENERATED_KEY not in [c.name for c in schema.synthesized_columns]


def test_unmapped_undeclared_column_is_refused_counted_not_named(root: Path,
                                                                 tmp_path: Path) -> None:
    wh = ingest(root, write_csv(tmp_path / "export.csv", HEADER, ROWS))
    before = fingerprint(wh)
    extra = write_csv(tmp_path / "extra.csv", [*HEADER, "Officer Name"],
                      [[*r, "Sgt Canary"] for r in ROWS])
    with pytest.raises(ValidationFailed) as err:
        wh.ingest(extra, "accidents", root / "schemas" / "accidents.yaml")
    assert "1 undeclared column(s) (names not shown" in str(err.value)
    assert "Officer" not in str(err.value) and "Canary" not in str(err.value)
    assert fingerprint(wh) == before


def test_dropping_the_extra_column_in_the_mapping_lets_it_in(root: Path,
                                                             tmp_path: Path) -> None:
    raw = copy.deepcopy(EXPORT_SCHEMA)
    raw["ingest"]["drop"] = ["OBJECTID", "Officer Name"]
    extra = write_csv(tmp_path / "extra.csv", [*HEADER, "Officer Name"],
                      [[*r, "Sgt Canary"] for r in ROWS])
    frame = ingest(root, extra, raw).pull("accidents").frame
    assert "Officer Name" not in frame.columns and len(frame) == 4


def test_dirty_label_without_recode_is_refused_and_changes_nothing(root: Path,
                                                                   tmp_path: Path) -> None:
    wh = ingest(root, write_csv(tmp_path / "export.csv", HEADER, ROWS))
    before = fingerprint(wh)
    dirty = write_csv(tmp_path / "dirty.csv", HEADER, [*ROWS, ["905", "7O-79", "5", "rain",
                                                                 "minor"]])
    with pytest.raises(ValidationFailed) as err:
        wh.ingest(dirty, "accidents", root / "schemas" / "accidents.yaml")
    assert "expect_column_values_to_be_in_set on age (1 of 5 rows)" in str(err.value)
    assert "7O-79" not in str(err.value)
    assert fingerprint(wh) == before


def test_refused_first_ingest_leaves_no_catalog_entry_and_no_table(root: Path,
                                                                   tmp_path: Path) -> None:
    wh = Warehouse(Paths(root))
    dirty = write_csv(tmp_path / "dirty.csv", HEADER, [[*r[:3], "snow", r[4]] for r in ROWS])
    with pytest.raises(ValidationFailed):
        wh.ingest(dirty, "accidents", root / "schemas" / "accidents.yaml")
    assert [p.name for p in wh.paths.tables.iterdir()] == []
    assert not wh.paths.database.exists()


def test_file_with_its_own_row_id_column_is_refused_when_the_key_is_generated(
        root: Path, tmp_path: Path) -> None:
    wh = ingest(root, write_csv(tmp_path / "export.csv", HEADER, ROWS))
    before = fingerprint(wh)
    export = write_csv(tmp_path / "keyed.csv", ["row_id", *HEADER],
                       [[str(i), *r] for i, r in enumerate(ROWS)])
    with pytest.raises(SourceError, match="has a row_id column, but the schema generates it"):
        ingest(root, export)
    assert fingerprint(wh) == before


def test_two_source_columns_landing_on_one_declared_column_are_refused(
        root: Path, tmp_path: Path) -> None:
    export = write_csv(tmp_path / "export.csv", [*HEADER, "age"],
                       [[*r, "20-29"] for r in ROWS])
    with pytest.raises(SourceError, match=r"two source columns map to declared column\(s\) "
                                          r"age;"):
        ingest(root, export)


def test_semicolon_decimal_comma_latin1_csv(root: Path, tmp_path: Path) -> None:
    raw = copy.deepcopy(EXPORT_SCHEMA)
    raw["columns"][2]["categories"] = ["clear", "rain", "brouillard léger"]
    raw["ingest"]["csv"] = {"delimiter": ";", "decimal": ",", "encoding": "latin-1"}
    rows = [[r[0], r[1], r[2].replace(".", ","), r[3], r[4]] for r in ROWS]
    rows[3][3] = "brouillard léger"
    export = write_csv(tmp_path / "export.csv", HEADER, rows, delimiter=";",
                       encoding="latin-1")
    frame = ingest(root, export, raw).pull("accidents").frame
    assert frame["speed"].tolist() == [42.5, 80.0, 12.25, 0.0]
    assert frame["weather"].tolist() == ["clear", "rain", "clear", "brouillard léger"]


def test_latin1_file_without_declared_encoding_is_refused_as_not_utf8(
        root: Path, tmp_path: Path) -> None:
    raw = copy.deepcopy(EXPORT_SCHEMA)
    raw["columns"][2]["categories"] = ["clear", "rain", "brouillard léger"]
    rows = [list(r) for r in ROWS]
    rows[0][3] = "brouillard léger"
    export = write_csv(tmp_path / "export.csv", HEADER, rows, encoding="latin-1")
    with pytest.raises(SourceError, match="not valid UTF-8 text"):
        ingest(root, export, raw)


def test_csv_without_header_row_reads_declared_names(root: Path, tmp_path: Path) -> None:
    raw = copy.deepcopy(EXPORT_SCHEMA)
    raw["ingest"]["csv"] = {"header": False, "names": HEADER}
    frame = ingest(root, write_csv(tmp_path / "export.csv", None, ROWS), raw) \
        .pull("accidents").frame
    assert len(frame) == 4 and frame["age"].tolist()[0] == "10-19"


def test_xlsx_export_ingests_with_the_same_mapping(root: Path, tmp_path: Path) -> None:
    # Numbers as Excel numbers, an empty row at the end (formatting), a declared sheet.
    raw = copy.deepcopy(EXPORT_SCHEMA)
    raw["ingest"]["excel"] = {"sheet": "Accidents"}
    rows: list[list[Any]] = [[int(r[0]), r[1], float(r[2]), r[3], r[4]] for r in ROWS]
    book = tmp_path / "export.xlsx"
    write_xlsx(book, HEADER, [*rows, [None] * 5], sheet="Accidents")
    frame = ingest(root, book, raw).pull("accidents").frame
    assert frame[GENERATED_KEY].tolist() == [1, 2, 3, 4]
    assert frame["age"].tolist() == ["10-19", "20-29", "80-89", "20-29"]
    assert frame["speed"].tolist() == [42.5, 80.0, 12.25, 0.0]


def test_xlsx_and_csv_of_one_table_give_the_same_snapshot(root: Path,
                                                          tmp_path: Path) -> None:
    from_csv = ingest(root, write_csv(tmp_path / "e.csv", HEADER, ROWS)).entry("accidents")
    book = write_xlsx(tmp_path / "e.xlsx", HEADER,
                      [[int(r[0]), r[1], float(r[2]), r[3], r[4]] for r in ROWS])
    from_xlsx = ingest(root, book).entry("accidents")
    assert from_xlsx["snapshot_id"] == from_csv["snapshot_id"]


def test_xlsx_missing_declared_sheet_is_refused(root: Path, tmp_path: Path) -> None:
    raw = copy.deepcopy(EXPORT_SCHEMA)
    raw["ingest"]["excel"] = {"sheet": "Accidents"}
    book = write_xlsx(tmp_path / "export.xlsx", HEADER, ROWS, sheet="Other")
    with pytest.raises(SourceError, match="no sheet 'Accidents'"):
        ingest(root, book, raw)


def test_xlsx_undeclared_header_is_counted_not_named(root: Path, tmp_path: Path) -> None:
    book = write_xlsx(tmp_path / "export.xlsx", [*HEADER, "Officer Name"],
                      [[*r, "Sgt Canary"] for r in ROWS])
    with pytest.raises(ValidationFailed) as err:
        ingest(root, book)
    assert "1 undeclared column(s)" in str(err.value) and "Officer" not in str(err.value)


def test_xlsx_row_wider_than_header_is_refused_by_number_and_changes_nothing(
        root: Path, tmp_path: Path) -> None:
    wh = ingest(root, write_csv(tmp_path / "export.csv", HEADER, ROWS))
    before = fingerprint(wh)
    book = write_xlsx(tmp_path / "export.xlsx", HEADER,
                      [ROWS[0], [*ROWS[1], "Sgt Canary"], ROWS[2]])
    with pytest.raises(SourceError) as err:
        ingest(root, book)
    assert str(err.value).endswith("row 3 has more cells than the header (5)")
    assert "Canary" not in str(err.value)
    assert fingerprint(wh) == before  # the sheet's text copy is gone too


def test_ingest_cli_refusal_is_one_line_and_names_no_value(
        root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirty = write_csv(tmp_path / "dirty.csv", [*HEADER, "Officer Name"],
                      [[*r, "Sgt Canary"] for r in ROWS])
    code = cli.main(["ingest", str(dirty), "--dataset", "accidents",
                     "--schema", str(root / "schemas" / "accidents.yaml")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "Officer" not in err and "Canary" not in err


@pytest.mark.parametrize(("ingest_block", "message"), [
    ({"columns": {"Age Band": "nope"}}, "ingest.columns.Age Band: 'nope' is not a declared"),
    ({"columns": {"A": "age", "B": "age"}}, "ingest.columns.B: age is already mapped from 'A'"),
    ({"columns": {"A": "row_id"}}, "ingest.columns.A: row_id is generated at ingest"),
    ({"drop": ["A"], "columns": {"A": "age"}}, "ingest.drop: 'A' is both renamed and dropped"),
    ({"recode": {"age": {"x": "90-99"}}}, "ingest.recode.age.x: '90-99' is not a declared"),
    ({"recode": {"age": {"x": None}}}, "ingest.recode.age.x: null needs a nullable column"),
    ({"recode": {"speed": {"fast": 500}}}, "ingest.recode.speed.fast: 500 is not a number"),
    ({"csv": {"delimiter": "x"}}, "ingest.csv.delimiter: must be one of"),
    ({"csv": {"delimiter": ";", "decimal": ";"}}, "ingest.csv.decimal: must be '.' or ','"),
    ({"csv": {"decimal": ","}}, "ingest.csv.decimal: cannot be the delimiter too"),
    ({"csv": {"encoding": "cp1256"}}, "ingest.csv.encoding: must be one of"),
    ({"csv": {"names": ["a"]}}, "ingest.csv.names: only for a file without a header row"),
    ({"excel": {"sheet": 3}}, "ingest.excel.sheet: must be a sheet name"),
    ({"rename": {}}, "ingest.rename: unknown field"),
])
def test_malformed_ingest_block_is_a_schema_error_naming_the_field(
        ingest_block: dict[str, Any], message: str) -> None:
    raw = copy.deepcopy(EXPORT_SCHEMA) | {"ingest": ingest_block}
    with pytest.raises(SchemaError, match=message.replace("(", r"\(")):
        parse_schema(raw)


def test_declared_row_id_must_be_an_integer_identifier() -> None:
    raw = copy.deepcopy(EXPORT_SCHEMA)
    raw["columns"].append({"name": "row_id", "type": "integer", "role": "other",
                           "bounds": [1, 100], "bins": [1, 100]})
    with pytest.raises(SchemaError, match="row_key: a generated key needs row_id"):
        parse_schema(raw)


def test_warehouse_from_before_the_mapping_column_reads_and_upgrades_on_write(
        root: Path, tmp_path: Path) -> None:
    import duckdb

    export = write_csv(tmp_path / "export.csv", HEADER, ROWS)
    wh = ingest(root, export)
    con = duckdb.connect(str(wh.paths.database))
    con.execute("ALTER TABLE catalog DROP COLUMN ingest_mapping")  # as an older release wrote it
    con.close()
    assert wh.entry("accidents")["ingest_mapping"] == {}  # read-only: no column yet
    wh.ingest(export, "accidents", root / "schemas" / "accidents.yaml")
    assert wh.entry("accidents")["ingest_mapping"]["drop"] == ["OBJECTID"]


def test_utf16_csv_with_declared_encoding(root: Path, tmp_path: Path) -> None:
    raw = copy.deepcopy(EXPORT_SCHEMA)
    raw["ingest"]["csv"] = {"encoding": "utf-16"}
    export = write_csv(tmp_path / "export.csv", HEADER, ROWS, encoding="utf-16")
    frame = ingest(root, export, raw).pull("accidents").frame
    assert frame["age"].tolist() == ["10-19", "20-29", "80-89", "20-29"]


def test_export_saved_without_its_header_is_refused_as_such(root: Path,
                                                            tmp_path: Path) -> None:
    # The mapped headers count as names: a first line with none of them is data.
    with pytest.raises(SourceError, match="no header row: the first line holds none"):
        ingest(root, write_csv(tmp_path / "export.csv", None, ROWS))
