"""Progress of the long CLI steps: training epochs with ε so far, audit shadows, the DP
classifier.

On a terminal (stderr is a TTY) a ``tqdm`` bar; otherwise (a log file, a pipe, CI) the bar
is off and training prints one plain line per epoch, as before. Only counts, the mean
loss and ε spent so far are shown: never a value of the data.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TextIO

__all__ = ["Progress", "plain_line"]


def plain_line(event: dict[str, Any]) -> str:
    """One training event as a line: ``epoch 3, epochs 50, loss 1.234, epsilon 0.41``."""
    parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in event.items()]
    return "  " + ", ".join(parts)


class Progress:
    """Progress of one CLI step, shown on ``stream`` (default stderr).

    ``epoch`` is a training callback (:func:`pulsesynth.dp` emits ``epoch``, ``epochs``,
    ``loss``, ``epsilon``); ``mapper`` runs audit shadow jobs one by one in this process
    with a bar (the ``mapper`` of :func:`pulsesynth.pipeline.audit`). Use as a context
    manager so the bar is closed (and the line ended) whatever happens.
    """

    def __init__(self, desc: str, stream: TextIO | None = None,
                 enabled: bool | None = None, after: str | None = None) -> None:
        self.desc = desc
        #: Said when the last epoch is done (the uncounted work that follows).
        self.after = after
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        #: Whether bars are drawn: on a terminal only, unless told.
        self.bars = bool(isatty and isatty()) if enabled is None else enabled
        self._bar: Any = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """End the current bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _new_bar(self, total: int | None, desc: str, unit: str) -> Any:
        from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs pinned

        self.close()
        # The terminal's size, at most 100 columns; a terminal that reports 0 × 0 (a bare
        # pty, e.g. under `script`) gets 100 × 24 — tqdm draws nothing in 0 rows.
        size = shutil.get_terminal_size((100, 24))
        self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream,
                         ncols=min(size.columns or 100, 100), nrows=size.lines or 24,
                         leave=True, disable=not self.bars)
        return self._bar

    def epoch(self, event: dict[str, Any]) -> None:
        """Training callback: advance the epoch bar, with the loss and ε spent so far."""
        if not self.bars:
            print(plain_line(event), file=self.stream)
            return
        if self._bar is None:
            self._new_bar(event.get("epochs"), self.desc, "epoch")
        epoch = int(event.get("epoch") or 0)
        self._bar.update(max(0, epoch - self._bar.n))
        eps = event.get("epsilon")
        loss = event.get("loss")
        self._bar.set_postfix_str(
            (f"loss {loss:.4g}, " if isinstance(loss, float) else "")
            + (f"ε {eps:.3g}" if isinstance(eps, (int, float)) else "ε n/a (non-private)"),
            refresh=True)
        if self.after and self._bar.total is not None and epoch >= self._bar.total:
            self.close()
            self.note(self.after)

    def mapper(self, fn: Callable[[Any], Any], jobs: Iterable[Any]) -> list[Any]:
        """Run ``fn`` over ``jobs`` here, in order, advancing a bar per job."""
        jobs = list(jobs)
        bar = self._new_bar(len(jobs), self.desc, "shadow")
        out = []
        for job in jobs:
            out.append(fn(job))
            bar.update(1)
        self.close()
        if self.after:
            self.note(self.after)
        return out

    def note(self, text: str) -> None:
        """A status line between bars (a step without a count, e.g. the attacks)."""
        if self.bars:
            print(f"{self.desc}: {text}", file=self.stream, flush=True)
