"""Run the whole audit of one release and write it for people who are not data scientists.

``audit_release`` runs every attack and metric on (train, holdout, reference, synthetic,
model); ``write_report`` writes ``audit.json`` plus ``audit.md`` with ROC-curve and DCR
images. Reports carry rates, distances and counts — never rows or rare values.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pulsesynth.artifacts import AUDIT_DCR_PNG, AUDIT_ROC_PNG, CandidateDir
from pulsesynth.audit.attacks.anonymeter import attribute_inference, singling_out
from pulsesynth.audit.attacks.base import (
    AttackData,
    MembershipAttack,
    ShadowModel,
    ShadowRelease,
    Shadows,
    create_attack,
    ensure_shadows,
    make_shadow_release,
    train_shadow_model,
    vae_release,
)
from pulsesynth.audit.distances import distance_report
from pulsesynth.audit.metrics import AttackResult, auc_interval
from pulsesynth.audit.release_stats import MembershipDecisions
from pulsesynth.audit.targets import random_targets, vulnerable_targets
from pulsesynth.reports import AuditReport, PrivacyReport, ReleaseStats
from pulsesynth.schema import DatasetSchema

CAVEAT = (
    "Passing today's attacks does not prove the data is safe against future, stronger "
    "attacks. What protects the people in the source table is the differential-privacy "
    "guarantee (ε, δ) of the training process; the attacks check that it was applied "
    "correctly and that nothing leaked around it."
)
#: The membership attacks every table audit runs, by registered name: white-box on the
#: model (a global ELBO classifier and its per-record calibrated form), black-box on the
#: released table (surrogate VAE, counting queries, density ratio against the DP marginals
#: and, for the steward only, against real reference rows).
DEFAULT_ATTACKS: tuple[str, ...] = ("model_mia", "model_lira", "synthetic_mia",
                                    "query_shadow", "domias_marginals", "domias")
#: Family-wise error rate of the verdict over every (attack, target set) test.
VERDICT_ALPHA = 0.05


def _new_attack(name: str, *, seed: int, max_eval: int, surrogate_epochs: int
                ) -> MembershipAttack:
    kwargs: dict[str, Any] = {"seed": seed, "max_eval": max_eval}
    if name == "synthetic_mia":
        kwargs["surrogate_epochs"] = surrogate_epochs
    return create_attack(name, **kwargs)


def audit_release(schema: DatasetSchema, model, train: pd.DataFrame, holdout: pd.DataFrame,
                  reference: pd.DataFrame, synthetic: pd.DataFrame, *, seed: int = 0,
                  n_shadows: int = 1, surrogate_epochs: int = 30,
                  max_eval: int = 2000, shadows: Shadows | None = None,
                  decisions: list[MembershipDecisions] | None = None,
                  distance_pool: pd.DataFrame | None = None,
                  real_reference: pd.DataFrame | None = None,
                  attacks: tuple[str, ...] = DEFAULT_ATTACKS) -> AuditReport:
    """Every attack and metric for one release; ``synthetic`` must hold every row released
    from ``model`` (more draws make attacks stronger, seed 000 §6.4).

    ``reference`` is the auditor's data for shadows. In the pipeline it is a fresh draw
    from the released model (what anyone could get), so every attack *rule* is a function
    of DP outputs and the DP release report can count its calls on real rows with a
    bounded sensitivity. ``real_reference`` (real rows outside train and holdout) serves
    only the attacks that declare ``uses_real_reference``: their exact figures stay with
    the steward and never enter the release report. ``shadows`` (e.g. trained in parallel
    by an orchestrator through :func:`shadow_jobs` and :func:`train_shadow`) skips
    training them here. Each attack is scored on random targets and on the most
    vulnerable ones (:mod:`pulsesynth.audit.targets`). When ``decisions`` is a list, every
    DP-rule attack's call on every training and holdout row is appended to it (in memory
    only: never written), with the distance attack when ``distance_pool`` (other rows
    from the same model) is given.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name: str, fn):
        t0 = time.perf_counter()
        out = fn()
        timings[name] = round(time.perf_counter() - t0, 2)
        return out

    data = AttackData(schema=schema, synthetic=synthetic, reference=reference,
                      mechanism=vae_release(model, rows=len(synthetic)), model=model,
                      train_rows=_public_rows(model), real_reference=real_reference,
                      n_shadows=n_shadows, seed=seed, shadows=shadows or Shadows())
    chosen = [_new_attack(name, seed=seed, max_eval=max_eval,
                          surrogate_epochs=surrogate_epochs) for name in attacks]
    needed = {kind for a in chosen for kind in a.shadow_kinds}
    if "model" in needed:
        timed("shadow_models", lambda: ensure_shadows(data, models=True))
    if "release" in needed:
        timed("shadow_releases", lambda: ensure_shadows(data, releases=True))
    target_sets = [random_targets(train, holdout),
                   timed("vulnerable_targets", lambda: vulnerable_targets(
                       schema, train, holdout, seed=seed))]
    results: dict[str, dict[str, AttackResult]] = {t.kind: {} for t in target_sets}
    for attack in chosen:
        def fit_and_score(attack: MembershipAttack = attack) -> None:
            attack.fit(data)
            for targets in target_sets:
                results[targets.kind][attack.name] = attack.evaluate(
                    targets.members, targets.non_members, targets.kind)
            if decisions is not None and not attack.uses_real_reference:
                decisions.append(attack.decisions(train, holdout))

        timed(attack.name, fit_and_score)
    if decisions is not None and distance_pool is not None:
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
        "membership_attacks": {name: r.to_dict() for name, r in results["random"].items()},
        "vulnerable_targets": {name: r.to_dict() for name, r in results["vulnerable"].items()},
        "verdict": strongest_attack(results),
        "attack_costs": {a.name: {"seconds": timings[a.name], "needs": a.cost}
                         for a in chosen},
        "distances": distances,
        "attribute_inference": [r.to_dict() for r in inference],
        "singling_out": single.to_dict(),
        "rows": {"train": len(train), "holdout": len(holdout), "reference": len(reference),
                 "synthetic": len(synthetic)},
        "seed": seed,
        "timings_s": timings,
        "caveat": CAVEAT,
    }


