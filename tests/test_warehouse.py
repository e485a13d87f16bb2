"""The embedded warehouse: real tables, idempotent build, catalog, snapshots."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pulsesynth import cli
from pulsesynth.command import cli_command
from pulsesynth.errors import SourceError
from pulsesynth.paths import Paths
from pulsesynth.sources import BUILTIN_SOURCES, crash_ids
from pulsesynth.warehouse import Warehouse, file_sha256

SOURCE_ROWS = {
    "census_income": 32_561 + 16_281,
    "traffic_accidents": 26_217,
    "patient_tests": 15_524,
    "taxi_trips": 10_000,
}


def test_catalog_lists_the_four_real_tables_with_source_row_counts(
    built_warehouse: Warehouse,
) -> None:
    entries = {e["id"]: e for e in built_warehouse.catalog()}
    assert {k: v["rows"] for k, v in entries.items()} == SOURCE_ROWS
    assert entries["patient_tests"]["classification"] == "secret"
    assert entries["census_income"]["target"] == "income"
    assert entries["traffic_accidents"]["privacy_unit"] == ["crash_id"]
    assert entries["census_income"]["licence"] == "CC BY 4.0"
    for entry in entries.values():
        assert Path(built_warehouse.paths.resolve(entry["table_path"])).suffix == ".parquet"


def test_catalog_list_json_cli(built_root: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PULSESYNTH_ROOT", str(built_root))
    assert cli.main(["catalog", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {e["id"]: e["rows"] for e in listed} == SOURCE_ROWS
    for entry in listed:
        assert {"id", "rows", "classification", "target"} <= set(entry)
    assert cli.main(["catalog", "show", "taxi_trips", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["target"] == "tip"
    assert cli.main(["catalog", "show", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_second_build_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path
    shutil.copytree(Path(__file__).resolve().parent.parent / "schemas", root / "schemas")
    wh = Warehouse(Paths(root))
    first = wh.build(["taxi_trips"])
    files = {p: (p.stat().st_mtime_ns, file_sha256(p)) for p in wh.paths.tables.iterdir()}
    catalog = wh.catalog()
    second = wh.build(["taxi_trips"])
    assert first[0].changed and not second[0].changed
    assert first[0].snapshot_id == second[0].snapshot_id
    assert {p: (p.stat().st_mtime_ns, file_sha256(p)) for p in wh.paths.tables.iterdir()} == files
    assert wh.catalog() == catalog


def test_pull_returns_frame_and_content_hash_snapshot(built_warehouse: Warehouse) -> None:
    snap = built_warehouse.pull("taxi_trips")
    path = built_warehouse.paths.resolve(built_warehouse.entry("taxi_trips")["table_path"])
    assert snap.snapshot_id == file_sha256(path)
    assert snap.snapshot_id == built_warehouse.pull("taxi_trips").snapshot_id
    assert len(snap.frame) == 10_000
    assert list(snap.frame.columns) == snap.schema.column_names


def test_identifiers_stay_in_the_warehouse_but_are_marked(built_warehouse: Warehouse) -> None:
    snap = built_warehouse.pull("patient_tests")
    for name in ("subject_id", "fake_first_name", "fake_last_name"):
        assert name in snap.frame.columns
        assert snap.schema.column(name).role == "identifier"
        assert not snap.schema.column(name).is_synthesized


def test_traffic_target_is_derived_by_the_documented_rule(built_warehouse: Warehouse) -> None:
    frame = built_warehouse.pull("traffic_accidents").frame
    sev, target = frame["injSeverity"], frame["serious_injury"]
    assert (target[sev.isin([3, 4])] == "yes").all()
    assert (target[sev.isin([0, 1, 2])] == "no").all()
    assert target[sev.isna() | sev.isin([5, 6])].isna().all()
    known = target.dropna()
    assert len(known) == 25_929  # DATASETS.md: 37% yes over 25,929 known rows
    assert 0.30 < (known == "yes").mean() < 0.45


def test_traffic_privacy_unit_is_the_crash_not_the_vehicle(built_warehouse: Warehouse) -> None:
    """crash_id is yearacc plus caseid's PSU:case: all vehicles of one crash share it."""
    snap = built_warehouse.pull("traffic_accidents")
    frame = snap.frame
    assert "crash_id" in frame.columns and frame["crash_id"].notna().all()
    # Computed independently of the builder: drop caseid's last (vehicle) part.
    psu_case = frame["caseid"].str.rsplit(":", n=1).str[0]
    crash = pd.DataFrame({"yearacc": frame["yearacc"], "psu_case": psu_case})
    # One crash_id per (yearacc, PSU:case) and one (yearacc, PSU:case) per crash_id.
    assert crash.groupby(frame["crash_id"]).nunique().max().to_dict() == {
        "yearacc": 1, "psu_case": 1}
    assert frame.groupby([crash["yearacc"], crash["psu_case"]])["crash_id"].nunique().max() == 1
    # Two vehicles of one real crash: 1997, PSU 2, case 3, vehicles 1 and 2.
    both = frame[(frame["yearacc"] == 1997) & frame["caseid"].isin(["2:3:1", "2:3:2"])]
    assert set(both["caseid"]) == {"2:3:1", "2:3:2"}
    assert set(both["crash_id"]) == {"1997:2:3"}
    # Units as the schema declares them (DATASETS.md: 14,596 crashes).
    n_units = frame.groupby(list(snap.schema.privacy_unit), dropna=False).ngroups
    assert n_units == len(crash.drop_duplicates()) == 14_596
    assert len(frame[["yearacc", "caseid"]].drop_duplicates()) == 20_670  # vehicles
    vehicles = frame.groupby("crash_id")["caseid"].nunique()
    assert int((vehicles > 1).sum()) == 5_901 and int(vehicles.max()) == 5


def test_crash_ids_refuse_a_caseid_without_three_parts() -> None:
    years = pd.Series([1997, 1997])
    assert crash_ids(years, pd.Series(["2:3:1", "2:3:2"])).tolist() == ["1997:2:3"] * 2
    with pytest.raises(SourceError, match="1 caseid value"):
        crash_ids(years, pd.Series(["2:3:1", "2:3"]))


def test_census_keeps_uci_partition_and_strips_test_label_period(
    built_warehouse: Warehouse,
) -> None:
    frame = built_warehouse.pull("census_income").frame
    assert frame["uci_split"].value_counts().to_dict() == {"train": 32_561, "test": 16_281}
    assert set(frame["income"].unique()) == {"<=50K", ">50K"}
    assert frame["record_id"].is_unique


def test_duckdb_views_query_the_parquet_tables(built_warehouse: Warehouse) -> None:
    with built_warehouse.connect(read_only=True) as con:
        count = con.execute('SELECT count(*) FROM "taxi_trips"').fetchone()[0]
    assert count == 10_000


def test_every_builtin_source_has_a_schema() -> None:
    schemas = Path(__file__).resolve().parent.parent / "schemas"
    for dataset in BUILTIN_SOURCES:
        assert (schemas / f"{dataset}.yaml").is_file()


def test_missing_warehouse_gives_a_clear_error(project_root: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["catalog", "list"]) == 2
    assert f"run `{cli_command()} warehouse build`" in capsys.readouterr().err
