"""Text progress bars on stderr: a fit's or an experiment's (:class:`ProgressBar`,
shown only for runs longer than about a second), and the rules a sweep's bar shares."""

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
    from the updates after it (:class:`TimeLeft`), so a short run stays silent
    however long its compilation took, and the estimate is not inflated by it.
    The elapsed time counts from the bar's creation, compilation included (as
    ``History.wall_time``); times read as :func:`duration` writes them.  A
    sweep's bar (:class:`fastinit.sweep.execute.SweepProgress`) shares these
    rules.

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
        self.left = TimeLeft()  # the first update only starts its clock
        self.drawn = 0  # length of the line on screen
        self.tenths = 0  # tenths of the run written as lines, not on a terminal
        self.tail = ""  # what close() writes: the end of the line, or a last line

    def update(self, done: int, loss: float | tuple[float, float] | None = None) -> None:
        """Redraw for ``done`` iterations finished; ``loss`` is the latest value, or the
        lowest and the highest of several networks' (``loss 0.2163-2.302``)."""
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        self.left.update(elapsed, done)
        remaining = self.left.seconds(elapsed, done, self.total)
        if not self.shown and self.min_seconds > 0:
            # the first update's time is mostly compilation on a first run: the bar
            # waits for a rate, then appears if the run is long without it
            measured = self.left.since(elapsed)
            if remaining is None or measured + remaining < self.min_seconds:
                return
        self.shown = True
        if loss is None:
            tail = ""
        elif isinstance(loss, tuple):
            tail = f" loss {loss[0]:.4g}-{loss[1]:.4g}"
        else:
            tail = f" loss {loss:.4g}"
        line = f"{head(self.label, done, self.total, self.width)}{tail}"
        line = f"{line} {times(elapsed, remaining)}"
        if self._terminal():
            self.tail = "\n"
            text, self.drawn = redraw(line, self.drawn, self.stream)
            self._write(text)
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

    def _terminal(self) -> bool:
        """Whether the bar draws to a terminal (:func:`is_terminal`)."""
        return is_terminal(self.stream)

    def _write(self, text: str) -> None:
        """Draw ``text``; a stream that cannot be written turns the bar off (:func:`write`)."""
        if not write(self.stream, text):
            self.enabled = self.shown = False


class TimeLeft:
    """The time left of a run, from the rate of the work done after its first updates.

    The one rule of every progress bar's estimate (a fit's, an experiment's, a
    sweep's).  The first ``warmup`` updates that report work done only start the
    clock: on a first run they include numba compiling the kernels (seconds, in
    every worker of a sweep), so a rate from the run's start would make the early
    estimate far too long.  The rate is the work done since the last of them over
    the time since; there is no smoothing.

    Parameters
    ----------
    warmup : int
        Updates that only start the clock: 1 for a fit, the workers for a sweep
        (each worker's first run compiles; runs that finish side by side would
        otherwise count as work done in no time).
    """

    def __init__(self, warmup: int = 1) -> None:
        self.warmup = max(int(warmup), 1)
        self.seen = 0  # updates with work done, up to warmup
        self.mark = (0.0, 0)  # (elapsed, done) at the last of them

    def update(self, elapsed: float, done: int) -> None:
        """Note ``done`` units finished ``elapsed`` seconds into the run."""
        if done and self.seen < self.warmup:
            self.seen += 1
            self.mark = (elapsed, done)

    def since(self, elapsed: float) -> float:
        """Seconds measured so far: from the last warm-up update (0 before it)."""
        return elapsed - self.mark[0] if self.seen else 0.0

    def seconds(self, elapsed: float, done: int, total: int) -> float | None:
        """Seconds left of ``total`` units at ``done``; 0 when done, None before a rate."""
        if done >= total:
            return 0.0
        if self.seen < self.warmup or done <= self.mark[1]:
            return None
        return self.since(elapsed) / (done - self.mark[1]) * (total - done)


def duration(seconds: float) -> str:
    """A progress bar's time: ``12.3s`` under a minute, then ``4:05`` and ``1:02:03``.

    Parameters
    ----------
    seconds : float
        The duration.

    Returns
    -------
    str
        Tenths of a second for a short run; minutes and seconds (hours from an
        hour) for a long one.
    """
    if round(seconds, 1) < 60:
        return f"{seconds:.1f}s"
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def count(n: int, noun: str) -> str:
    """``1 run``, ``2 runs``: ``n`` and ``noun``, plural (an added ``s``) unless ``n`` is 1.

    Parameters
    ----------
    n : int
        How many.
    noun : str
        The singular noun.

    Returns
    -------
    str
    """
    return f"{n} {noun}{'' if n == 1 else 's'}"


def times(elapsed: float, left: float | None) -> str:
    """``[elapsed<left]``, ``?`` for a time left not yet measured (:class:`TimeLeft`)."""
    return f"[{duration(elapsed)}<{'?' if left is None else duration(left)}]"


def head(label: str, done: int, total: int, width: int) -> str:
    """``label  42% |##########              | 42/100``: the start of a progress line."""
    filled = width * done // max(total, 1)
    bar = "#" * filled + " " * (width - filled)
    return f"{label} {100 * done // max(total, 1):3d}% |{bar}| {done}/{total}"


def redraw(line: str, drawn: int, stream: TextIO | None) -> tuple[str, int]:
    """What to write on a terminal to draw ``line`` over the one on screen.

    Parameters
    ----------
    line : str
        The new line.
    drawn : int
        Length of the line on screen (0 for none).
    stream : file or None
        The terminal; None means ``sys.stderr``.

    Returns
    -------
    text : str
        ``\\r`` and ``line`` cut to the terminal's width (read now, where it can
        be: a line that wraps cannot be redrawn in place), padded with blanks
        over the end of a longer line on screen.
    drawn : int
        Length of the line now on screen.
    """
    width = columns(stream)
    if width:
        line = line[: width - 1]  # the last column would wrap on some terminals
    pad = drawn - len(line)
    if width:
        pad = min(pad, width - 1 - len(line))
    return "\r" + line + " " * max(pad, 0), len(line)


def columns(stream: TextIO | None) -> int | None:
    """The width of the terminal ``stream`` (None: ``sys.stderr``), or None where it
    cannot be read."""
    stream = stream if stream is not None else sys.stderr
    try:
        return os.get_terminal_size(stream.fileno()).columns or None
    except (AttributeError, OSError, ValueError):  # no fileno, closed, no size
        return None


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
