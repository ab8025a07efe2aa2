"""The planar 'flower' exercise: a 2-4-1 tanh/sigmoid network and five initial scales.

The well-known planar-classification exercise: 400 points of two interleaved
petal classes (:func:`fastinit.datasets.planar`, seed 1 trains, seed 2 tests), a
network with 4 tanh hidden units and one sigmoid output, cross-entropy cost,
full-batch gradient descent, lr 1.2, 10000 iterations.  The notebook initializes
with ``np.random.seed(2)`` then ``W1 = randn(4, 2) * s``, ``W2 = randn(1, 4) * s``
and zero biases; with ``rng='notebook'`` (the default) fastinit draws exactly
those numbers (transposed into its ``(fan_in, fan_out)`` layout), so the cost
curves reproduce the notebook's.

What it shows: zeros never learn (the cost stays at log 2); s=1 learns; s=0.01
a bit better; s=0.001 ends higher; s=100 saturates tanh and sigmoid, so the
gradients are near zero and it learns slowly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastinit import datasets, optim
from fastinit._validate import (
    as_array,
    check_bool,
    check_choice,
    check_dtype,
    check_int,
    check_seed,
    value_errors,
)
from fastinit.experiments._common import (
    InitSpec,
    Output,
    check_lr,
    check_memory,
    fixed,
    json_safe,
    log_axis,
    parse_inits,
    prepared_output,
    provenance,
    pyplot,
    subplots,
    text_table,
)
from fastinit.model import MLP

DEFAULT_INITS = ("zeros", "randn", "randn*0.01", "randn*0.001", "randn*100")
GRID_STEP = 0.01  # the notebook's plot_decision_boundary step


@dataclass
class PlanarResult:
    """Cost curves, accuracies and decision boundaries per init.

    Attributes
    ----------
    config : dict
        The run's settings (written to summary.json).
    costs : dict of str -> numpy.ndarray
        Per init (or ``--weights`` name), the cost of every iteration.
    train_accuracy, test_accuracy : dict of str -> float
        Accuracy of the trained network on the training set and the seed-2 set
        (NaN for a diverged run, as in ``fastinit mnist`` and the sweeps).
    status : dict of str -> str
        Each run's ``History.status``.
    diverged_at : dict of str -> int or None
        Each run's ``History.diverged_at``: the iteration whose loss, or whose
        update's weights, was the first non-finite (None where it did not diverge).
    models : dict of str -> MLP
        The trained networks (for the decision-boundary figure).
    """

    config: dict[str, Any]
    costs: dict[str, np.ndarray] = field(default_factory=dict)
    train_accuracy: dict[str, float] = field(default_factory=dict)
    test_accuracy: dict[str, float] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    diverged_at: dict[str, int | None] = field(default_factory=dict)
    models: dict[str, MLP] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The key figures for summary.json.

        Returns
        -------
        dict
            ``results``: ``{init: {...}}`` with ``final_cost`` (the last entry of
            ``costs``: as in the notebook's list, the cost before the last update),
            ``cost_every_1000`` (the cost at iterations 0, 1000, ...), ``train_accuracy``,
            ``test_accuracy`` and ``status``; and the provenance (``config``,
            versions, ``created``).
        """
        results = {
            name: {
                "final_cost": float(c[-1]),
                "cost_every_1000": [float(v) for v in c[::1000]],
                "train_accuracy": self.train_accuracy[name],
                "test_accuracy": self.test_accuracy[name],
                "status": self.status[name],
            }
            for name, c in self.costs.items()
        }
        return {"results": results, **provenance(self.config)}

    def table(self) -> str:
        """Final cost and accuracies per init, as text.

        Returns
        -------
        str
            The aligned table, one line per init; ``n/a`` for a final cost that is
            not finite and for a diverged run's accuracies.
        """
        rows = [
            (
                name,
                "n/a" if r["final_cost"] is None else fixed(r["final_cost"], 6),
                "n/a" if r["train_accuracy"] is None else f"{r['train_accuracy']:.4f}",
                "n/a" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}",
            )
            for name, r in json_safe(self.summary()["results"]).items()
        ]
        return text_table(("init", "final cost", "train acc", "test acc"), rows, "<>>>")


def _accuracy(model: MLP, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(model.predict(x) == y))


