"""One Prefect test harness per test process, shared by every test module that needs it.

``prefect_test_harness`` starts a temporary server on a throw-away SQLite database (about
10–20 s on 2-core machines); pytest's session fixtures defined outside ``conftest.py``
would start one per module, so the harness is a process-wide singleton: each module's
session fixture calls :func:`shared_test_harness` and, on teardown, :func:`close_test_harness`
(idempotent; the first call at session end stops the server).
"""

from __future__ import annotations

import atexit
from contextlib import ExitStack
from typing import Any

_STACK: ExitStack | None = None


def shared_test_harness(startup_timeout: int = 90) -> Any:
    """Enter ``prefect_test_harness`` once; returns the harness's database URL."""
    global _STACK
    import prefect.settings
    from prefect.testing.utilities import prefect_test_harness

    if _STACK is None:
        stack = ExitStack()
        stack.enter_context(prefect_test_harness(server_startup_timeout=startup_timeout))
        atexit.register(close_test_harness)
        _STACK = stack
    return prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL.value()


def close_test_harness() -> None:
    """Stop the shared harness (idempotent)."""
    global _STACK
    stack, _STACK = _STACK, None
    if stack is not None:
        stack.close()
