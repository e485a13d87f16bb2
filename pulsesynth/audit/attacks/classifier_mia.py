"""Shadow-model membership attack on a released classifier (seed 000 §6.2 and appendix;
Shokri et al. 2017).

The auditor trains shadow classifiers with the target's exact recipe (architecture, ε,
epochs, batch rule, training size) on reference rows it holds, so it knows which rows each
shadow saw. The attack feature of a row is the model's predicted class-probability vector,
next to the row's true class (Shokri trains one attack model per class; a single forest on
[probabilities, one-hot class] can split per class the same way). A random forest learns
shadow members vs non-members and, with its own 0.5 threshold, is applied to the target's
outputs on its training rows and on holdout rows it never saw.

Members are the rows the target actually trained on (after its per-unit cap); non-members
are capped the same way, so both sides have one row per privacy unit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

from pulsesynth.audit.metrics import AttackResult, score_attack
from pulsesynth.audit.release_stats import MembershipDecisions
from pulsesynth.classifier import DPClassifier, same_recipe


def attack_features(model: DPClassifier, rows: pd.DataFrame) -> np.ndarray:
    """[p(class 1..K), one-hot true class] per row (rows with a declared class only)."""
    labels = model._labels(rows)
    proba = model.predict_proba(rows)
    onehot = np.eye(len(model.classes))[np.minimum(labels, len(model.classes) - 1)]
    return np.hstack([proba, onehot])


class ShadowClassifierAttack:
    """Model MIA on a classifier: shadows with the target's recipe, probability vectors."""

    name = "classifier_mia"

    def __init__(self, n_shadows: int = 2, max_eval: int = 2000, seed: int = 0,
                 blind: bool = False) -> None:
        """``blind=True`` replaces every feature by a constant (the attack disabled): the
        calibration tests use it to prove that detection comes from the attack."""
        self.n_shadows = n_shadows
        self.max_eval = max_eval
        self.seed = seed
        self.blind = blind
        self.decisions: MembershipDecisions | None = None

    def _features(self, model: DPClassifier, rows: pd.DataFrame) -> np.ndarray:
        x = attack_features(model, rows)
        return np.zeros_like(x) if self.blind else x

    def run(self, target: DPClassifier, members: pd.DataFrame, non_members: pd.DataFrame,
            reference: pd.DataFrame) -> AttackResult:
        """Attack ``target`` (fitted on ``members``) with shadows trained on ``reference``."""
        trained = target.training_rows(members)
        outside = target.training_rows(non_members)
        pool = target.training_rows(reference)
        size = min(int(target.metadata.get("public_rows") or target.metadata.get("train_rows")
                       or len(trained)), len(pool) // 2)
        if size < 10:
            raise ValueError("reference data too small for shadow classifiers "
                             "(need at least 20 rows)")
        rng = np.random.default_rng(self.seed)
        xs, ys = [], []
        for i in range(self.n_shadows):
            order = rng.permutation(len(pool))
            shadow_in = pool.iloc[order[:size]]
            shadow_out = pool.iloc[order[size:2 * size]]
            shadow = same_recipe(target, seed=self.seed + 5000 + i).fit(shadow_in)
            # Score the rows the shadow really trained on (its own cap may drop none here:
            # the pool is already one row per unit).
            xs += [self._features(shadow, shadow_in), self._features(shadow, shadow_out)]
            ys += [np.ones(len(shadow_in)), np.zeros(len(shadow_out))]
        attack = RandomForestClassifier(n_estimators=200, min_samples_leaf=5, n_jobs=1,
                                        random_state=self.seed)
        attack.fit(np.vstack(xs), np.concatenate(ys))
        n = min(len(trained), len(outside), self.max_eval)
        m = trained.iloc[rng.choice(len(trained), n, replace=False)]
        o = outside.iloc[rng.choice(len(outside), n, replace=False)]
        scores_m = attack.predict_proba(self._features(target, m))[:, 1]
        scores_o = attack.predict_proba(self._features(target, o))[:, 1]
        self.decisions = MembershipDecisions(
            self.name, attack.predict_proba(self._features(target, trained))[:, 1] > 0.5,
            attack.predict_proba(self._features(target, outside))[:, 1] > 0.5)
        return score_attack(self.name, scores_m, scores_o, 0.5,
                            {"shadows": self.n_shadows, "shadow_train_rows": size,
                             "feature": "class-probability vector + true class",
                             "blind": self.blind})