def _check_notebook_seed(seed: int) -> None:
    """Refuse a seed outside NumPy's legacy range, naming ``seed``."""
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed: rng 'notebook' takes seeds in [0, 2**32), got {seed}")


def notebook_weights(scale: float, hidden: int = 4, seed: int = 2) -> list[np.ndarray]:
    """The notebook's initial parameters, in fastinit's layout.

    ``np.random.seed(seed); W1 = randn(hidden, 2) * scale; W2 = randn(1, hidden) * scale``,
    zero biases, drawn from a private ``RandomState`` (numpy's global state is
    left alone) and returned as ``[W1.T, b1, W2.T, b2]``.

    Parameters
    ----------
    scale : float
        The multiplier ``s``.
    hidden : int
        Hidden units.
    seed : int
        The legacy NumPy seed, in [0, 2**32).

    Returns
    -------
    list of numpy.ndarray

    Raises
    ------
    ValueError
        Naming ``seed``, if it is outside NumPy's legacy range.
    """
    _check_notebook_seed(seed)  # the experiment and the sweep runner both come here
    rs = np.random.RandomState(seed)
    w1 = rs.randn(hidden, 2) * scale
    w2 = rs.randn(1, hidden) * scale
    return [w1.T.copy(), np.zeros(hidden), w2.T.copy(), np.zeros(1)]


def initial_model(
    spec: InitSpec,
    sizes: Sequence[int],
    *,
    activation: str = "tanh",
    rng: str = "notebook",
    seed: int = 2,
    dtype: str = "float64",
    x: np.ndarray,
) -> MLP:
    """The network an init spec starts from, as ``fastinit planar`` and its sweep build it.

    With ``rng='notebook'`` a ``randn*s`` (or ``std=s``) spec on one hidden layer
    draws the classic notebook's weights (:func:`notebook_weights`); otherwise
    fastinit's own streams.  LSUV (``spec.prepare``) runs on all of ``x``.

    Parameters
    ----------
    spec : InitSpec
        A parsed init spec (:func:`fastinit.experiments._common.parse_init`).
    sizes : sequence of int
        ``[2, hidden..., 1]``.
    activation : str
        Hidden activation.
    rng : {'notebook', 'fastinit'}
        Which generator draws ``randn*s`` weights.
    seed : int
        Seed of the weights.
    dtype : {'float32', 'float64'}
        Parameter type.
    x : numpy.ndarray
        The training inputs (used by data-dependent inits).

    Returns
    -------
    MLP
    """
    model = spec.build_model(sizes, activation=activation, seed=seed, dtype=dtype, x_batch=x)
    if rng == "notebook" and draws_notebook_weights(spec, len(sizes) - 2):
        _assign(model, notebook_weights(spec.std, sizes[1], seed))
    return model


def draws_notebook_weights(spec: InitSpec, hidden_layers: int) -> bool:
    """Whether ``rng='notebook'`` draws the weights of ``spec`` the notebook's way.

    Only ``randn*s`` (``std=s``) on one hidden layer, the notebook's network: any
    other init or depth is drawn by fastinit whatever ``rng`` says (never LSUV).

    Parameters
    ----------
    spec : InitSpec
        A parsed init (:func:`fastinit.experiments._common.parse_init`).
    hidden_layers : int
        Hidden layers of the network.

    Returns
    -------
    bool
    """
    return spec.std is not None and hidden_layers == 1


PARAMS = ("W1", "b1", "W2", "b2")


def check_weights(
    params: Any, hidden: int, name: str = "weights", dtype: str = "float64"
) -> list[np.ndarray]:
    """Check explicit initial parameters ``[W1, b1, W2, b2]`` of the 2-hidden-1 network.

    Parameters
    ----------
    params : sequence of array_like
        ``W1`` shaped ``(2, hidden)``, ``b1`` ``(hidden,)``, ``W2`` ``(hidden, 1)``,
        ``b2`` ``(1,)``.
    hidden : int
        Hidden units of the network they start.
    name : str
        What to call them in an error (``"weights['mine']"``, ``"--weights mine.npz"``).
    dtype : {'float32', 'float64'}
        The arithmetic type of the run they start: a value beyond its range is refused.

    Returns
    -------
    list of numpy.ndarray
        The four arrays.

    Raises
    ------
    TypeError
        Naming ``name``, if ``params`` is not a sequence of four arrays of
        real numbers.
    ValueError
        Naming ``name`` and the array, for a shape that does not fit ``hidden``
        or a value that is not finite (in ``dtype``).
    """
    arrays, _ = _checked(params, hidden, name, dtype)
    return arrays


