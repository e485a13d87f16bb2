"""A release's quality report, SDMetrics-style, from the synthetic rows and DP figures only.

Three parts, each a score in [0, 1] (1 = best):

- **Column shapes.** For each column with a DP marginal, 1 − total variation distance
  between the synthetic column and the column's DP one-way marginal, on the declared
  levels (categories, or the declared numeric bins). SDMetrics compares with the real
  column; here the reference is the differentially private estimate the model measured
  (Gaussian mechanism, charged to the ledger with training), so the score is
  post-processing of DP outputs and the synthetic rows. The real rows are never read.
- **Column pair trends.** For each pair with a DP two-way marginal (each column with the
  declared target), 1 − total variation distance between the synthetic and the DP two-way
  tables (SDMetrics's contingency similarity).
- **Associations.** Cramér's V between every two columns of the synthetic table — a
  description of the released rows (public once released), not a comparison, so it is
  drawn as a heat map but not scored.

The overall score is the mean of the column-shape and the pair-trend scores (as SDMetrics
averages its two properties); it is absent when the release carries no DP marginals.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Quality plots, under the release's ``plots/`` directory.
SHAPES_PNG = "quality-shapes.png"
ASSOCIATIONS_PNG = "quality-associations.png"
#: Plot geometry: readable on a phone when scaled to its width, sharp on a desktop.
PLOT_DPI = 100
PLOT_FONT_PT = 11


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Half the L1 distance between two distributions (each normalised to sum 1)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / p.sum() if p.sum() > 0 else p
    q = q / q.sum() if q.sum() > 0 else q
    return float(0.5 * np.abs(p - q).sum())


def cramers_v(a: np.ndarray, b: np.ndarray, width_a: int, width_b: int) -> float:
    """Cramér's V of two level-coded columns (rows with a missing level left out); 0 when a
    column is constant in the rows or fewer than two rows remain."""
    keep = (a >= 0) & (b >= 0)
    if keep.sum() < 2:
        return 0.0
    table = np.zeros((width_a, width_b))
    np.add.at(table, (a[keep], b[keep]), 1.0)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    r, c = table.shape
    if min(r, c) < 2:
        return 0.0
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(min(1.0, math.sqrt(chi2 / (n * (min(r, c) - 1)))))


def quality_report(table: pd.DataFrame, schema: dict[str, Any],
                   dp_marginals: dict[str, Any] | None) -> dict[str, Any]:
    """The quality report of a synthetic table (see the module docstring).

    ``schema`` is the declared schema (the levels come from it, never from the rows);
    ``dp_marginals`` the model's DP marginals as :meth:`NoisyMarginals.to_dict` writes them
    (None: no column-shape or pair-trend score, associations only).
    """
    from pulsesynth.synth.marginals import NoisyMarginals

    encoder = _encoder(schema)
    names = encoder.column_names
    levels = encoder.levels(table)
    widths = [b.width for b in encoder.block_specs]
    shapes: dict[str, float] = {}
    pairs: list[dict[str, Any]] = []
    if dp_marginals:
        marg = NoisyMarginals.from_dict(dp_marginals)
        plan = marg.plan
        # Only when the model measured the same layout (the schema's levels).
        if list(plan.columns) == names and list(plan.widths) == widths:
            for group, dp in zip(plan.groups, marg.probabilities, strict=True):
                _, cell = plan.cell_index(levels, group)
                syn = np.bincount(cell, minlength=plan.cells(group)).astype(np.float64)
                dims = [plan.widths[j] for j in group]
                dp_t, syn_t = dp.reshape(dims), syn.reshape(dims)
                for axis, j in enumerate(group):
                    if plan.columns[j] in shapes:
                        continue
                    other = tuple(k for k in range(len(group)) if k != axis)
                    shapes[plan.columns[j]] = 1.0 - total_variation(
                        syn_t.sum(axis=other) if other else syn_t,
                        dp_t.sum(axis=other) if other else dp_t)
                if len(group) == 2:
                    pairs.append({"columns": [plan.columns[j] for j in group],
                                  "score": _r(1.0 - total_variation(syn, dp))})
    association = [[1.0 if i == k else _r(cramers_v(levels[:, i], levels[:, k],
                                                    widths[i], widths[k]))
                    for k in range(len(names))] for i in range(len(names))]
    shape_score = _mean(list(shapes.values()))
    pair_score = _mean([p["score"] for p in pairs])
    parts = [s for s in (shape_score, pair_score) if s is not None]
    return {
        "shapes": [{"column": c, "score": _r(shapes[c])} for c in names if c in shapes],
        "pairs": pairs,
        "association": {"columns": names, "values": association},
        "shape_score": shape_score, "pair_score": pair_score,
        "overall": _r(sum(parts) / len(parts)) if parts else None,
        "reading": "Scores from 0 to 1 (1 = the synthetic table agrees exactly with the "
                   "differentially private estimates of the real table's counts); "
                   "computed from the synthetic rows and those DP estimates only.",
    }


def _encoder(schema: dict[str, Any]) -> Any:
    """The schema-bound encoder whose levels the DP marginals were measured on.

    Only the columns (and relations) decide the levels, so a schema document lacking
    dataset-level facts (an older card, a test's minimal schema) is completed with
    placeholders for those facts: the levels are the same as the full declaration's.
    """
    from pulsesynth.encoding import TableEncoder
    from pulsesynth.errors import SchemaError
    from pulsesynth.schema import parse_schema

    try:
        return TableEncoder(parse_schema(schema))
    except SchemaError:
        columns = [c for c in schema.get("columns") or [] if isinstance(c, dict)]
        keys = [c["name"] for c in columns if c.get("role") == "identifier"] or \
            [c.get("name") for c in columns[:1]]
        filled = {"row_key": keys, "privacy": {"epsilon": 1.0, "lifetime_epsilon": 1.0,
                                               "refresh_days": 1}} | schema
        return TableEncoder(parse_schema(filled))


def write_quality_plots(report: dict[str, Any], out: Path, prefix: str) -> list[str]:
    """The column-shape bars and the association heat map as PNGs in ``out``; returns
    their names as ``prefix/<file>`` (no shape plot when there is no shape score)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    shapes = report.get("shapes") or []
    if shapes:
        fig, ax = plt.subplots(figsize=(6.4, max(2.4, 0.45 * len(shapes) + 1.2)),
                               dpi=PLOT_DPI)
        try:
            cols = [s["column"] for s in shapes][::-1]
            scores = [s["score"] for s in shapes][::-1]
            ax.barh(cols, scores, color="#2b6cb0")
            ax.set_xlim(0, 1)
            for y, v in enumerate(scores):
                # Inside a long bar in white, after a short one in dark: always readable.
                inside = v > 0.15
                ax.text(v - 0.01 if inside else v + 0.01, y, f"{v:.2f}", va="center",
                        ha="right" if inside else "left", fontsize=PLOT_FONT_PT,
                        color="#ffffff" if inside else "#1a202c")
            ax.set_xlabel("column shape score (1 = matches the DP estimate)",
                          fontsize=PLOT_FONT_PT)
            ax.tick_params(labelsize=PLOT_FONT_PT)
            ax.set_title("Column shapes", fontsize=PLOT_FONT_PT + 2)
            fig.tight_layout()
            fig.savefig(out / SHAPES_PNG, format="png", metadata={"Software": None})
            names.append(f"{prefix}/{SHAPES_PNG}")
        finally:
            plt.close(fig)
    assoc = report.get("association") or {}
    cols = assoc.get("columns") or []
    if len(cols) >= 2:
        side = max(4.8, 0.6 * len(cols) + 2.4)
        fig, ax = plt.subplots(figsize=(side + 1.2, side), dpi=PLOT_DPI)
        try:
            values = np.asarray(assoc["values"], dtype=np.float64)
            image = ax.imshow(values, vmin=0, vmax=1, cmap="Blues")
            ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right",
                          fontsize=PLOT_FONT_PT)
            ax.set_yticks(range(len(cols)), cols, fontsize=PLOT_FONT_PT)
            if len(cols) <= 12:
                for i in range(len(cols)):
                    for k in range(len(cols)):
                        ax.text(k, i, f"{values[i, k]:.2f}", ha="center", va="center",
                                fontsize=PLOT_FONT_PT - 1,
                                color="#ffffff" if values[i, k] > 0.6 else "#1a202c")
            bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
            bar.ax.tick_params(labelsize=PLOT_FONT_PT)
            bar.set_label("association (Cramér's V)", fontsize=PLOT_FONT_PT)
            ax.set_title("How columns go together (synthetic rows)",
                         fontsize=PLOT_FONT_PT + 2)
            fig.tight_layout()
            fig.savefig(out / ASSOCIATIONS_PNG, format="png", metadata={"Software": None})
            names.append(f"{prefix}/{ASSOCIATIONS_PNG}")
        finally:
            plt.close(fig)
    return names


def _r(value: float) -> float:
    return round(float(value), 4)


def _mean(values: list[float]) -> float | None:
    return _r(sum(values) / len(values)) if values else None
