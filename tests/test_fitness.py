"""The fit-for-purpose verdict: measured from the DP release report, per release."""

from __future__ import annotations

from governance_fixtures import release_stats

from pulsesynth.fitness import NOT_USEFUL, UNCLEAR, USEFUL, verdict


def stats(tstr: float, majority: float, width: float = 0.03) -> dict:
    s = release_stats(1)
    for name, value in (("tstr_accuracy", tstr), ("majority_accuracy", majority)):
        s["statistics"][name] |= {"value": value, "ci_low": value - width,
                                  "ci_high": value + width}
    return s


def test_a_table_that_beats_guessing_is_useful_for_its_target() -> None:
    fit = verdict(stats(0.85, 0.76), "income")
    assert fit["verdict"] == USEFUL and fit["not_suitable"] == []
    assert fit["suitable"] == ["predicting `income`: a model trained on this table beats "
                               "guessing (accuracy 0.85 on unseen real rows against 0.76 by "
                               "always guessing the most common class (differentially "
                               "private figures))"]


def test_a_table_below_the_majority_baseline_is_not_useful() -> None:
    fit = verdict(stats(0.79, 0.93), "result")
    assert fit["verdict"] == NOT_USEFUL and fit["suitable"] == []
    assert fit["not_suitable"][0].startswith("predicting `result`: a model trained on this "
                                             "table does no better than guessing")


def test_overlapping_intervals_are_unclear_and_never_claimed_suitable() -> None:
    fit = verdict(stats(0.94, 0.92), "tip", kind="classifier")
    assert fit["verdict"] == UNCLEAR and fit["suitable"] == []
    assert "this classifier is not clearly better" in fit["not_suitable"][0]


def test_no_target_or_no_figures_gives_no_verdict() -> None:
    assert verdict(stats(0.9, 0.5), None)["verdict"] is None
    assert verdict({"statistics": {}}, "tip") == {"target": "tip", "verdict": None,
                                                   "suitable": [], "not_suitable": []}


def test_the_difference_is_judged_on_its_own_interval() -> None:
    """Overlapping intervals can still show a clear difference (traffic at full size):
    0.72 vs 0.595, each ± 0.075, differ by 0.125 > √2 · 0.075 ≈ 0.106."""
    assert verdict(stats(0.72, 0.595, width=0.075), "serious_injury")["verdict"] == USEFUL
    assert verdict(stats(0.70, 0.595, width=0.075), "serious_injury")["verdict"] == UNCLEAR
