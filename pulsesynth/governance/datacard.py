"""Build a release directory: the synthetic table (Parquet + CSV), column plots, data card.

Everything here is derived from the candidate's *published* inputs only: the synthetic
table, the audit/utility/privacy/gate summaries and the public schema. Plots show the
synthetic columns (post-processing of a DP output), and the quality report compares them
with the model's DP marginals (:mod:`pulsesynth.quality`); the real table is never read.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pulsesynth.artifacts import (
    DATACARD_MD,
    GATE_JSON,
    PLOTS_DIR,
    PRIVACY_JSON,
    RELEASE_STATS_JSON,
    SCHEMA_YAML,
    SYNTHETIC_CSV,
    SYNTHETIC_PARQUET,
    ReleaseDir,
    dump_json,
)
from pulsesynth.governance.errors import CandidateError
from pulsesynth.labels import CONFIDENTIAL, OPEN
from pulsesynth.paths import Paths
from pulsesynth.quality import quality_report, write_quality_plots
from pulsesynth.reports import group_privacy_block

LN2 = math.log(2)
LABEL_TEXT = {OPEN: "Open — synthetic", CONFIDENTIAL: "Shared: Confidential — synthetic"}
TERMS = {
    OPEN: {
        "access": "Public: anyone may access this synthetic dataset on the open portal.",
        "use": "Any lawful use, including commercial use, research, teaching and testing.",
        "reuse": "Re-use and redistribution allowed with attribution to the city data office "
                 "and this data card; do not present synthetic rows as real records.",
        "prohibited": "Attempting to re-identify people or link rows to real individuals.",
    },
    CONFIDENTIAL: {
        "access": "Shared (Confidential): government entities holding a portal access token, "
                  "for their professional responsibilities only.",
        "use": "Analysis, modelling and testing inside the receiving entity.",
        "reuse": "No redistribution outside government entities; onward sharing needs the "
                 "data steward's written agreement; cite this data card.",
        "prohibited": "Attempting to re-identify people or link rows to real individuals; "
                      "publishing the table or excerpts of it.",
    },
}
SUITABLE_FOR = [
    "exploring the table's structure and typical values",
    "prototyping analyses, dashboards and pipelines before requesting real data",
    "teaching and testing software",
]
NOT_SUITABLE_FOR = [
    "decisions about individual people, vehicles or cases (no row is a real record)",
    "rare categories, small subgroups and outliers: differential privacy blurs exactly these",
    "exact counts, totals or official statistics",
    "fine-grained relationships between many columns at once",
]
CAVEAT = ("The audit's attacks failing today does not prove the release safe against future, "
          "stronger attacks; the differential-privacy guarantee (ε, δ) does, whatever the attack.")
PUBLISHED_COLUMNS_LIMIT = 40


def build_release_dir(out: Path, files: dict[str, bytes], release: Any,
                      approval: dict[str, Any], version: str, paths: Paths) -> dict[str, Any]:
    """Write the release into ``out`` (a temporary directory); returns the data card."""
    target = ReleaseDir(out)
    table = pd.read_parquet(io.BytesIO(files[SYNTHETIC_PARQUET]))
    schema = yaml.safe_load(files[SCHEMA_YAML].decode("utf-8")) or {}
    target.synthetic_parquet.write_bytes(files[SYNTHETIC_PARQUET])
    table.to_csv(target.synthetic_csv, index=False, lineterminator="\n")
    plots = write_plots(table, schema, target.plots)
    card = datacard(files, release, approval, version, schema, table, plots)
    # The quality report: the synthetic rows against the model's DP marginals (DP
    # outputs carried in privacy.json), never against the real rows.
    card["quality"] = quality_report(table, schema,
                                     _load(files, PRIVACY_JSON).get("dp_marginals"))
    card["quality"]["plots"] = write_quality_plots(card["quality"], target.plots, PLOTS_DIR)
    md = datacard_markdown(card)
    target.datacard_md.write_text(md, encoding="utf-8")
    names = [SYNTHETIC_PARQUET, SYNTHETIC_CSV, DATACARD_MD, *plots,
             *card["quality"]["plots"]]
    card["files"] = [file_entry(out, n, release.dataset, version) for n in names]
    target.datacard_json.write_text(dump_json(card), encoding="utf-8")
    return card


def file_entry(root: Path, name: str, dataset: str, version: str) -> dict[str, Any]:
    """Size, SHA-256 and media type of one published file (for the card and the index)."""
    data = (root / name).read_bytes()
    media = {".parquet": "application/vnd.apache.parquet", ".csv": "text/csv",
             ".md": "text/markdown", ".png": "image/png", ".json": "application/json"}
    return {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "mediaType": media.get(Path(name).suffix, "application/octet-stream"),
            "downloadURL": f"/datasets/{dataset}/{version}/files/{name}"}


def _load(files: dict[str, bytes], name: str) -> dict[str, Any]:
    try:
        data = json.loads(files[name].decode("utf-8"))
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CandidateError(f"{name}: unreadable ({exc.__class__.__name__})") from exc
    return data if isinstance(data, dict) else {}


def datacard(files: dict[str, bytes], release: Any, approval: dict[str, Any], version: str,
             schema: dict[str, Any], table: pd.DataFrame, plots: list[str]) -> dict[str, Any]:
    """The data card as a JSON-ready dict (the portal and ``datacard.md`` render it).

    Public facts and DP figures only (:mod:`pulsesynth.governance.publishable`): the exact
    audit and utility figures stay with the steward.
    """
    from pulsesynth.fitness import verdict

    privacy = _load(files, PRIVACY_JSON)
    fit = verdict(_load(files, RELEASE_STATS_JSON), schema.get("target"))
    card: dict[str, Any] = {
        "id": release.dataset,
        "title": release.title,
        "description": str(schema.get("description") or "").strip(),
        "version": version,
        "candidate_id": release.candidate_id,
        "label": release.label,
        "label_text": LABEL_TEXT.get(release.label, release.label),
        "terms": TERMS.get(release.label, {}),
        "rows": int(len(table)),
        "columns": [str(c) for c in table.columns],
        "privacy": privacy_section(privacy),
        "release_statistics": release_section(
            _load(files, RELEASE_STATS_JSON),
            gate_alpha(_load(files, GATE_JSON), release.label)),
        "gate": _gate_summary(_load(files, GATE_JSON)),
        "fit_for_purpose": fit,
        "suitable_for": [*SUITABLE_FOR, *fit["suitable"]],
        "not_suitable_for": [*fit["not_suitable"], *NOT_SUITABLE_FOR],
        "caveat": CAVEAT,
        "schema": _public_schema(schema),
        "provenance": {
            "schema_hash": privacy.get("schema_hash"),
            "model_id": release.model_id,
            "model_hash": privacy.get("model_hash"),
            "code_version": privacy.get("code_version"),
        },
        "approval": {"steward": approval.get("steward"), "role": approval.get("role"),
                     "approved_at": approval.get("decided_at"), "note": approval.get("note")},
        "plots": plots,
    }
    return card


def privacy_section(privacy: dict[str, Any]) -> dict[str, Any]:
    """The public mechanism facts of ``privacy.json`` (parameters, ε, δ, the budget split,
    the unit rule) and its DP row count."""
    eps = _num(privacy.get("epsilon"))
    return {
        "epsilon": eps,
        "delta": _num(privacy.get("delta")),
        "ln2": round(LN2, 6),
        "epsilon_vs_ln2": _eps_sentence(eps),
        "accountant": privacy.get("accountant"),
        "mechanism": privacy.get("mechanism") or "DP-SGD (Opacus): per-sample clipping, "
                     "Gaussian noise, Poisson sampling",
        "marginals": privacy.get("marginals"),
        "noise_multiplier": _num(privacy.get("noise_multiplier")),
        "sample_rate": _num(privacy.get("sample_rate")),
        "steps": privacy.get("steps"),
        "expected_batch_size": privacy.get("expected_batch_size"),
        "max_grad_norm": _num(privacy.get("max_grad_norm")),
        "private": privacy.get("private"),
        "adjacency": privacy.get("adjacency"),
        "privacy_unit": privacy.get("privacy_unit"),
        "max_rows_per_unit": privacy.get("max_rows_per_unit"),
        "unit_rule": privacy.get("unit_rule"),
        "randomness": privacy.get("randomness"),
        "budget": (privacy.get("budget") or {}).get("parts"),
        "rows_dp": privacy.get("rows_dp"),
    } | group_privacy_block(privacy) | _marginals_block(privacy.get("marginals"))


def _marginals_block(marginals: dict[str, Any] | None) -> dict[str, str]:
    """``{"marginals_text": …}`` only where the model measured DP marginals."""
    text = marginals_sentence(marginals)
    return {"marginals_text": text} if text else {}


def marginals_sentence(marginals: dict[str, Any] | None) -> str | None:
    """What the DP counts tables were, in plain words (None without them). Which columns
    were paired with the target is a DP output (chosen from noisy scores)."""
    if not marginals:
        return None
    groups = [list(g) for g in marginals.get("columns") or []]
    paired = [g[0] for g in groups if len(g) == 2]
    alone = [g[0] for g in groups if len(g) == 1]
    if not paired:
        which = "each column on its own"
    elif not alone:
        which = "each column against the target"
    else:
        which = (f"the columns that noisy scores showed to be linked to the target "
                 f"({', '.join(paired)}) against it, every other column on its own")
    parts = int(marginals.get("sub_bins") or 1)
    inside = (f" Numbers were counted in up to {parts} equal parts of each public bin, and "
              "placed inside their bins by those noisy counts." if parts > 1 else "")
    return (f"The table was also made to agree with {len(groups)} noisy counts tables, "
            f"measured under the same ε: {which}.{inside}")


def _eps_sentence(eps: float | None) -> str:
    if eps is None:
        return "ε not recorded"
    ratio = math.exp(eps)
    side = "at or below" if eps <= LN2 + 1e-12 else "above"
    return (f"ε = {eps:.3g} is {side} ln 2 ≈ 0.693: any one person's record changes the "
            f"probability of any outcome by at most a factor e^ε ≈ {ratio:.3g}")


RELEASE_STAT_TEXT = {
    "max_attack_advantage": "strongest membership attack's advantage (TPR − FPR; 0 = no "
                            "better than guessing)",
    "exact_match_excess": "share of unique training rows reproduced verbatim, beyond the "
                          "share of unseen rows (0 = chance)",
    "tstr_accuracy": "accuracy on unseen real rows of a model trained on this table",
    "majority_accuracy": "accuracy of always guessing the most common class",
}


COPY_QUESTION = "Are real rows copied more often than chance?"


def copy_answer(p_value: float, alpha: float | None = None) -> str:
    """The published p-value of the exact-match test, in plain words."""
    verdict = ("Yes: unique training rows are reproduced verbatim more often than unseen "
               "rows" if alpha is not None and p_value < alpha else
               "No sign of it" if p_value >= 0.05 else "Weak sign of it")
    cut = (f"; the release policy blocks a table below {alpha:g}" if alpha is not None
           else "; small values are evidence of copying")
    return (f"{verdict} (one-sided p = {p_value:.2g}: the chance of a figure at least this "
            "high if training rows were reproduced no more often than unseen rows, "
            f"counting sampling and the privacy noise{cut}). Computed from the noisy "
            "figure above and public counts only, so it is differentially private too.")


def release_section(stats: Mapping[str, Any], alpha: float | None = None) -> dict[str, Any]:
    """The DP release report as published: each noisy statistic with its 95% interval,
    its sensitivity and its share of ε; the exact-match excess also with its one-sided
    p-value (post-processing of the noisy value), asked and answered in plain words
    (``alpha``: the gate's threshold for the card's label, when known)."""
    out: dict[str, dict[str, Any]] = {}
    for name, s in (stats.get("statistics") or {}).items():
        if not isinstance(s, dict):
            continue
        entry: dict[str, Any] = {k: _num(s.get(k)) for k in ("value", "ci_low", "ci_high",
                                                             "sensitivity", "epsilon",
                                                             "laplace_scale")}
        entry["text"] = RELEASE_STAT_TEXT.get(str(name), str(name))
        if s.get("attacks"):
            entry["attacks"] = [str(a) for a in s["attacks"]]
        p_value = _num(s.get("p_value"))
        if p_value is not None:
            entry["sampling_sd"] = _num(s.get("sampling_sd"))
            entry["p_value"] = p_value
            entry["question"] = COPY_QUESTION
            entry["answer"] = copy_answer(p_value, alpha)
        out[str(name)] = entry
    return {"mechanism": stats.get("mechanism"), "epsilon": _num(stats.get("epsilon")),
            "confidence": stats.get("confidence"), "rows_dp": stats.get("rows_dp") or {},
            "statistics": out,
            "reading": "Laplace-noised statistics of the real rows, charged to the privacy "
                       "ledger with the release; the interval covers sampling and noise"}


def gate_alpha(gate: dict[str, Any], label: str | None) -> float | None:
    """The ``exact_match_alpha`` the gate applied for ``label`` (None when not checked)."""
    for c in gate.get("checks") or []:
        if (isinstance(c, dict) and c.get("name") == "exact_match_alpha"
                and c.get("label") == label):
            return _num(c.get("threshold"))
    return None


def _gate_summary(gate: dict[str, Any]) -> dict[str, Any]:
    checks = []
    for c in gate.get("checks") or []:
        if isinstance(c, dict):
            checks.append({k: c.get(k) for k in ("label", "name", "subject", "threshold",
                                                  "value", "passed")})
    return {"label": gate.get("label"), "reason": gate.get("reason", ""), "checks": checks}


def _public_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The declared schema as published: it is public by design (codebook domains)."""
    keep = ("id", "title", "classification", "steward", "target", "source")
    # The refresh policy is public (it says how often a release may be renewed), so a
    # portal can state an update frequency.
    refresh = (schema.get("privacy") or {}).get("refresh_days")
    extra = {"refresh_days": refresh} if isinstance(refresh, int) else {}
    cols = []
    for c in schema.get("columns") or []:
        if isinstance(c, dict):
            cols.append({k: c[k] for k in ("name", "type", "role", "nullable", "categories",
                                           "bounds", "format", "components", "description")
                          if k in c})
    return {k: schema[k] for k in keep if k in schema} | extra | {"columns": cols}


