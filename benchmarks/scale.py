"""Scale benchmark: seconds and peak RSS of each pipeline stage at 10k, 100k and 1M rows.

Run by ``make bench`` (``python -m benchmarks.scale [--rows 10000,100000,1000000]
[--epochs N] [--stages validate,train,sample,evaluate,audit,audit_full]``); writes
``benchmarks/results/scale.json`` and ``benchmarks/results/scale.png``.

The table is census_income from the embedded warehouse (UCI Adult, public), resampled with
replacement: the training table of N rows is drawn from UCI's ``adult.data`` rows and a
holdout of N/4 rows from ``adult.test`` rows (independent uniform draws, seeded by N), and
every drawn row gets a fresh unit id (``record_id`` = 1..N for the training rows,
N+1..N+N/4 for the holdout), so each row is its own privacy unit and the unit cap
(1 row per unit) keeps all N rows.

Each stage runs in its own child process (``--child STAGE``) on Parquet files the parent
wrote, so its peak RSS is its own: the child reports its ``VmHWM``
(:func:`benchmarks.own_peak_rss_mb`; not ``ru_maxrss``, which Linux carries over from the
parent that started it, so every child would report at least the parent's peak), with
the wall and CPU seconds of the stage's work alone (its inputs already read; on a shared
machine the CPU seconds are the figure to compare). Stages:

- ``validate``: Great Expectations over the training frame (:func:`validation.validate`);
- ``train``: the DP-VAE at the recipe defaults, ε = 1, schedule planned from N;
- ``sample``: N synthetic rows from the saved model;
- ``evaluate``: :func:`utility.evaluate_utility` as the pipeline calls it (logistic
  regression, random forest, histogram gradient boosting; the forest, 100 trees on one
  thread, is left out above ``--forest-max-rows``, 100k);
- ``audit``: the distance report (Gower nearest-record search, DCR share, exact matches).
  Each nearest-record search takes at most ``MAX_QUERY_ROWS`` (20,000) query rows against
  its full reference, so the work is linear in N; above ``--distance-max-rows`` (100k) it
  times the search of a slice of queries against the full reference and projects the
  full report from the measured seconds per pair (``projected``: true) — the exact-match
  work is always run in full;
- ``audit_full``: the whole attack audit (:func:`audit_release`: shadow models, every
  attack, distances) only up to ``--full-audit-max-rows`` (10k by default).

For the largest sizes pass a smaller ``--epochs`` (results merge by size into the same
file): the train row then gains the projection to the default epochs (``projected``:
true, ``projected_seconds`` = fixed cost + seconds per epoch × default epochs). One thread
(``PULSESYNTH_BENCH_THREADS``, default 1) in the parent and every child.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import child_env, own_peak_rss_mb, reported_peak_rss_mb, single_thread

RESULTS = Path(__file__).resolve().parent / "results"
DATASET = "census_income"
SIZES = (10_000, 100_000, 1_000_000)
STAGES = ("validate", "train", "sample", "evaluate", "audit", "audit_full")
DEFAULT_STAGES = STAGES
EPSILON = 1.0
#: Holdout rows per training row (drawn from UCI's test partition).
HOLDOUT_FRACTION = 0.25
#: Query rows timed against the full reference when the distance report is projected.
DISTANCE_PROBE_ROWS = 2000


# --- data ----------------------------------------------------------------------------------

def resample(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training table of ``rows`` rows, holdout of ``rows/4``) drawn with replacement from
    census_income's UCI train and test partitions, with fresh unique ``record_id`` values."""
    from pulsesynth.paths import Paths
    from pulsesynth.warehouse import Warehouse

    frame = Warehouse(Paths.default()).pull(DATASET).frame
    rng = np.random.default_rng([seed, rows])
    parts = []
    start = 1
    for split, n in (("train", rows), ("test", max(1, int(rows * HOLDOUT_FRACTION)))):
        pool = frame[frame["uci_split"] == split]
        drawn = pool.iloc[rng.integers(0, len(pool), size=n)].reset_index(drop=True)
        # Fresh unit ids: every drawn copy is a person of its own (ids stay in the
        # declared bounds [1, 10,000,000] up to 8M training rows).
        drawn["record_id"] = pd.array(np.arange(start, start + n), dtype=frame["record_id"].dtype)
        start += n
        parts.append(drawn)
    return parts[0], parts[1]


