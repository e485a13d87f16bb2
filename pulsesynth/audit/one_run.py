"""One-run canary privacy audit (Steinke, Nasr & Jagielski, NeurIPS 2023).

"Privacy Auditing with One (1) Training Run" (arXiv:2305.08846) audits a DP training
algorithm with a single training run: ``m`` crafted canary rows are each included in the
training set independently with probability 1/2, the model is trained once, and an
auditor who sees the trained model guesses, for some of the canaries, whether they were
included. If the mechanism is (ε, δ)-DP, the number of correct guesses is stochastically
dominated by a binomial with success probability ``e^ε / (1 + e^ε)`` (plus a δ term), so
many correct guesses *reject* (ε, δ)-DP for small ε: the largest rejected ε is an
empirical lower bound on the mechanism's true ε. A DP run whose lower bound exceeds its
accountant's ε means the DP wiring is broken; a non-private memorising run with a clearly
positive bound shows that the attack has power (an audit that cannot fail is worthless).

Design choices here:

* Canaries are drawn from the **declared** public domains only (the schema), never from
  statistics of the real rows: the audit itself must not leak anything it then measures.
* Each canary is its own privacy unit: the model trains under a unit-less copy of the
  schema, so every row is one unit and no canary can be capped away. The real rows are
  a fixed background (the paper's theorem holds for any fixed non-canary data); callers
  pass one row per unit where they want a production-like background.
* White-box scores: the VAE's per-record ELBO, the classifier's log-probability of the
  canary's own (randomly assigned) label. A member is expected to score higher.
* Guesses: for a cut ``k``, the ``k`` highest scores are guessed IN and the ``k`` lowest
  OUT (``r = 2k`` guesses, the rest abstain). Several cuts are tried and the best bound is
  kept, with a Bonferroni correction over the number of cuts so that the maximum is still
  a bound at the stated confidence.

No Prefect imports: this is domain code, called by benchmarks and tests.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from pulsesynth.schema import CategoricalColumn, DatasetSchema, NumericColumn, TemporalColumn
from pulsesynth.temporal import assemble

#: Largest ε the bisection searches; a bound at this value means "no ε below it holds".
MAX_EPSILON = 100.0
#: Bisection steps: 60 halvings of [0, 100] give far more precision than any table needs.
BISECTION_STEPS = 60
#: Relative cuts (fractions of m guessed IN, and as many OUT) tried by :func:`default_ks`.
DEFAULT_K_FRACTIONS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5)


# --- canaries --------------------------------------------------------------------------


def make_canaries(schema: DatasetSchema, m: int, rng: np.random.Generator) -> pd.DataFrame:
    """``m`` canary rows drawn from the schema's declared domains alone.

    * categorical: a uniformly random declared category (or missing, as one more
      equally likely level, where the column is nullable);
    * numeric (synthesized or not): a uniformly random declared bin (each declared
      exact value as a level of its own, missing as one more level where nullable), then a value
      drawn uniformly inside that bin — an integer inside it for integer columns;
    * date, time, datetime: a value built from uniformly drawn components, inside the
      bounds (missing with probability 1/2 where nullable);
    * identifier integers: distinct integers inside the bounds (so row keys stay unique
      among canaries); text columns: the placeholder ``canary-<i>``.

    Nothing is computed from real rows: the frame depends on ``schema``, ``m`` and
    ``rng`` only. Columns keep the schema's order.
    """
    if m < 1:
        raise ValueError("m must be at least 1")
    data: dict[str, pd.Series] = {}
    for col in schema.columns:
        if col.type == "text":
            # Free text has no public domain; a fixed placeholder is valid and
            # obviously synthetic (text is never synthesized or used for training).
            data[col.name] = pd.Series([f"canary-{i:06d}" for i in range(m)], dtype=object)
        elif col.type == "categorical":
            data[col.name] = _canary_categorical(col, m, rng)
        elif isinstance(col, TemporalColumn):
            # Every component drawn uniformly over its public levels (the decoding rule
            # of pulsesynth.temporal with nothing modelled); missing as one more level.
            missing = (rng.integers(0, 2, size=m) == 1) if col.nullable else np.zeros(m, bool)
            data[col.name] = assemble(col, {}, missing, rng)
        elif col.role == "identifier":
            data[col.name] = _canary_identifier(col, m, rng)
        else:
            data[col.name] = _canary_numeric(col, m, rng)
    return pd.DataFrame(data)


def _canary_categorical(col: CategoricalColumn, m: int, rng: np.random.Generator) -> pd.Series:
    cats = list(col.categories)
    levels = len(cats) + (1 if col.nullable else 0)
    idx = rng.integers(0, levels, size=m)
    missing = idx >= len(cats)
    safe = np.where(missing, 0, idx)
    if isinstance(cats[0], int):
        values = np.asarray(cats, dtype=np.int64)[safe]
        if col.nullable:
            return pd.Series(pd.array(values, dtype="Int64")).mask(missing)
        return pd.Series(values, dtype="int64")
    obj = pd.Series(np.asarray(cats, dtype=object)[safe], dtype=object)
    return obj.mask(missing) if col.nullable else obj


def _integer_range(a: float, b: float, last: bool) -> tuple[int, int]:
    """Integers in the bin ``[a, b)`` (``[a, b]`` for the last bin), as ``(lo, hi)``."""
    lo = math.ceil(a)
    hi = math.floor(b) if last else math.ceil(b) - 1
    return lo, hi


def _canary_numeric(col: NumericColumn, m: int, rng: np.random.Generator) -> pd.Series:
    lo_b, hi_b = (float(v) for v in col.bounds)
    edges = [float(e) for e in col.bins]
    is_int = col.type == "integer"
    bins: list[tuple[float, float, bool]] = []
    for a, b in zip(edges, edges[1:], strict=False):
        last = b == hi_b
        if is_int:
            ia, ib = _integer_range(a, b, last)
            if ia > ib:  # a bin holding no integer cannot carry an integer canary
                continue
        bins.append((a, b, last))
    # Levels: the declared bins, then each exact value and missing (nullable) as extra levels.
    n_levels = len(bins) + len(col.exact_values) + (1 if col.nullable else 0)
    level = rng.integers(0, n_levels, size=m)
    u = rng.random(m)
    out = np.zeros(m, dtype=np.float64)
    missing = np.zeros(m, dtype=bool)
    for j, (a, b, last) in enumerate(bins):
        sel = level == j
        if is_int:
            ia, ib = _integer_range(a, b, last)
            out[sel] = np.minimum(ia + np.floor(u[sel] * (ib - ia + 1)), ib)
        else:
            out[sel] = np.clip(a + u[sel] * (b - a), a, b)
    extra = len(bins)
    for value in col.exact_values:
        out[level == extra] = value
        extra += 1
    if col.nullable:
        missing = level == extra
    if is_int:
        ints = out.astype(np.int64)
        if col.nullable:
            return pd.Series(pd.array(ints, dtype="Int64")).mask(missing)
        return pd.Series(ints, dtype="int64")
    out[missing] = np.nan
    return pd.Series(out, dtype="float64")


def _canary_identifier(col: NumericColumn, m: int, rng: np.random.Generator) -> pd.Series:
    lo, hi = (float(v) for v in col.bounds)
    if col.type == "integer":
        ia, ib = math.ceil(lo), math.floor(hi)
        span = ib - ia + 1
        if span < m:
            raise ValueError(f"{col.name}: bounds hold fewer than {m} distinct identifiers")
        # Distinct draws keep every canary's row key unique among canaries.
        values = ia + rng.choice(span, size=m, replace=False)
        return pd.Series(values.astype(np.int64), dtype="int64")
    return pd.Series(lo + rng.random(m) * (hi - lo), dtype="float64")


# --- the bound -------------------------------------------------------------------------


def p_value(correct: int, guesses: int, m: int, epsilon: float, delta: float) -> float:
    """P[at least ``correct`` of ``guesses`` right] under the null "(ε, δ)-DP".

    Theorem 5.2 of Steinke, Nasr & Jagielski (2023): with ``q = e^ε / (1 + e^ε)`` and
    ``X ~ Binomial(guesses, q)``,

        p = P[X ≥ v] + 2 m δ · max_{i = 1..v} P[v − i ≤ X < v] / i,

    capped at 1 (``v`` = ``correct``).
    """
    v, r = int(correct), int(guesses)
    q = 1.0 / (1.0 + math.exp(-epsilon))
    beta = float(stats.binom.sf(v - 1, r, q))  # P[X >= v]
    alpha = 0.0
    if delta > 0 and v > 0:
        i = np.arange(1, v + 1)
        # P[v - i <= X < v] as a running sum of the pmf from v - 1 downwards: no
        # cancellation, unlike a difference of two tail probabilities.
        window = np.cumsum(stats.binom.pmf(v - i, r, q))
        alpha = float(np.max(window / i))
    return min(1.0, beta + alpha * 2.0 * m * delta)


def epsilon_lower_bound(
    correct: int, guesses: int, m: int, delta: float, confidence: float = 0.95
) -> float:
    """Lower bound on ε from ``correct`` right guesses out of ``guesses`` among ``m`` canaries.

    Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run", NeurIPS 2023
    (arXiv:2305.08846), Theorem 5.2 with the search of their Algorithm 1 / appendix code.
    Each of the ``m`` canaries is included independently with probability 1/2; the auditor
    makes ``r = guesses`` guesses (abstaining on the rest) of which ``v = correct`` are
    right. If the mechanism is (ε, δ)-DP then, with ``q = e^ε / (1 + e^ε)`` and
    ``X ~ Binomial(r, q)``,

        P[W ≥ v] ≤ p(ε) = P[X ≥ v] + 2 m δ · max_{i = 1..v} P[v − i ≤ X < v] / i.

    The returned bound is the largest ε with ``p(ε) < 1 − confidence`` (found by
    bisection; ``p`` grows with ε), i.e. every ε' below it is rejected at that confidence;
    0 when even ε = 0 is not rejected. δ is the mechanism's δ (the δ term costs the
    ``2 m δ`` factor: it is why a bound at δ > 0 is lower than at δ = 0).
    """
    v, r = int(correct), int(guesses)
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= correct <= guesses <= m, got {v}, {r}, {m}")
    if not 0 <= delta < 1:
        raise ValueError("delta must be in [0, 1)")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    alpha = 1.0 - confidence
    if r == 0 or p_value(v, r, m, 0.0, delta) >= alpha:
        return 0.0
    lo, hi = 0.0, 1.0  # invariant: p(lo) < alpha <= p(hi)
    while p_value(v, r, m, hi, delta) < alpha:
        lo, hi = hi, 2 * hi
        if hi >= MAX_EPSILON:
            return MAX_EPSILON
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        if p_value(v, r, m, mid, delta) < alpha:
            lo = mid
        else:
            hi = mid
    return lo


def default_ks(m: int) -> list[int]:
    """Cuts tried by default: 1%, 2.5%, 5%, 10%, 25% and 50% of the canaries each side."""
    if m < 2:
        raise ValueError("a one-run audit needs at least two canaries")
    # Every cut keeps 2k <= m (k guessed IN, k OUT); tiny m falls back to k = 1.
    return sorted({k for k in (max(1, int(m * f)) for f in DEFAULT_K_FRACTIONS) if 2 * k <= m})


def audit_one_run(
    scores: Sequence[float] | np.ndarray,
    included: Sequence[bool] | np.ndarray,
    ks: Sequence[int],
    delta: float,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Best ε lower bound over the cuts ``ks`` (Bonferroni-corrected), AUC and best cut.

    For each ``k``: the ``k`` highest-scoring canaries are guessed IN, the ``k`` lowest
    OUT (``2k`` guesses). Trying ``K = len(ks)`` cuts and keeping the best is K tests, so
    each bound is computed at confidence ``1 − (1 − confidence) / K`` (Bonferroni): by the
    union bound, the maximum is a lower bound at ``confidence`` overall.
    """
    s = np.asarray(scores, dtype=np.float64)
    inc = np.asarray(included, dtype=bool)
    m = len(s)
    if inc.shape != s.shape or m == 0:
        raise ValueError("scores and included must be non-empty and of the same length")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    cuts = sorted({int(k) for k in ks})
    if not cuts or cuts[0] < 1 or 2 * cuts[-1] > m:
        raise ValueError(f"every k must satisfy 1 <= k <= m/2 = {m / 2}")
    per_test = 1.0 - (1.0 - confidence) / len(cuts)
    order = np.argsort(-s, kind="stable")  # highest score first
    per_k: list[dict[str, Any]] = []
    for k in cuts:
        correct = int(inc[order[:k]].sum() + (~inc[order[-k:]]).sum())
        bound = epsilon_lower_bound(correct, 2 * k, m, delta, per_test)
        per_k.append({"k": k, "guesses": 2 * k, "correct": correct, "eps_lower_bound": bound})
    best = max(per_k, key=lambda row: (row["eps_lower_bound"], -row["k"]))
    return {
        "eps_lower_bound": best["eps_lower_bound"],
        "k": best["k"],
        "auc": _auc(s, inc),
        "m": m,
        "included": int(inc.sum()),
        "delta": delta,
        "confidence": confidence,
        "correction": (f"Bonferroni over {len(cuts)} cuts: each bound at confidence "
                       f"{per_test:.6g}"),
        "per_k": per_k,
    }


