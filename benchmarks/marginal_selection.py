"""Private selection of further marginals (AIM's rule), measured on one cached fit.

A diagnostic for issue #18 (``python -m benchmarks.marginal_selection [--tables a,b]
[--seeds 0,1] [--reps 3] [--designs none,pair,triple]``). The deployed sampler rakes the
VAE's draws to Gaussian-mechanism (column, target) tables, which say nothing about how two
columns go together within a class. This asks whether spending part of the same budget
on tables chosen privately — the ones the trained model gets most wrong — helps:

1. the marginals' budget is split in ρ into three Gaussian mechanisms (they compose
   exactly, ``1/σ² = Σ 1/σᵢ²``, so the accountant entry and the DP-SGD noise do not
   change): ``1 − s − p`` measures the (column, target) tables, ``s`` scores every
   candidate, ``p`` measures the chosen ones;
2. each candidate's score is the L1 distance between its true counts and the model's
   draws raked to the first round (a DP output), so it moves by at most 1 when a row
   joins and the vector of ``K`` scores has L2 sensitivity ``sqrt(K)``: one Gaussian
   mechanism releases them all, and keeping the best is post-processing. A candidate is
   kept when its noisy gain exceeds ``gain_factor`` times the L1 noise its own
   measurement would add (AIM, McKenna et al. 2022, uses 1), at most one per two features;
3. the chosen tables are measured, made to agree with the first round on their shared
   columns (IPF), and raked to before the (column, target) tables in each sweep (so the
   target's marginal is met exactly); when nothing is chosen, the ``p`` share measures the
   first round again and the two are averaged by inverse variance.

Designs: ``none`` (the deployed measurement at the whole σ), ``pair`` (candidates: two
non-target columns, at most :data:`PAIR_MAX_CELLS` cells) and ``triple`` (the same pairs
with the target, at most :data:`TRIPLE_MAX_CELLS` cells), each at ``gain_factor`` 2. The
DP-SGD model is the cached fit of :mod:`benchmarks.marginal_designs` (the deployed
training share); each (table, seed) is scored over ``--reps`` independent noise draws,
every design of a rep on the same draws where they coincide. Writes
``benchmarks/results/marginal_selection.json`` (a rerun replaces its own rows).

Measured (2026-12-02; docs/utility-experiments.md, "Where the goal is not met"):
german_health gains (its VAE misses how ``edlevel`` goes with ``educ``, ``kids`` with
``age``), census_income loses about 0.008 with either design — with the *exact* counts
of the chosen tables it still scores 0.902 against 0.904 without them — and in the
product (the full utility suite, triples) 10 of 15 tables fell, patient_tests once to
accuracy 0.16 before the target tables were raked last. Not in the product.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import single_thread
from benchmarks.marginal_designs import _fit
from benchmarks.suite import split_table
from pulsesynth.synth import marginals as dp_marginals
from pulsesynth.synth.marginals import MarginalPlan, NoisyMarginals

OUT = Path(__file__).resolve().parent / "results" / "marginal_selection.json"
#: ρ-shares of the marginals' budget: scoring the candidates, measuring the chosen ones.
SELECTION_SHARE = 0.05
CHOSEN_SHARE = 0.15
PAIR_MAX_CELLS = 400
TRIPLE_MAX_CELLS = 1200
GAIN_FACTOR = 2.0
#: Model draws that stand for the current estimate when candidates are scored.
SELECTION_POOL_ROWS = 20_000
DESIGNS = ("none", "pair", "triple")

Group = tuple[int, ...]


def target_index(plan: MarginalPlan) -> int:
    """The target's column index in a (column, target) plan."""
    t = plan.target_index
    if t is None:
        raise ValueError("not a (column, target) plan")
    return t


def candidates(plan: MarginalPlan, design: str) -> tuple[Group, ...]:
    """The public candidate list: a function of the declared levels only."""
    t = target_index(plan)
    w = plan.widths
    features = [j for j in range(len(plan.columns)) if j != t]
    pairs = [(a, b) for i, a in enumerate(features) for b in features[i + 1:]
             if w[a] * w[b] <= PAIR_MAX_CELLS]
    if design == "pair":
        return tuple(pairs)
    return tuple((a, b, t) for a, b in pairs if w[a] * w[b] * w[t] <= TRIPLE_MAX_CELLS)


