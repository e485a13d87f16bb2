"""The Prefect layer: the nightly flow end to end on small slices, failure isolation,
content-keyed reuse (no second charge), idempotent charges, and the Dask runner.

One flow run trains two datasets (taxi_trips, patient_tests; 1000-row slices, one epoch)
next to a third whose schema was tightened after ingest so that its validation fails.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import flow

import flows  # noqa: F401  (before prefect: makes Prefect's home when run from the repo)
import pulsesynth
from flows.nightly import format_table, run_nightly
from flows.testing import close_test_harness, shared_test_harness
from pulsesynth import pipeline, runs
from pulsesynth.governance.ledger import Ledger
from pulsesynth.governance.record import list_releases
from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse
from tasks.synthesis import charge_ledger, plan_run, start_run

REPO = Path(__file__).resolve().parent.parent
GOOD = ["taxi_trips", "patient_tests"]
BROKEN = "broken_taxi"
PARAMS: dict[str, Any] = {"max_rows": 1000, "epochs": 1}


@pytest.fixture(scope="session")
def harness() -> Iterator[str]:
    yield shared_test_harness()
    close_test_harness()


def make_root(root: Path, broken: bool = True) -> Path:
    shutil.copytree(REPO / "schemas", root / "schemas")
    paths = Paths(root)
    Warehouse(paths).build(GOOD)
    if broken:
        # A catalogued copy of taxi_trips whose declared schema was tightened afterwards:
        # the nightly validation fails (min row count), nothing may be charged for it.
        raw = yaml.safe_load((root / "schemas" / "taxi_trips.yaml").read_text())
        raw["id"] = BROKEN
        schema_path = root / "schemas" / f"{BROKEN}.yaml"
        schema_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        taxi = paths.resolve(Warehouse(paths).entry("taxi_trips")["table_path"])
        Warehouse(paths).ingest(taxi, BROKEN, schema_path)
        raw["min_rows"] = 10_000_000
        schema_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_root(tmp_path_factory.mktemp("flows"))


@pytest.fixture(scope="module")
def first(harness: str, root: Path) -> tuple[list[dict[str, Any]], Any]:
    return run_nightly(datasets=[*GOOD, BROKEN], root=str(root), **PARAMS)


def by_dataset(summary: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["dataset"]: row for row in summary}


def test_nightly_end_to_end(first: tuple[list[dict[str, Any]], Any], root: Path) -> None:
    summary, state = first
    rows = by_dataset(summary)
    assert set(rows) == {*GOOD, BROKEN}
    paths = Paths(root)
    for ds in GOOD:
        row = rows[ds]
        assert row["status"] in ("succeeded", "blocked"), row
        assert row["status"] == ("succeeded" if row["label"] in ("open", "confidential")
                                 else "blocked")
        # Prefect's view: a blocked dataset's subflow is not a plain Completed.
        assert row["prefect_state"] == ("Completed" if row["status"] == "succeeded"
                                        else "Blocked")
        # rows: the DP count of the training rows (about 60% of the 1,000-row slice, with
        # Laplace noise of scale 1/0.03 ≈ 33 rows)
        assert 300 <= row["rows"] <= 900 and row["cache"] == "miss"
        assert row["epsilon_spent"] == pytest.approx(1.0)
        assert 0 < row["epsilon"] <= 1.0 + 1e-6
        for key in ("attack_advantage_dp", "tstr_accuracy_dp", "majority_accuracy_dp"):
            assert -1.0 <= row[key] <= 1.0, key  # Laplace-noised, then clipped to range
        assert row["fit_for_purpose"] in ("useful", "not useful", "unclear")
        # nothing exact about the real rows reaches the summary (and so Prefect)
        assert set(row) & {"model_mia_accuracy", "trtr_accuracy", "train_rows"} == set()
        assert row["reason"]
        run_dir = Path(row["run_dir"])
        assert runs.is_complete(run_dir) and runs.run_key(run_dir)
        # The charged δ is the one the accountant used.
        charge = Ledger(paths).last_charge(ds)
        assert charge is not None
        assert charge.delta == pytest.approx(row["delta"])
        assert charge.run_id == run_dir.name
        releases = list_releases(paths, dataset=ds)
        assert [r.candidate_id for r in releases] == [row["candidate_id"]]
    # The flow ends Failed (one dataset failed) yet returns every dataset's row.
    assert state.is_failed() and BROKEN in state.message
    blocked = sum(r["status"] == "blocked" for r in summary)
    assert state.message == (f"3 dataset(s): {2 - blocked} succeeded, {blocked} blocked, "
                             f"1 failed ({BROKEN})")
    assert rows[BROKEN]["prefect_state"] == "Failed"
    table = format_table(summary)
    assert all(ds in table for ds in rows)
    assert max(len(line) for line in table.splitlines()) <= 100
    for ds in GOOD:
        assert f"candidate {rows[ds]['candidate_id'][:12]}" in table


def test_summary_artifacts(first: tuple[list[dict[str, Any]], Any]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    # Only this flow run's artifacts: other tests in the session run the flow too.
    flow_run_id = first[1].state_details.flow_run_id
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["nightly-summary", "nightly-report"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    kinds = {a.key: a for a in arts}
    assert {"nightly-summary", "nightly-report"} <= set(kinds)
    report = str(kinds["nightly-report"].data)
    assert "taxi_trips" in report and "patient_tests" in report and BROKEN in report
    for row in first[0]:
        if row["status"] != "failed":
            assert f"- candidate `{row['candidate_id'][:12]}`" in report
            assert f"- run directory `{row['run_dir']}`" in report


def test_failure_isolation(first: tuple[list[dict[str, Any]], Any], root: Path) -> None:
    summary, _ = first
    row = by_dataset(summary)[BROKEN]
    assert row["status"] == "failed"
    assert "expectation" in row["reason"] and row["epsilon_spent"] == 0.0
    ledger = Ledger(Paths(root))
    assert ledger.charges(BROKEN) == []
    assert ledger.spent(BROKEN).epsilon == 0.0
    assert list_releases(Paths(root), dataset=BROKEN) == []
    for ds in GOOD:
        assert by_dataset(summary)[ds]["status"] in ("succeeded", "blocked")


def test_rerun_unchanged_data_reuses(first: tuple[list[dict[str, Any]], Any],
                                    root: Path) -> None:
    paths = Paths(root)
    before = {ds: len(Ledger(paths).charges(ds)) for ds in GOOD}
    summary, _ = run_nightly(datasets=GOOD, root=str(root), **PARAMS)
    old = by_dataset(first[0])
    for ds, row in by_dataset(summary).items():
        assert row["status"] == "reused" and row["cache"] == "hit", row
        assert row["epsilon_spent"] == 0.0
        assert row["run_id"] == old[ds]["run_id"]
        assert row["label"] == old[ds]["label"]
        assert row["candidate_id"] == old[ds]["candidate_id"]
        assert "cache hit" in row["note"]
        assert len(Ledger(paths).charges(ds)) == before[ds]
    # Another configuration on the same snapshot: the refresh policy forbids retraining,
    # the newest model of this snapshot is reused, nothing is charged.
    summary, _ = run_nightly(datasets=["taxi_trips"], root=str(root),
                             **(PARAMS | {"max_rows": 900}))
    row = summary[0]
    assert row["status"] == "reused" and row["cache"] == "policy" and row["epsilon_spent"] == 0
    assert "unchanged" in row["note"]
    assert len(Ledger(paths).charges("taxi_trips")) == before["taxi_trips"]


def test_charge_is_idempotent(harness: str, tmp_path: Path) -> None:
    """A retried (or resumed) charge under the same key is recorded once."""
    root = make_root(tmp_path / "idem", broken=False)
    paths = Paths(root)
    from flows.nightly import run_config

    config = run_config(1000, 1, 1, None, None)

    @flow
    def charge_twice() -> tuple[dict[str, Any], dict[str, Any]]:
        plan = plan_run("taxi_trips", str(root), config)
        start_run(plan["run_dir"], "taxi_trips", str(root), plan, max_rows=1000)
        return (charge_ledger(plan["run_dir"], "taxi_trips", str(root), plan),
                charge_ledger(plan["run_dir"], "taxi_trips", str(root), plan))

    a, b = charge_twice()
    assert a["new"] and not b["new"] and a["charge_id"] == b["charge_id"]
    assert len(Ledger(paths).charges("taxi_trips")) == 1
    # The unfinished run is found again under its key and would be resumed, not re-charged.
    run_dir = runs.run_dirs(paths, "taxi_trips")[0]
    assert runs.find_run(paths, "taxi_trips", runs.run_key(run_dir), complete=False) == run_dir
    assert runs.find_reusable_run(paths, "taxi_trips", runs.run_key(run_dir)) is None
    assert pipeline.load_run(run_dir)["max_rows"] == 1000


def test_code_fingerprint_follows_the_sources(tmp_path: Path) -> None:
    """A changed audit or gate file changes the cache key's code part (not __version__)."""
    package = tmp_path / "pulsesynth"
    shutil.copytree(REPO / "pulsesynth", package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = runs.code_fingerprint(package)
    assert before == runs.code_fingerprint(package)
    assert before.startswith(pulsesynth.__version__ + "+src.")
    gate = package / "gate.py"
    gate.write_text(gate.read_text() + "\n# a fix\n")
    runs._fingerprint.cache_clear()
    assert runs.code_fingerprint(package) != before


def test_cache_key_components() -> None:
    base = runs.cache_key("s" * 64, "h" * 64, runs.config_hash({"a": 1, "b": 2}), "1.0")
    assert base == runs.cache_key("s" * 64, "h" * 64, runs.config_hash({"b": 2, "a": 1}),
                                  "1.0")
    others = {runs.cache_key("t" * 64, "h" * 64, runs.config_hash({"a": 1, "b": 2}), "1.0"),
              runs.cache_key("s" * 64, "i" * 64, runs.config_hash({"a": 1, "b": 2}), "1.0"),
              runs.cache_key("s" * 64, "h" * 64, runs.config_hash({"a": 1, "b": 3}), "1.0"),
              runs.cache_key("s" * 64, "h" * 64, runs.config_hash({"a": 1, "b": 2}), "1.1")}
    assert base not in others and len(others) == 4
    with pytest.raises(ValueError):
        runs.cache_key("", "h", "c", "1")


@pytest.mark.slow
def test_dask_runner_gives_the_same_gate_results(
        first: tuple[list[dict[str, Any]], Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A LocalCluster with 2 worker processes runs every dataset to a gated candidate with
    the shadows mapped. (Private runs draw fresh secret randomness, so two runners no
    longer give bit-identical figures; the seeded determinism under threads is checked in
    ``test_synthesizer``.)"""
    root = tmp_path / "dask"
    summary = run_on_dask(root, workers=2, monkeypatch=monkeypatch)
    old = by_dataset(first[0])
    for ds, row in by_dataset(summary).items():
        assert row["status"] in ("succeeded", "blocked") and old[ds]["status"] != "failed"
        assert 0 < row["epsilon"] <= 1.0 + 1e-6
    assert_shadows_mapped(root)


def run_on_dask(root: Path, workers: int, monkeypatch: pytest.MonkeyPatch
                ) -> list[dict[str, Any]]:
    """The nightly flow over GOOD on a LocalCluster of ``workers``; its completed summary."""
    import prefect.settings

    # Worker processes must report to the harness's server (restored after the test).
    monkeypatch.setenv("PREFECT_API_URL", prefect.settings.PREFECT_API_URL.value())
    monkeypatch.setenv("PULSESYNTH_DASK_WORKERS", str(workers))
    make_root(root, broken=False)
    summary, state = run_nightly(datasets=GOOD, root=str(root), task_runner="dask", **PARAMS)
    assert state.is_completed()
    return summary


def assert_shadows_mapped(root: Path) -> None:
    """The audits' shadow models ran as Dask tasks (mapped), not inside the audit task."""
    audits = list((root / "state" / "runs").glob("*/*/candidate/audit.json"))
    assert len(audits) == len(GOOD)
    for path in audits:
        assert json.loads(path.read_text())["shadow_training"]["where"] == "mapped"


@pytest.mark.slow
def test_one_dask_worker_runs_datasets_in_turn_with_shadows_on_its_spare_slot(
        first: tuple[list[dict[str, Any]], Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker: its dataset slot runs the datasets one after another while its second
    slot trains each audit's shadows — the next dataset's subflow on the same worker after
    shadows were mapped (where seceding broke Prefect's client) completes and is gated."""
    root = tmp_path / "dask1"
    summary = run_on_dask(root, workers=1, monkeypatch=monkeypatch)
    assert set(by_dataset(summary)) == set(GOOD)
    for row in summary:
        assert row["status"] in ("succeeded", "blocked") and row["label"] is not None
    assert_shadows_mapped(root)
