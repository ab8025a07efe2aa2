"""Per-layer activation and gradient histograms of a deep plain network at initialization.

The classic experiment of "Deep Learning from Scratch" (ch. 6) and Glorot & Bengio
(AISTATS 2010, figures 3-7): 1000 Gaussian inputs of dimension 100 go through 5
fully connected layers of 100 units (no biases).  For each init and activation it
records, per layer, the histogram of the activations (30 bins; range (0, 1) for
sigmoid and ReLU as in the book, (-1, 1) for tanh) and of the back-propagated
gradients with respect to the pre-activations, for a standard normal gradient
arriving at the top layer; plus a table of mean, std, saturated and dead fractions.

What it shows: std=1 with sigmoid piles activations at 0 and 1 (gradients
vanish); std=0.01 piles them at 0.5 (every unit says the same thing); Xavier
spreads them, best with tanh; He keeps every ReLU layer's distribution the same
width as depth grows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastinit import activations as _act
from fastinit import datasets
from fastinit import train as _train
from fastinit._progress import ProgressBar
from fastinit._validate import check_bool, check_dtype, check_int, check_seed, value_errors
from fastinit.diagnostics import moments
from fastinit.experiments._common import (
    Output,
    check_memory,
    fixed,
    parse_activations,
    parse_inits,
    prepared_output,
    provenance,
    pyplot,
    subplots,
    text_table,
)
from fastinit.experiments.depth import TOP_GRADIENT_STREAM, propagate

DEFAULT_INITS = ("std=1", "std=0.01", "xavier", "he")
DEFAULT_ACTIVATIONS = ("sigmoid", "tanh", "relu")
_FIXED_RANGE = {"sigmoid": (0.0, 1.0), "relu": (0.0, 1.0), "tanh": (-1.0, 1.0)}


@dataclass
class LayerStats:
    """Statistics of one layer for one (init, activation) pair.

    Attributes
    ----------
    init, activation : str
        The pair, as parsed.
    layer : int
        The layer, 1-based.
    act_mean, act_std : float
        Mean and standard deviation of the layer's activations.
    saturated : float or None
        Fraction of activations in a flat tail (sigmoid, tanh); None for others.
    dead : float or None
        Fraction of units inactive on every input (ReLU family); None for others.
    grad_std : float
        Standard deviation of the backpropagated gradient ``dL/dz``.
    below_range, above_range : float
        Shares of the layer's activations that are finite and below, and above,
        its histogram's range, which no bin counts (ReLU's range is the book's
        (0, 1): He's layers have about a fifth of their values above 1).  The
        gradients' range spans every finite value: none is left out.

    A layer whose signal overflowed (an activation or derivative inf or NaN)
    has NaN ``saturated`` and ``dead`` (where they apply), and a gradient that
    passed a NaN pre-activation is NaN (:func:`~fastinit.experiments.depth.forward`):
    ``null`` in summary.json, ``overflow`` in the table, a ``diverged`` sweep run.
    """

    init: str
    activation: str
    layer: int
    act_mean: float
    act_std: float
    saturated: float | None
    dead: float | None
    grad_std: float
    below_range: float
    above_range: float


@dataclass
class HistogramResult:
    """Histograms and statistics for every (init, activation) pair.

    Attributes
    ----------
    config : dict
        The run's settings (written to summary.json).
    act_counts, grad_counts : dict of (str, str) -> numpy.ndarray
        Per ``(init, activation)``: ``(layers, bins)`` histogram counts of the
        activations and of the back-propagated gradients, layer by layer.
    act_edges, grad_edges : dict of (str, str) -> numpy.ndarray
        The matching ``bins + 1`` bin edges (one range for all layers of a pair).
    stats : list of LayerStats
        One row per init, activation and layer.
    """

    config: dict[str, Any]
    act_counts: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    act_edges: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    grad_counts: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    grad_edges: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    stats: list[LayerStats] = field(default_factory=list)

    def table(self) -> str:
        """The per-layer statistics as an aligned text table (columns always separated).

        Returns
        -------
        str
            Header, a rule, then one line per (init, activation, layer); ``-``
            where the activation has no saturated or dead fraction, ``overflow``
            where a statistic is not finite (the signal overflowed, as in
            ``fastinit depth``).
        """
        header = ("init", "act", "layer", "mean", "std", "saturated", "dead", "grad std")
        rows = [
            (
                s.init,
                s.activation,
                str(s.layer),
                _fmt(s.act_mean),
                _fmt(s.act_std),
                _fraction(s.saturated),
                _fraction(s.dead),
                "overflow" if not np.isfinite(s.grad_std) else f"{s.grad_std:.3g}",
            )
            for s in self.stats
        ]
        return text_table(header, rows, "<<>>>>>>")

    def act_outside(self, init: str, activation: str) -> np.ndarray:
        """The ``(layers, 2)`` shares ``(below_range, above_range)`` of a pair's layers.

        Parameters
        ----------
        init, activation : str
            The pair, as parsed.

        Returns
        -------
        numpy.ndarray of float64, (layers, 2)
            One row per layer, from :attr:`stats`.
        """
        rows = [s for s in self.stats if (s.init, s.activation) == (init, activation)]
        return np.array([(s.below_range, s.above_range) for s in rows], dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        """The key figures for summary.json.

        Returns
        -------
        dict
            ``results``: one dict of :class:`LayerStats` fields per layer and
            (init, activation) pair; and the provenance (``config``, versions,
            ``created``).
        """
        return {
            "results": [s.__dict__ for s in self.stats],
            **provenance(self.config),
        }


def _fmt(value: float) -> str:
    """A mean or std for the table: 4 decimals, 4 digits beyond a million, or ``overflow``."""
    if not np.isfinite(value):
        return "overflow"
    return fixed(value)


def _fraction(value: float | None) -> str:
    """A saturated or dead fraction for the table: 3 decimals, ``-`` or ``overflow``."""
    if value is None:
        return "-"
    return f"{value:.3f}" if np.isfinite(value) else "overflow"


def _saturated_and_dead(name: str, a: np.ndarray, deriv: np.ndarray) -> tuple:
    """Saturated and dead fractions of one layer (None where the activation has none).

    The definitions are those of ``fit(record_stats=True)`` and
    :func:`fastinit.diagnose`, computed by the same compiled function: NaN
    (where they apply) for a layer whose activations or derivatives are not all
    finite (the signal overflowed).
    """
    out = np.full(len(_train.STAT_FIELDS), np.nan)
    code = _act.get(name).code
    _train.activation_stats(np.ascontiguousarray(a), np.ascontiguousarray(deriv), code, out)
    applies = _train.stats_apply(code)
    return tuple(
        float(v) if apply else None
        for v, apply in zip((out[_train.F_SATURATED], out[_train.F_DEAD]), applies, strict=True)
    )


def _range(name: str, values: list[np.ndarray]) -> tuple[float, float]:
    """The histogram range of an activation: the book's, or +-(99.9th percentile of |v|)."""
    if name in _FIXED_RANGE:
        return _FIXED_RANGE[name]
    return _symmetric_range(values, 99.9)


