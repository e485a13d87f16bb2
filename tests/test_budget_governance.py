"""A budget is a promise about the people in a table: editing or re-ingesting a schema
cannot raise it; only a steward's recorded decision changes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pulsesynth import cli, pipeline
from pulsesynth.governance.db import audit_events
from pulsesynth.governance.errors import BudgetChanged
from pulsesynth.governance.ledger import Ledger
from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse, file_sha256


@pytest.fixture
def taxi(project_root: Path) -> Paths:
    paths = Paths(project_root)
    Warehouse(paths).build(["taxi_trips"])
    return paths


def _charge_once(paths: Paths, tmp_path: Path, name: str = "r1") -> dict:
    run = tmp_path / name
    pipeline.start_run("taxi_trips", run, max_rows=500, paths=paths)
    return pipeline.charge(run, paths=paths)


def _schema_with(paths: Paths, where: Path, **privacy) -> Path:
    raw = yaml.safe_load((paths.schemas / "taxi_trips.yaml").read_text())
    raw["privacy"].update(privacy)
    where.write_text(yaml.safe_dump(raw, sort_keys=False))
    return where


def test_reingest_with_a_raised_budget_is_refused_and_changes_nothing(
        taxi: Paths, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _charge_once(taxi, tmp_path)
    table = taxi.resolve(Warehouse(taxi).entry("taxi_trips")["table_path"])
    before = file_sha256(table)
    export = tmp_path / "taxi.parquet"
    export.write_bytes(table.read_bytes())
    bigger = _schema_with(taxi, tmp_path / "taxi_trips.yaml", lifetime_epsilon=50.0)
    code = cli.main(["ingest", str(export), "--dataset", "taxi_trips", "--schema",
                     str(bigger)])
    err = capsys.readouterr().err
    assert code == 2 and "lifetime_epsilon 10.0 → 50.0" in err
    assert "pulsesynth budget set taxi_trips" in err and err.count("\n") == 1
    assert file_sha256(table) == before
    assert Ledger(taxi).governed("taxi_trips").lifetime_epsilon == 10.0


def test_an_edited_schema_file_cannot_raise_the_budget(taxi: Paths, tmp_path: Path) -> None:
    _charge_once(taxi, tmp_path)
    _schema_with(taxi, taxi.schemas / "taxi_trips.yaml", lifetime_epsilon=50.0)
    run = tmp_path / "r2"
    pipeline.start_run("taxi_trips", run, max_rows=500, paths=taxi)
    with pytest.raises(BudgetChanged, match="differs from the governed one"):
        pipeline.charge(run, paths=taxi)
    assert len(Ledger(taxi).charges("taxi_trips")) == 1


def test_a_steward_changes_the_budget_on_the_record(
        taxi: Paths, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _charge_once(taxi, tmp_path)
    assert cli.main(["budget", "set", "taxi_trips", "--lifetime", "20", "--steward",
                     "alice", "--note", "board decision 12/2026"]) == 0
    [event] = audit_events(taxi, "budget.set")
    detail = event["detail"]
    assert (event["actor"], detail["raised"], detail["spent_epsilon"]) == ("alice", True, 1.0)
    assert detail["after"]["lifetime_epsilon"] == 20.0
    # the schema must now declare the same values, and runs charge against them
    _schema_with(taxi, taxi.schemas / "taxi_trips.yaml", lifetime_epsilon=20.0)
    _charge_once(taxi, tmp_path, "r2")
    capsys.readouterr()
    assert cli.main(["budget", "show", "taxi_trips", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["lifetime_epsilon"], row["spent_epsilon"], row["retrains_left"]) == (
        20.0, 2.0, 18)
    assert cli.main(["budget", "set", "taxi_trips", "--lifetime", "5", "--steward", "bob",
                     "--note", "tightened"]) == 0
    assert audit_events(taxi, "budget.set")[-1]["detail"]["raised"] is False
    assert cli.main(["budget", "set", "taxi_trips", "--steward", "bob", "--note", "x"]) == 2
    assert cli.main(["budget", "set", "taxi_trips", "--lifetime", "-1", "--steward", "bob",
                     "--note", "x"]) == 2


def test_a_budget_decision_above_the_public_ceiling_is_refused_from_python(
        tmp_path: Path) -> None:
    """The library refuses what the CLI refuses: no lifetime ε above the ceiling."""
    from pulsesynth.budget import MAX_LIFETIME_EPSILON
    from pulsesynth.governance.errors import LedgerError
    from pulsesynth.governance.ledger import Budget, Ledger

    ledger = Ledger(Paths(tmp_path))
    with pytest.raises(LedgerError, match="above the ceiling 100"):
        ledger.set_budget("toy", "alice", "raise", lifetime_epsilon=MAX_LIFETIME_EPSILON * 10,
                          declared=Budget(5.0, 1.0, ("row",), 1))
    assert ledger.governed("toy") is None


def test_python_reingest_before_any_run_cannot_raise_the_budget_and_records_nothing(
        taxi: Paths, tmp_path: Path) -> None:
    """Before its first use the catalogued schema's block stands for the governed one; the
    library refuses a raise exactly as the CLI does, and a refusal writes no budget row."""
    table = taxi.resolve(Warehouse(taxi).entry("taxi_trips")["table_path"])
    export = tmp_path / "taxi.parquet"
    export.write_bytes(table.read_bytes())
    bigger = _schema_with(taxi, tmp_path / "taxi_trips.yaml", lifetime_epsilon=50.0)
    with pytest.raises(BudgetChanged, match=r"lifetime_epsilon 10.0 → 50.0"):
        pipeline.ingest(export, "taxi_trips", bigger, paths=taxi)
    assert Ledger(taxi).governed("taxi_trips") is None
    assert audit_events(taxi) == []
    # The same declaration goes in, and its block is recorded as the governed one.
    same = _schema_with(taxi, tmp_path / "same.yaml", lifetime_epsilon=10.0)
    assert pipeline.ingest(export, "taxi_trips", same, paths=taxi).rows == len(
        Warehouse(taxi).pull("taxi_trips").frame)
    assert Ledger(taxi).governed("taxi_trips").lifetime_epsilon == 10.0