def noise_split(sigma: float) -> tuple[float, float, float]:
    """(σ₁, σ_select, σ₂), composing exactly to the Gaussian mechanism at ``sigma``."""
    rest = 1.0 - SELECTION_SHARE - CHOSEN_SHARE
    return (sigma / np.sqrt(rest), sigma / np.sqrt(SELECTION_SHARE),
            sigma / np.sqrt(CHOSEN_SHARE))


@dataclass(frozen=True)
class FirstRound:
    """The (column, target) tables at σ₁, their noisy counts and the noisy total."""

    marginals: NoisyMarginals
    counts: tuple[np.ndarray, ...]
    total: float


def measure_first(levels: np.ndarray, plan: MarginalPlan, sigma: float,
                  rng: np.random.Generator) -> FirstRound:
    counts = dp_marginals.noisy_counts(levels, plan, noise_split(sigma)[0], rng)
    total = max(float(np.mean([v.sum() for v in counts])), 1.0)
    return FirstRound(NoisyMarginals(plan, sigma, tuple(dp_marginals._consistent(plan, counts))),
                      tuple(counts), total)


def group_table(levels: np.ndarray, plan: MarginalPlan, group: Group,
                weights: np.ndarray | None = None) -> np.ndarray:
    """The (weighted) count of each cell of ``group``."""
    keep, cell = plan.cell_index(levels, group)
    return np.bincount(cell, weights=None if weights is None else weights[keep],
                       minlength=plan.cells(group)).astype(np.float64)


