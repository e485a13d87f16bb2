"""Steps that chain: ``evaluate`` and ``audit`` sample a missing synthetic table first,
and ``pulsesynth run ID`` does train → sample → evaluate → audit in one command, charging
the ledger exactly as the separate steps do — on a raw export ingested through its
declared mapping with a generated row key (a steward trying a new table)."""

from __future__ import annotations

import contextlib
import io
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_ingest_mapping import EXPORT_SCHEMA, HEADER, schema_file, write_csv

from pulsesynth import cli, pipeline
from pulsesynth.artifacts import RunDir
from pulsesynth.command import cli_command
from pulsesynth.governance.ledger import Ledger
from pulsesynth.paths import Paths
from pulsesynth.warehouse import Warehouse

#: Tiny and fast: a few hundred rows, one epoch, one shadow (the audit's default). The
#: module's two trainings and two audits take about 55 s; they stay in the CI tier
#: (integration, not slow) because `pulsesynth run` is the command a new steward types.
FAST = ["--seed", "7", "--epochs", "1"]


@dataclass
class Out:
    code: int
    out: str
    err: str


def call(root: Path, argv: list[str]) -> Out:
    """The real CLI in ``root`` (PULSESYNTH_ROOT), its stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        mp.setenv("PULSESYNTH_ROOT", str(root))
        mp.setenv("PULSESYNTH_THREADS", "1")
        code = cli.main(argv)
    return Out(code, out.getvalue(), err.getvalue())


def export_root(base: Path, rows: int = 600) -> Path:
    """A project whose one table came in as a raw export (renamed, dropped and recoded
    columns, no key of its own)."""
    root = base
    path = schema_file(root, EXPORT_SCHEMA)
    rng = random.Random(3)
    data = []
    for i in range(rows):
        age = rng.choice([" 10 - 19", "20-29", "80- 89"])
        weather = rng.choice(["clear", "rain"])
        serious = rng.random() < (0.6 if weather == "rain" else 0.2)
        data.append([str(9000 + i), age, f"{rng.uniform(0, 200):.1f}", weather,
                     "serious" if serious else "minor"])
    export = write_csv(base / "export.csv", HEADER, data)
    Warehouse(Paths(root)).ingest(export, "accidents", path)
    return root


@dataclass
class Chained:
    steps_root: Path
    steps_run: Path
    audit: Out
    evaluate: Out
    run_root: Path
    run_run: Path
    run: Out


@pytest.fixture(scope="module")
def chained(tmp_path_factory: pytest.TempPathFactory) -> Chained:
    """The same table two ways: train, then audit and evaluate (which sample first); and
    one ``pulsesynth run``."""
    steps_root = export_root(tmp_path_factory.mktemp("steps"))
    steps_run = steps_root / "state" / "runs" / "accidents" / "by-steps"
    assert call(steps_root, ["train", "accidents", *FAST, "--out", str(steps_run)]).code == 0
    audit = call(steps_root, ["audit", str(steps_run)])
    evaluate = call(steps_root, ["evaluate", str(steps_run)])
    run_root = export_root(tmp_path_factory.mktemp("run"))
    run_run = run_root / "state" / "runs" / "accidents" / "by-run"
    run = call(run_root, ["run", "accidents", *FAST, "--out", str(run_run)])
    return Chained(steps_root, steps_run, audit, evaluate, run_root, run_run, run)


def test_run_charges_the_ledger_exactly_as_the_separate_steps(chained: Chained) -> None:
    assert chained.run.code == 0, chained.run.err
    steps = Ledger(Paths(chained.steps_root)).charges("accidents")
    run = Ledger(Paths(chained.run_root)).charges("accidents")
    assert len(run) == len(steps) == 1
    assert [(c.epsilon, c.delta, c.accountant) for c in run] == \
           [(c.epsilon, c.delta, c.accountant) for c in steps] == [(1.0, 1e-6, "prv")]


def test_audit_samples_a_missing_synthetic_table_first_and_says_so(chained: Chained) -> None:
    assert chained.audit.code == 0, chained.audit.err
    synthetic = RunDir(chained.steps_run).candidate.synthetic_parquet
    assert (f"no synthetic table yet: sampled it first (as `{cli_command()} sample "
            f"{chained.steps_run}` would): {synthetic}\n") in chained.audit.err
    assert synthetic.is_file() and "label: " in chained.audit.out


def test_evaluate_after_audit_finds_the_table_and_samples_nothing(chained: Chained) -> None:
    assert chained.evaluate.code == 0, chained.evaluate.err
    assert "no synthetic table yet" not in chained.evaluate.err
    assert "column shapes" in chained.evaluate.out


def test_run_writes_every_steps_output_and_prints_gate_and_next_steps(
        chained: Chained) -> None:
    candidate = RunDir(chained.run_run).candidate
    for path in (candidate.synthetic_parquet, candidate.utility_json, candidate.audit_json,
                 candidate.gate_json, candidate.release_stats_json):
        assert path.is_file(), path
    out = chained.run.out
    assert out.index("trained about") < out.index("synthetic table written to") \
        < out.index("column shapes") < out.index("label: ") < out.index("Next steps:")
    assert "  a seeded run is never released: run again without --seed\n" in out
    assert [line for line in chained.run.err.splitlines() if line.startswith("accidents: ")
            and line.endswith(" ...")] == [f"accidents: {s} ..." for s in
                                           ("start", "train", "sample", "evaluate", "audit")]


def test_run_samples_the_same_number_of_rows_as_the_separate_steps(chained: Chained) -> None:
    import pandas as pd

    rows = [len(pd.read_parquet(RunDir(r).candidate.synthetic_parquet))
            for r in (chained.steps_run, chained.run_run)]
    assert rows[0] == rows[1] == pipeline.public_sizes(chained.run_run)["train"]


def test_evaluate_of_an_untrained_run_names_the_commands_in_one_line(
        tmp_path: Path) -> None:
    root = export_root(tmp_path, rows=60)
    run_dir = root / "state" / "runs" / "accidents" / "untrained"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PULSESYNTH_ROOT", str(root))
        pipeline.start_run("accidents", run_dir, seed=1)
    for command in ("evaluate", "audit"):
        got = call(root, [command, str(run_dir)])
        assert got.code == 2 and got.out == ""
        cli_name = cli_command()
        assert got.err == (f"error: {run_dir}: no synthetic table and no trained model yet, "
                           f"so nothing to sample; start a run with `{cli_name} run accidents` "
                           f"(train, sample, evaluate, audit) or `{cli_name} train accidents`\n")
    assert Ledger(Paths(root)).charges("accidents") == []


def test_run_refuses_a_bad_epsilon_before_anything_runs(tmp_path: Path) -> None:
    root = export_root(tmp_path, rows=60)
    got = call(root, ["run", "accidents", "--epsilon", "0"])
    assert got.code == 2 and got.err.startswith("error: pulsesynth run: argument --epsilon")
    assert not (root / "state" / "runs").exists()
