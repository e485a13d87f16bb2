"""Crash-safe ingest: a writer killed (SIGKILL) or refused by a full disk at any stage of a
table write leaves the catalog row and the table it names in agreement, serving the old
version or the new one, and the next writer removes whatever the dead one left behind."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from pulsesynth import cli, warehouse
from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse, WarehouseWriteError, file_sha256

REPO = Path(__file__).resolve().parent.parent

SCHEMA = {
    "id": "toy_trips",
    "title": "Toy trips",
    "classification": "confidential",
    "steward": "test-steward",
    "target": "paid",
    "row_key": ["trip"],
    "min_rows": 3,
    "privacy": {"epsilon": 1.0, "lifetime_epsilon": 5.0, "refresh_days": 1},
    "columns": [
        {"name": "trip", "type": "integer", "role": "identifier", "bounds": [1, 10_000_000]},
        {"name": "zone", "type": "categorical", "role": "quasi_identifier",
         "categories": ["north", "south", "east"]},
        {"name": "fare", "type": "float", "role": "sensitive", "bounds": [0, 100],
         "bins": [0, 10, 50, 100]},
        {"name": "note", "type": "text", "role": "other", "nullable": True},
        {"name": "paid", "type": "categorical", "role": "target", "categories": ["no", "yes"]},
    ],
}

#: Every stage of a table write, in order (``warehouse.FAULT_HOOK``'s names), and whether
#: a writer killed there has already committed the new version.
STAGES = {"staged": False, "validated": False, "placed": False, "catalog": False,
          "committed": True, "done": True}

#: Run in a child process: ingest with a hook that kills the process at one stage.
KILL_AT = """
import os, signal, sys
from pulsesynth import warehouse
from pulsesynth.paths import Paths

root, table, schema, stage = sys.argv[1:5]

def kill_at(name):
    if name == stage:
        os.kill(os.getpid(), signal.SIGKILL)

warehouse.FAULT_HOOK = kill_at
from pathlib import Path
warehouse.Warehouse(Paths(Path(root))).ingest(table, "toy_trips", schema)
"""


def trips(rows: int, seed: int = 0, note_chars: int = 8) -> pd.DataFrame:
    """A valid toy table of ``rows`` rows (distinct trips, both target classes)."""
    rng = np.random.default_rng(seed)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return pd.DataFrame({
        "trip": np.arange(1, rows + 1),
        "zone": rng.choice(["north", "south", "east"], rows),
        "fare": rng.uniform(0, 100, rows).round(2),
        "note": ["".join(rng.choice(alphabet, note_chars)) for _ in range(rows)],
        "paid": np.where(np.arange(rows) % 3 == 0, "no", "yes"),
    })


@pytest.fixture
def served(tmp_path: Path) -> tuple[Warehouse, Path]:
    """A warehouse serving a 60-row version of toy_trips; returns it and the schema file."""
    root = tmp_path / "project"
    (root / "schemas").mkdir(parents=True)
    schema_path = root / "schemas" / "toy_trips.yaml"
    schema_path.write_text(yaml.safe_dump(SCHEMA, sort_keys=False))
    wh = Warehouse(Paths(root))
    first = tmp_path / "sixty.csv"
    trips(60).to_csv(first, index=False)
    wh.ingest(first, "toy_trips", schema_path)
    return wh, schema_path


def child_env() -> dict[str, str]:
    return {**os.environ, "PULSESYNTH_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def assert_consistent(wh: Warehouse) -> dict:
    """The catalog row names an existing file whose bytes, rows and view agree with it."""
    entry = wh.entry("toy_trips")
    path = wh.paths.resolve(entry["table_path"])
    assert path.is_file()
    assert file_sha256(path) == entry["snapshot_id"]
    assert pq.ParquetFile(path).metadata.num_rows == entry["rows"]
    with wh.connect(read_only=True) as con:
        assert con.execute('SELECT count(*) FROM "toy_trips"').fetchall() == [(entry["rows"],)]
    snap = wh.pull("toy_trips")
    assert (snap.snapshot_id, len(snap.frame)) == (entry["snapshot_id"], entry["rows"])
    return entry


def table_files(wh: Warehouse) -> list[str]:
    return sorted(p.name for p in wh.paths.tables.iterdir())


def fingerprint(wh: Warehouse) -> tuple:
    files = sorted((p.name, file_sha256(p)) for p in wh.paths.tables.iterdir())
    spills = sorted(p.name for p in wh.paths.warehouse.glob(".spill-*"))
    return files, spills, wh.catalog()


@pytest.mark.parametrize("stage", list(STAGES))
def test_sigkill_at_each_stage_serves_one_whole_version_and_next_ingest_tidies(
        served: tuple[Warehouse, Path], tmp_path: Path, stage: str) -> None:
    wh, schema_path = served
    old = wh.entry("toy_trips")
    ninety = tmp_path / "ninety.csv"
    trips(90, seed=1).to_csv(ninety, index=False)

    child = subprocess.run(
        [sys.executable, "-c", KILL_AT, str(wh.paths.root), str(ninety), str(schema_path),
         stage], env=child_env(), capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr

    entry = assert_consistent(wh)
    if STAGES[stage]:
        assert entry["rows"] == 90 and entry["snapshot_id"] != old["snapshot_id"]
    else:
        assert {k: entry[k] for k in ("rows", "snapshot_id", "table_path")} == {
            k: old[k] for k in ("rows", "snapshot_id", "table_path")}

    # The next writer removes what the killed one left (a staged or placed file, the
    # previous version, its spill directory); the served table is untouched.
    removed = wh.tidy()
    assert table_files(wh) == [Path(entry["table_path"]).name]
    assert not list(wh.paths.warehouse.glob(".spill-*"))
    assert (len(removed) > 0) == (stage != "done")
    assert assert_consistent(wh) == entry

    seventy = tmp_path / "seventy.csv"
    trips(70, seed=2).to_csv(seventy, index=False)
    result = wh.ingest(seventy, "toy_trips", schema_path)
    latest = assert_consistent(wh)
    assert (latest["rows"], latest["snapshot_id"]) == (70, result.snapshot_id)
    assert table_files(wh) == [Path(latest["table_path"]).name]


@pytest.mark.parametrize("stage", ["staged", "placed", "catalog"])
def test_disk_full_at_a_stage_is_one_line_and_changes_nothing(
        served: tuple[Warehouse, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], stage: str) -> None:
    wh, schema_path = served
    before = fingerprint(wh)
    ninety = tmp_path / "ninety.csv"
    trips(90, seed=1).to_csv(ninety, index=False)

    def disk_full(name: str) -> None:
        if name == stage:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(warehouse, "FAULT_HOOK", disk_full)
    with pytest.raises(WarehouseWriteError, match="No space left on device"):
        wh.ingest(ninety, "toy_trips", schema_path)
    assert fingerprint(wh) == before

    monkeypatch.setenv("PULSESYNTH_ROOT", str(wh.paths.root))
    code = cli.main(["ingest", str(ninety), "--dataset", "toy_trips",
                     "--schema", str(schema_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == ("error: toy_trips: cannot write the warehouse: No space left on device; "
                   "nothing was changed\n")
    assert fingerprint(wh) == before
    assert_consistent(wh)


#: Ingest in a child whose files may not grow past a limit (RLIMIT_FSIZE): DuckDB's own
#: Parquet writer gets a real EFBIG from the kernel, as on a full disk.
SMALL_FILES = """
import resource, signal, sys
from pulsesynth import cli

