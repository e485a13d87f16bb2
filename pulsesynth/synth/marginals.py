"""DP marginals that the sampled table is made to agree with (Gaussian mechanism + raking).

A DP-SGD model of a small table learns its columns' shapes slowly: the noise that hides
one row drowns a few thousand rows' gradient. Counting is far cheaper in privacy than
training, so a share of the training budget measures a public set of low-order marginals
with the Gaussian mechanism, and sampling reweights a pool of the VAE's draws to agree
with them (iterative proportional fitting, then a weighted draw). Reweighting is
post-processing of DP outputs and costs nothing more.

Which marginals (:class:`MarginalPlan`, a function of the declared schema only): with a
declared target, every 2-way marginal of (column, target) — it holds each column's 1-way
marginal and the target's, and the pairwise signal a classifier trained on the table
needs; without a target, every 1-way marginal.

Privacy: one row adds 1 to one cell of each of the ``m`` marginals, so the vector of all
counts has L2 sensitivity ``sqrt(m)`` per row; adding N(0, (σ·sqrt(m))²) to every cell is
the Gaussian mechanism with noise multiplier σ. Its (σ, q = 1, one step) entry joins the
DP-SGD steps in the same Opacus accountant, which composes both to the training share of
ε (:func:`pulsesynth.synth.train.train_vae`). The per-unit guarantee follows the same
row-cap rule as DP-SGD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Fixed public share of the training ε that the marginals would cost on their own
#: (Gaussian noise composes sub-additively with DP-SGD: the training loses far less).
MARGINAL_SHARE = 0.8
#: VAE draws per released row that raking chooses from.
POOL_FACTOR = 5
#: Draws from the DP marginals alone per released row, added to the pool (support).
INDEPENDENT_FACTOR = 1
#: Iterative proportional fitting sweeps over the marginals.
RAKING_SWEEPS = 30


@dataclass(frozen=True)
class MarginalPlan:
    """The marginals measured for a table: groups of encoder column indices."""

    columns: tuple[str, ...]
    widths: tuple[int, ...]
    groups: tuple[tuple[int, ...], ...]

    @classmethod
    def for_columns(cls, columns: Sequence[str], widths: Sequence[int],
                    target: str | None) -> MarginalPlan:
        """(column, target) pairs when the target is modelled, else every single column."""
        names = tuple(columns)
        groups: tuple[tuple[int, ...], ...]
        if target in names and len(names) > 1:
            t = names.index(target)
            groups = tuple((j, t) for j in range(len(names)) if j != t)
        else:
            groups = tuple((j,) for j in range(len(names)))
        return cls(names, tuple(int(w) for w in widths), groups)

    def cells(self, group: tuple[int, ...]) -> int:
        return int(np.prod([self.widths[j] for j in group]))

    def cell_index(self, levels: np.ndarray, group: tuple[int, ...]) -> tuple[np.ndarray,
                                                                               np.ndarray]:
        """(rows whose cells in ``group`` are all observed, their flat cell index)."""
        # asarray: numpy's stubs type a reduction as maybe-scalar; along an axis it is not.
        keep = np.asarray((levels[:, list(group)] >= 0).all(axis=1))
        cell = np.zeros(int(keep.sum()), dtype=np.int64)
        for j in group:
            cell = cell * self.widths[j] + levels[keep, j]
        return keep, cell

    def describe(self) -> list[list[str]]:
        """The groups by column name (public: a function of the schema)."""
        return [[self.columns[j] for j in g] for g in self.groups]


@dataclass(frozen=True)
class NoisyMarginals:
    """DP estimates of the plan's marginals as probability tables (post-processed)."""

    plan: MarginalPlan
    noise_multiplier: float
    probabilities: tuple[np.ndarray, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (DP outputs: may be stored beside and released with a model)."""
        return {"groups": self.plan.describe(), "widths": list(self.plan.widths),
                "columns": list(self.plan.columns), "noise_multiplier": self.noise_multiplier,
                "probabilities": [p.round(8).tolist() for p in self.probabilities]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NoisyMarginals:
        columns = tuple(d["columns"])
        groups = tuple(tuple(columns.index(c) for c in g) for g in d["groups"])
        plan = MarginalPlan(columns, tuple(d["widths"]), groups)
        probs = tuple(np.asarray(p, dtype=np.float64) for p in d["probabilities"])
        return cls(plan, float(d["noise_multiplier"]), probs)


def measure(levels: np.ndarray, plan: MarginalPlan, noise_multiplier: float,
            rng: np.random.Generator) -> NoisyMarginals:
    """The Gaussian mechanism on every marginal of ``plan`` (noise std σ·sqrt(m) a cell),
    then a consistent set of probability tables (:func:`_consistent`)."""
    noisy = noisy_counts(levels, plan, noise_multiplier, rng)
    return NoisyMarginals(plan, float(noise_multiplier), tuple(_consistent(plan, noisy)))


def noisy_counts(levels: np.ndarray, plan: MarginalPlan, noise_multiplier: float,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """Every cell count of every marginal plus N(0, (σ·sqrt(m))²): the mechanism itself."""
    if noise_multiplier <= 0:
        raise ValueError("the Gaussian mechanism needs a positive noise multiplier")
    std = noise_multiplier * np.sqrt(len(plan.groups))
    noisy = []
    for group in plan.groups:
        _, cell = plan.cell_index(levels, group)
        counts = np.bincount(cell, minlength=plan.cells(group)).astype(np.float64)
        noisy.append(counts + rng.normal(0.0, std, size=counts.shape))
    return noisy


def _consistent(plan: MarginalPlan, noisy: list[np.ndarray],
                shaped: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Probability tables from noisy counts (post-processing only).

    One total for all tables (the mean of their noisy sums). In the (column, target)
    design every table's class sums estimate the same target counts without bias, so
    their inverse-variance mean is the target marginal; then each class's column of each
    table is projected onto the simplex of that class's count (subtract a constant, clip
    at 0: unlike clipping alone this does not turn the noise of empty cells into mass,
    and a rare class cannot grow by collecting the noise of many cells). Without a target
    each table is projected onto the simplex of the total.

    ``shaped`` (other post-processed counts, e.g. the shrinkage compared in
    :mod:`benchmarks.marginal_designs`) replaces the tables' cells in
    the projection; the total and the target marginal still come from ``noisy``, whose
    class sums are unbiased.
    """
    total = max(float(np.mean([v.sum() for v in noisy])), 1.0)
    pairs = bool(plan.groups) and all(len(g) == 2 and g[1] == plan.groups[0][1]
                                      for g in plan.groups)
    if not pairs:
        return [_normalise(_project(v, total))
                for v in (noisy if shaped is None else shaped)]
    width_t = plan.widths[plan.groups[0][1]]
    columns = [v.reshape(-1, width_t) for v in noisy]
    # A class sum over w cells has noise variance w·std²: weight the tables by 1 / w.
    weights = np.array([1.0 / m.shape[0] for m in columns])
    raw = np.sum([w * m.sum(axis=0) for w, m in zip(weights, columns, strict=True)],
                 axis=0) / weights.sum()
    target = _project(raw, total)
    if shaped is not None:
        columns = [v.reshape(-1, width_t) for v in shaped]
    tables = []
    for m in columns:
        fitted = np.column_stack([_project(m[:, c], target[c]) for c in range(width_t)])
        tables.append(_normalise(fitted.reshape(-1)))
    return tables


def _normalise(p: np.ndarray) -> np.ndarray:
    s = p.sum()
    return p / s if s > 0 else np.full_like(p, 1.0 / len(p))


def _project(v: np.ndarray, total: float) -> np.ndarray:
    """Euclidean projection of ``v`` onto {p ≥ 0, Σp = total} (all zeros for total 0)."""
    if total <= 0:
        return np.zeros_like(v)
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - total
    k = np.arange(1, len(u) + 1)
    rho = np.nonzero(u - css / k > 0)[0]
    tau = css[rho[-1]] / (rho[-1] + 1) if len(rho) else (v.sum() - total) / len(v)
    return np.clip(v - tau, 0.0, None)


def rake(levels: np.ndarray, marginals: NoisyMarginals,
         sweeps: int = RAKING_SWEEPS) -> np.ndarray:
    """Weights (summing to 1) on the pool rows ``levels`` whose weighted marginals agree
    with ``marginals`` as closely as the pool's support allows (iterative proportional
    fitting); rows in cells the DP marginals call empty get weight 0."""
    plan = marginals.plan
    n = len(levels)
    weights = np.full(n, 1.0 / max(n, 1))
    indexed = [plan.cell_index(levels, g) for g in plan.groups]
    for _ in range(sweeps):
        for (keep, cell), target in zip(indexed, marginals.probabilities, strict=True):
            current = np.bincount(cell, weights=weights[keep], minlength=len(target))
            total = current.sum()
            if total <= 0:
                continue
            want = target * total
            factor = np.divide(want, current, out=np.zeros_like(want), where=current > 0)
            weights[keep] *= factor[cell]
        s = weights.sum()
        if s <= 0:
            return np.full(n, 1.0 / max(n, 1))
        weights /= s
    return weights


def independent_draws(marginals: NoisyMarginals, n: int,
                      rng: np.random.Generator) -> np.ndarray:
    """``n`` rows drawn from the DP marginals alone: the target from its marginal, then
    each column from its noisy conditional given the target (each column on its own
    without a target). Added to the raking pool so that every cell the DP marginals call
    populated has rows, even where the VAE never generates one."""
    plan = marginals.plan
    levels = np.zeros((n, len(plan.columns)), dtype=np.int64)
    pairs = bool(plan.groups) and all(len(g) == 2 for g in plan.groups)
    if not pairs:
        for (j,), p in zip(plan.groups, marginals.probabilities, strict=True):
            levels[:, j] = rng.choice(len(p), size=n, p=_normalise(p))
        return levels
    t = plan.groups[0][1]
    width_t = plan.widths[t]
    tables = [p.reshape(-1, width_t) for p in marginals.probabilities]
    levels[:, t] = rng.choice(width_t, size=n, p=_normalise(tables[0].sum(axis=0)))
    for (j, _), table in zip(plan.groups, tables, strict=True):
        for c in range(width_t):
            rows = np.nonzero(levels[:, t] == c)[0]
            if len(rows):
                levels[rows, j] = rng.choice(table.shape[0], size=len(rows),
                                             p=_normalise(table[:, c]))
    return levels


def resample(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` pool indices drawn in proportion to ``weights`` (systematic resampling: each
    row appears floor or ceil of its expected count, the least added variance)."""
    cum = np.cumsum(weights / weights.sum())
    points = (rng.random() + np.arange(n)) / n
    idx = np.searchsorted(cum, points, side="right")
    return rng.permutation(np.minimum(idx, len(weights) - 1))
