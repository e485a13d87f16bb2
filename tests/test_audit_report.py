"""The steward's audit report: verdict, both target sets with low-FPR rates, costs, images.

Built from hand-made attack results (no model is trained), so it is a unit test of what
``write_report`` writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pulsesynth.audit.metrics import score_attack
from pulsesynth.audit.report import CAVEAT, strongest_attack, write_report


def _audit() -> dict:
    rng = np.random.default_rng(0)
    quiet = score_attack("model_mia", rng.normal(size=400), rng.normal(size=400), 0.0)
    loud = score_attack("query_shadow", rng.normal(1.0, 1, 50), rng.normal(size=50), 0.5)
    random = {"model_mia": quiet, "query_shadow": quiet}
    vulnerable = {"model_mia": quiet, "query_shadow": loud}
    return {
        "dataset": "toy",
        "membership_attacks": {k: v.to_dict() for k, v in random.items()},
        "vulnerable_targets": {k: v.to_dict() for k, v in vulnerable.items()},
        "verdict": strongest_attack({"random": random, "vulnerable": vulnerable}),
        "attack_costs": {"model_mia": {"seconds": 0.2, "needs": "shared shadow models"},
                         "query_shadow": {"seconds": 5.9, "needs": "counting queries"}},
        "timings_s": {"shadow_models": 12.5, "shadow_releases": 15.0, "total": 40.0},
        "distances": {"dcr_histogram": {"edges": [0.0, 0.1, 0.2], "to_train": [3, 1],
                                        "to_holdout": [2, 2]},
                      "median_gower": 0.05, "gower_reference": 0.06, "dcr_share": 0.5,
                      "exact_matches": 0, "exact_matches_unique": 0, "synthetic_rows": 4,
                      "exact_match_control": {"rows": 4, "train_unique": 1,
                                              "holdout_unique": 1, "p_value": 0.76}},
        "attribute_inference": [],
        "singling_out": {"risk": 0.0, "risk_ci_low": 0.0, "risk_ci_high": 0.1},
        "caveat": CAVEAT,
    }


def test_report_shows_the_verdict_both_target_sets_and_what_each_attack_cost(
        tmp_path: Path) -> None:
    audit = _audit()
    path = write_report(audit, tmp_path, {"private": True, "epsilon": 1.0, "delta": 1e-6,
                                          "accountant": "prv"})
    text = path.read_text(encoding="utf-8")
    assert "Strongest attack: **query_shadow** on vulnerable targets" in text
    assert "it **detects membership**" in text and "over 4 tests" in text
    assert "Targets: random members vs unseen rows." in text
    assert text.count("| TPR at 1% FPR | TPR at 0.1% FPR |") == 2
    assert "| query_shadow | 5.9 | counting queries |" in text
    assert "| shared shadows | 27.5 | models 12.5 s, releases 15.0 s |" in text
    assert "one-sided Fisher test, p = 0.76" in text
    for image in ("roc.png", "dcr.png"):
        assert (tmp_path / image).stat().st_size > 1000
    assert (tmp_path / "audit.json").is_file()
