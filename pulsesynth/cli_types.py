"""Argument types of the ``pulsesynth`` command: every value is checked where it enters.

Each type is a thin adapter over the library's one check of that value
(:func:`pulsesynth.schema.check_dataset_id`, :mod:`pulsesynth.params`), so the CLI and the
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


def _check_dataset_id(value: str) -> str:
    # Imported on use: pulsesynth.schema pulls in pandas (through its relations).
    from pulsesynth.schema import check_dataset_id

    return check_dataset_id(value)


#: ``ID`` / ``--dataset``: an ASCII lower-case identifier of at most 64 characters.
dataset_id = _typed(str, "a dataset id", _check_dataset_id)
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


def parse_args(parser: argparse.ArgumentParser, argv: Any) -> argparse.Namespace | int:
    """``parser.parse_args(argv)``, or the exit code argparse chose (``--help``: 0, a usage
    error: 2, already reported on one line) instead of raising ``SystemExit``."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        sys.stderr.flush()
        return exc.code if isinstance(exc.code, int) else 2
