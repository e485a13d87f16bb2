"""A per-record calibrated white-box model attack: offline LiRA / RMIA on the ELBO.

The ELBO attack (:class:`~pulsesynth.audit.attacks.membership.ELBOAttack`) learns one rule
for every record: "a high ELBO means member". But some records are easy for *any* model
(typical rows) and some hard for any model (outliers), so a global rule mostly measures
how typical a record is. Calibrating per record removes that: compare the target's ELBO
of ``x`` with what models of the same recipe that never saw ``x`` give it.

**Score.** With K reference models (the shared shadow models: the target's exact recipe
trained on the auditor's reference rows, so OUT models for every real record)::

    d(x)     = ELBO_target(x) − mean_k ELBO_k(x)
    score(x) = d(x) / σ(x)

with σ(x) the standard deviation of ELBO_k(x) over the K models (ddof 1) when K ≥ 3 —
floored at :data:`SIGMA_FLOOR` × its median over the calibration rows, so a record on which
a few models happen to agree cannot blow up — and otherwise one global σ: the standard
deviation of d over the calibration rows (ddof 1). This is offline LiRA (Carlini et al.
2022, "Membership inference attacks from first principles") with a Gaussian OUT
distribution, the ELBO as the log-likelihood proxy; equivalently RMIA's (Zarifzadeh et al.
2024) likelihood ratio of the target against the population of reference models. With a
global σ the ranking (AUC, TPR at low FPR) is that of d alone.

**Threshold.** Learnt from the attacker's data only: the :attr:`CalibratedELBOAttack.quantile`
quantile (default 0.5, the median) of the score over *calibration rows* — reference rows
(population samples, non-members of the target) that no reference model trained on, so
their scores are distributed as a target non-member's. "Member" then means "more typical
for the target, relative to the reference models, than ``quantile`` of the population":
at the median the expected false-positive rate is 0.5 and the advantage TPR − FPR is what
the target's memorisation adds. The evaluation rows never move the threshold.

**Measured** (``tests/test_attack_lira.py``, census_income, 500 members and 500 holdout
rows, real reference rows): on a memorising non-private VAE (300 epochs) AUC 0.770 and TPR
0.034 at 1% FPR with K = 1, 0.760 and 0.096 with K = 2 — weaker than the global ELBO
classifier on the same shadows (0.867 / 0.174), since with one or two OUT models the
subtraction adds their per-record noise; at ε = 1 AUC 0.51 (interval contains 0.5). With
the pipeline's reference rows (fresh draws from the model under attack) a memorising
model's draws carry its members into the shadows, so they are not OUT models and the
calibration cancels most of the signal (AUC 0.537): there, read this attack beside
``model_mia``, not instead of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from pulsesynth.audit.attacks.base import AttackData, MembershipAttack, ensure_shadows, register

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["CalibratedELBOAttack", "MIN_CALIBRATION_ROWS", "PER_RECORD_MIN_MODELS",
           "SIGMA_FLOOR", "calibrated_scores"]

#: Reference models needed for a per-record σ (fewer: one global σ).
PER_RECORD_MIN_MODELS = 3
#: A per-record σ is at least this share of its median over the calibration rows.
SIGMA_FLOOR = 0.1
#: Reference rows that no reference model trained on, needed for the threshold.
MIN_CALIBRATION_ROWS = 20


class ELBOModel(Protocol):
    """What the attack needs of a model: per-record ELBOs."""

    def elbo(self, df: pd.DataFrame) -> pd.DataFrame: ...


def _elbo(model: ELBOModel, rows: pd.DataFrame) -> np.ndarray:
    """Each row's ELBO under ``model`` (one pass)."""
    return model.elbo(rows)["elbo"].to_numpy(dtype=float)


def calibrated_scores(target: np.ndarray, reference: np.ndarray,
                      sigma: float | None = None, floor: float = 0.0) -> np.ndarray:
    """Offline-LiRA scores from ELBOs: ``target`` (n,), ``reference`` (K, n).

    ``sigma`` given: one global σ; otherwise each record's σ over the K models (ddof 1),
    at least ``floor``."""
    target = np.asarray(target, dtype=float)
    reference = np.atleast_2d(np.asarray(reference, dtype=float))
    d = target - reference.mean(axis=0)
    if sigma is not None:
        return d / sigma
    per_record = np.maximum(reference.std(axis=0, ddof=1), floor)
    return d / per_record


@register
class CalibratedELBOAttack(MembershipAttack):
    """Model MIA with per-record calibration: offline LiRA / RMIA against the shared shadow
    models (see the module docstring)."""

    name = "model_lira"
    white_box = True
    shadow_kinds = ("model",)
    cost = "no training beyond the shared shadow models; K+1 ELBO passes"

    def __init__(self, quantile: float = 0.5, max_eval: int = 2000, seed: int = 0) -> None:
        super().__init__(max_eval, seed)
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {quantile}")
        self.quantile = quantile

    def fit(self, data: AttackData) -> CalibratedELBOAttack:
        if data.model is None:
            raise ValueError(f"{self.name} needs the target model")
        shadows = ensure_shadows(data, models=True).models[:data.n_shadows]
        if not shadows:
            raise ValueError(f"{self.name} needs at least one reference (shadow) model")
        self.target_: ELBOModel = data.model
        self.references_: list[ELBOModel] = [s.model for s in shadows]
        calibration = _calibration_rows(data.reference,
                                        [s.pair.members.index for s in shadows])
        if len(calibration) < MIN_CALIBRATION_ROWS:
            raise ValueError(
                f"{self.name}: only {len(calibration)} reference rows are outside every "
                f"shadow's training rows (need {MIN_CALIBRATION_ROWS}); use more reference "
                "rows or fewer shadows")
        target, reference = self._elbos(calibration)
        k = len(self.references_)
        if k >= PER_RECORD_MIN_MODELS:
            self.sigma_: float | None = None
            median = float(np.median(reference.std(axis=0, ddof=1)))
            self.floor_ = SIGMA_FLOOR * median if median > 0 else np.finfo(float).tiny
        else:
            d = target - reference.mean(axis=0)
            spread = float(d.std(ddof=1))
            self.sigma_ = spread if spread > 0 else 1.0
            self.floor_ = 0.0
        scores = calibrated_scores(target, reference, self.sigma_, self.floor_)
        self.threshold_ = float(np.quantile(scores, self.quantile))
        self.details_ = {
            "shadows": k,
            "shadow_train_rows": data.shadow_size(),
            "sigma": "global" if self.sigma_ is not None else "per_record",
            "threshold_quantile": self.quantile,
            "calibration_rows": len(calibration),
        }
        return self

    def _elbos(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The target's ELBO of each row and every reference model's: K+1 passes."""
        return (_elbo(self.target_, rows),
                np.vstack([_elbo(m, rows) for m in self.references_]))

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        self._require_fitted()
        target, reference = self._elbos(rows)
        return calibrated_scores(target, reference, self.sigma_, self.floor_)


def _calibration_rows(reference: pd.DataFrame, trained: Sequence[pd.Index]) -> pd.DataFrame:
    """Reference rows that no reference model trained on (by index label: a label repeated
    in ``reference`` drops every row that carries it, which only errs on the safe side)."""
    used = np.zeros(len(reference), dtype=bool)
    for index in trained:
        used |= reference.index.isin(index)
    return reference.iloc[np.flatnonzero(~used)]
