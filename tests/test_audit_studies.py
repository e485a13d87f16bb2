"""The audit benchmark's shuffle study (seed 000 Fig. 6.5) with the newer attacks: a 20%
feature-shuffled copy is caught by a membership attack itself, the DP-VAE is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import audit

pytestmark = pytest.mark.slow


def test_shuffle_study_catches_a_shuffled_copy_and_not_the_dp_vae(
        built_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSESYNTH_ROOT", str(built_root))
    monkeypatch.setattr(audit, "SHUFFLES", [0.2])
    rows = {r["method"]: r for r in audit.shuffle_study("traffic_accidents", 300,
                                                         lambda _: None)}
    assert set(rows) == {"shuffle 20%", "non-DP VAE", "DP-VAE eps=1"}
    for r in rows.values():
        assert set(r["attacks"]) == set(audit.STUDY_ATTACKS)
    shuffled = rows["shuffle 20%"]["attacks"]["query_shadow"]
    assert shuffled["auc_ci"][0] > 0.9 and shuffled["tpr_at_1pct"] > 0.5
    low, high = rows["DP-VAE eps=1"]["attacks"]["query_shadow"]["auc_ci"]
    assert low < 0.5 < high
