"""The ``pulsesynth`` parser loads without the heavy libraries, so help and argument
errors answer at once."""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys


def test_building_the_parser_imports_neither_torch_nor_sklearn() -> None:
    code = ("import sys, pulsesynth.cli; pulsesynth.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'sklearn', 'opacus', 'pandas') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_classifier_names_still_load_on_use() -> None:
    import pulsesynth.classifier as clf

    assert clf.DPClassifier.__name__ == "DPClassifier"
    assert callable(clf.same_recipe)


def _readme_commands() -> list[str]:
    """Every ``pulsesynth …`` line of the README's bash blocks, its comment cut off."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    lines = [re.split(r"\s#", line)[0].strip()
             for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
             for line in block.splitlines()]
    return [line for line in lines if re.match(r"(\.venv/bin/)?pulsesynth ", line)]


def test_every_command_the_readme_prints_parses_with_the_real_parser() -> None:
    """The README's concrete commands (the steward's example session, the walkthroughs)
    parse as printed; a synopsis line (``[--x N]``, ``A | B``) names a real command and
    subcommand. Catches a renamed command or option the README still shows."""
    import re
    import shlex

    from pulsesynth.cli import build_parser

    parser = build_parser()
    failed, concrete, synopses = [], 0, 0
    for line in _readme_commands():
        argv = shlex.split(line)[1:]
        if re.search(r"[\[\]|()]|\.\.\.|…", line):
            words = [w for w in argv if re.fullmatch(r"[a-z][a-z-]*", w)][:2]
            argv = (words[:1] + [w for w in words[1:] if w in _actions(parser, words[0])]
                    + ["--help"])
            synopses += 1
        else:
            concrete += 1
        if _exit_code(parser, argv) != 0:
            failed.append(line)
    assert failed == []
    assert (concrete >= 12, synopses >= 20) == (True, True), (concrete, synopses)


def _exit_code(parser: argparse.ArgumentParser, argv: list[str]) -> int | str | None:
    """0 when ``argv`` parses (or asks for help), else argparse's exit code."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            return exc.code
    return 0


def _actions(parser: argparse.ArgumentParser, command: str) -> set[str]:
    """The action names under ``command`` (empty when it has none)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    child = sub.choices[command]
    return {name for a in child._actions if isinstance(a, argparse._SubParsersAction)
            for name in a.choices}
