"""The README's benchmark lines are written from the committed results, as measured."""

from __future__ import annotations

from benchmarks.summarize import table_budget_line


def _row(table: str, system: str, seed: int, auc: float) -> dict:
    return {"table": table, "system": system, "seed": seed, "auc": auc}


def test_table_budget_line_sets_aim_at_the_table_budget_beside_aim_and_the_product() -> None:
    budget = {"settings": {"epsilon": 0.88},
              "rows": [_row("doctor_aus", "aim", 0, 0.74), _row("doctor_aus", "aim", 1, 0.76)]}
    suite = [_row("doctor_aus", "aim", 0, 0.78), _row("doctor_aus", "aim", 1, 0.77),
             _row("doctor_aus", "pulsesynth", 0, 0.74), _row("doctor_aus", "mst", 0, 0.7)]
    assert table_budget_line(budget, suite) == (
        "AIM given only what the product's table costs (ε = 0.88: training and row count, "
        "without the release report's share; seeds 0, 1; `make bench-peers-table-budget`): "
        "doctor_aus 0.750 (at ε = 1: 0.775; Pulse Synth 0.740).")


def test_table_budget_line_is_absent_without_aim_rows() -> None:
    assert table_budget_line({"rows": [_row("doctor_aus", "mst", 0, 0.7)]}, []) is None