_SLOTS = (("weights", 0), ("biases", 0), ("weights", 1), ("biases", 1))  # of W1, b1, W2, b2


def _checked(params: Any, hidden: int, name: str, dtype: str) -> tuple[list[np.ndarray], MLP]:
    """:func:`check_weights`'s arrays and the ``dtype`` network they start; the values are
    checked by the model's own assignment, its errors named ``name: W1: ...``.  The shapes
    are checked first, before the network is made (a bad array with a huge ``hidden`` is
    named, not refused for the memory the network would take)."""
    if isinstance(params, (str, bytes, np.ndarray)) or not isinstance(params, Sequence):
        raise TypeError(f"{name}: expected [W1, b1, W2, b2], got {type(params).__name__}")
    if len(params) != 4:
        raise ValueError(f"{name}: expected [W1, b1, W2, b2], got {len(params)} arrays")
    shapes = ((2, hidden), (hidden,), (hidden, 1), (1,))  # of the 2-hidden-1 network
    arrays = []
    for label, value, shape in zip(PARAMS, params, shapes, strict=True):
        a = as_array(value, f"{name}: {label}", "an array of real numbers")
        if a.dtype.kind not in "biuf":  # a TypeError, as documented (the model's is a ValueError)
            raise TypeError(f"{name}: {label}: expected real numbers, got dtype {a.dtype}")
        if a.shape != shape:
            raise ValueError(f"{name}: {label}: expected shape {shape}, got {a.shape}")
        arrays.append(a)
    model = MLP([2, hidden, 1], activation="tanh", init="zeros", dtype=dtype)
    for label, a, (kind, k) in zip(PARAMS, arrays, _SLOTS, strict=True):
        try:
            getattr(model, kind)[k] = a  # finite in dtype
        except ValueError as err:  # "weights[0]: expected ...": name the run and the array
            raise ValueError(f"{name}: {label}: {str(err).partition(': ')[2]}") from None
    return arrays, model


def _assign(model: MLP, params: Sequence[np.ndarray]) -> None:
    """Load ``[W1, b1, W2, b2]`` (:func:`notebook_weights`) into ``model``."""
    model.weights = params[0::2]
    model.biases = params[1::2]


