"""Release mechanism 1: the DP classifier, its release files and its shadow-model attack.

The calibration tests prove the attack can fail both ways: it detects a non-DP classifier
trained far past its best epoch, it stays near 50% against the DP one, and with its
features blinded it detects nothing on the same overfit model.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from pulsesynth.audit.attacks.classifier_mia import ShadowClassifierAttack
from pulsesynth.classifier import DPClassifier
from pulsesynth.errors import SchemaError
from pulsesynth.randomness import salt_from_seed
from pulsesynth.splits import split_by_unit


@pytest.fixture(scope="module")
def traffic(built_warehouse):
    snap = built_warehouse.pull("traffic_accidents")
    frame = snap.frame.iloc[np.sort(np.random.default_rng(0).choice(len(snap.frame), 3000,
                                                                    replace=False))]
    parts = split_by_unit(frame, snap.schema, salt=salt_from_seed(0))
    return snap.schema, parts["train"], parts["holdout"], parts["reference"]


@pytest.fixture(scope="module")
def overfit(traffic):
    """Non-DP, small batches, far past its best epoch: it memorises its training rows."""
    schema, train, _, _ = traffic
    return DPClassifier(schema, private=False, epochs=150, batch_size=64, lr=1e-3,
                        hidden=(256, 256), seed=1).fit(train)


@pytest.fixture(scope="module")
def dp_model(traffic):
    schema, train, _, _ = traffic
    return DPClassifier(schema, epsilon=1.0, seed=1).fit(train)


def test_dp_classifier_spends_its_target_epsilon_and_learns(traffic, dp_model) -> None:
    _, _, holdout, _ = traffic
    report = dp_model.privacy_report
    assert report["private"] is True and report["accountant"] == "prv"
    assert 0.98 <= report["epsilon"] / 1.0 <= 1.0
    assert report["delta"] == 1e-6  # a fixed public δ, never 1/(10 n)
    assert "train_rows" not in report and report["seed_source"] == "caller"
    result = dp_model.evaluate(holdout)
    assert result["auc"] > 0.6  # learned something beyond the majority class
    assert set(dp_model.predict(holdout.head(5))) <= set(dp_model.classes)


def test_privacy_unit_cap_applies_to_training_rows(traffic, dp_model) -> None:
    _, train, _, _ = traffic
    rows = dp_model.training_rows(train)
    unit = list(dp_model.schema.privacy_unit)
    assert rows.groupby(unit).size().max() == 1
    assert dp_model.metadata["train_rows"] == len(rows) < len(train)


def test_two_rows_per_unit_train_at_half_the_epsilon_per_row(traffic) -> None:
    """A crash keeping two rows is two rows to DP-SGD: the classifier trains at ε/2 per
    row, and its report states the per-unit guarantee (group privacy)."""
    schema, train, _, _ = traffic
    two = replace(schema, privacy=replace(schema.privacy, max_rows_per_unit=2))
    model = DPClassifier(two, epsilon=1.0, seed=1, epochs=2).fit(train)
    report = model.privacy_report
    rows = report["group_privacy"]
    assert rows["rows_per_unit"] == 2 and rows["row_target_epsilon"] == 0.5
    assert 0.5 * 0.98 <= rows["row_epsilon"] <= 0.5
    assert report["epsilon"] == 2 * rows["row_epsilon"] and report["target_epsilon"] == 1.0
    assert report["delta"] <= 1e-6
    assert "epsilon / 2 (group privacy over 2 rows)" in model.metadata["unit_rule"]
    assert model.public_card()["privacy"]["group_privacy"] == rows


def test_release_files_round_trip_and_carry_no_training_losses(tmp_path, traffic,
                                                               dp_model) -> None:
    schema, _, holdout, _ = traffic
    dp_model.export_release(tmp_path)
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["kind"] == "classifier" and card["target"] == schema.target
    assert "loss" not in json.dumps(card) and "history" not in json.dumps(card)
    loaded = DPClassifier.from_release(tmp_path, schema)
    np.testing.assert_allclose(loaded.predict_proba(holdout), dp_model.predict_proba(holdout))
    other = replace(schema, description="changed")
    if other.hash != schema.hash:
        with pytest.raises(SchemaError, match="schema hash"):
            DPClassifier.from_release(tmp_path, other)


def test_classifier_needs_a_categorical_target(built_warehouse) -> None:
    schema = built_warehouse.schema("traffic_accidents")
    with pytest.raises(SchemaError, match="no target"):
        DPClassifier(replace(schema, target=None))


def test_shadow_attack_detects_an_overfit_non_dp_classifier(traffic, overfit) -> None:
    _, train, holdout, reference = traffic
    assert overfit.evaluate(train)["accuracy"] > overfit.evaluate(holdout)["accuracy"] + 0.15
    result = ShadowClassifierAttack(n_shadows=1, seed=0).run(overfit, train, holdout,
                                                             reference)
    assert result.ci_low > 0.5, result


def test_blinded_shadow_attack_detects_nothing_on_the_same_model(traffic, overfit) -> None:
    _, train, holdout, reference = traffic
    result = ShadowClassifierAttack(n_shadows=1, seed=0, blind=True).run(
        overfit, train, holdout, reference)
    assert result.ci_low <= 0.5 and abs(result.accuracy - 0.5) < 0.05, result


def test_shadow_attack_stays_near_chance_against_the_dp_classifier(traffic, dp_model) -> None:
    _, train, holdout, reference = traffic
    result = ShadowClassifierAttack(n_shadows=1, seed=0).run(dp_model, train, holdout,
                                                             reference)
    assert result.ci_low <= 0.5 and result.accuracy < 0.55, result
