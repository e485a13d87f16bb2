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
from typing import Any, cast

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
from pulsesynth.command import cli_command
from pulsesynth.errors import PulseSynthError
from pulsesynth.governance.errors import BudgetExceeded
from pulsesynth.labels import RELEASE_LABELS
from pulsesynth.paths import Paths
from pulsesynth.reports import three_decimals
from pulsesynth.settings import Settings
from tasks import synthesis as t

#: Labels under which a dataset's run counts as released (from pulsesynth.labels).
RELEASABLE = RELEASE_LABELS


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
                       policy: str | None = None) -> State[Any]:
    """One dataset from snapshot to registered release candidate (or reuse).

    Ends in a state named for the outcome (:func:`subflow_state`): a blocked dataset is a
    red ``Blocked`` in Prefect's UI, not a green ``Completed``, yet the other datasets and
    the nightly summary go on (a failed one ends ``Failed``).

    No seed is a parameter: every private step draws fresh secret randomness. The whole
    subflow holds the dataset's run lock (:func:`pulsesynth.runs.run_lock`): while another
    run of it (a flow, the CLI, a deployment) holds the lock, the result is ``skipped:
    another run holds the lock`` and nothing is planned, charged or written."""
    root = _root(root)
    try:
        with runs.run_lock(Paths(Path(root)), dataset, by="flow synthesize-dataset"):
            row = _synthesize(dataset, root, max_rows, epochs, n_shadows, epsilon,
                              force_retrain, policy)
    except runs.RunLocked as exc:
        get_run_logger().warning("%s", exc)
        row = {"dataset": dataset, "status": "skipped", "reason": runs.LOCK_HELD,
               "note": str(exc), "cache": "locked", "epsilon_spent": 0.0, "compute_s": 0.0}
    if row["status"] == "blocked":
        row["advice"] = _advice(Path(root), dataset, row.get("run_dir"))
    return subflow_state(row)


#: Prefect state names of the subflow's outcomes (a success stays a plain ``Completed``).
STATE_NAMES = {"blocked": "Blocked", "skipped": "Skipped", "reused": "Reused"}
#: Outcomes whose subflow ends in a Failed-type state (red in Prefect's UI, where an
#: orchestrator's alerts look): a blocked release needs a steward. The nightly flow itself
#: still completes and the other datasets go on (:func:`run_one` reads the row back).
NEEDS_A_STEWARD = ("blocked",)


def subflow_state(row: dict[str, Any]) -> State[Any]:
    """The final state of a dataset's subflow, carrying its summary row and named for its
    outcome, the reason as its message: ``Blocked`` is a Failed-type state (so the Prefect
    UI shows it red, not as a green success), ``Skipped`` and ``Reused`` are
    Completed-type; the parent reads the row from any of them."""
    status = row["status"]
    detail = row.get("reason") if status in ("blocked", "skipped") else row.get("note")
    label = row.get("label")
    message = (status + (f" ({label})" if label and label != status else "")
               + (f": {detail}" if detail else ""))
    make = Failed if status in NEEDS_A_STEWARD else Completed
    return make(name=STATE_NAMES.get(status, "Completed"), message=message[:500], data=row)


def _advice(root: Path, dataset: str, run_dir: str | None) -> list[str]:
    """What would unblock the dataset and what a retrain costs (public and DP facts)."""
    from pulsesynth.advice import budget_status, unblock_advice
    from pulsesynth.artifacts import RunDir

    gate: dict[str, Any] = {"label": "blocked"}
    try:
        if run_dir:
            gate = RunDir(Path(run_dir)).candidate.read_gate()
    except (OSError, ValueError):
        pass  # blocked before the gate (the budget): the advice is the budget line
    try:
        return unblock_advice(gate, budget_status(Paths(root), dataset))
    except Exception as exc:  # noqa: BLE001 - advice must never turn a blocked row failed
        get_run_logger().warning("%s: no advice (%s)", dataset, type(exc).__name__)
        return []


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
    row: dict[str, Any]
    outcome = _outcome_row(state)
    if outcome is not None:
        row = outcome
        row["prefect_state"] = state.name
    else:
        row = {"dataset": dataset, "status": "failed", "reason": _failure_reason(state),
               "epsilon_spent": 0.0, "compute_s": 0.0, "prefect_state": state.name}
    row["wall_s"] = round(time.perf_counter() - t0, 3)
    return row