def run_planar(
    inits: tuple[str, ...] = DEFAULT_INITS,
    *,
    weights: Mapping[str, Sequence[np.ndarray]] | None = None,
    hidden: int = 4,
    iterations: int = 10000,
    lr: float = 1.2,
    rng: str = "notebook",
    seed: int = 2,
    m: int = 400,
    dtype: str = "float64",
    out: Any = None,
    progress: bool = True,
) -> PlanarResult:
    """Train the 2-hidden-1 tanh/sigmoid network on the flower data for each init.

    Parameters
    ----------
    inits : tuple of str
        Init specs: ``"zeros"``, ``"randn"``, ``"randn*<s>"``, ``"std=<s>"``,
        ``"constant=<v>"`` or a :mod:`fastinit.init` name; at least one,
        unless ``weights`` are given.
    weights : mapping of str to [W1, b1, W2, b2], optional
        Explicit initial parameters (``W1`` shaped ``(2, hidden)``, ``b1``
        ``(hidden,)``, ``W2`` ``(hidden, 1)``, ``b2`` ``(1,)``; see
        :func:`check_weights`), run in addition to ``inits`` under the given names.
    hidden : int
        Hidden units (4 in the exercise).
    iterations : int
        Full-batch gradient descent steps.
    lr : float
        Learning rate.
    rng : {'notebook', 'fastinit'}
        ``'notebook'`` draws ``randn*s`` / ``std=s`` weights exactly as the
        notebook does (legacy ``RandomState(seed)``); ``'fastinit'`` uses
        fastinit's counter-based generator.
    seed : int
        Seed of the initial weights (2 in the notebook).
    m : int
        Points in each of the training (seed 1) and test (seed 2) sets.
    dtype : {'float32', 'float64'}
        Arithmetic type (float64, like the notebook, by default).
    out : path-like, optional
        Directory for ``planar_cost.png``, ``planar_boundaries.png``,
        ``summary.json`` and ``cost_curves.csv``.
    progress : bool
        Show a progress bar on runs longer than a second.

    Returns
    -------
    PlanarResult

    Raises
    ------
    ValueError
        For a bad argument, naming it, before anything runs (see :mod:`fastinit.experiments`).
    MemoryError
        Naming ``hidden`` or ``iterations``, before anything runs, when the
        run's arrays would not fit in the memory available
        (:func:`~fastinit.experiments._common.check_memory`).
    KeyboardInterrupt
        On Ctrl-C, with nothing written.
    """
    with value_errors():  # a wrong type: TypeError, and ValueError as fit raises
        if weights is None:
            weights = {}
        if not isinstance(weights, Mapping):
            raise TypeError(
                f"weights: expected a mapping of run names to [W1, b1, W2, b2], "
                f"got {type(weights).__name__}"
            )
        dtype = check_dtype(dtype).name
        rng = check_choice(rng, "rng", ("notebook", "fastinit"))
        notebook = rng == "notebook"  # randn*s: the notebook's draw, not fastinit's normal
        specs = parse_inits(inits, allow_empty=bool(weights), dtype=dtype, notebook=notebook)
        progress = check_bool(progress, "progress")
        hidden = check_int(hidden, "hidden", low=1)
        iterations = check_int(iterations, "iterations", low=1)
        lr = check_lr(lr, dtype)
        seed = check_seed(seed)
        if notebook and any(draws_notebook_weights(s, 1) for s in specs):  # before the output
            _check_notebook_seed(seed)
        m = datasets.check_planar_size(m)
        for name in weights:
            if not isinstance(name, str) or not name.strip():
                raise TypeError(f"weights: expected run names (non-empty str), got {name!r}")
            if any(name.lower() == s.name.lower() for s in specs):
                raise ValueError(
                    f"weights: {name!r} is also the name of an init in inits; give each run "
                    "its own name"
                )
        # the networks are made here, before anything is computed or written
        explicit = {n: _checked(w, hidden, f"weights[{n!r}]", dtype)[1] for n, w in weights.items()}
        footprint = functools.partial(_footprint, models=len(specs) + len(weights), dtype=dtype)
        check_memory(footprint, {"hidden": hidden, "iterations": iterations, "m": m})
    x_train, y_train = datasets.planar(1, m)
    x_test, y_test = datasets.planar(2, m)
    config = {
        "experiment": "planar",
        "inits": [s.name for s in specs],  # as parsed: results are keyed by these names
        "explicit_weights": sorted(weights),
        "sizes": [2, hidden, 1],
        "activation": "tanh",
        "loss": "sigmoid_cross_entropy",
        "iterations": iterations,
        "optimizer": {"name": "SGD", "lr": lr},
        "batch": "full",
        "rng": rng,
        "seed": seed,
        "m": m,
        "dtype": dtype,
    }
    result = PlanarResult(config)
    with prepared_output(out, "planar"):  # a failed run removes what it made
        models = {
            s.name: initial_model(s, [2, hidden, 1], rng=rng, seed=seed, dtype=dtype, x=x_train)
            for s in specs
        }
        models.update(explicit)
        _train(result, models, (x_train, y_train), (x_test, y_test), progress)
        if out is not None:
            with Output(Path(out), "planar") as output:  # all files or none
                _write(result, output, x_train, y_train)
    return result


def _footprint(sizes: dict[str, int], *, models: int, dtype: str) -> dict[str, int]:
    """Bytes a run allocates, from below (:func:`~fastinit.experiments._common.check_memory`):
    the sweep's estimate of one network's training, the other networks (all are built
    before the first trains) and every cost curve, kept."""
    from fastinit.sweep.runners import EXPERIMENTS

    hidden, iterations, m = sizes["hidden"], sizes["iterations"], sizes["m"]
    cfg = {"dtype": dtype, "optimizer": "sgd", "width": hidden, "depth": 1, "m": m,
           "iterations": iterations}  # fmt: skip
    parts = EXPERIMENTS["planar"].footprint(cfg)
    parts["other networks"] = (models - 1) * (4 * hidden + 1) * np.dtype(dtype).itemsize
    parts["cost curves"] = 8 * models * iterations
    return parts


