"""What ``make run`` prints and what Prefect shows: the run summary fits 100 columns with
each candidate's id and run directory and the whole blocked reason; the next steps work as
printed; a blocked dataset's subflow ends in a ``Blocked`` state."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from flows.nightly import (
    count_line,
    format_table,
    next_steps,
    subflow_state,
    table_rows,
)
from pulsesynth.runs import LOCK_HELD

REPO = Path(__file__).resolve().parent.parent
REASON = ("open: max_attack_advantage[strongest of model_mia, model_lira, synthetic_mia, "
          "query_shadow (DP)] = 0.1234 (limit 0.05) FAILS by 0.07340 — an attack tells "
          "training rows from unseen rows better than this label allows; confidential: "
          "max_attack_advantage_ci_high = 0.2 (limit 0.15) FAILS by 0.05")
SUMMARY = [
    {"dataset": "census_income", "status": "succeeded", "label": "open", "rows": 27123,
     "epsilon_spent": 1.0, "epsilon": 0.9973125478103765, "reason": "all open thresholds pass",
     "attack_advantage_dp": 0.008, "tstr_accuracy_dp": 0.814, "majority_accuracy_dp": 0.762,
     "fit_for_purpose": "useful", "candidate_id": "a" * 64,
     "run_dir": "/srv/pulse/state/runs/census_income/20261202T020000Z-1a2b3c"},
    {"dataset": "patient_tests", "status": "blocked", "label": "blocked", "rows": 5210,
     "epsilon_spent": 1.0, "reason": REASON, "attack_advantage_dp": 0.1234,
     "tstr_accuracy_dp": 0.791, "majority_accuracy_dp": 0.927,
     "fit_for_purpose": "not useful", "candidate_id": "b" * 64,
     "run_dir": "/srv/pulse/state/runs/patient_tests/20261202T020000Z-4d5e6f",
     "advice": ["a retrain costs ε 1 (per run) of the 8 left of its lifetime ε 10: "
                "8 retrain(s) left"]},
    {"dataset": "a_dataset_with_a_rather_long_identifier_for_its_table", "status": "failed",
     "reason": "validation failed: 1 of 40 expectation(s) failed", "epsilon_spent": 0.0},
    {"dataset": "taxi_trips", "status": "skipped", "reason": LOCK_HELD, "epsilon_spent": 0.0},
]


def test_the_summary_fits_100_columns_with_ids_run_dirs_and_the_whole_reason() -> None:
    text = format_table(SUMMARY)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    flat = " ".join(text.split())
    assert f"blocked: {REASON}" in flat  # wrapped, never cut
    assert "..." not in text
    for row in SUMMARY[:2]:
        assert f"candidate {row['candidate_id'][:12]}, run {row['run_dir']}" in flat
    assert "DP report: attack advantage 0.008, TSTR accuracy 0.814 (majority 0.762)" in flat
    assert "a retrain costs ε 1 (per run) of the 8 left" in flat
    assert f"skipped: {LOCK_HELD}" in text
    # a long id gets its own line instead of widening every row
    assert "a_dataset_with_a_rather_long_identifier_for_its_table" in lines
    assert lines[0].split() == ["dataset", "status", "label", "ε", "spent", "rows", "(DP)",
                                "fit"]


def test_dp_report_rates_keep_three_decimals_near_one_and_zero() -> None:
    row = dict(SUMMARY[0], attack_advantage_dp=0.0, tstr_accuracy_dp=0.99962,
               majority_accuracy_dp=0.92)
    flat = " ".join(format_table([row]).split())
    assert "DP report: attack advantage 0.000, TSTR accuracy 1.000 (majority 0.920)" in flat


def test_the_flow_message_counts_succeeded_blocked_and_failed() -> None:
    assert count_line(SUMMARY) == ("4 dataset(s): 1 succeeded, 1 blocked, 1 skipped, "
                                   "1 failed")
    assert count_line(SUMMARY[:1]) == "1 dataset(s): 1 succeeded, 0 blocked, 0 failed"


def test_the_markdown_report_and_table_artifact_are_narrow_and_carry_ids_and_run_dirs(
) -> None:
    md = format_table(SUMMARY, markdown=True)
    assert "### census_income: succeeded (open)\n" in md
    assert "### patient_tests: blocked\n" in md
    assert f"- candidate `{'b' * 12}`" in md
    assert f"- run directory `{SUMMARY[1]['run_dir']}`" in md
    assert "|" not in md.replace("/", "")  # a list per dataset, no wide table
    assert [sorted(r) for r in table_rows(SUMMARY)][0] == sorted(
        ["dataset", "status", "label", "epsilon_spent", "rows", "fit_for_purpose",
         "candidate", "run_id"])
    assert table_rows(SUMMARY)[0]["candidate"] == "a" * 12


def test_a_blocked_subflow_ends_in_a_red_named_blocked_state_carrying_its_row() -> None:
    state = subflow_state(SUMMARY[1])
    assert (state.type.value, state.name) == ("FAILED", "Blocked")
    assert state.message.startswith("blocked: open: max_attack_advantage")
    assert state.data == SUMMARY[1]
    assert state.result(raise_on_failure=False) == SUMMARY[1]
    assert (subflow_state(SUMMARY[0]).type.value, subflow_state(SUMMARY[0]).name) == (
        "COMPLETED", "Completed")
    assert (subflow_state(SUMMARY[3]).type.value, subflow_state(SUMMARY[3]).name) == (
        "COMPLETED", "Skipped")


def test_the_next_steps_work_as_printed(tmp_path: Path) -> None:
    """Every step ``make run`` prints names the installed command by a path that exists
    from the project root, and its subcommand parses (``--help`` of each)."""
    text = next_steps()
    cli = Path(sys.executable).parent / "pulsesynth"
    shown = os.path.relpath(cli) if not os.path.relpath(cli).startswith("..") else str(cli)
    assert text.splitlines()[1].startswith(f"  {shown} releases list")
    for line in text.splitlines()[1:-1]:
        argv = shlex.split(line.split("#")[0])
        assert Path(argv[0]).resolve() == cli.resolve()
        words = [w for w in argv[1:] if w.islower() and w.isalpha()][:2]
        out = subprocess.run([argv[0], *words, "--help"], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, (line, out.stderr)
    assert next_steps(".venv/bin/pulsesynth").splitlines()[:3] == [
        "Next steps:",
        "  .venv/bin/pulsesynth releases list --status candidate",
        "  .venv/bin/pulsesynth releases show ID                                # gate, "
        "audit, advice"]
    long = next_steps("/opt/city/data-office/pulse-synth/.venv/bin/pulsesynth")
    # a command longer than 100 columns is printed whole (to be copied), without a note
    assert all(len(line) <= 100 or "#" not in line for line in long.splitlines())
    assert "  /opt/city/data-office/pulse-synth/.venv/bin/pulsesynth publish" in long
    assert long.splitlines()[-1] == ("  (or `source /opt/city/data-office/pulse-synth/.venv/"
                                     "bin/activate` once, then type `pulsesynth ...`)")


def test_hints_name_the_command_by_a_path_that_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hint's command is the ``pulsesynth`` beside this Python: ``.venv/bin/pulsesynth``
    from the checkout (not on PATH unless activated), absolute from elsewhere."""
    from pulsesynth.command import cli_command

    cli = Path(sys.executable).parent / "pulsesynth"
    assert Path(cli_command()).resolve() == cli.resolve() and "/" in cli_command()
    assert cli_command("/opt/city/.venv/bin/python") == "/opt/city/.venv/bin/pulsesynth"
    monkeypatch.chdir(cli.parent)
    assert cli_command() == "./pulsesynth"
    monkeypatch.chdir(cli.parent.parent.parent)
    assert cli_command() == os.path.join(cli.parent.parent.name, "bin", "pulsesynth")
