"""A benchmark stopped with SIGTERM unwinds its ``with`` blocks (no orphaned servers)."""

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
