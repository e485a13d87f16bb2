"""DOMIAS (density-ratio attack on a released table) can fail both ways: it detects
leakage where there is some, stays at chance where there is none, and learns its
threshold from the attacker's data alone.

Slices of census_income (500 members, 500 non-members, 2,000 reference rows) keep the
default tests to seconds; the overfit VAE (about 30 s of training) is marked slow.
"""

from __future__ import annotations

import hashlib
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from attack_checks import at_chance

from pulsesynth import randomness
from pulsesynth.audit.attacks.base import AttackData, create_attack
from pulsesynth.audit.attacks.domias import (
    DOMIAS,
    DOMIASMarginals,
    one_way,
    split_reference,
)
from pulsesynth.audit.baselines import shuffle_features
from pulsesynth.encoding import TableEncoder
from pulsesynth.frames import conform
from pulsesynth.randomness import salt_from_seed
from pulsesynth.splits import split_by_unit
from pulsesynth.synth import DPVAESynthesizer
from pulsesynth.synth.marginals import MarginalPlan, NoisyMarginals, measure

VARIANTS = [DOMIAS, DOMIASMarginals]


@pytest.fixture(scope="module")
def census(built_warehouse):
    """(schema, members, non-members, reference, more population rows), all disjoint."""
    snap = built_warehouse.pull("census_income")
    parts = split_by_unit(snap.frame, snap.schema, salt=salt_from_seed(0))
    reference = parts["reference"]
    return (snap.schema, parts["train"].iloc[:500], parts["holdout"].iloc[:500],
            reference.iloc[:2000], reference.iloc[2000:4000])


def attack_data(schema, synthetic, reference, model=None) -> AttackData:
    return AttackData(schema, synthetic, reference, model=model, real_reference=reference)


def uniform_rows(schema, n: int, seed: int):
    """Rows drawn uniformly from the declared domains (every level of every column)."""
    encoder = TableEncoder(schema)
    rng = np.random.default_rng(seed)
    levels = np.column_stack([rng.integers(0, b.width, n) for b in encoder.block_specs])
    return encoder.decode_levels(levels, rng)


def dp_marginals_model(schema, rows, seed: int = 0) -> SimpleNamespace:
    """What the attack reads of a private model: its encoder and DP marginals."""
    encoder = TableEncoder(schema)
    plan = MarginalPlan.for_columns(encoder.column_names,
                                    [b.width for b in encoder.block_specs], schema.target)
    marginals = measure(encoder.levels(rows), plan, 1.0, np.random.default_rng(seed))
    return SimpleNamespace(encoder=encoder, marginals=marginals)


def test_both_variants_are_registered_with_their_trust_boundary() -> None:
    assert isinstance(create_attack("domias"), DOMIAS)
    assert isinstance(create_attack("domias_marginals"), DOMIASMarginals)
    assert DOMIAS.uses_real_reference and not DOMIASMarginals.uses_real_reference


@pytest.mark.parametrize("cls", VARIANTS)
def test_domias_detects_a_shuffled_copy_of_the_members(census, cls) -> None:
    schema, members, non_members, reference, _ = census
    fake = shuffle_features(members, schema, 0.2, seed=5)
    attack = cls(seed=0)
    result = attack.run(attack_data(schema, fake, reference), members, non_members)
    assert result.auc_ci_low > 0.5 and result.ci_low > 0.5, result  # measured AUC ≈ 0.73
    # Settings only: names and counts, never a row value.
    assert set(attack.details_) >= {"estimator", "bandwidth", "synthetic_rows",
                                    "reference_fit_rows", "threshold_rows", "reference"}
    assert all(isinstance(v, (str, int, float)) for v in attack.details_.values())
    assert attack.details_["reference"] == ("real_reference" if cls is DOMIAS
                                            else "reference_frequencies")


def test_domias_marginals_reads_the_models_dp_marginals(census) -> None:
    schema, members, non_members, reference, more = census
    model = dp_marginals_model(schema, more)
    fake = shuffle_features(members, schema, 0.2, seed=5)
    attack = DOMIASMarginals(seed=0)
    result = attack.run(attack_data(schema, fake, reference, model), members, non_members)
    assert attack.details_["reference"] == "dp_marginals"
    assert result.auc_ci_low > 0.5, result


@pytest.mark.parametrize("cls", VARIANTS)
def test_domias_is_at_chance_on_an_independent_draw(census, cls) -> None:
    schema, members, non_members, reference, more = census
    result = cls(seed=0).run(attack_data(schema, more.iloc[:500], reference), members,
                             non_members)
    assert at_chance(result), result
    assert result.ci_low <= 0.5 <= result.ci_high, result


