"""fastinit._progress: the progress bars (a fit's, an experiment's, a sweep's) on a
terminal and on a file or a pipe.

More of its tests (padding, the terminal's width, the first chunk's time, an
unwritable stderr) live in test_train.py, test_compile_helper.py and test_sweep.py.
"""

from __future__ import annotations

import io
import itertools
import os

import pytest

from fastinit import _progress
from fastinit._progress import ProgressBar
from fastinit.sweep.execute import SweepProgress


class Terminal(io.StringIO):
    """A terminal of unknown width (no ``fileno``): the bar redraws in place."""

    def isatty(self) -> bool:
        return True


class Writer:
    """A stream with ``write`` and ``flush`` only: ``isatty`` unavailable."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """One second per reading of the clock (the bar reads it once per update)."""
    ticks = itertools.count()
    monkeypatch.setattr(_progress.time, "perf_counter", lambda: float(next(ticks)))


def _run(stream, dones, total=100, min_seconds=0.0, close=True) -> str:
    bar = ProgressBar(total, min_seconds=min_seconds, stream=stream)
    for done in dones:
        bar.update(done, 0.5)
    if close:
        bar.close()
    return stream.text if isinstance(stream, Writer) else stream.getvalue()


def _percents(text: str) -> list[int]:
    return [int(line.split("%")[0].split()[-1]) for line in text.splitlines()]


def test_a_file_gets_whole_lines_one_per_tenth_of_the_run():
    # a log, nohup, CI, a worker's captured stderr: no \r, no padding, whole lines
    text = _run(io.StringIO(), range(1, 101))
    assert "\r" not in text and text.endswith("\n")
    assert _percents(text) == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert all(line == line.rstrip() for line in text.split("\n"))
    assert text.splitlines()[-1].startswith("fit 100% |" + "#" * 24 + "| 100/100 loss 0.5 [")


def test_a_file_gets_one_line_per_update_however_many_tenths_it_crosses():
    text = _run(io.StringIO(), [5, 37, 38, 100])
    assert _percents(text) == [37, 100]
    assert "37/100" in text.splitlines()[0]


def test_the_last_line_on_a_file_is_where_the_run_stopped():
    # interrupted or diverged: close() writes the state reached, once
    out = io.StringIO()
    bar = ProgressBar(100, min_seconds=0.0, stream=out)
    for done in (12, 25, 42):
        bar.update(done, 0.5)
    bar.close()
    bar.close()
    assert _percents(out.getvalue()) == [12, 25, 42]
    assert out.getvalue().splitlines()[-1].split(" [")[0].endswith("42/100 loss 0.5")


def test_a_finished_run_on_a_file_ends_with_a_single_100_percent_line():
    text = _run(io.StringIO(), [3, 50, 100])
    assert _percents(text) == [50, 100]
    assert text.count("100/100") == 1


def test_a_stream_without_isatty_is_not_a_terminal():
    text = _run(Writer(), [30, 60, 100])
    assert "\r" not in text and _percents(text) == [30, 60, 100]


@pytest.mark.parametrize("stream", [io.StringIO, Terminal])
def test_a_short_run_stays_silent_on_a_file_and_on_a_terminal(stream):
    assert _run(stream(), [10, 50, 100], min_seconds=60.0) == ""


def test_a_terminal_still_gets_a_redraw_per_update():
    out = Terminal()
    text = _run(out, [5, 37, 38, 100])
    draws = text.split("\r")
    assert draws[0] == "" and len(draws) == 5 and text.endswith("\n")
    assert [int(d.split("%")[0].split()[-1]) for d in draws[1:]] == [5, 37, 38, 100]
    assert text.count("\n") == 1  # the line close() ends


def _clock_at(monkeypatch, times: list[float]) -> None:
    """The clock reads ``times[0]`` (the test moves it) instead of a second per reading."""
    monkeypatch.setattr(_progress.time, "perf_counter", lambda: times[0])


def _tail(stream: io.StringIO) -> str:
    """The last draw on a terminal: its ``[elapsed<left]``."""
    return stream.getvalue().split("\r")[-1].rstrip().rsplit(" ", 1)[-1]


def test_a_serial_sweep_estimate_leaves_out_the_first_run(monkeypatch):
    # the first run of a sweep compiles (5 s on an empty cache), the others take 1 s:
    # at 2 of 5 done, 3 left take 3 s, not the 9 s that 6 s / 2 runs suggests
    now = [0.0]
    _clock_at(monkeypatch, now)
    out = Terminal()
    bar = SweepProgress(5, stream=out)
    bar.restart_clock()
    for now[0] in (5.0, 6.0):
        bar.update("ok")
    assert _tail(out) == "[6.0s<3.0s]"


def test_a_sweep_estimate_starts_once_every_worker_has_done_its_first_run(monkeypatch):
    # two workers compile side by side (5 s), then each finishes a run a second: the
    # rate is measured from the second run done, when both have compiled
    now = [0.0]
    _clock_at(monkeypatch, now)
    out = Terminal()
    bar = SweepProgress(10, stream=out)
    bar.restart_clock(workers=2)
    tails = []
    for now[0] in (6.0, 6.1, 7.0, 7.1):
        bar.update("ok")
        tails.append(_tail(out))
    assert tails == ["[6.0s<?]", "[6.1s<?]", "[7.0s<6.3s]", "[7.1s<3.0s]"]


def test_a_fit_and_a_sweep_print_their_times_by_one_rule(monkeypatch):
    # tenths of a second under a minute, minutes:seconds from a minute on, as a fit
    # of several minutes and a sweep of a few seconds both need
    now = [0.0]
    _clock_at(monkeypatch, now)
    fit, sweep = Terminal(), Terminal()
    bar = ProgressBar(1000, min_seconds=0.0, stream=fit)
    progress = SweepProgress(3, stream=sweep)
    progress.restart_clock()
    for now[0], done in ((2.0, 10), (75.0, 100)):
        bar.update(done)
        progress.update("ok")
    assert _tail(fit) == "[1:15<12:10]" and _tail(sweep) == "[1:15<1:13]"
    assert _progress.duration(59.94) == "59.9s"
    assert _progress.duration(59.96) == "1:00" and _progress.duration(3600.4) == "1:00:00"


def test_the_sweep_bar_fits_a_narrow_terminal(monkeypatch):
    # a wrapped line cannot be redrawn in place: cut to the width, as the fit's bar
    class Narrow(Terminal):
        def fileno(self) -> int:
            return 2

    monkeypatch.setattr(_progress.os, "get_terminal_size", lambda fd: os.terminal_size((50, 24)))
    out = Narrow()
    bar = SweepProgress(4, stream=out)
    bar.update("ok")
    bar.update("elsewhere")
    draws = out.getvalue().split("\r")[1:]
    assert [len(d) for d in draws] == [49, 49]
    assert draws[0].startswith("sweep  25% |######")


def test_percentage_is_floored_and_reads_100_only_when_done():
    # rounded, an unfinished run read 100% from 99.5% on (mutation audit)
    assert _progress.head("fit", 199, 200, 10).startswith("fit  99% |")
    assert _progress.head("fit", 1999, 2000, 10).startswith("fit  99% |")
    assert _progress.head("fit", 200, 200, 10).startswith("fit 100% |")
