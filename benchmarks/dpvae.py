"""DP-VAE benchmark: DP overhead, peak memory, and utility against ε on the four tables.

Run by ``make bench`` (or ``python -m benchmarks.dpvae``); writes
``benchmarks/results/dpvae.json`` and ``benchmarks/results/dpvae_utility.png``.
Machines here are 2 noisy cores: the overhead is a ratio of per-step times measured
interleaved in one process, not an absolute time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import child_env, reported_peak_rss_mb, single_thread
from pulsesynth.paths import Paths
from pulsesynth.randomness import salt_from_seed
from pulsesynth.splits import split_by_unit
from pulsesynth.synth import DPVAESynthesizer
from pulsesynth.utility import evaluate_utility
from pulsesynth.warehouse import Warehouse

RESULTS = Path(__file__).resolve().parent / "results"
EPSILONS = [0.5, 1.0, 3.0, 10.0, None]  # None = non-DP
SEEDS = [0, 1, 2]
DATASETS = ["census_income", "traffic_accidents", "patient_tests", "taxi_trips"]


def dp_overhead(rounds: int = 9, steps: int = 10, batch: int = 4096) -> dict:
    """Seconds per optimizer step, DP (ghost clipping) vs non-DP, interleaved."""
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    from pulsesynth.encoding import TableEncoder
    from pulsesynth.synth.model import NegativeELBO, TabularVAE

    wh = Warehouse(Paths.default())
    snap = wh.pull("census_income")
    enc = TableEncoder(snap.schema)
    x = torch.from_numpy(enc.transform(snap.frame))
    d = x.shape[1]

    def make(private: bool):
        torch.manual_seed(0)
        model = TabularVAE(d, (128, 128), 16)
        crit = NegativeELBO(enc.blocks, d, 16, 0.3)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        loader = DataLoader(TensorDataset(x), batch_size=batch, shuffle=True)
        if private:
            engine = PrivacyEngine(accountant="prv")
            model, opt, crit, loader = engine.make_private(
                module=model, optimizer=opt, data_loader=loader, criterion=crit,
                noise_multiplier=1.0, max_grad_norm=1.0, grad_sample_mode="ghost",
                poisson_sampling=True)
        return model, opt, crit, loader

    def time_steps(parts) -> float:
        model, opt, crit, loader = parts
        done, start = 0, time.perf_counter()
        while done < steps:
            for (xb,) in loader:
                if len(xb) == 0:
                    continue
                opt.zero_grad()
                loss = crit(model(xb), xb)
                loss.backward()
                opt.step()
                done += 1
                if done == steps:
                    break
        return (time.perf_counter() - start) / steps

    dp, plain = make(True), make(False)
    time_steps(dp), time_steps(plain)  # warm-up
    dp_times, plain_times = [], []
    for _ in range(rounds):
        dp_times.append(time_steps(dp))
        plain_times.append(time_steps(plain))
    ratio = statistics.median(dp_times) / statistics.median(plain_times)
    return {
        "dp_overhead_ratio": ratio,
        "seconds_per_step_dp": statistics.median(dp_times),
        "seconds_per_step_non_dp": statistics.median(plain_times),
        "rows_per_second_dp": batch / statistics.median(dp_times),
        "rows_per_second_non_dp": batch / statistics.median(plain_times),
        "batch_size": batch,
    }


def peak_rss_mb() -> float:
    """Peak RSS of a child process that trains on census_income with the defaults."""
    code = (
        "from pulsesynth.warehouse import Warehouse; from pulsesynth.synth import "
        "DPVAESynthesizer; s = Warehouse().pull('census_income'); "
        "t = s.frame[s.frame.uci_split == 'train']; "
        "DPVAESynthesizer(s.schema, epsilon=1.0).fit(t).sample(len(t))\n"
        "from benchmarks import peak_rss_line\nprint(peak_rss_line())"
    )
    # The child reports its own peak: its ru_maxrss would start at this process's peak.
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env=child_env()).stdout
    return reported_peak_rss_mb(out)


def utility_rows(dataset: str, epsilons, seeds, log) -> list[dict]:
    """TSTR with histogram gradient boosting at each ε and seed, beside TRTR and majority."""
    wh = Warehouse(Paths.default())
    snap = wh.pull(dataset)
    schema, frame = snap.schema, snap.frame
    if dataset == "census_income":  # UCI's own partition: adult.data → adult.test
        train, test = frame[frame.uci_split == "train"], frame[frame.uci_split == "test"]
    else:  # a recorded, privacy-unit-grouped split
        parts = split_by_unit(frame, schema, {"train": 0.8, "holdout": 0.2},
                              salt=salt_from_seed(0))
        train, test = parts["train"], parts["holdout"]
    rows = []
    for eps in epsilons:
        for seed in seeds:
            start = time.perf_counter()
            synth = DPVAESynthesizer(schema, epsilon=eps or 1.0, private=eps is not None,
                                     seed=seed).fit(train, snapshot_id=snap.snapshot_id)
            fake = synth.sample(int(synth.metadata["train_rows"]), seed=seed)
            result = evaluate_utility(schema, train, test, fake, seed=seed,
                                      classifiers=("hist_gb",))
            # Every benchmark table declares a target, so TSTR and TRTR are always there.
            assert result["tstr"] is not None and result["trtr"] is not None
            row = {
                "dataset": dataset, "epsilon": eps,
                "epsilon_reported": synth.metadata.get("epsilon") if eps else None,
                "seed": seed,
                "tstr_accuracy": result["tstr"]["hist_gb"]["accuracy"],
                "tstr_auc": result["tstr"]["hist_gb"]["auc"],
                "trtr_accuracy": result["trtr"]["hist_gb"]["accuracy"],
                "trtr_auc": result["trtr"]["hist_gb"]["auc"],
                "majority_accuracy": result["majority_accuracy"],
                "column_shapes": result["column_shapes"]["mean"],
                "collapse_warning": synth.privacy_report["collapse_warning"],
                "seconds": round(time.perf_counter() - start, 1),
            }
            log(json.dumps(row))
            rows.append(row)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.6),
                             squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        mine = [r for r in rows if r["dataset"] == ds]
        eps = sorted({r["epsilon"] for r in mine if r["epsilon"] is not None})
        for metric, style in (("tstr_accuracy", "o-"), ("tstr_auc", "s-")):
            means = [np.mean([r[metric] for r in mine if r["epsilon"] == e]) for e in eps]
            errs = [np.std([r[metric] for r in mine if r["epsilon"] == e]) for e in eps]
            ax.errorbar(eps, means, yerr=errs, fmt=style, label=metric.replace("_", " "),
                        capsize=3)
            nodp = [r[metric] for r in mine if r["epsilon"] is None]
            if nodp:
                ax.axhline(np.mean(nodp), ls=":", color=ax.lines[-1].get_color(),
                           label=f"{metric.split('_')[1]} non-DP")
        ax.axhline(mine[0]["trtr_accuracy"], color="k", lw=0.8, label="TRTR accuracy")
        ax.axhline(mine[0]["majority_accuracy"], color="grey", ls="--", lw=0.8,
                   label="majority class")
        ax.set_xscale("log")
        ax.set(title=ds, xlabel="ε", ylabel="TSTR (hist. gradient boosting)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="*", default=DATASETS)
    parser.add_argument("--seeds", type=int, default=len(SEEDS))
    parser.add_argument("--epsilons", nargs="*", type=float,
                        help="subset of ε values (non-DP is included unless --no-non-dp)")
    parser.add_argument("--no-non-dp", action="store_true")
    parser.add_argument("--skip-speed", action="store_true",
                        help="keep the overhead and RSS figures already in the results file")
    parser.add_argument("--memory-only", action="store_true",
                        help="re-measure the peak RSS alone; keep the overhead figures")
    parser.add_argument("--quick", action="store_true", help="ε=1 only, one seed")
    args = parser.parse_args(argv)
    single_thread()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "dpvae.json"
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    previous = json.loads(out.read_text()) if out.exists() else {}
    if args.skip_speed and "overhead" in previous:
        overhead, rss = previous["overhead"], previous["peak_rss_mb"]
    elif args.memory_only and "overhead" in previous:
        log("measuring peak RSS of a census_income training run...")
        overhead, rss = previous["overhead"], peak_rss_mb()
    else:
        log("measuring DP overhead (interleaved)...")
        overhead = dp_overhead()
        log(json.dumps(overhead))
        log("measuring peak RSS of a census_income training run...")
        rss = peak_rss_mb()
    epsilons = [1.0] if args.quick else (args.epsilons or [e for e in EPSILONS if e])
    if not (args.quick or args.no_non_dp):
        epsilons = [*epsilons, None]
    seeds = SEEDS[:1] if args.quick else list(range(args.seeds))

    def write(rows: list[dict]) -> None:
        # Merge: re-measured (dataset, ε, seed) rows replace older ones; others are kept.
        current = json.loads(out.read_text()).get("utility", []) if out.exists() else []
        fresh = {(r["dataset"], r["epsilon"], r["seed"]) for r in rows}
        merged = [r for r in current if (r["dataset"], r["epsilon"], r["seed"]) not in fresh]
        result = {"dp_overhead_ratio": overhead["dp_overhead_ratio"], "peak_rss_mb": rss,
                  "overhead": overhead, "utility": merged + rows}
        out.write_text(json.dumps(result, indent=2) + "\n")  # keep partial results

    write([])  # the speed figures alone (``--datasets`` with no names re-measures just them)
    for dataset in args.datasets:
        write(utility_rows(dataset, epsilons, seeds, log))
    utility = json.loads(out.read_text())["utility"]
    if utility:
        plot(utility, RESULTS / "dpvae_utility.png")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
