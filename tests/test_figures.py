"""The figures say what they draw: the drawing helpers the experiments and the report share.

Each experiment's own figure tests live beside its other tests; these cover the pieces
of :mod:`fastinit.experiments._common` that several figures use.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fastinit.experiments._common import DIVERGED_HEADROOM, LOG_AXIS_TOP, log_axis, pyplot


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


def test_a_log_axis_says_a_line_leaves_it_only_where_the_healthy_lines_cut_it():
    # every line diverged past 1e200: the axis stops at LOG_AXIS_TOP, and the report's
    # note "diverged runs leave the axis above 1000x the others' loss" named no others
    plt = pyplot()
    fig, ax = plt.subplots()
    climb = np.geomspace(1.0, 1e250, 30)
    assert log_axis(ax, [climb]) is False
    assert log_axis(ax, [climb], []) is False
    healthy = np.linspace(2.0, 0.5, 30)
    assert log_axis(ax, [climb, healthy], [healthy]) is True
    assert ax.get_ylim()[1] == 2.0 * DIVERGED_HEADROOM
    assert log_axis(ax, [healthy * 10, healthy], [healthy]) is False  # within the headroom
    plt.close(fig)


def test_a_log_axis_spans_what_it_draws_with_a_factor_of_two_each_side():
    plt = pyplot()
    fig, ax = plt.subplots()
    log_axis(ax, [np.array([0.5, 8.0, np.nan, 0.0, -1.0])])
    assert ax.get_ylim() == (0.25, 16.0)
    plt.close(fig)


def test_a_log_axis_leaves_infinities_out_of_its_span():
    # finite_values kept the infinities: the axis went up to LOG_AXIS_TOP (mutation audit)
    from fastinit.experiments._common import finite_values

    values = np.array([0.5, 8.0, np.inf, -np.inf, np.nan])
    np.testing.assert_array_equal(finite_values([values, [[1.0, np.inf]]]), [0.5, 8.0, 1.0])
    plt = pyplot()
    fig, ax = plt.subplots()
    log_axis(ax, [values])
    assert ax.get_ylim() == (0.25, 16.0)
    plt.close(fig)


def test_a_log_axis_cut_by_the_healthy_lines_says_so_only_if_a_value_is_above_its_top():
    # twice the diverged line's top is above the healthy lines' headroom, the line itself
    # is not: the axis is cut, no line leaves it (the value returned was "cut" alone)
    plt = pyplot()
    fig, ax = plt.subplots()
    healthy = np.linspace(2.0, 0.5, 30)
    below_top = healthy * (0.75 * DIVERGED_HEADROOM)  # at most 0.75 x the top
    assert log_axis(ax, [below_top, healthy], [healthy]) is False
    assert ax.get_ylim()[1] == 2.0 * DIVERGED_HEADROOM  # cut there all the same
    plt.close(fig)


def test_a_log_axis_with_nothing_positive_is_matplotlib_s():
    plt = pyplot()
    fig, ax = plt.subplots()
    log_axis(ax, [np.array([np.nan, 0.0, -1.0])])
    assert ax.get_yscale() == "log"
    plt.close(fig)


def _histogram_panels(act, counts, outside=None):
    """The grid of ``fastinit histogram`` drawn with ``counts`` (init -> (layers, bins))
    of ``act``'s activations on ``[0, 1]``: the figure and its axes, drawn."""
    from fastinit.experiments.histogram import _grid, _plot

    inits = list(counts)
    layers = len(next(iter(counts.values())))
    edges = {(init, act): np.linspace(0.0, 1.0, counts[init].shape[1] + 1) for init in inits}
    drawn = {(init, act): np.asarray(c) for init, c in counts.items()}
    fig, axes = _grid(pyplot(), inits, layers)
    if outside is None:
        _plot(fig, axes, inits, act, "activations", drawn, edges, set())
    else:
        outside = {(init, act): share for init, share in outside.items()}
        _plot(fig, axes, inits, act, "activations", drawn, edges, set(), outside=outside)
    fig.canvas.draw()
    return fig, axes


def _labelled(ax):
    """Whether ``ax`` shows y tick labels (text, visible, inside its limits)."""
    low, high = ax.get_ylim()
    return any(
        t.get_visible() and t.get_text() and low <= t.get_position()[1] <= high
        for t in ax.get_yticklabels()
    )


@pytest.mark.parametrize("act", ["sigmoid", "relu"])
def test_every_histogram_panel_is_read_on_tick_labels_that_span_its_bars(act):
    # only the first column had tick labels, and each panel scaled its own y axis: a
    # spike of 20000 was read against the 0-2960 ticks of its row's first panel, a
    # layer of counts near 2 against ticks up to 48 (counts misread up to 20x)
    spread = np.full(10, 2000)
    spike = np.zeros(10, dtype=int)
    spike[0 if act == "relu" else 4] = 20000
    small = np.full(10, 2)
    small[0] = 60000 if act == "relu" else 2
    counts = {"a": np.array([spread, spike, small]), "b": np.array([small, small, small])}
    fig, axes = _histogram_panels(act, counts)
    for r, init in enumerate(counts):
        for k, c in enumerate(counts[init]):
            ax = axes[r, k]
            readers = [other for other in axes[r] if _labelled(other)]
            shared = [o for o in readers if o is ax or ax.get_shared_y_axes().joined(ax, o)]
            assert shared, (init, k)  # its own tick labels, or a shared axis's
            assert all(o.get_ylim() == ax.get_ylim() for o in shared)
            drawn = c[1:] if act == "relu" else c  # ReLU's zeros are cut off, and said so
            assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= drawn.max(), (init, k)
    notes = [t.get_text() for t in fig.texts if t is not fig._suptitle]
    assert any("cut off" in n for n in notes) == (act == "relu")
    pyplot().close(fig)


def test_histogram_panels_say_what_share_of_their_values_they_leave_out():
    # relu's range is the book's (0, 1) and np.histogram drops what falls outside it:
    # He's layers lost 17-24% of their values, std=1's layer 4 all but 7, and nothing said so
    from fastinit.experiments.histogram import _counts, _outside, run_histogram

    inside = np.linspace(0.0, 1.0, 750)
    values = [np.concatenate([inside, np.full(250, 2.0)]), inside]  # 25% above 1, and none
    counts = {"he": np.array([_counts(v, 10, 0.0, 1.0) for v in values])}
    shares = {"he": np.array([_outside(v, 0.0, 1.0) for v in values])}
    fig, axes = _histogram_panels("relu", counts, shares)
    notes = [[" ".join(t.get_text().split()) for t in ax.texts] for ax in axes[0]]
    assert notes == [["25.0% > 1 not shown"], []]
    pyplot().close(fig)
    r = run_histogram(("he",), ("relu",), layers=2, width=20, samples=50, bins=10, progress=False)
    measured = 20 * 50
    below, above = r.act_outside("he", "relu").T
    counted = r.act_counts[("he", "relu")].sum(axis=1)
    np.testing.assert_allclose(above, 1 - counted / measured)
    assert above.min() > 0.05 and not below.any()