#: Plot size: 640×360 px at 100 dpi, with labels of at least 10 pt (readable on a phone
#: once scaled to its width, and on a desktop at full size).
PLOT_INCHES = (6.4, 3.6)
PLOT_DPI = 100
PLOT_FONT_PT = 10


def write_plots(table: pd.DataFrame, schema: dict[str, Any], out: Path) -> list[str]:
    """One PNG per synthetic column, on the declared domain (Agg backend, no display).

    Numbers are drawn as a density over the declared bins — synthetic rows per unit of the
    column (count / bin width) — because the declared bins are often unequal (``1, 2, 5,
    10, 20, 50``) and raw counts would make a wide bin look tall. Categories are counts.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    declared = {c.get("name"): c for c in schema.get("columns") or [] if isinstance(c, dict)}
    names: list[str] = []
    for i, col in enumerate(list(table.columns)[:PUBLISHED_COLUMNS_LIMIT]):
        spec = declared.get(col, {})
        series = table[col]
        fig, ax = plt.subplots(figsize=PLOT_INCHES, dpi=PLOT_DPI)
        try:
            numeric = spec.get("type") in ("integer", "float") or (
                not spec and pd.api.types.is_numeric_dtype(series))
            if spec.get("type") in ("date", "time", "datetime"):
                _temporal_bars(ax, series, str(spec["type"]))
            elif numeric:
                _density_bars(ax, pd.to_numeric(series, errors="coerce").dropna(), spec,
                              str(col))
            else:
                cats = [str(c) for c in spec.get("categories") or []]
                counts = series.astype("string").fillna("(missing)").value_counts()
                order = cats + [str(c) for c in counts.index if str(c) not in cats]
                ax.bar(range(len(order)), [int(counts.get(c, 0)) for c in order],
                       color="#2b6cb0")
                ax.set_xticks(range(len(order)), order, rotation=45 if len(order) > 4 else 0,
                              ha="right" if len(order) > 4 else "center",
                              fontsize=PLOT_FONT_PT)
                ax.set_ylabel("synthetic rows", fontsize=PLOT_FONT_PT + 1)
            ax.tick_params(labelsize=PLOT_FONT_PT)
            ax.set_title(f"{col} (synthetic)", fontsize=PLOT_FONT_PT + 2)
            fig.tight_layout()
            name = f"{PLOTS_DIR}/{i:02d}-{_slug(str(col))}.png"
            fig.savefig(out.parent / name, format="png", metadata={"Software": None})
            names.append(name)
        finally:
            plt.close(fig)
    return names


def _temporal_bars(ax: Any, series: pd.Series, kind: str) -> None:
    """Counts per hour of the day (a time column) or per year (a date or datetime)."""
    values = series.dropna().tolist()
    if kind == "time":
        keys = [v.hour for v in values if hasattr(v, "hour")]
        order = list(range(24))
        label = "hour of the day"
    else:
        keys = [v.year for v in values if hasattr(v, "year")]
        order = list(range(min(keys), max(keys) + 1)) if keys else []
        label = "year"
    counts = pd.Series(keys, dtype="int64").value_counts()
    ax.bar(range(len(order)), [int(counts.get(k, 0)) for k in order], color="#2b6cb0")
    step = max(1, len(order) // 12)  # at most about 12 tick labels
    ax.set_xticks(range(0, len(order), step), [str(k) for k in order[::step]],
                  fontsize=PLOT_FONT_PT)
    ax.set_xlabel(label, fontsize=PLOT_FONT_PT + 1)
    ax.set_ylabel("synthetic rows", fontsize=PLOT_FONT_PT + 1)


def _density_bars(ax: Any, values: pd.Series, spec: dict[str, Any], col: str) -> None:
    """Bars of count / bin width over the declared bins (unit bins for a small integer
    domain, else 20 equal bins over the declared bounds or the synthetic range)."""
    import numpy as np

    bounds = spec.get("bounds")
    edges: Any = spec.get("bins")
    if edges is None and spec.get("type") == "integer" and bounds and \
            bounds[1] - bounds[0] <= 60:
        edges = [v - 0.5 for v in range(int(bounds[0]), int(bounds[1]) + 2)]
    if edges is None:
        edges = 20
    rng = tuple(bounds) if bounds and not isinstance(edges, list) else None
    counts, edges_out = np.histogram(values.to_numpy(dtype=float), bins=edges, range=rng)
    widths = np.diff(edges_out)
    ax.bar(edges_out[:-1], counts / widths, width=widths, align="edge", color="#2b6cb0",
           edgecolor="#ffffff", linewidth=0.5)
    ax.set_xlabel(col, fontsize=PLOT_FONT_PT + 1)
    ax.set_ylabel(f"synthetic rows per unit of {col}" if len(col) <= 18 else
                  "synthetic rows per unit", fontsize=PLOT_FONT_PT + 1)
    if len(set(np.round(widths, 9))) > 1 and len(edges_out) <= 16:
        # Unequal declared bins: label their edges so the reader sees why bars differ in
        # width, leaving out an edge too close to the last labelled one to be read.
        span = float(edges_out[-1] - edges_out[0]) or 1.0
        ticks = [float(edges_out[0])]
        for e in edges_out[1:]:
            if (e - ticks[-1]) / span >= 0.04:
                ticks.append(float(e))
        ax.set_xticks(ticks, [f"{e:g}" for e in ticks], fontsize=PLOT_FONT_PT)


def datacard_markdown(card: dict[str, Any]) -> str:
    """Human-readable data card (the same facts as ``datacard.json``)."""
    p = card["privacy"]
    lines = [f"# {card['title']} — {card['version']}", "", f"**{card['label_text']}**", ""]
    if card["description"]:
        lines += [card["description"], ""]
    lines += ["## Terms of use and re-use", ""]
    lines += [f"- **{k}**: {v}" for k, v in card["terms"].items()] + [""]
    lines += ["## Privacy", "", f"- ε = {_fmt(p['epsilon'])}, δ = {_fmt(p['delta'])} "
              f"(accountant: {p['accountant']})", f"- {p['epsilon_vs_ln2']}",
              f"- mechanism: {p['mechanism']}", f"- privacy unit: {p.get('unit_rule')}", ""]
    lines += release_markdown(card["release_statistics"])
    lines += ["", f"> {card['caveat']}", ""]
    lines += ["## Suitable for", ""] + [f"- {s}" for s in card["suitable_for"]] + [""]
    lines += ["## Not suitable for", ""] + [f"- {s}" for s in card["not_suitable_for"]] + [""]
    lines += ["## Declared schema", "", "| column | type | role |", "| --- | --- | --- |"]
    lines += [f"| {c.get('name')} | {c.get('type')} | {c.get('role')} |"
              for c in card["schema"].get("columns", [])] + [""]
    prov, appr = card["provenance"], card["approval"]
    lines += ["## Provenance and approval", "",
              f"- model: {prov['model_id']} (hash `{prov['model_hash']}`)",
              f"- code version: {prov['code_version']}",
              f"- approved by {appr['steward']} ({appr['role']}) at {appr['approved_at']}",
              f"- candidate id: `{card['candidate_id']}`", ""]
    return "\n".join(lines)


def release_markdown(section: dict[str, Any]) -> list[str]:
    """The DP release report as a Markdown table."""
    lines = ["## Audit and utility (differentially private figures)", "",
             f"{section.get('reading', '')}; ε = {_fmt(section.get('epsilon'))}.", "",
             "| figure | value | 95% interval |", "| --- | --- | --- |"]
    for s in (section.get("statistics") or {}).values():
        lines.append(f"| {s['text']} | {_fmt(s['value'])} | [{_fmt(s['ci_low'])}, "
                     f"{_fmt(s['ci_high'])}] |")
    for s in (section.get("statistics") or {}).values():
        if s.get("answer"):
            lines += ["", f"**{s['question']}** {s['answer']}"]
    return lines


def _first(d: Any, *keys: str) -> Any:
    if not isinstance(d, dict):
        return None
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return None


def _num(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:40] or "column"
