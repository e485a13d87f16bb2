"""What bounds the product's utility on a small table: the DP-VAE, or the DP marginals?

A diagnostic for the tables where the product trails AIM (``python -m
benchmarks.raking_ceiling [--tables doctor_aus,flchain] [--seeds 0,1]``, a few minutes).
For one deployed-style fit per seed it scores, with the utility suite's split, bins and
TSTR classifier, tables of the same size drawn five ways from the same fit:

- ``raw_vae``: the VAE's own draws (no raking);
- ``independent``: rows from the DP marginals alone (target, then each column given it);
- ``product``: the deployed sampler (VAE pool + independent rows, raked, resampled);
- ``vae_raked``: the VAE pool alone, raked and resampled;
- ``oracle_real_raked``: the *real training rows* raked to the same DP marginals and
  resampled -- not a release (it reads the private rows), only a ceiling: no generator,
  however good, beats raking the real rows to the marginals it is raked to.

Writes ``benchmarks/results/raking_ceiling.json``. Where ``oracle_real_raked`` is itself
below a peer, the measured marginals' noise, not the VAE, is what limits the product.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import single_thread
from benchmarks.suite import split_table
from pulsesynth.budget import BudgetSplit
from pulsesynth.synth import DPVAESynthesizer
from pulsesynth.synth import marginals as dp_marginals
from pulsesynth.utility import marginal_tv, tstr_scores

OUT = Path(__file__).resolve().parent / "results" / "raking_ceiling.json"
EPSILON = 1.0
WAYS = ("raw_vae", "independent", "product", "vae_raked", "oracle_real_raked")


def measure(name: str, seed: int) -> list[dict[str, Any]]:
    """One fit of ``name`` at the deployed training share; the five ways scored."""
    train, test, schema = split_table(name)
    synth = DPVAESynthesizer(schema, epsilon=BudgetSplit.of(EPSILON).training,
                             seed=seed).fit(train, public_rows=len(train))
    marginals = synth.marginals
    if marginals is None:
        raise RuntimeError("a private fit with a positive marginal share measures marginals")
    n, rng = len(train), np.random.default_rng([seed, 11])
    vae = synth._draw_levels(n * dp_marginals.POOL_FACTOR, seed, rng)
    independent = dp_marginals.independent_draws(marginals, n, rng)
    pool = np.vstack([vae, independent])
    real = synth.encoder.levels(train)
    real = real[(real >= 0).all(axis=1)]

    def raked(levels: np.ndarray) -> np.ndarray:
        weights = dp_marginals.rake(levels, marginals)
        return levels[dp_marginals.resample(weights, n, rng)]

    tables = {"raw_vae": vae[:n], "independent": independent, "product": raked(pool),
              "vae_raked": raked(vae), "oracle_real_raked": raked(real)}
    rows = []
    for way in WAYS:
        frame = synth.decode(tables[way], rng)
        scores = tstr_scores(schema, frame, test)
        rows.append({"table": name, "seed": seed, "way": way, "auc": scores["auc"],
                     "accuracy": scores["accuracy"], "tv1": marginal_tv(schema, frame, test)})
        print(f"{name:14s} seed {seed} {way:18s} AUC {scores['auc']:.3f} "
              f"tv1 {rows[-1]['tv1']:.3f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="doctor_aus,flchain")
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    single_thread()
    rows = [row for t in args.tables.split(",") if t
            for s in args.seeds.split(",") if s for row in measure(t, int(s))]
    means = {f"{t}/{w}": statistics.mean(r["auc"] for r in rows
                                          if r["table"] == t and r["way"] == w)
             for t in dict.fromkeys(r["table"] for r in rows) for w in WAYS}
    OUT.write_text(json.dumps({"epsilon_training": BudgetSplit.of(EPSILON).training,
                               "rows": rows, "mean_auc": means}, indent=1) + "\n")
    print(json.dumps(means, indent=1))


if __name__ == "__main__":
    main()
