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


def child_env() -> dict[str, str]:
    """This process's environment with the repository first on ``PYTHONPATH``, so that a
    child (``python -c`` or ``-m benchmarks...``) started from any directory imports this
    ``benchmarks`` package, not the one Opacus installs under the same name."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
    return env


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit(143)`` so ``with`` blocks and ``finally`` clauses run.

    SIGTERM's default action ends the process at once: a benchmark stopped by ``kill`` or
    a timeout would leave what its context managers started behind (the orchestration
    benchmark's Prefect test server kept running, its parent gone).
    """
    def _exit(signum: int, _frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


#: The line a child process prints last to report its own peak RSS (see own_peak_rss_mb).
PEAK_RSS_PREFIX = "peak_rss_mb="


def own_peak_rss_mb() -> float:
    """This process's peak resident set size in MiB: the high-water mark of its own
    address space (``VmHWM``).

    Not ``ru_maxrss``: Linux carries a process's maximum RSS across ``exec``, and Python
    starts a child with vfork (or fork) + exec, so a child's ``ru_maxrss`` (``os.wait4``,
    ``RUSAGE_CHILDREN``) is at least its *parent's* peak. A benchmark parent that built a
    1M-row frame then reports that frame's memory for every child. ``VmHWM`` belongs to the
    address space that ``exec`` created, so a child reading it reports itself alone.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource  # not Linux: the best figure there is (KiB on Linux, bytes on macOS)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def peak_rss_line() -> str:
    """The last line a child prints so that its parent can read its own peak RSS."""
    return f"{PEAK_RSS_PREFIX}{own_peak_rss_mb():.1f}"


def reported_peak_rss_mb(stdout: str) -> float:
    """The peak RSS a child reported with :func:`peak_rss_line` (its last such line)."""
    lines = [line for line in stdout.splitlines() if line.startswith(PEAK_RSS_PREFIX)]
    if not lines:
        raise RuntimeError("the child did not report its peak RSS")
    return float(lines[-1][len(PEAK_RSS_PREFIX):])