def strongest_attack(results: dict[str, dict[str, AttackResult]],
                     alpha: float = VERDICT_ALPHA) -> dict[str, Any]:
    """The audit's verdict: the attack and target set with the highest AUC, and whether it
    detects membership — its AUC interval, Bonferroni-corrected over every test run (each
    interval at confidence 1 − α/m), lies above 0.5."""
    tests = [(kind, name, r) for kind, by_name in results.items()
             for name, r in by_name.items()]
    if not tests:
        raise ValueError("the verdict needs at least one attack result")
    m = len(tests)
    kind, name, best = max(tests, key=lambda t: (t[2].auc, t[2].tpr_at_1pct_fpr))
    low, high = auc_interval(best.auc, best.n_members, best.n_non_members,
                             confidence=1 - alpha / m)
    return {"attack": name, "targets": kind, "auc": best.auc,
            "auc_ci_corrected": [low, high], "tpr_at_1pct_fpr": best.tpr_at_1pct_fpr,
            "detected": bool(low > 0.5), "tests": m,
            "correction": f"Bonferroni: each AUC interval at {100 * (1 - alpha / m):.2f}% "
                          f"over {m} tests (attacks × target sets)"}


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


#: Kinds of shadow job and how each is made: a shadow model (white-box attacks) or a
#: shadow release (table attacks); the names attacks list in ``shadow_kinds``.
SHADOW_BUILDERS: dict[str, Callable[[AttackData, int], ShadowModel | ShadowRelease]] = {
    "model": train_shadow_model, "release": make_shadow_release}
SHADOW_KINDS = tuple(SHADOW_BUILDERS)


