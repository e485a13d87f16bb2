"""Membership-inference attacks on a VAE and on its synthetic data (seed 000 §6.3–6.4).

**ELBO attack (model MIA).** The auditor trains shadow VAEs with the target's exact recipe
(same ε, epochs, batch rule and architecture, imported from the synthesizer) on reference
rows it holds, computes each record's ELBO and its reconstruction and KL parts under the
shadow, and fits an attack classifier on shadow members vs non-members. That classifier —
with its own 0.5 threshold, never tuned on the evaluation rows — is then applied to the
target model's ELBO features on target members vs holdout non-members.

**Surrogate attack (synthetic-data MIA).** The attacker only sees the released table, so it
trains a surrogate VAE on it and runs the ELBO attack against the surrogate. Its shadows
are surrogates too (shadow members → release mechanism → shadow synthetic table →
surrogate), so the classifier sees features on the scale it is applied to. The release
mechanism is a parameter: the DP-VAE's fit+sample, or any other (the calibration tests use
feature shuffling).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pulsesynth.audit.metrics import AttackResult, score_attack
from pulsesynth.audit.release_stats import MembershipDecisions
from pulsesynth.synth import DPVAESynthesizer

FEATURES = ["elbo", "reconstruction", "kl"]
Mechanism = Callable[[pd.DataFrame, int], pd.DataFrame]


def same_recipe(target: DPVAESynthesizer, seed: int) -> DPVAESynthesizer:
    """An untrained synthesizer with the target's exact training recipe and a new seed.

    Shadow models report no progress: the target's callback belongs to its own run."""
    return target.clone(seed=seed, progress=None)


def vae_release(target: DPVAESynthesizer, rows: int) -> Mechanism:
    """The target's release mechanism: train with its recipe, then sample ``rows`` rows."""

    def release(members: pd.DataFrame, seed: int) -> pd.DataFrame:
        return same_recipe(target, seed).fit(members).sample(rows, seed=seed)

    return release


def surrogate_recipe(schema, seed: int, epochs: int = 30) -> DPVAESynthesizer:
    """The attacker's surrogate: a non-private VAE fitted to a public synthetic table.

    Synthetic rows belong to nobody, so the surrogate's schema has no privacy unit.
    """
    return DPVAESynthesizer(replace(schema, privacy_unit=()), private=False, seed=seed,
                            epochs=epochs)


@dataclass
class _Pairs:
    """Shadow members / non-members drawn from the auditor's reference rows."""

    members: pd.DataFrame
    non_members: pd.DataFrame


def _shadow_pairs(reference: pd.DataFrame, size: int, n_shadows: int,
                  seed: int) -> list[_Pairs]:
    """Disjoint member and non-member sets of ``size`` rows (or half the reference)."""
    size = min(size, len(reference) // 2)
    if size < 10:
        raise ValueError("reference data too small for shadow models (need at least 20 rows)")
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n_shadows):
        order = rng.permutation(len(reference))
        pairs.append(_Pairs(reference.iloc[order[:size]],
                            reference.iloc[order[size:2 * size]]))
    return pairs


def _classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def _features(model: DPVAESynthesizer, rows: pd.DataFrame) -> np.ndarray:
    return model.elbo(rows)[FEATURES].to_numpy(dtype=float)


