"""Bounded ingest memory: a CSV ten times larger costs the ingest process almost no more
memory, because DuckDB streams the file and GX sees one chunk at a time (slow: it writes and
ingests about 150 MB)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmarks import child_env, reported_peak_rss_mb
from pulsesynth.warehouse import INGEST_MEMORY_LIMIT

SCHEMA = {
    "id": "big_trips", "title": "Big trips", "classification": "confidential",
    "steward": "test-steward", "target": "paid", "row_key": ["trip"], "min_rows": 3,
    "privacy": {"epsilon": 1.0, "lifetime_epsilon": 5.0, "refresh_days": 1},
    "columns": [
        {"name": "trip", "type": "integer", "role": "identifier", "bounds": [1, 100_000_000]},
        {"name": "zone", "type": "categorical", "role": "quasi_identifier",
         "categories": ["north", "south", "east", "west"]},
        {"name": "fare", "type": "float", "role": "sensitive", "bounds": [0, 100],
         "bins": [0, 10, 50, 100]},
        {"name": "hour", "type": "integer", "role": "quasi_identifier", "bounds": [0, 23],
         "bins": [0, 6, 12, 18, 23]},
        {"name": "note", "type": "text", "role": "other", "nullable": True},
        {"name": "paid", "type": "categorical", "role": "target", "categories": ["no", "yes"]},
    ],
}

INGEST = """
import sys
from pathlib import Path
from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse
result = Warehouse(Paths(Path(sys.argv[1]))).ingest(sys.argv[2], "big_trips", sys.argv[3])
print(result.rows)
from benchmarks import peak_rss_line
print(peak_rss_line())
"""


def write_csv(path: Path, rows: int) -> None:
    """A valid table of ``rows`` rows, written in slices (this process stays small too)."""
    rng = np.random.default_rng(0)
    step = 500_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        pd.DataFrame({
            "trip": np.arange(start + 1, start + n + 1),
            "zone": rng.choice(["north", "south", "east", "west"], n),
            "fare": rng.uniform(0, 100, n).round(2),
            "hour": rng.integers(0, 24, n),
            "note": np.char.add("n", rng.integers(0, 10**9, n).astype(str)),
            "paid": rng.choice(["no", "yes"], n),
        }).to_csv(path, mode="a", header=start == 0, index=False)


def ingest_peak(tmp: Path, name: str, rows: int) -> dict[str, float]:
    """Ingest a fresh ``rows``-row CSV in a child process; its size, time and peak RSS."""
    root = tmp / name
    (root / "schemas").mkdir(parents=True)
    schema = root / "schemas" / "big_trips.yaml"
    schema.write_text(yaml.safe_dump(SCHEMA, sort_keys=False))
    table = tmp / f"{name}.csv"
    write_csv(table, rows)
    env = {**child_env(), "PULSESYNTH_THREADS": "1"}
    start = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", INGEST, str(root), str(table), str(schema)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # The child reports its own peak (benchmarks.own_peak_rss_mb): its ru_maxrss would start
    # at this pytest process's peak, which earlier tests in the session set.
    _, status, _ = os.wait4(child.pid, 0)
    seconds = time.monotonic() - start
    out, err = child.communicate()
    assert os.waitstatus_to_exitcode(status) == 0, err.decode()[-2000:]
    assert out.decode().splitlines()[0] == str(rows)
    figures = {"rows": rows, "file_mb": table.stat().st_size / 2**20,
               "seconds": round(seconds, 1), "peak_rss_mb": reported_peak_rss_mb(out.decode())}
    table.unlink()
    return figures


@pytest.mark.slow
def test_ingest_peak_memory_does_not_follow_the_file_size(tmp_path: Path) -> None:
    small = ingest_peak(tmp_path, "small", 420_000)
    large = ingest_peak(tmp_path, "large", 4_200_000)
    print(f"\nsmall: {small}\nlarge: {large}")
    assert large["file_mb"] > 140
    # Reading the file into pandas and GX (the former ingest) peaked at about 12 times
    # the file (1,444 MB for a 120 MB CSV); streaming stays far below the file size ...
    assert large["peak_rss_mb"] < 4 * large["file_mb"]
    # ... and ten times the rows add at most DuckDB's capped buffer (the row-key check's
    # hash table, which spills beyond the cap): GX only ever holds one chunk.
    cap_mb = int(INGEST_MEMORY_LIMIT.removesuffix("MB"))
    assert large["peak_rss_mb"] - small["peak_rss_mb"] < cap_mb
