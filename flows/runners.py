"""Task-runner selection: the default thread pool, or Dask (local cluster or an address).

``PULSESYNTH_TASK_RUNNER=dask`` (or the flow parameter ``task_runner="dask"``) switches to
``prefect_dask.DaskTaskRunner``; ``PULSESYNTH_DASK_ADDRESS=tcp://host:8786`` uses an
existing scheduler, else a ``distributed.LocalCluster`` with ``PULSESYNTH_DASK_WORKERS``
(default 2) single-threaded worker processes is started for the flow run.

Dask worker processes report task runs to Prefect's API. Without ``PREFECT_API_URL`` each
would start its own temporary server (and its runs would be invisible), so before the
cluster starts :func:`share_api_with_workers` exports the URL of the API this process uses
(a running server, the test harness's, or an ephemeral one started here). Workers of a
remote scheduler must be started with ``PREFECT_API_URL`` set to a reachable server.
"""

from __future__ import annotations

import os
from typing import Any

RUNNER_ENV = "PULSESYNTH_TASK_RUNNER"
ADDRESS_ENV = "PULSESYNTH_DASK_ADDRESS"
WORKERS_ENV = "PULSESYNTH_DASK_WORKERS"


def runner_kind(requested: str | None = None) -> str:
    kind = (requested or os.environ.get(RUNNER_ENV) or "default").strip().lower()
    if kind not in ("default", "dask"):
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
    address = address or os.environ.get(ADDRESS_ENV) or None
    if address:
        return DaskTaskRunner(address=address)
    n = workers or int(os.environ.get(WORKERS_ENV, "2"))
    return DaskTaskRunner(cluster_kwargs={"n_workers": n, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})

