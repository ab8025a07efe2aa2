"""A tiny text progress bar on stderr, shown only for runs longer than about a second."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


class ProgressBar:
    """``fit  42% |#####       | 840/2000 loss 0.3127 [0.5s<0.7s]``, redrawn in place.

    The first update of a run (the first chunk of iterations, which on a first
    run includes seconds of compilation) only starts the clock: the rate, the
    time left and whether the run is long enough to draw the bar at all come
    from the updates after it, so a short run stays silent however long its
    compilation took, and the estimate is not inflated by it.

    A redraw that is shorter than the line before it (the time left losing a
    digit, a loss printed with fewer) is padded with blanks over the old
    line's end; on a terminal the line is cut to the terminal's width, read at
    every redraw, since a line that wraps cannot be redrawn in place.

    Parameters
    ----------
    total : int
        Number of iterations of the run.
    enabled : bool
        False draws nothing.
    min_seconds : float
        The bar appears once the time since the first update plus the
        estimated remaining time reaches this, so short runs stay silent; 0
        draws from the first update on (its time left reads ``?``).
    stream : file, optional
        Where to draw (default ``sys.stderr``).
    """

    def __init__(
        self,
        total: int,
        *,
        enabled: bool = True,
        min_seconds: float = 1.0,
        stream: TextIO | None = None,
        label: str = "fit",
        width: int = 24,
    ) -> None:
        self.total = max(int(total), 1)
        self.enabled = enabled
        self.min_seconds = min_seconds
        self.stream = stream
        self.label = label
        self.width = width
        self.start = time.perf_counter()
        self.shown = False
        self.first: tuple[float, int] | None = None  # (elapsed, done) at the first update
        self.drawn = 0  # length of the line on screen

    def update(self, done: int, loss: float | None = None) -> None:
        """Redraw for ``done`` iterations finished; ``loss`` is the latest value."""
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        if self.first is None and done:
            self.first = (elapsed, done)
        left = self.total - done
        measured = self.first is not None and done > self.first[1]
        remaining = float("inf") if left else 0.0
        if measured:
            since = elapsed - self.first[0]
            remaining = since / (done - self.first[1]) * left
        if not self.shown and self.min_seconds > 0:
            # the first update's time is mostly compilation on a first run: the bar
            # waits for a rate, then appears if the run is long without it
            if not measured or since + remaining < self.min_seconds:
                return
        self.shown = True
        filled = self.width * done // self.total
        bar = "#" * filled + " " * (self.width - filled)
        tail = "" if loss is None else f" loss {loss:.4g}"
        eta = f"{remaining:.1f}s" if measured or not left else "?"
        line = f"{self.label} {100 * done // self.total:3d}% |{bar}| {done}/{self.total}{tail}"
        self._write(self._fit(f"{line} [{elapsed:.1f}s<{eta}]"))

    def close(self) -> None:
        """End the line if the bar was drawn."""
        if self.shown:
            self._write("\n")
            self.shown = False
            self.drawn = 0

    def _fit(self, line: str) -> str:
        """``line`` to draw over the current one: cut to the terminal's width,
        padded with blanks over the end of a longer line before it."""
        columns = self._columns()
        if columns:
            line = line[: columns - 1]  # the last column would wrap on some terminals
        pad = self.drawn - len(line)
        if columns:
            pad = min(pad, columns - 1 - len(line))
        self.drawn = len(line)
        return "\r" + line + " " * max(pad, 0)

    def _columns(self) -> int | None:
        """The terminal's width where the bar draws to a terminal, else None."""
        stream = self.stream if self.stream is not None else sys.stderr
        try:
            if not stream.isatty():
                return None
            return os.get_terminal_size(stream.fileno()).columns or None
        except (AttributeError, OSError, ValueError):  # None, no fileno, closed, no size
            return None

    def _write(self, text: str) -> None:
        """Draw ``text``; a stream that cannot be written (``sys.stderr`` None under
        pythonw, a closed pipe) turns the bar off instead of failing the run."""
        stream = self.stream if self.stream is not None else sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except (AttributeError, OSError, ValueError):  # None, broken pipe, closed file
            self.enabled = self.shown = False
