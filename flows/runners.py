"""Task-runner selection: the default thread pool, or Dask (local cluster or an address).

``PULSESYNTH_TASK_RUNNER=dask`` (or the flow parameter ``task_runner="dask"``) switches to
``prefect_dask.DaskTaskRunner``; ``PULSESYNTH_DASK_ADDRESS=tcp://host:8786`` uses an
existing scheduler, else a ``distributed.LocalCluster`` with ``PULSESYNTH_DASK_WORKERS``
(default 2) worker processes is started for the flow run: two slots each and a
``dataset`` resource of 1, so one slot runs a dataset and the other its audit's shadows.

Dask worker processes report task runs to Prefect's API. Without ``PREFECT_API_URL`` each
would start its own temporary server (and its runs would be invisible), so before the
cluster starts :func:`share_api_with_workers` exports the URL of the API this process uses
(a running server, the test harness's, or an ephemeral one started here). Workers of a
remote scheduler must be started with ``PREFECT_API_URL`` set to a reachable server.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from pulsesynth.settings import ADDRESS_ENV, RUNNER_ENV, RUNNERS, WORKERS_ENV, Settings

__all__ = ["ADDRESS_ENV", "DATASET_RESOURCE", "RUNNER_ENV", "WORKERS_ENV", "make_task_runner",
           "reserves_dataset_slots", "runner_kind", "share_api_with_workers"]

DATASET_RESOURCE = "dataset"


def runner_kind(requested: str | None = None) -> str:
    """``requested`` (a flow parameter) when given, else ``PULSESYNTH_TASK_RUNNER``."""
    if not requested:
        return Settings.from_env().task_runner
    kind = requested.strip().lower()
    if kind not in RUNNERS:
        raise ValueError(f"task runner must be 'default' or 'dask', got {kind!r}")
    return kind


def share_api_with_workers() -> str:
    """Make sure ``PREFECT_API_URL`` is in the environment worker processes inherit."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()  # the same singleton Prefect's client would use
        server.start(timeout=get_current_settings().server.ephemeral.startup_timeout_seconds)
        url = server.api_url
    os.environ["PREFECT_API_URL"] = url
    return url


def make_task_runner(kind: str | None = None, address: str | None = None,
                     workers: int | None = None) -> Any:
    """The Prefect task runner for the nightly flow (``None`` keeps the default)."""
    if runner_kind(kind) == "default":
        return None
    from prefect_dask import DaskTaskRunner

    share_api_with_workers()
    settings = Settings.from_env()
    address = address or settings.dask_address
    if address:
        return DaskTaskRunner(address=address)
    n = workers or settings.dask_workers
    # Two slots per worker, at most one running a dataset (resource "dataset"): the other
    # slot stays free for audit shadow jobs, so a dataset waiting on its shadows never
    # starves them (no secede: seceding broke Prefect's client under the next subflow).
    return DaskTaskRunner(cluster_kwargs={"n_workers": n, "threads_per_worker": 2,
                                          "resources": {DATASET_RESOURCE: 1},
                                          "processes": True, "dashboard_address": None})


def reserves_dataset_slots(runner: Any) -> bool:
    """Whether every worker of the runner's cluster declares the ``dataset`` resource (the
    local cluster does; start remote workers with ``--nthreads 2 --resources dataset=1``).
    Only then are datasets limited to one per worker, leaving a slot for audit shadows."""
    workers = runner.client.scheduler_info().get("workers", {})
    return bool(workers) and all(DATASET_RESOURCE in (w.get("resources") or {})
                                 for w in workers.values())


def _in_dask_worker() -> bool:
    try:
        from distributed import get_worker
    except ImportError:  # pragma: no cover - distributed is a pinned dependency
        return False
    try:
        get_worker()
    except ValueError:
        return False
    return True


def shadow_mapper(wrap: Callable[[Callable], Callable] | None = None
                  ) -> Callable[[Callable, Iterable], list] | None:
    """Train audit shadows as Dask tasks when the audit runs on a worker whose cluster
    reserves slots for them (workers with the ``dataset`` resource), else ``None``."""
    if not _in_dask_worker():
        return None
    from distributed import get_client, get_worker

    if DATASET_RESOURCE not in (get_worker().state.total_resources or {}):
        return None

    def mapper(fn: Callable, jobs: Iterable) -> list:
        client = get_client()
        futures = client.map(wrap(fn) if wrap else fn, list(jobs), pure=False)
        return client.gather(futures)

    return mapper