def _symmetric_range(values: list[np.ndarray], percentile: float) -> tuple[float, float]:
    """``(-top, top)``: ``top`` the largest layer's ``percentile`` of its finite ``|v|``.

    Values that overflowed (inf, NaN) are left out, and land in no bin; 1 if
    none is finite or all are 0.
    """
    tops = []
    for v in values:
        finite = np.abs(v[np.isfinite(v)])
        if finite.size:
            tops.append(float(np.percentile(finite, percentile)))
    top = max(tops, default=0.0) or 1.0
    return -top, top


def _counts(values: np.ndarray, bins: int, lo: float, hi: float) -> np.ndarray:
    """Histogram counts of the finite ``values`` in ``bins`` equal bins of ``[lo, hi]``.

    Binned in float64, as the edges are: in float32 NumPy's ``hi - lo`` overflowed past
    half the float32 range (an IndexError for gradients of 3e38).
    """
    return np.histogram(np.asarray(values, dtype=np.float64), bins, range=(lo, hi))[0]


def _outside(values: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """Shares of ``values`` that are finite and below ``lo``, and above ``hi``.

    The values :func:`_counts` leaves out of its bins besides inf and NaN, as a
    share of all the values measured; compared in float64, as they are binned.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]  # inf above hi is counted as overflow, not as out of range
    size = max(values.size, 1)
    return np.count_nonzero(v < lo) / size, np.count_nonzero(v > hi) / size


def run_histogram(
    inits: tuple[str, ...] = DEFAULT_INITS,
    activations: tuple[str, ...] = DEFAULT_ACTIVATIONS,
    *,
    layers: int = 5,
    width: int = 100,
    samples: int = 1000,
    bins: int = 30,
    seed: int = 0,
    dtype: str = "float64",
    out: Any = None,
    progress: bool = True,
) -> HistogramResult:
    """Run the activation/gradient histogram experiment.

    Parameters
    ----------
    inits : tuple of str
        Init specs: ``"std=1"``, ``"std=0.01"``, ``"xavier"`` (std sqrt(1/n)),
        ``"he"`` (std sqrt(2/n)), or any :mod:`fastinit.init` name.
    activations : tuple of str
        Activation names from :mod:`fastinit.activations`.
    layers, width, samples, bins : int
        Depth, units per layer, number of Gaussian inputs, histogram bins.
    seed : int
        Key of every random draw: the inputs use stream 0, layer k (1-based) stream
        k, the top-layer gradient stream 2**32.  All normal-based inits of a run
        share their draws, so they differ only by scale.
    dtype : {'float32', 'float64'}
        Arithmetic type.
    out : path-like, optional
        Directory for the figures, summary.json and the CSV of the table.
    progress : bool
        Show a progress bar (pairs measured, then figures drawn) if the run
        takes more than about a second.

    Returns
    -------
    HistogramResult

    Raises
    ------
    ValueError
        For a bad argument, naming it, before anything runs (see :mod:`fastinit.experiments`).
    MemoryError
        Naming ``layers``, ``width``, ``samples`` or ``bins``, before anything
        runs, when the run's arrays would not fit in the memory available
        (:func:`~fastinit.experiments._common.check_memory`).
    KeyboardInterrupt
        On Ctrl-C, with nothing written.
    """
    with value_errors():  # a wrong type: TypeError, and ValueError as in fit
        dtype = check_dtype(dtype).name
        specs = parse_inits(inits, data_dependent=False, dtype=dtype)
        activations = tuple(parse_activations(activations))
        progress = check_bool(progress, "progress")
        layers = check_int(layers, "layers", low=1)
        width = check_int(width, "width", low=1)
        samples = check_int(samples, "samples", low=1)
        bins = check_int(bins, "bins", low=1)
        seed = check_seed(seed)
    footprint = functools.partial(_footprint, pairs=len(specs) * len(activations), dtype=dtype)
    check_memory(footprint, {"layers": layers, "width": width, "samples": samples, "bins": bins})
    config = {
        "experiment": "histogram",
        "inits": [s.name for s in specs],  # as parsed: results are keyed by these names
        "activations": list(activations),
        "layers": layers,
        "width": width,
        "samples": samples,
        "bins": bins,
        "seed": seed,
        "dtype": dtype,
    }
    result = HistogramResult(config)
    figures = 2 * len(activations) if out is not None else 0
    with prepared_output(out, "histogram"):  # a failed run removes what it made
        bar = ProgressBar(len(specs) * len(activations) + figures, enabled=progress,
                          label="histogram")  # fmt: skip
        try:  # the bar's line ends however the run ends (Ctrl-C, an error)
            _measure(result, specs, activations, bar)
            with Output(None if out is None else Path(out), "histogram") as output:  # all or none
                _write(result, output, bar)
        finally:
            bar.close()
    return result


def _footprint(sizes: dict[str, int], *, pairs: int, dtype: str) -> dict[str, int]:
    """Bytes a run allocates, from below (:func:`~fastinit.experiments._common.check_memory`):
    the sweep's estimate of one (init, activation) pair, and every pair's histograms, kept."""
    from fastinit.sweep.runners import EXPERIMENTS

    layers, bins = sizes["layers"], sizes["bins"]
    cfg = {"dtype": dtype, "depth": layers, "width": sizes["width"], "samples": sizes["samples"]}
    parts = EXPERIMENTS["histogram"].footprint(cfg)
    parts["histograms"] = 2 * pairs * (layers * bins + bins + 1) * 8  # counts and edges
    return parts


def _measure(result: HistogramResult, specs: list, activations: tuple, bar: ProgressBar) -> None:
    """Propagate through each init's network per activation; fill ``result``.

    A signal that overflows (``std=1e300``) gives non-finite statistics, as in
    ``fastinit depth``, without NumPy's warnings (see :class:`LayerStats`); its
    histograms count the finite values only, and their figure panels say so.
    The shares of finite values outside a histogram's range go in its layers' rows.
    """
    cfg = result.config
    layers, width, bins = cfg["layers"], cfg["width"], cfg["bins"]
    seed, dtype = cfg["seed"], cfg["dtype"]
    x = datasets.gaussian(cfg["samples"], width, seed=seed, dtype=dtype)
    for spec in specs:
        weights = [spec.draw((width, width), seed, k + 1, dtype) for k in range(layers)]
        for name in activations:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                acts, derivs, grads = propagate(
                    x, weights, name, grad_seed=seed, grad_stream=TOP_GRADIENT_STREAM
                )
                key = (spec.name, name)
                lo_act, hi_act = _range(name, acts)
                result.act_edges[key] = np.linspace(lo_act, hi_act, bins + 1)
                result.act_counts[key] = np.array([_counts(a, bins, lo_act, hi_act) for a in acts])
                lo, hi = _symmetric_range(grads, 100.0)
                result.grad_edges[key] = np.linspace(lo, hi, bins + 1)
                result.grad_counts[key] = np.array([_counts(g, bins, lo, hi) for g in grads])
                for k in range(layers):
                    result.stats.append(
                        LayerStats(
                            spec.name,
                            name,
                            k + 1,
                            *moments(acts[k]),
                            *_saturated_and_dead(name, acts[k], derivs[k]),
                            moments(grads[k])[1],
                            *_outside(acts[k], lo_act, hi_act),
                        )
                    )
            bar.update(len(result.act_counts))


def _write(result: HistogramResult, output: Output, bar: ProgressBar) -> None:
    if output.directory is None:
        return
    output.json("summary.json", result.summary())
    fields = list(LayerStats.__dataclass_fields__)
    output.csv("layer_stats.csv", fields, [[getattr(s, f) for f in fields] for s in result.stats])
    rows = []
    for (init, act), counts in result.act_counts.items():
        edges = result.act_edges[(init, act)]
        for layer, c in enumerate(counts, 1):
            rows += [
                ["activation", init, act, layer, edges[i], edges[i + 1], int(c[i])]
                for i in range(len(c))
            ]
        gcounts, gedges = result.grad_counts[(init, act)], result.grad_edges[(init, act)]
        for layer, c in enumerate(gcounts, 1):
            rows += [
                ["gradient", init, act, layer, gedges[i], gedges[i + 1], int(c[i])]
                for i in range(len(c))
            ]
    output.csv("histograms.csv", ["kind", "init", "activation", "layer", "lo", "hi", "count"], rows)
    plt = pyplot()
    cfg = result.config
    fig, axes = _grid(plt, cfg["inits"], cfg["layers"])
    done = len(result.act_counts)  # pairs measured; each figure drawn adds one
    outside_shares = {pair: result.act_outside(*pair) for pair in result.act_counts}
    kinds = (
        ("activations", result.act_counts, result.act_edges, outside_shares, "act_std"),
        ("gradients", result.grad_counts, result.grad_edges, None, "grad_std"),
    )
    try:
        for act in cfg["activations"]:
            for kind, counts, edges, outside, field in kinds:
                overflowed = {
                    (s.init, s.layer)
                    for s in result.stats
                    if s.activation == act and not np.isfinite(getattr(s, field))
                }
                _plot(fig, axes, cfg["inits"], act, kind, counts, edges, overflowed, outside)
                output.figure(f"{kind}_{act}.png", fig)
                done += 1
                bar.update(done)
    finally:
        plt.close(fig)


def _grid(plt: Any, inits: list[str], layers: int) -> tuple[Any, np.ndarray]:
    """The one figure every histogram of a run is drawn on: a row per init, a column per layer.

    Built once and redrawn by :func:`_plot` for each activation and kind:
    making its axes anew for each figure took as long as drawing them.  The
    panels of a row share their y axis, labelled on the first: with an axis of
    its own each, every panel was read on the first one's tick labels (a spike
    of 20000 against ticks up to 2960).  Shared, the layers of an init compare
    at a glance, as the experiment means them to.
    """
    fig, axes = subplots(plt, len(inits), layers, sharey="row", squeeze=False,
                         figsize=(2.4 * layers, 1.9 * len(inits)))  # fmt: skip
    for r, init in enumerate(inits):
        axes[r, 0].set_ylabel(init)
    for k in range(layers):
        axes[0, k].set_title(f"{k + 1}-layer")
    return fig, axes


_NOTE = "histogram-note"  #: gid of the figure's note under its panels, removed at each redraw
_CUT_OFF = (
    "the first bar (the zeros, with the values nearest 0) is cut off at the top of its row: "
    "it is taller"
)


def _plot(fig: Any, axes: np.ndarray, inits: list[str], act: str, kind: str, counts: dict,
          edges: dict, overflowed: set, outside: dict | None = None) -> None:  # fmt: skip
    """Draw the ``kind`` histograms of ``act`` on the grid, laid out as on a new figure.

    The previous figure's histograms, notes, limits and colour cycle are
    cleared and the layout starts from a new figure's, so each figure is the
    one a fresh grid would give.  The panels of ``overflowed`` ``(init,
    layer)`` (values inf or NaN, which the counts leave out) say so, and those
    with a share of values outside the range in ``outside`` (per pair, as
    :meth:`HistogramResult.act_outside`) say how much.
    """
    import matplotlib

    sides = ("left", "bottom", "right", "top", "wspace", "hspace")
    fig.subplots_adjust(**{s: matplotlib.rcParams[f"figure.subplot.{s}"] for s in sides})
    for text in [t for t in fig.texts if t.get_gid() == _NOTE]:
        text.remove()
    cut = False
    for r, init in enumerate(inits):
        e, rows = edges[(init, act)], counts[(init, act)]
        shares = (outside or {}).get((init, act))
        for k, c in enumerate(rows):
            ax = axes[r, k]
            _clear(ax)
            ax.stairs(c, e, fill=True)
            if shares is not None:
                _say_outside(ax, shares[k], e[0], e[-1])
            if (init, k + 1) in overflowed:
                ax.text(0.5, 0.5, "overflow:\nfinite values\nonly", transform=ax.transAxes,
                        ha="center", va="center", color="red")  # fmt: skip
        if kind == "activations" and act != "sigmoid" and e[0] == 0:
            cut |= _clip_zeros(axes[r, 0], rows)
    if cut:  # once for the figure, under its panels
        fig.text(0.5, 0.0, _CUT_OFF, ha="center", va="top", fontsize="small", gid=_NOTE)
    fig.suptitle(f"{act}: {kind} per layer")
    fig.tight_layout()


def _clear(ax: Any) -> None:
    """Remove the histogram and notes of ``ax`` and let its limits follow the next one's."""
    for artist in [*ax.patches, *ax.texts]:
        artist.remove()
    ax.relim()
    ax.set_autoscale_on(True)
    ax.set_prop_cycle(None)  # the first colour, as on new axes


