"""End to end with date, time and datetime columns: a CSV export ingests typed, validates,
trains at ε = 1, samples valid values inside the bounds with the right Parquet types, and
utility and the audit read the temporal columns by their components."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from test_temporal import CRASHES, crash_text

from pulsesynth import pipeline
from pulsesynth.artifacts import RunDir
from pulsesynth.paths import Paths
from pulsesynth.utility import evaluate_utility, marginal_tv
from pulsesynth.warehouse import Warehouse


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Paths]:
    """A run trained at ε = 1 (1 epoch) on 400 crashes ingested from CSV, and its sample."""
    tmp = tmp_path_factory.mktemp("temporal")
    paths = Paths(tmp / "project")
    (paths.root / "schemas").mkdir(parents=True)
    schema_path = paths.root / "schemas" / "crashes.yaml"
    schema_path.write_text(yaml.safe_dump(CRASHES, sort_keys=False))
    source = tmp / "crashes.csv"
    crash_text(400, seed=7).to_csv(source, index=False)
    Warehouse(paths).ingest(source, "crashes", schema_path)
    run_dir = tmp / "run"
    pipeline.start_run("crashes", run_dir, paths=paths)
    report = pipeline.train(run_dir, epsilon=1.0, epochs=1, paths=paths)
    assert report["charge_id"] is not None
    return run_dir, pipeline.sample(run_dir, paths=paths), paths


def test_sampled_table_has_date_time_and_timestamp_types(sampled) -> None:
    _, table, _ = sampled
    arrow = pq.read_schema(table)
    assert arrow.names == ["acd_date", "acd_time", "reported", "severe"]
    assert [str(arrow.field(n).type) for n in arrow.names[:3]] == [
        "date32[day]", "time64[us]", "timestamp[us]"]
    described = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{table}')").fetchall()
    assert [row[1] for row in described][:3] == ["DATE", "TIME", "TIMESTAMP"]


def test_dp_marginals_are_measured_on_the_components(sampled) -> None:
    run_dir, _, _ = sampled
    marginals = RunDir(run_dir).candidate.read_privacy()["marginals"]
    assert marginals is not None and marginals["columns"] == [
        ["acd_date.year", "severe"], ["acd_date.month", "severe"],
        ["acd_date.weekday", "severe"], ["acd_time.hour", "severe"],
        ["reported.year", "severe"], ["reported.day", "severe"],
        ["reported.hour", "severe"], ["reported.minute", "severe"]]


def test_every_sampled_value_is_valid_and_inside_the_bounds(sampled) -> None:
    _, table, _ = sampled
    frame = pq.read_table(table).to_pandas()
    assert len(frame) > 100
    assert all(isinstance(v, dt.date) and dt.date(2015, 1, 1) <= v <= dt.date(2025, 12, 31)
               for v in frame["acd_date"])
    times = frame["acd_time"].dropna()
    assert all(isinstance(v, dt.time) and v <= dt.time(23, 59) for v in times)
    reported = frame["reported"]
    assert reported.notna().all()
    assert reported.between(pd.Timestamp("2015-01-01"),
                            pd.Timestamp("2025-12-31 23:59:59")).all()


def test_utility_reads_temporal_columns_by_their_components(sampled) -> None:
    run_dir, _, paths = sampled
    data = pipeline.run_data(run_dir, paths)
    synthetic = pipeline.synthetic_table(run_dir, data.schema)
    result = evaluate_utility(data.schema, data.train, data.holdout, synthetic,
                              classifiers=("logreg",))
    shapes = result["column_shapes"]["columns"]
    assert list(shapes) == ["acd_date.year", "acd_date.month", "acd_date.weekday",
                            "acd_time.hour", "reported.year", "reported.day",
                            "reported.hour", "reported.minute", "severe"]
    assert all(0.0 <= score <= 1.0 for score in shapes.values())
    assert result["tstr"] is not None and 0.0 <= result["tstr"]["logreg"]["accuracy"] <= 1.0
    assert 0.0 <= marginal_tv(data.schema, synthetic, data.holdout) <= 1.0


@pytest.mark.slow
def test_audit_reads_temporal_columns_by_their_components(sampled) -> None:
    """The whole audit (shadow models, table attacks, distances, Anonymeter-style risks)
    runs on the run's temporal columns; quasi-identifiers include their components."""
    run_dir, _, paths = sampled
    result = pipeline.audit(run_dir, n_shadows=1, paths=paths)
    attacks = result["membership_attacks"]
    assert {"model_mia", "synthetic_mia", "domias"} <= set(attacks)
    assert all(0.0 <= a["accuracy"] <= 1.0 for a in attacks.values())
    assert [r["column"] for r in result["attribute_inference"]] == ["severe"]
    assert result["gate"]["label"] in ("open", "confidential", "blocked")