def _train(result: PlanarResult, models: dict[str, MLP], train: tuple, test: tuple,
           progress: bool) -> None:  # fmt: skip
    """Train each network full-batch as ``result.config`` says; fill ``result``."""
    (x_train, y_train), (x_test, y_test) = train, test
    lr, iterations = result.config["optimizer"]["lr"], result.config["iterations"]
    for name, model in models.items():
        history = model.fit(
            x_train, y_train, optimizer=optim.SGD(lr), batch_size=len(x_train),
            iterations=iterations, sampling="full", loss="sigmoid_cross_entropy",
            progress=progress,
        )  # fmt: skip
        history.raise_if_interrupted()  # Ctrl-C: stop, train no more inits, write nothing
        result.costs[name] = np.asarray(history.loss, dtype=np.float64)
        result.status[name] = history.status
        result.diverged_at[name] = history.diverged_at
        # a diverged network (non-finite weights) has no accuracy: its predictions are noise
        ok = history.status == "ok"
        result.train_accuracy[name] = _accuracy(model, x_train, y_train) if ok else math.nan
        result.test_accuracy[name] = _accuracy(model, x_test, y_test) if ok else math.nan
        result.models[name] = model


def _write(result: PlanarResult, output: Output, x: np.ndarray, y: np.ndarray) -> None:
    output.json("summary.json", result.summary())
    names = list(result.costs)
    n = max(len(c) for c in result.costs.values())
    rows = [
        [i, *(float(result.costs[k][i]) if i < len(result.costs[k]) else "" for k in names)]
        for i in range(n)
    ]
    output.csv("cost_curves.csv", ["iteration", *names], rows)
    plt = pyplot()
    fig, ax = subplots(plt, figsize=(6.4, 4.4))
    for name in names:
        at = result.diverged_at.get(name)  # the loss's or, after a finite loss, the update's
        label = f"{name} (diverged at iteration {at})" if at is not None else name
        ax.plot(result.costs[name], label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel("cost")
    log_axis(ax, list(result.costs.values()))  # a diverging float64 run reaches 1e305
    ax.legend()
    cfg = result.config
    sizes = "-".join(map(str, cfg["sizes"]))
    ax.set_title(f"planar {sizes} tanh/sigmoid, lr {cfg['optimizer']['lr']:g}, full batch")
    output.figure("planar_cost.png", fig)
    plt.close(fig)
    fig = _boundaries(plt, result, x, y)
    output.figure("planar_boundaries.png", fig)
    plt.close(fig)


def _boundaries(plt, result: PlanarResult, x: np.ndarray, y: np.ndarray):
    x0, x1 = x[:, 0].min() - 1, x[:, 0].max() + 1
    y0, y1 = x[:, 1].min() - 1, x[:, 1].max() + 1
    xx, yy = np.meshgrid(np.arange(x0, x1, GRID_STEP), np.arange(y0, y1, GRID_STEP))
    grid = np.c_[xx.ravel(), yy.ravel()]
    names = list(result.models)
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = subplots(plt, rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names, strict=False):
        train, test = result.train_accuracy[name], result.test_accuracy[name]
        trained = math.isfinite(train) and math.isfinite(test)
        if trained:  # a diverged network's predictions are noise: no boundary drawn for it
            z = result.models[name].predict(grid).reshape(xx.shape)
            # one band per class, coloured as its points (a one-class map, zeros, too), lighter
            ax.contourf(xx, yy, z, [-0.5, 0.5, 1.5], vmin=0, vmax=1, cmap=plt.cm.Spectral,
                        alpha=0.5)  # fmt: skip
        ax.scatter(x[:, 0], x[:, 1], c=y, s=8, cmap=plt.cm.Spectral, edgecolors="k", linewidths=0.2)
        ax.set_title(f"{name}: train acc {train:.2f}, test {test:.2f}" if trained
                     else f"{name}: diverged, no boundary")  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("decision boundaries over the training points")
    fig.tight_layout()
    return fig
