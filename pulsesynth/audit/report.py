"""Run the whole audit of one release and write it for people who are not data scientists.

``audit_release`` runs every attack and metric on (train, holdout, reference, synthetic,
model); ``write_report`` writes ``audit.json`` plus ``audit.md`` with ROC-curve and DCR
images. Reports carry rates, distances and counts — never rows or rare values.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pulsesynth.artifacts import AUDIT_DCR_PNG, AUDIT_ROC_PNG, CandidateDir
from pulsesynth.audit.attacks.anonymeter import attribute_inference, singling_out
from pulsesynth.audit.attacks.membership import ELBOAttack, SurrogateAttack, vae_release
from pulsesynth.audit.distances import distance_report
from pulsesynth.audit.release_stats import MembershipDecisions
from pulsesynth.schema import DatasetSchema

CAVEAT = (
    "Passing today's attacks does not prove the data is safe against future, stronger "
    "attacks. What protects the people in the source table is the differential-privacy "
    "guarantee (ε, δ) of the training process; the attacks check that it was applied "
    "correctly and that nothing leaked around it."
)


def audit_release(schema: DatasetSchema, model, train: pd.DataFrame, holdout: pd.DataFrame,
                  reference: pd.DataFrame, synthetic: pd.DataFrame, *, seed: int = 0,
                  n_shadows: int = 1, surrogate_epochs: int = 30,
                  max_eval: int = 2000, shadows: dict[str, list] | None = None,
                  decisions: list[MembershipDecisions] | None = None,
                  distance_pool: pd.DataFrame | None = None) -> dict[str, Any]:
    """Every attack and metric for one release; ``synthetic`` must hold every row released
    from ``model`` (more draws make attacks stronger, seed 000 §6.4).

    ``reference`` is the auditor's data for shadow models. In the pipeline it is a fresh
    draw from the released model (what anyone could get), so every attack *rule* is a
    function of DP outputs and the DP release report can count its calls on real rows
    with a bounded sensitivity. ``shadows`` (attack name → every shadow's result, e.g.
    trained in parallel by an orchestrator through :func:`shadow_jobs`) skips training
    them here. When ``decisions`` is a list, every attack's call on every training and
    holdout row is appended to it (in memory only: never written), including the
    distance attack when ``distance_pool`` (other rows from the same model) is given.
    """
    shadows = shadows or {}
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name: str, fn):
        t0 = time.perf_counter()
        out = fn()
        timings[name] = round(time.perf_counter() - t0, 2)
        return out

    elbo_attack = ELBOAttack(n_shadows, max_eval, seed)
    model_mia = timed("model_mia", lambda: elbo_attack.run(
        model, train, holdout, reference, shadows=shadows.get("model_mia")))
    release = vae_release(model, rows=len(synthetic))
    surrogate_attack = SurrogateAttack(release, n_shadows, surrogate_epochs, max_eval, seed)
    synthetic_mia = timed("synthetic_mia", lambda: surrogate_attack.run(
        schema, synthetic, train, holdout, reference,
        train_rows=_public_rows(model), shadows=shadows.get("synthetic_mia")))
    if decisions is not None:
        decisions += [a.decisions for a in (elbo_attack, surrogate_attack) if a.decisions]
        if distance_pool is not None:
            decisions.append(timed("distance_mia", lambda: distance_decisions(
                schema, train, holdout, synthetic, distance_pool)))
    distances = timed("distances", lambda: distance_report(schema, train, holdout, synthetic,
                                                           seed))
    inference = timed("attribute_inference", lambda: attribute_inference(
        schema, train, holdout, synthetic, seed=seed))
    single = timed("singling_out", lambda: singling_out(schema, train, holdout, synthetic,
                                                        seed=seed))
    timings["total"] = round(time.perf_counter() - started, 2)
    return {
        "dataset": schema.id,
        "membership_attacks": {r.attack: r.to_dict() for r in (model_mia, synthetic_mia)},
        "distances": distances,
        "attribute_inference": [r.to_dict() for r in inference],
        "singling_out": single.to_dict(),
        "rows": {"train": len(train), "holdout": len(holdout), "reference": len(reference),
                 "synthetic": len(synthetic)},
        "seed": seed,
        "timings_s": timings,
        "caveat": CAVEAT,
    }


def _public_rows(model) -> int | None:
    return model.metadata.get("public_rows") or model.metadata.get("train_rows")


def distance_decisions(schema: DatasetSchema, train: pd.DataFrame, holdout: pd.DataFrame,
                       synthetic: pd.DataFrame, pool: pd.DataFrame) -> MembershipDecisions:
    """Distance-to-closest-record as a membership attack whose rule uses DP outputs only.

    A real row is called a member when its Gower distance to the nearest released row is
    at most τ, the median of the same distance for ``pool`` rows (fresh draws from the same
    mechanism). A model that copies its training rows puts them closer than unseen rows;
    a DP model cannot. ("At most": a copying mechanism's fresh draws are copies too, τ = 0.)
    """
    from pulsesynth.audit.distances import GowerSpace, nearest_distance

    space = GowerSpace(schema)
    released = space.encode(synthetic)
    tau = float(np.median(nearest_distance(space.encode(pool), released)))
    return MembershipDecisions("distance_mia",
                               nearest_distance(space.encode(train), released) <= tau,
                               nearest_distance(space.encode(holdout), released) <= tau)


def shadow_jobs(n_shadows: int) -> list[tuple[str, int]]:
    """Every independent shadow of one audit, as (attack name, shadow index)."""
    return [(attack, i) for attack in ("model_mia", "synthetic_mia") for i in range(n_shadows)]


def train_shadow(schema: DatasetSchema, model, train: pd.DataFrame, reference: pd.DataFrame,
                 synthetic_rows: int, attack: str, index: int, *, seed: int = 0,
                 n_shadows: int = 1, surrogate_epochs: int = 30):
    """One shadow of :func:`audit_release`'s attacks, exactly as it would train it."""
    if attack == "model_mia":
        return ELBOAttack(n_shadows, seed=seed).shadow(model, train, reference, index)
    if attack == "synthetic_mia":
        return SurrogateAttack(vae_release(model, rows=synthetic_rows), n_shadows,
                               surrogate_epochs, seed=seed).shadow(
            schema, train, reference, index, _public_rows(model))
    raise ValueError(f"unknown attack {attack!r}")


def write_report(audit: dict[str, Any], directory: Path, privacy: dict[str, Any],
                 gate: dict[str, Any] | None = None,
                 release_stats: dict[str, Any] | None = None) -> Path:
    """Write ``audit.json``, ``audit.md`` and its images into ``directory``.

    Both are the steward's (exact figures of the private rows); ``audit.md`` also shows
    the DP release report the gate decided on, when given."""
    candidate = CandidateDir(directory)
    candidate.mkdir()
    candidate.write_audit(audit)
    images = _plots(audit, candidate)
    text = _markdown(audit, privacy, gate, images)
    if release_stats:
        text += "\n" + _release_markdown(release_stats)
    candidate.audit_md.write_text(text, encoding="utf-8")
    return candidate.audit_md


def _release_markdown(stats: dict[str, Any]) -> str:
    from pulsesynth.governance.datacard import release_markdown, release_section

    lines = release_markdown(release_section(stats))
    lines[0] = "## What the gate decided on (the DP release report, as published)"
    lines += ["", "The exact figures above are for the steward only; the gate and every "
              "published card use these noisy ones.", ""]
    return "\n".join(lines)


def _plots(audit: dict[str, Any], candidate: CandidateDir) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = {}
    fig, ax = plt.subplots(figsize=(4.5, 4))
    for name, result in audit["membership_attacks"].items():
        roc = result["details"]["roc"]
        ax.plot(roc["fpr"], roc["tpr"], label=f"{name} (AUC {result['auc']:.2f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="guessing")
    ax.set(xlabel="false positive rate", ylabel="true positive rate",
           title="Membership attacks: ROC")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(candidate.audit_roc_png, dpi=110)
    plt.close(fig)
    images["roc"] = AUDIT_ROC_PNG

    hist = audit["distances"]["dcr_histogram"]
    edges = hist["edges"]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.stairs(hist["to_train"], edges, label="to nearest training row", fill=False)
    ax.stairs(hist["to_holdout"], edges, label="to nearest holdout row", fill=False, ls="--")
    ax.set(xlabel="Gower distance of a synthetic row", ylabel="synthetic rows",
           title="Distance to closest record")
    ax.set_xlim(0, max(0.05, edges[max(i for i, (a, b) in enumerate(
        zip(hist["to_train"], hist["to_holdout"], strict=True)) if a or b) + 1]))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(candidate.audit_dcr_png, dpi=110)
    plt.close(fig)
    images["dcr"] = AUDIT_DCR_PNG
    return images


def _markdown(audit: dict[str, Any], privacy: dict[str, Any], gate: dict[str, Any] | None,
              images: dict[str, str]) -> str:
    d = audit["distances"]
    eps = privacy.get("epsilon")
    label = (gate or {}).get("label", "not gated")
    lines = [f"# Privacy audit — {audit['dataset']}", ""]
    lines += ["## Verdict", ""]
    if gate:
        lines.append(f"**Label: {label.upper()}** — {gate.get('reason', '')}")
    else:
        lines.append("The gate has not been applied to this audit yet.")
    lines += ["", "## Were real records leaked?", ""]
    lines.append(f"- Synthetic rows identical to a real training row: **{d['exact_matches']}** "
                 f"of {d['synthetic_rows']}; identical to a training row that is unique: "
                 f"**{d['exact_matches_unique']}**.")
    control = d.get("exact_match_control")
    if control:
        lines.append(f"- Control for chance reproductions: of {control['rows']} training rows "
                     f"and {control['rows']} unseen rows, the unique ones that appear verbatim "
                     f"in the synthetic table: **{control['train_unique']}** training, "
                     f"**{control['holdout_unique']}** unseen. Similar counts mean plausible "
                     "rows reproduced by chance; many more on the training side mean copying.")
    lines.append(f"- Typical distance from a real person to the closest synthetic row "
                 f"(median Gower): **{d['median_gower']:.3f}**, against "
                 f"**{d['gower_reference']:.3f}** between two halves of the real data. "
                 "Much smaller than the reference would suggest copying.")
    lines.append(f"- Share of synthetic rows closer to a training row than to an unseen "
                 f"row: **{d['dcr_share']:.3f}** (0.5 is ideal).")
    lines += ["", f"![Distance to closest record]({images['dcr']})", ""]
    lines += ["## Attacks", "",
              "Accuracy 50% means the attacker does no better than a coin flip (100% "
              "privacy); 100% means every guess is right (0% privacy).", "",
              "| attack | accuracy (95% CI) | ROC AUC | TPR at 1% FPR | advantage | "
              "effective ε (lower bound) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name, r in audit["membership_attacks"].items():
        lines.append(f"| {name} | {r['accuracy']:.3f} ({r['ci_low']:.3f}–{r['ci_high']:.3f})"
                     f" | {r['auc']:.3f} | {r['tpr_at_1pct_fpr']:.3f} | {r['advantage']:.3f} "
                     f"| {r['effective_epsilon']:.2f} |")
    for r in audit["attribute_inference"]:
        lines.append(f"| attribute inference on {r['column']} | risk {r['risk']:.3f} "
                     f"({r['risk_ci_low']:.3f}–{r['risk_ci_high']:.3f}) | | | | |")
    s = audit["singling_out"]
    lines.append(f"| singling out | risk {s['risk']:.3f} ({s['risk_ci_low']:.3f}–"
                 f"{s['risk_ci_high']:.3f}) | | | | |")
    lines += ["", f"![ROC curves]({images['roc']})", ""]
    lines += ["## The differential-privacy guarantee", ""]
    if privacy.get("private"):
        lines.append(f"Trained with DP-SGD to ε = {eps:.3g}, δ = {privacy.get('delta'):.2e} "
                     f"({privacy.get('accountant', '?')} accountant). For comparison, "
                     f"ln 2 = {math.log(2):.3f}: at ε = ln 2 no outcome becomes more than "
                     "twice as likely because one person's data was included.")
    else:
        lines.append("**This model was trained WITHOUT differential privacy.** It is for "
                     "comparison only and can never be published.")
    lines += ["", "## Caveat", "", audit["caveat"], ""]
    return "\n".join(lines)