def _clip_zeros(ax: Any, counts: np.ndarray) -> bool:
    """Clip a ReLU row's y axis above its bars past the first: whether a first bar is cut off.

    As in the book's ReLU figure: the spike of zeros in the first bin would
    flatten the rest.  One clip for the row, which shares its axis (``ax``'s),
    from the row's largest count outside the first bin.
    """
    rest = counts[:, 1:].max(initial=0)
    if not rest:  # nothing but the first bin (or a single bin): nothing to flatten
        return False
    top = 1.25 * rest
    ax.set_ylim(0, top)
    return bool((counts[:, 0] > top).any())


def _say_outside(ax: Any, shares: np.ndarray, lo: float, hi: float) -> None:
    """Say on ``ax`` the ``shares`` of its values below ``lo`` and above ``hi``, if any.

    ``np.histogram`` leaves them out of its bins without a word: He's ReLU
    layers lose about a fifth of their values above the book's range (0, 1).
    """
    parts = [
        f"{_percent(share)} {side} {bound:.3g}"
        for share, side, bound in zip(shares, "<>", (lo, hi), strict=True)
        if share > 0
    ]
    if parts:
        ax.text(0.97, 0.96, ", ".join(parts) + " not shown", transform=ax.transAxes,
                ha="right", va="top", fontsize="small")  # fmt: skip


def _percent(share: float) -> str:
    """``share`` as a percentage to 0.1, never rounded to 0% or 100% when it is neither."""
    if share < 0.0005:
        return "<0.1%"
    if 0.9995 <= share < 1:
        return ">99.9%"
    return f"{100 * share:.1f}%"
