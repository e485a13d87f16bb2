"""The nightly synthesis flow and the publication flow.

``nightly_synthesis`` runs the subflow ``synthesize_dataset`` for every catalogued dataset
(or those named): plan (content cache key) → pull + validate → decide (cache, refresh
policy) → charge the ledger → train → sample (+ validate) → evaluate → audit + gate →
register the candidate. One dataset's failure never stops the others; the flow returns a
summary (one dict per dataset), publishes it as Prefect table and markdown artifacts (only
aggregates: ε, labels, attack and utility accuracies — no value of a real table) and ends
Failed when any dataset failed.

Run once from the command line (what ``make run`` does)::

    python -m flows.nightly [--datasets ID ...] [--max-rows N] [--epochs N]
                            [--task-runner default|dask]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, Failed, State

from flows.runners import (
    DATASET_RESOURCE,
    make_task_runner,
    reserves_dataset_slots,
    runner_kind,
)
from flows.server import owned_api_server
from pulsesynth import runs
from pulsesynth.errors import PulseSynthError
from pulsesynth.governance.errors import BudgetExceeded
from pulsesynth.labels import RELEASE_LABELS
from pulsesynth.paths import Paths
from pulsesynth.settings import Settings
from tasks import synthesis as t

#: Labels under which a dataset's run counts as released (from pulsesynth.labels).
RELEASABLE = RELEASE_LABELS
#: What the summary, its artifacts and logs show: public facts and DP figures only.
COLUMNS = ("dataset", "rows", "status", "epsilon_spent", "epsilon", "label", "reason",
           "attack_advantage_dp", "tstr_accuracy_dp", "majority_accuracy_dp",
           "fit_for_purpose")


def run_config(max_rows: int | None, epochs: int | None, n_shadows: int,
               epsilon: float | None, policy: str | None) -> dict[str, Any]:
    """What goes into the configuration hash of the cache key (the policy by content)."""
    from pulsesynth.gate import DEFAULT_POLICY
    from pulsesynth.warehouse import file_sha256

    return {"max_rows": max_rows, "epochs": epochs, "n_shadows": n_shadows,
            "epsilon": epsilon, "private": True,
            "accountant": t.ACCOUNTANT, "synthesizer": "dp-vae",
            "policy_sha256": file_sha256(Path(policy or DEFAULT_POLICY))}


def _root(root: str | None) -> str:
    return str(Path(root).resolve()) if root else str(Paths.default().root)


# --- one dataset ------------------------------------------------------------------------


@flow(name="synthesize-dataset", flow_run_name="synthesize-{dataset}", persist_result=False,
      log_prints=False)
def synthesize_dataset(dataset: str, root: str | None = None, max_rows: int | None = None,
                       epochs: int | None = None, n_shadows: int = 1,
                       epsilon: float | None = None, force_retrain: bool = False,
                       policy: str | None = None) -> dict[str, Any]:
    """One dataset from snapshot to registered release candidate (or reuse).

    No seed is a parameter: every private step draws fresh secret randomness. The whole
    subflow holds the dataset's run lock (:func:`pulsesynth.runs.run_lock`): while another
    run of it (a flow, the CLI, a deployment) holds the lock, the result is ``skipped:
    another run holds the lock`` and nothing is planned, charged or written."""
    root = _root(root)
    try:
        with runs.run_lock(Paths(Path(root)), dataset, by="flow synthesize-dataset"):
            return _synthesize(dataset, root, max_rows, epochs, n_shadows, epsilon,
                               force_retrain, policy)
    except runs.RunLocked as exc:
        get_run_logger().warning("%s", exc)
        return {"dataset": dataset, "status": "skipped", "reason": runs.LOCK_HELD,
                "note": str(exc), "cache": "locked", "epsilon_spent": 0.0, "compute_s": 0.0}


def _synthesize(dataset: str, root: str, max_rows: int | None, epochs: int | None,
                n_shadows: int, epsilon: float | None, force_retrain: bool,
                policy: str | None) -> dict[str, Any]:
    """The body of :func:`synthesize_dataset`, run under the dataset's run lock."""
    logger = get_run_logger()
    config = run_config(max_rows, epochs, n_shadows, epsilon, policy)
    plan = t.plan_run(dataset, root, config)
    out: dict[str, Any] = {"dataset": dataset, "epsilon_spent": 0.0, "compute_s": 0.0}

    def finish(run_dir: str, status: str, cache: str, note: str = "") -> dict[str, Any]:
        rel = t.register_release(run_dir, dataset, root)
        summary = runs.summarize(Path(run_dir))
        if status == "trained":
            status = "succeeded" if summary["label"] in RELEASABLE else "blocked"
        return out | summary | {
            "status": status, "cache": cache, "candidate_id": rel["candidate_id"],
            "release_status": rel["status"], "note": note}

    if plan["reuse"]:
        logger.info("%s: reused run %s (cache hit)", dataset, Path(plan["run_dir"]).name)
        return finish(plan["run_dir"], "reused", "hit",
                      f"cache hit: unchanged snapshot, schema, config and code "
                      f"(run {Path(plan['run_dir']).name})")

    run_dir = plan["run_dir"]
    started = t.start_run(run_dir, dataset, root, plan, max_rows=max_rows)
    out["compute_s"] += started["seconds"]
    decision = t.decide_retrain(dataset, root, plan, force=force_retrain)
    if decision["action"] == "reuse":
        logger.info("%s: %s; reusing run %s", dataset, decision["reason"],
                    Path(decision["run_dir"]).name)
        return finish(decision["run_dir"], "reused", "policy", decision["reason"])
    if decision["action"] == "skip":
        logger.warning("%s: skipped: %s", dataset, decision["reason"])
        return out | {"status": "skipped", "cache": "miss", "reason": decision["reason"],
                      "run_id": Path(run_dir).name, "run_dir": run_dir}

    try:
        charge = t.charge_ledger(run_dir, dataset, root, plan, epsilon=epsilon)
    except BudgetExceeded as exc:
        logger.warning("%s", exc)
        return out | {"status": "blocked", "cache": "miss", "reason": str(exc),
                      "run_id": Path(run_dir).name, "run_dir": run_dir}
    out["epsilon_spent"] = charge["epsilon"] if charge["new"] else 0.0
    trained = t.train_model(run_dir, root, epochs=epochs)
    sampled = t.sample_candidate(run_dir, root)
    evaluated = t.evaluate_candidate(run_dir, root)
    audited = t.audit_candidate(run_dir, root, n_shadows=n_shadows, policy=policy)
    out["compute_s"] += sum(x["seconds"] for x in (charge, trained, sampled, evaluated,
                                                   audited))
    out["compute_s"] = round(out["compute_s"], 3)
    return finish(run_dir, "trained", "resume" if plan["resume"] else "miss")