def _outcome_row(state: State[Any]) -> dict[str, Any] | None:
    """The summary row a finished subflow carries (:func:`subflow_state`), or None when it
    failed on its own (an exception, not an outcome such as ``Blocked``)."""
    if not (state.is_completed() or state.name in STATE_NAMES.values()):
        return None
    data = state.result(raise_on_failure=False)
    return cast("dict[str, Any]", data) if isinstance(data, dict) else None


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
        return Failed(message=f"{count_line(summary)} ({', '.join(failed)})", data=summary)
    return Completed(message=count_line(summary), data=summary)


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


#: The Prefect table artifact's columns: few and short, so it reads without scrolling (the
#: Markdown report has the rest).
TABLE_COLUMNS = ("dataset", "status", "label", "epsilon_spent", "rows", "fit_for_purpose",
                 "candidate", "run_id")
#: Width of the printed run summary.
WIDTH = 100
#: Statuses in the order the summary counts them.
STATUSES = ("succeeded", "blocked", "reused", "skipped", "failed")


def table_rows(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The public columns of the summary (aggregates only) for the table artifact."""
    return [{c: (_short_id(row.get("candidate_id")) if c == "candidate" else row.get(c))
             for c in TABLE_COLUMNS} for row in summary]


def _short_id(candidate_id: Any) -> str | None:
    # 12 characters: what `pulsesynth releases` lists and accepts as a prefix.
    return candidate_id[:12] if isinstance(candidate_id, str) else None


def _shown_path(path: Any) -> str:
    """A run directory relative to the working directory when inside it (shorter, and what
    `make run` users type), else as recorded."""
    import os

    text = str(path)
    try:
        rel = os.path.relpath(text)
    except ValueError:
        return text
    return text if rel.startswith("..") else rel


def counts(summary: list[dict[str, Any]]) -> dict[str, int]:
    """How many datasets ended in each status (zero counts kept: the message names all)."""
    return {s: sum(r.get("status") == s for r in summary) for s in STATUSES}


def count_line(summary: list[dict[str, Any]]) -> str:
    """``3 dataset(s): 1 succeeded, 1 blocked, 1 failed`` (reused/skipped only if any)."""
    n = counts(summary)
    shown = [f"{n[s]} {s}" for s in STATUSES if n[s] or s in ("succeeded", "blocked",
                                                                 "failed")]
    return f"{len(summary)} dataset(s): " + ", ".join(shown)


def _released(row: dict[str, Any]) -> bool:
    return row.get("status") in ("succeeded", "reused") and row.get("label") in RELEASABLE


def _details(row: dict[str, Any]) -> list[str]:
    """The lines under a dataset's summary row: DP report, candidate and run, reason."""
    out = []
    if row.get("attack_advantage_dp") is not None or row.get("tstr_accuracy_dp") is not None:
        out.append(f"DP report: attack advantage {three_decimals(row.get('attack_advantage_dp'))}, "
                   f"TSTR accuracy {three_decimals(row.get('tstr_accuracy_dp'))} (majority "
                   f"{three_decimals(row.get('majority_accuracy_dp'))})")
    where = []
    if row.get("candidate_id"):
        where.append(f"candidate {_short_id(row['candidate_id'])}")
    if row.get("run_dir"):
        where.append(f"run {_shown_path(row['run_dir'])}")
    if where:
        out.append(", ".join(where))
    if not _released(row) and (row.get("reason") or row.get("status") != "reused"):
        out.append(f"{row.get('label') or row['status']}: {row.get('reason') or '—'}")
    out += [line.strip() for line in row.get("advice") or []]
    return out


def format_table(summary: list[dict[str, Any]], markdown: bool = False) -> str:
    """The run summary: one row per dataset in at most :data:`WIDTH` columns, the details
    (DP report, candidate id, run directory, the blocked or failed reason) wrapped under it;
    ``markdown``: a section per dataset for the Prefect report (reads without scrolling)."""
    if markdown:
        return _markdown(summary)
    import textwrap

    heads = ["dataset", "status", "label", "ε spent", "rows (DP)", "fit"]
    rows = [[r["dataset"], r["status"], r.get("label") or "—", _fmt(r.get("epsilon_spent")),
             _fmt(r.get("rows")), _fmt(r.get("fit_for_purpose"))] for r in summary]
    # A long dataset id gets a line of its own rather than widening every row.
    widths = [max([len(h)] + [len(row[i]) for row in rows if i or len(row[i]) <= 24])
              for i, h in enumerate(heads)]
    line = "  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip()
    out = [line, "-" * len(line)]
    for row, r in zip(rows, summary, strict=True):
        if len(row[0]) > widths[0]:
            out.append(row[0])
            row = ["", *row[1:]]
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        for detail in _details(r):
            out += textwrap.wrap(detail, WIDTH, initial_indent="  ", subsequent_indent="    ",
                                 break_long_words=False, break_on_hyphens=False)
    return "\n".join(out)


def _markdown(summary: list[dict[str, Any]]) -> str:
    out = []
    for r in summary:
        label = r.get("label")
        shown = f" ({label})" if label and label != r["status"] else ""
        out += ["", f"### {r['dataset']}: {r['status']}{shown}", ""]
        if r.get("candidate_id"):
            out.append(f"- candidate `{_short_id(r['candidate_id'])}`")
        if r.get("run_dir"):
            out.append(f"- run directory `{r['run_dir']}`")
        out.append(f"- ε spent {_fmt(r.get('epsilon_spent'))}, rows (DP) {_fmt(r.get('rows'))}"
                   f", fit for purpose: {_fmt(r.get('fit_for_purpose'))}")
        out += [f"- {line.strip()}".replace("|", "/") for line in _details(r)
                if not line.startswith(("candidate ", "run "))]
    return "\n".join(out).strip()


def publish_summary(summary: list[dict[str, Any]], wall_s: float) -> None:
    """Prefect artifacts: a table and a markdown report (no values from the real tables)."""
    create_table_artifact(table_rows(summary), key="nightly-summary",
                          description="Nightly synthesis: status, label, ε, candidate, run")
    md = ["# Nightly synthesis", "", f"{count_line(summary)} in {wall_s:.0f} s", "",
          format_table(summary, markdown=True), "",
          "Figures marked DP are released with Laplace noise and charged to the ledger: "
          "attack advantage 0 = no membership signal; TSTR: a classifier trained on "
          "the synthetic table, its accuracy on unseen real rows, beside always guessing "
          f"the majority class. Exact audit figures: `{cli_command()} releases show ID` "
          "(stewards)."]
    create_markdown_artifact("\n".join(md), key="nightly-report",
                             description="Nightly synthesis report")


def next_steps(cli: str | None = None) -> str:
    """The steps after a run, with a command that works as printed: the ``pulsesynth``
    next to this Python (``.venv/bin/pulsesynth`` under ``make run``), which is not on
    ``PATH`` unless the virtual environment is activated."""
    if cli is None:
        cli = cli_command()
    steps = [("releases list --status candidate", ""),
             ("releases show ID", "gate, audit, advice"),
             ("releases approve ID --steward NAME --note TEXT", "a steward, per candidate"),
             ("publish", "approved → published/"),
             ("portal", "http://127.0.0.1:8080")]
    width = max(len(step) for step, _ in steps) + len(cli) + 3
    activate = str(Path(cli).parent / "activate")
    lines = ["Next steps:"]
    for step, note in steps:
        command = f"  {cli} {step}"
        noted = f"{command:<{width}}  # {note}"
        # Notes only where they fit in 100 columns (a long install path drops them).
        lines.append(noted if note and len(noted) <= WIDTH else command)
    lines.append(f"  (or `source {activate}` once, then type `pulsesynth ...`)")
    return "\n".join(lines)


#: The next steps as ``make run`` prints them.
NEXT_STEPS = next_steps(".venv/bin/pulsesynth")


def run_nightly(**params: Any) -> tuple[list[dict[str, Any]], Any]:
    """Run the nightly flow once; returns (summary, final state)."""
    state = nightly_synthesis(return_state=True, **params)
    summary = state.result(raise_on_failure=False)
    if not isinstance(summary, list):
        raise RuntimeError(f"nightly flow ended {state.type.value}: {state.message}")
    return summary, state


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``python -m flows.nightly`` (``make run``'s ``RUN_ARGS``)."""
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
                        default=Settings.from_env().task_runner,
                        help="run datasets one after another (default) or in parallel on "
                             "Dask (default: PULSESYNTH_TASK_RUNNER)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the nightly flow once; print the summary and the next steps (``make run``)."""
    args = build_parser().parse_args(argv)
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
        print(count_line(summary))
        print(format_table(summary))
        print()
        print(next_steps())
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main())
