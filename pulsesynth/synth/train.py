"""Training of the tabular VAE: DP-SGD with Opacus (the release path) or plain Adam.

The DP path is the only way anything learned from private rows may leave: Poisson
sampling, per-sample clipping (ghost clipping) and Gaussian noise calibrated by Opacus'
``make_private_with_epsilon`` so that the accountant's final ε is at most the target and
within 2% of it. The non-DP path trains the same model on the same batches for
comparison and for calibrating membership attacks; its metadata says ``private: false``.

Schedule rule (:class:`~pulsesynth.dp.Schedule`, one fixed config for every dataset), from
a *public* row count ñ (a DP count in private runs): expected batch ``B = min(batch_size, ñ // 4)``
with ``batch_size = 4096`` by default, Poisson rate ``q = B / ñ``, ``ceil(epochs / q)``
steps. Nothing about the schedule reveals the exact row count.

Logs and the progress callback carry only epoch number, mean loss and ε spent so far.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

# The DP-SGD engine and its accounting live in pulsesynth.dp (shared with the
# classifier); re-exported here, where callers and tests have always imported them.
from pulsesynth.dp import (
    EPSILON_MAX_SHORTFALL,
    EPSILON_REL_TOLERANCE,
    HistoryEntry,
    ProgressFn,
    Schedule,
    expected_batch_size,
    fit_module,
    gaussian_noise_for,
    noise_for_schedule,
    planned_epsilon,
    train_dp,
    train_plain,
)
from pulsesynth.synth.model import NegativeELBO, TabularVAE

__all__ = [
    "DEFAULT_DELTA", "EPSILON_MAX_SHORTFALL", "EPSILON_REL_TOLERANCE", "HistoryEntry",
    "ProgressFn", "Schedule", "TrainConfig", "TrainResult", "default_delta",
    "expected_batch_size", "gaussian_noise_for", "noise_for_schedule", "planned_epsilon",
    "train_dp", "train_plain", "train_vae", "warm_start_state",
]

log = logging.getLogger("pulsesynth.synth")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; the defaults were measured on Adult and are used for every dataset."""

    epochs: int = 50
    batch_size: int = 4096
    lr: float = 1e-2
    kl_weight: float = 0.3
    max_grad_norm: float = 1.0
    hidden: tuple[int, ...] = (128, 128)
    latent_dim: int = 16
    accountant: str = "prv"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["hidden"] = tuple(d.get("hidden", cls.hidden))
        return cls(**d)


@dataclass
class TrainResult:
    """The trained (unwrapped) model, privacy metadata and a value-free training report."""

    model: TabularVAE
    metadata: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)


#: δ when the schema declares none: a fixed public value, never a function of the private
#: row count (1/(10 n) would publish n). Below 1/(10 n) for tables under 100,000 units;
#: a steward declares a smaller ``privacy.delta`` for larger tables.
DEFAULT_DELTA = 1e-6


def default_delta() -> float:
    """The public default δ (:data:`DEFAULT_DELTA`), whatever the table's size."""
    return DEFAULT_DELTA


