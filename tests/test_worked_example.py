"""The worked example of README "Adding a dataset": the Dubai Pulse "Traffic Accidents"
export (``examples/dubai_traffic_accidents/``), a fake export through every steward path —
ingest through the declared mapping, a dirty copy refused without values, ``validate
--show-values``, the recoded schema that lets it in. The README's command lines run here
as printed (all but ``run``, which trains: ``test_worked_example_run.py``)."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import io
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from test_ingest_mapping import fingerprint

from pulsesynth import cli
from pulsesynth.paths import Paths
from pulsesynth.schema import load_schema, read_yaml
from pulsesynth.source_mapping import GENERATED_KEY
from pulsesynth.warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "dubai_traffic_accidents"
DATASET = "dubai_traffic_accidents"
COLUMNS = ["acd_date", "acd_time", "acd_location", "acd_type", "acd_cause", "weather",
           "road_status", "age", "gender", "injury_severities", "intoxication",
           "seat_belt_status", "year_manufactured", "insurance_company_name"]
#: What make_fixture.py plants in the dirty copy (none of it is in any declared domain).
DIRTY_VALUES = [" 10 - 19", "80- 89", "temple", "#########"]


def readme_commands() -> list[list[str]]:
    """The argument lists of the worked example's fenced block in README.md."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("### Worked example", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.splitlines() if line.strip()]


@dataclass(frozen=True)
class Step:
    """One README command as run: its exit code, output and the warehouse after it."""

    argv: list[str]
    code: int
    out: str
    err: str
    state: tuple
    frame: pd.DataFrame
    entry: dict[str, Any]  # the dataset's catalog entry
    types: dict[str, str]  # the stored table's Arrow type per column


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Step]]:
    """The README's commands before ``run``, as printed, in a fresh project root."""
    root = tmp_path_factory.mktemp("steward")
    shutil.copytree(EXAMPLE, root / "examples" / "dubai_traffic_accidents")
    steps = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PULSESYNTH_ROOT", str(root))
        mp.chdir(root)
        for argv in readme_commands():
            if argv[1] == "run":
                continue
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli.main(argv[1:])
            wh = Warehouse(Paths(root))
            entry = wh.entry(DATASET)
            stored = pq.read_schema(Paths(root).resolve(entry["table_path"]))
            steps.append(Step(argv, code, out.getvalue(), err.getvalue(), fingerprint(wh),
                              wh.pull(DATASET).frame, entry,
                              {f.name: str(f.type) for f in stored}))
        yield steps


def test_readme_lines_are_the_steward_commands_run_from_the_project_root() -> None:
    example = "examples/dubai_traffic_accidents/"
    assert [argv[:3] for argv in readme_commands()] == [
        [".venv/bin/pulsesynth", "ingest", f"{example}accidents_export.csv"],
        [".venv/bin/pulsesynth", "ingest", f"{example}accidents_export_dirty.csv"],
        [".venv/bin/pulsesynth", "validate", DATASET],
        [".venv/bin/pulsesynth", "ingest", f"{example}accidents_export_dirty.csv"],
        [".venv/bin/pulsesynth", "run", DATASET],
    ]
    for argv in readme_commands():
        if "--schema" in argv or "--file" in argv:
            path = argv[argv.index("--schema" if "--schema" in argv else "--file") + 1]
            assert (REPO / path).is_file(), path


def test_readme_lines_exit_as_documented(walkthrough: list[Step]) -> None:
    assert [s.code for s in walkthrough] == [0, 1, 1, 0]


def test_clean_export_ingests_renamed_with_the_index_dropped_and_a_generated_key(
        walkthrough: list[Step]) -> None:
    clean = walkthrough[0]
    assert clean.out.startswith(f"{DATASET}: ingested 800 rows, snapshot ")
    assert list(clean.frame.columns) == [GENERATED_KEY, *COLUMNS]
    assert clean.frame[GENERATED_KEY].tolist() == list(range(1, 801))
    first = clean.frame.iloc[0]
    assert (first["acd_date"], first["acd_time"], first["age"], first["year_manufactured"],
            first["insurance_company_name"]) == (
        dt.date(2025, 5, 16), dt.time(18, 17), "50-59", 2011, "Fixture Insurer B")


def test_dates_and_times_are_stored_as_date_and_time(walkthrough: list[Step]) -> None:
    clean = walkthrough[0]
    assert (clean.types["acd_date"], clean.types["acd_time"], clean.types[GENERATED_KEY]) \
        == ("date32[day]", "time64[us]", "int64")
    assert clean.entry["ingest_mapping"]["drop"] == ["Unnamed: 0"]
    assert clean.entry["ingest_mapping"]["columns"]["ACD_DATE"] == "acd_date"


def test_dirty_export_is_refused_with_columns_and_counts_and_changes_nothing(
        walkthrough: list[Step]) -> None:
    clean, dirty = walkthrough[0], walkthrough[1]
    assert dirty.err == (
        f"error: {DATASET}: 3 expectation(s) failed:\n"
        "  - expect_column_values_to_parse_as_declared on acd_date (4 of 800 rows)\n"
        "  - expect_column_values_to_be_in_set on acd_type (1 of 800 rows)\n"
        "  - expect_column_values_to_be_in_set on age (8 of 800 rows)\n")
    assert dirty.out == ""
    assert dirty.state == clean.state


