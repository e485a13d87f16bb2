"""Threads: caps for compute steps, and one lock on torch's global random generator.

Spinning OpenMP threads on a busy 2-core box slowed HistGradientBoosting fits about
fifty-fold here; with Dask each worker process is one slot anyway. Flows, tasks and the
CLI run their compute under :func:`compute_threads` (``PULSESYNTH_THREADS``, default 1).

torch's global random generator is shared by every thread of a process. A Dask worker runs
a dataset's training and another audit's shadow model in two threads at once; unguarded,
their seeded streams interleave and the same seeds give different models (the Dask runner
then disagreed with the default runner). Everything that draws from that generator —
seeded training and building a module, whose constructor initialises weights — holds
:data:`TORCH_RNG_LOCK`; :func:`seeded_torch` is the seeded form.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from pulsesynth.settings import THREADS_ENV, Settings

R = TypeVar("R")

__all__ = ["THREADS_ENV", "TORCH_RNG_LOCK", "compute_threads", "seeded_torch",
           "thread_limit", "with_compute_threads"]

#: Held while anything draws from torch's global generator (re-entrant: training builds
#: modules inside its seeded section).
TORCH_RNG_LOCK = threading.RLock()


def thread_limit() -> int:
    """Threads per compute step: ``PULSESYNTH_THREADS`` (at least 1), default 1; a value
    that is not a whole number is a :class:`~pulsesynth.settings.SettingsError`."""
    return Settings.from_env().threads


@contextmanager
def compute_threads() -> Iterator[None]:
    """Cap torch and OpenMP/BLAS threads inside the block, restoring torch's after.

    The OpenMP/BLAS limit only binds libraries already loaded, so torch and scikit-learn
    are imported first.
    """
    import sklearn.ensemble  # noqa: F401
    import torch
    from threadpoolctl import threadpool_limits

    threads = thread_limit()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def with_compute_threads(fn: Callable[..., R]) -> Callable[..., R]:
    """``fn`` run under :func:`compute_threads` (for jobs shipped to other workers)."""

    @wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> R:
        with compute_threads():
            return fn(*args, **kwargs)

    return inner


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """torch's global generator seeded with ``seed`` for this thread alone, then restored."""
    import torch

    with TORCH_RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