def select(levels: np.ndarray, first: FirstRound, options: Sequence[Group], pool: np.ndarray,
           pool_weights: np.ndarray, sigma: float, rng: np.random.Generator) -> list[Group]:
    """The candidates whose noisy gain beats ``GAIN_FACTOR`` × their measurement's L1 noise
    (one Gaussian mechanism on the vector of scores, sensitivity ``sqrt(K)``)."""
    plan = first.marginals.plan
    budget = max(1, (len(plan.columns) - 1) // 2)
    if not options:
        return []
    _, sigma_s, sigma_2 = noise_split(sigma)
    weights = pool_weights / pool_weights.sum()
    scores = np.array([np.abs(group_table(levels, plan, g)
                              - first.total * group_table(pool, plan, g, weights)).sum()
                       for g in options])
    penalty = np.array([GAIN_FACTOR * np.sqrt(2.0 / np.pi) * sigma_2 * np.sqrt(budget)
                        * plan.cells(g) for g in options])
    gain = scores + rng.normal(0.0, sigma_s * np.sqrt(len(options)), len(options)) - penalty
    order = [int(i) for i in np.argsort(-gain, kind="stable") if gain[i] > 0]
    return [options[i] for i in order[:budget]]


def _agree(table: np.ndarray, group: Group, first: NoisyMarginals,
           sweeps: int = 100) -> np.ndarray:
    """A probability table close to ``table`` whose sums over its shared columns are the
    first round's (IPF; a small floor keeps emptied cells reachable)."""
    plan = first.plan
    t = target_index(plan)
    shape = [plan.widths[j] for j in group]
    cube = dp_marginals._normalise(table).reshape(shape) + 1e-9
    fits: list[tuple[tuple[int, ...], np.ndarray]] = []
    for axis, j in enumerate(group):
        if j == t:
            continue
        own = first.probabilities[[g[0] for g in plan.groups].index(j)].reshape(-1,
                                                                               plan.widths[t])
        if t in group:
            fits.append((tuple(a for a in range(len(group))
                               if a not in (axis, group.index(t))), own))
        else:
            fits.append((tuple(a for a in range(len(group)) if a != axis), own.sum(axis=1)))
    for _ in range(sweeps):
        for other, want in fits:
            have = cube.sum(axis=other)
            cube = cube * np.expand_dims(
                np.divide(want, have, out=np.zeros_like(want), where=have > 0), other)
    return dp_marginals._normalise(cube.reshape(-1))


def measure_chosen(levels: np.ndarray, first: FirstRound, chosen: Sequence[Group],
                   sigma: float, rng: np.random.Generator) -> NoisyMarginals:
    """The chosen tables at σ₂, placed *before* the (column, target) tables so that raking
    meets those last; or, with nothing chosen, the first round measured again."""
    plan = first.marginals.plan
    sigma_1, _, sigma_2 = noise_split(sigma)
    if not chosen:
        again = dp_marginals.noisy_counts(levels, plan, sigma_2, rng)
        w1, w2 = sigma_1 ** -2, sigma_2 ** -2
        pooled = [(w1 * a + w2 * b) / (w1 + w2)
                  for a, b in zip(first.counts, again, strict=True)]
        return NoisyMarginals(plan, sigma, tuple(dp_marginals._consistent(plan, pooled)))
    extra = MarginalPlan(plan.columns, plan.widths, tuple(chosen))
    noisy = dp_marginals.noisy_counts(levels, extra, sigma_2, rng)
    tables = [_agree(dp_marginals._project(v, first.total), g, first.marginals)
              for v, g in zip(noisy, chosen, strict=True)]
    full = MarginalPlan(plan.columns, plan.widths, tuple(chosen) + plan.groups)
    return NoisyMarginals(full, sigma, tuple(tables) + first.marginals.probabilities)


def measure(name: str, seed: int, reps: int, designs: Sequence[str]) -> list[dict[str, Any]]:
    """Score every design of ``name`` at ``seed`` over ``reps`` noise draws."""
    from pulsesynth.utility import tstr_scores

    train, test, schema = split_table(name)
    synth, arrays = _fit(name, seed)
    sigma = float(arrays["sigma"][0])
    plan = MarginalPlan.for_columns(synth.encoder.column_names,
                                    [b.width for b in synth.encoder.block_specs], schema.target)
    levels, n = arrays["real"], len(train)
    rows = []
    for rep in range(reps):
        for design in designs:
            rng = np.random.default_rng([seed, rep, 0x4D415247])
            chosen: list[Group] = []
            if design == "none":
                marginals = dp_marginals.measure(levels, plan, sigma, rng)
            else:
                first = measure_first(levels, plan, sigma, rng)
                pick = np.random.default_rng([seed, rep, 99])
                pool = np.vstack([arrays["vae"][:SELECTION_POOL_ROWS],
                                  dp_marginals.independent_draws(
                                      first.marginals, SELECTION_POOL_ROWS // 5, pick)])
                weights = dp_marginals.rake(pool, first.marginals)
                chosen = select(levels, first, candidates(plan, design), pool, weights,
                                sigma, pick)
                marginals = measure_chosen(levels, first, chosen, sigma, pick)
            draw = np.random.default_rng([seed, rep, 13])
            support = dp_marginals.independent_draws(
                NoisyMarginals(plan, sigma, marginals.probabilities[-len(plan.groups):]),
                n, draw)
            pool = np.vstack([arrays["vae"], support])
            weights = dp_marginals.rake(pool, marginals)
            frame = synth.decode(pool[dp_marginals.resample(weights, n, draw)], draw)
            scores = tstr_scores(schema, frame, test)
            names = [[plan.columns[j] for j in g] for g in chosen]
            rows.append({"table": name, "seed": seed, "rep": rep, "design": design,
                         "auc": scores["auc"], "accuracy": scores["accuracy"],
                         "chosen": names})
            print(f"{name:14s} seed {seed} rep {rep} {design:7s} AUC {scores['auc']:.3f} "
                  f"chosen {len(names)}", flush=True)
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean (and worst) AUC per table and design."""
    groups: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(f"{r['table']}/{r['design']}", []).append(r["auc"])
    return {k: {"auc": round(statistics.mean(v), 4), "worst": round(min(v), 4), "runs": len(v)}
            for k, v in sorted(groups.items())}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables",
                        default="census_income,patient_tests,german_health,flchain,diamonds")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--designs", default=",".join(DESIGNS))
    args = parser.parse_args(argv)
    single_thread()
    designs = [d for d in args.designs.split(",") if d]
    new = [row for t in args.tables.split(",") if t for s in args.seeds.split(",") if s
           for row in measure(t, int(s), args.reps, designs)]
    old = json.loads(OUT.read_text())["rows"] if OUT.exists() else []
    key = ("table", "seed", "rep", "design")
    mine = {tuple(r[k] for k in key) for r in new}
    rows = [r for r in old if tuple(r[k] for k in key) not in mine] + new
    settings = {"selection_share": SELECTION_SHARE, "chosen_share": CHOSEN_SHARE,
                "gain_factor": GAIN_FACTOR, "pair_max_cells": PAIR_MAX_CELLS,
                "triple_max_cells": TRIPLE_MAX_CELLS, "epsilon_training": "deployed share"}
    OUT.write_text(json.dumps({"settings": settings, "rows": rows,
                               "mean_auc": summarise(rows)}, indent=1) + "\n")
    print(json.dumps(summarise(rows), indent=1))


if __name__ == "__main__":
    main()
