"""One synthesis run through the CLI: train → sample → evaluate → audit on a warehouse table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pulsesynth import cli
from pulsesynth.paths import Paths
from pulsesynth.reports import AuditReport, PrivacyReport, ReleaseStats, UtilityReport
from pulsesynth.warehouse import Warehouse

NOISE_PROOF_POLICY = """\
labels:
  open: {max_epsilon: 0.5, max_attack_advantage: 0.05, max_attack_advantage_ci_high: 0.1,
         max_exact_match_excess: 0.05, exact_match_alpha: 0.01}
  confidential: {max_epsilon: 3.0, max_attack_advantage: 1.0,
                 max_attack_advantage_ci_high: null, max_exact_match_excess: null}
"""


def test_train_sample_evaluate_audit_from_the_warehouse(
    project_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    Warehouse(Paths(project_root)).build(["taxi_trips"])
    run = tmp_path / "run"
    assert cli.main(["train", "taxi_trips", "--max-rows", "1500", "--epochs", "5",
                     "--out", str(run), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["private"] is True and report["epsilon"] <= 1.0
    # DP-SGD spends its 85% share of the run's ε (row counts and the report the rest)
    assert 0.98 * 0.85 <= report["epsilon"] <= 0.85 and report["accountant"] == "prv"
    assert "epoch 5" in captured.err  # progress is shown on stderr
    assert (run / "model" / "model.pt").is_file()

    out_csv = tmp_path / "synthetic.csv"
    assert cli.main(["sample", str(run), "--rows", "400", "--out", str(out_csv)]) == 0
    table = pd.read_csv(out_csv)
    assert len(table) == 400 and "rownames" not in table.columns

    assert cli.main(["evaluate", str(run), "--json"]) == 0
    utility = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert set(utility["tstr"]) == {"logreg", "random_forest", "hist_gb"}

    # A policy whose label the report's secret noise cannot flip: open fails on ε (the
    # run's 1 > 0.5), confidential accepts any advantage; so the label is exact.
    policy = tmp_path / "policy.yaml"
    policy.write_text(NOISE_PROOF_POLICY, encoding="utf-8")
    assert cli.main(["audit", str(run), "--json", "--policy", str(policy)]) == 0
    audit = json.loads(capsys.readouterr().out)
    attacks = {"model_mia", "model_lira", "synthetic_mia", "query_shadow", "domias_marginals",
               "domias"}
    assert set(audit["membership_attacks"]) == set(audit["vulnerable_targets"]) == attacks
    assert audit["verdict"]["tests"] == 12 and audit["verdict"]["attack"] in attacks
    assert set(audit["attack_costs"]) == attacks
    # Only attacks whose rules are DP outputs feed the published report: not the density
    # ratio against real reference rows.
    reported = audit["release_stats"]["statistics"]["max_attack_advantage"]["attacks"]
    assert reported == sorted(attacks - {"domias"} | {"distance_mia"})
    assert (audit["gate"]["label"], audit["gate"]["reason"]) == (
        "confidential", "all confidential thresholds pass")
    for name in ("audit.json", "audit.md", "gate.json", "roc.png", "dcr.png", "utility.json",
                 "privacy.json", "synthetic.parquet"):
        assert (run / "candidate" / name).is_file(), name
    # The DP marginals' facts (public) are named on privacy.json with their noise; their
    # values (a DP output, for the published quality report) sit apart under dp_marginals.
    privacy = json.loads((run / "candidate" / "privacy.json").read_text())
    marginals = privacy["marginals"]
    assert marginals["count"] == 6 and marginals["columns"][0] == ["distance", "tip"]
    assert marginals["noise_multiplier"] > 0 and marginals["share_alone"] == 0.8
    assert marginals["selection"]["share"] == 0.1  # the noisy scores that chose the pairs
    assert privacy["mechanism"].startswith("Gaussian-mechanism marginals")
    assert "probabilities" not in json.dumps(marginals)
    values = privacy["dp_marginals"]
    assert values["groups"] == marginals["columns"]
    assert values["noise_multiplier"] == marginals["noise_multiplier"]
    assert [round(sum(map(float, p)), 6) for p in values["probabilities"]] == [1.0] * 6
    # Every key the run writes is declared in its typed report (pulsesynth.reports).
    for name, report in (("privacy.json", PrivacyReport), ("utility.json", UtilityReport),
                         ("audit.json", AuditReport), ("release_stats.json", ReleaseStats)):
        written = set(json.loads((run / "candidate" / name).read_text()))
        assert written - report.__optional_keys__ == set(), name


def test_non_private_run_is_blocked_by_the_gate(
    project_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    Warehouse(Paths(project_root)).build(["taxi_trips"])
    run = tmp_path / "nodp"
    assert cli.main(["train", "taxi_trips", "--non-private", "--max-rows", "800",
                     "--epochs", "3", "--out", str(run)]) == 0
    assert "NON-PRIVATE" in capsys.readouterr().out
    assert cli.main(["sample", str(run)]) == 0
    assert cli.main(["audit", str(run)]) == 0
    out = capsys.readouterr().out
    assert "label: blocked — non-private" in out
    assert "unique rows reproduced, of " in out and "(control; one-sided exact p = " in out
    assert "strongest: " in out and "Bonferroni" in out
    control = json.loads((run / "candidate" / "audit.json").read_text())["distances"][
        "exact_match_control"]
    assert set(control) == {"rows", "train_unique", "holdout_unique", "p_value"}
    assert 0.0 <= control["p_value"] <= 1.0
    assert "Control for chance reproductions" in (run / "candidate" / "audit.md").read_text()
    gate = json.loads((run / "candidate" / "gate.json").read_text())
    assert gate["label"] == "blocked"
