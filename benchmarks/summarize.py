"""Print the benchmark results as the Markdown tables the README shows."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def dpvae() -> str:
    data = json.loads((RESULTS / "dpvae.json").read_text())
    lines = [f"DP overhead (seconds per step, ghost clipping vs non-DP, interleaved): "
             f"**{data['dp_overhead_ratio']:.2f}×**; peak RSS training census_income: "
             f"**{data['peak_rss_mb']:.0f} MB**", "",
             "| dataset | ε | ε reported | seeds | TSTR accuracy | TSTR AUC | TRTR accuracy / AUC "
             "| majority |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    rows = data["utility"]
    keys = sorted({(r["dataset"], r["epsilon"] if r["epsilon"] is not None else 1e9)
                   for r in rows})
    for dataset, eps in keys:
        eps = None if eps == 1e9 else eps
        mine = [r for r in rows if r["dataset"] == dataset and r["epsilon"] == eps]
        reported = (f"{max(r['epsilon_reported'] for r in mine):.4f}" if eps else "—")
        lines.append(
            f"| {dataset} | {eps if eps else 'non-DP'} | {reported} | {len(mine)} | "
            f"{_mean_sd([r['tstr_accuracy'] for r in mine])} | "
            f"{_mean_sd([r['tstr_auc'] for r in mine])} | "
            f"{statistics.mean(r['trtr_accuracy'] for r in mine):.3f} / "
            f"{statistics.mean(r['trtr_auc'] for r in mine):.3f} | "
            f"{mine[0]['majority_accuracy']:.3f} |")
    return "\n".join(lines)


def attack_table(rows: list[dict]) -> list[str]:
    """The attack calibration: one line per dataset, case and attack, random and
    vulnerable targets side by side."""
    if not rows:
        return []
    lines = ["| dataset | case | attack | AUC random (95% CI) | TPR@1% / 0.1% random "
             "| AUC vulnerable (95% CI) | TPR@1% / 0.1% vulnerable |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    keyed = {(r["dataset"], r["case"], r["attack"], r["targets"]): r for r in rows}
    for (ds, case, attack, targets), r in keyed.items():
        if targets != "random":
            continue
        v = keyed.get((ds, case, attack, "vulnerable"))

        def cells(x: dict | None) -> str:
            if x is None:
                return "| | "
            return (f"| {x['auc']:.3f} ({x['auc_ci'][0]:.3f}–{x['auc_ci'][1]:.3f}) "
                    f"| {x['tpr_at_1pct']:.3f} / {x['tpr_at_01pct']:.3f} ")

        lines.append(f"| {ds} | {case} | {attack} {cells(r)}{cells(v)}|")
    return lines + [""]


def reproduction_table(rows: list[dict]) -> list[str]:
    """Share of members and non-members whose whole row (on the public levels) the
    memorising model's table holds: the signal left for a table attack."""
    if not rows:
        return []
    lines = ["| dataset | released table | targets | members reproduced | non-members "
             "reproduced |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['case']} | {r['targets']} ({r['records']} + "
                     f"{r['records']}) | {r['members']:.1%} | {r['non_members']:.1%} |")
    return lines + [""]