def _failure_reason(state: Any) -> str:
    """A value-free reason for a failed subflow (domain and step errors are value-free by
    contract; anything else is reduced to its type)."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as err:  # noqa: BLE001
        exc = err
    if isinstance(exc, (PulseSynthError, t.StepFailed)):
        return str(exc).splitlines()[0] + (" (see the run's validation report)"
                                            if "expectation" in str(exc) else "")
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__} (details withheld: may quote data)"
    return "failed"


def run_one(dataset: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run the subflow for one dataset; a failure becomes a ``failed`` summary row."""
    t0 = time.perf_counter()
    state = synthesize_dataset(dataset, return_state=True, **params)
    if state.is_completed():
        row = state.result()
    else:
        row = {"dataset": dataset, "status": "failed", "reason": _failure_reason(state),
               "epsilon_spent": 0.0, "compute_s": 0.0}
    row["wall_s"] = round(time.perf_counter() - t0, 3)
    return row


@task(name="synthesize-dataset-on-worker", **t.SAFE)
def run_one_on_worker(dataset: str, params: dict[str, Any]) -> dict[str, Any]:
    """Per-dataset work as one task, so that a Dask runner spreads datasets over workers."""
    return run_one(dataset, params)


# --- the nightly flow -------------------------------------------------------------------