limit = int(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, not kills
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.exit(cli.main(["ingest", sys.argv[2], "--dataset", "toy_trips", "--schema", sys.argv[3]]))
"""


def test_a_real_write_failure_in_duckdbs_parquet_writer_changes_nothing(
        served: tuple[Warehouse, Path], tmp_path: Path) -> None:
    wh, schema_path = served
    before = fingerprint(wh)
    largest = max(p.stat().st_size for p in wh.paths.warehouse.rglob("*") if p.is_file())
    limit = max(largest * 2, 2 << 20)
    wide = tmp_path / "wide.csv"
    trips(30_000, seed=3, note_chars=400).to_csv(wide, index=False)  # about 4 MB of Parquet

    child = subprocess.run(
        [sys.executable, "-c", SMALL_FILES, str(limit), str(wide), str(schema_path)],
        env=child_env() | {"PULSESYNTH_ROOT": str(wh.paths.root)},
        capture_output=True, text=True, timeout=300)
    assert child.returncode == 2, child.stderr
    assert child.stderr == ("error: toy_trips: cannot write the warehouse: File too large; "
                            "nothing was changed\n")
    assert fingerprint(wh) == before
    assert_consistent(wh)


def test_a_warehouse_from_before_version_names_is_tidied_by_its_next_write(
        served: tuple[Warehouse, Path], tmp_path: Path) -> None:
    """Tables were ``<id>.parquet``, and a crash could leave ``<id>.parquet.bak``: both are
    served or removed correctly once the catalog moves to version files."""
    wh, schema_path = served
    entry = wh.entry("toy_trips")
    legacy = wh.paths.tables / "toy_trips.parquet"
    wh.paths.resolve(entry["table_path"]).rename(legacy)
    (wh.paths.tables / "toy_trips.parquet.bak").write_bytes(legacy.read_bytes())
    with wh.connect() as con:
        con.execute("UPDATE catalog SET table_path = ? WHERE id = 'toy_trips'",
                    [wh.paths.relative(legacy)])
        con.execute(f"CREATE OR REPLACE VIEW toy_trips AS SELECT * FROM read_parquet('{legacy}')")
    assert wh.tidy() == [wh.paths.tables / "toy_trips.parquet.bak"]  # the legacy file is served
    assert assert_consistent(wh)["table_path"] == "warehouse/tables/toy_trips.parquet"

    ninety = tmp_path / "ninety.csv"
    trips(90, seed=1).to_csv(ninety, index=False)
    wh.ingest(ninety, "toy_trips", schema_path)
    latest = assert_consistent(wh)
    assert latest["rows"] == 90
    assert table_files(wh) == [Path(latest["table_path"]).name]