@pytest.mark.parametrize("cls", VARIANTS)
def test_blinded_domias_detects_nothing(census, cls) -> None:
    """Synthetic rows replaced by uniform noise on the declared domains: no signal left."""
    schema, members, non_members, reference, _ = census
    noise = uniform_rows(schema, 2000, seed=0)
    result = cls(seed=0).run(attack_data(schema, noise, reference), members, non_members)
    assert at_chance(result), result
    assert not result.ci_low > 0.5, result


@pytest.mark.parametrize("cls", VARIANTS)
def test_threshold_comes_from_held_out_reference_rows_only(census, cls) -> None:
    schema, members, non_members, reference, more = census
    data = attack_data(schema, shuffle_features(members, schema, 0.2, seed=5), reference)
    attack = cls(seed=0)
    attack.run(data, members, non_members)
    threshold = attack.threshold_
    attack.run(data, more.iloc[:300], more.iloc[300:600])  # other evaluation rows
    assert attack.threshold_ == threshold
    # The median score over the reference half that fitted nothing ...
    held_out = split_reference(reference, data.seed)[1]
    assert threshold == float(np.median(attack.score(held_out)))
    # ... so fresh non-members are called "member" about half the time.
    called = attack.decisions(members, more.iloc[1000:1500]).non_members.mean()
    assert 0.4 < called < 0.6


def test_one_way_marginalises_clips_and_averages_the_dp_tables() -> None:
    plan = MarginalPlan(("a", "b", "t"), (2, 3, 2), ((0, 2), (1, 2)))
    a_t = np.array([0.1, 0.2, 0.3, 0.4])                # rows a, columns t
    b_t = np.array([0.2, 0.0, 0.3, -0.1, 0.4, 0.2])     # one negative cell, clipped
    p_a, p_b, p_t = one_way(NoisyMarginals(plan, 1.0, (a_t, b_t)))
    np.testing.assert_allclose(p_a, [0.3, 0.7])
    np.testing.assert_allclose(p_b, np.array([0.2, 0.3, 0.6]) / 1.1)
    np.testing.assert_allclose(p_t, (np.array([0.4, 0.6]) + np.array([0.9, 0.2]) / 1.1) / 2)


@pytest.mark.slow
def test_domias_detects_the_overfit_non_dp_vaes_table(census) -> None:
    """A non-DP VAE trained far too long on 500 rows: its table over-represents members,
    the more so the more rows are released (measured AUC 0.60 at n, 0.65 at 10·n)."""
    schema, members, non_members, reference, _ = census
    model = DPVAESynthesizer(schema, private=False, epochs=300, seed=0).fit(members)
    for rows in (500, 5000):
        synthetic = conform(model.sample(rows, seed=1), schema)
        for cls in VARIANTS:
            result = cls(seed=0).run(attack_data(schema, synthetic, reference), members,
                                     non_members)
            assert result.auc_ci_low > 0.5, (rows, result)


@pytest.fixture
def repeatable_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secret randomness of private training made repeatable for this test only (a
    deployed run draws fresh secrets), so the DP model, and the figures, are fixed."""
    counter = itertools.count(1)

    def stream(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"test-secret-domias-{next(counter)}".encode()).digest()
        return out[:n]

    monkeypatch.setattr(randomness.secrets, "randbits",
                        lambda k: int.from_bytes(stream((k + 7) // 8), "big") >> (-k % 8))
    monkeypatch.setattr(randomness.secrets, "token_bytes", stream)


@pytest.mark.slow
def test_domias_is_at_chance_on_a_dp_vae_at_epsilon_1(census, repeatable_secrets) -> None:
    """DP-SGD at ε = 1 with DP marginals, attacked as in the pipeline (reference rows are
    the model's own draws; ``domias_marginals`` reads the model's DP marginals): 10·n
    released rows, at chance (measured AUC 0.506 and 0.495)."""
    schema, members, non_members, _, _ = census
    model = DPVAESynthesizer(schema, epsilon=1.0, seed=0).fit(members)
    assert model.marginals is not None
    synthetic = conform(model.sample(5000, seed=1), schema)
    draws = conform(model.sample(2000, seed=9), schema)
    for cls in VARIANTS:
        attack = cls(seed=0)
        result = attack.run(AttackData(schema, synthetic, draws, model=model), members,
                            non_members)
        assert at_chance(result), result
        assert attack.details_["reference"] == ("reference" if cls is DOMIAS
                                                else "dp_marginals")
