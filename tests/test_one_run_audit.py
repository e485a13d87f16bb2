"""One-run canary audit (Steinke, Nasr & Jagielski 2023): the bound, the canaries, one run.

The bound is checked against independent computations: at δ = 0 it is the logit of the
Clopper–Pearson lower confidence limit of the guessing accuracy; at δ > 0 a plain loop
over binomial probabilities (the paper's appendix code, written out again here) must put
the returned ε exactly at the edge of rejection. The canaries must stay inside every
built-in schema's declared domains. The slow test runs one small audit of a DP-VAE at
ε = 1 (the bound must not exceed ε) and of a non-private memorising VAE (the bound must
be positive: the audit can fail).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pulsesynth.audit.one_run import (
    audit_one_run,
    default_ks,
    epsilon_lower_bound,
    make_canaries,
    run_vae_canary_audit,
)
from pulsesynth.encoding import TableEncoder
from pulsesynth.schema import DatasetSchema, load_schema

SCHEMAS = sorted((Path(__file__).resolve().parent.parent / "schemas").glob("*.yaml"))


def _naive_p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """Theorem 5.2's p-value by a plain loop over binomial probabilities (independent of
    the vectorised version under test)."""
    q = math.exp(eps) / (1 + math.exp(eps))
    tail = sum(stats.binom.pmf(j, r, q) for j in range(v, r + 1))
    best, window = 0.0, 0.0
    for i in range(1, v + 1):
        window += stats.binom.pmf(v - i, r, q)
        best = max(best, window / i)
    return min(1.0, tail + 2 * m * delta * best)


# --- the bound ---------------------------------------------------------------------------


def test_all_correct_with_many_guesses_gives_a_positive_bound() -> None:
    assert epsilon_lower_bound(200, 200, 1000, 1e-5) > 2.0


def test_half_correct_gives_zero() -> None:
    assert epsilon_lower_bound(100, 200, 1000, 1e-5) == 0.0
    assert epsilon_lower_bound(0, 0, 1000, 1e-5) == 0.0


def test_monotone_in_the_number_correct() -> None:
    bounds = [epsilon_lower_bound(v, 100, 1000, 1e-5) for v in range(50, 101)]
    assert all(a <= b for a, b in zip(bounds, bounds[1:], strict=False))
    assert bounds[-1] > bounds[-10] > 0


def test_delta_zero_matches_clopper_pearson() -> None:
    # With δ = 0 the p-value is P[Bin(r, q) >= v]; the largest q it rejects at level α is
    # the Clopper-Pearson lower limit Beta(α; v, r - v + 1), and ε = logit(q).
    for v, r, conf in ((45, 50, 0.95), (180, 200, 0.99), (30, 30, 0.95)):
        q = stats.beta.ppf(1 - conf, v, r - v + 1)
        expected = math.log(q / (1 - q))
        assert epsilon_lower_bound(v, r, 1000, 0.0, conf) == pytest.approx(expected, abs=1e-6)


def test_delta_term_matches_an_independent_p_value() -> None:
    m, r, v, delta, alpha = 1000, 200, 170, 1e-5, 0.05
    eps = epsilon_lower_bound(v, r, m, delta, 1 - alpha)
    assert eps > 0
    # ε sits on the edge of rejection (up to summation-order rounding): just below it is
    # rejected, just above it is not.
    assert _naive_p_value(m, r, v, eps, delta) == pytest.approx(alpha, abs=1e-9)
    assert _naive_p_value(m, r, v, eps - 1e-4, delta) < alpha
    assert _naive_p_value(m, r, v, eps + 1e-4, delta) >= alpha
    # The δ term can only weaken the bound.
    assert eps <= epsilon_lower_bound(v, r, m, 0.0, 1 - alpha)


def test_bound_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        epsilon_lower_bound(11, 10, 100, 1e-5)
    with pytest.raises(ValueError):
        epsilon_lower_bound(5, 10, 100, 1e-5, confidence=1.0)


# --- the audit over cuts ------------------------------------------------------------------


def test_audit_perfect_scores_bonferroni_and_auc() -> None:
    rng = np.random.default_rng(0)
    included = rng.random(1000) < 0.5
    scores = included + rng.random(1000) * 0.5  # every member above every non-member
    ks = [10, 50, 100, 250]
    out = audit_one_run(scores, included, ks, delta=1e-5)
    assert out["auc"] == pytest.approx(1.0)
    per_test = 1 - 0.05 / len(ks)
    expected = max(epsilon_lower_bound(2 * k, 2 * k, 1000, 1e-5, per_test) for k in ks)
    assert out["eps_lower_bound"] == pytest.approx(expected)
    assert out["eps_lower_bound"] < epsilon_lower_bound(500, 500, 1000, 1e-5)  # uncorrected
    assert out["k"] in ks
    assert "Bonferroni over 4 cuts" in out["correction"]


def test_audit_of_noise_finds_little() -> None:
    rng = np.random.default_rng(1)
    included = rng.random(1000) < 0.5
    out = audit_one_run(rng.random(1000), included, default_ks(1000), delta=1e-5)
    assert out["eps_lower_bound"] < 0.5
    assert 0.4 < out["auc"] < 0.6


def test_audit_refuses_cuts_beyond_half() -> None:
    with pytest.raises(ValueError):
        audit_one_run(np.arange(10.0), np.arange(10) % 2 == 0, [6], delta=1e-5)


# --- canaries -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
def test_canaries_stay_inside_the_declared_domains(path: Path) -> None:
    schema = load_schema(path)
    m = 3000
    canaries = make_canaries(schema, m, np.random.default_rng(7))
    assert list(canaries.columns) == schema.column_names and len(canaries) == m
    for col in schema.columns:
        values = canaries[col.name]
        missing = values.isna().to_numpy()
        if not col.nullable:
            assert not missing.any(), col.name
        present = values[~missing]
        if col.type == "categorical":
            declared = set(col.categories)
            assert set(present.tolist()) <= declared, col.name
            assert set(present.tolist()) == declared, f"{col.name}: not every category drawn"
        elif col.type in ("integer", "float"):
            x = present.astype("float64").to_numpy()
            lo, hi = col.bounds
            assert ((x >= lo) & (x <= hi)).all(), col.name
            if col.type == "integer":
                assert (x == np.floor(x)).all(), col.name
            if col.role == "identifier":
                assert present.is_unique, col.name
            else:  # each declared exact value is a level canaries draw
                assert set(col.exact_values) <= set(x.tolist()), col.name
        else:  # text: a placeholder, never missing
            assert present.str.startswith("canary-").all() and not missing.any()
    # The schema-bound encoder finds nothing out of domain (no clipping, no unknown
    # category, no unobserved cell).
    encoder = TableEncoder(schema)
    encoder.transform(canaries)
    report = encoder.last_transform_report
    assert report is not None
    for name, counts in report["columns"].items():
        assert counts["clipped"] == counts["unknown_category"] == counts["unobserved"] == 0, name


def test_canaries_depend_on_the_schema_and_rng_only() -> None:
    schema = load_schema(SCHEMAS[0])
    a = make_canaries(schema, 200, np.random.default_rng(3))
    b = make_canaries(schema, 200, np.random.default_rng(3))
    pd.testing.assert_frame_equal(a, b)
    c = make_canaries(schema, 200, np.random.default_rng(4))
    assert not a.equals(c)


# --- one small audit ----------------------------------------------------------------------


def _census(built_warehouse, rows: int) -> tuple[DatasetSchema, pd.DataFrame]:
    snap = built_warehouse.pull("census_income")
    train = snap.frame[snap.frame["uci_split"] == "train"]
    return snap.schema, train.sample(rows, random_state=0)


@pytest.mark.slow
def test_one_run_audit_of_the_dp_vae(built_warehouse) -> None:
    """DP at ε = 1 must not be contradicted; a memorising non-private VAE must be caught.

    500 canaries on 500 real rows: the DP run uses the synthesizer's defaults, the
    non-private one batch 64 for 60 epochs (a bound of about 2.2 measured here).
    """
    import torch

    os.environ.setdefault("PULSESYNTH_THREADS", "1")
    torch.set_num_threads(1)
    schema, base = _census(built_warehouse, 500)
    dp = run_vae_canary_audit(schema, base, 500, 1.0, True, seed=0)
    assert dp["mechanism"] == "vae" and dp["epsilon"] == 1.0 and dp["m"] == 500
    assert dp["eps_lower_bound"] <= 1.0, f"DP-VAE at eps=1 audited above its epsilon: {dp}"
    plain = run_vae_canary_audit(schema, base, 500, None, False, seed=0,
                                 batch_size=64, epochs=60)
    assert plain["epsilon"] is None
    assert plain["eps_lower_bound"] > 0, f"the audit caught nothing on a memorising VAE: {plain}"
    assert plain["auc"] > 0.6
