"""Why not zeros or a constant: hidden units that start equal stay equal.

With every weight of a layer equal, every hidden unit computes the same function
and receives the same gradient, so gradient descent keeps them identical: the
layer acts as one unit.  (With zeros and tanh, even the gradients of the hidden
weights are zero, so they never move.)  Random initial weights break the symmetry.

The experiment trains a small tanh network on the planar flower data and
measures, at checkpoints, the largest difference between any two hidden units'
incoming weight vectors (``max_i (max_j W[i, j] - min_j W[i, j])`` over the
columns of each hidden layer's weights, and likewise their outgoing weights):
0 throughout for zeros and constants, of the order of the weights for a random
init.  Whether an init stayed symmetric is read from these measured spreads,
never from its name: ``std=0``, ``randn*0`` or ``constant=0`` is found symmetric
as ``zeros`` is (and, drawing the same weights, is the same init: two of them
in one run are refused).

Symmetric means equal to rounding: every spread at most ``sqrt(eps)`` of the
dtype times the largest weight of the matrix measured (``SymmetryResult.symmetric``).
The units stay equal in exact arithmetic, but BLAS need not round equal columns
of a product alike: OpenBLAS computes the edge columns of a block with other
micro-kernels, so at some widths equal units part in their last bits (float32
2-37-53 on an AVX-512 host: 6e-8 after 100 steps, 7.7e-7 after 2000, against
spreads of the order of 1 for a random init).  Where every spread is exactly 0
the table says ``exactly`` (``exactly_symmetric`` in summary.json).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastinit import activations as _act
from fastinit import datasets, optim
from fastinit._progress import ProgressBar
from fastinit._validate import (
    check_bool,
    check_dtype,
    check_int,
    check_seed,
    value_errors,
)
from fastinit.experiments._common import (
    Output,
    check_hidden,
    check_lr,
    check_memory,
    fixed,
    parse_inits,
    positive_span,
    prepared_output,
    provenance,
    pyplot,
    subplots,
    text_table,
)

DEFAULT_INITS = ("zeros", "constant=0.5", "randn*0.5")
POINTS = 400  # the planar flower's training points, the full batch


def unit_spread(w: np.ndarray) -> float:
    """Largest difference between two columns (units) of ``w``, entry by entry.

    Parameters
    ----------
    w : numpy.ndarray, shape (rows, units)
        A weight matrix with one column per unit: a layer's incoming weights
        ``(fan_in, fan_out)``, or the next layer's weights transposed for the
        outgoing ones.

    Returns
    -------
    float
        ``max over rows of (max - min over the columns)``; 0 when every column
        is the same.
    """
    return float(np.max(w.max(axis=1) - w.min(axis=1)))


@dataclass
class SymmetryResult:
    """Per init: checkpoints, per-hidden-layer spreads of incoming/outgoing weights, loss.

    Attributes
    ----------
    config : dict
        The run's settings (written to summary.json).
    checkpoints : list of int
        Iterations at which the spreads were measured (0 first, ``iterations`` last).
    incoming, outgoing : dict of str -> numpy.ndarray
        Per init, ``(checkpoints, hidden layers)``: the largest difference
        between two hidden units' incoming (outgoing) weight vectors
        (:func:`unit_spread`).
    loss : dict of str -> numpy.ndarray
        Per init, the training loss at each checkpoint.
    incoming_scale, outgoing_scale : dict of str -> numpy.ndarray
        Per init, like ``incoming`` and ``outgoing``: the largest magnitude of a
        weight in the matrix whose spread was measured.
    """

    config: dict[str, Any]
    checkpoints: list[int] = field(default_factory=list)
    incoming: dict[str, np.ndarray] = field(default_factory=dict)  # (checkpoints, hidden layers)
    outgoing: dict[str, np.ndarray] = field(default_factory=dict)
    loss: dict[str, np.ndarray] = field(default_factory=dict)
    incoming_scale: dict[str, np.ndarray] = field(default_factory=dict)
    outgoing_scale: dict[str, np.ndarray] = field(default_factory=dict)

    def symmetric(self, init: str) -> bool:
        """True if every hidden layer's units stayed equal, to rounding, at every checkpoint.

        Equal to rounding: every spread at most ``sqrt(eps)`` of the run's dtype
        times the largest weight of its matrix (half the digits; BLAS may round
        equal columns of a product differently, see the module's docstring).

        Parameters
        ----------
        init : str
            An init's name, a key of ``incoming`` and ``outgoing``.

        Returns
        -------
        bool
            Whether every incoming and outgoing spread of that init is that small
            (exactly 0 for a result without the weights' scales).
        """
        if init not in self.incoming_scale or init not in self.outgoing_scale:
            return self.exactly_symmetric(init)
        rtol = math.sqrt(np.finfo(self.config["dtype"]).eps)
        return bool(
            np.all(self.incoming[init] <= rtol * self.incoming_scale[init])
            and np.all(self.outgoing[init] <= rtol * self.outgoing_scale[init])
        )

    def exactly_symmetric(self, init: str) -> bool:
        """True if every spread of ``init`` is exactly 0: the units stayed bit for bit equal.

        Parameters
        ----------
        init : str
            An init's name, a key of ``incoming`` and ``outgoing``.

        Returns
        -------
        bool
        """
        return bool(np.all(self.incoming[init] == 0) and np.all(self.outgoing[init] == 0))

    def summary(self) -> dict[str, Any]:
        """The key figures for summary.json.

        Returns
        -------
        dict
            ``results``: ``{init: {...}}`` with ``symmetric_throughout`` (to
            rounding: :meth:`symmetric`), ``exactly_symmetric``,
            ``max_incoming_spread``, ``max_outgoing_spread`` (over every
            checkpoint and hidden layer), ``final_incoming_spread`` (per hidden
            layer at the last checkpoint) and ``final_loss``; ``checkpoints``;
            and the provenance (``config``, versions, ``created``).
        """
        results = {
            name: {
                "symmetric_throughout": self.symmetric(name),
                "exactly_symmetric": self.exactly_symmetric(name),
                "max_incoming_spread": float(self.incoming[name].max()),
                "max_outgoing_spread": float(self.outgoing[name].max()),
                "final_incoming_spread": self.incoming[name][-1].tolist(),
                "final_loss": float(self.loss[name][-1]),
            }
            for name in self.incoming
        }
        return {"results": results, "checkpoints": self.checkpoints, **provenance(self.config)}

    def table(self) -> str:
        """One line per init: the largest spread of incoming and of outgoing weights.

        Both maxima are over every checkpoint and hidden layer; ``spread.csv``
        and ``symmetry.png`` hold the same two measures per checkpoint.

        Returns
        -------
        str
            The aligned table: init, whether it stayed symmetric (``exactly``,
            ``to-rounding`` or ``no``), the two maxima and the final loss.
        """
        rows = [
            (
                name,
                _verdict(r["symmetric_throughout"], r["exactly_symmetric"]),
                f"{r['max_incoming_spread']:.4g}",
                f"{r['max_outgoing_spread']:.4g}",
                fixed(r["final_loss"]),
            )
            for name, r in self.summary()["results"].items()
        ]
        header = ("init", "symmetric", "max incoming spread", "max outgoing spread", "final loss")
        return text_table(header, rows, "<>>>>")


def _verdict(symmetric: bool, exactly: bool) -> str:
    """The table's word for an init: ``exactly``, ``to-rounding`` or ``no``."""
    return "exactly" if exactly else "to-rounding" if symmetric else "no"


def checkpoints(iterations: int, every: int) -> list[int]:
    """The iterations at which the spreads are measured: ``0, every, 2 every, ..., iterations``.

    The last one is always ``iterations``, also when ``every`` does not divide it.

    Parameters
    ----------
    iterations : int
        Training steps in all.
    every : int
        Checkpoint interval.

    Returns
    -------
    list of int
    """
    points = list(range(0, iterations, every))
    return [*points, iterations]


def run_symmetry(
    inits: tuple[str, ...] = DEFAULT_INITS,
    *,
    hidden: tuple[int, ...] = (8, 8),
    activation: str = "tanh",
    iterations: int = 2000,
    every: int = 100,
    lr: float = 0.5,
    seed: int = 0,
    dtype: str = "float64",
    out: Any = None,
    progress: bool = True,
) -> SymmetryResult:
    """Train from each init and measure whether hidden units stay identical.

    Parameters
    ----------
    inits : tuple of str
        Init specs (``"zeros"``, ``"constant=<v>"``, ``"randn*<s>"``, any
        :mod:`fastinit.init` name).  Biases start at zero.
    hidden : tuple of int
        Hidden layer widths (at least one layer of at least two units: the units
        compared are a hidden layer's).
    activation : str
        Hidden activation.
    iterations, every : int
        Full-batch gradient steps, and the checkpoint interval (the last
        checkpoint is always ``iterations``: an ``every`` above it measures
        the start and the end only, and is recorded as ``iterations``).
    lr : float
        Learning rate.
    seed : int
        Seed of random inits.
    dtype : {'float32', 'float64'}
        Arithmetic type.
    out : path-like, optional
        Directory for ``symmetry.png``, ``summary.json`` and ``spread.csv``.
    progress : bool
        Show a progress bar over all checkpoints if the run takes more than about
        a second.

    Returns
    -------
    SymmetryResult

    Raises
    ------
    ValueError
        For a bad argument, naming it, before anything runs (see :mod:`fastinit.experiments`).
    MemoryError
        Naming ``hidden``, ``iterations`` or ``every``, before anything runs,
        when the run's arrays (every checkpoint's spreads included) would not
        fit in the memory available (:func:`~fastinit.experiments._common.check_memory`).
    KeyboardInterrupt
        On Ctrl-C, with nothing written.
    """
    with value_errors():  # a wrong type: TypeError, and ValueError as fit raises
        dtype = check_dtype(dtype).name
        specs = parse_inits(inits, dtype=dtype)
        hidden = check_hidden(hidden, min_layers=1, compared=True)
        _act.get(activation, "activation")
        progress = check_bool(progress, "progress")
        iterations = check_int(iterations, "iterations", low=1)
        every = min(check_int(every, "every", low=1), iterations)  # the default 100, short run
        lr = check_lr(lr, dtype)
        seed = check_seed(seed)
    footprint = functools.partial(_footprint, models=len(specs), dtype=dtype)
    check_memory(footprint, {"hidden": hidden, "iterations": iterations, "every": every})
    x, y = datasets.planar(1, POINTS)
    sizes = [2, *hidden, 1]
    config = {
        "experiment": "symmetry",
        "inits": [s.name for s in specs],  # as parsed: results are keyed by these names
        "sizes": sizes,
        "activation": activation,
        "iterations": iterations,
        "every": every,
        "optimizer": {"name": "SGD", "lr": lr},
        "batch": "full",
        "seed": seed,
        "dtype": dtype,
    }
    result = SymmetryResult(config, checkpoints=checkpoints(iterations, every))
    with prepared_output(out, "symmetry"):  # a failed run removes what it made
        bar = ProgressBar(len(specs) * iterations, enabled=progress, label="symmetry")
        try:  # the bar's line ends however the run ends (Ctrl-C, an error)
            _train(result, specs, x, y, bar)
        finally:
            bar.close()
        if out is not None:
            with Output(Path(out), "symmetry") as output:  # all files or none
                _write(result, output)
    return result


def _footprint(sizes: dict[str, Any], *, models: int, dtype: str) -> dict[str, int]:
    """Bytes a run allocates, from below (:func:`~fastinit.experiments._common.check_memory`):
    the sweep's estimate of a fit from one checkpoint to the next, and every checkpoint's
    spreads and loss, kept."""
    from fastinit.sweep.runners import _mlp_footprint

    hidden, iterations = sizes["hidden"], sizes["iterations"]
    every = min(sizes["every"], iterations)
    cfg = {"dtype": dtype, "optimizer": "sgd", "iterations": every}
    parts = _mlp_footprint(cfg, [2, *hidden, 1], POINTS, False)
    points = -(-iterations // every) + 1  # as checkpoints()
    parts["checkpoints"] = 8 * points * (1 + models * (2 * len(hidden) + 1))
    return parts


def _train(
    result: SymmetryResult, specs: list, x: np.ndarray, y: np.ndarray, bar: ProgressBar
) -> None:
    """Train from each init, measuring the spreads at every checkpoint; fill ``result``."""
    cfg = result.config
    sizes, activation, seed, dtype = cfg["sizes"], cfg["activation"], cfg["seed"], cfg["dtype"]
    lr, iterations = cfg["optimizer"]["lr"], cfg["iterations"]
    for n, spec in enumerate(specs):
        # full batch: LSUV on every row
        model = spec.build_model(sizes, activation=activation, seed=seed, dtype=dtype, x_batch=x)
        inc, outg, losses, inc_scale, out_scale = [], [], [], [], []
        previous = 0
        for step in result.checkpoints:
            if step:
                h = model.fit(
                    x, y, optimizer=optim.SGD(lr), batch_size=len(x), iterations=step - previous,
                    sampling="full", loss="sigmoid_cross_entropy", progress=False,
                )  # fmt: skip
                h.raise_if_interrupted()  # Ctrl-C: stop here, write nothing
                previous = step
            # the loss of the weights measured at this checkpoint; h.loss[-1] was the
            # loss before the chunk's last update
            losses.append(model.evaluate(x, y, loss="sigmoid_cross_entropy")["loss"])
            if step:
                bar.update(n * iterations + step, losses[-1])
            inc.append([unit_spread(w) for w in model.weights[:-1]])
            outg.append([unit_spread(w.T) for w in model.weights[1:]])
            inc_scale.append([float(np.max(np.abs(w))) for w in model.weights[:-1]])
            out_scale.append([float(np.max(np.abs(w))) for w in model.weights[1:]])
        result.incoming[spec.name] = np.array(inc)
        result.outgoing[spec.name] = np.array(outg)
        result.incoming_scale[spec.name] = np.array(inc_scale)
        result.outgoing_scale[spec.name] = np.array(out_scale)
        result.loss[spec.name] = np.array(losses)


def _write(result: SymmetryResult, output: Output) -> None:
    output.json("summary.json", result.summary())
    names = list(result.incoming)
    layers = result.incoming[names[0]].shape[1]
    spreads = (("incoming", result.incoming), ("outgoing", result.outgoing))
    header = ["iteration"] + [
        f"{n}:{kind}:layer{k + 1}" for n in names for kind, _ in spreads for k in range(layers)
    ]
    rows = [
        [it, *(float(s[n][i, k]) for n in names for _, s in spreads for k in range(layers))]
        for i, it in enumerate(result.checkpoints)
    ]
    output.csv("spread.csv", header, rows)
    plt = pyplot()
    fig, ax = subplots(plt, figsize=(6.4, 4.2))
    drawn = []
    for k, name in enumerate(names):
        color = f"C{k % 10}"
        for kind, spread, marker, style in (("incoming", result.incoming, "o", "-"),
                                            ("outgoing", result.outgoing, "x", "--")):  # fmt: skip
            y = spread[name].max(axis=1)
            drawn.append(y)
            # inits that stay exactly equal draw one line at 0, each over the others:
            # the legend says so, and a larger ring per init keeps every one in sight
            zero = not np.any(y)
            ax.plot(result.checkpoints, y, marker=marker, linestyle=style, color=color,
                    markersize=5 + 3 * k if zero else 6, fillstyle="none" if zero else "full",
                    label=f"{name}, {kind}" + (" (0 throughout)" if zero else ""))  # fmt: skip
    span = positive_span(drawn)  # near 1e300 symlog's own padding overflows, as log's
    ax.set_ylim(0.0, span[1] if span else 1.0)  # spreads are >= 0
    ax.set_yscale("symlog", linthresh=1e-12)
    ax.set_xlabel("iteration")
    ax.set_ylabel("max difference between hidden units' weights\n(incoming and outgoing)")
    ax.legend()
    ax.set_title("symmetry: units that start equal stay equal")
    output.figure("symmetry.png", fig)
    plt.close(fig)
