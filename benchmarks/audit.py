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

from benchmarks import single_thread
from pulsesynth.audit.attacks.membership import ELBOAttack, SurrogateAttack, vae_release
from pulsesynth.audit.baselines import shuffle_features, shuffle_release
from pulsesynth.audit.distances import distance_report
from pulsesynth.audit.report import audit_release
from pulsesynth.gate import evaluate_gate, load_policy
from pulsesynth.paths import Paths
from pulsesynth.randomness import salt_from_seed
from pulsesynth.splits import split_by_unit
from pulsesynth.synth import DPVAESynthesizer
from pulsesynth.utility import evaluate_utility
from pulsesynth.warehouse import Warehouse

RESULTS = Path(__file__).resolve().parent / "results"
POLICY = load_policy()
SHUFFLES = [0.05, 0.10, 0.20, 0.50, 1.00]


def roles(dataset: str, n: int, seed: int = 0):
    snap = Warehouse(Paths.default()).pull(dataset)
    parts = split_by_unit(snap.frame, snap.schema, salt=salt_from_seed(seed))
    # Seeded random rows, not the first n: tables are ordered (e.g. by year), so a prefix
    # of each part would give members and non-members different distributions.
    def take(part, k):
        return part.sample(min(k, len(part)), random_state=seed)

    return (snap.schema, take(parts["train"], n), take(parts["holdout"], n),
            take(parts["reference"], 2 * n))


def _gate(private: bool, epsilon: float, attacks: dict, distances: dict) -> str:
    """The gate on the noise-free version of what the DP release report carries (the
    strongest attack's advantage and the exact-match excess on equal-size samples): the
    label these measurements earn before the report's Laplace noise."""
    control = distances["exact_match_control"]
    stats = {"private": private, "statistics": {
        "max_attack_advantage": {
            "value": max(a.advantage for a in attacks.values()),
            "ci_high": max(a.advantage_ci_high for a in attacks.values())},
        "exact_match_excess": {
            "value": (control["train_unique"] - control["holdout_unique"])
            / max(1, control["rows"])}}}
    return evaluate_gate(POLICY, {"private": private, "epsilon": epsilon}, stats).label


def calibration(log) -> list[dict]:
    rows = []
    schema, train, holdout, reference = roles("census_income", 500)
    cases = {
        "non-DP VAE overfit (500 rows, 300 epochs)":
            DPVAESynthesizer(schema, private=False, epochs=300, seed=0),
        "DP-VAE eps=1 (500 rows)": DPVAESynthesizer(schema, epsilon=1.0, seed=0),
    }
    for case, model in cases.items():
        model.fit(train)
        synthetic = model.sample(500, seed=1)
        epochs = 300 if not model.private else 30
        attacks = {
            "model_mia": ELBOAttack(seed=0).run(model, train, holdout, reference),
            "synthetic_mia": SurrogateAttack(vae_release(model, 500), surrogate_epochs=epochs,
                                             seed=0).run(schema, synthetic, train, holdout,
                                                         reference, train_rows=500),
        }
        label = _gate(model.private, 1.0, attacks,
                      distance_report(schema, train, holdout, synthetic))
        for name, r in attacks.items():
            rows.append({"case": case, "dataset": "census_income", "attack": name,
                         "accuracy": r.accuracy, "ci_low": r.ci_low, "ci_high": r.ci_high,
                         "gate": label})
            log(json.dumps(rows[-1]))
    fake = shuffle_features(train, schema, 0.2, seed=5)
    r = SurrogateAttack(shuffle_release(schema, 0.2), surrogate_epochs=100, seed=0).run(
        schema, fake, train, holdout, reference)
    label = _gate(True, 1.0, {"synthetic_mia": r},
                  distance_report(schema, train, holdout, fake))
    rows.append({"case": "20% feature-shuffled copy (500 rows)", "dataset": "census_income",
                 "attack": "synthetic_mia", "accuracy": r.accuracy, "ci_low": r.ci_low,
                 "ci_high": r.ci_high, "gate": label})
    log(json.dumps(rows[-1]))
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
        mia = SurrogateAttack(release, seed=0).run(schema, fake, train, holdout, reference,
                                                   train_rows=len(train))
        rows.append({"dataset": dataset, "method": name, "rows": len(train),
                     "tstr_accuracy": util["tstr"]["hist_gb"]["accuracy"],
                     "trtr_accuracy": util["trtr"]["hist_gb"]["accuracy"],
                     "median_gower": dist["median_gower"],
                     "gower_reference": dist["gower_reference"],
                     "exact_overlap": dist["exact_matches"] / len(fake),
                     "synthetic_mia_accuracy": mia.accuracy,
                     "synthetic_mia_ci": [mia.ci_low, mia.ci_high],
                     "dcr_share": dist["dcr_share"]})
        log(json.dumps(rows[-1]))
    return rows


