"""Great Expectations validation: suites from the schema, value-free reports."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pulsesynth import cli
from pulsesynth.schema import load_schema
from pulsesynth.validation import suite_document, suite_path, validate
from pulsesynth.warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent
CANARY = "CANARY-7f3e9b"
CANARY_NUMBER = 987654321


@pytest.mark.parametrize("dataset", ["census_income", "traffic_accidents", "patient_tests",
                                     "taxi_trips"])
def test_committed_suite_is_in_sync_with_schema(dataset: str) -> None:
    schema = load_schema(REPO / "schemas" / f"{dataset}.yaml")
    committed = json.loads(suite_path(schema).read_text())
    assert committed == json.loads(json.dumps(suite_document(schema))), (
        "run `pulsesynth schemas sync` and commit schemas/*.suite.json"
    )


def test_real_tables_pass_their_declared_schema(built_warehouse: Warehouse) -> None:
    for entry in built_warehouse.catalog():
        snap = built_warehouse.pull(entry["id"])
        report = validate(snap.frame, snap.schema)
        assert report.success, report.to_dict()
        assert report.evaluated >= len(snap.schema.columns)


def _corrupt(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame.head(2000).copy()
    bad["workclass"] = bad["workclass"].astype(object)
    bad.loc[bad.index[3], "workclass"] = CANARY
    bad.loc[bad.index[4], "capital_gain"] = CANARY_NUMBER
    bad.loc[bad.index[5], "record_id"] = bad.loc[bad.index[6], "record_id"]
    return bad


def test_corrupted_copy_fails_without_leaking_cell_values(built_warehouse: Warehouse) -> None:
    snap = built_warehouse.pull("census_income")
    report = validate(_corrupt(snap.frame), snap.schema)
    assert not report.success
    failed = {(f.expectation, f.column) for f in report.failed}
    assert ("expect_column_values_to_be_in_set", "workclass") in failed
    assert ("expect_column_values_to_be_between", "capital_gain") in failed
    assert ("expect_column_values_to_be_unique", "record_id") in failed
    text = json.dumps(report.to_dict())
    assert CANARY not in text and str(CANARY_NUMBER) not in text
    in_set = next(f for f in report.failed if f.column == "workclass")
    assert in_set.unexpected_count == 1 and in_set.element_count == 2000


def test_gx_result_document_itself_holds_no_canary(built_warehouse: Warehouse) -> None:
    """The result GX builds under our result format carries counts, not values."""
    import great_expectations as gx

    from pulsesynth.validation import VALUE_FREE_RESULT_FORMAT, _context

    snap = built_warehouse.pull("census_income")
    ctx = _context()
    suite = gx.ExpectationSuite(name="canary-check")
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeInSet(
        column="workclass", value_set=list(snap.schema.column("workclass").categories)))
    asset = ctx.data_sources.add_pandas("canary-src").add_dataframe_asset("t")
    batch = asset.add_batch_definition_whole_dataframe("w").get_batch(
        batch_parameters={"dataframe": _corrupt(snap.frame)})
    result = batch.validate(suite, result_format=VALUE_FREE_RESULT_FORMAT)
    assert not result.success
    assert CANARY not in json.dumps(result.to_json_dict())
    # The GX default would have leaked it: this is why the format is pinned.
    leaky = batch.validate(suite, result_format="SUMMARY")
    assert CANARY in json.dumps(leaky.to_json_dict())


def test_validate_cli_succeeds_on_warehouse_and_fails_on_corrupted_file(
    built_root: Path, built_warehouse: Warehouse, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PULSESYNTH_ROOT", str(built_root))
    assert cli.main(["validate", "census_income", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "success": True, "failed": [], "rows": 48_842, "dataset": "census_income"}

    bad = tmp_path / "corrupted.csv"
    _corrupt(built_warehouse.pull("census_income").frame).to_csv(bad, index=False)
    assert cli.main(["validate", "census_income", "--file", str(bad), "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["success"] is False
    assert any(f["column"] == "workclass" for f in report["failed"])
    assert "expect_column_values_to_be_in_set on workclass (1 of 2000 rows)" in captured.err
    assert CANARY not in captured.out + captured.err
    assert str(CANARY_NUMBER) not in captured.out + captured.err
