"""The synthesis steps as Prefect tasks.

Rules every task here follows:

- arguments and return values are dataset ids, paths (as strings) and small dicts of
  public or DP figures (ε, δ, DP counts, labels) — never frames, values of real rows or
  exact statistics of them; hashes of the private table (snapshot id, cache key) pass
  between tasks in memory but are never logged;
- ``persist_result=False`` and ``cache_policy=NO_CACHE``: Prefect stores no result of a
  task that touches real rows (the flows' content cache is ``pulsesynth.runs``);
- an exception that is not a :class:`~pulsesynth.errors.PulseSynthError` (whose messages
  are value-free by contract) is replaced by :class:`StepFailed`, naming the step and the
  exception type only; the full traceback goes to ``<run_dir>/error.log`` inside the
  git-ignored, sensitive ``state/`` directory, never to Prefect's database or logs;
- retries only on steps that are safe to repeat: planning, pulling/validating, the
  ledger charge (idempotent through its key), registration and publication — and only
  for transient I/O errors, never for validation, budget or catalog errors.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypedDict, TypeVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE, CachePolicy

from pulsesynth import pipeline, runs
from pulsesynth.artifacts import RunDir
from pulsesynth.errors import PulseSynthError
from pulsesynth.paths import Paths
from pulsesynth.threads import compute_threads, with_compute_threads

P = ParamSpec("P")
R = TypeVar("R")

ACCOUNTANT = pipeline.ACCOUNTANT


class StepFailed(RuntimeError):
    """A step failed for a reason whose message might quote data; only its type is kept."""

    def __init__(self, step: str, exc: BaseException) -> None:
        self.step = step
        self.kind = type(exc).__name__
        self.transient = isinstance(exc, (OSError, TimeoutError, ConnectionError))
        super().__init__(f"{step} failed: {self.kind} (details in the run's error.log "
                         "under state/, which is sensitive)")


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only transient I/O failures."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - no result to inspect: do not retry
        return False
    return isinstance(exc, StepFailed) and exc.transient


class TaskOptions(TypedDict, total=False):
    """The ``@task`` options the steps share; typed so the decorator's call is checked."""

    persist_result: bool
    cache_policy: CachePolicy
    retries: int
    retry_delay_seconds: list[float]
    retry_condition_fn: Callable[[Any, Any, Any], bool]


SAFE: TaskOptions = {"persist_result": False, "cache_policy": NO_CACHE}
RETRY_IO: TaskOptions = {**SAFE, "retries": 2, "retry_delay_seconds": [1, 5],
                         "retry_condition_fn": _transient}


