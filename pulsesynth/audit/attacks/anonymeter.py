"""Attribute-inference and singling-out risk in the style of Anonymeter (Giomi et al., 2023).

Both compare an attack on the training rows (targets) with the same attack on holdout rows
(control): the synthetic data should help the attacker no more on people who were in the
training set than on people who were not. Risk = (attack − control) / (1 − control),
reported with an interval built from Clopper–Pearson bounds of both rates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pulsesynth.audit.distances import GowerSpace, nearest
from pulsesynth.audit.metrics import clopper_pearson
from pulsesynth.encoding import require_column
from pulsesynth.schema import CategoricalColumn, DatasetSchema, DomainColumn


@dataclass(frozen=True)
class RiskResult:
    """Attack vs control success and the resulting risk."""

    attack: str
    column: str | None
    attack_rate: float
    control_rate: float
    risk: float
    risk_ci_low: float
    risk_ci_high: float
    n_attacks: int

    def to_dict(self) -> dict:
        return asdict(self)


def _risk(attack: str, column: str | None, successes: int, control: int, n: int) -> RiskResult:
    rate, control_rate = successes / n, control / n
    low, high = clopper_pearson(successes, n)
    c_low, c_high = clopper_pearson(control, n)

    def risk(a: float, c: float) -> float:
        return max(0.0, (a - c) / max(1e-12, 1 - c))

    # Both rates are estimates: the interval pairs the attack's bound with the control's
    # opposite bound, so noise in the control cannot pass for risk.
    return RiskResult(
        attack=attack, column=column, attack_rate=rate, control_rate=control_rate,
        risk=risk(rate, control_rate), risk_ci_low=risk(low, c_high),
        risk_ci_high=risk(high, c_low), n_attacks=n,
    )


def _same_value(col: DomainColumn, guess: pd.Series, truth: pd.Series) -> np.ndarray:
    """A guess is right when equal (categoricals) or in the same declared bin (numerics)."""
    g, t = guess.reset_index(drop=True), truth.reset_index(drop=True)
    both_na = g.isna().to_numpy() & t.isna().to_numpy()
    if isinstance(col, CategoricalColumn):
        return both_na | (g.astype(object) == t.astype(object)).fillna(False).to_numpy(bool)
    edges = np.asarray(col.bins, dtype=float)
    gb = np.digitize(pd.to_numeric(g).to_numpy(float, na_value=np.nan), edges[1:-1])
    tb = np.digitize(pd.to_numeric(t).to_numpy(float, na_value=np.nan), edges[1:-1])
    present = ~(g.isna().to_numpy() | t.isna().to_numpy())
    return both_na | (present & (gb == tb))


def attribute_inference(schema: DatasetSchema, train: pd.DataFrame, holdout: pd.DataFrame,
                        synthetic: pd.DataFrame, n_attacks: int = 500,
                        seed: int = 0) -> list[RiskResult]:
    """For each sensitive column: guess it from the nearest synthetic row on the QIs."""
    qis = [c.name for c in schema.synthesized_columns if c.role == "quasi_identifier"]
    secrets = [c for c in schema.synthesized_columns if c.role in ("sensitive", "target")]
    if not qis or not secrets:
        return []
    rng = np.random.default_rng(seed)
    n = min(n_attacks, len(train), len(holdout))
    targets = train.iloc[rng.choice(len(train), n, replace=False)]
    controls = holdout.iloc[rng.choice(len(holdout), n, replace=False)]
    space = GowerSpace(schema, qis)
    syn = space.encode(synthetic)
    results = []
    for secret in secrets:
        hits = []
        for records in (targets, controls):
            _, index = nearest(space.encode(records), syn)
            guess = require_column(synthetic, secret, "synthetic").iloc[index]
            truth = require_column(records, secret, "real")
            hits.append(int(_same_value(secret, guess, truth).sum()))
        results.append(_risk("attribute_inference", secret.name, hits[0], hits[1], n))
    return results


def singling_out(schema: DatasetSchema, train: pd.DataFrame, holdout: pd.DataFrame,
                 synthetic: pd.DataFrame, n_attacks: int = 500, n_columns: int = 3,
                 seed: int = 0) -> RiskResult:
    """Predicates read off synthetic rows (k QIs equal / in the same bin) that match exactly
    one training row count as singling someone out; the control counts them on holdout."""
    qis = [c for c in schema.synthesized_columns if c.role == "quasi_identifier"]
    rng = np.random.default_rng(seed)
    n = min(len(train), len(holdout))
    train = train.iloc[rng.choice(len(train), n, replace=False)]
    holdout = holdout.iloc[rng.choice(len(holdout), n, replace=False)]
    k = min(n_columns, len(qis))
    attacks = min(n_attacks, len(synthetic))
    rows = synthetic.iloc[rng.choice(len(synthetic), attacks, replace=False)]
    keys_train = {c.name: _level(c, require_column(train, c, "train")) for c in qis}
    keys_hold = {c.name: _level(c, require_column(holdout, c, "holdout")) for c in qis}
    keys_syn = {c.name: _level(c, require_column(rows, c, "synthetic")) for c in qis}
    hits = [0, 0]
    for i in range(attacks):
        chosen = rng.choice(len(qis), k, replace=False)
        for side, keys in enumerate((keys_train, keys_hold)):
            mask = np.ones(n, dtype=bool)
            for j in chosen:
                name = qis[j].name
                mask &= keys[name] == keys_syn[name][i]
            hits[side] += int(mask.sum() == 1)
    return _risk("singling_out", None, hits[0], hits[1], attacks)


def _level(col: DomainColumn, values: pd.Series) -> np.ndarray:
    """Each value's declared category code or bin index (missing = -1)."""
    if isinstance(col, CategoricalColumn):
        return pd.Categorical(values, categories=list(col.categories)).codes.astype(int)
    numbers = pd.to_numeric(values).to_numpy(float, na_value=np.nan)
    levels = np.digitize(numbers, np.asarray(col.bins, dtype=float)[1:-1])
    return np.where(np.isnan(numbers), -1, levels)