@flow(name="nightly-synthesis", persist_result=False, log_prints=False)
def nightly_synthesis(datasets: list[str] | None = None, max_rows: int | None = None,
                      epochs: int | None = None, n_shadows: int = 1,
                      epsilon: float | None = None,
                      force_retrain: bool = False, task_runner: str | None = None,
                      policy: str | None = None, root: str | None = None) -> State[Any]:
    """Synthesise, audit and gate every catalogued dataset (or ``datasets``).

    ``task_runner``: ``"default"`` runs datasets one after another in this process;
    ``"dask"`` runs them in parallel on Dask (``PULSESYNTH_TASK_RUNNER`` when unset).
    """
    from pulsesynth.warehouse import Warehouse

    logger = get_run_logger()
    root = _root(root)
    ids = datasets or [e["id"] for e in Warehouse(Paths(Path(root))).catalog()]
    params = {"root": root, "max_rows": max_rows, "epochs": epochs,
              "n_shadows": n_shadows, "epsilon": epsilon,
              "force_retrain": force_retrain, "policy": policy}
    kind = runner_kind(task_runner)
    logger.info("nightly synthesis of %d dataset(s) on the %s runner: %s", len(ids), kind,
                ", ".join(ids))
    t0 = time.perf_counter()
    if kind == "dask":
        with make_task_runner("dask") as runner:
            import dask

            # One dataset per worker at a time; its other slot trains audit shadows.
            reserve = reserves_dataset_slots(runner)
            with dask.annotate(resources={DATASET_RESOURCE: 1} if reserve else {}):
                futures = [runner.submit(run_one_on_worker,
                                         parameters={"dataset": d, "params": params})
                           for d in ids]
            summary = []
            for d, fut in zip(ids, futures, strict=True):
                try:
                    summary.append(fut.result())
                except Exception as exc:  # noqa: BLE001 - the worker itself failed
                    summary.append({"dataset": d, "status": "failed", "epsilon_spent": 0.0,
                                    "compute_s": 0.0,
                                    "reason": f"worker failed: {type(exc).__name__}"})
    else:
        summary = [run_one(d, params) for d in ids]
    wall = time.perf_counter() - t0
    for row in summary:
        logger.info("%s: %s — %s", row["dataset"], row["status"], row.get("reason") or "")
    publish_summary(summary, wall)
    failed = [r["dataset"] for r in summary if r["status"] == "failed"]
    if failed:
        return Failed(message=f"{len(failed)} of {len(summary)} dataset(s) failed: "
                              f"{', '.join(failed)}", data=summary)
    return Completed(message=f"{len(summary)} dataset(s) done", data=summary)


# --- publication ------------------------------------------------------------------------


@flow(name="publish-approved", persist_result=False)
def publish_approved(root: str | None = None) -> list[dict[str, Any]]:
    """Publish every steward-approved candidate (``pulsesynth.governance.publisher``)."""
    done = t.publish_releases(_root(root))
    lines = ["# Published releases", ""]
    lines += [f"- {d['dataset']} {d['version']} ({d['label']}) from {d['candidate_id'][:12]}"
              for d in done] or ["nothing to publish (no approved candidates)"]
    create_markdown_artifact("\n".join(lines), key="published-releases",
                             description="Releases published by this run")
    return done


# --- reporting --------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def table_rows(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The public columns of the summary (aggregates only)."""
    return [{c: row.get(c) for c in COLUMNS} for row in summary]