def test_show_values_lists_the_dirty_labels_with_counts_and_suggests_the_age_recode(
        walkthrough: list[Step]) -> None:
    shown = walkthrough[2]
    assert ("  acd_date: 4 row(s), 1 distinct value(s)\n"
            "    4  '#########'\n"
            "    note: not a date in the declared format '%d/%m/%Y' (Excel writes ######### "
            "when a column is too narrow: widen it and export again); or declare the column "
            "nullable and recode it to null if the value is lost\n"
            "  acd_type: 1 row(s), 1 distinct value(s)\n"
            "    1  'temple'\n"
            "  age: 8 row(s), 2 distinct value(s)\n"
            "    5  ' 10 - 19'\n"
            "    3  '80- 89'\n") in shown.out
    assert ("suggestion: clean them at ingest — add to the schema's ingest: block:\n"
            "    ingest:\n"
            "      recode:\n"
            "        age: {' 10 - 19': 10-19, 80- 89: 80-89}\n") in shown.out
    assert ("    - name: acd_type\n"
            "      categories: [collision, run-over, rollover, fall, fire, other, temple]\n"
            ) in shown.out
    assert shown.state == walkthrough[0].state  # looking stores nothing


def test_recoded_schema_is_the_example_plus_the_suggested_recode_and_two_decisions(
        walkthrough: list[Step]) -> None:
    base: dict[str, Any] = read_yaml(EXAMPLE / "dubai_traffic_accidents.yaml")
    recoded: dict[str, Any] = read_yaml(EXAMPLE / "dubai_traffic_accidents.recoded.yaml")
    suggested = yaml.safe_load("\n".join(
        line[4:] for line in walkthrough[2].out.split("ingest: block:\n", 1)[1]
        .split("suggestion:", 1)[0].splitlines()))
    recode = recoded["ingest"].pop("recode")
    assert recode == suggested["ingest"]["recode"] | {"acd_type": {"temple": "other"},
                                                      "acd_date": {"#########": None}}
    assert recoded["columns"][0].pop("nullable") is True
    assert recoded == base


def test_dirty_export_ingests_under_the_recoded_schema_changing_only_the_dirty_cells(
        walkthrough: list[Step]) -> None:
    cleaned = walkthrough[3]
    assert cleaned.out.startswith(f"{DATASET}: ingested 800 rows, snapshot ")
    # Expected: the clean table with each dirty cell of the file replaced by its recode.
    read = {"dtype": str, "keep_default_na": False}
    source = pd.read_csv(EXAMPLE / "accidents_export.csv", **read)
    dirty = pd.read_csv(EXAMPLE / "accidents_export_dirty.csv", **read)
    recoded = {" 10 - 19": "10-19", "80- 89": "80-89", "temple": "other", "#########": None}
    expected = {c: [None if pd.isna(v) else v for v in walkthrough[0].frame[c]]
                for c in COLUMNS}
    for header in source.columns:
        for row in source.index[source[header] != dirty[header]]:
            expected[header.lower()][row] = recoded[dirty.at[row, header]]
    assert {c: [None if pd.isna(v) else v for v in cleaned.frame[c]] for c in COLUMNS} \
        == expected
    assert int(cleaned.frame["acd_date"].isna().sum()) == 4
    assert cleaned.types["acd_date"] == "date32[day]"


def test_no_command_but_show_values_prints_a_dirty_value(walkthrough: list[Step]) -> None:
    for step in walkthrough:
        if "--show-values" in step.argv:
            continue
        for value in DIRTY_VALUES:
            assert value not in step.out + step.err, (step.argv[1], value)


def test_example_schema_makes_each_row_its_own_privacy_unit() -> None:
    schema = load_schema(EXAMPLE / "dubai_traffic_accidents.yaml")
    assert schema.row_key == (GENERATED_KEY,) and schema.privacy_unit == ()
    assert schema.privacy.max_rows_per_unit == 1
    assert schema.target == "injury_severities"
    # The temporal columns are modelled by their declared components; the insurer (free
    # text) and the generated key are never synthesized.
    assert [c.name for c in schema.synthesized_columns] == [
        "acd_date.year", "acd_date.month", "acd_date.weekday", "acd_time.hour",
        *COLUMNS[2:-1]]


def test_fixture_files_are_what_the_committed_script_writes() -> None:
    spec = importlib.util.spec_from_file_location("make_fixture", EXAMPLE / "make_fixture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    clean, dirty = module.make()
    assert (EXAMPLE / "accidents_export.csv").read_text(encoding="utf-8") == clean
    assert (EXAMPLE / "accidents_export_dirty.csv").read_text(encoding="utf-8") == dirty
    assert clean.splitlines()[0].split(",")[:3] == ["Unnamed: 0", "ACD_DATE", "ACD_TIME"]
    cells = [(a, b) for ra, rb in zip(clean.splitlines(), dirty.splitlines(), strict=True)
             for a, b in zip(ra.split(","), rb.split(","), strict=True) if a != b]
    assert sorted(b for _, b in cells) == sorted(
        [" 10 - 19"] * 5 + ["80- 89"] * 3 + ["temple"] + ["#########"] * 4)