def shadow_jobs(n_shadows: int) -> list[tuple[str, int]]:
    """Every independent shadow of one audit, as (shadow kind, index)."""
    return [(kind, i) for kind in SHADOW_KINDS for i in range(n_shadows)]


def train_shadow(schema: DatasetSchema, model, reference: pd.DataFrame,
                 synthetic_rows: int, shadow: str, index: int, *, seed: int = 0,
                 n_shadows: int = 1) -> ShadowModel | ShadowRelease:
    """One shadow of :func:`audit_release`, exactly as it would train it."""
    data = AttackData(schema=schema, synthetic=reference.iloc[:0], reference=reference,
                      mechanism=vae_release(model, rows=synthetic_rows), model=model,
                      train_rows=_public_rows(model), n_shadows=n_shadows, seed=seed)
    if shadow not in SHADOW_BUILDERS:
        raise ValueError(f"unknown shadow kind {shadow!r}; known: {', '.join(SHADOW_KINDS)}")
    return SHADOW_BUILDERS[shadow](data, index)


def collect_shadows(jobs: list[tuple[str, int]], done: list[Any]) -> Shadows:
    """Shadows from mapped :func:`train_shadow` results, in index order."""
    shadows = Shadows()
    for _, result in sorted(zip(jobs, done, strict=True), key=lambda j: j[0][1]):
        (shadows.models if isinstance(result, ShadowModel) else shadows.releases).append(result)
    return shadows


def write_report(audit: AuditReport, directory: Path, privacy: PrivacyReport,
                 gate: dict[str, Any] | None = None,
                 release_stats: ReleaseStats | None = None) -> Path:
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


def _release_markdown(stats: ReleaseStats) -> str:
    from pulsesynth.governance.datacard import release_markdown, release_section

    lines = release_markdown(release_section(stats))
    lines[0] = "## What the gate decided on (the DP release report, as published)"
    lines += ["", "The exact figures above are for the steward only; the gate and every "
              "published card use these noisy ones.", ""]
    return "\n".join(lines)


def _plots(audit: AuditReport, candidate: CandidateDir) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = {}
    panels = [("random members", audit["membership_attacks"]),
              ("most vulnerable records", audit.get("vulnerable_targets") or {})]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    floor = 1e-4  # log axes: rates of 0 are drawn at the floor
    for ax, (title, results) in zip(axes, panels, strict=True):
        for name, result in results.items():
            roc = result["details"]["roc"]
            fpr = np.maximum(roc["fpr"], floor)
            tpr = np.maximum(roc["tpr"], floor)
            ax.plot(fpr, tpr, label=f"{name} (AUC {result['auc']:.2f})")
        ax.plot([floor, 1], [floor, 1], "k--", lw=0.8, label="guessing")
        ax.axvline(0.01, color="grey", lw=0.5, ls=":")
        ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1.05),
               xlabel="false positive rate (log)", title=title)
        ax.legend(loc="lower right", fontsize=7)
    axes[0].set_ylabel("true positive rate (log)")
    fig.suptitle("Membership attacks: ROC on log–log axes (low false-positive rates matter)",
                 fontsize=10)
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


def _attack_table(results: dict[str, Any], title: str) -> list[str]:
    lines = [f"Targets: {title}.", "",
             "| attack | accuracy (95% CI) | ROC AUC (95% CI) | TPR at 1% FPR | "
             "TPR at 0.1% FPR | advantage | effective ε (lower bound) | records |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['accuracy']:.3f} ({r['ci_low']:.3f}–{r['ci_high']:.3f})"
                     f" | {r['auc']:.3f} ({r['auc_ci_low']:.3f}–{r['auc_ci_high']:.3f})"
                     f" | {r['tpr_at_1pct_fpr']:.3f} | {r['tpr_at_01pct_fpr']:.3f}"
                     f" | {r['advantage']:.3f} | {r['effective_epsilon']:.2f}"
                     f" | {r['n_members']} + {r['n_non_members']} |")
    return lines