def train_vae(
    x: np.ndarray,
    blocks: Sequence[tuple[str, int, int]],
    config: TrainConfig,
    *,
    private: bool = True,
    epsilon: float | None = None,
    delta: float | None = None,
    seed: int,
    public_rows: int | None = None,
    progress: ProgressFn | None = None,
    prior: Sequence[HistoryEntry] = (),
    initial_state: dict[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train a VAE on the encoded matrix ``x`` (rows already capped per privacy unit).

    With ``private=True`` this is DP-SGD at (``epsilon``, ``delta``) with the schedule
    planned from ``public_rows`` (a DP count of the rows; ``len(x)`` when not given, which
    is fine for experiments but makes the schedule a function of the exact count).
    ``prior`` lists Gaussian mechanisms already run on the same rows (the DP marginals):
    they are composed with the DP-SGD steps in one accountant, so ``epsilon`` covers all.
    ``initial_state`` (from :func:`warm_start_state`) replaces the random initial weights.
    Same seed and same data give the same model on CPU.
    """
    n, d = x.shape
    if n < 2:
        raise ValueError("need at least two training rows")
    if private and (epsilon is None or epsilon <= 0):
        raise ValueError("private training needs a positive target epsilon")
    delta = default_delta() if delta is None else float(delta)
    schedule = Schedule.plan(public_rows or n, config)

    def build() -> TabularVAE:
        model = TabularVAE(d, config.hidden, config.latent_dim)
        if initial_state is not None:
            model.load_state_dict(initial_state)
        return model

    fit = fit_module(
        build,
        NegativeELBO(blocks, d, config.latent_dim, config.kl_weight),
        [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))],
        schedule, config, private=private, epsilon=epsilon, delta=delta, seed=seed,
        progress=progress, prior=prior,
    )
    assert isinstance(fit.model, TabularVAE)
    meta = fit.metadata
    meta.update(
        private=private, delta=delta if private else None, epochs=config.epochs,
        batch_size=schedule.expected_batch, lr=config.lr, kl_weight=config.kl_weight,
        seed=seed, train_rows=n,
    )
    report = _report(fit.history, fit.seconds, warm=initial_state is not None)
    return TrainResult(model=fit.model, metadata=meta, report=report)


def warm_start_state(x: np.ndarray, blocks: Sequence[tuple[str, int, int]],
                     config: TrainConfig, *, epochs: int, public_rows: int,
                     seed: int) -> dict[str, torch.Tensor]:
    """Initial weights for DP-SGD: the VAE trained *without* noise for ``epochs`` on
    ``x``, rows drawn from the DP marginals alone
    (:func:`pulsesynth.synth.marginals.independent_draws`), in minibatches of the DP-SGD
    schedule's expected batch for ``public_rows`` (the engine's plain path,
    :func:`~pulsesynth.dp.fit_module` with ``private=False``).

    Those rows are post-processing of a DP output, so this costs no privacy, and DP-SGD
    (composed after the marginals in one accountant, as before) starts from a model that
    already holds every column's shape and its relation to the target: its noisy steps
    go to the columns' joint structure, which the marginals do not hold. Measured on the
    suite (README): the noise on DP-SGD, not the VAE, limits diamonds and flchain.
    """
    log.info("warm start: %d noise-free epochs on %d rows drawn from the DP marginals",
             epochs, len(x))
    fit = train_vae(x, blocks, replace(config, epochs=epochs), private=False, seed=seed,
                    public_rows=public_rows)
    return {name: t.detach().clone() for name, t in fit.model.state_dict().items()}


def _report(history: list[dict[str, Any]], elapsed: float, *,
            warm: bool = False) -> dict[str, Any]:
    """Value-free training report; flags a loss that did not fall as possible collapse.

    From a warm start (:func:`warm_start_state`) the first epoch already begins near the
    marginals' fit and may fall by less than 2% on a healthy run: there only a loss that
    *rose* by more than 2% is flagged.
    """
    losses = [h["loss"] for h in history if not math.isnan(h["loss"])]
    reasons: list[str] = []
    if len(losses) >= 2:
        if warm and losses[-1] > 1.02 * losses[0]:
            reasons.append("loss rose by more than 2% from the first to the last epoch "
                           "after the warm start")
        elif not warm and not losses[-1] < 0.98 * losses[0]:
            reasons.append("loss did not fall by 2% from the first to the last epoch")
    elif not losses:
        reasons.append("no loss recorded")
    if losses and not all(math.isfinite(v) for v in losses):
        reasons.append("non-finite loss")
    return {
        "history": history,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "train_seconds": elapsed,
        "collapse_warning": bool(reasons),
        "collapse_reasons": reasons,
    }
