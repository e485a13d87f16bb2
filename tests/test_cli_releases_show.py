"""``pulsesynth releases show``: the steward's whole view of a candidate — gate checks,
audit verdict, utility, the path of ``audit.md`` — and, for a blocked candidate, what would
unblock it and what a retrain costs in ε."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from governance_fixtures import CANARY, CANARY_NUMBER, make_candidate

from pulsesynth import cli
from pulsesynth.advice import unblock_advice
from pulsesynth.command import cli_command
from pulsesynth.governance.candidate import register_candidate
from pulsesynth.paths import Paths

REPO = Path(__file__).resolve().parent.parent
VERDICT = {"attack": "model_lira", "targets": "vulnerable", "auc": 0.5312,
           "auc_ci_corrected": [0.4811, 0.5807], "tpr_at_1pct_fpr": 0.02, "detected": False,
           "tests": 12, "correction": "Bonferroni"}


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    (tmp_path / "schemas").mkdir()
    shutil.copyfile(REPO / "schemas" / "taxi_trips.yaml", tmp_path / "schemas" / "taxi_trips.yaml")
    monkeypatch.setenv("PULSESYNTH_ROOT", str(tmp_path))
    return Paths(tmp_path)


def _candidate(paths: Paths, label: str, epsilon: float) -> tuple[str, Path]:
    cand = make_candidate(paths, label=label, epsilon=epsilon)
    audit = json.loads((cand / "audit.json").read_text())
    (cand / "audit.json").write_text(json.dumps(audit | {"verdict": VERDICT}))
    (cand / "audit.md").write_text("# audit\n")
    rel = register_candidate(paths, "taxi_trips", cand, "model-1", "Taxi trips")
    return rel.candidate_id, cand


def test_show_prints_checks_audit_verdict_utility_and_the_audit_report_path(
        paths: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    cid, cand = _candidate(paths, "open", 1.0)
    assert cli.main(["releases", "show", cid[:8]]) == 0
    out = capsys.readouterr().out
    flat = " ".join(out.split())  # long lines wrap at 100 columns
    assert max(len(line) for line in out.splitlines() if "audit.md" not in line) <= 100
    assert "gate open: all thresholds pass open: max_epsilon = 1.0 (limit 1.0) ok" in flat
    assert ("audit strongest attack model_lira on vulnerable targets: AUC 0.531 "
            "(0.481–0.581, corrected), no membership signal") in flat
    assert "utility        majority baseline 0.620" in out
    assert "hist_gb        trained on synthetic (TSTR) 0.710, on real (TRTR) 0.740" in out
    assert f"audit report   {cand / 'audit.md'} (exact figures, steward only)" in out
    assert "advice" not in out  # released: nothing to unblock
    assert CANARY not in out and str(CANARY_NUMBER) not in out


def test_a_blocked_candidate_says_what_would_unblock_it_and_what_a_retrain_costs(
        paths: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    cid, _ = _candidate(paths, "blocked", 2.5)  # charged 2.5 of the lifetime 10
    assert cli.main(["releases", "show", cid[:8]]) == 0
    out = capsys.readouterr().out
    assert "gate           blocked: open: epsilon = 9 (limit 1) FAILS by 8" in out
    assert ("advice         to be released as open: max_epsilon must fall by 1.5 "
            "(2.5 now, at most 1 allowed)") in out
    assert "a retrain with --epsilon at most 1 meets the ε limit" in out
    assert ("a retrain costs ε 1 (per run) of the 7.5 left of its lifetime ε 10: "
            "7 retrain(s) left") in out
    assert cli.main(["releases", "show", cid[:8], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["advice"][0].startswith("to be released as open: max_epsilon must fall")
    assert shown["reports"]["audit_verdict"]["attack"] == "model_lira"
    assert shown["reports"]["utility"]["accuracy"] == {"hist_gb": {"tstr": 0.71,
                                                                   "trtr": 0.74}}


def test_advice_when_the_lifetime_budget_is_spent() -> None:
    gate = {"label": "blocked", "reason": "x", "checks": [
        {"label": "open", "name": "max_attack_advantage", "threshold": 0.05, "value": 0.2,
         "passed": False},
        {"label": "confidential", "name": "max_attack_advantage", "threshold": 0.1,
         "value": 0.2, "passed": False},
        {"label": "confidential", "name": "exact_match_alpha", "threshold": 0.01,
         "value": 0.004, "passed": False, "at_least": True}]}
    budget = {"per_run_epsilon": 1.0, "remaining_epsilon": 0.0, "lifetime_epsilon": 10.0,
              "retrains_left": 0}
    assert unblock_advice(gate, budget) == [
        "to be released as confidential: max_attack_advantage must fall by 0.1 (0.2 now, at "
        "most 0.1 allowed); exact_match_alpha must rise by 0.006 (0.004 now, at least 0.01 "
        "needed)",
        "  a retrain draws new noise and is attacked afresh; a smaller ε (stronger privacy) "
        "weakens membership attacks",
        "a retrain costs ε 1 (per run) of the 0 left of its lifetime ε 10: none left (only a "
        f"steward's `{cli_command()} budget set` adds budget)"]
    assert unblock_advice({"label": "open", "checks": []}, budget) == []
