"""Seed 000's Figure 3 reproduced, and its privacy–utility curves over training length
(Figures 6.2–6.4).

Three release mechanisms, each trained non-privately and with DP-SGD at ε = 1:

- ``classifier``: the target classifier itself (utility: its accuracy on unseen real rows;
  attack: shadow classifiers on the predicted probability vector),
- ``model``: the DP-VAE (utility: accuracy on unseen real rows of a classifier trained on
  3·n rows sampled from it, since a model holder samples as much as they like; attack:
  the ELBO shadow attack),
- ``synthetic``: one synthetic table of n rows from the same VAE (utility: the same
  classifier trained on that table; attack: the surrogate attack, which sees only the table).

Privacy = 2 × (1 − attack accuracy), capped to [0, 1] (seed 000: 50% accuracy → 100%).
The classifier used for utility is the same feed-forward network as mechanism 1, trained
without DP on synthetic rows (they belong to nobody).

"Non-private" means what the paper's attacks exploit: the network trained long with small
batches (classifier: the paper's [400, 400] network, 300 epochs at batch 64; VAE: 300 epochs
at batch 64 — the synthesizer's default expected batch, n/4 on slices this small, is four
steps an epoch, and the VAE never memorises). The curves vary the training length for
both. Slices keep the run to minutes on 2 cores; sizes are recorded.

Run by ``make bench`` (or ``python -m benchmarks.figure3``); writes
``benchmarks/results/figure3.json`` and ``figure3_*.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks import single_thread
from benchmarks.audit import random_target_scores
from pulsesynth.audit.attacks.base import AttackData, vae_release
from pulsesynth.audit.attacks.classifier_mia import ShadowClassifierAttack
from pulsesynth.audit.attacks.membership import ELBOAttack, SurrogateAttack
from pulsesynth.audit.metrics import AttackResult
from pulsesynth.classifier import DPClassifier
from pulsesynth.paths import Paths
from pulsesynth.randomness import salt_from_seed
from pulsesynth.splits import split_by_unit
from pulsesynth.synth import DPVAESynthesizer
from pulsesynth.warehouse import Warehouse

RESULTS = Path(__file__).resolve().parent / "results"
EPSILON = 1.0
#: Seed 000, Figure 3 (Traffic Accidents): (privacy, utility) per mechanism and training.
PAPER = {
    ("traffic_accidents", "classifier", False): (0.52, 0.71),
    ("traffic_accidents", "classifier", True): (1.00, 0.74),
    ("traffic_accidents", "model", False): (0.50, 0.72),
    ("traffic_accidents", "model", True): (0.98, 0.67),
    ("traffic_accidents", "synthetic", False): (0.90, 0.72),
    ("traffic_accidents", "synthetic", True): (1.00, 0.67),
}
NON_PRIVATE_CLASSIFIER = {"epochs": 300, "batch_size": 64, "lr": 1e-3, "hidden": (400, 400)}
NON_PRIVATE_VAE = {"epochs": 300, "batch_size": 64}


def roles(dataset: str, n: int, seed: int = 0):
    """Seeded random slices: n train, n holdout, 2n reference rows (unit-grouped split)."""
    snap = Warehouse(Paths.default()).pull(dataset)
    parts = split_by_unit(snap.frame, snap.schema, salt=salt_from_seed(seed))

    def take(part, k):
        return part.sample(min(k, len(part)), random_state=seed)

    return (snap.schema, take(parts["train"], n), take(parts["holdout"], n),
            take(parts["reference"], 2 * n))


def utility_of(schema, rows, holdout, seed: int = 0) -> float:
    """Accuracy on unseen real rows of the mechanism-1 network trained (non-DP) on ``rows``."""
    free = replace(schema, privacy_unit=())  # synthetic rows belong to nobody
    clf = DPClassifier(free, private=False, seed=seed).fit(rows)
    return clf.evaluate(holdout)["accuracy"]


def cell(dataset: str, mechanism: str, private: bool, result: AttackResult,
         utility: float, **extra: Any) -> dict[str, Any]:
    paper = PAPER.get((dataset, mechanism, private), (None, None))
    return {"dataset": dataset, "mechanism": mechanism, "private": private,
            "attack_accuracy": round(result.accuracy, 4), "ci_low": round(result.ci_low, 4),
            "ci_high": round(result.ci_high, 4), "privacy": round(result.privacy, 4),
            "utility": round(float(utility), 4), "paper_privacy": paper[0],
            "paper_utility": paper[1]} | extra


def classifier_point(schema, train, holdout, reference, private: bool,
                     **recipe: Any) -> tuple[AttackResult, float, float]:
    t0 = time.perf_counter()
    clf = DPClassifier(schema, epsilon=EPSILON if private else None, private=private,
                       seed=1, **recipe).fit(train)
    attack = ShadowClassifierAttack(n_shadows=1, seed=0).run(clf, train, holdout, reference)
    return attack, clf.evaluate(holdout)["accuracy"], time.perf_counter() - t0


#: The audit's newer attacks (issue #20) scored beside seed 000's, per mechanism.
NEWER_ATTACKS = {"model": ("model_lira",), "synthetic": ("query_shadow", "domias")}


def vae_points(schema, train, holdout, reference, private: bool, newer: bool = False,
               **recipe: Any
               ) -> tuple[tuple[AttackResult, float], tuple[AttackResult, float], float,
                          dict[str, dict[str, Any]]]:
    """(model attack, model utility), (synthetic attack, synthetic utility), seconds, and
    with ``newer`` the newer attacks' scores per mechanism (random targets)."""
    t0 = time.perf_counter()
    vae = DPVAESynthesizer(schema, epsilon=EPSILON if private else None, private=private,
                           seed=1, **recipe).fit(train)
    n = len(train)
    synthetic = vae.sample(n, seed=1)
    data = AttackData(schema=schema, synthetic=synthetic, reference=reference,
                      mechanism=vae_release(vae, n), model=vae, train_rows=n,
                      real_reference=reference)
    model_attack = ELBOAttack(seed=0).run(data, train, holdout)
    model_utility = utility_of(schema, vae.sample(3 * n, seed=7), holdout)
    synth_attack = SurrogateAttack(seed=0).run(data, train, holdout)
    synth_utility = utility_of(schema, synthetic, holdout)
    seconds = time.perf_counter() - t0
    scores = ({mech: random_target_scores(data, names, train, holdout)
               for mech, names in NEWER_ATTACKS.items()} if newer else {})
    return (model_attack, model_utility), (synth_attack, synth_utility), seconds, scores


