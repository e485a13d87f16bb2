"""``pulsesynth validate ID --file F --show-values``: a failing file's unexpected values,
with counts and a schema fragment to clean or accept them, on the CLI's stdout only —
never in logs or files — and nothing of the kind without the flag."""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_ingest_mapping import EXPORT_SCHEMA, HEADER, ROWS, schema_file, write_csv

from pulsesynth import cli
from pulsesynth.paths import Paths
from pulsesynth.schema import CategoricalColumn, parse_schema
from pulsesynth.steward_view import TOP, normalise
from pulsesynth.warehouse import Warehouse

#: Dirty values planted in the export, none of them declared anywhere.
DIRTY = {"age": [" 10 - 19", "80- 89", "Ten-19"], "weather": ["temple"],
         "speed": ["#########"]}


def plain_schema() -> dict[str, Any]:
    """The export's schema without recodes, and a nullable speed."""
    raw = copy.deepcopy(EXPORT_SCHEMA)
    del raw["ingest"]["recode"]
    raw["columns"][1]["nullable"] = True
    return raw


@pytest.fixture
def dirty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    root = tmp_path / "project"
    schema_file(root, plain_schema())
    monkeypatch.setenv("PULSESYNTH_ROOT", str(root))
    rows = [list(r) for r in ROWS] + [
        ["905", " 10 - 19", "#########", "temple", "minor"],
        ["906", "Ten-19", "12", "clear", "serious"],
    ]
    return root, write_csv(tmp_path / "dirty.csv", HEADER, rows)


def validate(file: Path, *flags: str) -> int:
    return cli.main(["validate", "accidents", "--file", str(file), *flags])


