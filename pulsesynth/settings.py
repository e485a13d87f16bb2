"""Every ``PULSESYNTH_*`` environment variable, read and checked in one place.

:meth:`Settings.from_env` is the only reader of these variables in ``pulsesynth``,
``flows``, ``tasks`` and ``deployments`` (a test keeps it so); callers ask it each time
rather than caching, so a test's ``monkeypatch.setenv`` takes effect at once. A malformed
value is a :class:`SettingsError` with a one-line message naming the variable.

- ``PULSESYNTH_ROOT`` — the project root (``schemas/``, ``warehouse/``, ``state/``,
  ``published/``); unset: the current directory (:meth:`pulsesynth.paths.Paths.default`).
- ``PULSESYNTH_THREADS`` — threads per compute step, at least 1 (default 1).
- ``PULSESYNTH_TASK_RUNNER`` — ``default`` or ``dask`` (default ``default``).
- ``PULSESYNTH_DASK_ADDRESS`` — an existing Dask scheduler (default: a local cluster).
- ``PULSESYNTH_DASK_WORKERS`` — worker processes of the local cluster (default 2).

The portal's sample limits (``PULSESYNTH_SAMPLE_*``) are read by
``pulsesynth.portal.app.SampleLimits.from_env``, next to their validation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pulsesynth.errors import PulseSynthError

ROOT_ENV = "PULSESYNTH_ROOT"
THREADS_ENV = "PULSESYNTH_THREADS"
RUNNER_ENV = "PULSESYNTH_TASK_RUNNER"
ADDRESS_ENV = "PULSESYNTH_DASK_ADDRESS"
WORKERS_ENV = "PULSESYNTH_DASK_WORKERS"
#: The task runners a flow knows.
RUNNERS = ("default", "dask")


class SettingsError(PulseSynthError, ValueError):
    """A ``PULSESYNTH_*`` variable holds a value that cannot be used (also a ``ValueError``,
    which callers of the task-runner choice already catch)."""


@dataclass(frozen=True)
class Settings:
    """The process's ``PULSESYNTH_*`` configuration, parsed and checked."""

    root: Path | None = None
    threads: int = 1
    task_runner: str = "default"
    dask_address: str | None = None
    dask_workers: int = 2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse ``environ`` (default: ``os.environ``); an empty value counts as unset."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        root = get(ROOT_ENV)
        return cls(root=Path(root).resolve() if root else None,
                   threads=_threads(get(THREADS_ENV), env.get(THREADS_ENV)),
                   task_runner=_runner(get(RUNNER_ENV)),
                   dask_address=get(ADDRESS_ENV),
                   dask_workers=_workers(get(WORKERS_ENV)))


def _threads(value: str | None, raw: str | None) -> int:
    if value is None:
        return 1
    try:
        # At least 1: "0" or a negative number means "as few as possible", not an error.
        return max(1, int(value))
    except ValueError:
        raise SettingsError(f"{THREADS_ENV} must be a whole number, got {raw!r}") from None


def _runner(value: str | None) -> str:
    kind = (value or "default").lower()
    if kind not in RUNNERS:
        raise SettingsError(f"{RUNNER_ENV} must be 'default' or 'dask', got {value!r}")
    return kind


def _workers(value: str | None) -> int:
    if value is None:
        return 2
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise SettingsError(f"{WORKERS_ENV} must be a whole number of at least 1, "
                            f"got {value!r}")
    return n
