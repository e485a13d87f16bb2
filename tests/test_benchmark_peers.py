"""The peers benchmark's plumbing (benchmarks/peers_bench.py): levels out to the peers'
runner and back through the product's decoder, and the resumable results file. Needs
neither the peers venv nor a fit."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import peers_bench
from benchmarks.peers_bench import (
    ResultsFile,
    capped_rows,
    decode_levels,
    export_levels,
    majority_scores,
    pending,
    write_input,
)
from pulsesynth.budget import BudgetSplit
from pulsesynth.dp import GroupPrivacy
from pulsesynth.encoding import TableEncoder
from pulsesynth.schema import load_schema

ROOT = Path(__file__).resolve().parent.parent


def _random_levels(schema, n: int, seed: int) -> np.ndarray:
    widths = [b.width for b in TableEncoder(schema).block_specs]
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.integers(0, w, n) for w in widths]).astype(np.int64)


def _load_runner():
    """benchmarks/peers/runner.py as a module (it imports only numpy and pandas at load;
    its thread settings are undone afterwards)."""
    saved = dict(os.environ)
    try:
        spec = importlib.util.spec_from_file_location("peers_runner", peers_bench.RUNNER)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return module


def test_levels_roundtrip_through_decode() -> None:
    """encode(decode(levels)) == levels for every modelled cell (numeric values drawn
    inside their public bin land back in it; missing levels stay missing)."""
    schema = load_schema(ROOT / "schemas" / "taxi_trips.yaml")
    levels = _random_levels(schema, 400, seed=1)
    frame = decode_levels(levels, schema, seed=3)
    back, widths, dropped = export_levels(frame, schema)
    assert dropped == 0
    assert list(back.columns) == [b.name for b in TableEncoder(schema).block_specs]
    assert widths == {b.name: b.width for b in TableEncoder(schema).block_specs}
    np.testing.assert_array_equal(back.to_numpy(), levels)


def test_relations_applied_once_then_stable() -> None:
    """With codebook relations (census: derived education_num, husband -> male) the
    decoded table obeys them, and a second round trip changes nothing."""
    from pulsesynth.relations import violations

    schema = load_schema(ROOT / "schemas" / "census_income.yaml")
    frame = decode_levels(_random_levels(schema, 300, seed=2), schema, seed=0)
    assert "education_num" in frame.columns
    assert violations(frame, schema.relations) == 0
    once, _, dropped = export_levels(frame, schema)
    assert dropped == 0
    twice, _, _ = export_levels(decode_levels(once, schema, seed=5), schema)
    pd.testing.assert_frame_equal(once, twice)


def test_unobserved_rows_dropped_and_counted() -> None:
    schema = load_schema(ROOT / "schemas" / "taxi_trips.yaml")
    frame = decode_levels(_random_levels(schema, 50, seed=4), schema, seed=0)
    column = next(c for c in schema.synthesized_columns
                  if c.type == "categorical" and not c.nullable)
    frame[column.name] = frame[column.name].astype(object)
    frame.loc[[3, 7], column.name] = "not-a-declared-category"
    levels, _, dropped = export_levels(frame, schema)
    assert dropped == 2 and len(levels) == 48
    assert (levels.to_numpy() >= 0).all()


def test_runner_reads_what_the_bench_writes(tmp_path: Path) -> None:
    schema = load_schema(ROOT / "schemas" / "taxi_trips.yaml")
    levels, widths, _ = export_levels(decode_levels(_random_levels(schema, 60, 6), schema, 0),
                                      schema)
    write_input(tmp_path, levels, widths)
    read_levels, read_widths = _load_runner().read_input(tmp_path)
    assert read_widths == widths
    pd.testing.assert_frame_equal(read_levels, levels, check_dtype=False)


def test_majority_reference() -> None:
    schema = load_schema(ROOT / "schemas" / "taxi_trips.yaml")
    target = schema.column(schema.target)
    train = decode_levels(_random_levels(schema, 100, 8), schema, 0)
    test = train.copy()
    train[target.name] = target.categories[1]
    scores = majority_scores(schema, train, test)
    assert scores["auc"] == 0.5 and scores["tv1"] is None
    assert scores["accuracy"] == np.mean(test[target.name] == target.categories[1])


def _row(table: str, system: str, seed: int) -> dict:
    return {"table": table, "system": system, "seed": seed, "accuracy": 0.8, "auc": 0.7,
            "tv1": 0.1, "tv2": 0.2, "fit_seconds": 1.0, "epsilon": 1.0, "fit_rows": 10}


def test_peers_fit_on_rows_capped_per_unit_like_the_product() -> None:
    schema = load_schema(ROOT / "schemas" / "patient_tests.yaml")
    assert schema.privacy.max_rows_per_unit == 1
    train = decode_levels(_random_levels(schema, 40, 3), schema, 0)
    train[list(schema.row_key)[0]] = range(40)
    train[schema.privacy_unit[0]] = [i // 4 for i in range(40)]  # 10 people, 4 tests each
    capped = capped_rows(train, schema)
    assert len(capped) == 10
    assert sorted(capped[schema.privacy_unit[0]]) == list(range(10))
    assert capped_rows(train, schema).equals(capped)  # public salt: the same rows every run


def test_peer_row_from_before_the_unit_cap_is_measured_again(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path / "peers.json")
    stale = _row("patient_tests", "aim", 0)
    del stale["fit_rows"]
    results.add(stale)
    reference = _row("patient_tests", "real", 0)
    del reference["fit_rows"]
    results.add(reference)
    assert not results.done("patient_tests", "aim", 0)
    assert results.done("patient_tests", "real", 0)


def test_peer_row_fitted_on_other_rows_per_unit_than_the_product_is_measured_again(
        tmp_path: Path) -> None:
    """german_health's peer rows fitted on 5 rows a person are stale once the product
    trains on one; a row without the field is from a table of one-row units."""
    results = ResultsFile(tmp_path / "peers.json")
    results.add(_row("german_health", "aim", 0) | {"rows_per_unit": 5})
    results.add(_row("german_health", "real", 0))
    results.add(_row("diamonds", "aim", 0))
    assert not results.done("german_health", "aim", 0, 1)
    assert results.done("german_health", "aim", 0, 5) and results.done("german_health", "aim", 0)
    assert results.done("german_health", "real", 0, 1)
    assert results.done("diamonds", "aim", 0, 1)
    assert list(pending(results, ["german_health", "diamonds"], ["aim", "real"], [0])) == [
        ("german_health", "aim", 0), ("diamonds", "real", 0)]


def test_results_file_resumes(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    results = ResultsFile(path)
    results.settings["epsilon"] = 1.0
    results.add(_row("census_income", "aim", 0))
    results.add(_row("census_income", "real", 0))
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file

    resumed = ResultsFile(path)
    assert resumed.settings == {"epsilon": 1.0}
    assert resumed.done("census_income", "aim", 0)
    jobs = list(pending(resumed, ["census_income", "diamonds"], ["aim", "real", "majority"],
                        [0, 1]))
    assert jobs == [("census_income", "aim", 1), ("census_income", "majority", 0),
                    ("diamonds", "aim", 0), ("diamonds", "aim", 1), ("diamonds", "real", 0),
                    ("diamonds", "majority", 0)]
    # Re-measuring a row replaces it instead of duplicating it.
    resumed.add(dict(_row("census_income", "aim", 0), auc=0.9))
    rows = json.loads(path.read_text())["rows"]
    assert len(rows) == 2
    assert [r["auc"] for r in rows if r["system"] == "aim"] == [0.9]

    fresh = ResultsFile(path, fresh=True)
    assert fresh.rows == [] and not fresh.done("census_income", "aim", 0)
    assert len(list(pending(fresh, ["census_income"], ["aim"], [0, 1]))) == 2


def test_a_run_at_another_epsilon_refuses_the_epsilon_1_results_file(capsys) -> None:
    for argv in (["--epsilon", "0.5"], ["--at-table-budget"]):
        with pytest.raises(SystemExit) as exc:
            peers_bench.main(argv + ["--systems", "majority", "--tables", "diamonds"])
        assert exc.value.code == 2
        assert "peers.json holds the ε = 1.0 comparison" in capsys.readouterr().err


def test_table_budget_is_what_the_product_table_costs() -> None:
    split = BudgetSplit.of(1.0)
    assert split.table == split.training + split.row_count
    assert split.table == 1.0 - split.release_report


def test_peer_fits_the_products_rows_per_unit_and_samples_its_release_size(
        tmp_path: Path, monkeypatch) -> None:
    """On german_health (a person keeps up to 5 rows) the product trains on one row per
    person: measure() fits the peer on those rows at the per-unit ε it is given (group
    privacy over the rows kept: none), has it sample as many rows as the product releases
    (the rows capped at the schema's 5) and records the per-unit ε in the row."""
    calls: list[tuple[float, float, int | None]] = []

    def runner(python, input_dir, output_dir, system, seed, mbi_patch, epsilon, delta,
               rows=None):
        calls.append((epsilon, delta, rows))
        levels = pd.read_csv(input_dir / "train_levels.csv")
        return levels, {"mbi_rounding_patch": True, "sample_seconds": 0.0,
                        "fit_seconds": 0.0, "epsilon": epsilon, "delta": delta,
                        "stopped_early": False, "measurements": 0, "rounds_setting": 176}

    monkeypatch.setattr(peers_bench, "run_peer", runner)
    schema = load_schema(ROOT / "benchmarks" / "suite" / "schemas" / "german_health.yaml")
    frame = decode_levels(_random_levels(schema, 60, 1), schema, 0)
    frame[schema.privacy_unit[0]] = [i // 5 for i in range(60)]
    frame[list(schema.row_key)[0]] = range(60)
    row, _ = peers_bench.measure("german_health", "aim", 0, (frame, frame, schema),
                                 tmp_path, Path("python"), epsilon=0.88)
    assert peers_bench.fit_rows_per_unit(schema) == 1 < schema.privacy.max_rows_per_unit
    group = GroupPrivacy(1, 0.88, peers_bench.DELTA)
    assert calls == [(0.88, peers_bench.DELTA, 60)]
    assert (row["fit_rows"], row["rows_per_unit"]) == (12, 1)
    assert row["epsilon"] == group.unit_epsilon(group.row_epsilon) == 0.88
    # The table's own δ and AIM's rounds are recorded in its row.
    assert row["row_delta"] == group.row_delta
    assert row["rounds_setting"] == 176


def test_recorded_seeds_are_every_peer_seed_the_file_holds(tmp_path: Path) -> None:
    """A run adding seeds 7-9 to a file of seeds 0-6 records 0-9; references (seed 0
    only) do not count."""
    results = ResultsFile(tmp_path / "peers.json")
    for seed in range(7):
        results.add(_row("diamonds", "aim", seed))
    results.add(_row("diamonds", "real", 0))
    assert results.seeds([7, 8, 9]) == list(range(10))
    assert results.seeds() == list(range(7))
    assert ResultsFile(tmp_path / "empty.json").seeds([2, 1]) == [1, 2]
