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

The portal's sample limits are read by :meth:`SampleSettings.from_env`, separately, so a
malformed portal limit stops the portal only, never the pipeline (as before they moved here):

- ``PULSESYNTH_SAMPLE_MAX_ROWS`` — rows per sample request (default 10000).
- ``PULSESYNTH_SAMPLE_RATE_LIMIT`` — sample requests per entity per window (default 30).
- ``PULSESYNTH_SAMPLE_RATE_WINDOW`` — the rate-limit window in seconds (default 60).

Their bounds (at least 1) are checked by ``pulsesynth.portal.sampling.SampleLimits``.

The portal's publisher contact is read by :meth:`ContactSettings.from_env`, the same way:

- ``PULSESYNTH_CONTACT_EMAIL`` — the steward office's contact address shown on every
  page and card, in DCAT (``contactPoint``) and CKAN (``maintainer_email``); ``{steward}``
  in it is replaced by the publishing office's id (``{steward}@data.city.example`` gives
  each office its own address). Default :data:`DEFAULT_CONTACT` (a placeholder: set it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pulsesynth.errors import PulseSynthError

ROOT_ENV = "PULSESYNTH_ROOT"
THREADS_ENV = "PULSESYNTH_THREADS"
RUNNER_ENV = "PULSESYNTH_TASK_RUNNER"
ADDRESS_ENV = "PULSESYNTH_DASK_ADDRESS"
WORKERS_ENV = "PULSESYNTH_DASK_WORKERS"
SAMPLE_MAX_ROWS_ENV = "PULSESYNTH_SAMPLE_MAX_ROWS"
SAMPLE_RATE_LIMIT_ENV = "PULSESYNTH_SAMPLE_RATE_LIMIT"
SAMPLE_RATE_WINDOW_ENV = "PULSESYNTH_SAMPLE_RATE_WINDOW"
CONTACT_ENV = "PULSESYNTH_CONTACT_EMAIL"
#: The contact until an installation sets its own (``.example`` is a reserved domain).
DEFAULT_CONTACT = "open-data@city.example"
#: The office a ``{steward}`` stands for when a release names none.
DEFAULT_STEWARD = "city-data-office"
_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
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


@dataclass(frozen=True)
class SampleSettings:
    """The portal's ``PULSESYNTH_SAMPLE_*`` limits, parsed (not bounded: see module doc)."""

    max_rows: int = 10_000
    rate_limit: int = 30
    window_s: int = 60

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SampleSettings:
        """Parse ``environ`` (default: ``os.environ``); an empty value counts as unset."""
        env = os.environ if environ is None else environ

        def get(name: str, default: int) -> int:
            value = env.get(name, "").strip()
            if not value:
                return default
            try:
                return int(value)
            except ValueError:
                raise SettingsError(f"{name} must be a whole number, "
                                    f"got {env.get(name)!r}") from None

        return cls(max_rows=get(SAMPLE_MAX_ROWS_ENV, cls.max_rows),
                   rate_limit=get(SAMPLE_RATE_LIMIT_ENV, cls.rate_limit),
                   window_s=get(SAMPLE_RATE_WINDOW_ENV, cls.window_s))


@dataclass(frozen=True)
class ContactSettings:
    """The portal's ``PULSESYNTH_CONTACT_EMAIL``, checked (see module doc)."""

    template: str = DEFAULT_CONTACT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ContactSettings:
        """Parse ``environ`` (default: ``os.environ``); an empty value counts as unset."""
        env = os.environ if environ is None else environ
        value = env.get(CONTACT_ENV, "").strip() or DEFAULT_CONTACT
        if not _EMAIL.match(value.replace("{steward}", DEFAULT_STEWARD)):
            raise SettingsError(f"{CONTACT_ENV} must be an email address (optionally with "
                                f"{{steward}}), got {env.get(CONTACT_ENV)!r}")
        return cls(template=value)

    def email(self, steward: str | None = None) -> str:
        """The contact address of the office ``steward`` (the default office if None)."""
        return self.template.replace("{steward}", steward or DEFAULT_STEWARD)


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