def _markdown(audit: AuditReport, privacy: PrivacyReport, gate: dict[str, Any] | None,
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
                     "rows reproduced by chance; many more on the training side mean copying"
                     + (f" (one-sided Fisher test, p = {control['p_value']:.2g})."
                        if control.get("p_value") is not None else "."))
    lines.append(f"- Typical distance from a real person to the closest synthetic row "
                 f"(median Gower): **{d['median_gower']:.3f}**, against "
                 f"**{d['gower_reference']:.3f}** between two halves of the real data. "
                 "Much smaller than the reference would suggest copying.")
    lines.append(f"- Share of synthetic rows closer to a training row than to an unseen "
                 f"row: **{d['dcr_share']:.3f}** (0.5 is ideal).")
    lines += ["", f"![Distance to closest record]({images['dcr']})", ""]
    lines += ["## Attacks", "",
              "Accuracy 50% and ROC AUC 0.5 mean the attacker does no better than a coin flip "
              "(100% privacy); 100% and 1.0 mean every guess is right (0% privacy). The true "
              "positive rate at a 1% or 0.1% false positive rate says how many people an "
              "attacker could name with few false accusations.", ""]
    verdict = audit.get("verdict")
    if verdict:
        low, high = verdict["auc_ci_corrected"]
        found = ("**detects membership**" if verdict["detected"]
                 else "does not detect membership")
        lines += [f"Strongest attack: **{verdict['attack']}** on {verdict['targets']} targets, "
                  f"ROC AUC {verdict['auc']:.3f} ({low:.3f}–{high:.3f}); it {found}. "
                  f"{verdict['correction']}.", ""]
    lines += _attack_table(audit["membership_attacks"], "random members vs unseen rows")
    if audit.get("vulnerable_targets"):
        lines += [""] + _attack_table(audit["vulnerable_targets"],
                                      "the most isolated members vs the most isolated "
                                      "unseen rows (outliers are memorised first)")
    lines += ["", "| other attack | risk (95% CI) |", "| --- | --- |"]
    for r in audit["attribute_inference"]:
        lines.append(f"| attribute inference on {r['column']} | {r['risk']:.3f} "
                     f"({r['risk_ci_low']:.3f}–{r['risk_ci_high']:.3f}) |")
    s = audit["singling_out"]
    lines.append(f"| singling out | {s['risk']:.3f} ({s['risk_ci_low']:.3f}–"
                 f"{s['risk_ci_high']:.3f}) |")
    lines += ["", f"![ROC curves]({images['roc']})", ""]
    costs = audit.get("attack_costs")
    if costs:
        lines += ["## What each attack cost", "", "| attack | seconds | needs |",
                  "| --- | --- | --- |"]
        lines += [f"| {name} | {c['seconds']:.1f} | {c['needs']} |" for name, c in costs.items()]
        shared = {k: v for k, v in audit.get("timings_s", {}).items()
                  if k.startswith("shadow_")}
        if shared:
            lines.append("| shared shadows | " + f"{sum(shared.values()):.1f} | "
                         + ", ".join(f"{k.removeprefix('shadow_')} {v:.1f} s"
                                     for k, v in shared.items()) + " |")
        lines.append("")
    lines += ["## The differential-privacy guarantee", ""]
    if privacy.get("private"):
        lines.append(f"Trained with DP-SGD to ε = {eps:.3g}, δ = {privacy.get('delta'):.2e} "
                     f"({privacy.get('accountant', '?')} accountant). For comparison, "
                     f"ln 2 = {math.log(2):.3f}: at ε = ln 2 no outcome becomes more than "
                     "twice as likely because one person's data was included.")
    else:
        lines.append("**This model was trained WITHOUT differential privacy.** It is for "
                     "comparison only and can never be published.")
    lines += ["", "## Caveat", "", audit.get("caveat") or "", ""]
    return "\n".join(lines)
