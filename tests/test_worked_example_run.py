"""The worked example's last README line: ``pulsesynth run dubai_traffic_accidents`` on the
fake export ingested through the recoded schema trains at the schema's ε = 1, and the
synthetic table's dates and times are typed, valid and inside the declared bounds.
Trains a model, so integration (tests/conftest.py); 19 s here on one thread."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from test_worked_example import DATASET, EXAMPLE, readme_commands

from pulsesynth import cli


@dataclass(frozen=True)
class Ran:
    """The README's ``run`` line as run: exit code, stdout and the run's candidate folder."""

    code: int
    out: str
    candidate: Path


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    """The recoded ingest and the ``run`` line of the README, as printed."""
    root = tmp_path_factory.mktemp("steward-run")
    shutil.copytree(EXAMPLE, root / "examples" / "dubai_traffic_accidents")
    ingest, run = readme_commands()[3:]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PULSESYNTH_ROOT", str(root))
        mp.chdir(root)
        assert cli.main(ingest[1:]) == 0
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main(run[1:])
        (run_dir,) = (root / "state" / "runs" / DATASET).iterdir()
        yield Ran(code, out.getvalue(), run_dir / "candidate")


def test_run_line_trains_samples_evaluates_and_audits(ran: Ran) -> None:
    assert ran.code == 0
    assert "target injury_severities: majority baseline " in ran.out
    assert "\nlabel: " in ran.out
    for name in ("synthetic.parquet", "utility.json", "audit.json", "gate.json",
                 "privacy.json"):
        assert (ran.candidate / name).is_file(), name


def test_run_spends_the_schemas_epsilon_with_each_row_its_own_unit(ran: Ran) -> None:
    privacy: dict[str, Any] = json.loads((ran.candidate / "privacy.json").read_text())
    assert privacy["target_epsilon"] == 1.0 and privacy["epsilon"] <= 1.0
    assert (privacy["private"], privacy["randomness"], privacy["max_rows_per_unit"]) == (
        True, "secret", 1)
    assert privacy["unit_rule"] == ("no privacy unit declared: each row is a unit, epsilon "
                                    "holds per row")


def test_synthetic_dates_and_times_are_typed_valid_and_inside_the_bounds(ran: Ran) -> None:
    table = pq.read_table(ran.candidate / "synthetic.parquet")
    assert (str(table.schema.field("acd_date").type),
            str(table.schema.field("acd_time").type)) == ("date32[day]", "time64[us]")
    assert "row_id" not in table.column_names
    assert "insurance_company_name" not in table.column_names
    dates = [d for d in table.column("acd_date").to_pylist() if d is not None]
    times = table.column("acd_time").to_pylist()
    assert table.num_rows > 0 and dates and None not in times  # acd_time is not nullable
    assert all(isinstance(d, dt.date) and dt.date(2015, 1, 1) <= d <= dt.date(2025, 12, 31)
               for d in dates)
    assert all(isinstance(t, dt.time) and dt.time(0, 0) <= t <= dt.time(23, 59)
               for t in times)
