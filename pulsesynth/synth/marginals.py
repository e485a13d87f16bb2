"""DP marginals that the sampled table is made to agree with (Gaussian mechanism + raking).

A DP-SGD model of a small table learns its columns' shapes slowly: the noise that hides
one row drowns a few thousand rows' gradient. Counting is far cheaper in privacy than
training, so a share of the training budget measures a public set of low-order marginals
with the Gaussian mechanism, and sampling reweights a pool of the VAE's draws to agree
with them (iterative proportional fitting, then a weighted draw). Reweighting is
post-processing of DP outputs and costs nothing more.

Which marginals (:class:`MarginalPlan`): with a declared target, every column's
(column, target) 2-way table is a candidate — it holds the column's 1-way marginal, the
target's, and the pairwise signal a classifier trained on the table needs; without a
target, every 1-way marginal. On a small table the noise that hides one row is as large
as the rare classes' cells, and spreading it over every candidate drowns the few tables
that carry the signal (measured on doctor_aus: the five tables with the most signal
measured alone lift TSTR AUC by 0.02–0.03). So on such tables (a public rule,
:data:`SELECTION_NOISE_FLOOR`) :func:`measure_selected` first spends a fixed share of the
marginals' privacy on a noisy score of each candidate (its L1 distance from
independence), and only where the scores clearly show where the signal is, measures
the tables worth their noise (AIM's criterion: a score above the L1 error its own
measurement adds) at lower noise and the other columns' 1-way marginals at higher noise.
Where the scores show nothing (a table whose signal is thin and spread), every candidate
is measured as before.

Privacy: one row adds 1 to one cell of each marginal. Table ``i`` gets noise of std
``σ_T / sqrt(w_i)`` with weights ``Σ w_i = 1`` fixed before the tables are counted
(public, or chosen from the noisy scores: a DP output), so the tables are the Gaussian
mechanism with noise multiplier ``σ_T`` (uniform weights: std ``σ_T·sqrt(m)``). The
scores change by less than :data:`SCORE_SENSITIVITY` each, so the score vector is a
Gaussian mechanism too. Gaussian mechanisms compose exactly (``1/σ²`` adds, adaptively),
so with ``σ_S = σ / sqrt(share)`` and ``σ_T = σ / sqrt(1 - share)`` the two are one
Gaussian mechanism of noise multiplier ``σ``: its (σ, q = 1, one step) entry joins the
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
#: Choosing is considered only where the full plan's noise std per cell is at least this
#: fraction of the mean cell count (σ·sqrt(m) / (rows / mean cells): public, from σ, the
#: schema's widths and the DP row count). Below it every table is measured almost exactly,
#: and measuring all of them, with the whole budget, is as deployed before choosing existed.
SELECTION_NOISE_FLOOR = 0.1
#: Share of the marginals' privacy (of 1/σ², which Gaussian mechanisms add) that scores
#: the (column, target) candidates.
SELECTION_SHARE = 0.1
#: One row added or removed changes a table's L1 distance from the product of its own
#: margins by less than 4 (1 in its cell, under 3 in the product's cells).
SCORE_SENSITIVITY = 4.0
#: Tables are chosen only when the largest noisy score is this many of its noise's
#: standard deviations above zero: below it the scores cannot tell where the signal is.
SELECTION_GATE = 4.0
#: A candidate is worth measuring when its score exceeds this multiple of the L1 error its
#: measurement adds (cells × noise std × sqrt(2/π), AIM's criterion).
SELECTION_PENALTY = 1.0
#: A candidate's noisy score counts only beyond this many of the score noise's standard
#: deviations (a lower confidence bound): a table with no signal is not paired by chance.
SELECTION_CONFIDENCE = 1.0
#: Noise std of an unchosen column's 1-way table relative to a chosen (column, target)
#: table's (a 1-way table has few, large cells: it costs 1/9 of a chosen table).
SINGLE_NOISE_RATIO = 3.0


@dataclass(frozen=True)
class MarginalPlan:
    """The marginals measured for a table: groups of encoder column indices, and each
    group's public share of the tables' privacy (empty: equal shares)."""

    columns: tuple[str, ...]
    widths: tuple[int, ...]
    groups: tuple[tuple[int, ...], ...]
    weights: tuple[float, ...] = ()

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

    def chosen(self, pairs: Sequence[int]) -> MarginalPlan:
        """This (column, target) plan with only the columns ``pairs`` paired with the target
        and every other column measured alone, at :data:`SINGLE_NOISE_RATIO` times the noise
        std of a pair (weights ``a`` a pair and ``a / ratio²`` a single, summing to 1)."""
        t = self.target_index
        if t is None:
            raise ValueError("only a (column, target) plan can be narrowed")
        keep = sorted(set(pairs))
        rest = [g[0] for g in self.groups if g[0] not in keep]
        single = 1.0 / SINGLE_NOISE_RATIO ** 2
        a = 1.0 / (len(keep) + single * len(rest))
        groups = tuple((j, t) for j in keep) + tuple((j,) for j in rest)
        return MarginalPlan(self.columns, self.widths, groups,
                            tuple([a] * len(keep) + [a * single] * len(rest)))

    @property
    def shares(self) -> tuple[float, ...]:
        """Each group's share of the tables' privacy (``1 / std²`` relative to σ)."""
        return self.weights or tuple([1.0 / len(self.groups)] * len(self.groups))

    @property
    def target_index(self) -> int | None:
        """The column every 2-way group pairs with (the target), if the plan has one."""
        seconds = {g[1] for g in self.groups if len(g) == 2}
        if len(seconds) != 1 or any(len(g) > 2 for g in self.groups):
            return None
        return seconds.pop()

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
    #: How the plan was chosen (:func:`measure_selected`; DP: post-processing of noisy
    #: scores), None for a plan fixed in advance.
    selection: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (DP outputs: may be stored beside and released with a model)."""
        return {"groups": self.plan.describe(), "widths": list(self.plan.widths),
                "columns": list(self.plan.columns), "noise_multiplier": self.noise_multiplier,
                "weights": list(self.plan.weights),
                "selection": self.selection,
                "probabilities": [p.round(8).tolist() for p in self.probabilities]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NoisyMarginals:
        columns = tuple(d["columns"])
        groups = tuple(tuple(columns.index(c) for c in g) for g in d["groups"])
        plan = MarginalPlan(columns, tuple(d["widths"]), groups,
                            tuple(float(w) for w in d.get("weights") or ()))
        probs = tuple(np.asarray(p, dtype=np.float64) for p in d["probabilities"])
        return cls(plan, float(d["noise_multiplier"]), probs, d.get("selection"))


def measure(levels: np.ndarray, plan: MarginalPlan, noise_multiplier: float,
            rng: np.random.Generator) -> NoisyMarginals:
    """The Gaussian mechanism on every marginal of ``plan`` (noise std σ / sqrt(w) a cell:
    σ·sqrt(m) with equal shares), then a consistent set of probability tables
    (:func:`_consistent`)."""
    noisy = noisy_counts(levels, plan, noise_multiplier, rng)
    return NoisyMarginals(plan, float(noise_multiplier), tuple(_consistent(plan, noisy)))


def measure_selected(levels: np.ndarray, plan: MarginalPlan, noise_multiplier: float,
                     rng: np.random.Generator, rows: int) -> NoisyMarginals:
    """:func:`measure` of the tables that carry the signal, chosen privately (module
    docstring): one Gaussian mechanism of noise multiplier ``σ`` in all. ``rows`` is the
    public (DP) row count. A plan without a target, or whose noise is small beside its
    cells (:data:`SELECTION_NOISE_FLOOR`), is measured as it is, with the whole of ``σ``."""
    if noise_multiplier <= 0:
        raise ValueError("the Gaussian mechanism needs a positive noise multiplier")
    if (plan.target_index is None or len(plan.groups) < 2
            or noise_to_cells(plan, noise_multiplier, rows) < SELECTION_NOISE_FLOOR):
        return measure(levels, plan, noise_multiplier, rng)
    score_sigma = noise_multiplier / np.sqrt(SELECTION_SHARE)
    table_sigma = noise_multiplier / np.sqrt(1.0 - SELECTION_SHARE)
    m = len(plan.groups)
    score_std = SCORE_SENSITIVITY * np.sqrt(m) * score_sigma
    scores = np.array([interaction_l1(levels, plan, g) for g in plan.groups])
    noisy = scores + rng.normal(0.0, score_std, size=m)
    columns = [g[0] for g in plan.groups]
    report: dict[str, Any] = {"share": SELECTION_SHARE,
                              "clear": bool(noisy.max() > SELECTION_GATE * score_std)}
    chosen = plan
    if report["clear"]:
        picked = _worth_measuring(plan, noisy - SELECTION_CONFIDENCE * score_std, table_sigma)
        chosen = plan.chosen([columns[i] for i in picked])
    report["paired"] = [plan.columns[g[0]] for g in chosen.groups if len(g) == 2]
    measured = measure(levels, chosen, table_sigma, rng)
    return NoisyMarginals(chosen, float(noise_multiplier), measured.probabilities, report)


def noise_to_cells(plan: MarginalPlan, noise_multiplier: float, rows: int) -> float:
    """The full plan's noise std per cell over its mean cell count (public facts only)."""
    mean_cells = float(np.mean([plan.cells(g) for g in plan.groups]))
    return noise_multiplier * np.sqrt(len(plan.groups)) * mean_cells / max(rows, 1)


def interaction_l1(levels: np.ndarray, plan: MarginalPlan, group: tuple[int, ...]) -> float:
    """L1 distance of a 2-way count table from the product of its own margins (a
    function of the rows: only ever released with Gaussian noise)."""
    _, cell = plan.cell_index(levels, group)
    counts = np.bincount(cell, minlength=plan.cells(group)).astype(np.float64)
    table = counts.reshape([plan.widths[j] for j in group])
    n = table.sum()
    if n <= 0:
        return 0.0
    return float(np.abs(table - np.outer(table.sum(axis=1), table.sum(axis=0)) / n).sum())


def _worth_measuring(plan: MarginalPlan, noisy: np.ndarray, table_sigma: float) -> list[int]:
    """The candidates to pair with the target: for each count K, the K with the largest
    (lower bound of the) noisy score less the L1 error their measurement would add when K
    are paired; the K whose total is largest (post-processing of the noisy scores and
    public facts)."""
    m = len(plan.groups)
    cells = np.array([plan.cells(g) for g in plan.groups], dtype=np.float64)
    best: tuple[float, list[int]] = (-np.inf, [int(np.argmax(noisy))])
    for k in range(1, m + 1):
        pair_std = table_sigma * np.sqrt(k + (m - k) / SINGLE_NOISE_RATIO ** 2)
        gain = noisy - SELECTION_PENALTY * cells * pair_std * np.sqrt(2.0 / np.pi)
        top = [int(i) for i in np.argsort(-gain, kind="stable")[:k]]
        total = float(gain[top].sum())
        if total > best[0]:
            best = (total, top)
    return sorted(best[1])


def noisy_counts(levels: np.ndarray, plan: MarginalPlan, noise_multiplier: float,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """Every cell count of every marginal plus N(0, σ² / w) with ``w`` its group's share:
    the mechanism itself (equal shares: std σ·sqrt(m))."""
    if noise_multiplier <= 0:
        raise ValueError("the Gaussian mechanism needs a positive noise multiplier")
    noisy = []
    for group, share in zip(plan.groups, plan.shares, strict=True):
        _, cell = plan.cell_index(levels, group)
        counts = np.bincount(cell, minlength=plan.cells(group)).astype(np.float64)
        noisy.append(counts + rng.normal(0.0, noise_multiplier / np.sqrt(share),
                                         size=counts.shape))
    return noisy


def _consistent(plan: MarginalPlan, noisy: list[np.ndarray],
                shaped: list[np.ndarray] | None = None,
                noisy_cells: Sequence[float] | None = None) -> list[np.ndarray]:
    """Probability tables from noisy counts (post-processing only).

    One total for all tables (the mean of their noisy sums). Where the plan pairs columns
    with the target, every pair's class sums estimate the same target counts without
    bias, so their inverse-variance mean is the target marginal; then each class's column
    of each pair is projected onto the simplex of that class's count (subtract a constant,
    clip at 0: unlike clipping alone this does not turn the noise of empty cells into
    mass, and a rare class cannot grow by collecting the noise of many cells). Every
    other table (a column alone) is projected onto the simplex of the total.

    ``shaped`` (other post-processed counts, e.g. the shrinkage compared in
    :mod:`benchmarks.marginal_designs`) replaces the tables' cells in
    the projection; the total and the target marginal still come from ``noisy``, whose
    class sums are unbiased. ``noisy_cells[j]``: how many noisy cells column ``j``'s
    levels were summed from (sub-bins, :mod:`pulsesynth.synth.within_bin`; default its
    width), which weighs its class sums' noise.
    """
    total = max(float(np.mean([v.sum() for v in noisy])), 1.0)
    cells = noisy if shaped is None else shaped
    t = plan.target_index
    if t is None:
        return [_normalise(_project(v, total)) for v in cells]
    width_t = plan.widths[t]
    pairs = [i for i, g in enumerate(plan.groups) if len(g) == 2]
    # A class sum over w cells of noise variance 1 / share has variance w / share.
    cells_of = plan.widths if noisy_cells is None else noisy_cells
    weights = np.array([plan.shares[i] / cells_of[plan.groups[i][0]] for i in pairs])
    raw = np.sum([w * noisy[i].reshape(-1, width_t).sum(axis=0)
                  for w, i in zip(weights, pairs, strict=True)], axis=0) / weights.sum()
    target = _project(raw, total)
    tables = []
    for group, v in zip(plan.groups, cells, strict=True):
        if len(group) == 1:
            tables.append(_normalise(_project(v, total)))
            continue
        m = v.reshape(-1, width_t)
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
    each paired column from its noisy conditional given the target, and each column
    measured alone from its own marginal. Added to the raking pool so that every cell the
    DP marginals call populated has rows, even where the VAE never generates one."""
    plan = marginals.plan
    levels = np.zeros((n, len(plan.columns)), dtype=np.int64)
    t = plan.target_index
    if t is not None:
        width_t = plan.widths[t]
        first = next(p for g, p in zip(plan.groups, marginals.probabilities, strict=True)
                     if len(g) == 2)
        levels[:, t] = rng.choice(width_t, size=n,
                                  p=_normalise(first.reshape(-1, width_t).sum(axis=0)))
    for group, p in zip(plan.groups, marginals.probabilities, strict=True):
        j = group[0]
        if len(group) == 1:
            levels[:, j] = rng.choice(len(p), size=n, p=_normalise(p))
            continue
        table = p.reshape(-1, plan.widths[group[1]])
        for c in range(table.shape[1]):
            rows = np.nonzero(levels[:, group[1]] == c)[0]
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