def test_show_values_prints_each_failing_columns_values_with_counts(
        dirty: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, file = dirty
    assert validate(file, "--show-values") == 1
    out = capsys.readouterr().out
    assert "  age: 4 row(s), 3 distinct value(s)\n    2  ' 10 - 19'\n    1  '80- 89'\n" \
           "    1  'Ten-19'\n" in out
    assert "  weather: 1 row(s), 1 distinct value(s)\n    1  'temple'\n" in out
    assert "  speed: 1 row(s), 1 distinct value(s)\n    1  '#########'\n" in out


def test_show_values_suggests_a_recode_for_labels_that_normalise_to_a_level(
        dirty: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, file = dirty
    validate(file, "--show-values")
    out = capsys.readouterr().out
    assert ("    ingest:\n      recode:\n        age: {' 10 - 19': 10-19, 80- 89: 80-89}\n"
            "        speed: {'#########': null}\n") in out
    assert ("    columns:\n    - name: age\n      categories: [10-19, 20-29, 80-89, Ten-19]\n"
            "    - name: weather\n      categories: [clear, rain, temple]\n") in out


def test_suggested_recode_applied_to_the_schema_lets_the_file_in(
        dirty: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root, file = dirty
    validate(file, "--show-values", "--json")
    values = {v["column"]: v for v in json.loads(capsys.readouterr().out)["values"]}
    raw = plain_schema()
    raw["ingest"]["recode"] = {c: v["suggest_recode"] for c, v in values.items()
                               if v["suggest_recode"]}
    for column in raw["columns"]:  # accept the rest as the codebook's levels
        if column["name"] in ("age", "weather"):
            column["categories"] += values[column["name"]]["suggest_levels"]
    path = schema_file(root, raw)
    Warehouse(Paths(root)).ingest(file, "accidents", path)
    frame = Warehouse(Paths(root)).pull("accidents").frame
    assert frame["age"].tolist() == ["10-19", "20-29", "80-89", "20-29", "10-19", "Ten-19"]
    assert frame["speed"].isna().tolist() == [False] * 4 + [True, False]


def test_without_the_flag_no_value_is_printed(
        dirty: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, file = dirty
    assert validate(file) == 1
    assert validate(file, "--json") == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err
    for value in [v for vs in DIRTY.values() for v in vs]:
        assert value not in text
    assert "expect_column_values_to_be_in_set on age (4 of 6 rows)" in captured.err
    assert "values" not in json.loads(captured.out)  # the only stdout: the --json report


def test_values_reach_no_log_record_and_no_file(
        dirty: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    root, file = dirty
    caplog.set_level(logging.DEBUG)
    assert validate(file, "--show-values") == 1
    assert validate(file, "--show-values", "--json") == 1
    assert "'temple'" in capsys.readouterr().out  # the steward saw them ...
    logged = "\n".join(r.getMessage() for r in caplog.records)
    written = [p for p in root.rglob("*") if p.is_file()]  # ... and nothing kept them
    for value in [v for vs in DIRTY.values() for v in vs]:
        assert value not in logged
        for path in written:
            assert value.encode() not in path.read_bytes(), path
    assert sorted(p.relative_to(root).as_posix() for p in written) == [
        "schemas/accidents.yaml", "warehouse/write.lock"]


def test_more_than_top_values_are_counted_in_an_and_more_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "project"
    schema_file(root, plain_schema())
    monkeypatch.setenv("PULSESYNTH_ROOT", str(root))
    rows = [list(r) for r in ROWS] + [[str(i), "20-29", "1", f"w{i:02d}", "minor"]
                                      for i in range(TOP + 5)]
    file = write_csv(tmp_path / "many.csv", HEADER, rows)
    assert validate(file, "--show-values") == 1
    out = capsys.readouterr().out
    assert f"  weather: {TOP + 5} row(s), {TOP + 5} distinct value(s)\n" in out
    assert "    1  'w19'\n    and 5 more value(s)\n" in out and "'w20'" not in out
    assert "(only the values listed above are in these fragments)" in out


def test_show_values_on_a_stored_table_that_no_longer_fits_its_schema(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Ingested under one codebook; the schema then drops a level: the steward sees which
    # stored labels fall outside.
    root = tmp_path / "project"
    path = schema_file(root, plain_schema())
    monkeypatch.setenv("PULSESYNTH_ROOT", str(root))
    rows = [r[:1] + ["20-29"] + r[2:] for r in ROWS]
    Warehouse(Paths(root)).ingest(write_csv(tmp_path / "ok.csv", HEADER, rows), "accidents",
                                  path)
    raw = plain_schema()
    raw["columns"][0]["categories"] = ["10-19", "80-89", "20 - 29"]
    schema_file(root, raw)
    assert cli.main(["validate", "accidents", "--show-values"]) == 1
    out = capsys.readouterr().out
    assert "  age: 4 row(s), 1 distinct value(s)\n    4  '20-29'\n" in out
    assert "        age: {20-29: 20 - 29}\n" in out


def test_integer_codes_are_suggested_as_integer_levels() -> None:
    from pulsesynth.steward_view import _suggest

    schema = parse_schema(copy.deepcopy(EXPORT_SCHEMA) | {"columns": [
        *EXPORT_SCHEMA["columns"],
        {"name": "code", "type": "categorical", "role": "other", "categories": [1, 2]}]})
    col = schema.column("code")
    assert isinstance(col, CategoricalColumn)
    got = _suggest(col, 3, 2, (("7", 2), ("n/a x", 1)))
    assert got.accept == (7,) and got.recode == {}


def test_normalised_form_strips_spaces_and_case() -> None:
    assert normalise(" 10 - 19") == normalise("10-19") == "10-19"
    assert normalise("Clear ") == normalise("cLeAr")


def test_date_column_shows_placeholders_and_out_of_bounds_dates_with_a_null_recode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Excel's ######### and a date after the bounds in a nullable date column: both
    # listed; only the unreadable one is suggested as missing (bounds are the codebook's).
    raw = plain_schema()
    raw["columns"].append({"name": "day", "type": "date", "role": "other", "nullable": True,
                           "bounds": ["2015-01-01", "2025-12-31"], "format": "%d/%m/%Y",
                           "components": ["month"]})
    root = tmp_path / "project"
    schema_file(root, raw)
    monkeypatch.setenv("PULSESYNTH_ROOT", str(root))
    days = ["01/02/2020", "#########", "31/12/2031", "#########"]
    file = write_csv(tmp_path / "dates.csv", [*HEADER, "day"],
                     [[*r[:1], "20-29", *r[2:], d] for r, d in zip(ROWS, days, strict=True)])
    assert validate(file, "--show-values") == 1
    out = capsys.readouterr().out
    assert ("  day: 3 row(s), 2 distinct value(s)\n    2  '#########'\n    1  '31/12/2031'\n"
            "    note: not a date in the declared format '%d/%m/%Y' (Excel writes ######### "
            "when a column is too narrow: widen it and export again); or recode it to null "
            "if the value is lost; outside the declared bounds: check the codebook's bounds "
            "(never the file's earliest or latest) or clean the file\n") in out
    assert "      recode:\n        day: {'#########': null}\n" in out


def test_typed_date_column_shows_out_of_bounds_dates_without_a_recode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # A Parquet DATE column: every value reads, so what is shown is outside the bounds.
    raw = plain_schema()
    raw["columns"].append({"name": "day", "type": "date", "role": "other",
                           "bounds": ["2015-01-01", "2025-12-31"], "components": ["month"]})
    root = tmp_path / "project"
    schema_file(root, raw)
    monkeypatch.setenv("PULSESYNTH_ROOT", str(root))
    frame = pd.DataFrame([[int(r[0]), "20-29", float(r[2]), r[3], r[4]] for r in ROWS],
                         columns=HEADER)
    frame["day"] = [dt.date(2020, 2, 1), dt.date(2031, 12, 31), dt.date(2014, 5, 6),
                    dt.date(2031, 12, 31)]
    file = tmp_path / "dates.parquet"
    frame.to_parquet(file, index=False)
    assert validate(file, "--show-values") == 1
    out = capsys.readouterr().out
    assert ("  day: 3 row(s), 2 distinct value(s)\n    2  '2031-12-31'\n    1  '2014-05-06'\n"
            "    note: outside the declared bounds: check the codebook's bounds (never the "
            "file's earliest or latest) or clean the file\n") in out
    assert "recode" not in out


#: 50 km/h on 6 of 10 rows, the other speeds once each.
SPEEDS = ["50"] * 6 + ["12", "80", "130", "7"]


def _clean_rows(speeds: list[str]) -> list[list[str]]:
    return [[str(900 + i), "20-29", s, "clear", "minor" if i % 2 else "serious"]
            for i, s in enumerate(speeds)]


@pytest.fixture
def speeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """(project root, its schema file, a clean export with :data:`SPEEDS`)."""
    root = tmp_path / "project"
    path = schema_file(root, plain_schema())
    monkeypatch.setenv("PULSESYNTH_ROOT", str(root))
    return root, path, write_csv(tmp_path / "speeds.csv", HEADER, _clean_rows(SPEEDS))


def test_show_values_lists_a_point_mass_with_its_bin_and_the_exact_values_fragment(
        speeds: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    # 50 km/h on 6 of 10 rows: the release would draw it across [50, 100).
    _, _, file = speeds
    assert validate(file, "--show-values") == 0
    out = capsys.readouterr().out
    assert ("  speed: 50.0 holds 60% of rows (6); the release draws it across its bin "
            "[50, 100)\n") in out
    assert "    columns:\n    - name: speed\n      exact_values: [50.0]\n" in out
    assert validate(file, "--show-values", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["point_masses"] == [{"column": "speed", "value": 50.0, "rows": 6,
                                     "share": 0.6, "bin": [50.0, 100.0]}]


def test_a_declared_exact_value_is_not_a_point_mass_and_nothing_shows_without_the_flag(
        speeds: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root, _, file = speeds
    raw = plain_schema()
    raw["columns"][1]["exact_values"] = [50]
    schema_file(root, raw)
    assert validate(file, "--show-values") == 0
    assert "point masses" not in capsys.readouterr().out
    schema_file(root, plain_schema())
    assert validate(file) == 0
    assert re.fullmatch(r"accidents: 10 rows pass all \d+ expectations\n",
                        capsys.readouterr().out)


def test_show_values_on_a_stored_table_lists_its_point_masses(
        speeds: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root, path, file = speeds
    Warehouse(Paths(root)).ingest(file, "accidents", path)
    assert cli.main(["validate", "accidents", "--show-values"]) == 0
    assert ("  speed: 50.0 holds 60% of rows (6); the release draws it across its bin "
            "[50, 100)\n") in capsys.readouterr().out


def test_an_integer_bin_holding_one_value_is_not_a_point_mass() -> None:
    from pulsesynth.schema import NumericColumn
    from pulsesynth.steward_view import _integers_in

    col = NumericColumn(name="hours", type="integer", role="other", bounds=(1, 99),
                        bins=(1, 40, 41, 99))
    assert _integers_in(col, 40, 41) == 1
    assert _integers_in(col, 1, 40) == 39
    assert _integers_in(col, 41, 99) == 59  # the last bin includes its upper edge