def _balanced(members: pd.DataFrame, non_members: pd.DataFrame, limit: int,
              seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = min(len(members), len(non_members), limit)
    rng = np.random.default_rng(seed)
    return (members.iloc[rng.choice(len(members), n, replace=False)],
            non_members.iloc[rng.choice(len(non_members), n, replace=False)])


Shadow = tuple[np.ndarray, np.ndarray]  # attack features and member (1) / non-member (0)


def _shadow_set(model: DPVAESynthesizer, pair: _Pairs) -> Shadow:
    x = np.vstack([_features(model, pair.members), _features(model, pair.non_members)])
    y = np.concatenate([np.ones(len(pair.members)), np.zeros(len(pair.non_members))])
    return x, y


def _fit_attack(shadows: list[Shadow]):
    return _classifier().fit(np.vstack([x for x, _ in shadows]),
                             np.concatenate([y for _, y in shadows]))


def _shadow_size(target: DPVAESynthesizer, members: pd.DataFrame) -> int:
    """Shadow training size: the target's public (DP) row count when it has one, so the
    attack rule depends on DP outputs only; else the members' count (experiments)."""
    return int(target.metadata.get("public_rows") or target.metadata.get("train_rows")
               or len(members))


def _decisions(name: str, clf, model: DPVAESynthesizer, members: pd.DataFrame,
               non_members: pd.DataFrame) -> MembershipDecisions:
    """The attack's call (member above 0.5) on every member and non-member row: what the
    DP release report counts (:mod:`pulsesynth.audit.release_stats`)."""
    return MembershipDecisions(name, clf.predict_proba(_features(model, members))[:, 1] > 0.5,
                               clf.predict_proba(_features(model, non_members))[:, 1] > 0.5)


class ELBOAttack:
    """Model MIA: shadow VAEs with the target's recipe, ELBO features, a learned threshold.

    Each shadow is independent (:meth:`shadow`), so an orchestrator may train them in
    parallel and pass the results to :meth:`run`.
    """

    name = "model_mia"

    def __init__(self, n_shadows: int = 1, max_eval: int = 2000, seed: int = 0) -> None:
        self.n_shadows = n_shadows
        self.max_eval = max_eval
        self.seed = seed
        self.decisions: MembershipDecisions | None = None

    def shadow(self, target: DPVAESynthesizer, members: pd.DataFrame,
               reference: pd.DataFrame, index: int) -> Shadow:
        """Shadow ``index``: a VAE with the target's recipe on reference rows, its features."""
        size = _shadow_size(target, members)
        pair = _shadow_pairs(reference, size, self.n_shadows, self.seed)[index]
        return _shadow_set(same_recipe(target, seed=self.seed + 1000 + index).fit(pair.members),
                           pair)

    def run(self, target: DPVAESynthesizer, members: pd.DataFrame,
            non_members: pd.DataFrame, reference: pd.DataFrame,
            shadows: list[Shadow] | None = None) -> AttackResult:
        """Attack ``target`` (trained on ``members``) with shadows trained on ``reference``
        (computed here unless ``shadows`` holds every :meth:`shadow` result)."""
        if shadows is None:
            shadows = [self.shadow(target, members, reference, i)
                       for i in range(self.n_shadows)]
        size = _shadow_size(target, members)
        clf = _fit_attack(shadows)
        m, n = _balanced(members, non_members, self.max_eval, self.seed)
        scores_m = clf.predict_proba(_features(target, m))[:, 1]
        scores_n = clf.predict_proba(_features(target, n))[:, 1]
        self.decisions = _decisions(self.name, clf, target, members, non_members)
        return score_attack(self.name, scores_m, scores_n, 0.5,
                            {"shadows": self.n_shadows,
                             "shadow_train_rows": min(size, len(reference) // 2)})


class SurrogateAttack:
    """Synthetic-data MIA: a surrogate VAE on the released rows, then the ELBO attack."""

    name = "synthetic_mia"

    def __init__(self, mechanism: Mechanism, n_shadows: int = 1, surrogate_epochs: int = 30,
                 max_eval: int = 2000, seed: int = 0) -> None:
        self.mechanism = mechanism
        self.n_shadows = n_shadows
        self.surrogate_epochs = surrogate_epochs
        self.max_eval = max_eval
        self.seed = seed
        self.decisions: MembershipDecisions | None = None

    def shadow(self, schema, members: pd.DataFrame, reference: pd.DataFrame, index: int,
               train_rows: int | None = None) -> Shadow:
        """Shadow ``index``: shadow members → release mechanism → surrogate, its features."""
        size = int(train_rows or len(members))
        pair = _shadow_pairs(reference, size, self.n_shadows, self.seed)[index]
        shadow_release = self.mechanism(pair.members, self.seed + 2000 + index)
        surrogate = surrogate_recipe(schema, self.seed + 3000 + index,
                                     self.surrogate_epochs).fit(shadow_release)
        return _shadow_set(surrogate, pair)

    def run(self, schema, synthetic: pd.DataFrame, members: pd.DataFrame,
            non_members: pd.DataFrame, reference: pd.DataFrame,
            train_rows: int | None = None, shadows: list[Shadow] | None = None
            ) -> AttackResult:
        """Attack the released ``synthetic`` table of a model trained on ``members``."""
        if shadows is None:
            shadows = [self.shadow(schema, members, reference, i, train_rows)
                       for i in range(self.n_shadows)]
        clf = _fit_attack(shadows)
        surrogate = surrogate_recipe(schema, self.seed + 4000, self.surrogate_epochs).fit(
            synthetic)
        m, n = _balanced(members, non_members, self.max_eval, self.seed)
        scores_m = clf.predict_proba(_features(surrogate, m))[:, 1]
        scores_n = clf.predict_proba(_features(surrogate, n))[:, 1]
        self.decisions = _decisions(self.name, clf, surrogate, members, non_members)
        return score_attack(self.name, scores_m, scores_n, 0.5,
                            {"shadows": self.n_shadows, "synthetic_rows": len(synthetic),
                             "surrogate_epochs": self.surrogate_epochs})
