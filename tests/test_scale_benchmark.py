"""The scale benchmark (``make bench``): its tiny-size run writes every stage's seconds and
peak RSS, and a million-row table is planned to a releasable ε without training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import scale


@pytest.mark.slow  # the noise search with the marginals' prior: ~20 s on a shared core
def test_million_row_schedule_plans_epsilon_at_or_below_target() -> None:
    planned = scale.planned_releasability(1_000_000)
    assert planned["expected_batch"] == 4096
    assert planned["sample_rate"] == 4096 / 1_000_000
    assert planned["steps"] == 12_208  # ceil(50 epochs / q)
    assert planned["planned_epsilon"] <= 1.0
    assert planned["planned_epsilon"] >= 0.98  # within 2% below the target
    assert planned["releasable"] is True


def test_merge_replaces_rows_of_the_same_size_and_stage_only() -> None:
    old = [{"rows": 10, "stage": "train", "seconds": 1.0},
           {"rows": 10, "stage": "validate", "seconds": 2.0}]
    new = [{"rows": 10, "stage": "train", "seconds": 3.0},
           {"rows": 20, "stage": "validate", "seconds": 4.0}]
    assert scale.merge(old, new) == [
        {"rows": 10, "stage": "validate", "seconds": 2.0},
        {"rows": 10, "stage": "train", "seconds": 3.0},
        {"rows": 20, "stage": "validate", "seconds": 4.0}]


@pytest.mark.slow
def test_tiny_scale_run_writes_each_stage_with_its_own_peak_rss(
        built_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSESYNTH_ROOT", str(built_root))
    train, holdout = scale.resample(1000)
    # Fresh unit ids: every drawn row its own unit, holdout ids after the training ids.
    assert train["record_id"].tolist() == list(range(1, 1001))
    assert holdout["record_id"].tolist() == list(range(1001, 1251))
    assert set(train["uci_split"]) == {"train"} and set(holdout["uci_split"]) == {"test"}

    out = tmp_path / "scale.json"
    stages = ["validate", "train", "sample", "evaluate", "audit"]
    assert scale.main(["--rows", "1000", "--epochs", "1", "--stages", ",".join(stages),
                       "--out", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert [(r["rows"], r["stage"]) for r in result["rows"]] == [(1000, s) for s in stages]
    for row in result["rows"]:
        assert row["seconds"] > 0 and row["cpu_seconds"] > 0
        # Each child's own peak: at least the imports' floor, far below the machine.
        assert result["baseline_rss_mb"] * 0.8 < row["peak_rss_mb"] < 8000
    rows = {r["stage"]: r for r in result["rows"]}
    assert rows["validate"]["success"] is True
    assert rows["train"]["projected"] is True and rows["train"]["projected_epochs"] == 50
    assert rows["train"]["projected_seconds"] > rows["train"]["seconds"]
    assert rows["train"]["epsilon"] <= 1.0
    assert rows["sample"]["sampled_rows"] == 1000
    assert rows["audit"]["projected"] is False
    assert rows["audit"]["distance_pairs"] == 1000 * 1000 + 500 * 500 + 2 * 1000 * 250
    assert [p["rows"] for p in result["planned_accounting"]] == [1000]
    assert (tmp_path / "scale.png").stat().st_size > 10_000


def test_distance_pairs_follow_the_reports_query_cap() -> None:
    """Below the cap every row is a query (1.75·N² pairs at 10k); at 1M each of the four
    searches takes 20,000 queries, so the work is linear: 4·10¹⁰ pairs, not 1.75·10¹²."""
    assert scale._distance_pairs(10_000, 2_500, 10_000) == 175_000_000
    assert scale._distance_pairs(1_000_000, 250_000, 1_000_000) == 40_000_000_000
