"""Signal propagation at initialization: activation and gradient spread versus depth.

Deep plain networks (no biases, ``width`` units per layer) at initialization,
nothing trained: ``samples`` standard normal inputs go forward through ``L``
layers, then a standard normal gradient arriving at the top layer's activations
is back-propagated.  Per layer it records the mean and standard deviation of the
activations and the standard deviation of the gradient with respect to the
pre-activations, for every init, activation, network depth ``L`` and seed.

What it shows (He et al. 2015, section 2.2; Glorot & Bengio 2010): with ReLU
each layer halves the second moment unless the weights have variance 2/n, so
with Xavier (1/n) the activations shrink by 2**-(L/2) through the network and
the gradients shrink just as fast on the way back, while He keeps both flat
over 100 layers on average (one network of finite width wanders about that:
in the default run, seed 0's activation std goes from 0.82 at layer 1 to 0.036
at layer 100, and over seeds 0-19 it ends between 0.04 and 2.05, Xavier's near
1e-16); std=0.01 collapses both, std=1 explodes them.  With tanh, Xavier's
signal fades slowly (std 0.63 at layer 1, 0.07 at layer 100) and He (too large
a gain) keeps it, hardly saturated, but its gradients grow on the way back
(from 0.74 at the top to about 84 at layer 1 of 100).

Random draws (all from :mod:`fastinit.random`, key ``seed``): the inputs are
stream 0 (:func:`fastinit.datasets.gaussian`), layer ``k`` (1-based) draws its
weights from stream ``k``, and the top-layer gradient is stream
``TOP_GRADIENT_STREAM``, the same for every depth.  A deeper network therefore
shares its first layers with the shallower ones, and the forward statistics of
its first ``L`` layers equal those of the depth-``L`` network.

The forward/backward helpers (:func:`forward`, :func:`backward`,
:func:`propagate`) are shared with the histogram experiment, which calls
``propagate`` for its per-layer histograms.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastinit import activations as _act
from fastinit import datasets
from fastinit import random as _rng
from fastinit._progress import ProgressBar
from fastinit._validate import check_bool, check_dtype, check_int, value_errors
from fastinit.diagnostics import moments
from fastinit.experiments._common import (
    Output,
    check_memory,
    check_seed_range,
    parse_activations,
    parse_inits,
    prepared_output,
    provenance,
    pyplot,
    seeds_note,
    spread_cell,
    subplots,
    text_table,
)

DEFAULT_INITS = ("std=0.01", "xavier", "he")
DEFAULT_ACTIVATIONS = ("tanh", "relu")
DEFAULT_DEPTHS = (10, 20, 50, 100)
TOP_GRADIENT_STREAM = _rng.TOP_GRADIENT_STREAM  # never a layer's stream
STATS = ("act_mean", "act_std", "grad_std")

__all__ = [
    "DepthResult",
    "backward",
    "forward",
    "layer_statistics",
    "plot_signal",
    "plot_signal_vs_depth",
    "propagate",
    "run_depth",
]


# ----------------------------------------------------------------------------- propagation
def forward(
    x: np.ndarray, weights: Sequence[np.ndarray], activation: Any
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Forward pass of a plain network ``a_k = f(a_{k-1} @ W_k)`` (no biases).

    Parameters
    ----------
    x : numpy.ndarray, shape (n, d)
        Inputs.
    weights : sequence of numpy.ndarray
        Layer weights, ``(fan_in, fan_out)``.
    activation : str, tuple or Activation
        See :func:`fastinit.activations.get`.

    Returns
    -------
    acts, derivs : list of numpy.ndarray
        Per layer, the activations ``f(z_k)`` and the derivatives ``f'(z_k)``;
        NaN where ``z_k`` is NaN (an overflowed signal, ``inf - inf``: its sign,
        so relu's slope, is unknown), except for ``identity`` (slope 1 everywhere),
        so that the gradient through it is NaN, not the kernel's 0 (relu).
    """
    act = _act.get(activation)
    acts, derivs = [], []
    a = x
    for w in weights:
        z = a @ w
        a, d = _act.apply(z, act)
        if act.code != _act.IDENTITY:
            d[np.isnan(z)] = np.nan  # d is apply's own array
        acts.append(a)
        derivs.append(d)
    return acts, derivs


