"""Vulnerable targets are the isolated records, chosen alike on both sides; the verdict is
the strongest attack with a stated multiple-testing correction."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pulsesynth.audit.metrics import score_attack
from pulsesynth.audit.report import strongest_attack
from pulsesynth.audit.targets import vulnerability, vulnerable_targets
from pulsesynth.schema import DatasetSchema, parse_schema


def _schema() -> DatasetSchema:
    return parse_schema({
        "id": "toy", "title": "toy", "classification": "secret", "steward": "s",
        "row_key": "row_id", "min_rows": 2,
        "privacy": {"epsilon": 1.0, "lifetime_epsilon": 5.0, "refresh_days": 1},
        "columns": [
            {"name": "row_id", "type": "integer", "role": "identifier", "bounds": [0, 10**6]},
            {"name": "age", "type": "integer", "role": "quasi_identifier", "bounds": [0, 100],
             "bins": list(range(0, 101, 10))},
            {"name": "colour", "type": "categorical", "role": "other",
             "categories": ["red", "green", "blue"]},
        ]})


def _frame(ages: list[int], colours: list[str], start: int) -> pd.DataFrame:
    return pd.DataFrame({"row_id": range(start, start + len(ages)), "age": ages,
                         "colour": colours})


def test_isolated_records_are_the_vulnerable_ones_on_each_side() -> None:
    schema = _schema()
    members = _frame([30] * 60 + [95, 2], ["red"] * 60 + ["blue", "green"], 0)
    non_members = _frame([31] * 60 + [80], ["red"] * 60 + ["green"], 1000)
    targets = vulnerable_targets(schema, members, non_members, share=0.0, minimum=2)
    assert sorted(targets.members["row_id"]) == [60, 61]
    # One outlier among the unseen rows; the tie for second place goes to the first row.
    assert sorted(targets.non_members["row_id"]) == [1000, 1060]
    scores = vulnerability(schema, members, pd.concat([members, non_members]), k=5)
    assert scores[:60].max() < 0.01 < scores[60:].min()


def test_verdict_is_the_strongest_attack_with_a_bonferroni_interval() -> None:
    rng = np.random.default_rng(0)
    quiet = score_attack("quiet", rng.normal(size=500), rng.normal(size=500), 0.0)
    loud = score_attack("loud", rng.normal(0.5, 1, 100), rng.normal(size=100), 0.0)
    verdict = strongest_attack({"random": {"quiet": quiet},
                                "vulnerable": {"loud": loud, "quiet": quiet}})
    assert verdict["attack"] == "loud" and verdict["targets"] == "vulnerable"
    assert verdict["tests"] == 3 and verdict["detected"] is True
    low, high = verdict["auc_ci_corrected"]
    assert low < loud.auc_ci_low and high > loud.auc_ci_high  # wider than the plain 95%
    assert "Bonferroni" in verdict["correction"] and "98.33%" in verdict["correction"]
    blind = strongest_attack({"random": {"quiet": quiet}})
    assert blind["detected"] is False


def test_large_sides_are_sampled_alike_before_the_quadratic_search() -> None:
    schema = _schema()
    members = _frame(list(range(100)), ["red"] * 100, 0)
    non_members = _frame(list(range(100)), ["blue"] * 100, 1000)
    targets = vulnerable_targets(schema, members, non_members, share=0.1, minimum=1,
                                 max_candidates=40, seed=3)
    # 10% of the 40 sampled per side, drawn from each side's own rows
    assert len(targets.members) == len(targets.non_members) == 4
    assert set(targets.members["row_id"]) <= set(range(100))
    assert set(targets.non_members["row_id"]) <= set(range(1000, 1100))
    again = vulnerable_targets(schema, members, non_members, share=0.1, minimum=1,
                               max_candidates=40, seed=3)
    assert list(again.members["row_id"]) == list(targets.members["row_id"])