def table(dataset: str, n: int, log) -> list[dict[str, Any]]:
    schema, train, holdout, reference = roles(dataset, n)
    rows = []
    for private in (False, True):
        recipe = {} if private else NON_PRIVATE_CLASSIFIER
        attack, utility, secs = classifier_point(schema, train, holdout, reference, private,
                                                 **recipe)
        rows.append(cell(dataset, "classifier", private, attack, utility,
                         train_rows=n, seconds=round(secs, 1)))
        log(rows[-1])
        (m_att, m_util), (s_att, s_util), secs, newer = vae_points(
            schema, train, holdout, reference, private, newer=True,
            **({} if private else NON_PRIVATE_VAE))
        for mech, att, util in (("model", m_att, m_util), ("synthetic", s_att, s_util)):
            rows.append(cell(dataset, mech, private, att, util, train_rows=n,
                             seconds=round(secs, 1), newer_attacks=newer[mech]))
            log(rows[-1])
    return rows


def curves(dataset: str, n: int, clf_epochs: list[int], vae_epochs: list[int],
           log) -> list[dict[str, Any]]:
    schema, train, holdout, reference = roles(dataset, n)
    out = []
    for private in (False, True):
        base = {} if private else {k: v for k, v in NON_PRIVATE_CLASSIFIER.items()
                                   if k != "epochs"}
        for epochs in clf_epochs:
            attack, utility, _ = classifier_point(schema, train, holdout, reference, private,
                                                  epochs=epochs, **base)
            out.append(cell(dataset, "classifier", private, attack, utility, epochs=epochs))
            log(out[-1])
        vae_base = {} if private else {"batch_size": NON_PRIVATE_VAE["batch_size"]}
        for epochs in vae_epochs:
            (m_att, m_util), (s_att, s_util), _, _ = vae_points(
                schema, train, holdout, reference, private, False, epochs=epochs, **vae_base)
            for mech, att, util in (("model", m_att, m_util), ("synthetic", s_att, s_util)):
                out.append(cell(dataset, mech, private, att, util, epochs=epochs))
                log(out[-1])
    return out