def backward(
    grad_top: np.ndarray, weights: Sequence[np.ndarray], derivs: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Back-propagate a gradient arriving at the top layer's activations.

    Parameters
    ----------
    grad_top : numpy.ndarray, shape (n, fan_out of the last layer)
        ``dL/da_L``.
    weights : sequence of numpy.ndarray
        The layer weights used by :func:`forward`.
    derivs : sequence of numpy.ndarray
        The derivatives returned by :func:`forward` (only the first
        ``len(weights)`` are used).

    Returns
    -------
    list of numpy.ndarray
        Per layer, the gradient with respect to the pre-activations, ``dL/dz_k``.
    """
    grads: list[np.ndarray] = [None] * len(weights)  # type: ignore[list-item]
    g = grad_top
    for k in range(len(weights) - 1, -1, -1):
        gz = g * derivs[k]
        grads[k] = gz
        g = gz @ weights[k].T
    return grads


def propagate(
    x: np.ndarray,
    weights: Sequence[np.ndarray],
    activation: Any,
    *,
    grad_seed: int = 0,
    grad_stream: int = 1,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Forward, then back-propagate a standard normal top gradient.

    The histogram experiment (:mod:`fastinit.experiments.histogram`) calls it
    with ``grad_seed=seed`` and ``grad_stream=TOP_GRADIENT_STREAM``, as
    :func:`run_depth` draws its top gradient; the defaults draw stream 1 of key 0.

    Parameters
    ----------
    x : numpy.ndarray
        Inputs, shape (n, d).
    weights : sequence of numpy.ndarray
        Layer weights, ``(fan_in, fan_out)``.
    activation : str, tuple or Activation
        Hidden activation of every layer.
    grad_seed, grad_stream : int
        Key and stream of the top-layer gradient.

    Returns
    -------
    acts, derivs, grads : list of numpy.ndarray
        Per layer: activations, activation derivatives, and gradients with
        respect to the pre-activations.
    """
    acts, derivs = forward(x, weights, activation)
    g = _rng.fill_normal(np.empty_like(acts[-1]), 0.0, 1.0, seed=grad_seed, stream=grad_stream)
    return acts, derivs, backward(g, weights, derivs)


def layer_statistics(
    x: np.ndarray,
    weights: Sequence[np.ndarray],
    activation: Any,
    depths: Sequence[int],
    grad_top: np.ndarray,
) -> dict[int, dict[str, np.ndarray]]:
    """Per-layer statistics of the networks made of the first ``L`` layers, for each ``L``.

    One forward pass through all ``max(depths)`` layers serves every depth; the
    backward pass runs once per depth, from that depth's top layer.

    Parameters
    ----------
    x : numpy.ndarray, shape (n, d)
        Inputs.
    weights : sequence of numpy.ndarray
        At least ``max(depths)`` layer weights.
    activation : str, tuple or Activation
        Activation of every layer.
    depths : sequence of int
        Network depths, each in [1, len(weights)].
    grad_top : numpy.ndarray
        ``dL/da_L`` at the top of every network, shaped like a layer's activations.

    Returns
    -------
    dict
        ``{L: {"act_mean": (L,), "act_std": (L,), "grad_std": (L,)}}``, float64
        arrays indexed by layer (0-based); non-finite where the signal itself overflowed
        (finite signals whose squares would overflow have a finite spread), the
        gradients too once they pass a NaN pre-activation (:func:`forward`).
    """
    top = max(depths)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        acts, derivs = forward(x, weights[:top], activation)
        act_mean, act_std = np.array([moments(a) for a in acts]).T
        del acts
        out = {}
        for depth in depths:
            grads = backward(grad_top, weights[:depth], derivs)
            out[depth] = {
                "act_mean": act_mean[:depth].copy(),
                "act_std": act_std[:depth].copy(),
                "grad_std": np.array([moments(g)[1] for g in grads]),
            }
    return out


# ----------------------------------------------------------------------------- result
@dataclass
class DepthResult:
    """Per-layer statistics for every (init, activation, depth) over the seeds.

    Attributes
    ----------
    config : dict
        The full configuration.
    act_mean, act_std, grad_std : dict
        ``{(init, activation, depth): array of shape (seeds, depth)}``; row ``r``
        is seed ``seed + r``, column ``k`` layer ``k + 1``.
    seconds : float
        Wall time of the propagation.
    """

    config: dict[str, Any]
    act_mean: dict[tuple[str, str, int], np.ndarray] = field(default_factory=dict)
    act_std: dict[tuple[str, str, int], np.ndarray] = field(default_factory=dict)
    grad_std: dict[tuple[str, str, int], np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0

    def rows(self) -> list[dict[str, Any]]:
        """One dict per (init, activation, depth, seed, layer): the raw statistics.

        Returns
        -------
        list of dict
            Keys ``init``, ``activation``, ``depth``, ``seed``, ``layer`` (1-based)
            and the floats ``act_mean``, ``act_std``, ``grad_std``.
        """
        first = self.config["seed"]
        out = []
        for key, stds in self.act_std.items():
            init, act, depth = key
            for r in range(stds.shape[0]):
                for k in range(depth):
                    out.append(
                        {
                            "init": init,
                            "activation": act,
                            "depth": depth,
                            "seed": first + r,
                            "layer": k + 1,
                            "act_mean": float(self.act_mean[key][r, k]),
                            "act_std": float(stds[r, k]),
                            "grad_std": float(self.grad_std[key][r, k]),
                        }
                    )
        return out

    def summary(self) -> dict[str, Any]:
        """The key figures for summary.json: per (init, activation, depth), means over seeds.

        Returns
        -------
        dict
            ``results``: one dict per (init, activation, depth) with
            ``act_std_first``, ``act_std_last``, ``grad_std_first``,
            ``grad_std_last``, their sample standard deviations over the seeds
            (ddof 1, as ``fastinit mnist`` and ``fastinit report``)
            ``act_std_first_std``, ... (None for one seed), and the lists
            ``act_std_per_layer``, ``grad_std_per_layer`` (each mean and std
            None if any value is not finite); ``seconds``; and the provenance
            (``config``, versions, ``created``).
        """
        results = []
        for key, stds in self.act_std.items():
            init, act, depth = key
            grads = self.grad_std[key]
            ends = {
                "act_std_first": _spread(stds[:, 0]),
                "act_std_last": _spread(stds[:, -1]),
                "grad_std_first": _spread(grads[:, 0]),
                "grad_std_last": _spread(grads[:, -1]),
            }
            results.append(
                {
                    "init": init,
                    "activation": act,
                    "depth": depth,
                    **{name: mean for name, (mean, _) in ends.items()},
                    **{f"{name}_std": std for name, (_, std) in ends.items()},
                    "act_std_per_layer": [_spread(c)[0] for c in stds.T],
                    "grad_std_per_layer": [_spread(c)[0] for c in grads.T],
                }
            )
        return {"results": results, "seconds": self.seconds, **provenance(self.config)}

    def table(self) -> str:
        """The summary as a text table, one row per (init, activation, depth).

        Per (init, activation, depth): activation std at the first and last layer,
        gradient std at the first and last layer; over several seeds, each the
        mean ± the sample standard deviation of ``summary.json``, as in
        ``fastinit mnist`` (:func:`~fastinit.experiments._common.spread_cell`).

        Returns
        -------
        str
            A header, a rule and one line per row (a mean that is not finite
            shows as ``overflow``), then, over several seeds, a line saying
            which seeds the cells are over.
        """
        header = ["init", "act", "depth", "act std 1", "act std L", "grad std 1", "grad std L"]
        stats = ("act_std_first", "act_std_last", "grad_std_first", "grad_std_last")
        rows = [
            [r["init"], r["activation"], str(r["depth"]),
             *(spread_cell(r[k], r[f"{k}_std"], _fmt, "overflow") for k in stats)]
            for r in self.summary()["results"]
        ]  # fmt: skip
        note = seeds_note(max((a.shape[0] for a in self.act_std.values()), default=0),
                          self.config.get("seed"))  # fmt: skip
        return "\n".join([text_table(header, rows, "<<>>>>>"), *([note] if note else [])])


def _spread(values: np.ndarray) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1) over the seeds, both as ``fastinit
    report``'s (exact: finite values near the float range's ends do not overflow); both
    None if any value is not finite (JSON has no inf/NaN), the std None for one seed."""
    from fastinit.sweep.report import mean_std

    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        return None, None
    return mean_std(values.tolist())


def _fmt(value: float) -> str:
    return f"{value:.4g}"


# ----------------------------------------------------------------------------- experiment
def _check_depths(depths: Any) -> tuple[int, ...]:
    """The depths, sorted; a depth given twice is refused, as an init or an activation is."""
    if isinstance(depths, (int, np.integer)) and not isinstance(depths, bool):
        depths = (depths,)
    if isinstance(depths, np.ndarray) and depths.ndim == 1:  # as sizes are taken elsewhere
        depths = tuple(depths.tolist())
    if isinstance(depths, str) or not isinstance(depths, Sequence) or not depths:
        raise TypeError(
            f"depths: expected a non-empty sequence of positive integers, got {depths!r}"
        )
    seen: set[int] = set()
    for d in depths:
        depth = check_int(d, "depths", low=1)
        if depth in seen:
            raise ValueError(f"depths: {depth} is given twice; give each depth once")
        seen.add(depth)
    return tuple(sorted(seen))


def _footprint(sizes: dict[str, Any], *, runs: int, dtype: str) -> dict[str, int]:
    """Bytes a run allocates, from below (:func:`~fastinit.experiments._common.check_memory`):
    the sweep's estimate of one run of the deepest network, and the statistics kept of all."""
    from fastinit.sweep.runners import EXPERIMENTS

    depths = sizes["depths"]
    cfg = {"dtype": dtype, "depth": max(depths), "width": sizes["width"],
           "samples": sizes["samples"]}  # fmt: skip
    parts = EXPERIMENTS["depth"].footprint(cfg)
    parts["statistics"] = len(STATS) * 8 * sizes["seeds"] * runs * sum(depths)
    return parts


