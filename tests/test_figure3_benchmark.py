"""The Figure 3 benchmark (``make bench``) end to end on tiny slices: it must produce the
results file the issue specifies, with privacy computed from the attack, and its plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import figure3

pytestmark = pytest.mark.slow


def test_figure3_writes_table_curves_and_plots(built_root: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSESYNTH_ROOT", str(built_root))
    # Short non-private recipes: the test checks the plumbing, the benchmark the numbers.
    monkeypatch.setattr(figure3, "NON_PRIVATE_CLASSIFIER",
                        {**figure3.NON_PRIVATE_CLASSIFIER, "epochs": 5})
    monkeypatch.setattr(figure3, "NON_PRIVATE_VAE", {"epochs": 5, "batch_size": 64})
    out = tmp_path / "results"
    assert figure3.main(["--rows", "150", "--datasets", "traffic_accidents",
                         "--curve-rows", "150", "--classifier-epochs", "1", "10",
                         "--vae-epochs", "1", "10", "--out", str(out)]) == 0

    result = json.loads((out / "figure3.json").read_text(encoding="utf-8"))
    cells = {(r["mechanism"], r["private"]): r for r in result["table"]}
    assert set(cells) == {(m, p) for m in ("classifier", "model", "synthetic")
                          for p in (False, True)}
    for r in result["table"]:
        assert r["ci_low"] <= r["attack_accuracy"] <= r["ci_high"]
        assert r["privacy"] == pytest.approx(min(1.0, max(0.0, 2 * (1 - r["attack_accuracy"]))),
                                             abs=1e-3)
        assert 0.0 <= r["utility"] <= 1.0
        assert (r["paper_privacy"], r["paper_utility"]) == figure3.PAPER[
            ("traffic_accidents", r["mechanism"], r["private"])]
        # The audit's newer attacks beside seed 000's, on the VAE's two mechanisms.
        newer = r.get("newer_attacks", {})
        assert set(newer) == set(figure3.NEWER_ATTACKS.get(r["mechanism"], ()))
        for score in newer.values():
            assert score["auc_ci"][0] <= score["auc"] <= score["auc_ci"][1]
            assert 0.0 <= score["tpr_at_1pct"] <= 1.0
    assert {(c["mechanism"], c["private"], c["epochs"]) for c in result["curves"]} == {
        (m, p, e) for p in (False, True)
        for m, epochs in (("classifier", (1, 10)), ("model", (1, 10)), ("synthetic", (1, 10)))
        for e in epochs}
    # 10x check: the DP point of best utility and the points at >= 10x its epochs.
    for check in result["ten_x_check"]:
        assert all(p["epochs"] >= 10 * check["best_utility_epochs"] for p in check["at_10x"])
    assert (out / "figure3_table.png").stat().st_size > 10_000
    assert (out / "figure3_curves.png").stat().st_size > 10_000
