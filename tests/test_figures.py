"""The figures say what they draw: the drawing helpers the experiments and the report share.

Each experiment's own figure tests live beside its other tests; these cover the pieces
of :mod:`fastinit.experiments._common` that several figures use.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fastinit.experiments._common import LOG_AXIS_TOP, log_axis, pyplot


@pytest.mark.parametrize("top", [1e250, 1.9e304, 1e308])
def test_a_log_axis_keeps_curves_that_near_the_float64_limit(top):
    # a float64 run diverging geometrically climbs to ~1e304 before its NaN: matplotlib's
    # log margins overflowed there and the axis fell back to 1-10, every line unreadable
    # (or its tick labels raised OverflowError)
    plt = pyplot()
    fig, ax = plt.subplots()
    healthy = np.linspace(20.0, 19.4, 50)
    diverging = np.concatenate([np.geomspace(1.0, 1e200, 40), [top, np.inf, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "overflow encountered in exp"
        for y in (healthy, diverging):
            ax.plot(np.arange(len(y)), y)
        log_axis(ax, [healthy, diverging])
        fig.canvas.draw()
    low, high = ax.get_ylim()
    assert ax.get_yscale() == "log" and low <= 1.0 and high == LOG_AXIS_TOP, (low, high)
    plt.close(fig)


def test_a_log_axis_spans_what_it_draws_with_a_factor_of_two_each_side():
    plt = pyplot()
    fig, ax = plt.subplots()
    log_axis(ax, [np.array([0.5, 8.0, np.nan, 0.0, -1.0])])
    assert ax.get_ylim() == (0.25, 16.0)
    plt.close(fig)


def test_a_log_axis_with_nothing_positive_is_matplotlib_s():
    plt = pyplot()
    fig, ax = plt.subplots()
    log_axis(ax, [np.array([np.nan, 0.0, -1.0])])
    assert ax.get_yscale() == "log"
    plt.close(fig)