def run_depth(
    inits: Sequence[str] = DEFAULT_INITS,
    activations: Sequence[str] = DEFAULT_ACTIVATIONS,
    *,
    depths: Sequence[int] = DEFAULT_DEPTHS,
    width: int = 128,
    samples: int = 512,
    seeds: int = 1,
    seed: int = 0,
    dtype: str = "float64",
    out: Any = None,
    progress: bool = True,
) -> DepthResult:
    """Measure per-layer activation and gradient spread of deep plain networks at init.

    Parameters
    ----------
    inits : sequence of str
        Init specs: ``"std=0.01"``, ``"xavier"`` (std sqrt(1/n)), ``"he"``
        (std sqrt(2/n)), ``"randn*<s>"`` or any :mod:`fastinit.init` name.
    activations : sequence of str
        Activation names from :mod:`fastinit.activations`.
    depths : sequence of int
        Network depths (number of layers), each given once; one forward pass
        through the deepest network serves them all.  Run in increasing order.
    width : int
        Units per layer (and input dimension).
    samples : int
        Number of standard normal input rows.
    seeds : int
        Repetitions; repetition ``r`` uses key ``seed + r`` for inputs, weights
        and the top gradient.
    seed : int
        First seed.
    dtype : {'float32', 'float64'}
        Arithmetic type.
    out : path-like, optional
        Directory for ``summary.json``, ``layer_stats.csv`` and the figures
        ``depth_<activation>.png`` (per-layer spreads) and
        ``depth_summary.png`` (spread at the ends versus depth).
    progress : bool
        Show a progress bar on runs longer than a second.

    Returns
    -------
    DepthResult

    Raises
    ------
    ValueError
        For a bad argument, naming it, before anything runs (see :mod:`fastinit.experiments`);
        a depth given twice included.
    MemoryError
        Naming ``depths``, ``width``, ``samples`` or ``seeds``, before anything
        runs, when the run's arrays would not fit in the memory available
        (:func:`~fastinit.experiments._common.check_memory`).
    KeyboardInterrupt
        On Ctrl-C, with nothing written.
    """
    with value_errors():  # a wrong type: TypeError, and ValueError as in fit
        dt = check_dtype(dtype)
        specs = parse_inits(inits, data_dependent=False, dtype=dt.name)
        acts = parse_activations(activations)
        depths = _check_depths(depths)
        progress = check_bool(progress, "progress")
        width = check_int(width, "width", low=1)
        samples = check_int(samples, "samples", low=1)
        seed, seeds = check_seed_range(seed, seeds)
    footprint = functools.partial(_footprint, runs=len(specs) * len(acts), dtype=dt.name)
    check_memory(footprint, {"depths": depths, "width": width, "samples": samples, "seeds": seeds})
    config = {
        "experiment": "depth",
        "inits": [s.name for s in specs],  # as parsed: results are keyed by these names
        "activations": acts,
        "depths": list(depths),
        "width": width,
        "samples": samples,
        "seeds": seeds,
        "seed": seed,
        "dtype": dt.name,
        "bias": False,
        "grad": "standard normal dL/da at the top layer",
    }
    result = DepthResult(config)
    with prepared_output(out, "depth"):  # a failed run removes what it made
        _measure(result, specs, progress)
        if out is not None:
            with Output(Path(out), "depth") as output:  # all files or none
                _write(result, output)
    return result