def value_free(step: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Replace non-domain exceptions by :class:`StepFailed`; log the traceback locally."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except PulseSynthError:
                raise
            except Exception as exc:  # noqa: BLE001 - sanitised below
                run_dir = kwargs.get("run_dir") or (args[0] if args else None)
                _local_error_log(run_dir, step)
                raise StepFailed(step, exc) from None
        return inner

    return wrap


def _local_error_log(run_dir: Any, step: str) -> None:
    if not isinstance(run_dir, str) or not Path(run_dir).is_dir():
        return
    try:
        with open(RunDir(Path(run_dir)).error_log, "a", encoding="utf-8") as fh:
            fh.write(f"--- {step} at {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
            fh.write(traceback.format_exc())
    except OSError:
        pass  # a full disk: the step still fails with its one value-free line


def _paths(root: str) -> Paths:
    return Paths(Path(root))


def _timed(fn: Callable[[], R]) -> tuple[R, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 3)


# --- planning ---------------------------------------------------------------------------


@task(name="plan-run", **RETRY_IO)
@value_free("plan")
def plan_run(dataset: str, root: str, config: dict[str, Any]) -> dict[str, Any]:
    """Content cache key from the stored table's hash (no rows read), the schema's hash,
    the run configuration and the code version; finds a reusable or resumable run
    (:func:`pulsesynth.runs.plan_run`)."""
    plan = runs.plan_run(_paths(root), dataset, config)
    logger = get_run_logger()
    # Keys and snapshot ids are hashes of the private table: they stay out of Prefect.
    if plan.outcome is runs.Outcome.REUSE:
        logger.info("%s: cache hit: reusing run %s — no training, nothing charged", dataset,
                    plan.run_dir.name)
    elif plan.outcome is runs.Outcome.RESUME:
        logger.info("%s: resuming unfinished run %s", dataset, plan.run_dir.name)
    else:
        logger.info("%s: cache miss: new run %s", dataset, plan.run_dir.name)
    return plan.as_dict()


@task(name="start-run", **RETRY_IO)
@value_free("start")
def start_run(run_dir: str, dataset: str, root: str, plan: dict[str, Any],
              max_rows: int | None = None) -> dict[str, Any]:
    """Pull the snapshot and validate the source (``ValidationFailed`` is not retried).
    The run's randomness is fresh and secret (recorded in ``run.json`` only)."""
    run, seconds = _timed(lambda: pipeline.start_run(
        dataset, Path(run_dir), max_rows=max_rows, paths=_paths(root)))
    if run["snapshot_id"] != plan["snapshot_id"]:
        raise pipeline.RunError(f"{dataset}: the table changed between planning and pulling "
                                "; run again")
    runs.record_key(Path(run_dir), plan["key"], {
        k: plan[k] for k in ("snapshot_id", "schema_hash", "config_hash", "code_version")})
    get_run_logger().info("%s: snapshot validated", dataset)
    return {"seconds": seconds}


@task(name="decide-retrain", **SAFE)
@value_free("decide")
def decide_retrain(dataset: str, root: str, plan: dict[str, Any],
                   force: bool = False) -> dict[str, Any]:
    """Train, resume (a charge under this key exists), reuse a model of this snapshot, or
    skip, following the ledger's refresh policy (:func:`pulsesynth.runs.decide_retrain`)."""
    run_plan = runs.RunPlan.from_dict(plan | {"dataset": dataset})
    return runs.decide_retrain(_paths(root), run_plan, force=force).as_dict()


# --- privacy ----------------------------------------------------------------------------


@task(name="charge-ledger", **RETRY_IO)
@value_free("charge")
def charge_ledger(run_dir: str, dataset: str, root: str, plan: dict[str, Any],
                  epsilon: float | None = None) -> dict[str, Any]:
    """Charge the run's (ε, δ) *before* training; idempotent under the run's cache key, so
    a retried task or a resumed run charges once. ``BudgetExceeded`` is not retried."""
    record, seconds = _timed(lambda: pipeline.charge(
        Path(run_dir), epsilon=epsilon, idempotency_key=runs.idempotency_key(dataset,
                                                                             plan["key"]),
        paths=_paths(root)))
    get_run_logger().info("%s: ledger %s ε=%g δ=%.3g", dataset,
                          "charged" if record["new"] else "already charged (idempotent)",
                          record["epsilon"], record["delta"])
    return {"epsilon": record["epsilon"], "delta": record["delta"], "new": record["new"],
            "charge_id": record["id"], "seconds": seconds}


# --- compute ----------------------------------------------------------------------------


@task(name="train-dp-vae", **SAFE)
@value_free("train")
def train_model(run_dir: str, root: str, epochs: int | None = None) -> dict[str, Any]:
    """Train the DP-VAE under the run's recorded ledger charge."""
    config: dict[str, Any] = {"epochs": epochs} if epochs else {}
    with compute_threads():
        report, seconds = _timed(lambda: pipeline.train(
            Path(run_dir), private=True, paths=_paths(root), **config))
    get_run_logger().info("trained in %.1fs: training ε=%.4g, δ=%.3g, %s steps", seconds,
                          report["epsilon"], report["delta"], report["steps"])
    return {"rows_dp": report["rows"], "seconds": seconds}


@task(name="sample-synthetic", **SAFE)
@value_free("sample")
def sample_candidate(run_dir: str, root: str) -> dict[str, Any]:
    """Sample the candidate table (secret randomness, DP row count) and validate it
    (post-processing: no budget)."""
    with compute_threads():
        path, seconds = _timed(lambda: pipeline.sample(Path(run_dir), paths=_paths(root)))
    return {"path": str(path), "seconds": seconds}


@task(name="evaluate-utility", **SAFE)
@value_free("evaluate")
def evaluate_candidate(run_dir: str, root: str) -> dict[str, Any]:
    """The steward's utility report (exact figures stay in the run directory)."""
    with compute_threads():
        _, seconds = _timed(lambda: pipeline.evaluate(Path(run_dir), paths=_paths(root)))
    return {"seconds": seconds}


@task(name="audit-and-gate", **SAFE)
@value_free("audit")
def audit_candidate(run_dir: str, root: str, n_shadows: int = 1,
                    policy: str | None = None) -> dict[str, Any]:
    """Attack the model and the synthetic table, then gate (label or blocked) under the
    release policy (default ``deployments/policy.yaml``)."""
    from flows.runners import shadow_mapper

    with compute_threads():
        result, seconds = _timed(lambda: pipeline.audit(
            Path(run_dir), n_shadows=n_shadows,
            policy_path=Path(policy) if policy else None, paths=_paths(root),
            mapper=shadow_mapper(wrap=with_compute_threads)))
    gate = result["gate"]
    get_run_logger().info("gate: %s — %s", gate["label"], gate["reason"])
    return {"label": gate["label"], "reason": gate["reason"], "seconds": seconds}


# --- governance -------------------------------------------------------------------------


@task(name="register-candidate", **RETRY_IO)
@value_free("register")
def register_release(run_dir: str, dataset: str, root: str) -> dict[str, Any]:
    """Record the candidate (idempotent: same content, same release)."""
    from pulsesynth.governance.candidate import register_candidate

    rel = register_candidate(_paths(root), dataset, RunDir(Path(run_dir)).candidate.path,
                             model_id=pipeline.model_hash(Path(run_dir)))
    get_run_logger().info("%s: release %s registered as %s (%s)", dataset,
                          rel.candidate_id[:12], rel.status, rel.label)
    return {"candidate_id": rel.candidate_id, "status": rel.status, "label": rel.label}


@task(name="publish-approved", **RETRY_IO)
@value_free("publish")
def publish_releases(root: str) -> list[dict[str, Any]]:
    """Publish every steward-approved candidate atomically (the releases API)."""
    from pulsesynth.governance.publisher import publish_approved

    done = publish_approved(_paths(root), actor="prefect")
    return [{"dataset": r.dataset, "version": r.version, "label": r.label,
             "candidate_id": r.candidate_id} for r in done]
