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

from dataclasses import replace

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pulsesynth.audit.attacks.base import (
    AttackData,
    MembershipAttack,
    ShadowPair,
    ensure_shadows,
    register,
)
from pulsesynth.synth import DPVAESynthesizer

__all__ = ["ELBOAttack", "SurrogateAttack", "elbo_features", "surrogate_recipe"]

FEATURES = ["elbo", "reconstruction", "kl"]
#: Seed offsets of the surrogates (the shadows' and the release's).
SURROGATE_SEED, TARGET_SURROGATE_SEED = 3000, 4000


def surrogate_recipe(schema, seed: int, epochs: int = 30) -> DPVAESynthesizer:
    """The attacker's surrogate: a non-private VAE fitted to a public synthetic table.

    Synthetic rows belong to nobody, so the surrogate's schema has no privacy unit.
    """
    return DPVAESynthesizer(replace(schema, privacy_unit=()), private=False, seed=seed,
                            epochs=epochs)


def _classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def elbo_features(model: DPVAESynthesizer, rows: pd.DataFrame) -> np.ndarray:
    """Each row's ELBO and its reconstruction and KL parts under ``model``."""
    return model.elbo(rows)[FEATURES].to_numpy(dtype=float)


def _shadow_set(model: DPVAESynthesizer, pair: ShadowPair) -> tuple[np.ndarray, np.ndarray]:
    x = np.vstack([elbo_features(model, pair.members), elbo_features(model, pair.non_members)])
    y = np.concatenate([np.ones(len(pair.members)), np.zeros(len(pair.non_members))])
    return x, y


def _fit_classifier(sets: list[tuple[np.ndarray, np.ndarray]]):
    return _classifier().fit(np.vstack([x for x, _ in sets]), np.concatenate([y for _, y in sets]))


@register
class ELBOAttack(MembershipAttack):
    """Model MIA: shadow VAEs with the target's recipe, ELBO features, a learned classifier
    (one threshold for every record)."""

    name = "model_mia"
    white_box = True
    shadow_kinds = ("model",)
    cost = "one target-recipe training per shadow model"

    def fit(self, data: AttackData) -> ELBOAttack:
        if data.model is None:
            raise ValueError(f"{self.name} needs the target model")
        shadows = ensure_shadows(data, models=True).models[:data.n_shadows]
        self.target_ = data.model
        self.classifier_ = _fit_classifier([_shadow_set(s.model, s.pair) for s in shadows])
        self.threshold_ = 0.5
        self.details_ = {"shadows": len(shadows), "shadow_train_rows": data.shadow_size()}
        return self

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        return self.classifier_.predict_proba(elbo_features(self.target_, rows))[:, 1]


@register
class SurrogateAttack(MembershipAttack):
    """Synthetic-data MIA: a surrogate VAE on the released rows, then the ELBO attack."""

    name = "synthetic_mia"
    shadow_kinds = ("release",)
    cost = "one release per shadow, plus a surrogate VAE per shadow and one on the release"

    def __init__(self, surrogate_epochs: int = 30, max_eval: int = 2000, seed: int = 0) -> None:
        super().__init__(max_eval, seed)
        self.surrogate_epochs = surrogate_epochs

    def _surrogate(self, data: AttackData, table: pd.DataFrame, seed: int) -> DPVAESynthesizer:
        return surrogate_recipe(data.schema, seed, self.surrogate_epochs).fit(table)

    def fit(self, data: AttackData) -> SurrogateAttack:
        shadows = ensure_shadows(data, releases=True).releases[:data.n_shadows]
        sets = [_shadow_set(self._surrogate(data, s.synthetic,
                                            self.seed + SURROGATE_SEED + i), s.pair)
                for i, s in enumerate(shadows)]
        self.classifier_ = _fit_classifier(sets)
        self.surrogate_ = self._surrogate(data, data.synthetic,
                                          self.seed + TARGET_SURROGATE_SEED)
        self.threshold_ = 0.5
        self.details_ = {"shadows": len(shadows), "synthetic_rows": len(data.synthetic),
                         "surrogate_epochs": self.surrogate_epochs}
        return self

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        return self.classifier_.predict_proba(elbo_features(self.surrogate_, rows))[:, 1]