def _measure(result: DepthResult, specs: list, progress: bool) -> None:
    """Propagate through every init's network per seed and activation; fill ``result``."""
    cfg = result.config
    acts, depths, width, samples = cfg["activations"], cfg["depths"], cfg["width"], cfg["samples"]
    seed, seeds, dtype = cfg["seed"], cfg["seeds"], cfg["dtype"]
    collected: dict[tuple[str, str, int], dict[str, list[np.ndarray]]] = {}
    bar = ProgressBar(seeds * len(specs) * len(acts), enabled=progress, label="depth")
    start = time.perf_counter()
    done = 0
    try:
        for r in range(seeds):
            s = seed + r
            x = datasets.gaussian(samples, width, seed=s, dtype=dtype)
            g = _rng.fill_normal(np.empty_like(x), 0.0, 1.0, seed=s, stream=TOP_GRADIENT_STREAM)
            for spec in specs:
                weights = [spec.draw((width, width), s, k + 1, dtype) for k in range(depths[-1])]
                for act in acts:
                    stats = layer_statistics(x, weights, act, depths, g)
                    for depth, values in stats.items():
                        slot = collected.setdefault((spec.name, act, depth), {n: [] for n in STATS})
                        for name in STATS:
                            slot[name].append(values[name])
                    done += 1
                    bar.update(done)
    finally:
        bar.close()
    result.seconds = time.perf_counter() - start
    for init in cfg["inits"]:
        for act in acts:
            for depth in depths:
                slot = collected[(init, act, depth)]
                for name in STATS:
                    getattr(result, name)[(init, act, depth)] = np.array(slot[name])


