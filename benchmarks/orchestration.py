"""Orchestration benchmark: Prefect's overhead on the nightly flow and the Dask speed-up.

On a fresh copy of the default catalog (a temporary root; the project's ledger and state
are untouched) under a temporary Prefect server, the nightly flow runs once on the default
runner and once on Dask with two single-threaded worker processes (another fresh root,
so that nothing is reused). Writes ``benchmarks/results/orchestration.json``::

    {"overhead_fraction": (wall - Σ task compute) / wall   (default runner),
     "dask_speedup": wall(default) / wall(dask, 2 workers),
     "datasets": [per-dataset status, label, compute and wall seconds, ...], ...}

"Task compute" is the time inside the domain calls (pull + validate, ledger charge, train,
sample, evaluate, audit); everything else — Prefect's engine, API calls, state and log
traffic, planning and registration, artifacts — counts as overhead.

    python -m benchmarks.orchestration [--max-rows N] [--epochs N] [--datasets ID ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import flows  # noqa: F401  (before prefect)
from benchmarks import exit_on_sigterm

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "results" / "orchestration.json"


def fresh_root(base: Path, name: str, datasets: list[str] | None) -> Path:
    from pulsesynth.paths import Paths
    from pulsesynth.warehouse import Warehouse

    root = base / name
    shutil.copytree(REPO / "schemas", root / "schemas")
    Warehouse(Paths(root)).build(datasets)
    return root


def timed_run(root: Path, runner: str, args: argparse.Namespace) -> tuple[float, list]:
    from flows.nightly import run_nightly

    t0 = time.perf_counter()
    summary, _ = run_nightly(datasets=args.datasets, max_rows=args.max_rows,
                             epochs=args.epochs, root=str(root), task_runner=runner)
    return time.perf_counter() - t0, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.orchestration")
    parser.add_argument("--max-rows", type=int, default=None,
                        help="row slice per dataset (default: whole tables; slow)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    # Stopped by kill or a timeout, the harness below still shuts its server down.
    exit_on_sigterm()

    import prefect.settings
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp, \
            prefect_test_harness(server_startup_timeout=90):
        base = Path(tmp)
        default_root = fresh_root(base, "default", args.datasets)
        dask_root = fresh_root(base, "dask", args.datasets)
        wall_default, summary = timed_run(default_root, "default", args)
        os.environ["PREFECT_API_URL"] = prefect.settings.PREFECT_API_URL.value()
        os.environ["PULSESYNTH_DASK_WORKERS"] = str(args.workers)
        try:
            wall_dask, summary_dask = timed_run(dask_root, "dask", args)
        finally:
            os.environ.pop("PREFECT_API_URL", None)
    compute = sum(float(r.get("compute_s") or 0.0) for r in summary)
    dask_labels = {r["dataset"]: r.get("label") for r in summary_dask}
    dask_compute = {r["dataset"]: r.get("compute_s") for r in summary_dask}
    compute_dask = sum(float(r.get("compute_s") or 0.0) for r in summary_dask)
    result: dict[str, Any] = {
        "overhead_fraction": round((wall_default - compute) / wall_default, 4),
        "dask_speedup": round(wall_default / wall_dask, 3),
        "datasets": [{"dataset": r["dataset"], "status": r["status"], "label": r.get("label"),
                      "label_dask": dask_labels.get(r["dataset"]), "rows": r.get("rows"),
                      "compute_s": r.get("compute_s"), "wall_s": r.get("wall_s"),
                      "compute_dask_s": dask_compute.get(r["dataset"])}
                     for r in summary],
        "wall_default_s": round(wall_default, 2),
        "wall_dask_s": round(wall_dask, 2),
        "task_compute_s": round(compute, 2),
        "task_compute_dask_s": round(compute_dask, 2),
        # > 1 when two workers computing at once each run slower than one alone (shared
        # cores, memory bandwidth): the ceiling on any speed-up this machine can show.
        "parallel_compute_slowdown": round(compute_dask / compute, 3) if compute else None,
        "dask_workers": args.workers,
        "max_rows": args.max_rows,
        "epochs": args.epochs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": "one run each; wall times include per-run Prefect engine and API overhead; "
                "the Dask wall time includes starting the LocalCluster",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("overhead_fraction", "dask_speedup",
                                             "wall_default_s", "wall_dask_s",
                                             "task_compute_s", "task_compute_dask_s",
                                             "parallel_compute_slowdown")}, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
