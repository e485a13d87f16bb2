"""Progress of the long CLI steps: a bar with the epoch count and ε so far on a terminal,
plain lines (no bar) when stderr is not a terminal; never a data value."""

from __future__ import annotations

import io

from pulsesynth.cli_progress import Progress, plain_line

EVENTS = [{"epoch": e, "epochs": 3, "loss": 1.5 / e, "epsilon": 0.2 * e} for e in (1, 2, 3)]


class Terminal(io.StringIO):
    """A stream that says it is a terminal (what tqdm draws on)."""

    def isatty(self) -> bool:
        return True


def test_on_a_terminal_training_shows_a_bar_with_epochs_and_epsilon_so_far() -> None:
    stream = Terminal()
    with Progress("taxi_trips: training", stream=stream) as progress:
        assert progress.bars
        for event in EVENTS:
            progress.epoch(event)
    out = stream.getvalue()
    final = out.split("\r")[-1]
    assert final.startswith("taxi_trips: training: 100%")
    assert "3/3" in final and "loss 0.5, ε 0.6" in final
    assert "epoch 1, epochs 3" not in out  # no plain lines beside the bar


def test_off_a_terminal_there_is_no_bar_but_a_line_per_epoch() -> None:
    stream = io.StringIO()
    with Progress("training", stream=stream) as progress:
        assert not progress.bars
        for event in EVENTS:
            progress.epoch(event)
        assert progress.mapper(lambda j: j * 2, [1, 2]) == [2, 4]
    assert stream.getvalue().splitlines() == [plain_line(e) for e in EVENTS]
    assert plain_line(EVENTS[1]) == "  epoch 2, epochs 3, loss 0.75, epsilon 0.4"
    assert "\r" not in stream.getvalue()


def test_shadow_jobs_run_in_order_under_a_bar_and_the_uncounted_step_is_announced() -> None:
    stream = Terminal()
    with Progress("audit shadows", stream=stream, after="attacks") as progress:
        assert progress.mapper(lambda job: job[1], [("m", 0), ("r", 1), ("m", 2)]) == [0, 1, 2]
    assert "3/3" in stream.getvalue().split("\r")[-1]
    assert stream.getvalue().endswith("audit shadows: attacks\n")
    stream = Terminal()
    with Progress("clf", stream=stream, after="attacking") as progress:
        for event in EVENTS:
            progress.epoch(event)
    assert stream.getvalue().endswith("clf: attacking\n")


def test_a_terminal_reporting_no_size_still_gets_a_bar(monkeypatch) -> None:
    """A bare pty reports 0 × 0 (e.g. under `script`); tqdm drew nothing in 0 rows."""
    import os
    import shutil

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    monkeypatch.setattr(shutil, "get_terminal_size",
                        lambda fallback=(80, 24): os.terminal_size((0, 0)))
    stream = Terminal()
    with Progress("t", stream=stream) as progress:
        progress.epoch(EVENTS[0])
    assert "1/3" in stream.getvalue()


def test_a_non_private_epoch_says_so_instead_of_an_epsilon() -> None:
    stream = Terminal()
    with Progress("t", stream=stream) as progress:
        progress.epoch({"epoch": 1, "epochs": 2, "loss": 1.0, "epsilon": None})
    assert "ε n/a (non-private)" in stream.getvalue()