# ----------------------------------------------------------------------------- figures
def plot_signal(
    plt: Any,
    curves: Mapping[tuple[str, int], tuple[np.ndarray, np.ndarray]],
    inits: Sequence[str],
    depths: Sequence[int],
    title: str,
    notes: Mapping[tuple[str, int], str] | None = None,
) -> Any:
    """Per-layer activation std (top row) and gradient std (bottom row), one column per depth.

    Parameters
    ----------
    plt : module
        ``matplotlib.pyplot``.
    curves : mapping
        ``{(init, depth): (act_std, grad_std)}``, each array ``(seeds, depth)``;
        a band shows the spread over seeds (min to max), the line the geometric mean.
    inits : sequence of str
        Lines, in order.
    depths : sequence of int
        Columns, in order.
    title : str
        Figure title.
    notes : mapping, optional
        ``{(init, depth): text}``: the line's legend entry in that column reads
        ``init (text)``, and the column gets a legend (an entry without a mark
        where the line has nothing to draw).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.ticker import MaxNLocator

    fig, axes = subplots(
        plt, 2, len(depths), figsize=(3.4 * len(depths), 5.6), squeeze=False, sharey="row"
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, depth in enumerate(depths):
        for r, quantity in enumerate(("activation std", "gradient std (dL/dz)")):
            ax = axes[r, c]
            for i, init in enumerate(inits):
                label = _noted(init, (notes or {}).get((init, depth)))
                color = colors[i % len(colors)]
                pair = curves.get((init, depth))
                values = None if pair is None else np.asarray(pair[r], np.float64)
                drawn = values is not None and _band(ax, values, label, color)
                if label != init and not drawn:
                    ax.plot([], [], linestyle="none", label=label)  # said, with nothing to draw
            ax.set_yscale("log")
            ax.set_xlabel("layer")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if r == 0:
                ax.set_title(f"{depth} layers")
            if c == 0:
                ax.set_ylabel(quantity)
    for row in axes:
        _clip_decades(row[0], DECADES)
    for c, depth in enumerate(depths):  # the first column, and every column with a note
        if c == 0 or any(k[1] == depth and v for k, v in (notes or {}).items()):
            _legend(axes[0, c])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _legend(ax: Any) -> None:
    """A small legend on ``ax``, if anything drawn there has a label (else matplotlib
    warns "No artists with labels found to put in legend")."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


