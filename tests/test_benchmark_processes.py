"""Benchmark process helpers: SIGTERM unwinds `with` blocks (no orphaned servers), and
a child process reports its own peak RSS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SCRIPT = """
import os, signal, sys, time
from benchmarks import exit_on_sigterm
exit_on_sigterm()
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
finally:
    open(sys.argv[1], "w").write("cleaned up")
"""


def test_sigterm_runs_finally_clauses_and_exits_143(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(marker)], cwd=REPO,
                          timeout=60, capture_output=True, text=True)
    assert done.returncode == 143, done.stderr
    assert marker.read_text() == "cleaned up"


def test_without_the_handler_sigterm_skips_finally(tmp_path: Path) -> None:
    """The case the handler exists for: SIGTERM's default action skips cleanup."""
    marker = tmp_path / "marker"
    script = SCRIPT.replace("exit_on_sigterm()\n", "")
    done = subprocess.run([sys.executable, "-c", script, str(marker)], cwd=REPO,
                          timeout=60, capture_output=True, text=True)
    assert done.returncode == -15
    assert not marker.exists()


CHILD_PEAK = """
import subprocess, sys, numpy as np
from benchmarks import peak_rss_line, reported_peak_rss_mb
import os
big = np.ones(400 * 2**20 // 8)  # this parent's peak: at least 400 MiB
del big
code = "from benchmarks import peak_rss_line; print(peak_rss_line())"
child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
_, _, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss / 1024, reported_peak_rss_mb(child.stdout.read()))
"""


def test_a_child_reports_its_own_peak_rss_not_its_parents(tmp_path: Path) -> None:
    # Linux keeps the maximum RSS across exec, so a child's ru_maxrss starts at its parent's
    # peak; the benchmarks' memory figures come from the child's own VmHWM instead.
    done = subprocess.run([sys.executable, "-c", CHILD_PEAK], cwd=REPO, timeout=120,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    inherited, own = (float(x) for x in done.stdout.split())
    assert inherited >= 400
    assert own < 100  # a bare interpreter that imported `benchmarks` (torch is not loaded)
