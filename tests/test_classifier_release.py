"""Release mechanism 1 end to end: ``pulsesynth release-classifier`` charges the ledger
before training (once, even when retried), attacks and gates the real DP classifier, and
registers it; the steward approves; publication writes weights + model card; ``pulsesynth
predict`` uses the published directory; the portal serves it by label."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from pulsesynth import cli, pipeline
from pulsesynth.governance.ledger import Ledger
from pulsesynth.governance.record import list_releases
from pulsesynth.paths import Paths
from pulsesynth.portal.app import create_app
from pulsesynth.warehouse import Warehouse

#: A policy under which the label does not depend on the DP release report's noise: on
#: this test's 317 holdout rows the noisy attack advantage reads up to ~0.1 when the exact
#: one is 0.0, so the shipped thresholds (tested in test_gate.py) block it now and then.
#: Open is out of reach (ε 1 > 0.5), confidential tolerates the noise; the label is exact.
PATH_POLICY = """\
labels:
  open: {max_epsilon: 0.5, max_attack_advantage: 0.05, max_attack_advantage_ci_high: 0.1,
         max_exact_match_excess: 0.05}
  confidential: {max_epsilon: 3.0, max_attack_advantage: 0.5,
                 max_attack_advantage_ci_high: null, max_exact_match_excess: 0.1}
kinds:
  table: {max_label: open}
  classifier: {max_label: open}
  model: {max_label: confidential}
"""


@pytest.fixture
def classifier_run(project_root: Path, tmp_path: Path) -> Path:
    Warehouse(Paths(project_root)).build(["traffic_accidents"])
    run = tmp_path / "run"
    pipeline.start_run("traffic_accidents", run, max_rows=3000)
    return run


def test_classifier_release_is_charged_gated_approved_published_and_predicts(
        project_root: Path, classifier_run: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    paths = Paths(project_root)
    policy = tmp_path / "policy.yaml"
    policy.write_text(PATH_POLICY, encoding="utf-8")
    argv = ["release-classifier", "--run", str(classifier_run), "--epochs", "10", "--json",
            "--policy", str(policy)]
    assert cli.main(argv) == 0
    shown = json.loads(capsys.readouterr().out)
    charges = Ledger(paths).charges("traffic_accidents")
    assert len(charges) == 1 and shown["charge"]["new"] is True
    assert charges[0].epsilon == pytest.approx(1.0)
    assert shown["attack"]["attack"] == "classifier_mia" and shown["attack"]["ci_low"] <= 0.5
    assert shown["label"] == "confidential" and shown["status"] == "candidate"

    # The same command again (a retry): same key, no second charge, same candidate.
    assert cli.main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["charge"]["new"] is False and len(Ledger(paths).charges(
        "traffic_accidents")) == 1
    assert again["candidate_id"] == shown["candidate_id"]

    (release,) = list_releases(paths, kind="classifier")
    assert release.dataset == "traffic_accidents" and release.status == "candidate"
    assert cli.main(["releases", "approve", shown["candidate_id"][:12], "--steward",
                     "alice"]) == 0
    assert cli.main(["publish"]) == 0
    capsys.readouterr()
    published = paths.published / "traffic_accidents_classifier" / "v1"
    assert {"weights.pt", "model.json", "schema.yaml", "modelcard.json",
            "modelcard.md"} <= {p.name for p in published.iterdir()}
    card = json.loads((published / "modelcard.json").read_text())
    text = json.dumps(card)
    assert "serious_injury" in text and "classifier_mia" in text
    assert "seed" not in json.loads((published / "model.json").read_text())["privacy"]

    rows = pipeline.run_data(classifier_run, paths).holdout.head(20)
    rows_csv = tmp_path / "rows.csv"
    rows.drop(columns=["serious_injury"]).to_csv(rows_csv, index=False)
    out_csv = tmp_path / "pred.csv"
    assert cli.main(["predict", "--release", str(published), "--input", str(rows_csv),
                     "--out", str(out_csv)]) == 0
    pred = pd.read_csv(out_csv)
    assert len(pred) == 20
    assert set(pred["predicted_serious_injury"]) <= {"no", "yes"} | set(
        Warehouse(paths).schema("traffic_accidents").column("serious_injury").categories)
    probs = pred.filter(like="p(").to_numpy()
    assert probs.shape[1] == 2 and abs(probs.sum(axis=1) - 1).max() < 1e-6

    # Access by label: a confidential classifier is invisible without a token.
    client = TestClient(create_app(paths))
    page = client.get("/datasets/traffic_accidents_classifier")
    assert page.status_code == 404


def test_predict_refuses_what_is_not_a_classifier_release(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("a\n1\n")
    assert cli.main(["predict", "--release", str(tmp_path), "--input", str(rows)]) == 2
    assert "not a classifier release" in capsys.readouterr().err


def test_non_private_classifier_charges_nothing_and_is_blocked(
        project_root: Path, classifier_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["release-classifier", "--run", str(classifier_run), "--non-private",
                     "--epochs", "3", "--shadows", "1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "blocked" and shown["charge"] is None
    assert Ledger(Paths(project_root)).charges("traffic_accidents") == []
