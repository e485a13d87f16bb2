"""Training of the tabular VAE: DP-SGD with Opacus (the release path) or plain Adam.

The DP path is the only way anything learned from private rows may leave: Poisson
sampling, per-sample clipping (ghost clipping) and Gaussian noise calibrated by Opacus'
``make_private_with_epsilon`` so that the accountant's final ε is at most the target and
within 2% of it. The non-DP path trains the same model on the same batches for
comparison and for calibrating membership attacks; its metadata says ``private: false``.

Schedule rule (:class:`Schedule`, one fixed config for every dataset), from a *public*
row count ñ (a DP count in private runs): expected batch ``B = min(batch_size, ñ // 4)``
with ``batch_size = 4096`` by default, Poisson rate ``q = B / ñ``, ``ceil(epochs / q)``
steps. Nothing about the schedule reveals the exact row count.

Logs and the progress callback carry only epoch number, mean loss and ε spent so far.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from pulsesynth.synth.model import NegativeELBO, TabularVAE
from pulsesynth.threads import seeded_torch

log = logging.getLogger("pulsesynth.synth")

ProgressFn = Callable[[dict[str, Any]], None]

#: Relative tolerance of the noise search: final ε lies in [(1 - tol)·target, target].
EPSILON_REL_TOLERANCE = 0.005
#: Largest accepted shortfall of the final ε below target (the brief: within 2%).
EPSILON_MAX_SHORTFALL = 0.02


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
        d["hidden"] = tuple(d.get("hidden", (128, 128)))
        return cls(**d)


@dataclass
class TrainResult:
    """The trained (unwrapped) model, privacy metadata and a value-free training report."""

    model: TabularVAE
    metadata: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)


def expected_batch_size(n: int, batch_size: int = 4096) -> int:
    """Expected Poisson batch: ``min(batch_size, n // 4)`` (at least 1), see module docstring."""
    return max(1, min(batch_size, n // 4))


#: δ when the schema declares none: a fixed public value, never a function of the private
#: row count (1/(10 n) would publish n). Below 1/(10 n) for tables under 100,000 units;
#: a steward declares a smaller ``privacy.delta`` for larger tables.
DEFAULT_DELTA = 1e-6


def default_delta() -> float:
    """The public default δ (:data:`DEFAULT_DELTA`), whatever the table's size."""
    return DEFAULT_DELTA


@dataclass(frozen=True)
class Schedule:
    """DP-SGD's sampling plan, a function of public facts only (a DP row count, the
    recipe): Poisson rate ``q``, the expected batch it implies and the exact step count."""

    sample_rate: float
    expected_batch: int
    steps: int

    @classmethod
    def plan(cls, public_rows: int, config: TrainConfig) -> Schedule:
        """``B = min(batch_size, rows // 4)``, ``q = B / rows``, ``steps = ceil(epochs / q)``."""
        rows = max(2, int(public_rows))
        batch = expected_batch_size(rows, config.batch_size)
        q = min(1.0, batch / rows)
        return cls(sample_rate=q, expected_batch=batch,
                   steps=max(1, math.ceil(config.epochs / q - 1e-9)))


#: An accountant history entry: (noise multiplier, sample rate, steps), Opacus' format.
HistoryEntry = tuple[float, float, int]


def planned_epsilon(noise: float, schedule: Schedule, delta: float, accountant: str,
                    prior: Sequence[HistoryEntry] = ()) -> float:
    """The accountant's ε for ``prior`` mechanisms followed by ``schedule.steps`` steps at
    (``noise``, ``q``): exactly the history the training loop will record (checked before
    and after training)."""
    from opacus.accountants import create_accountant

    acc = create_accountant(accountant)
    acc.history = [*prior, (noise, schedule.sample_rate, schedule.steps)]
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # PRV's q = 1 entries take log(0) on a branch np.where discards: harmless.
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(acc.get_epsilon(delta))


def gaussian_noise_for(epsilon: float, delta: float, accountant: str) -> float:
    """Noise multiplier of one Gaussian mechanism (q = 1, one step) that costs ``epsilon``
    at ``delta`` on its own (used for the DP marginals)."""
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(get_noise_multiplier(
            target_epsilon=epsilon, target_delta=delta, sample_rate=1.0, steps=1,
            accountant=accountant, epsilon_tolerance=EPSILON_REL_TOLERANCE * epsilon))


def noise_for_schedule(epsilon: float, delta: float, schedule: Schedule, accountant: str,
                       prior: Sequence[HistoryEntry] = ()) -> float:
    """The smallest DP-SGD noise multiplier (within the search tolerance) whose steps,
    composed after ``prior`` in one accountant, stay at or below ``epsilon``."""
    if not prior:
        from opacus.accountants.utils import get_noise_multiplier

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            return float(get_noise_multiplier(
                target_epsilon=epsilon, target_delta=delta,
                sample_rate=schedule.sample_rate, steps=schedule.steps,
                accountant=accountant,
                epsilon_tolerance=EPSILON_REL_TOLERANCE * epsilon))
    if planned_epsilon(1e6, schedule, delta, accountant, prior) > epsilon:
        raise ValueError(f"the mechanisms before training already spend more than "
                         f"epsilon {epsilon:.4f}")
    lo, hi = 0.0, 10.0
    while planned_epsilon(hi, schedule, delta, accountant, prior) > epsilon:
        lo, hi = hi, 2 * hi
    while True:  # invariant: hi meets the target; stop once it is within tolerance
        eps_hi = planned_epsilon(hi, schedule, delta, accountant, prior)
        if eps_hi >= epsilon * (1 - EPSILON_REL_TOLERANCE) or hi - lo < 1e-4:
            return hi
        mid = (lo + hi) / 2
        if planned_epsilon(mid, schedule, delta, accountant, prior) > epsilon:
            lo = mid
        else:
            hi = mid


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
) -> TrainResult:
    """Train a VAE on the encoded matrix ``x`` (rows already capped per privacy unit).

    With ``private=True`` this is DP-SGD at (``epsilon``, ``delta``) with the schedule
    planned from ``public_rows`` (a DP count of the rows; ``len(x)`` when not given, which
    is fine for experiments but makes the schedule a function of the exact count).
    ``prior`` lists Gaussian mechanisms already run on the same rows (the DP marginals):
    they are composed with the DP-SGD steps in one accountant, so ``epsilon`` covers all.
    Same seed and same data give the same model on CPU.
    """
    n, d = x.shape
    if n < 2:
        raise ValueError("need at least two training rows")
    if private and (epsilon is None or epsilon <= 0):
        raise ValueError("private training needs a positive target epsilon")
    delta = default_delta() if delta is None else float(delta)
    schedule = Schedule.plan(public_rows or n, config)
    with seeded_torch(seed):
        model = TabularVAE(d, config.hidden, config.latent_dim)
        criterion = NegativeELBO(blocks, d, config.latent_dim, config.kl_weight)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        dataset = TensorDataset(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        start = time.perf_counter()
        if private:
            assert epsilon is not None
            meta, history = train_dp(model, criterion, optimizer, dataset, schedule, config,
                                     float(epsilon), delta, progress, seed=seed,
                                     prior=prior)
        else:
            meta, history = train_plain(model, criterion, optimizer, dataset,
                                        schedule.expected_batch, config, seed, progress)
        elapsed = time.perf_counter() - start
        # A fresh copy: Opacus leaves hooks on the trained modules; the released object has
        # none. Built inside the seeded section: its initialisation draws from the generator.
        clean = TabularVAE(d, config.hidden, config.latent_dim)
    clean.load_state_dict(model.state_dict())
    clean.eval()
    meta.update(
        private=private, delta=delta if private else None, epochs=config.epochs,
        batch_size=schedule.expected_batch, lr=config.lr, kl_weight=config.kl_weight,
        seed=seed, train_rows=n,
    )
    report = _report(history, elapsed)
    return TrainResult(model=clean, metadata=meta, report=report)


def train_dp(
    model: torch.nn.Module,
    criterion: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset: TensorDataset,
    schedule: Schedule,
    config: TrainConfig,
    epsilon: float,
    delta: float,
    progress: ProgressFn | None,
    *,
    seed: int,
    prior: Sequence[HistoryEntry] = (),
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """DP-SGD to exactly (``epsilon``, ``delta``): Opacus ghost clipping, Poisson sampling.

    Shared by every model that may be released (the VAE, the classifier). ``dataset``
    yields ``(x,)`` (the target is the input, as for an autoencoder) or ``(x, y)``;
    ``criterion`` must accept ``reduction="none"`` as ghost clipping requires.

    The Poisson rate, the expected batch that scales the noisy gradient sum and the step
    count all come from ``schedule`` (public), never from ``len(dataset)``: Opacus would
    derive them from the loader (``1 / len(loader)``, and ``int(1 / q)`` batches an epoch
    is 244 for ``q = 1/245`` in floating point), so the loader is built here with the
    schedule's rate, the accountant records that rate, and the noise search assumes the
    same (σ, q, steps) history; the final ε is checked before and after training.
    The Poisson masks and the noise draw from generators seeded with ``seed`` (secret in
    private runs: :mod:`pulsesynth.randomness`).
    """
    from opacus import PrivacyEngine
    from opacus.data_loader import DPDataLoader

    q, steps = schedule.sample_rate, schedule.steps
    noise = noise_for_schedule(epsilon, delta, schedule, config.accountant, prior)
    before = planned_epsilon(noise, schedule, delta, config.accountant, prior)
    if before > epsilon * (1 + 1e-9):
        raise RuntimeError(f"planned epsilon {before:.4f} is above the target {epsilon:.4f}; "
                           "nothing was trained")
    sampling = torch.Generator().manual_seed(seed ^ 0x5A5A5A5A)
    noise_gen = torch.Generator().manual_seed(seed ^ 0x3C3C3C3C)
    loader = DPDataLoader(dataset, sample_rate=q, generator=sampling)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        engine = PrivacyEngine(accountant=config.accountant)
        dp_model, dp_opt, dp_crit, dp_loader = engine.make_private(
            module=model, optimizer=optimizer, data_loader=loader, criterion=criterion,
            noise_multiplier=noise, max_grad_norm=config.max_grad_norm,
            grad_sample_mode="ghost", poisson_sampling=False, noise_generator=noise_gen,
        )
    # make_private reads q and the averaging batch off the loader (1/len(loader), n·q):
    # record the schedule's public values instead.
    dp_opt.attach_step_hook(engine.accountant.get_optimizer_hook_fn(sample_rate=q))
    # The mechanisms already run on these rows open the accountant's history: every ε it
    # reports from here on is the composition of all of them with the steps taken.
    engine.accountant.history = list(prior)
    dp_opt.expected_batch_size = schedule.expected_batch
    history: list[dict[str, Any]] = []
    done = 0
    epoch = 0
    epochs = max(1, math.ceil(steps * q - 1e-9))
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        while done < steps:
            epoch += 1
            total, count = 0.0, 0
            for batch_tensors in dp_loader:
                if done >= steps:
                    break
                xb, yb = batch_tensors[0], batch_tensors[-1]
                dp_opt.zero_grad(set_to_none=True)
                loss = dp_crit(dp_model(xb), yb)
                loss.backward()
                dp_opt.step()
                done += 1
                if xb.shape[0]:
                    total += float(loss.item()) * xb.shape[0]
                    count += xb.shape[0]
            eps_now = float(engine.get_epsilon(delta))
            _emit(history, progress, epoch, epochs, total, count, eps_now)
        final_eps = float(engine.get_epsilon(delta))
    if final_eps > epsilon * (1 + 1e-9):
        raise RuntimeError(
            f"accountant reports epsilon {final_eps:.4f} above the target {epsilon:.4f}; "
            "the model must not be released"
        )
    shortfall = (epsilon - final_eps) / epsilon
    if shortfall > EPSILON_MAX_SHORTFALL:
        log.warning("final epsilon %.4f is %.1f%% below target", final_eps, 100 * shortfall)
    meta = {
        "epsilon": final_eps,
        "target_epsilon": epsilon,
        "accountant": config.accountant,
        "noise_multiplier": noise,
        "sample_rate": q,
        "steps": done,
        "planned_steps": steps,
        "max_grad_norm": config.max_grad_norm,
        "grad_sample_mode": "ghost",
        "prior_mechanisms": [list(entry) for entry in prior],
        "poisson_sampling": True,
        "secure_rng": False,
    }
    return meta, history


def train_plain(
    model: torch.nn.Module,
    criterion: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset: TensorDataset,
    batch: int,
    config: TrainConfig,
    seed: int,
    progress: ProgressFn | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Non-private training with the same batch size (comparisons, attack calibration)."""
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, generator=gen)
    model.train()
    history: list[dict[str, Any]] = []
    steps = 0
    for epoch in range(1, config.epochs + 1):
        total, count = 0.0, 0
        for batch_tensors in loader:
            xb, yb = batch_tensors[0], batch_tensors[-1]
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            steps += 1
            total += float(loss.item()) * xb.shape[0]
            count += xb.shape[0]
        _emit(history, progress, epoch, config.epochs, total, count, math.inf)
    meta = {
        "epsilon": None,
        "target_epsilon": None,
        "accountant": None,
        "noise_multiplier": 0.0,
        "sample_rate": batch / len(dataset),
        "steps": steps,
        "planned_steps": steps,
        "max_grad_norm": None,
        "grad_sample_mode": None,
        "poisson_sampling": False,
        "secure_rng": False,
    }
    return meta, history


def _emit(
    history: list[dict[str, Any]],
    progress: ProgressFn | None,
    epoch: int,
    epochs: int,
    total: float,
    count: int,
    eps: float,
) -> None:
    loss = total / count if count else float("nan")
    entry = {"epoch": epoch, "epochs": epochs, "loss": loss,
             "epsilon": None if math.isinf(eps) else eps}
    history.append(entry)
    log.info("epoch %d/%d loss %.4f epsilon %s", epoch, epochs, loss,
             "n/a" if math.isinf(eps) else f"{eps:.4f}")
    if progress is not None:
        progress(dict(entry))


def _report(history: list[dict[str, Any]], elapsed: float) -> dict[str, Any]:
    """Value-free training report; flags a loss that did not fall as possible collapse."""
    losses = [h["loss"] for h in history if not math.isnan(h["loss"])]
    reasons: list[str] = []
    if len(losses) >= 2:
        if not losses[-1] < 0.98 * losses[0]:
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
