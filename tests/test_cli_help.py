"""The ``pulsesynth`` command explains itself: every argument has help text, a command
group given no action lists its actions, and help and argument errors answer without
loading the heavy libraries."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pulsesynth import cli

GROUPS = ("warehouse", "catalog", "schemas", "releases", "tokens", "grants", "budget")


def _commands(parser: argparse.ArgumentParser, prefix: str = "pulsesynth"
              ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prefix} {name}")


def test_every_argument_of_every_command_has_help_text() -> None:
    missing = []
    for name, parser in _commands(cli.build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not (action.help or "").strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_every_command_has_a_description_in_its_group() -> None:
    for name, parser in _commands(cli.build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {c.dest: c.help for c in action._choices_actions}
                assert set(helps) == set(action.choices), name
                assert all((h or "").strip() for h in helps.values()), name


def test_every_command_help_opens_with_a_description(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["releases", "show", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.split("\n\n")[1] == "One release with its gate and decisions."
    for name, parser in _commands(cli.build_parser()):
        assert parser.description, name


def test_the_nightly_runs_arguments_have_help_text() -> None:
    from flows.nightly import build_parser

    parser = build_parser()
    assert [a.dest for a in parser._actions if not (a.help or "").strip()] == []


@pytest.mark.parametrize("group", GROUPS)
def test_a_group_without_an_action_lists_its_actions(
        group: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path) -> None:
    monkeypatch.setenv("PULSESYNTH_ROOT", str(tmp_path))
    code = cli.main([group])
    out, err = capsys.readouterr()
    parser = dict(_commands(cli.build_parser()))[f"pulsesynth {group}"]
    actions = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(actions.choices) and all(f"    {name} " in err for name in actions.choices)
    assert f"usage: pulsesynth {group}" in err
    # not the top-level help: the other commands are not listed
    assert "release-classifier" not in err
    if group == "budget":  # budget alone still shows the budget, then its actions
        assert code == 0 and "dataset" in out
    else:
        assert code == 2 and out == ""


def test_help_and_argument_errors_never_import_torch_sklearn_or_pandas() -> None:
    """``python -X importtime`` lists every module the command loads: neither ``--help``
    nor an argument error loads the heavy libraries (import time, not wall time, is
    checked: a busy machine makes any timed assertion flaky)."""
    for argv in (["--help"], ["train", "--help"], ["train", "census_income", "--epsilon",
                                                   "x"], ["releases"]):
        out = subprocess.run([sys.executable, "-X", "importtime", "-m", "pulsesynth.cli",
                              *argv], capture_output=True, text=True, timeout=120)
        assert out.returncode in (0, 2), out.stderr[-2000:]
        loaded = {line.split("|")[-1].strip().split(".")[0]
                  for line in out.stderr.splitlines() if line.startswith("import time:")}
        assert "pulsesynth" in loaded
        assert loaded & {"torch", "sklearn", "pandas", "opacus", "prefect"} == set(), argv


@pytest.mark.parametrize("value", ["a", "taxi_trips", "x" * 64, "x" * 65, "", "A", "1a",
                                   "a-b", "a b", "tаxi", "a\n", "_a", "a_1_"])
def test_the_cli_checks_ids_with_the_library_rule(value: str) -> None:
    """One rule (pulsesynth.ids, no pandas): what the library refuses, the parser refuses."""
    from pulsesynth import cli_types
    from pulsesynth.ids import DatasetIdError, check_dataset_id

    try:
        check_dataset_id(value)
        library_ok = True
    except DatasetIdError:
        library_ok = False
    if library_ok:
        assert cli_types.dataset_id(value) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            cli_types.dataset_id(value)
