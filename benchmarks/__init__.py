"""Benchmarks run by ``make bench``; results go to ``benchmarks/results/``.

The machines are 2 shared cores: every benchmark pins torch and BLAS to one thread (set
``PULSESYNTH_BENCH_THREADS`` to change it) so that ratios measured within one run are not
distorted by thread oversubscription when something else is running.
"""

from __future__ import annotations

import os
import signal
import sys


def single_thread() -> int:
    """Pin torch (and child processes' OpenMP/BLAS) to the benchmark thread count."""
    import torch

    threads = int(os.environ.get("PULSESYNTH_BENCH_THREADS", "1"))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    torch.set_num_threads(threads)
    return threads


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit(143)`` so ``with`` blocks and ``finally`` clauses run.

    SIGTERM's default action ends the process at once: a benchmark stopped by ``kill`` or
    a timeout would leave what its context managers started behind (the orchestration
    benchmark's Prefect test server kept running, its parent gone).
    """
    def _exit(signum: int, _frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