DECADES = 24  # a log axis shows at most this many decades below its top


def _noted(name: str, note: str | None) -> str:
    """A legend entry: ``name``, or ``name (note)``."""
    return f"{name} ({note})" if note else name


def _clip_decades(ax: Any, decades: float) -> None:
    """Keep a log axis within ``decades``, placed where most of its lines' points are, so
    that a collapsing curve (std=0.01 at 1e-100) or an exploding one (std=10 relu at 1e42)
    does not flatten the differences between the others (nor push them off the axis)."""
    low, high = ax.get_ylim()
    if not 0 < low < high * 10.0**-decades:
        return
    ys = [np.asarray(line.get_ydata(), dtype=np.float64) for line in ax.get_lines()]
    logs = np.sort(np.log10(np.concatenate([y[np.isfinite(y) & (y > 0)] for y in ys] or [[]])))
    if logs.size == 0:
        ax.set_ylim(high * 10.0**-decades, high)
        return
    ends = np.searchsorted(logs, logs + decades, side="right")  # window [logs[i], +decades]
    first = int(np.argmax(ends - np.arange(logs.size)))  # the lowest start holding the most
    bottom = max(np.log10(low), logs[first] - 0.25)  # a quarter decade below its lowest point
    top = min(np.log10(high), bottom + decades)
    ax.set_ylim(10.0 ** (top - decades), 10.0**top)


