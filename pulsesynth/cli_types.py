"""Argument types of the ``pulsesynth`` command: every value is checked where it enters.

Each type is a thin adapter over the library's one check of that value
(:func:`pulsesynth.ids.check_dataset_id`, :mod:`pulsesynth.params`), so the CLI and the
Python API refuse the same values with the same words. :class:`OneLineParser` turns every
usage error into one line on stderr (exit code 2): no usage block, no traceback.

Imports stay light (no pandas, torch or scikit-learn): ``pulsesynth --help`` and most
argument errors answer at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from pulsesynth.budget import MAX_LIFETIME_EPSILON, MAX_RUN_EPSILON
from pulsesynth.errors import PulseSynthError
from pulsesynth.ids import check_dataset_id
from pulsesynth.params import (
    MAX_EPOCHS,
    MAX_SAMPLE_ROWS,
    MAX_SHADOWS,
    check_count,
    check_epsilon,
    check_seed,
)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``error: PROG: MESSAGE``."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"error: {self.prog}: {text} (see {self.prog} --help)\n")


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 24 else repr(text[:21]) + "..."


def _typed(convert: Callable[[str], Any], kind: str,
           check: Callable[[Any], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except (TypeError, ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {kind}, got {_shown(text)}") from None
        try:
            return check(value)
        except PulseSynthError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = kind  # argparse names the type in a few of its own messages
    return parse


def _epsilon(ceiling: float) -> Callable[[str], float]:
    return _typed(float, "a number", lambda v: check_epsilon(v, "ε", ceiling=ceiling))


def _count(minimum: int = 1, maximum: int | None = None) -> Callable[[str], int]:
    return _typed(int, "a whole number",
                  lambda v: check_count(v, "the value", minimum=minimum, maximum=maximum))


#: ``ID`` / ``--dataset``: an ASCII lower-case identifier of at most 64 characters.
dataset_id = _typed(str, "a dataset id", check_dataset_id)
#: ``--epsilon`` / ``--per-run``: a finite ε above 0, at most the public per-run ceiling.
run_epsilon = _epsilon(MAX_RUN_EPSILON)
#: ``--lifetime``: a finite ε above 0, at most the public lifetime ceiling.
lifetime_epsilon = _epsilon(MAX_LIFETIME_EPSILON)
#: ``--seed``: a whole number from 0 to 2⁶³ − 1.
seed = _typed(int, "a whole number", lambda v: check_seed(v, "the seed"))
#: ``--max-rows``, ``--rate-limit`` …: a whole number of at least 1.
positive_count = _count()
#: ``--epochs``: 1 to :data:`~pulsesynth.params.MAX_EPOCHS`.
epochs = _count(maximum=MAX_EPOCHS)
#: ``--rows`` / ``-n`` of a draw: 1 to :data:`~pulsesynth.params.MAX_SAMPLE_ROWS`.
sample_rows = _count(maximum=MAX_SAMPLE_ROWS)
#: ``--shadows``: 1 to :data:`~pulsesynth.params.MAX_SHADOWS`.
shadows = _count(maximum=MAX_SHADOWS)
#: ``--port``: 1 to 65535.
port = _count(maximum=65535)


_LIGHT: set[Callable[..., Any]] = set()


def light(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Mark a handler that computes nothing (metadata, the registry, the ledger): it runs
    without :func:`pulsesynth.threads.compute_threads`, which loads torch and scikit-learn
    to cap their threads, so listing or showing answers at once."""
    _LIGHT.add(handler)
    return handler


def is_light(handler: Callable[..., Any]) -> bool:
    """Whether ``handler`` was marked :func:`light`."""
    return handler in _LIGHT


def list_actions(parser: argparse.ArgumentParser,
                 then: Callable[[argparse.Namespace], int] | None = None
                 ) -> Callable[[argparse.Namespace], int]:
    """The handler of a command group given no action: its own help (usage, actions,
    options) on stderr, not the top-level one; a usage error (exit 2). With ``then``
    (a group whose bare form does something, e.g. ``budget``): run it first, then list the
    actions, and return its exit code."""
    def handler(args: argparse.Namespace) -> int:
        code = then(args) if then is not None else 2
        if then is None or not getattr(args, "json", False):  # JSON: for programs
            sys.stdout.flush()
            parser.print_help(sys.stderr)
        return code
    return light(handler) if then is None or is_light(then) else handler


def describe(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every sub-command the text it is listed with as the description of its own
    ``--help`` (argparse shows it only in the parent's list), recursively."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            for name, sub in action.choices.items():
                text = helps.get(name)
                if sub.description is None and text:
                    sub.description = text[:1].upper() + text[1:] + "."
                describe(sub)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Any) -> argparse.Namespace | int:
    """``parser.parse_args(argv)``, or the exit code argparse chose (``--help``: 0, a usage
    error: 2, already reported on one line) instead of raising ``SystemExit``."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        sys.stderr.flush()
        return exc.code if isinstance(exc.code, int) else 2
