"""One DP-SGD training engine for every model that may leave (the VAE, the classifier).

:func:`fit_module` builds a module under a seeded torch generator, trains it with
DP-SGD (Opacus ``PrivacyEngine.make_private``: ghost clipping, Poisson sampling, Gaussian
noise calibrated so the accountant's final ε — composed after any ``prior`` mechanisms —
is at most the target and within 2% of it) or, for comparisons, with plain Adam on the
same expected batch, and returns a clean, unwrapped copy of the trained module beside
the privacy metadata. Callers supply only what differs: how to build the module, the
loss (``criterion(output, target)``, ``reduction="none"``-capable for ghost clipping),
the tensors, and the settings (:class:`DPSGDSettings`).

The accounting primitives live here too: :class:`Schedule` (the public sampling plan),
:func:`planned_epsilon`, :func:`noise_for_schedule` and :func:`gaussian_noise_for`.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from pulsesynth.threads import seeded_torch

log = logging.getLogger("pulsesynth.synth")

ProgressFn = Callable[[dict[str, Any]], None]

#: Relative tolerance of the noise search: final ε lies in [(1 - tol)·target, target].
EPSILON_REL_TOLERANCE = 0.005
#: Largest accepted shortfall of the final ε below target (the brief: within 2%).
EPSILON_MAX_SHORTFALL = 0.02


def expected_batch_size(n: int, batch_size: int = 4096) -> int:
    """Expected Poisson batch: ``min(batch_size, n // 4)`` (at least 1), see :class:`Schedule`."""
    return max(1, min(batch_size, n // 4))


@dataclass(frozen=True)
class Schedule:
    """DP-SGD's sampling plan, a function of public facts only (a DP row count, the
    recipe): Poisson rate ``q``, the expected batch it implies and the exact step count."""

    sample_rate: float
    expected_batch: int
    steps: int

    @classmethod
    def plan(cls, public_rows: int, config: DPSGDSettings) -> Schedule:
        """``B = min(batch_size, rows // 4)``, ``q = B / rows``, ``steps = ceil(epochs / q)``."""
        rows = max(2, int(public_rows))
        batch = expected_batch_size(rows, config.batch_size)
        q = min(1.0, batch / rows)
        return cls(sample_rate=q, expected_batch=batch,
                   steps=max(1, math.ceil(config.epochs / q - 1e-9)))


@dataclass(frozen=True)
class GroupPrivacy:
    """A per-unit target (ε, δ) when a privacy unit keeps up to ``rows_per_unit`` rows.

    DP-SGD and the Gaussian marginals protect one *row*: a unit's k rows are k rows. By
    group privacy an (ε_r, δ_r)-DP mechanism is (k·ε_r, k·e^((k−1)·ε_r)·δ_r)-DP for k rows
    (Dwork & Roth 2014, after Theorem 2.2; Vadhan 2017, Lemma 2.2), so every row-level
    mechanism runs at :attr:`row_epsilon` = ε / k and :attr:`row_delta`, and the run's
    per-unit guarantee is (ε, δ). With k = 1 the two are the same and nothing changes.
    (Sampling and clipping whole units, user-level DP-SGD, is the alternative: k times
    fewer samples at about k times less noise, not built.) The Laplace counts and the
    release report already use sensitivity k.
    """

    rows_per_unit: int
    epsilon: float
    delta: float

    def __post_init__(self) -> None:
        if self.rows_per_unit < 1:
            raise ValueError("rows_per_unit must be at least 1")

    @classmethod
    def of(cls, privacy_unit: Sequence[str], rows_per_unit: int, epsilon: float,
           delta: float) -> GroupPrivacy:
        """The target for a schema's unit rule: without a declared unit every row is its
        own unit (nothing is capped), so k = 1 whatever ``rows_per_unit`` says."""
        return cls(rows_per_unit if privacy_unit else 1, epsilon, delta)

    @property
    def row_epsilon(self) -> float:
        return self.epsilon / self.rows_per_unit

    @property
    def row_delta(self) -> float:
        k = self.rows_per_unit
        return self.delta / (k * math.exp((k - 1) * self.row_epsilon))

    def unit_epsilon(self, row_epsilon: float) -> float:
        """The per-unit ε of a mechanism whose accountant reports ``row_epsilon``."""
        return self.rows_per_unit * row_epsilon

    def unit_delta(self, row_epsilon: float) -> float:
        """The per-unit δ of a mechanism run at (``row_epsilon``, :attr:`row_delta`)."""
        k = self.rows_per_unit
        return k * math.exp((k - 1) * row_epsilon) * self.row_delta

    def report(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """Training metadata restated per unit: ``epsilon``/``target_epsilon``/``delta``
        become the unit's, the accountant's row-level figures move to
        ``group_privacy`` (public: mechanism parameters). Unchanged when k = 1."""
        if self.rows_per_unit == 1 or not metadata.get("private"):
            return metadata
        row_eps = float(metadata["epsilon"])
        return metadata | {
            "epsilon": self.unit_epsilon(row_eps),
            "target_epsilon": self.epsilon,
            "delta": self.unit_delta(row_eps),
            "group_privacy": {"rows_per_unit": self.rows_per_unit,
                              "row_epsilon": row_eps,
                              "row_target_epsilon": self.row_epsilon,
                              "row_delta": self.row_delta},
        }


def unit_rule(privacy_unit: Sequence[str], rows_per_unit: int,
              declared: int | None = None) -> str:
    """The privacy-unit rule in words, for reports and cards (public: schema facts and
    the recipe). ``declared`` is the schema's cap where the model keeps fewer rows."""
    if not privacy_unit:
        return "no privacy unit declared: each row is a unit, epsilon holds per row"
    kept = (f"{rows_per_unit} (the schema allows {declared}; fewer rows, each at less "
            "noise)" if declared is not None and declared > rows_per_unit
            else f"{rows_per_unit}")
    rule = (f"rows per unit capped at {kept}, epsilon holds per unit "
            f"(unit: {', '.join(privacy_unit)})")
    if rows_per_unit > 1:
        rule += (f"; each row-level mechanism runs at epsilon / {rows_per_unit} "
                 f"(group privacy over {rows_per_unit} rows)")
    return rule


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


class DPSGDSettings(Protocol):
    """What the engine reads off a training recipe (:class:`~pulsesynth.synth.train.TrainConfig`
    satisfies it); the model-specific fields (architecture, KL weight) stay with the model."""

    @property
    def epochs(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def lr(self) -> float: ...
    @property
    def max_grad_norm(self) -> float: ...
    @property
    def accountant(self) -> str: ...



@dataclass
class DPFit:
    """What :func:`fit_module` returns: the trained module (a clean copy, in eval mode,
    without Opacus' hooks), the engine's metadata, the per-epoch history and the
    training time in seconds."""

    model: torch.nn.Module
    metadata: dict[str, Any]
    history: list[dict[str, Any]]
    seconds: float


def fit_module(
    build: Callable[[], torch.nn.Module],
    criterion: torch.nn.Module,
    tensors: Sequence[torch.Tensor],
    schedule: Schedule,
    settings: DPSGDSettings,
    *,
    private: bool,
    epsilon: float | None,
    delta: float,
    seed: int,
    progress: ProgressFn | None = None,
    prior: Sequence[HistoryEntry] = (),
) -> DPFit:
    """Build a module with ``build()`` and train it on ``tensors`` (``(x,)`` for an
    autoencoder, ``(x, y)`` otherwise) with Adam at ``settings.lr``.

    ``private=True``: DP-SGD to (``epsilon``, ``delta``) composed after ``prior``
    (:func:`train_dp`). ``private=False``: plain minibatches of the schedule's expected
    batch (:func:`train_plain`), never releasable. Same seed, same data, same module on CPU.
    """
    if private and (epsilon is None or epsilon <= 0):
        raise ValueError("private training needs a positive target epsilon")
    # Everything that draws from torch's global generator (weight initialisation of both
    # modules) happens in this one seeded section, in this order: the pinned digests in
    # tests/test_dp_engine.py depend on it.
    with seeded_torch(seed):
        model = build()
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
        dataset = TensorDataset(*tensors)
        start = time.perf_counter()
        if private:
            assert epsilon is not None
            meta, history = train_dp(model, criterion, optimizer, dataset, schedule,
                                     settings, float(epsilon), delta, progress, seed=seed,
                                     prior=prior)
        else:
            meta, history = train_plain(model, criterion, optimizer, dataset,
                                        schedule.expected_batch, settings, seed, progress)
        elapsed = time.perf_counter() - start
        # A fresh copy: Opacus leaves hooks on the trained modules; the released object has
        # none. Built inside the seeded section: its initialisation draws from the generator.
        clean = build()
    clean.load_state_dict(model.state_dict())
    clean.eval()
    return DPFit(model=clean, metadata=meta, history=history, seconds=elapsed)


def train_dp(
    model: torch.nn.Module,
    criterion: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset: TensorDataset,
    schedule: Schedule,
    config: DPSGDSettings,
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
    config: DPSGDSettings,
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