def audit() -> str:
    data = json.loads((RESULTS / "audit.json").read_text())
    cost = data["audit_cost"]
    lines = [f"Audit cost: **{cost['audit_cost_ratio']:.2f}×** the target model's training time "
             f"(census_income, full size, one run); **{cost['audit_cost_ratio_cpu']:.2f}×** "
             "in CPU time.", ""]
    lines += attack_table(data.get("attacks") or [])
    lines += reproduction_table(data.get("reproduction") or [])
    lines += ["", "| dataset | method | TSTR acc | median Gower (reference) | exact overlap "
              "| synthetic MIA | DCR share |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["shuffle_study"]:
        lines.append(f"| {r['dataset']} | {r['method']} | {r['tstr_accuracy']:.3f} | "
                     f"{r['median_gower']:.3f} ({r['gower_reference']:.3f}) | "
                     f"{r['exact_overlap']:.1%} | {r['synthetic_mia_accuracy']:.3f} | "
                     f"{r['dcr_share']:.3f} |")
    lines += ["", "| ε | model MIA accuracy (95% CI) | synthetic MIA accuracy (95% CI) |",
              "| --- | --- | --- |"]
    for r in data["privacy_vs_epsilon"]:
        m, s = r["model_mia_ci"], r["synthetic_mia_ci"]
        lines.append(f"| {r['epsilon'] or 'non-DP'} | {r['model_mia_accuracy']:.3f} "
                     f"({m[0]:.3f}–{m[1]:.3f}) | {r['synthetic_mia_accuracy']:.3f} "
                     f"({s[0]:.3f}–{s[1]:.3f}) |")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def figure3() -> str:
    data = json.loads((RESULTS / "figure3.json").read_text())
    lines = ["| dataset | train rows | mechanism | training | attack accuracy (95% CI) | privacy "
             "| utility | paper privacy / utility | newer attacks: AUC (95% CI) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["table"]:
        newer = "; ".join(f"{name} {v['auc']:.3f} ({v['auc_ci'][0]:.3f}–{v['auc_ci'][1]:.3f})"
                          for name, v in (r.get("newer_attacks") or {}).items()) or "—"
        lines.append(f"| {r['dataset']} | {r['train_rows']} | {r['mechanism']} | "
                     f"{'private (ε=1)' if r['private'] else 'non-private'} | "
                     f"{r['attack_accuracy']:.3f} ({r['ci_low']:.3f}–{r['ci_high']:.3f}) | "
                     f"{_pct(r['privacy'])} | {_pct(r['utility'])} | "
                     f"{_pct(r['paper_privacy'])} / {_pct(r['paper_utility'])} | {newer} |")
    checks = data.get("ten_x_check") or []
    if checks:
        lines += ["", "| mechanism (DP) | best-utility epochs | attack accuracy at ≥ 10× those "
                  "epochs |", "| --- | --- | --- |"]
        for c in checks:
            far = "; ".join(f"{p['epochs']} ep: {p['attack_accuracy']:.3f} "
                            f"({p['ci_low']:.3f}–{p['ci_high']:.3f})" for p in c["at_10x"])
            lines.append(f"| {c['mechanism']} | {c['best_utility_epochs']} | "
                         f"{far or 'grid ends before 10×'} |")
    return "\n".join(lines)


def _cell(rows: list[dict], table: str, system: str, key: str, sd: bool = False) -> str:
    vals = [r[key] for r in rows
            if r["table"] == table and r["system"] == system and r.get(key) is not None]
    if not vals:
        return "—"
    if sd and len(vals) > 1:
        return f"{statistics.mean(vals):.3f} ± {statistics.stdev(vals):.3f}"
    return f"{statistics.mean(vals):.3f}"


def _yes(flag: bool | None) -> str:
    return "—" if flag is None else ("yes" if flag else "**no**")


def utility_suite() -> str:
    """The development suite side by side: product vs AIM / MST vs the references."""
    data = json.loads((RESULTS / "utility_suite.json").read_text())
    rows, goals = data["rows"], data["goals"]
    lines = ["| table | real AUC (binned) | majority acc | AIM AUC | MST AUC | Pulse Synth AUC "
             "| Pulse Synth acc | 1-way TV: ours / AIM | AUC ≥ AIM − 0.01 | not chance |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for g in goals["tables"]:
        t = g["table"]
        lines.append(
            f"| {t} | {_cell(rows, t, 'real', 'auc')} ({_cell(rows, t, 'real_binned', 'auc')}) "
            f"| {_cell(rows, t, 'majority', 'accuracy')} | {_cell(rows, t, 'aim', 'auc')} "
            f"| {_cell(rows, t, 'mst', 'auc')} | {_cell(rows, t, 'pulsesynth', 'auc', True)} "
            f"| {_cell(rows, t, 'pulsesynth', 'accuracy')} "
            f"| {_cell(rows, t, 'pulsesynth', 'tv1')} / {_cell(rows, t, 'aim', 'tv1')} "
            f"| {_yes(g['auc_not_below_aim'])} | {_yes(g['not_chance_where_real_ge_070'])} |")
    out = ["\n".join(lines), ""]
    if "mean_auc" in goals:
        out.append(f"Suite means over the tables with an AIM result: AUC "
                   f"**{goals['mean_auc']:.3f}** vs AIM {goals['mean_aim_auc']:.3f} "
                   f"(goal ≥ AIM + 0.01: "
                   f"{_yes(goals['mean_auc_goal'])}); 1-way TV **{goals['mean_tv1']:.3f}** vs "
                   f"AIM {goals['mean_aim_tv1']:.3f} (goal ≤ 1.2 × AIM: "
                   f"{_yes(goals.get('tv1_goal'))}).")
    if "census" in goals:
        c = goals["census"]
        out.append(f"census_income (UCI split): accuracy **{c['accuracy']:.3f}**, AUC "
                   f"**{c['auc']:.3f}** (goal ≥ 0.85 / ≥ 0.90: {_yes(c['goal'])}).")
    budget = RESULTS / "peers_table_budget.json"
    if budget.exists():
        line = table_budget_line(json.loads(budget.read_text()), rows)
        if line:
            out.append(line)
    return "\n".join(out)


def table_budget_line(budget: dict, suite_rows: list[dict]) -> str | None:
    """AIM at what the product's table costs (``make bench-peers-table-budget``) beside
    AIM at ε = 1 and the product, table by table (mean AUC over the seeds measured)."""
    rows = [r for r in budget.get("rows", []) if r["system"] == "aim" and r.get("auc")]
    tables = list(dict.fromkeys(r["table"] for r in rows))
    if not tables:
        return None
    seeds = sorted({int(r["seed"]) for r in rows})
    parts = [f"{t} {_cell(rows, t, 'aim', 'auc')} (at ε = 1: {_cell(suite_rows, t, 'aim', 'auc')}"
             f"; Pulse Synth {_cell(suite_rows, t, 'pulsesynth', 'auc')})" for t in tables]
    epsilon = budget.get("settings", {}).get("epsilon")
    at = f"ε = {epsilon:g}" if isinstance(epsilon, (int, float)) else "its table's ε"
    return (f"AIM given only what the product's table costs ({at}: training and row count, "
            f"without the release report's share; seeds {', '.join(map(str, seeds))}; "
            f"`make bench-peers-table-budget`): " + "; ".join(parts) + ".")


README = Path(__file__).resolve().parent.parent / "README.md"
MARKERS = ("<!-- utility-suite:start -->", "<!-- utility-suite:end -->")


def update_readme() -> None:
    """Rewrite the utility-suite table between the README's markers."""
    text = README.read_text(encoding="utf-8")
    start, end = text.index(MARKERS[0]), text.index(MARKERS[1])
    body = f"{MARKERS[0]}\n{utility_suite()}\n"
    README.write_text(text[:start] + body + text[end:], encoding="utf-8")


if __name__ == "__main__":
    import sys

    if "--readme" in sys.argv:
        update_readme()
        sys.exit(0)
    for section in (utility_suite, dpvae, audit, figure3):
        try:
            print(section(), end="\n\n")
        except FileNotFoundError as exc:
            print(f"(missing: {exc.filename})\n")