def privacy_vs_epsilon(n: int, log) -> list[dict]:
    schema, train, holdout, reference = roles("census_income", n)
    rows = []
    for eps in (0.5, 1.0, 3.0, 10.0, None):
        model = DPVAESynthesizer(schema, epsilon=eps or 1.0, private=eps is not None,
                                 seed=0).fit(train)
        fake = model.sample(len(train), seed=1)
        m = ELBOAttack(seed=0).run(model, train, holdout, reference)
        s = SurrogateAttack(vae_release(model, len(train)), seed=0).run(
            schema, fake, train, holdout, reference, train_rows=len(train))
        rows.append({"epsilon": eps, "rows": len(train), "model_mia_accuracy": m.accuracy,
                     "model_mia_ci": [m.ci_low, m.ci_high],
                     "synthetic_mia_accuracy": s.accuracy,
                     "synthetic_mia_ci": [s.ci_low, s.ci_high]})
        log(json.dumps(rows[-1]))
    return rows


def audit_cost(dataset: str, log) -> dict:
    """Whole audit of one dataset (full size) over the target model's own training time."""
    snap = Warehouse(Paths.default()).pull(dataset)
    parts = split_by_unit(snap.frame, snap.schema, salt=salt_from_seed(0))
    start = time.perf_counter()
    model = DPVAESynthesizer(snap.schema, epsilon=1.0, seed=0).fit(parts["train"])
    train_seconds = time.perf_counter() - start
    fake = model.sample(int(model.metadata["train_rows"]), seed=1)
    start = time.perf_counter()
    audit = audit_release(snap.schema, model, parts["train"], parts["holdout"],
                          parts["reference"], fake)
    audit_seconds = time.perf_counter() - start
    out = {"dataset": dataset, "train_seconds": train_seconds, "audit_seconds": audit_seconds,
           "audit_cost_ratio": audit_seconds / train_seconds, "timings_s": audit["timings_s"]}
    log(json.dumps(out))
    return out


def plot(result: dict, directory: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    study = result["shuffle_study"]
    datasets = sorted({r["dataset"] for r in study})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        mine = [r for r in study if r["dataset"] == ds]
        for r in mine:
            marker = "o" if r["method"].startswith("shuffle") else "*"
            ax.scatter(r["median_gower"], r["tstr_accuracy"], marker=marker, s=60)
            ax.annotate(f"{r['method']}\nMIA {r['synthetic_mia_accuracy']:.2f}",
                        (r["median_gower"], r["tstr_accuracy"]), fontsize=7)
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
    fig, ax = plt.subplots(figsize=(5, 3.6))
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
    fig.tight_layout()
    fig.savefig(directory / "audit_privacy_vs_epsilon.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=3000, help="training rows per study")
    args = parser.parse_args(argv)
    single_thread()
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    out = RESULTS / "audit.json"
    result: dict = {}

    def save() -> None:
        out.write_text(json.dumps(result, indent=2) + "\n")

    cost = audit_cost("census_income", log)
    result.update(audit_cost_ratio=cost["audit_cost_ratio"], audit_cost=cost)
    save()
    result["calibration"] = calibration(log)
    save()
    result["shuffle_study"] = (shuffle_study("census_income", args.rows, log)
                               + shuffle_study("traffic_accidents", args.rows, log))
    save()
    result["privacy_vs_epsilon"] = privacy_vs_epsilon(args.rows, log)
    save()
    plot(result, RESULTS)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
