"""How much a table's signal lies inside its public bins: the ceiling of sub-bin counts.

A diagnostic behind :mod:`pulsesynth.synth.within_bin` (``python -m
benchmarks.within_bin_ceiling [--tables diamonds,census_income] [--parts 2,4,8]``, about
a minute a table). No model is fitted: the *real training rows* are scored with the
utility suite's split and TSTR classifier after their numeric values are redrawn inside
their bins four ways (not releases: they read the private rows):

- ``uniform``: uniformly inside the bin (what the public bins alone give; the suite's
  ``real_binned`` reference);
- ``bin_share``: inside a sub-bin drawn from the exact share of its bin's rows (one
  shape per bin, the same for every class);
- ``class_share``: inside a sub-bin drawn from the exact share of its (bin, class) rows —
  what the product's sub-bin counts estimate with noise, the ceiling of that design;
- ``own_part``: inside the row's own sub-bin (every column's position kept: what a
  generator modelling sub-bins jointly could at best give).

Writes ``benchmarks/results/within_bin_ceiling.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import single_thread
from benchmarks.suite import split_table
from pulsesynth.encoding import TableEncoder
from pulsesynth.relations import apply_relations
from pulsesynth.synth.within_bin import SubBins
from pulsesynth.utility import tstr_scores

OUT = Path(__file__).resolve().parent / "results" / "within_bin_ceiling.json"
WAYS = ("uniform", "bin_share", "class_share", "own_part")


def redraw(levels: np.ndarray, positions: np.ndarray, sub: SubBins, way: str,
           target: int | None, rng: np.random.Generator) -> np.ndarray:
    """Positions inside the bins, drawn ``way`` from the rows' own sub-bins."""
    out = np.where(np.isnan(positions), np.nan, rng.random(positions.shape))
    if way == "uniform":
        return out
    for j, parts in enumerate(sub.parts):
        for k, n in enumerate(parts):
            rows = np.nonzero((levels[:, j] == k) & ~np.isnan(positions[:, j]))[0]
            if n == 1 or not len(rows):
                continue
            own = np.minimum(np.floor(positions[rows, j] * n), n - 1)
            if way == "own_part":
                part = own
            else:
                part = np.empty(len(rows))
                groups = (levels[rows, target] if way == "class_share" and target is not None
                          else np.zeros(len(rows), dtype=np.int64))
                for g in np.unique(groups):
                    at = groups == g
                    part[at] = rng.choice(own[at], size=int(at.sum()))
            out[rows, j] = (part + rng.random(len(rows))) / n
    return out


def measure(name: str, parts: int, seed: int = 0) -> list[dict[str, Any]]:
    """The four ways for one table at ``parts`` sub-bins a bin."""
    train, test, schema = split_table(name)
    encoder = TableEncoder(schema)
    levels = encoder.levels(train)
    keep = (levels >= 0).all(axis=1)
    train, levels = train[keep].reset_index(drop=True), levels[keep]
    positions = encoder.bin_positions(train, levels)
    target = (encoder.column_names.index(schema.target)
              if schema.target in encoder.column_names else None)
    sub = SubBins.of(encoder, parts, keep=(schema.target,) if schema.target else ())
    rows = []
    for way in WAYS:
        rng = np.random.default_rng([seed, parts, WAYS.index(way)])
        table = encoder.decode_levels(
            levels, rng, redraw(levels, positions, sub, way, target, rng))
        if schema.relations:  # columns a codebook relation derives, as sampling fills them
            table = apply_relations(table, schema.relations,
                                    [c.name for c in schema.released_columns])
        scores = tstr_scores(schema, table, test)
        auc, accuracy = scores["auc"], scores["accuracy"]
        if auc is None or accuracy is None:
            raise RuntimeError(f"{name}: the test rows hold a single class")
        rows.append({"table": name, "parts": parts, "way": way, "auc": round(auc, 4),
                     "accuracy": round(accuracy, 4)})
        print(f"{name:16s} parts {parts}  {way:12s} AUC {auc:.4f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="diamonds,census_income,wives_insurance")
    parser.add_argument("--parts", default="2,4,8")
    args = parser.parse_args()
    single_thread()
    rows = [row for t in args.tables.split(",") if t
            for p in (int(x) for x in args.parts.split(",") if x)
            for row in measure(t, p)]
    OUT.write_text(json.dumps({"ways": list(WAYS), "rows": rows}, indent=2) + "\n",
                   encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