def _schema():
    from pulsesynth.warehouse import Warehouse

    return Warehouse().pull(DATASET).schema


# --- stages (each in its own child process) -------------------------------------------------

class _Clock:
    """Wall and CPU seconds since creation: on a shared machine the CPU seconds of a
    one-thread stage are the figure that does not depend on what else runs."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> dict[str, float]:
        return {"seconds": time.perf_counter() - self.wall,
                "cpu_seconds": time.process_time() - self.cpu}


def _stage_validate(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from pulsesynth.validation import validate

    schema, train = _schema(), pd.read_parquet(work / "train.parquet")
    clock = _Clock()
    report = validate(train, schema)
    return {**clock.read(), "success": report.success,
            "expectations": report.evaluated}


def _stage_train(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from pulsesynth.synth import DPVAESynthesizer

    schema, train = _schema(), pd.read_parquet(work / "train.parquet")
    clock = _Clock()
    synth = DPVAESynthesizer(schema, epsilon=EPSILON, epochs=args.epochs, seed=0).fit(
        train, public_rows=len(train))
    timed = clock.read()
    synth.save(work / "model")
    m = synth.metadata
    loop = float(m["training_report"]["train_seconds"])
    return {**timed, "epochs": args.epochs, "loop_seconds": loop,
            "steps": m["steps"], "sample_rate": m["sample_rate"],
            "expected_batch": m["batch_size"], "noise_multiplier": m["noise_multiplier"],
            "epsilon": m["epsilon"], "target_epsilon": m["target_epsilon"],
            "delta": m["delta"], "seconds_per_step": loop / max(1, m["steps"])}


def _stage_sample(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from pulsesynth.synth import DPVAESynthesizer

    schema = _schema()
    rows = len(pd.read_parquet(work / "train.parquet", columns=["record_id"]))
    synth = DPVAESynthesizer.load(work / "model", schema)
    clock = _Clock()
    table = synth.sample(rows, seed=1)
    timed = clock.read()
    table.to_parquet(work / "synthetic.parquet")
    return {**timed, "sampled_rows": len(table)}


def _stage_evaluate(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from pulsesynth.utility import evaluate_utility

    schema = _schema()
    train, holdout, synthetic = (pd.read_parquet(work / f"{n}.parquet")
                                 for n in ("train", "holdout", "synthetic"))
    # The pipeline's three classifiers; above --forest-max-rows the random forest (100
    # full-depth trees, one thread) is left out, and the row says so.
    classifiers: tuple[str, ...] = ("logreg", "random_forest", "hist_gb")
    if len(train) > args.forest_max_rows:
        classifiers = ("logreg", "hist_gb")
    clock = _Clock()
    result = evaluate_utility(schema, train, holdout, synthetic, seed=0,
                              classifiers=classifiers)
    assert result["tstr"] is not None and result["trtr"] is not None  # census has a target
    return {**clock.read(), "classifiers": list(classifiers),
            "tstr_accuracy_hist_gb": result["tstr"]["hist_gb"]["accuracy"],
            "tstr_auc_hist_gb": result["tstr"]["hist_gb"]["auc"],
            "trtr_auc_hist_gb": result["trtr"]["hist_gb"]["auc"]}


def _stage_audit(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from pulsesynth.audit.distances import (
        GowerSpace,
        distance_report,
        exact_matches,
        nearest_distance,
        unique_matches,
    )

    schema = _schema()
    train, holdout, synthetic = (pd.read_parquet(work / f"{n}.parquet")
                                 for n in ("train", "holdout", "synthetic"))
    n, h, s = len(train), len(holdout), len(synthetic)
    pairs = _distance_pairs(n, h, s)
    # The nearest-record search costs the same per (query, reference) pair whatever the
    # query, so a slice of queries against the *full* reference gives the seconds per pair
    # at this reference size. Above --distance-max-rows the report is projected from it
    # (the exact-match work still runs in full); at or below, the full report runs too, so
    # the JSON shows how close the projection came.
    space = GowerSpace(schema)
    clock = _Clock()
    enc_syn = space.encode(synthetic)
    encode = clock.read()
    probe = space.encode(train.iloc[:DISTANCE_PROBE_ROWS])
    clock = _Clock()
    nearest_distance(probe, enc_syn)
    search = clock.read()
    del enc_syn
    clock = _Clock()
    size = min(n, h)
    exact_matches(space, train, synthetic)
    unique_matches(space, [train.iloc[:size], holdout.iloc[:size]], synthetic)
    exact = clock.read()
    probed = len(probe) * s
    projection = {
        "seconds_per_pair": search["seconds"] / probed,
        "cpu_seconds_per_pair": search["cpu_seconds"] / probed,
        "distance_pairs": pairs, "probe_rows": len(probe),
        "exact_match_seconds": exact["seconds"], "exact_match_cpu_seconds": exact["cpu_seconds"],
        **{f"projected_from_probe_{k}": search[k] / probed * pairs + 4 * encode[k] + exact[k]
           for k in ("seconds", "cpu_seconds")}}
    if n > args.distance_max_rows:
        return {"seconds": projection["projected_from_probe_seconds"],
                "cpu_seconds": projection["projected_from_probe_cpu_seconds"],
                "projected": True, **projection}
    clock = _Clock()
    report = distance_report(schema, train, holdout, synthetic, seed=0)
    return {**clock.read(), "projected": False,
            "dcr_share": report["dcr_share"], "exact_matches": report["exact_matches"],
            **projection}


def _distance_pairs(n: int, h: int, s: int) -> int:
    """(query, reference) pairs :func:`distance_report` compares: train→synthetic,
    half→half of train, synthetic→train sample and synthetic→holdout sample, each search
    with at most ``MAX_QUERY_ROWS`` query rows (the report's cap)."""
    from pulsesynth.audit.distances import MAX_QUERY_ROWS as q

    size = min(n, h)
    return min(n, q) * s + min(n // 2, q) * (n // 2) + 2 * min(s, q) * size


def _stage_audit_full(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from pulsesynth.audit.report import audit_release
    from pulsesynth.splits import with_fresh_units
    from pulsesynth.synth import DPVAESynthesizer

    schema = _schema()
    train, holdout, synthetic = (pd.read_parquet(work / f"{n}.parquet")
                                 for n in ("train", "holdout", "synthetic"))
    model = DPVAESynthesizer.load(work / "model", schema)
    clock = _Clock()
    # The auditor's pool as the pipeline draws it (pipeline.auditor_pool): 2 × the rows.
    pool = with_fresh_units(model.sample(max(1000, 2 * len(train)), seed=2), schema)
    result = audit_release(schema, model, train, holdout, pool, synthetic, seed=0)
    return {**clock.read(), "timings_s": result["timings_s"]}


CHILDREN = {"validate": _stage_validate, "train": _stage_train, "sample": _stage_sample,
            "evaluate": _stage_evaluate, "audit": _stage_audit,
            "audit_full": _stage_audit_full}


def run_child(stage: str, work: Path, args: argparse.Namespace) -> int:
    """Child side: one stage, its result as the last line of stdout (JSON)."""
    from pulsesynth.threads import compute_threads

    single_thread()
    with compute_threads():  # as the pipeline runs its steps (PULSESYNTH_THREADS)
        result = CHILDREN[stage](work, args)
    result["peak_rss_mb"] = round(own_peak_rss_mb(), 1)  # this child alone
    print(json.dumps(result, default=float), flush=True)
    return 0


def run_stage(stage: str, work: Path, args: argparse.Namespace, log) -> dict[str, Any]:
    """Parent side: run ``stage`` in a fresh child; its seconds, peak RSS and extras."""
    cmd = [sys.executable, "-m", "benchmarks.scale", "--child", stage, "--work", str(work),
           "--epochs", str(args.epochs), "--distance-max-rows", str(args.distance_max_rows),
           "--forest-max-rows", str(args.forest_max_rows)]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, env=_child_env())
        # wait4: this child's own CPU time (RUSAGE_CHILDREN sums every child). Its
        # ru_maxrss is not its own (it starts at this parent's peak): the child reports
        # its peak RSS itself (benchmarks.own_peak_rss_mb).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        lines = out.read().strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"stage {stage} failed with exit code {proc.returncode}")
    result = json.loads(lines[-1])
    result["process_seconds"] = round(time.perf_counter() - t0, 2)
    result["process_cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 2)
    return result


def _child_env() -> dict[str, str]:
    env = child_env()  # the child runs ``-m benchmarks.scale`` from wherever we started
    threads = os.environ.get("PULSESYNTH_BENCH_THREADS", "1")
    env.update(PULSESYNTH_THREADS=threads, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
               OPENBLAS_NUM_THREADS=threads,
               # joblib's n_jobs=-1 (the random forest) counts this, not the CPUs.
               LOKY_MAX_CPU_COUNT=threads)
    return env


def baseline_rss_mb() -> float:
    """Peak RSS of a child that only imports what the stages import (the floor under every
    stage's figure)."""
    code = ("import pulsesynth.synth, pulsesynth.utility, pulsesynth.validation, "
            "pulsesynth.audit.report, pandas, torch\n"
            "from benchmarks import peak_rss_line\nprint(peak_rss_line())")
    out = subprocess.run([sys.executable, "-c", code], env=_child_env(), check=True,
                         capture_output=True, text=True).stdout
    return round(reported_peak_rss_mb(out), 1)


# --- accounting without training --------------------------------------------------------------

def planned_releasability(rows: int, epochs: int | None = None) -> dict[str, Any]:
    """The schedule, noise and planned ε of a default fit on ``rows`` rows (DP marginals
    composed first, as :class:`DPVAESynthesizer` does) — no training."""
    from pulsesynth.dp import Schedule, gaussian_noise_for, noise_for_schedule, planned_epsilon
    from pulsesynth.synth import marginals as dp_marginals
    from pulsesynth.synth.train import TrainConfig, default_delta

    config = TrainConfig() if epochs is None else TrainConfig(epochs=epochs)
    delta = default_delta()
    prior = [(gaussian_noise_for(dp_marginals.MARGINAL_SHARE * EPSILON, delta,
                                 config.accountant), 1.0, 1)]
    schedule = Schedule.plan(rows, config)
    noise = noise_for_schedule(EPSILON, delta, schedule, config.accountant, prior)
    eps = planned_epsilon(noise, schedule, delta, config.accountant, prior)
    return {"rows": rows, "epochs": config.epochs, "sample_rate": schedule.sample_rate,
            "expected_batch": schedule.expected_batch, "steps": schedule.steps,
            "batches_per_epoch": 1 / schedule.sample_rate, "noise_multiplier": noise,
            "planned_epsilon": eps, "target_epsilon": EPSILON, "delta": delta,
            "releasable": eps <= EPSILON * (1 + 1e-9)}


# --- results ------------------------------------------------------------------------------------

def _project_training(result: dict[str, Any], default_epochs: int) -> None:
    """Add the projection of a short training run to the default epochs (marked)."""
    if result["epochs"] >= default_epochs:
        return
    fixed = result["seconds"] - result["loop_seconds"]
    per_epoch = result["loop_seconds"] / result["epochs"]
    projected = fixed + per_epoch * default_epochs
    result.update(projected=True, seconds_per_epoch=per_epoch,
                  projected_epochs=default_epochs, projected_seconds=projected,
                  # CPU scaled like wall (the loop is one thread, as is the rest).
                  projected_cpu_seconds=result["cpu_seconds"] * projected / result["seconds"])


def merge(previous: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of ``new`` replace those of ``previous`` with the same (rows, stage)."""
    keys = {(r["rows"], r["stage"]) for r in new}
    kept = [r for r in previous if (r["rows"], r["stage"]) not in keys]
    return sorted(kept + new, key=lambda r: (r["rows"], STAGES.index(r["stage"])))


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Log–log: seconds vs rows per stage (projected points hollow), and peak RSS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, stage in enumerate(STAGES):
        mine = sorted((r for r in rows if r["stage"] == stage), key=lambda r: r["rows"])
        if not mine:
            continue
        color = f"C{i}"
        xs = [r["rows"] for r in mine]
        secs = [_cpu(r) for r in mine]
        ax_t.plot(xs, secs, "-", color=color, label=stage)
        for r, s in zip(mine, secs, strict=True):
            hollow = r.get("projected", False)
            ax_t.plot(r["rows"], s, "o", color=color, mfc="white" if hollow else color)
        ax_m.plot(xs, [r["peak_rss_mb"] for r in mine], "o-", color=color, label=stage)
    sizes = sorted({r["rows"] for r in rows})
    if len(sizes) > 1:
        base = min(_cpu(r) for r in rows if r["rows"] == sizes[0])
        ax_t.plot(sizes, [base * s / sizes[0] for s in sizes], "k:", lw=0.8,
                  label="linear (slope 1)")
    for ax, label in ((ax_t, "CPU seconds of the stage (hollow: projected)"),
                      (ax_m, "peak RSS (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows (census_income resampled)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", lw=0.3)
    ax_t.set_title("Time per stage, one thread")
    ax_m.set_title("Peak RSS per stage (own process)")
    ax_t.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cpu(row: dict[str, Any]) -> float:
    """The CPU seconds of a row (projected where it is), wall seconds where not recorded."""
    if "projected_cpu_seconds" in row:
        return float(row["projected_cpu_seconds"])
    if "projected_seconds" in row:
        return float(row["projected_seconds"])
    return float(row.get("cpu_seconds", row["seconds"]))


def _sizes(text: str) -> list[int]:
    return [int(float(v)) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    from pulsesynth.synth.train import TrainConfig

    default_epochs = TrainConfig().epochs
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=_sizes, default=list(SIZES),
                        help="comma-separated table sizes (default 10000,100000,1000000)")
    parser.add_argument("--epochs", type=int, default=default_epochs,
                        help=f"training epochs (default {default_epochs}; fewer: projected)")
    parser.add_argument("--stages", type=lambda s: [x for x in s.split(",") if x],
                        default=list(DEFAULT_STAGES), help=f"subset of {','.join(STAGES)}")
    parser.add_argument("--distance-max-rows", type=int, default=100_000,
                        help="above this the distance report is projected from a probe")
    parser.add_argument("--forest-max-rows", type=int, default=100_000,
                        help="above this, evaluate leaves the random forest out")
    parser.add_argument("--full-audit-max-rows", type=int, default=10_000,
                        help="run the full attack audit (shadows) only up to this size")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    parser.add_argument("--plot", type=Path, default=None, help="default: beside --out")
    parser.add_argument("--merge-from", nargs="+", type=Path, default=None,
                        help="run nothing: merge these results files into --out and plot")
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args.child, args.work, args)
    unknown = [s for s in args.stages if s not in STAGES]
    if unknown or args.epochs < 1 or any(n < 100 for n in args.rows):
        parser.error("stages must be among " + ",".join(STAGES)
                     + "; epochs >= 1; rows >= 100")
    threads = single_thread()
    if args.merge_from:
        return merge_files(args, threads)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    previous: dict[str, Any] = (json.loads(args.out.read_text(encoding="utf-8"))
                                if args.out.exists() else {})
    new: list[dict[str, Any]] = []
    planned = {p["rows"]: p for p in previous.get("planned_accounting", [])}
    baseline = baseline_rss_mb()
    log(f"baseline (imports only) peak RSS {baseline} MB")
    for rows in args.rows:
        planned[rows] = planned_releasability(rows)
        log(json.dumps(planned[rows]))
        with tempfile.TemporaryDirectory(prefix="pulsesynth-scale-") as tmp:
            work = Path(tmp)
            train, holdout = resample(rows)
            train.to_parquet(work / "train.parquet")
            holdout.to_parquet(work / "holdout.parquet")
            del train, holdout
            for stage in [s for s in STAGES if s in args.stages]:
                if stage == "audit_full" and rows > args.full_audit_max_rows:
                    log(f"{rows} rows: audit_full skipped (above --full-audit-max-rows)")
                    continue
                log(f"{rows} rows: {stage} ...")
                result = run_stage(stage, work, args, log)
                row = {"rows": rows, "stage": stage, **result}
                if stage == "train":
                    _project_training(row, default_epochs)
                row["seconds"] = round(row["seconds"], 3)
                log(json.dumps(row))
                new.append(row)
                _write(args, merge(previous.get("rows", []), new), planned,
                       baseline, threads)
    data = _write(args, merge(previous.get("rows", []), new), planned, baseline,
                  threads)
    plot(data["rows"], args.plot or args.out.with_suffix(".png"))
    return 0


def merge_files(args: argparse.Namespace, threads: int) -> int:
    """Merge the rows and planned accounting of ``--merge-from`` files (sizes run apart,
    e.g. at fewer epochs) into ``--out``, later files winning, and re-plot."""
    previous = (json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists()
                else {})
    rows, planned = previous.get("rows", []), {p["rows"]: p for p in
                                               previous.get("planned_accounting", [])}
    baseline = previous.get("baseline_rss_mb")
    for path in args.merge_from:
        other = json.loads(path.read_text(encoding="utf-8"))
        rows = merge(rows, other["rows"])
        planned.update({p["rows"]: p for p in other.get("planned_accounting", [])})
        baseline = other.get("baseline_rss_mb", baseline)
    data = _write(args, rows, planned, float(baseline or 0.0), threads)
    plot(data["rows"], args.plot or args.out.with_suffix(".png"))
    return 0


METHOD = (
    "census_income (UCI Adult, embedded warehouse) resampled with replacement, seeded by "
    "the size: N training rows drawn uniformly from UCI's adult.data rows and N/4 holdout "
    "rows from adult.test rows; every drawn row gets a fresh unique record_id (its own "
    "privacy unit: 1..N train, N+1..N+N/4 holdout). Each stage runs in its own child "
    "process; seconds = the stage's work in that process (inputs already read from "
    "Parquet), peak_rss_mb = the child's own VmHWM, MiB (includes the imports: see "
    "baseline_rss_mb; not its ru_maxrss, which starts at the parent's peak). "
    "validate = GX on the training frame; train = "
    "DPVAESynthesizer at the recipe defaults, epsilon 1, schedule planned from N "
    "(projected rows: fewer epochs, seconds_per_epoch x default epochs + fixed cost); "
    "sample = N rows; evaluate = evaluate_utility (logreg, random forest, hist GB; the forest "
    "left out above forest_max_rows); audit = "
    "distance_report (N x N Gower nearest-record work; projected above distance_max_rows "
    "from a probe of queries against the full reference); audit_full = audit_release with "
    "shadows (small sizes only). One thread."
)


def _write(args: argparse.Namespace, rows: list[dict[str, Any]],
           planned: dict[int, dict[str, Any]], baseline: float, threads: int) -> dict[str, Any]:
    data = {
        "rows": rows,
        "method": METHOD,
        "planned_accounting": [planned[k] for k in sorted(planned)],
        "baseline_rss_mb": baseline,
        "settings": {"dataset": DATASET, "epsilon": EPSILON, "threads": threads,
                     "distance_max_rows": args.distance_max_rows,
                     "forest_max_rows": args.forest_max_rows,
                     "full_audit_max_rows": args.full_audit_max_rows},
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "processor": platform.processor() or None,
                    "note": "2 shared cores; other jobs were running"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, args.out)
    return data


if __name__ == "__main__":
    raise SystemExit(main())
