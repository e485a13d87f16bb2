"""The DP promise as deployed: secret randomness, the ledger on every path, only public or
DP figures in what a candidate carries, and accounting that matches the loader."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from pulsesynth import cli, pipeline
from pulsesynth.governance.candidate import register_candidate
from pulsesynth.governance.errors import CandidateError
from pulsesynth.governance.ledger import Ledger
from pulsesynth.paths import Paths
from pulsesynth.synth.train import Schedule, TrainConfig, planned_epsilon
from pulsesynth.warehouse import Warehouse

QUICK = ["--max-rows", "700", "--epochs", "2"]


@pytest.fixture
def taxi(project_root: Path) -> Paths:
    paths = Paths(project_root)
    Warehouse(paths).build(["taxi_trips"])
    return paths


def _run(paths: Paths, run: Path, *extra: str) -> dict:
    assert cli.main(["train", "taxi_trips", *QUICK, "--out", str(run), "--json",
                     *extra]) == 0
    assert cli.main(["sample", str(run)]) == 0
    assert cli.main(["evaluate", str(run), "--json"]) == 0
    assert cli.main(["audit", str(run), "--json"]) == 0
    return json.loads((run / "candidate" / "privacy.json").read_text())


def test_default_runs_draw_fresh_secret_randomness_and_cannot_be_replayed(
        taxi: Paths, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _run(taxi, tmp_path / "a")
    b = _run(taxi, tmp_path / "b")
    capsys.readouterr()
    runs = [json.loads((tmp_path / r / "run.json").read_text()) for r in ("a", "b")]
    assert [r["seed_source"] for r in runs] == ["secret", "secret"]
    assert runs[0]["seed"] != runs[1]["seed"]
    assert a["randomness"] == b["randomness"] == "secret"
    wa = torch.load(tmp_path / "a" / "model" / "model.pt", weights_only=True)
    wb = torch.load(tmp_path / "b" / "model" / "model.pt", weights_only=True)
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)
    ta = (tmp_path / "a" / "candidate" / "synthetic.parquet").read_bytes()
    assert ta != (tmp_path / "b" / "candidate" / "synthetic.parquet").read_bytes()
    # nothing a candidate carries holds a seed, the exact row count or the snapshot's hash
    run = runs[0]
    for name in ("privacy.json", "release_stats.json", "gate.json"):
        text = (tmp_path / "a" / "candidate" / name).read_text()
        assert run["snapshot_id"] not in text and str(run["seed"]) not in text, name
        assert '"seed"' not in text and "train_rows" not in text, name
    # a replay with the code's old public default (seed 0) reproduces neither release
    replay = _run(taxi, tmp_path / "replay", "--seed", "0")
    assert replay["randomness"] == "caller"
    assert (tmp_path / "replay" / "candidate" / "synthetic.parquet").read_bytes() != ta


def test_cli_train_charges_the_ledger_and_release_model_reuses_that_charge(
        taxi: Paths, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "r"
    privacy = _run(taxi, run)
    [charge] = Ledger(taxi).charges("taxi_trips")
    assert charge.run_id == "r" and charge.epsilon == 1.0 and charge.delta == 1e-6
    assert privacy["charge_id"] == charge.id
    assert privacy["epsilon"] <= charge.epsilon and privacy["target_epsilon"] == 1.0
    assert privacy["budget"]["parts"] == {"total": 1.0, "training": 0.85,
                                          "row_count": 0.03, "release_report": 0.12}
    stats = json.loads((run / "candidate" / "release_stats.json").read_text())
    assert stats["charge_id"] == charge.id and stats["private"] is True
    # Every attack whose rule is a DP output; not the density ratio on real reference rows.
    assert set(stats["statistics"]["max_attack_advantage"]["attacks"]) == {
        "model_mia", "model_lira", "synthetic_mia", "query_shadow", "domias_marginals",
        "distance_mia"}
    rel = register_candidate(taxi, "taxi_trips", run / "candidate",
                             model_id=pipeline.model_hash(run))
    assert rel.status in ("candidate", "blocked")
    capsys.readouterr()
    assert cli.main(["release-model", "--run", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "model"
    assert len(Ledger(taxi).charges("taxi_trips")) == 1  # releasing the model is free
    # the same audit again redraws the same noise and charges nothing; a different one pays
    assert cli.main(["audit", str(run)]) == 0
    assert len(Ledger(taxi).charges("taxi_trips")) == 1
    assert cli.main(["audit", str(run), "--shadows", "2"]) == 0
    extra = Ledger(taxi).charges("taxi_trips")[1:]
    assert [(c.epsilon, c.delta) for c in extra] == [(pytest.approx(0.12), 0.0)]
    # the same settings under changed code (e.g. new attacks) are a new use: new noise,
    # new charge (reusing the noise would publish the exact change of a statistic)
    monkeypatch.setattr(pipeline, "code_version", lambda: "0.0.0+src.changed")
    assert cli.main(["audit", str(run), "--shadows", "2"]) == 0
    assert len(Ledger(taxi).charges("taxi_trips")) == 3


def test_a_seeded_or_unpaid_candidate_is_never_registered(
        taxi: Paths, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seeded = tmp_path / "seeded"
    _run(taxi, seeded, "--seed", "7")
    with pytest.raises(CandidateError, match="caller-given seed"):
        register_candidate(taxi, "taxi_trips", seeded / "candidate",
                           model_id=pipeline.model_hash(seeded))
    unpaid = tmp_path / "unpaid"
    _run(taxi, unpaid)
    path = unpaid / "candidate" / "privacy.json"
    privacy = json.loads(path.read_text())
    path.write_text(json.dumps(privacy | {"charge_id": 10_000}))
    with pytest.raises(CandidateError, match="no ledger charge"):
        register_candidate(taxi, "taxi_trips", unpaid / "candidate",
                           model_id=pipeline.model_hash(unpaid))
    path.write_text(json.dumps(privacy | {"epsilon": 2.0}))
    with pytest.raises(CandidateError, match="exceeds the ε charged"):
        register_candidate(taxi, "taxi_trips", unpaid / "candidate",
                           model_id=pipeline.model_hash(unpaid))


def _planned(rows: int, epochs: int, delta: float) -> float:
    from opacus.accountants.utils import get_noise_multiplier

    config = TrainConfig(epochs=epochs)
    schedule = Schedule.plan(rows, config)
    assert schedule.steps == math.ceil(config.epochs / schedule.sample_rate - 1e-9)
    noise = get_noise_multiplier(target_epsilon=1.0, target_delta=delta,
                                 sample_rate=schedule.sample_rate, steps=schedule.steps,
                                 accountant="prv", epsilon_tolerance=0.005)
    return planned_epsilon(noise, schedule, delta, "prv")


@pytest.mark.parametrize("rows", [100, 245 * 4096, 1_000_000])
def test_accounting_matches_the_schedule_the_loader_uses(rows: int) -> None:
    """No training: the noise found for the schedule gives the accountant's ε within 2%
    below the target and never above, also where 1/(1/q) is not a whole number (245
    batches of 4096: Opacus' own loader would record q = 1/244)."""
    assert 0.98 <= _planned(rows, 2, 1e-6) <= 1.0


@pytest.mark.slow
def test_accounting_sweep_from_100_rows_to_10_million() -> None:
    """The same at the default 50 epochs for 25 table sizes, 100 to 10M rows (δ 1e-7)."""
    import numpy as np

    for rows in np.unique(np.geomspace(100, 10_000_000, 25).astype(int)):
        eps = _planned(int(rows), 50, 1e-7)
        assert 0.98 <= eps <= 1.0, (rows, eps)


def test_python_api_train_charges_once_per_run(taxi: Paths, tmp_path: Path) -> None:
    """pipeline.train is the library boundary: a private fit makes its own charge when the
    run has none, and training the same run again does not charge twice."""
    run = tmp_path / "api"
    pipeline.start_run("taxi_trips", run, max_rows=600, paths=taxi)
    first = pipeline.train(run, epochs=1, paths=taxi)
    [charge] = Ledger(taxi).charges("taxi_trips")
    assert first["charge_id"] == charge.id
    assert charge.idempotency_key == "train:taxi_trips:run:api"
    again = pipeline.train(run, epochs=1, paths=taxi)
    assert again["charge_id"] == charge.id and len(Ledger(taxi).charges("taxi_trips")) == 1
    with pytest.raises(pipeline.RunError, match="was charged ε = 1"):
        pipeline.train(run, epsilon=0.5, epochs=1, paths=taxi)
    # a non-private fit charges nothing (and is never releasable)
    plain = tmp_path / "plain"
    pipeline.start_run("taxi_trips", plain, max_rows=600, paths=taxi)
    assert pipeline.train(plain, private=False, epochs=1, paths=taxi)["charge_id"] is None
    assert len(Ledger(taxi).charges("taxi_trips")) == 1


def test_a_default_delta_too_large_for_the_table_is_refused(taxi: Paths, tmp_path: Path,
                                                            monkeypatch) -> None:
    """δ must stay well below 1/rows; the public default only fits tables ≤ 100k rows."""
    from pulsesynth.synth import train as train_mod

    monkeypatch.setattr(train_mod, "DEFAULT_DELTA", 1e-4)  # as if taxi had 1M rows
    with pytest.raises(pipeline.RunError, match="declare a smaller privacy.delta"):
        pipeline.start_run("taxi_trips", tmp_path / "r", paths=taxi)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_trained_candidate_carries_the_dp_marginals_its_quality_report_needs(
        taxi: Paths, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``privacy.json`` carries the model's DP marginals (the Gaussian mechanism's output,
    charged with training) in the schema's level layout, so publication scores every
    synthesized column and every (column, target) pair against them — never the real rows."""
    import pandas as pd
    import yaml

    from pulsesynth.quality import quality_report

    run = tmp_path / "q"
    privacy = _run(taxi, run)
    capsys.readouterr()
    marginals = privacy["dp_marginals"]
    model = json.loads((run / "model" / "metadata.json").read_text())
    assert marginals == model["marginals"]                     # the model's own DP outputs
    schema = yaml.safe_load((run / "candidate" / "schema.yaml").read_text())
    table = pd.read_parquet(run / "candidate" / "synthetic.parquet")
    report = quality_report(table, schema, marginals)
    columns = marginals["columns"]
    assert [s["column"] for s in report["shapes"]] == columns
    assert [p["columns"] for p in report["pairs"]] == [g for g in marginals["groups"]
                                                       if len(g) == 2]
    assert all(0.0 <= s["score"] <= 1.0 for s in report["shapes"] + report["pairs"])
    assert report["overall"] == round((report["shape_score"] + report["pair_score"]) / 2, 4)


def test_a_unit_of_several_rows_plans_from_a_dp_count_of_the_rows_the_model_keeps(
        project_root: Path, tmp_path: Path) -> None:
    """With max_rows_per_unit 3 the run keeps up to 3 tests a patient, the DP-VAE trains
    on one: sizes.json adds the DP count of the kept rows (one patient moves the vector
    by 3 + 1), the schedule is planned from it, and the release is sized by all rows."""
    from pulsesynth.splits import TRAINED_ROWS, unit_keys

    schema_file = project_root / "schemas" / "patient_tests.yaml"
    text = schema_file.read_text()
    assert text.count("max_rows_per_unit: 1") == 1
    schema_file.write_text(text.replace("max_rows_per_unit: 1", "max_rows_per_unit: 3"))
    paths = Paths(project_root)
    Warehouse(paths).build(["patient_tests"])
    run = tmp_path / "run"
    pipeline.start_run("patient_tests", run, max_rows=1500, paths=paths)
    report = pipeline.train(run, epochs=1, paths=paths)
    sizes = json.loads((run / "sizes.json").read_text())
    assert sizes["sensitivity"] == 4 and sizes["mechanism"] == "Laplace"
    data = pipeline.run_data(run, paths)
    units = int(unit_keys(data.train, data.schema).nunique())
    assert units < len(data.train)  # patients keep several tests here
    # Laplace(4 / ε_count) noise: ε_count = 0.03 gives scale 133; 10 scales is 1 in 40,000.
    assert abs(sizes["rows"][TRAINED_ROWS] - units) < 1334
    model = pipeline.load_model(run, paths)
    cap = model.metadata["training_report"]["unit_cap"]
    assert (cap["rows_per_unit_trained"], cap["max_rows_per_unit"]) == (1, 3)
    assert cap["rows_trained"] == units == model.metadata["train_rows"]
    assert model.metadata["public_rows"] == sizes["rows"][TRAINED_ROWS]
    assert report["rows"] == sizes["rows"]["train"] == pipeline.public_sizes(run)["train"]
