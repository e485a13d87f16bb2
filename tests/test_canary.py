"""Canary test: unique values planted in a source table appear nowhere but the warehouse.

A taxi-like table (2,000 real taxi rows) is ingested as ``canary_trips`` with three
canaries where validation allows them:

- a free-text column (``text`` columns are stored and validated, never synthesized)
  carrying a unique string on one row;
- the identifier column ``rownames`` holding an odd but in-bounds integer;
- the quasi-identifier ``distance`` holding an odd but in-bounds float.

(A categorical column cannot carry a canary: an undeclared category fails validation and
a declared one is public, in the schema.) The nightly flow runs on it under the Prefect
test harness, a steward approves the candidate, ``publish_approved`` publishes it, and
then Prefect's database (the harness's SQLite file and its API: flow and task runs, their
states and parameters, logs, artifacts), GX's temporary directories, every file under
``state/`` except trained models, ``published/`` and the portal's pages are searched.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

import flows  # noqa: F401
from flows.nightly import publish_approved, run_nightly
from flows.testing import close_test_harness, shared_test_harness
from pulsesynth.governance.lifecycle import approve
from pulsesynth.governance.record import list_releases
from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent
DATASET = "canary_trips"
CANARY_TEXT = "CANARY-pulse-9d41e-do-not-leak"
CANARY_ID = 8675309
CANARY_FLOAT = 87.654321
TEXT_PATTERNS = [re.compile(re.escape(CANARY_TEXT).encode()),
                 re.compile(rb"(?<![0-9.])8675309(?![0-9])"),
                 re.compile(rb"(?<![0-9])87\.654321(?![0-9])")]
BINARY_PATTERNS = [struct.pack("<q", CANARY_ID), struct.pack("<d", CANARY_FLOAT)]
# A policy that labels any DP candidate open, so that publication is exercised whatever
# the audit of this small table says (the test is about leaks, not about the gate).
LENIENT_POLICY = {"labels": {"open": {"max_epsilon": 1.0}}}


@pytest.fixture(scope="session")
def harness() -> Iterator[str]:
    yield shared_test_harness()
    close_test_harness()


def _gx_dirs() -> set[Path]:
    return {p for p in Path(tempfile.gettempdir()).glob("tmp*") if p.is_dir()}


@pytest.fixture(scope="module")
def canary_root(harness: str, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("canary")
    shutil.copytree(REPO / "schemas", root / "schemas")
    paths = Paths(root)
    wh = Warehouse(paths)
    wh.build(["taxi_trips"])
    raw = yaml.safe_load((root / "schemas" / "taxi_trips.yaml").read_text())
    raw["id"] = DATASET
    raw["title"] = "Canary trips"
    raw["columns"].append({"name": "trip_note", "type": "text", "role": "other",
                           "nullable": True, "description": "Free-text dispatcher note."})
    schema_path = root / "schemas" / f"{DATASET}.yaml"
    schema_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    frame = wh.pull("taxi_trips").frame.head(2000).copy()
    frame["trip_note"] = pd.Series([None] * len(frame), dtype=object, index=frame.index)
    frame.iloc[11, frame.columns.get_loc("trip_note")] = f"rider said {CANARY_TEXT}"
    frame.iloc[11, frame.columns.get_loc("rownames")] = CANARY_ID
    frame.iloc[12, frame.columns.get_loc("distance")] = CANARY_FLOAT
    source = tmp_path_factory.mktemp("source") / "canary.parquet"
    frame.to_parquet(source, index=False)
    wh.ingest(source, DATASET, schema_path)
    source.unlink()
    policy = root / "lenient-policy.yaml"
    policy.write_text(yaml.safe_dump(LENIENT_POLICY))

    gx_before = _gx_dirs()
    summary, state = run_nightly(datasets=[DATASET], root=str(root), epochs=1,
                                 policy=str(policy))
    row = summary[0]
    assert row["status"] == "succeeded", row
    for rel in list_releases(paths, dataset=DATASET, status="candidate"):
        approve(paths, rel.candidate_id, "test-steward", note="canary test")
    published = publish_approved(root=str(root))
    yield {"root": root, "paths": paths, "summary": summary, "state": state,
           "published": published, "gx_dirs": _gx_dirs() - gx_before, "db_url": harness}


def _leaks_in_bytes(data: bytes) -> list[str]:
    found = [p.pattern.decode() for p in TEXT_PATTERNS if p.search(data)]
    return found + [repr(b) for b in BINARY_PATTERNS if b in data]


def _leaks_in_frame(frame: pd.DataFrame) -> list[str]:
    found = []
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_numeric_dtype(s):
            values = pd.to_numeric(s, errors="coerce")
            if (values == CANARY_ID).any() or ((values - CANARY_FLOAT).abs() < 1e-9).any():
                found.append(f"numeric canary in column {col}")
        elif s.astype(str).str.contains(CANARY_TEXT, regex=False).any():
            found.append(f"text canary in column {col}")
    return found


def _scan_tree(base: Path, skip: tuple[str, ...] = ()) -> dict[str, list[str]]:
    leaks: dict[str, list[str]] = {}
    for path in base.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(base).as_posix()
        if any(part in skip for part in path.relative_to(base).parts):
            continue
        found = _leaks_in_bytes(path.read_bytes())
        if path.suffix == ".parquet":
            found += _leaks_in_frame(pd.read_parquet(path))
        if found:
            leaks[rel] = found
    return leaks


def test_canary_is_in_the_warehouse(canary_root: dict[str, Any]) -> None:
    """The search must be able to find it: the warehouse holds every canary."""
    frame = Warehouse(canary_root["paths"]).pull(DATASET).frame
    assert len(_leaks_in_frame(frame)) == 3
    leaks = _scan_tree(canary_root["root"] / "warehouse")
    table = Path(Warehouse(canary_root["paths"]).entry(DATASET)["table_path"])
    assert sum("in column" in x for x in leaks[table.relative_to("warehouse").as_posix()]) == 3


def test_canary_not_in_state_or_published(canary_root: dict[str, Any]) -> None:
    root: Path = canary_root["root"]
    assert canary_root["published"], "nothing was published"
    assert (root / "published" / DATASET).is_dir()
    # Trained models are sensitive artifacts kept in state/ (binary weights); every other
    # file there — run records, candidates, reports, plots, GX results — is searched.
    assert _scan_tree(root / "state", skip=("model",)) == {}
    assert _scan_tree(root / "published") == {}


def test_canary_not_in_prefect(canary_root: dict[str, Any]) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_runs = client.read_flow_runs()
        task_runs = client.read_task_runs()
        logs = client.read_logs()
        artifacts = client.read_artifacts()
    assert logs and artifacts and flow_runs and task_runs
    dump = json.dumps([[r.model_dump(mode="json") for r in group]
                       for group in (flow_runs, task_runs, logs, artifacts)]).encode()
    assert DATASET.encode() in dump  # the search sees our runs
    assert _leaks_in_bytes(dump) == []
    # The harness's SQLite file itself (and its WAL), byte for byte.
    db = Path(canary_root["db_url"].split("///", 1)[1])
    for path in db.parent.glob(db.name + "*"):
        assert _leaks_in_bytes(path.read_bytes()) == [], path


def test_canary_not_in_gx_temporary_output(canary_root: dict[str, Any]) -> None:
    for directory in canary_root["gx_dirs"]:
        try:
            assert _scan_tree(directory) == {}, directory
        except (PermissionError, FileNotFoundError):  # another process's temp dir
            continue


def test_canary_not_on_the_portal(canary_root: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from pulsesynth.portal.app import create_app

    client = TestClient(create_app(canary_root["paths"]))
    pages = ["/", "/api/datasets", f"/datasets/{DATASET}", f"/api/datasets/{DATASET}"]
    index = json.loads((canary_root["root"] / "published" / "index.json").read_text())
    for entry in index["dataset"]:
        pages.append(f"/datasets/{entry['path']}")
        pages += [f["downloadURL"] for f in entry["files"] if f.get("downloadURL")]
    seen = 0
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        seen += 1
        assert _leaks_in_bytes(response.content) == [], page
        if page.endswith(".parquet"):
            import io

            assert _leaks_in_frame(pd.read_parquet(io.BytesIO(response.content))) == []
    assert seen > 5