def ten_x_check(curve: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per mechanism: the DP point of best utility, and the attack at ≥ 10× its epochs."""
    checks = []
    for mech in ("classifier", "model", "synthetic"):
        dp = sorted((c for c in curve if c["mechanism"] == mech and c["private"]),
                    key=lambda c: c["epochs"])
        if not dp:
            continue
        best = max(dp, key=lambda c: c["utility"])
        far = [c for c in dp if c["epochs"] >= 10 * best["epochs"]]
        checks.append({"mechanism": mech, "best_utility_epochs": best["epochs"],
                       "best_utility": best["utility"],
                       "at_10x": [{"epochs": c["epochs"], "attack_accuracy": c["attack_accuracy"],
                                   "ci_low": c["ci_low"], "ci_high": c["ci_high"]}
                                  for c in far]})
    return checks


def plot(result: dict[str, Any], directory: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    marks = {"classifier": "o", "model": "s", "synthetic": "^"}
    panels = sorted({(r["dataset"], r["train_rows"]) for r in result["table"]},
                    key=lambda p: (p[0], -p[1]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    for ax, (ds, rows) in zip(axes[0], panels, strict=True):
        for r in (r for r in result["table"] if (r["dataset"], r["train_rows"]) == (ds, rows)):
            color = "tab:green" if r["private"] else "tab:red"
            ax.scatter(r["utility"], r["privacy"], marker=marks[r["mechanism"]], color=color,
                       s=70, label=f"{r['mechanism']} {'DP' if r['private'] else 'non-DP'}")
            if r["paper_privacy"] is not None:
                ax.scatter(r["paper_utility"], r["paper_privacy"], marker=marks[r["mechanism"]],
                           facecolors="none", edgecolors=color, s=70)
                ax.plot([r["utility"], r["paper_utility"]], [r["privacy"], r["paper_privacy"]],
                        color=color, lw=0.6, ls=":")
        ax.set(title=f"{ds}, {rows} train rows\n(filled: measured, hollow: seed 000)",
               xlabel="utility (accuracy)",
               ylabel="privacy = 2(1 − attack accuracy)", ylim=(-0.05, 1.05))
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(directory / "figure3_table.png", dpi=110)
    plt.close(fig)

    curve = result["curves"]
    if not curve:
        return
    fig, axes = plt.subplots(2, 3, figsize=(14, 7), sharex="col")
    for j, mech in enumerate(("classifier", "model", "synthetic")):
        for private, color in ((False, "tab:red"), (True, "tab:green")):
            pts = sorted((c for c in curve if c["mechanism"] == mech and c["private"] == private),
                         key=lambda c: c["epochs"])
            if not pts:
                continue
            x = [p["epochs"] for p in pts]
            label = "DP ε=1" if private else "non-DP"
            axes[0, j].errorbar(x, [p["attack_accuracy"] for p in pts],
                                yerr=[[p["attack_accuracy"] - p["ci_low"] for p in pts],
                                      [p["ci_high"] - p["attack_accuracy"] for p in pts]],
                                marker="o", color=color, label=label, capsize=3)
            axes[1, j].plot(x, [p["utility"] for p in pts], marker="o", color=color, label=label)
        axes[0, j].axhline(0.5, color="grey", lw=0.8, ls="--")
        axes[0, j].set(title=f"{mech}: attack accuracy", xscale="log")
        axes[1, j].set(title=f"{mech}: utility", xlabel="training epochs", xscale="log")
        axes[0, j].legend(fontsize=8)
    fig.suptitle(f"Privacy and utility over training length ({curve[0]['dataset']})")
    fig.tight_layout()
    fig.savefig(directory / "figure3_curves.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[4000, 1000],
                        help="train rows per table cell (one table per size)")
    parser.add_argument("--curve-rows", type=int, default=2000)
    parser.add_argument("--datasets", nargs="+", default=["traffic_accidents", "census_income"])
    parser.add_argument("--classifier-epochs", type=int, nargs="+", default=[3, 10, 30, 100, 300])
    parser.add_argument("--vae-epochs", type=int, nargs="+", default=[5, 20, 60, 200, 600])
    parser.add_argument("--no-curves", action="store_true")
    parser.add_argument("--append", action="store_true",
                        help="add these table rows to the existing results (keeps its curves)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    threads = single_thread()
    args.out.mkdir(parents=True, exist_ok=True)

    def log(row: dict[str, Any]) -> None:
        print(json.dumps(row), file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    result: dict[str, Any] = {"setup": {"epsilon": EPSILON, "rows": list(args.rows),
                                        "curve_rows": args.curve_rows, "threads": threads,
                                        "non_private_classifier": NON_PRIVATE_CLASSIFIER,
                                        "non_private_vae": NON_PRIVATE_VAE,
                                        "privacy": "2 x (1 - attack accuracy), capped to [0, 1]"},
                              "table": [], "curves": []}
    if args.append and (args.out / "figure3.json").is_file():
        old = json.loads((args.out / "figure3.json").read_text(encoding="utf-8"))
        recipes = ("non_private_classifier", "non_private_vae")
        if any(json.loads(json.dumps(result["setup"][k])) != old["setup"].get(k)
               for k in recipes):
            parser.error("--append: the existing results used other non-private recipes; "
                         "rerun the whole benchmark")
        result["table"], result["curves"] = old["table"], old["curves"]
        result["ten_x_check"] = old.get("ten_x_check")
        result["setup"]["rows"] = sorted({*old["setup"]["rows"], *args.rows}, reverse=True)
        args.no_curves = True
    for rows in args.rows:
        for ds in args.datasets:
            result["table"] += table(ds, rows, log)
    if not args.no_curves:
        result["curves"] = curves(args.datasets[0], args.curve_rows, args.classifier_epochs,
                                  args.vae_epochs, log)
        result["ten_x_check"] = ten_x_check(result["curves"])
    result["seconds"] = round(time.perf_counter() - t0, 1)
    (args.out / "figure3.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    plot(result, args.out)
    print(f"wrote {args.out / 'figure3.json'} in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
