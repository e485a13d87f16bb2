"""Audit benchmark: calibration, seed 000's feature-shuffling study, privacy against ε, and
the audit's cost relative to training.

Run by ``make bench`` (or ``python -m benchmarks.audit``); writes
``benchmarks/results/audit.json`` and plots beside it. Slices of the tables keep the run
within minutes on 2 cores; sizes are recorded with each row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import single_thread
from pulsesynth.audit.attacks.base import AttackData, create_attack, vae_release
from pulsesynth.audit.attacks.membership import SurrogateAttack
from pulsesynth.audit.baselines import shuffle_features, shuffle_release
from pulsesynth.audit.distances import distance_report
from pulsesynth.audit.metrics import AttackResult
from pulsesynth.audit.one_run import make_canaries
from pulsesynth.audit.report import audit_release
from pulsesynth.audit.targets import Targets, random_targets, vulnerable_targets
from pulsesynth.encoding import TableEncoder
from pulsesynth.paths import Paths
from pulsesynth.randomness import salt_from_seed
from pulsesynth.splits import split_by_unit
from pulsesynth.synth import DPVAESynthesizer
from pulsesynth.utility import evaluate_utility
from pulsesynth.warehouse import Warehouse

RESULTS = Path(__file__).resolve().parent / "results"
SHUFFLES = [0.05, 0.10, 0.20, 0.50, 1.00]


def roles(dataset: str, n: int, seed: int = 0, warehouse: Warehouse | None = None):
    snap = (warehouse or Warehouse(Paths.default())).pull(dataset)
    parts = split_by_unit(snap.frame, snap.schema, salt=salt_from_seed(seed))
    # Seeded random rows, not the first n: tables are ordered (e.g. by year), so a prefix
    # of each part would give members and non-members different distributions.
    def take(part, k):
        return part.sample(min(k, len(part)), random_state=seed)

    return (snap.schema, take(parts["train"], n), take(parts["holdout"], n),
            take(parts["reference"], 2 * n))


#: Attacks of the calibration table: model attacks need the model, table attacks the rows.
MODEL_ATTACKS = ("model_mia", "model_lira")
TABLE_ATTACKS = ("synthetic_mia", "query_shadow", "domias", "domias_marginals")
#: The memorising non-private VAE (batch 64, 300 epochs), its table at n and 10·n rows.
MEMORISING = "memorising non-DP VAE, n rows"
MEMORISING_10N = "memorising non-DP VAE, 10·n rows"
#: Every attack blinded: a release of rows drawn from the declared domains alone.
NOISE = "noise (blinded)"


def noise_release(schema) -> Callable[[Any, int], Any]:
    """A release that ignores its members: rows drawn from the declared domains alone
    (an attack's signal replaced by noise must detect nothing)."""

    def release(members, seed: int):
        return make_canaries(schema, len(members), np.random.default_rng(seed))

    return release


def auc_summary(r: AttackResult) -> dict[str, Any]:
    """An attack's AUC with its 95% interval and TPR at 1% FPR, rounded for the results."""
    return {"auc": round(r.auc, 4),
            "auc_ci": [round(r.auc_ci_low, 4), round(r.auc_ci_high, 4)],
            "tpr_at_1pct": round(r.tpr_at_1pct_fpr, 4)}


def attack_rows(case: str, dataset: str, data: AttackData, names: tuple[str, ...],
                train, holdout, vulnerable, log) -> list[dict]:
    """Each attack on random and vulnerable targets, as rows of the benchmark table."""
    rows = []
    for name in names:
        attack = create_attack(name, seed=0)
        t0 = time.perf_counter()
        attack.fit(data)
        for targets in (random_targets(train, holdout), vulnerable):
            r = attack.evaluate(targets.members, targets.non_members, targets.kind)
            rows.append({"case": case, "dataset": dataset, "attack": name,
                         "targets": targets.kind, "train_rows": len(train),
                         "synthetic_rows": len(data.synthetic), **auc_summary(r),
                         "tpr_at_01pct": round(r.tpr_at_01pct_fpr, 4),
                         "accuracy": round(r.accuracy, 4), "records": r.n_members,
                         "seconds": round(time.perf_counter() - t0, 1)})
            log(json.dumps(rows[-1]))
    return rows


def level_reproduction(case: str, dataset: str, encoder: TableEncoder, synthetic,
                       targets: list[Targets]) -> list[dict]:
    """How often the released table holds a target's whole row on the model's public
    levels (bins and categories), for members and non-members: the signal a table attack
    can find. A table that reproduces members no more often than non-members leaves the
    table attacks little to work with, however well the model itself has memorised."""
    released = {tuple(row) for row in encoder.levels(synthetic)}

    def share(rows) -> float:
        return round(float(np.mean([tuple(r) in released for r in encoder.levels(rows)])), 4)

    return [{"case": case, "dataset": dataset, "targets": t.kind,
             "synthetic_rows": len(synthetic), "members": share(t.members),
             "non_members": share(t.non_members), "records": min(len(t.members),
                                                               len(t.non_members))}
            for t in targets]


def attack_calibration(dataset: str, n: int, log, warehouse: Warehouse | None = None,
                       reproduction: list[dict] | None = None) -> list[dict]:
    """The issue's calibration cases at ``n`` training rows: a memorising non-private VAE
    (its table at n and 10·n rows, and the model), a 20%-shuffled copy, the DP-VAE at
    ε = 1, and a release of pure noise. The auditor holds real reference rows.

    The memorising tables' :func:`level_reproduction` is appended to ``reproduction``."""
    schema, train, holdout, reference = roles(dataset, n, warehouse=warehouse)
    vulnerable = vulnerable_targets(schema, train, holdout)
    rows: list[dict] = []

    def data(synthetic, mechanism, model=None) -> AttackData:
        return AttackData(schema=schema, synthetic=synthetic, reference=reference,
                          mechanism=mechanism, model=model, train_rows=len(train),
                          real_reference=reference)

    memorising = DPVAESynthesizer(schema, private=False, epochs=300, batch_size=64,
                                  seed=0).fit(train)
    shared = data(memorising.sample(n, seed=1), vae_release(memorising, n), memorising)
    rows += attack_rows(MEMORISING, dataset, shared, MODEL_ATTACKS + TABLE_ATTACKS, train,
                        holdout, vulnerable, log)
    ten_n = data(memorising.sample(10 * n, seed=2), vae_release(memorising, 10 * n),
                 memorising)
    rows += attack_rows(MEMORISING_10N, dataset, ten_n, TABLE_ATTACKS, train, holdout,
                        vulnerable, log)
    if reproduction is not None:
        for case, released in ((MEMORISING, shared), (MEMORISING_10N, ten_n)):
            reproduction += level_reproduction(case, dataset, memorising.encoder,
                                               released.synthetic,
                                               [random_targets(train, holdout), vulnerable])
            log(json.dumps(reproduction[-2:]))
    rows += attack_rows("20% feature-shuffled copy", dataset,
                        data(shuffle_features(train, schema, 0.2, seed=5),
                             shuffle_release(schema, 0.2)),
                        TABLE_ATTACKS, train, holdout, vulnerable, log)
    dp = DPVAESynthesizer(schema, epsilon=1.0, seed=0).fit(train)
    rows += attack_rows("DP-VAE ε = 1", dataset,
                        data(dp.sample(n, seed=1), vae_release(dp, n), dp),
                        MODEL_ATTACKS + TABLE_ATTACKS, train, holdout, vulnerable, log)
    rows += attack_rows(NOISE, dataset,
                        data(noise_release(schema)(train, 3), noise_release(schema)),
                        TABLE_ATTACKS, train, holdout, vulnerable, log)
    return rows


def shuffle_study(dataset: str, n: int, log) -> list[dict]:
    """Seed 000 Figure 6.5: utility against distance for shuffling vs VAEs."""
    schema, train, holdout, reference = roles(dataset, n)
    # Each method: its release function and, for the VAEs, the model that samples directly.
    methods: dict[str, tuple[Callable[..., Any], DPVAESynthesizer | None]] = {
        f"shuffle {int(f * 100)}%": (shuffle_release(schema, f), None) for f in SHUFFLES}
    for name, private in (("non-DP VAE", False), ("DP-VAE eps=1", True)):
        vae = DPVAESynthesizer(schema, epsilon=1.0, private=private, seed=0).fit(train)
        methods[name] = (vae_release(vae, len(train)), vae)
    rows = []
    for name, (release, model) in methods.items():
        fake = model.sample(len(train), seed=1) if model else release(train, 7)
        dist = distance_report(schema, train, holdout, fake)
        util = evaluate_utility(schema, train, holdout, fake, classifiers=("hist_gb",))
        assert util["tstr"] is not None and util["trtr"] is not None  # every table has a target
        data = AttackData(schema=schema, synthetic=fake, reference=reference,
                          mechanism=release, model=model, train_rows=len(train),
                          real_reference=reference)
        mia = SurrogateAttack(seed=0).run(data, train, holdout)
        rows.append({"dataset": dataset, "method": name, "rows": len(train),
                     "tstr_accuracy": util["tstr"]["hist_gb"]["accuracy"],
                     "trtr_accuracy": util["trtr"]["hist_gb"]["accuracy"],
                     "median_gower": dist["median_gower"],
                     "gower_reference": dist["gower_reference"],
                     "exact_overlap": dist["exact_matches"] / len(fake),
                     "synthetic_mia_accuracy": mia.accuracy,
                     "synthetic_mia_ci": [mia.ci_low, mia.ci_high],
                     "dcr_share": dist["dcr_share"],
                     "attacks": random_target_scores(data, STUDY_ATTACKS, train, holdout)})
        log(json.dumps(rows[-1]))
    return rows


#: The table attacks the shuffle study and the ε sweep add to their original ones.
STUDY_ATTACKS = ("query_shadow", "domias")


def random_target_scores(data: AttackData, names: tuple[str, ...], train,
                         holdout) -> dict[str, dict[str, Any]]:
    """Each attack's AUC (95% interval) and TPR at 1% FPR on random members and non-members."""
    targets = random_targets(train, holdout)
    return {name: auc_summary(create_attack(name, seed=0).fit(data).evaluate(
                targets.members, targets.non_members, targets.kind))
            for name in names}


def privacy_vs_epsilon(n: int, log) -> list[dict]:
    schema, train, holdout, reference = roles("census_income", n)
    rows = []
    for eps in (0.5, 1.0, 3.0, 10.0, None):
        model = DPVAESynthesizer(schema, epsilon=eps or 1.0, private=eps is not None,
                                 seed=0).fit(train)
        fake = model.sample(len(train), seed=1)
        data = AttackData(schema=schema, synthetic=fake, reference=reference,
                          mechanism=vae_release(model, len(train)), model=model,
                          train_rows=len(train), real_reference=reference)
        m = create_attack("model_mia", seed=0).run(data, train, holdout)
        s = SurrogateAttack(seed=0).run(data, train, holdout)
        rows.append({"epsilon": eps, "rows": len(train), "model_mia_accuracy": m.accuracy,
                     "model_mia_ci": [m.ci_low, m.ci_high],
                     "synthetic_mia_accuracy": s.accuracy,
                     "synthetic_mia_ci": [s.ci_low, s.ci_high],
                     "attacks": random_target_scores(data, ("model_lira", *STUDY_ATTACKS),
                                                     train, holdout)})
        log(json.dumps(rows[-1]))
    return rows


def audit_cost(dataset: str, log) -> dict:
    """Whole audit of one dataset (full size) over the target model's own training time.

    Wall-clock and CPU time both: training and audit run one after the other, so on 2
    shared cores a neighbour's load can fall on one and not the other and move the wall
    ratio; this process's CPU time (all its threads) moves far less with it (the
    figures are in the README's audit section)."""
    snap = Warehouse(Paths.default()).pull(dataset)
    parts = split_by_unit(snap.frame, snap.schema, salt=salt_from_seed(0))
    start, cpu = time.perf_counter(), time.process_time()
    model = DPVAESynthesizer(snap.schema, epsilon=1.0, seed=0).fit(parts["train"])
    train_seconds = time.perf_counter() - start
    train_cpu = time.process_time() - cpu
    fake = model.sample(int(model.metadata["train_rows"]), seed=1)
    start, cpu = time.perf_counter(), time.process_time()
    audit = audit_release(snap.schema, model, parts["train"], parts["holdout"],
                          parts["reference"], fake)
    audit_seconds = time.perf_counter() - start
    audit_cpu = time.process_time() - cpu
    out = {"dataset": dataset, "train_seconds": train_seconds, "audit_seconds": audit_seconds,
           "audit_cost_ratio": audit_seconds / train_seconds,
           "train_cpu_seconds": train_cpu, "audit_cpu_seconds": audit_cpu,
           "audit_cost_ratio_cpu": audit_cpu / train_cpu, "timings_s": audit["timings_s"]}
    log(json.dumps(out))
    return out


def plot_attacks(rows: list[dict], directory: Path) -> None:
    """AUC with its 95% interval per case and attack, random and vulnerable targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    cases = list(dict.fromkeys(r["case"] for r in rows))
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 5.5),
                             squeeze=False, sharey=True)
    for ax, ds in zip(axes[0], datasets, strict=True):
        for i, case in enumerate(cases):
            for j, name in enumerate(attacks):
                for targets, marker in (("random", "o"), ("vulnerable", "^")):
                    hit = [r for r in rows if (r["dataset"], r["case"], r["attack"],
                                               r["targets"]) == (ds, case, name, targets)]
                    if not hit:
                        continue
                    y = i + (j - len(attacks) / 2) * 0.12
                    r = hit[0]
                    ax.errorbar(r["auc"], y, xerr=[[r["auc"] - r["auc_ci"][0]],
                                                   [r["auc_ci"][1] - r["auc"]]],
                                fmt=marker, color=f"C{j}", ms=5, capsize=2,
                                mfc="none" if targets == "vulnerable" else f"C{j}",
                                label=f"{name} ({targets})")
        ax.axvline(0.5, color="grey", ls="--", lw=0.8)
        ax.set(title=ds, xlabel="ROC AUC (95% interval); 0.5 = chance", xlim=(0.3, 1.0))
        ax.set_yticks(range(len(cases)), [c[:48] for c in cases], fontsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    fig.legend(unique.values(), unique.keys(), loc="lower center", ncol=4, fontsize=7)
    fig.suptitle("Can the audit's attacks fire? Calibration cases (filled: random members, "
                 "open: most vulnerable)", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(directory / "audit_attacks.png", dpi=110)
    plt.close(fig)


def plot(result: dict, directory: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if result.get("attacks"):
        plot_attacks(result["attacks"], directory)
    study = result["shuffle_study"]
    datasets = sorted({r["dataset"] for r in study})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        mine = [r for r in study if r["dataset"] == ds]
        for r in mine:
            marker = "o" if r["method"].startswith("shuffle") else "*"
            ax.scatter(r["median_gower"], r["tstr_accuracy"], marker=marker, s=60)
            # The method and the strongest table attack's AUC (the table lists them all).
            scores = {name: v["auc"] for name, v in (r.get("attacks") or {}).items()}
            best = max(scores, key=scores.__getitem__) if scores else None
            label = r["method"] + (f"\n{best} AUC {scores[best]:.2f}" if best else
                                   f"\nMIA {r['synthetic_mia_accuracy']:.2f}")
            ax.annotate(label, (r["median_gower"], r["tstr_accuracy"]), fontsize=6,
                        xytext=(5, -3), textcoords="offset points")
        ax.axvline(mine[0]["gower_reference"], ls="--", color="grey",
                   label="real vs real (reference)")
        ax.set(title=f"{ds}: utility vs distance (seed 000 Fig. 6.5)",
               xlabel="median Gower distance to closest synthetic row",
               ylabel="TSTR accuracy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(directory / "audit_shuffle_study.png", dpi=110)
    plt.close(fig)

    pv = result["privacy_vs_epsilon"]
    names = list(dict.fromkeys(k for r in pv for k in (r.get("attacks") or {})))
    fig, axes = plt.subplots(1, 2 if names else 1, figsize=(10 if names else 5, 3.6),
                             squeeze=False)
    ax = axes[0][0]
    xs = [r["epsilon"] or 30 for r in pv]
    for key, label in (("model_mia", "model MIA"), ("synthetic_mia", "synthetic-data MIA")):
        ys = [r[f"{key}_accuracy"] for r in pv]
        lo = [r[f"{key}_accuracy"] - r[f"{key}_ci"][0] for r in pv]
        hi = [r[f"{key}_ci"][1] - r[f"{key}_accuracy"] for r in pv]
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", capsize=3, label=label)
    ax.axhline(0.5, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(xs, [str(r["epsilon"] or "non-DP") for r in pv])
    ax.set(xlabel="ε", ylabel="attack accuracy", title="census_income: privacy against ε")
    ax.legend(fontsize=8)
    if names:
        ax = axes[0][1]
        for name in names:
            hit = [r for r in pv if name in (r.get("attacks") or {})]
            ys = [r["attacks"][name]["auc"] for r in hit]
            lo = [y - r["attacks"][name]["auc_ci"][0] for y, r in zip(ys, hit, strict=True)]
            hi = [r["attacks"][name]["auc_ci"][1] - y for y, r in zip(ys, hit, strict=True)]
            ax.errorbar([r["epsilon"] or 30 for r in hit], ys, yerr=[lo, hi], fmt="s-",
                        capsize=3, label=name)
        ax.axhline(0.5, color="grey", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks(xs, [str(r["epsilon"] or "non-DP") for r in pv])
        ax.set(xlabel="ε", ylabel="ROC AUC (95% interval)",
               title="the newer attacks, random targets")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(directory / "audit_privacy_vs_epsilon.png", dpi=110)
    plt.close(fig)


SECTIONS = ("cost", "attacks", "shuffle", "epsilon")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=3000, help="training rows per study")
    parser.add_argument("--attack-rows", type=int, default=1000,
                        help="training rows of the attack calibration cases")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {', '.join(SECTIONS)}; the others "
                             "keep their committed results")
    args = parser.parse_args(argv)
    sections = [x for x in args.sections.split(",") if x]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    single_thread()
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    out = RESULTS / "audit.json"
    result: dict = json.loads(out.read_text()) if out.is_file() else {}
    result.pop("calibration", None)  # superseded by "attacks"

    def save() -> None:
        out.write_text(json.dumps(result, indent=2) + "\n")

    if "cost" in sections:
        cost = audit_cost("census_income", log)
        result.update(audit_cost_ratio=cost["audit_cost_ratio"], audit_cost=cost)
        save()
    if "attacks" in sections:
        result["attacks"], result["reproduction"] = [], []
        for dataset in ("census_income", "traffic_accidents"):
            result["attacks"] += attack_calibration(dataset, args.attack_rows, log,
                                                    reproduction=result["reproduction"])
            save()
    if "shuffle" in sections:
        result["shuffle_study"] = (shuffle_study("census_income", args.rows, log)
                                   + shuffle_study("traffic_accidents", args.rows, log))
        save()
    if "epsilon" in sections:
        result["privacy_vs_epsilon"] = privacy_vs_epsilon(args.rows, log)
        save()
    plot(result, RESULTS)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