def _band(ax: Any, values: np.ndarray, label: str, color: str) -> bool:
    """Geometric mean over seeds with a min-max band, skipping non-finite or zero layers;
    whether anything was drawn."""
    values = np.atleast_2d(values)
    layers = np.arange(1, values.shape[1] + 1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ok = np.isfinite(values) & (values > 0)
        logs = np.where(ok, np.log(np.where(ok, values, 1.0)), np.nan)
        keep = ok.all(axis=0)
        if not keep.any():
            return False
        center = np.exp(np.nanmean(logs[:, keep], axis=0))
        ax.plot(layers[keep], center, color=color, label=label)
        if values.shape[0] > 1:
            ax.fill_between(
                layers[keep], values[:, keep].min(axis=0), values[:, keep].max(axis=0),
                color=color, alpha=0.2, linewidth=0,
            )  # fmt: skip
    return True


def plot_signal_vs_depth(
    plt: Any,
    ends: Mapping[tuple[str, str, int], tuple[float | None, float | None]],
    inits: Sequence[str],
    activations: Sequence[str],
    depths: Sequence[int],
    notes: Mapping[tuple[str, str], str] | None = None,
) -> Any:
    """Activation std at the last layer and gradient std at the first, versus network depth.

    Parameters
    ----------
    plt : module
        ``matplotlib.pyplot``.
    ends : mapping
        ``{(init, activation, depth): (last-layer act std, first-layer grad std)}``
        (means over seeds; None or non-finite values are left out).
    inits, activations, depths : sequence
        Lines, columns and x values.
    notes : mapping, optional
        ``{(init, activation): text}``: the line's legend entry in that column
        reads ``init (text)``, and the column gets a legend (an entry without a
        mark where the line has nothing to draw).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.ticker import MaxNLocator

    fig, axes = subplots(
        plt, 2, len(activations), figsize=(4.0 * len(activations), 6.0), squeeze=False
    )
    for c, act in enumerate(activations):
        for r, row in enumerate(("activation std, last layer", "gradient std, first layer")):
            ax = axes[r, c]
            for init in inits:
                label = _noted(init, (notes or {}).get((init, act)))
                xs, ys = [], []
                for depth in depths:
                    v = ends.get((init, act, depth), (None, None))[r]
                    if v is not None and np.isfinite(v) and v > 0:
                        xs.append(depth)
                        ys.append(v)
                if xs:
                    ax.plot(xs, ys, marker="o", label=label)
                elif label != init:
                    ax.plot([], [], linestyle="none", label=label)  # said, with nothing to draw
            ax.set_yscale("log")
            _clip_decades(ax, DECADES)
            ax.set_xlabel("network depth (layers)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if len(depths) == 1:  # matplotlib's 3.8 ... 4.2 around one point
                ax.set_xlim(depths[0] - 1, depths[0] + 1)
            if r == 0:
                ax.set_title(act)
            if c == 0:
                ax.set_ylabel(row)
    for c, act in enumerate(activations):  # the first column, and every column with a note
        if c == 0 or any(k[1] == act and v for k, v in (notes or {}).items()):
            _legend(axes[0, c])
    fig.suptitle("signal propagation at initialization")
    fig.tight_layout()
    return fig


def _write(result: DepthResult, output: Output) -> None:
    output.json("summary.json", result.summary())
    rows = result.rows()
    fields = ["init", "activation", "depth", "seed", "layer", *STATS]
    output.csv("layer_stats.csv", fields, [[r[f] for f in fields] for r in rows])
    plt = pyplot()
    cfg = result.config
    for act in cfg["activations"]:
        curves = {
            (init, d): (result.act_std[(init, act, d)], result.grad_std[(init, act, d)])
            for init in cfg["inits"]
            for d in cfg["depths"]
        }
        title = f"{act}: width {cfg['width']}, {cfg['samples']} inputs, {cfg['seeds']} seed(s)"
        notes = {k: note for k, pair in curves.items() if (note := _overflowed(*pair))}
        fig = plot_signal(plt, curves, cfg["inits"], cfg["depths"], title, notes)
        output.figure(f"depth_{act}.png", fig)
        plt.close(fig)
    ends = {
        (r["init"], r["activation"], r["depth"]): (r["act_std_last"], r["grad_std_first"])
        for r in result.summary()["results"]
    }
    notes = {}  # as the report's: "depth 60: 2 of 2 seeds overflowed" in the line's legend
    for init in cfg["inits"]:
        for act in cfg["activations"]:
            said = [f"depth {d}: {note}" for d in cfg["depths"]
                    if (note := _overflowed(result.act_std[(init, act, d)],
                                            result.grad_std[(init, act, d)]))]  # fmt: skip
            if said:
                notes[(init, act)] = "; ".join(said)
    fig = plot_signal_vs_depth(plt, ends, cfg["inits"], cfg["activations"], cfg["depths"], notes)
    output.figure("depth_summary.png", fig)
    plt.close(fig)


def _overflowed(act_std: np.ndarray, grad_std: np.ndarray) -> str:
    """``k of n seeds overflowed``: the seeds whose signal or gradient spread is not finite
    at some layer (the figures leave those layers out), empty for none."""
    bad = ~(np.isfinite(act_std).all(axis=1) & np.isfinite(grad_std).all(axis=1))
    n = len(bad)
    return f"{int(bad.sum())} of {n} seed{'' if n == 1 else 's'} overflowed" if bad.any() else ""
