"""The audit's attacks fire at realistic size and stay quiet without a signal.

The cases are the audit benchmark's (``benchmarks.audit.attack_calibration``, census_income,
1,000 training rows), so each is both a test and a row of the committed table: a
memorising non-private VAE (batch 64, 300 epochs) and its table at n and 10·n rows, a
20%-feature-shuffled copy, the DP-VAE at ε = 1 and a release of pure noise (every attack
blinded). Several minutes of training: slow tier.
"""

from __future__ import annotations

import pytest

from benchmarks.audit import (
    MEMORISING,
    MEMORISING_10N,
    MODEL_ATTACKS,
    NOISE,
    TABLE_ATTACKS,
    attack_calibration,
)
from pulsesynth.audit.metrics import auc_interval

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rows(built_warehouse) -> list[dict]:
    return attack_calibration("census_income", 1000, lambda _: None,
                              warehouse=built_warehouse)


def _case(rows: list[dict], case: str) -> list[dict]:
    found = [r for r in rows if r["case"] == case]
    assert found, case
    return found


def _fires(r: dict) -> bool:
    return r["auc_ci"][0] > 0.5 and r["tpr_at_1pct"] >= 0.03


@pytest.mark.parametrize("case", [MEMORISING, MEMORISING_10N])
def test_a_table_attack_detects_a_memorising_models_table(rows, case) -> None:
    table = [r for r in _case(rows, case) if r["attack"] in TABLE_ATTACKS]
    assert any(_fires(r) for r in table), table


def test_the_model_attacks_detect_the_memorising_model(rows) -> None:
    model = {(r["attack"], r["targets"]): r for r in _case(rows, MEMORISING)
             if r["attack"] in MODEL_ATTACKS}
    assert all(r["auc_ci"][0] > 0.5 for r in model.values()), model
    assert _fires(model[("model_mia", "vulnerable")])


def test_a_membership_attack_detects_a_shuffled_copy(rows) -> None:
    shuffled = _case(rows, "20% feature-shuffled copy")
    assert any(_fires(r) for r in shuffled if r["targets"] == "random"), shuffled


@pytest.mark.parametrize("case", ["DP-VAE ε = 1", NOISE])
def test_no_attack_detects_membership_without_a_signal(rows, case) -> None:
    quiet = _case(rows, case)
    m = len(quiet)
    for r in quiet:  # every interval Bonferroni-corrected over the case's m tests
        low, high = auc_interval(r["auc"], r["records"], r["records"], 1 - 0.05 / m)
        assert low <= 0.5 <= high, r
