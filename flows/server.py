"""A temporary Prefect API server that dies with the process that started it.

Without ``PREFECT_API_URL`` Prefect starts a temporary server itself, as a ``uvicorn``
child process it stops from an ``atexit`` hook. ``kill -9`` (or the OOM killer) runs no
hook, so every killed nightly run used to leave that server running, orphaned. The
entry points (``python -m flows.nightly``, ``python -m deployments.serve``, so ``make run``
and ``make serve``) therefore start the same server themselves, through Prefect's own
:class:`~prefect.server.api.server.SubprocessASGIServer` (same command, settings and
health check), with one difference: the child asks the kernel for ``SIGKILL`` when its
parent dies (Linux ``PR_SET_PDEATHSIG``), so it cannot outlive its parent however that
ends. It uses SIGKILL, not SIGTERM: a graceful shutdown has nobody left to serve and its
SQLite database is crash-safe (WAL). Where ``PREFECT_API_URL`` is set (a dedicated
server, the test harness) nothing is started.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PR_SET_PDEATHSIG = 1
#: libc, loaded here in the parent: a forked child must not dlopen (loader locks).
_LIBC = ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent: int) -> None:
    """In a freshly forked child (``preexec_fn``): have the kernel kill it when its parent
    exits, and exit at once if the parent is already gone (the race before the request)."""
    if _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(70)  # cannot guarantee the child's death: refuse to start it
    if os.getppid() != parent:
        os._exit(0)


def _server_class() -> Any:
    import prefect
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    class OwnedServer(SubprocessASGIServer):
        """Prefect's temporary server, its child bound to this process's life."""

        # Its own instance registry: Prefect's singleton per port stays Prefect's.
        _instances: dict[int | None, Any] = {}

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            # Prefect 3.8's command and environment (SubprocessASGIServer's), plus the
            # parent-death signal; Prefect's method offers no hook for the child's setup.
            parent = os.getpid()
            return subprocess.Popen(
                args=[sys.executable, "-m", "uvicorn",
                      "--app-dir", str(prefect.__module_path__.parent),
                      "--factory", "prefect.server.api.server:create_app",
                      "--host", "127.0.0.1", "--port", str(self.port),
                      "--log-level", "error", "--lifespan", "on"],
                env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                     "PREFECT__SERVER_FINAL": "1",
                     **get_current_settings().to_environment_variables(exclude_unset=True)},
                preexec_fn=lambda: die_with_parent(parent))

    return OwnedServer


@contextmanager
def owned_api_server() -> Iterator[str | None]:
    """Point Prefect at a temporary server this process owns for the block (yields its API
    URL), or at ``PREFECT_API_URL`` when that is set (yields it; nothing is started).

    Call it from the main thread: the kernel's parent-death signal follows the thread that
    started the child.
    """
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    configured = os.environ.get("PREFECT_API_URL") or get_current_settings().api.url
    if configured:
        yield configured
        return
    server = _server_class()()
    server.start(timeout=get_current_settings().server.ephemeral.startup_timeout_seconds)
    # Children (Dask workers, flow-run processes of `serve`) inherit the URL.
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        # Send the run logs still queued (the flow's last "Finished" lines) while the
        # server is up: after stop() the log worker prints "Error logging to API".
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)
        server.stop()

