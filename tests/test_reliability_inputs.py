"""Reliability: hostile and careless inputs at every boundary, as a user would type them.

Each case runs the real ``pulsesynth`` command in its own process against a project root
holding one ingested table. A case passes when the command refuses (non-zero exit, an
``error:`` line, no traceback), prints none of the sentinel values planted in the files it
was given, and leaves the warehouse (catalog rows and table files), the governance store
and ``published/`` exactly as they were.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from reliability_results import InputCase, Section
from test_ingest import TOY_SCHEMA as SCHEMA

from pulsesynth.governance.db import db_path
from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

SENTINELS = ("SENTINEL-NOTE-4417", "SENTINEL-HEADER-9921", "SENTINEL-ZONE-3307",
             "SENTINEL-FARE-5150", "8675309.25")
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n"
    for i in range(8)) + "columns: *i\n"


def good_rows(n: int = 40) -> pd.DataFrame:
    return pd.DataFrame({
        "day": [1 + i % 30 for i in range(n)], "trip": [1 + i // 30 for i in range(n)],
        "zone": [["north", "south", "east"][i % 3] for i in range(n)],
        "fare": [float(i % 90) for i in range(n)],
        "note": [SENTINELS[0] if i == 0 else "ok" for i in range(n)],
        "paid": [["no", "yes"][i % 2] for i in range(n)]})


def write_schema(path: Path, mutate: Callable[[dict], None] | None = None) -> Path:
    raw = copy.deepcopy(SCHEMA)
    if mutate:
        mutate(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), "utf-8")
    return path


def _set_bound(raw: dict) -> None:
    raw["columns"][3]["bounds"] = [0, float("inf")]


def _set_id(value: str) -> Callable[[dict], None]:
    return lambda raw: raw.update(id=value)


def _raise_budget(raw: dict) -> None:
    raw["privacy"]["lifetime_epsilon"] = 1000.0


#: name -> (files to write: {name: writer(path)}, argv with {name} placeholders).
Case = tuple[dict[str, Callable[[Path], object]], list[str]]


def _csv(frame: pd.DataFrame, **kw: object) -> Callable[[Path], object]:
    return lambda p: frame.to_csv(p, index=False, **kw)


def _with(column: str, value: object) -> pd.DataFrame:
    frame = good_rows()
    frame[column] = frame[column].astype(object)
    frame.loc[5, column] = value
    return frame


INGEST = ["ingest", "{f.csv}", "--dataset", "toy_trips", "--schema", "{s.yaml}"]
LOOKALIKE = "t\u043ey_trips"   # a Cyrillic o

CASES: dict[str, Case] = {
    "schema bound .inf": ({"s.yaml": lambda p: write_schema(p, _set_bound),
                           "f.csv": _csv(good_rows())},
                          INGEST),
    "Cyrillic look-alike id": (
        {"s.yaml": lambda p: write_schema(p, _set_id(LOOKALIKE)), "f.csv": _csv(good_rows())},
        ["ingest", "{f.csv}", "--dataset", LOOKALIKE, "--schema", "{s.yaml}"]),
    "300-character id": (
        {"s.yaml": lambda p: write_schema(p, _set_id("t" * 300)), "f.csv": _csv(good_rows())},
        ["ingest", "{f.csv}", "--dataset", "t" * 300, "--schema", "{s.yaml}"]),
    "path traversal id": ({}, ["train", "../../etc/passwd", "--epsilon", "1"]),
    "YAML alias bomb": ({"s.yaml": lambda p: p.write_text(ALIAS_BOMB), "f.csv": _csv(good_rows())},
                        INGEST),
    "schema file of 5 MB": ({"s.yaml": lambda p: p.write_text("# " + "x" * 5_000_000 + "\n"),
                             "f.csv": _csv(good_rows())},
                            INGEST),
    "train --epsilon nan": ({}, ["train", "toy_trips", "--epsilon", "nan"]),
    "train --epsilon -1": ({}, ["train", "toy_trips", "--epsilon", "-1"]),
    "train --epsilon inf": ({}, ["train", "toy_trips", "--epsilon", "inf"]),
    "train --epsilon 1e300": ({}, ["train", "toy_trips", "--epsilon", "1e300"]),
    "train --max-rows 0": ({}, ["train", "toy_trips", "--max-rows", "0"]),
    "train --max-rows -5": ({}, ["train", "toy_trips", "--max-rows", "-5"]),
    "train --epochs 0": ({}, ["train", "toy_trips", "--epochs", "0"]),
    "train unknown dataset": ({}, ["train", "no_such_table"]),
    "CSV without its header row": (
        {"s.yaml": write_schema, "f.csv": _csv(good_rows().iloc[1:].assign(
            note=SENTINELS[0]), header=False)},
        INGEST),
    "undeclared column": (
        {"s.yaml": write_schema, "f.csv": _csv(good_rows().assign(**{SENTINELS[1]: 1}))},
        INGEST),
    "category outside the declared list": (
        {"s.yaml": write_schema, "f.csv": _csv(_with("zone", SENTINELS[2]))},
        INGEST),
    "text in a float column": (
        {"s.yaml": write_schema, "f.csv": _csv(_with("fare", SENTINELS[3]))},
        INGEST),
    "number out of bounds": (
        {"s.yaml": write_schema, "f.csv": _csv(_with("fare", float(SENTINELS[4])))},
        INGEST),
    "re-ingest raising the lifetime budget": (
        {"s.yaml": lambda p: write_schema(p, _raise_budget), "f.csv": _csv(good_rows())},
        INGEST),
    "file that is not UTF-8": (
        {"s.yaml": write_schema,
         "f.csv": lambda p: p.write_bytes(b"day,trip,zone,fare,note,paid\n1,1,\xff\xfe,1,x,no\n")},
        INGEST),
    "corrupt Parquet": ({"s.yaml": write_schema,
                         "f.parquet": lambda p: p.write_bytes(b"PAR1" + b"\x00" * 64)},
                        ["ingest", "{f.parquet}", "--dataset", "toy_trips", "--schema",
                         "{s.yaml}"]),
    "missing file": ({"s.yaml": write_schema},
                     ["ingest", "/nonexistent/f.csv", "--dataset", "toy_trips", "--schema",
                      "{s.yaml}"]),
    "budget set --lifetime nan": ({}, ["budget", "set", "toy_trips", "--lifetime", "nan",
                                       "--steward", "s", "--note", "n"]),
    "budget set --lifetime -3": ({}, ["budget", "set", "toy_trips", "--lifetime", "-3",
                                      "--steward", "s", "--note", "n"]),
    "register a directory that is no candidate": (
        {"cand/privacy.json": lambda p: p.write_text(json.dumps({"epsilon": 1.0}))},
        ["releases", "register", "{cand/privacy.json}/..", "--dataset", "toy_trips",
         "--model-id", "m"]),
    "approve an unknown release": ({}, ["releases", "approve", "0" * 12, "--steward", "s"]),
    "token for an empty entity": ({}, ["tokens", "create", " "]),
}


def fingerprint(root: Path) -> str:
    """Catalog rows, table files, governance rows and published files, as one hash.

    The governance store is compared by its rows (a command may create the empty store,
    and SQLite's files change on every open), the DuckDB file by the catalog's rows."""
    paths = Paths(root)
    digest = hashlib.sha256()
    digest.update(json.dumps(Warehouse(paths).catalog(), sort_keys=True, default=str).encode())
    for folder in (paths.warehouse, paths.published):
        for f in sorted(folder.rglob("*")) if folder.exists() else []:
            if f.is_file() and not f.name.startswith((db_path(paths).name, paths.database.name)) \
                    and f.suffix not in (".lock", ".wal"):
                digest.update(f.relative_to(root).as_posix().encode() + f.read_bytes())
    if db_path(paths).exists():
        with sqlite3.connect(db_path(paths)) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            for table in tables:
                for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):
                    digest.update(f"{table}:{row!r}".encode())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def section() -> Iterator[Section]:
    record = Section("inputs")
    yield record
    record.write()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    (root / "schemas").mkdir()
    schema = write_schema(root / "schemas" / "toy_trips.yaml")
    source = root / "first.csv"
    good_rows().to_csv(source, index=False)
    Warehouse(Paths(root)).ingest(source, "toy_trips", schema)
    return root


def is_clean_refusal(code: int, stderr: str) -> bool:
    """Refused (non-zero), said so on an ``error:`` line, and no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return (code != 0 and "Traceback" not in stderr
            and any(line.startswith("error:") or ": error:" in line for line in lines))


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_is_refused_in_one_line_without_values_or_changes(
        root: Path, tmp_path: Path, name: str, section: Section) -> None:
    writers, argv = CASES[name]
    files = {}
    for fname, write in writers.items():
        target = tmp_path / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        write(target)
        files[fname] = str(target)
    args = []
    for arg in argv:
        for fname, target in files.items():
            arg = arg.replace("{" + fname + "}", target)
        args.append(arg)
    before = fingerprint(root)
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "pulsesynth.cli", *args], cwd=root,
                              env=os.environ | {"PULSESYNTH_ROOT": str(root)},
                              capture_output=True, text=True, timeout=60)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        code, out, err = -1, "", "timed out after 60 s"
    seconds = time.perf_counter() - start
    lines = [line for line in err.splitlines() if line.strip()]
    case = InputCase(name, refused_cleanly=is_clean_refusal(code, err),
                     value_leak=any(s in out + err for s in SENTINELS),
                     changed_on_refusal=fingerprint(root) != before, exit_code=code,
                     seconds=round(seconds, 2), first_line=(lines or [""])[-1][:200])
    section.cases.append(case)
    assert (case.refused_cleanly, case.value_leak, case.changed_on_refusal) == (
        True, False, False), err[-1500:]