def _auc(scores: np.ndarray, included: np.ndarray) -> float:
    """ROC AUC of scores against inclusion (0.5 when one class is absent)."""
    from sklearn.metrics import roc_auc_score

    if included.all() or not included.any():
        return 0.5
    return float(roc_auc_score(included, scores))


# --- one training run ------------------------------------------------------------------


def _training_frame(
    schema: DatasetSchema, base_rows: pd.DataFrame, canaries: pd.DataFrame,
    included: np.ndarray,
) -> tuple[DatasetSchema, pd.DataFrame]:
    """The background rows plus the included canaries, under a unit-less schema copy.

    Without a privacy unit every row is its own unit, so the per-unit row cap keeps every
    row: no canary is capped away, none shares a unit with a real row, and the bound is
    per row (= per unit here). The background is fixed and used as given (the bound holds
    for any fixed background); it is not capped here.
    """
    train = pd.concat([base_rows, canaries[included]], ignore_index=True)
    return dataclasses.replace(schema, privacy_unit=()), train


def _draw(
    schema: DatasetSchema, m: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Canaries and their independent fair-coin inclusion, from one seeded generator."""
    rng = np.random.default_rng(seed)
    canaries = make_canaries(schema, m, rng)
    included = rng.random(m) < 0.5
    return canaries, included


def _fill(details: dict[str, Any] | None, metadata: dict[str, Any],
          result: dict[str, Any]) -> None:
    """Copy the audit's side facts into the caller's ``details`` dict, if any."""
    if details is None:
        return
    details.update(
        delta=result["delta"], confidence=result["confidence"],
        correction=result["correction"], included=result["included"],
        per_k=result["per_k"], train_rows=metadata.get("train_rows"),
        epsilon_reported=metadata.get("epsilon"), steps=metadata.get("steps"),
        noise_multiplier=metadata.get("noise_multiplier"),
    )


def _row(mechanism: str, setting: str | None, private: bool, epsilon: float | None,
         m: int, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "mechanism": mechanism,
        "setting": setting or ("DP" if private else "non-private"),
        "epsilon": float(epsilon) if private and epsilon is not None else None,
        "m": m,
        "k": result["k"],
        "eps_lower_bound": result["eps_lower_bound"],
        "auc": result["auc"],
    }


def run_vae_canary_audit(
    schema: DatasetSchema,
    base_rows: pd.DataFrame,
    m: int,
    epsilon: float | None,
    private: bool,
    seed: int,
    *,
    ks: Sequence[int] | None = None,
    confidence: float = 0.95,
    setting: str | None = None,
    details: dict[str, Any] | None = None,
    **synth_kwargs: Any,
) -> dict[str, Any]:
    """One-run audit of the DP-VAE: one training, scores = per-record ELBO of each canary.

    ``seed`` fixes the canaries, their inclusion and the training (this is a benchmark or
    test, never a private release). ``synth_kwargs`` go to
    :class:`~pulsesynth.synth.DPVAESynthesizer` (epochs, batch_size, ...). δ for the bound
    is the trained mechanism's δ; a non-private run uses the δ the DP run would have had
    (:func:`~pulsesynth.synth.train.default_delta`) so both bounds answer the same
    question. ``details``, when given, is filled with what a benchmark records beside the
    row (δ, training rows, ε reported, the per-cut counts, the correction).
    """
    from pulsesynth.synth import DPVAESynthesizer
    from pulsesynth.synth.train import default_delta

    canaries, included = _draw(schema, m, seed)
    train_schema, train = _training_frame(schema, base_rows, canaries, included)
    synth = DPVAESynthesizer(train_schema, epsilon=epsilon, private=private, seed=int(seed),
                             **synth_kwargs)
    synth.fit(train)
    scores = synth.elbo(canaries)["elbo"].to_numpy()
    delta = synth.metadata.get("delta") or default_delta()
    result = audit_one_run(scores, included, ks or default_ks(m), float(delta), confidence)
    _fill(details, synth.metadata, result)
    return _row("vae", setting, private, epsilon, m, result)


def run_classifier_canary_audit(
    schema: DatasetSchema,
    base_rows: pd.DataFrame,
    m: int,
    epsilon: float | None,
    private: bool,
    seed: int,
    *,
    ks: Sequence[int] | None = None,
    confidence: float = 0.95,
    setting: str | None = None,
    details: dict[str, Any] | None = None,
    **clf_kwargs: Any,
) -> dict[str, Any]:
    """One-run audit of the DP classifier: scores = log-probability of the canary's label.

    Each canary's target is a uniformly random *declared* class (never missing: a row
    without a declared class would be dropped from training, silently un-including it),
    so a member's label can only be predicted well by memorising it. ``clf_kwargs`` go
    to :class:`~pulsesynth.classifier.DPClassifier`; ``details`` as for
    :func:`run_vae_canary_audit`.
    """
    from pulsesynth.classifier import DPClassifier
    from pulsesynth.encoding import category_codes
    from pulsesynth.synth.train import default_delta

    target = schema.target_column
    if target is None:
        raise ValueError(f"{schema.id}: no target declared; nothing to classify")
    canaries, included = _draw(schema, m, seed)
    classes = list(target.categories)
    label_rng = np.random.default_rng([seed, 1])  # a stream apart from the canaries'
    labels = label_rng.integers(0, len(classes), size=m)
    canaries[target.name] = pd.Series(np.asarray(classes, dtype=object)[labels])
    if isinstance(classes[0], int):
        canaries[target.name] = canaries[target.name].astype("int64")
    train_schema, train = _training_frame(schema, base_rows, canaries, included)
    clf = DPClassifier(train_schema, epsilon=epsilon, private=private, seed=int(seed),
                       **clf_kwargs)
    clf.fit(train)
    proba = clf.predict_proba(canaries)
    own = category_codes(canaries[target.name], target)
    # Clip before the log: a memorised non-member can get probability 0 in float32.
    scores = np.log(np.clip(proba[np.arange(m), own], 1e-300, None))
    delta = clf.metadata.get("delta") or default_delta()
    result = audit_one_run(scores, included, ks or default_ks(m), float(delta), confidence)
    _fill(details, clf.metadata, result)
    return _row("classifier", setting, private, epsilon, m, result)
