"""Post-processing and allocation of the DP marginals, compared on one cached fit.

A diagnostic for issue #18 (``python -m benchmarks.marginal_designs [--tables a,b]
[--seeds 0,1] [--designs base,shrink_table,shrink_cell,soft_sure] [--noise-scale 1]``;
``--noise-scale`` below 1 is a what-if, not an accounted mechanism: the ceiling that an
allocation measuring the marginals at that noise could reach). The DP-SGD model is fitted
once per (table, seed) as :mod:`benchmarks.raking_ceiling` does (the deployed training
share, the exact row count) and its pool of VAE draws is cached under
``$PULSESYNTH_CACHE`` (default ``/tmp/pulsesynth-marginal-designs``), so each design only
re-runs the marginals' post-processing, raking and scoring. Every design of a (table,
seed) post-processes **the same noisy counts** (the same Gaussian draw at the deployed σ),
so differences between designs are the designs', not the noise's.

Designs (all post-processing of the same Gaussian-mechanism output):

- ``base``: the deployed projection (:func:`pulsesynth.synth.marginals._consistent`);
- ``shrink_table``: one James–Stein factor a table toward independence, then ``base``;
- ``shrink_cell``: a Wiener factor per cell under a chi-square-like prior
  (:func:`shrink_interactions`), then ``base``;
- ``soft_sure``: SURE soft-thresholding of the residual from independence
  (:func:`soft_threshold`), then ``base``.

Each is scored four ways (the utility suite's split, bins and TSTR classifier):
``independent`` (rows from the marginals alone), ``product`` (VAE pool + independent
rows, raked, resampled: the deployed sampler), ``vae_raked`` (the VAE pool alone, raked)
and ``oracle`` (the real training rows
raked to the marginals -- a ceiling, not a release). Merges its rows into
``benchmarks/results/marginal_designs.json`` (a rerun replaces its own rows).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import single_thread
from benchmarks.suite import split_table
from pulsesynth.budget import BudgetSplit
from pulsesynth.synth import DPVAESynthesizer
from pulsesynth.synth import marginals as dp_marginals
from pulsesynth.utility import tstr_scores

OUT = Path(__file__).resolve().parent / "results" / "marginal_designs.json"
CACHE = Path(os.environ.get("PULSESYNTH_CACHE", "/tmp/pulsesynth-marginal-designs"))
EPSILON = 1.0
DESIGNS = ("base", "shrink_table", "shrink_cell", "soft_sure")
WAYS = ("independent", "product", "vae_raked", "oracle")


def _fit(name: str, seed: int) -> tuple[DPVAESynthesizer, dict[str, np.ndarray]]:
    """The fit's synthesizer (its encoder and σ) and cached arrays: the VAE pool and the
    capped real training levels the deployed marginals are measured on."""
    from pulsesynth.randomness import salt_from_seed
    from pulsesynth.splits import cap_rows_per_unit

    train, _, schema = split_table(name)
    path = CACHE / f"{name}-{seed}.npz"
    synth = DPVAESynthesizer(schema, epsilon=BudgetSplit.of(EPSILON).training, seed=seed)
    if path.exists():
        with np.load(path) as z:
            return synth, {k: z[k] for k in z.files}
    synth.fit(train, public_rows=len(train))
    if synth.marginals is None:
        raise RuntimeError("a private fit with a positive marginal share measures marginals")
    rng = np.random.default_rng([seed, 11])
    vae = synth._draw_levels(len(train) * dp_marginals.POOL_FACTOR, seed, rng)
    k = schema.privacy.max_rows_per_unit
    capped = cap_rows_per_unit(train, schema, k, salt=salt_from_seed(seed))
    arrays = {"vae": vae, "real": synth.encoder.levels(capped),
              "sigma": np.array([synth.marginals.noise_multiplier])}
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, vae=arrays["vae"], real=arrays["real"], sigma=arrays["sigma"])
    return synth, arrays


def shrink_interactions(plan: dp_marginals.MarginalPlan, noisy: list[np.ndarray],
                        std: float) -> list[np.ndarray]:
    """Empirical-Bayes shrinkage of each (column, target) table's interaction toward
    independence (post-processing: it reads only the noisy counts and the public noise
    std, ``σ·sqrt(m)`` a cell).

    Each noisy table ``Y`` (levels × classes) splits into what independence predicts from
    its own level sums and the pooled class shares, ``E = r·πᵀ``, and a residual
    ``R = Y − E``: the column's association with the target plus noise. The noise's part
    of each residual cell is known: with i.i.d. N(0, std²) cells,
    ``R_jc = e_jc − π_c·Σ_c' e_jc'`` has variance ``std²·v_c``,
    ``v_c = 1 − 2π_c + C·π_c²``. The association is modelled as chi-square-like
    dispersion, ``Var(signal_jc) = τ²·E_jc`` (a cell expected to hold more rows carries
    more of it), with one ``τ²`` a table estimated by method of moments (observed residual
    energy minus noise energy over ``ΣE``, floored at 0). Each residual is scaled by its
    Wiener factor ``τ²E_jc / (τ²E_jc + std²v_c)``: cells of rare classes or rare levels,
    whose residual is mostly noise, fall back toward independence (the 1-way marginals,
    which the noise hides far less); well-populated cells keep their measured association.
    A table whose residual energy is no more than the noise's becomes its independence
    table. On the four tables below AIM it cut the squared error of doctor_aus' 4-class
    tables by 36% and raised it on none, where a per-table (James–Stein) or per-level
    factor did; but one ``τ²`` a table misfits a concentrated association (patient_tests'
    ``ct_result``: nearly all signal in a few cells of the rare class, whose small ``E``
    earns a small factor), and in the product it cost patient_tests 0.09 AUC: it is a
    measured dead end, kept here with its numbers (docs/utility-experiments.md, "Where
    the goal is not met").

    Returns shrunk counts (same shapes; not yet consistent or non-negative); tables of
    other plans (no target) unchanged.
    """
    pairs = bool(plan.groups) and all(len(g) == 2 and g[1] == plan.groups[0][1]
                                      for g in plan.groups)
    if not pairs or std <= 0:
        return [v.copy() for v in noisy]
    width_t = plan.widths[plan.groups[0][1]]
    columns = [v.reshape(-1, width_t) for v in noisy]
    # The class shares: the same inverse-variance pooling as the target marginal.
    weights = np.array([1.0 / m.shape[0] for m in columns])
    pooled = np.sum([w * m.sum(axis=0) for w, m in zip(weights, columns, strict=True)],
                    axis=0) / weights.sum()
    pi = dp_marginals._normalise(np.clip(pooled, 0.0, None))
    noise = std ** 2 * (1.0 - 2.0 * pi + width_t * pi ** 2)  # a cell's, by class
    out = []
    for m in columns:
        expected = np.outer(m.sum(axis=1), pi)
        resid = m - expected
        prior = np.clip(expected, 0.0, None)
        mass = float(prior.sum())
        tau2 = max(float((resid ** 2 - noise).sum()) / mass, 0.0) if mass > 0 else 0.0
        signal = tau2 * prior
        denom = signal + noise
        factor = np.divide(signal, denom, out=np.zeros_like(signal), where=denom > 0)
        out.append((expected + factor * resid).reshape(-1))
    return out


def soft_threshold(plan: dp_marginals.MarginalPlan, noisy: list[np.ndarray],
                   std: float) -> list[np.ndarray]:
    """SURE soft-thresholding of each (column, target) table's residual from independence
    (Donoho & Johnstone's SureShrink; post-processing of the noisy counts with the public
    noise std).

    With ``E = r·πᵀ`` and ``R = Y − E`` as in :func:`shrink_interactions`, each residual in
    units of its known noise sd, ``z = R / (std·sqrt(v_c))``, is moved toward 0 by a
    threshold λ (``sign(z)·max(|z| − λ, 0)``), λ chosen per table to minimise Stein's
    unbiased risk estimate ``N − 2·#{|z| ≤ λ} + Σ min(z², λ²)``. Unlike a multiplicative
    factor, a large residual concentrated in a few cells keeps all but λ noise sds of
    itself, while cells within noise of independence go to it. Measured (2 seeds): the
    doctor_aus sampler 0.764 against 0.752 unshrunk, but patient_tests 0.722 against
    0.772; not in the product.
    """
    pairs = bool(plan.groups) and all(len(g) == 2 and g[1] == plan.groups[0][1]
                                      for g in plan.groups)
    if not pairs or std <= 0:
        return [v.copy() for v in noisy]
    width_t = plan.widths[plan.groups[0][1]]
    columns = [v.reshape(-1, width_t) for v in noisy]
    weights = np.array([1.0 / m.shape[0] for m in columns])
    pooled = np.sum([w * m.sum(axis=0) for w, m in zip(weights, columns, strict=True)],
                    axis=0) / weights.sum()
    pi = dp_marginals._normalise(np.clip(pooled, 0.0, None))
    sd = std * np.sqrt(1.0 - 2.0 * pi + width_t * pi ** 2)
    out = []
    for m in columns:
        expected = np.outer(m.sum(axis=1), pi)
        z = (m - expected) / sd
        a = np.sort(np.abs(z).reshape(-1))
        # SURE at λ = 0 and at every |z| (its minimum is at one of them).
        candidates = np.concatenate([[0.0], a])
        below = np.searchsorted(a, candidates, side="right")
        csum = np.concatenate([[0.0], np.cumsum(a ** 2)])
        risk = a.size - 2 * below + csum[below] + (a.size - below) * candidates ** 2
        lam = float(candidates[int(np.argmin(risk))])
        shrunk = np.sign(z) * np.clip(np.abs(z) - lam, 0.0, None)
        out.append((expected + shrunk * sd).reshape(-1))
    return out


def _james_stein(plan: dp_marginals.MarginalPlan, noisy: list[np.ndarray],
                 std: float) -> list[np.ndarray]:
    """One positive-part James–Stein factor a table toward independence (the
    alternative the deployed cell-wise model was compared with)."""
    width_t = plan.widths[plan.groups[0][1]]
    columns = [v.reshape(-1, width_t) for v in noisy]
    weights = np.array([1.0 / m.shape[0] for m in columns])
    pooled = np.sum([w * m.sum(axis=0) for w, m in zip(weights, columns, strict=True)],
                    axis=0) / weights.sum()
    pi = np.clip(pooled, 0.0, None) / max(float(np.clip(pooled, 0.0, None).sum()), 1e-12)
    noise = std ** 2 * (1.0 - 2.0 * pi + width_t * pi ** 2)
    out = []
    for m in columns:
        expected = np.outer(m.sum(axis=1), pi)
        resid = m - expected
        energy = float((resid ** 2).sum())
        factor = max(1.0 - m.shape[0] * float(noise.sum()) / energy, 0.0) if energy else 0.0
        out.append((expected + factor * resid).reshape(-1))
    return out


def _designs(plan: dp_marginals.MarginalPlan, noisy: list[np.ndarray],
             std: float) -> dict[str, list[np.ndarray]]:
    """Every design's probability tables from the same noisy counts."""
    return {
        "base": dp_marginals._consistent(plan, noisy),
        "shrink_table": dp_marginals._consistent(plan, noisy,
                                                 _james_stein(plan, noisy, std)),
        "shrink_cell": dp_marginals._consistent(
            plan, noisy, shrink_interactions(plan, noisy, std)),
        "soft_sure": dp_marginals._consistent(plan, noisy, soft_threshold(plan, noisy, std)),
    }


def measure(name: str, seed: int, designs: list[str],
            noise_scale: float = 1.0) -> list[dict[str, Any]]:
    """Score every design of ``name`` at ``seed`` every way; ``noise_scale`` ≠ 1 is a
    what-if (noise σ·scale, not what the accountant charged): what an allocation that
    measured the marginals at that noise could reach at best."""
    train, test, schema = split_table(name)
    synth, arrays = _fit(name, seed)
    sigma = float(arrays["sigma"][0]) * noise_scale
    plan = dp_marginals.MarginalPlan.for_columns(
        synth.encoder.column_names, [b.width for b in synth.encoder.block_specs], schema.target)
    noisy = dp_marginals.noisy_counts(arrays["real"], plan, sigma,
                                      np.random.default_rng([seed, 0x4D415247]))
    std = sigma * np.sqrt(len(plan.groups))
    tables = _designs(plan, noisy, std)
    real = arrays["real"][(arrays["real"] >= 0).all(axis=1)]
    n = len(train)
    rows = []
    for design in designs:
        marginals = dp_marginals.NoisyMarginals(plan, sigma, tuple(tables[design]))
        rng = np.random.default_rng([seed, 13])
        independent = dp_marginals.independent_draws(marginals, n, rng)

        def raked(levels: np.ndarray, marginals: dp_marginals.NoisyMarginals = marginals,
                  rng: np.random.Generator = rng) -> np.ndarray:
            weights = dp_marginals.rake(levels, marginals)
            return levels[dp_marginals.resample(weights, n, rng)]

        drawn = {"independent": independent,
                 "product": raked(np.vstack([arrays["vae"], independent])),
                 "vae_raked": raked(arrays["vae"]),
                 "oracle": raked(real)}
        for way in WAYS:
            auc = tstr_scores(schema, synth.decode(drawn[way], rng), test)["auc"]
            rows.append({"table": name, "seed": seed, "design": design, "way": way,
                         "noise_scale": noise_scale,
                         "auc": auc})
            print(f"{name:14s} seed {seed} {design:13s} {way:12s} AUC {auc:.3f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="doctor_aus,flchain,german_health,diamonds")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--noise-scale", type=float, default=1.0,
                        help="what-if: the marginals' noise × this (not the accounted σ)")
    args = parser.parse_args()
    single_thread()
    designs = [d for d in args.designs.split(",") if d]
    new = [row for t in args.tables.split(",") if t for s in args.seeds.split(",") if s
           for row in measure(t, int(s), designs, args.noise_scale)]
    # Merge: a rerun replaces its own (table, seed, design, way) rows, keeps the others.
    old = json.loads(OUT.read_text())["rows"] if OUT.exists() else []
    for r in old:
        r.setdefault("noise_scale", 1.0)
    key = ("table", "seed", "design", "way", "noise_scale")
    mine = {tuple(r[k] for k in key) for r in new}
    rows = [r for r in old if tuple(r[k] for k in key) not in mine] + new
    groups: dict[str, list[float]] = {}
    for r in rows:
        what_if = f" (noise ×{r['noise_scale']:g})" if r["noise_scale"] != 1.0 else ""
        groups.setdefault(f"{r['table']}/{r['design']}/{r['way']}{what_if}",
                          []).append(r["auc"])
    means = {k: {"auc": round(statistics.mean(v), 4), "seeds": len(v)}
             for k, v in sorted(groups.items())}
    OUT.write_text(json.dumps({"epsilon_training": BudgetSplit.of(EPSILON).training,
                               "rows": rows, "mean_auc": means}, indent=1) + "\n")
    print(json.dumps(means, indent=1))


if __name__ == "__main__":
    main()