def format_table(summary: list[dict[str, Any]], markdown: bool = False) -> str:
    heads = ["dataset", "rows (DP)", "status", "ε spent", "ε", "label / reason",
             "attack adv. (DP)", "TSTR acc (DP)", "majority (DP)", "fit"]
    rows = []
    for r in summary:
        label = r.get("label") if r.get("status") in ("succeeded", "reused") and r.get(
            "label") in RELEASABLE else f"{r.get('label') or r['status']}: {r.get('reason')}"
        rows.append([r["dataset"], _fmt(r.get("rows")), r["status"],
                     _fmt(r.get("epsilon_spent")), _fmt(r.get("epsilon")), label,
                     _fmt(r.get("attack_advantage_dp")), _fmt(r.get("tstr_accuracy_dp")),
                     _fmt(r.get("majority_accuracy_dp")), _fmt(r.get("fit_for_purpose"))])
    if markdown:
        out = ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
        out += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
        return "\n".join(out)
    widths = [max(len(h), *(min(len(row[i]), 60) for row in rows)) if rows else len(h)
              for i, h in enumerate(heads)]
    line = "  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))
    out = [line, "-" * len(line)]
    for row in rows:
        cells = [c if len(c) <= 60 else c[:57] + "..." for c in row]
        out.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    return "\n".join(out)


def publish_summary(summary: list[dict[str, Any]], wall_s: float) -> None:
    """Prefect artifacts: a table and a markdown report (no values from the real tables)."""
    create_table_artifact(table_rows(summary), key="nightly-summary",
                          description="Nightly synthesis: status, ε, gate, attacks, utility")
    counts = {s: sum(r["status"] == s for r in summary)
              for s in ("succeeded", "blocked", "reused", "skipped", "failed")}
    md = ["# Nightly synthesis", "",
          ", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" in {wall_s:.0f} s", "",
          format_table(summary, markdown=True), "",
          "Figures marked DP are released with Laplace noise and charged to the ledger: "
          "attack advantage 0 = no membership signal; TSTR: HistGradientBoosting trained on "
          "the synthetic table, accuracy on unseen real rows, beside always guessing the "
          "majority class. Exact audit figures: `pulsesynth releases show ID` (stewards)."]
    create_markdown_artifact("\n".join(md), key="nightly-report",
                             description="Nightly synthesis report")


NEXT_STEPS = """Next steps:
  pulsesynth releases list --status candidate
  pulsesynth releases approve ID --steward NAME --note TEXT   # a data steward, per candidate
  pulsesynth publish                                          # approved candidates → published/
  pulsesynth portal                                           # http://127.0.0.1:8080"""


def run_nightly(**params: Any) -> tuple[list[dict[str, Any]], Any]:
    """Run the nightly flow once; returns (summary, final state)."""
    state = nightly_synthesis(return_state=True, **params)
    summary = state.result(raise_on_failure=False)
    if not isinstance(summary, list):
        raise RuntimeError(f"nightly flow ended {state.type.value}: {state.message}")
    return summary, state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.nightly",
                                     description="Run the nightly synthesis once.")
    parser.add_argument("--datasets", nargs="+", metavar="ID",
                        help="datasets to run (default: the whole catalog)")
    parser.add_argument("--max-rows", type=int, help="use a random slice of N source rows")
    parser.add_argument("--epochs", type=int, help="training epochs (default: 50)")
    parser.add_argument("--shadows", type=int, default=1, help="shadow models per attack")
    parser.add_argument("--force-retrain", action="store_true",
                        help="retrain even inside the refresh interval (charged)")
    parser.add_argument("--task-runner", choices=("default", "dask"),
                        default=Settings.from_env().task_runner)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    # A temporary API server this process owns: it dies with it, even on kill -9.
    with owned_api_server():
        summary, state = run_nightly(datasets=args.datasets, max_rows=args.max_rows,
                                     epochs=args.epochs, n_shadows=args.shadows,
                                     force_retrain=args.force_retrain,
                                     task_runner=args.task_runner)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print()
        print(format_table(summary))
        print()
        print(NEXT_STEPS)
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main())
