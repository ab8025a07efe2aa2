"""A tiny text progress bar on stderr, shown only for runs longer than about a second."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


class ProgressBar:
    """``fit  42% |#####       | 840/2000 loss 0.3127 [0.5s<0.7s]``, on stderr.

    On a terminal the line is redrawn in place (``\\r``) at every update.  On a
    stream that is not one (``isatty()`` false or unavailable: a log file, a
    pipe, nohup, CI, a sweep worker's captured stderr) the bar writes no
    ``\\r`` and no padding, only whole lines: one when an update crosses a tenth
    of the run (10%, 20%, ..., 100%; one line however many tenths it crosses),
    and at :meth:`close` the last state if its line was not written (a run
    stopped between two tenths).  A finished run's last line reads 100%.

    The first update of a run (the first chunk of iterations, which on a first
    run includes seconds of compilation) only starts the clock: the rate, the
    time left and whether the run is long enough to draw the bar at all come
    from the updates after it, so a short run stays silent however long its
    compilation took, and the estimate is not inflated by it.

    On a terminal, a redraw that is shorter than the line before it (the time
    left losing a digit, a loss printed with fewer) is padded with blanks over
    the old line's end, and the line is cut to the terminal's width, read at
    every redraw (where it can be read), since a line that wraps cannot be
    redrawn in place.

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
        Where to draw (default ``sys.stderr``); whether it is a terminal is
        asked at every update.
    label : str
        The word before the percentage.
    width : int
        Characters of the bar between the ``|``.
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
        self.tenths = 0  # tenths of the run written as lines, not on a terminal
        self.tail = ""  # what close() writes: the end of the line, or a last line

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
        line = f"{line} [{elapsed:.1f}s<{eta}]"
        if self._terminal():
            self.tail = "\n"
            self._write(self._fit(line))
        else:
            self._log(line, 10 * done // self.total)

    def close(self) -> None:
        """End the line if the bar was drawn (on a file: write the last state if not written)."""
        if self.shown:
            if self.tail:
                self._write(self.tail)
            self.shown = False
            self.drawn = 0
            self.tail = ""

    def _log(self, line: str, tenths: int) -> None:
        """Not on a terminal: write ``line`` whole if it crosses a tenth, else keep it for close."""
        if tenths > self.tenths:
            self.tenths = tenths
            self.tail = ""
            self._write(line + "\n")
        else:
            self.tail = line + "\n"

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

    def _terminal(self) -> bool:
        """Whether the bar draws to a terminal (:func:`is_terminal`)."""
        return is_terminal(self.stream)

    def _columns(self) -> int | None:
        """The terminal's width, or None where it cannot be read."""
        stream = self.stream if self.stream is not None else sys.stderr
        try:
            return os.get_terminal_size(stream.fileno()).columns or None
        except (AttributeError, OSError, ValueError):  # no fileno, closed, no size
            return None

    def _write(self, text: str) -> None:
        """Draw ``text``; a stream that cannot be written turns the bar off (:func:`write`)."""
        if not write(self.stream, text):
            self.enabled = self.shown = False


def is_terminal(stream: TextIO | None) -> bool:
    """Whether a progress bar on ``stream`` draws to a terminal.

    Parameters
    ----------
    stream : file or None
        The stream; None means ``sys.stderr``.

    Returns
    -------
    bool
        ``stream.isatty()``; False where it cannot be asked (``sys.stderr`` None
        under pythonw, no ``isatty``, a closed file).
    """
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):  # None, no isatty, closed
        return False


def write(stream: TextIO | None, text: str) -> bool:
    """Write and flush ``text`` for a progress bar, never failing the run it reports.

    Parameters
    ----------
    stream : file or None
        The stream; None means ``sys.stderr``.
    text : str
        What to write.

    Returns
    -------
    bool
        False when the stream cannot be written (``sys.stderr`` None under
        pythonw, a pipe its reader closed, ``... 2>&1 | head``, a closed file):
        the bar should turn itself off.
    """
    stream = stream if stream is not None else sys.stderr
    try:
        stream.write(text)
        stream.flush()
    except (AttributeError, OSError, ValueError):  # None, broken pipe, closed file
        return False
    return True
