"""Every attack must be able to fail: each detects real leakage and stays quiet under DP.

Small slices of census_income keep these in the default suite (about a minute); the
full-size versions are in the audit benchmark (`make bench`).
"""

from __future__ import annotations

import numpy as np
import pytest

from pulsesynth.audit.attacks import membership
from pulsesynth.audit.attacks.membership import ELBOAttack, SurrogateAttack, vae_release
from pulsesynth.audit.baselines import shuffle_features, shuffle_release
from pulsesynth.audit.distances import distance_report
from pulsesynth.gate import evaluate_gate, load_policy
from pulsesynth.splits import split_by_unit
from pulsesynth.synth import DPVAESynthesizer

POLICY = load_policy()


@pytest.fixture(scope="module")
def census(built_warehouse):
    snap = built_warehouse.pull("census_income")
    parts = split_by_unit(snap.frame, snap.schema, seed=0)
    return (snap.schema, parts["train"].iloc[:500], parts["holdout"].iloc[:500],
            parts["reference"].iloc[:2000])


@pytest.fixture(scope="module")
def overfit(census):
    """A non-DP VAE trained far too long on 500 rows: it memorises its members."""
    schema, train, _, _ = census
    return DPVAESynthesizer(schema, private=False, epochs=300, seed=0).fit(train)


def gate_for(advantage_result, distances, private=True, epsilon=1.0):
    audit = {"membership_attacks": {advantage_result.attack: advantage_result.to_dict()},
             "distances": distances}
    return evaluate_gate(POLICY, {"private": private, "epsilon": epsilon}, audit)


def test_model_mia_detects_an_overfit_non_dp_vae(census, overfit) -> None:
    schema, train, holdout, reference = census
    result = ELBOAttack(seed=0).run(overfit, train, holdout, reference)
    assert result.accuracy >= 0.60 and result.ci_low > 0.5, result
    # Blocked on its measurements alone, even if it were (wrongly) labelled private.
    gate = gate_for(result, {"dcr_share": 0.5, "exact_matches_unique": 0})
    assert gate.label == "blocked" and "max_attack_advantage[model_mia]" in gate.reason
    assert gate_for(result, {}, private=False).label == "blocked"


def test_synthetic_mia_detects_the_overfit_vaes_synthetic_table(census, overfit) -> None:
    schema, train, holdout, reference = census
    synthetic = overfit.sample(500, seed=1)
    result = SurrogateAttack(vae_release(overfit, 500), surrogate_epochs=300, seed=0).run(
        schema, synthetic, train, holdout, reference, train_rows=500)
    assert result.ci_low > 0.5, result
    distances = distance_report(schema, train, holdout, synthetic)
    assert gate_for(result, distances).label == "blocked"


def test_shuffled_copy_is_blocked_and_detected_by_the_surrogate_attack(census) -> None:
    schema, train, holdout, reference = census
    train, holdout = train.iloc[:500], holdout.iloc[:500]
    fake = shuffle_features(train, schema, 0.2, seed=5)
    distances = distance_report(schema, train, holdout, fake)
    assert distances["exact_matches_unique"] > 0 and distances["dcr_share"] > 0.6
    gate = gate_for(ELBOStub(), distances)
    assert gate.label == "blocked"
    assert "max_unique_exact_matches" in gate.reason and "max_dcr_share" in gate.reason
    big_train = census[1]
    result = SurrogateAttack(shuffle_release(schema, 0.2), surrogate_epochs=100, seed=0).run(
        schema, shuffle_features(big_train, schema, 0.2, seed=5), big_train, census[2],
        reference)
    assert result.ci_low > 0.5, result


def test_dp_vae_at_epsilon_1_passes_the_open_thresholds(census) -> None:
    schema, train, holdout, reference = census
    model = DPVAESynthesizer(schema, epsilon=1.0, seed=0).fit(train)
    model_mia = ELBOAttack(seed=0).run(model, train, holdout, reference)
    synthetic = model.sample(500, seed=1)
    synthetic_mia = SurrogateAttack(vae_release(model, 500), seed=0).run(
        schema, synthetic, train, holdout, reference, train_rows=500)
    audit = {"membership_attacks": {"model_mia": model_mia.to_dict(),
                                    "synthetic_mia": synthetic_mia.to_dict()},
             "distances": distance_report(schema, train, holdout, synthetic)}
    gate = evaluate_gate(POLICY, model.privacy_report, audit)
    assert gate.label == "open", gate.reason


def test_a_blinded_attack_detects_nothing(census, overfit, monkeypatch) -> None:
    """The calibration above fails when the attack's signal is removed."""
    schema, train, holdout, reference = census
    rng = np.random.default_rng(0)
    monkeypatch.setattr(membership, "_features",
                        lambda model, rows: rng.normal(size=(len(rows), 3)))
    result = ELBOAttack(seed=0).run(overfit, train, holdout, reference)
    assert result.ci_low <= 0.5 <= result.ci_high
    assert not (result.accuracy >= 0.60 and result.ci_low > 0.5)


class ELBOStub:
    """A membership result at chance level, to isolate the distance thresholds."""

    attack = "model_mia"

    def to_dict(self) -> dict:
        return {"advantage": 0.0, "advantage_ci_high": 0.02}
