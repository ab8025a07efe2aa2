"""One runner per experiment: a flat configuration dict in, metrics and curves out.

Every sweep run is ``execute(config)``: a plain, picklable dict goes to a worker
(a process of the local pool, a Dask worker or the sweep process itself) and a
plain dict comes back, so workers need nothing but the installed package.

A configuration is ``{"experiment": name, **parameters}`` with every parameter
of that experiment present (:func:`full_config` fills the defaults).  The
parameters of each experiment, their types, defaults and allowed values are
declared in :data:`EXPERIMENTS`; :mod:`fastinit.sweep.spec` checks SPEC files
against them.

=============  ===========================================================================
experiment     one run
=============  ===========================================================================
``planar``     the flower data, ``2-width(xdepth)-1`` network, full-batch training,
               sigmoid cross-entropy; the defaults are ``fastinit planar``'s (tanh,
               SGD lr 1.2, notebook weights for ``randn*s``)
``mnist``      MNIST ``784-width(xdepth)-10``, minibatch training, softmax
               cross-entropy, test accuracy on the 10000 test images
``histogram``  the histogram experiment's network (``depth`` layers at init):
               per-layer activation and gradient statistics
``depth``      :mod:`fastinit.experiments.depth` for one depth and one seed
``selftest``   no numerics: sleeps, fails, diverges or kills its worker on request
               (for testing and timing the sweep machinery itself)
=============  ===========================================================================

Runner results: ``metrics`` (a flat dict of numbers), ``curves`` (named lists:
``loss`` per iteration for the training experiments; ``act_std``, ``act_mean``
and ``grad_std`` per layer for ``histogram`` and ``depth``) and ``status``
(``"ok"``, or ``"diverged"`` when the loss or a statistic became non-finite).
Non-finite numbers are stored as JSON ``null``.  No metric shares a name with a
parameter: the training experiments report the iterations completed as
``iterations_done`` (fewer than the ``iterations`` parameter for a diverged run).
A diverged run of planar or mnist has no accuracy (``null``): its non-finite
weights predict noise, which the report would average in.

Every run computes with NumPy's OpenBLAS on one thread
(:func:`fastinit.dense.one_blas_thread`), whichever executor runs it: the pool's and
Dask's workers are started so, and a run in the sweep process itself (``--workers
0``) is run so.  OpenBLAS's last bits depend on its thread count, so a sweep
interrupted and resumed with other ``--workers`` or on Dask records exactly the
results of an uninterrupted one.  A direct command (``fastinit mnist``...) uses
OpenBLAS's threads: it equals the sweep's run bit for bit with
``OPENBLAS_NUM_THREADS=1`` (or at sizes OpenBLAS does not split).

This module imports neither NumPy nor numba at import time: a worker process
sets its thread counts first (see :mod:`fastinit.sweep.execute`).
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastinit

__all__ = ["EXPERIMENTS", "Experiment", "Param", "execute", "full_config", "run"]

STATUSES = ("ok", "diverged", "failed")
DTYPES = ("float32", "float64")
ITEMSIZE = {"float32": 4, "float64": 8}
SEED_MAX = 2**64 - 1  # the random generators' keys are uint64
MNIST_INPUTS, MNIST_CLASSES = 784, 10  # 28 x 28 pixels; digits
# bytes per iteration of a loss curve: in training, the kernels' float64 array and
# History's copy of it; selftest's list of Python floats (an 8-byte pointer to a
# 24-byte float) and the result's list of them
CURVE_BYTES, LIST_CURVE_BYTES = 8 + 8, 8 + 24 + 8
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")


@dataclass(frozen=True)
class Param:
    """A sweep parameter: its type, default, and allowed values.

    Attributes
    ----------
    kind : {'int', 'float', 'str', 'bool'}
        TOML type (a float parameter also takes an integer).
    default : Any
        Value when the SPEC file does not set it (None: unset, allowed only
        when ``optional``).
    low : float, optional
        Smallest allowed value of a number.
    high : int, optional
        Largest allowed value of an integer (default: ``2**63 - 1``, the int64
        the kernels take sizes and counts in).
    choices : tuple of str, optional
        Allowed strings (compared lower-case).
    check : {'init', 'activation'}, optional
        Validate (and, for activations, canonicalize) through fastinit.
    optional : bool
        Whether the value may be left unset (None).
    help : str
        One line for ``fastinit sweep --list``.
    validate : callable, optional
        Called by the SPEC check with each value that passed the checks above
        (never with None); raises ``ValueError("<key>: expected ..., got ...")``
        for a value the run itself would reject, so that the SPEC is refused
        up front instead of every such run failing.
    """

    kind: str
    default: Any
    low: float | None = None
    choices: tuple[str, ...] | None = None
    check: str | None = None
    optional: bool = False
    help: str = ""
    validate: Callable[[Any], None] | None = None
    high: int | None = None


@dataclass(frozen=True)
class Experiment:
    """An experiment a sweep can run: its parameters, runner and headline metrics.

    Attributes
    ----------
    name : str
        The experiment's name in a SPEC file and on the command line.
    params : dict of str to Param
        Its parameters, in the order runs are keyed.
    runner : callable
        Runs one configuration (a dict of every parameter) and returns its result.
    metrics : tuple of str
        The headline metrics (the report's heatmaps); the first is the main one.
    curve : str
        The curve the report draws as bands over seeds ("" for none).
    doc : str
        One line for ``fastinit sweep --list``.
    hidden : bool
        Left out of ``--list`` (test-only experiments).
    check_grid : callable or None
        Called by the SPEC check with each grid's axes (``{parameter: [values]}``,
        defaults and ``[fixed]`` included; every combination is run); raises
        ``ValueError("<key>: ...")`` for a combination the run itself would reject.
    recorded : tuple of str
        The other metrics each run records (the report's tables show them
        all; ``fastinit sweep --list`` lists them after the headline ones).
    footprint : callable or None
        Called by the SPEC check with a full configuration; returns the bytes of
        the arrays its run allocates that grow with the parameters, by part
        (``{"parameters": ..., "activations": ..., ...}``): an estimate from
        below, non-decreasing in every number and independent of the strings
        other than those with ``choices`` (so the grid's largest run is found by
        trying only those).
    numeric : bool
        Whether its runs compute with NumPy: :func:`run` runs them with OpenBLAS
        on one thread (False: it imports neither NumPy nor numba for them).
    """

    name: str
    params: dict[str, Param]
    runner: Callable[[dict[str, Any]], dict[str, Any]]
    metrics: tuple[str, ...]
    curve: str
    doc: str = ""
    hidden: bool = False
    check_grid: Callable[[dict[str, list[Any]]], None] | None = None
    footprint: Callable[[dict[str, Any]], dict[str, int]] | None = None
    recorded: tuple[str, ...] = ()
    numeric: bool = True


def _init(default: str) -> Param:
    return Param("str", default, check="init", help="init spec: he, xavier, std=0.01, ...")


def _activation(default: str) -> Param:
    return Param("str", default, check="activation", help="hidden activation")


def _seed(text: str, default: int = 0) -> Param:
    return Param("int", default, low=0, high=SEED_MAX, help=text)


def _check_momentum(momentum: float) -> None:
    """Refuse a momentum ``fastinit.optim`` rejects (its own check: [0, 1))."""
    from fastinit._validate import check_unit_interval

    check_unit_interval(momentum, "momentum")


def _training(lr: float, seed: int, dtype: str) -> dict[str, Param]:
    return {
        "lr": Param("float", lr, low=0.0, help="learning rate"),
        "optimizer": Param("str", "sgd", choices=OPTIMIZERS, help="optimizer"),
        "momentum": Param(
            "float",
            0.9,
            low=0.0,
            validate=_check_momentum,
            help="momentum in [0, 1) (momentum; nesterov: (0, 1))",
        ),
        "weight_decay": Param("float", 0.0, low=0.0, help="L2 weight decay"),
        "seed": _seed("seed of the initial weights (and minibatches)", seed),
        "dtype": Param("str", dtype, choices=DTYPES, help="arithmetic type"),
    }


# ----------------------------------------------------------------------------- helpers
def _finite(value: Any) -> float | None:
    """A float, or None for NaN/inf (JSON has neither)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _curve(values: Any) -> list[float | None]:
    return [_finite(v) for v in values]


def _optimizer(cfg: dict[str, Any]) -> Any:
    from fastinit import optim

    name = cfg["optimizer"]
    hyper: dict[str, float] = {"lr": cfg["lr"], "weight_decay": cfg["weight_decay"]}
    if name in ("momentum", "nesterov"):
        hyper["momentum"] = cfg["momentum"]
    return optim.get(name, "optimizer", **hyper)


@functools.lru_cache(maxsize=2)
def _mnist(dtype: str) -> tuple:
    from fastinit import datasets

    return datasets.load_mnist(dtype=dtype)  # once per worker process and dtype


@functools.lru_cache(maxsize=4)
def _planar_data(m: int) -> tuple:
    from fastinit import datasets

    return datasets.planar(1, m), datasets.planar(2, m)


def _check_planar_m(m: int) -> None:
    """Raise ``datasets.planar``'s own ValueError for an ``m`` it rejects (an odd one)."""
    from fastinit import datasets

    datasets.check_planar_size(m)


def _check_planar_grid(axes: dict[str, list[Any]]) -> None:
    """Refuse a seed the notebook generator cannot take in a combination that draws from it."""
    from fastinit.experiments._common import parse_init
    from fastinit.experiments.planar import draws_notebook_weights

    _check_training_grid(axes)
    big = [seed for seed in axes["seed"] if seed >= 2**32]
    if not big or "notebook" not in axes["rng"] or 1 not in axes["depth"]:
        return
    for init in axes["init"]:
        if draws_notebook_weights(parse_init(init), 1):  # the notebook's RandomState draws it
            raise ValueError(
                f"seed: rng 'notebook' takes seeds in [0, 2**32), got {big[0]} with init "
                f"{init!r} and depth 1; set rng = 'fastinit' for larger seeds"
            )


def _check_training_grid(axes: dict[str, list[Any]]) -> None:
    """Refuse an ``lr`` or ``weight_decay`` that a grid's dtype rounds to 0 or to infinity,
    and a momentum of 0 beside the optimizer ``nesterov``.

    ``fit`` refuses the first (:func:`fastinit.train.fit_many`: the kernels round these
    hyperparameters to the model dtype once) and :class:`fastinit.optim.Nesterov` the
    second (plain SGD), so every such run would fail.
    """
    from fastinit._validate import check_dtype_holds

    if "nesterov" in axes["optimizer"]:
        from fastinit.optim import _check_nesterov_momentum

        for value in axes["momentum"]:
            _check_nesterov_momentum(value, "momentum")  # "... with Nesterov (0 is plain SGD)"

    for dtype in axes["dtype"]:
        for key in ("lr", "weight_decay"):
            for value in axes[key]:
                if value > 0:  # 0: no weight decay (an lr of 0 is Param's to refuse)
                    check_dtype_holds(value, key, dtype, zero=key == "weight_decay")


def _check_train_size(train_size: int, available: int | None = None) -> None:
    """Reject a ``train_size`` above the number of training images (counted if not given)."""
    if available is None:
        try:
            from fastinit import datasets

            available = datasets.mnist_train_size()
        except (OSError, ValueError):  # unreadable data: each run records the error
            return
    if train_size > available:
        raise ValueError(
            f"train_size: expected at most {available} (the MNIST training images), "
            f"got {train_size}"
        )


# ----------------------------------------------------------------------------- footprints
def _mlp_footprint(
    cfg: dict[str, Any], sizes: list[int], rows: int, gathered: bool
) -> dict[str, int]:
    """Bytes of a training run of an MLP of ``sizes`` on batches of ``rows`` rows.

    The arrays of :func:`fastinit.train.fit_many`: parameters and gradients, the
    optimizer's two slots (none for plain SGD), the forward/backward work array
    (``fastinit.dense.work_size``), the per-row losses and, for minibatches
    (``gathered``), the batch's inputs; and the loss curve.
    """
    b = ITEMSIZE[cfg["dtype"]]
    n_params = sum((fan_in + 1) * fan_out for fan_in, fan_out in itertools.pairwise(sizes))
    work = rows * (2 * sum(sizes[1:]) + max(sizes[1:-1], default=0))
    batch = rows * (1 + (sizes[0] if gathered else 0))
    return {
        "parameters and gradients": 2 * n_params * b,
        "optimizer state": 0 if cfg["optimizer"] == "sgd" else 2 * n_params * b,
        "activations": (work + batch) * b,
        "loss curve": CURVE_BYTES * cfg["iterations"],
    }


def _planar_footprint(cfg: dict[str, Any]) -> dict[str, int]:
    sizes = [2, *([cfg["width"]] * cfg["depth"]), 1]
    out = _mlp_footprint(cfg, sizes, cfg["m"], False)  # full batch: all m rows, in place
    out["data"] = 2 * cfg["m"] * (2 * 8 + 8)  # training and test sets: float64 points, labels
    return out


def _mnist_footprint(cfg: dict[str, Any]) -> dict[str, int]:
    rows = cfg["batch_size"]
    if cfg["sampling"] == "shuffle":  # a shuffled batch is at most the data set
        n = cfg["train_size"]
        if n is None:
            try:
                from fastinit import datasets

                n = datasets.mnist_train_size()
            except (OSError, ValueError):  # unreadable data: each run records the error
                n = 0
        rows = min(rows, n)
    sizes = [MNIST_INPUTS, *([cfg["width"]] * cfg["depth"]), MNIST_CLASSES]
    return _mlp_footprint(cfg, sizes, rows, True)


def _signal_footprint(cfg: dict[str, Any], arrays_per_layer: int) -> dict[str, int]:
    """Bytes of a histogram or depth run: weights, then per layer ``samples x width`` arrays."""
    b, width, depth = ITEMSIZE[cfg["dtype"]], cfg["width"], cfg["depth"]
    signal = cfg["samples"] * width * b
    return {
        "parameters": depth * width * width * b,
        "activations": (arrays_per_layer * depth + 2) * signal,  # + the inputs, top gradient
    }


def _histogram_footprint(cfg: dict[str, Any]) -> dict[str, int]:
    return _signal_footprint(cfg, 3)  # activations, derivatives, gradients of every layer


def _depth_footprint(cfg: dict[str, Any]) -> dict[str, int]:
    return _signal_footprint(cfg, 2)  # derivatives kept, with activations then gradients


def _selftest_footprint(cfg: dict[str, Any]) -> dict[str, int]:
    return {"loss curve": LIST_CURVE_BYTES * cfg["iterations"]}


# ----------------------------------------------------------------------------- runners
def _run_planar(cfg: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from fastinit.experiments._common import parse_init
    from fastinit.experiments.planar import initial_model

    (x, y), (xt, yt) = _planar_data(cfg["m"])
    model = initial_model(
        parse_init(cfg["init"]), [2, *([cfg["width"]] * cfg["depth"]), 1],
        activation=cfg["activation"], rng=cfg["rng"], seed=cfg["seed"], dtype=cfg["dtype"], x=x,
    )  # fmt: skip
    history = model.fit(
        x, y, optimizer=_optimizer(cfg), batch_size=len(x), iterations=cfg["iterations"],
        sampling="full", loss="sigmoid_cross_entropy", progress=False,
    )  # fmt: skip
    history.raise_if_interrupted()  # fit caught a Ctrl-C: record no partial run
    loss = np.asarray(history.loss, dtype=np.float64)
    ok = history.status == "ok"  # a diverged network has no accuracy (as in _run_mnist)
    return {
        "status": history.status,
        "metrics": {
            "final_loss": _finite(loss[-1]) if loss.size else None,
            "train_accuracy": float(np.mean(model.predict(x) == y)) if ok else None,
            "test_accuracy": float(np.mean(model.predict(xt) == yt)) if ok else None,
            "iterations_done": int(history.iterations),
        },
        "curves": {"loss": _curve(loss)},
    }


def _run_mnist(cfg: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from fastinit.experiments._common import parse_init
    from fastinit.train import batch_rows

    spec = parse_init(cfg["init"])
    (x, t), (xt, tt) = _mnist(cfg["dtype"])
    if cfg["train_size"] is not None:
        _check_train_size(cfg["train_size"], len(x))
        x, t = x[: cfg["train_size"]], t[: cfg["train_size"]]
    sizes = [x.shape[1], *([cfg["width"]] * cfg["depth"]), MNIST_CLASSES]
    first = batch_rows(len(x), cfg["batch_size"], 0, sampling=cfg["sampling"], seed=cfg["seed"])
    model = spec.build_model(  # LSUV on iteration 0's batch
        sizes, activation=cfg["activation"], seed=cfg["seed"], dtype=cfg["dtype"],
        x_batch=x[first],
    )  # fmt: skip
    history = model.fit(
        x, t, optimizer=_optimizer(cfg), batch_size=cfg["batch_size"],
        iterations=cfg["iterations"], sampling=cfg["sampling"], seed=cfg["seed"], progress=False,
    )  # fmt: skip
    history.raise_if_interrupted()  # fit caught a Ctrl-C: record no partial run
    loss = np.asarray(history.loss, dtype=np.float64)
    tail = loss[-min(100, loss.size) :] if loss.size else loss
    metrics: dict[str, Any] = {
        "final_loss": _finite(np.mean(tail)) if tail.size else None,
        "iterations_done": int(history.iterations),
    }
    if history.status == "ok":
        test = model.evaluate(xt, tt)
        metrics["test_loss"] = _finite(test["loss"])
        metrics["test_accuracy"] = _finite(test["accuracy"])
    else:
        metrics["test_loss"] = metrics["test_accuracy"] = None
    return {"status": history.status, "metrics": metrics, "curves": {"loss": _curve(loss)}}


def _signal_result(act_mean: Any, act_std: Any, grad_std: Any, extra: dict) -> dict[str, Any]:
    import numpy as np

    curves = {
        "act_mean": _curve(act_mean),
        "act_std": _curve(act_std),
        "grad_std": _curve(grad_std),
    }
    finite = all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in (act_std, grad_std))
    metrics = {
        "act_std_first": _finite(act_std[0]),
        "act_std_last": _finite(act_std[-1]),
        "grad_std_first": _finite(grad_std[0]),
        "grad_std_last": _finite(grad_std[-1]),
        "act_mean_last": _finite(act_mean[-1]),
        **extra,
    }
    return {"status": "ok" if finite else "diverged", "metrics": metrics, "curves": curves}


def _run_histogram(cfg: dict[str, Any]) -> dict[str, Any]:
    from fastinit.experiments.histogram import run_histogram

    r = run_histogram(
        (cfg["init"],), (cfg["activation"],), layers=cfg["depth"], width=cfg["width"],
        samples=cfg["samples"], bins=10, seed=cfg["seed"], dtype=cfg["dtype"], progress=False,
    )  # fmt: skip
    stats = r.stats
    last = stats[-1]
    extra = {
        "saturated_last": None if last.saturated is None else _finite(last.saturated),
        "dead_last": None if last.dead is None else _finite(last.dead),
    }
    return _signal_result(
        [s.act_mean for s in stats], [s.act_std for s in stats], [s.grad_std for s in stats], extra
    )


def _run_depth(cfg: dict[str, Any]) -> dict[str, Any]:
    from fastinit.experiments.depth import run_depth

    depth = cfg["depth"]
    r = run_depth(
        (cfg["init"],), (cfg["activation"],), depths=(depth,), width=cfg["width"],
        samples=cfg["samples"], seeds=1, seed=cfg["seed"], dtype=cfg["dtype"], progress=False,
    )  # fmt: skip
    key = (r.config["inits"][0], cfg["activation"], depth)
    return _signal_result(r.act_mean[key][0], r.act_std[key][0], r.grad_std[key][0], {})


def _run_selftest(cfg: dict[str, Any]) -> dict[str, Any]:
    if cfg["crash"]:
        if not _IN_WORKER:
            raise RuntimeError("crash: refused outside a worker process (it would end the sweep)")
        os._exit(3)  # the worker dies: the executor must notice
    if cfg["sleep"]:
        time.sleep(cfg["sleep"])
    if cfg["fail"]:
        raise ValueError(f"selftest: failing on request (seed {cfg['seed']})")
    n = cfg["iterations"]
    loss = [1.0 / (1.0 + i + cfg["seed"]) for i in range(n)]
    status = "ok"
    if cfg["diverge"]:
        loss[-1] = float("inf")
        status = "diverged"
    return {
        "status": status,
        "metrics": {"final_loss": _finite(loss[-1]), "value": float(cfg["seed"]) + cfg["value"]},
        "curves": {"loss": _curve(loss)},
    }


# what _signal_result records besides the headline act_std_last and grad_std_first
SIGNAL_METRICS = ("act_std_first", "grad_std_last", "act_mean_last")

EXPERIMENTS: dict[str, Experiment] = {
    "planar": Experiment(
        "planar",
        {
            "init": _init("randn"),
            "activation": _activation("tanh"),
            "width": Param("int", 4, low=1, help="hidden units per layer"),
            "depth": Param("int", 1, low=1, help="hidden layers"),
            "iterations": Param("int", 10000, low=1, help="full-batch steps"),
            **_training(1.2, 2, "float64"),
            "rng": Param(
                "str",
                "notebook",
                choices=("notebook", "fastinit"),
                help="'notebook': randn*s drawn as the classic notebook (1 hidden layer)",
            ),
            "m": Param(
                "int",
                400,
                low=2,
                help="points in the training and the test set (even)",
                validate=_check_planar_m,
            ),
        },
        _run_planar,
        ("final_loss", "test_accuracy", "train_accuracy"),
        "loss",
        "the planar flower, full-batch training",
        check_grid=_check_planar_grid,
        footprint=_planar_footprint,
        recorded=("iterations_done",),
    ),
    "mnist": Experiment(
        "mnist",
        {
            "init": _init("he"),
            "activation": _activation("relu"),
            "width": Param("int", 100, low=1, help="hidden units per layer"),
            "depth": Param("int", 4, low=1, help="hidden layers"),
            "iterations": Param("int", 2000, low=1, help="minibatch steps"),
            "batch_size": Param("int", 128, low=1, help="minibatch rows"),
            "sampling": Param(
                "str", "replacement", choices=("replacement", "shuffle"), help="minibatch sampling"
            ),
            **_training(0.01, 0, "float32"),
            "train_size": Param(
                "int",
                None,
                low=1,
                optional=True,
                help="use only the first N training images (default: all)",
                validate=_check_train_size,
            ),
        },
        _run_mnist,
        ("final_loss", "test_accuracy"),
        "loss",
        "MNIST 784-width(xdepth)-10, minibatch training",
        check_grid=_check_training_grid,
        footprint=_mnist_footprint,
        recorded=("test_loss", "iterations_done"),
    ),
    "histogram": Experiment(
        "histogram",
        {
            "init": _init("he"),
            "activation": _activation("relu"),
            "depth": Param("int", 5, low=1, help="layers"),
            "width": Param("int", 100, low=1, help="units per layer"),
            "samples": Param("int", 1000, low=1, help="Gaussian input rows"),
            "seed": _seed("seed of inputs and weights"),
            "dtype": Param("str", "float64", choices=DTYPES, help="arithmetic type"),
        },
        _run_histogram,
        ("act_std_last", "grad_std_first"),
        "act_std",
        "per-layer statistics of the histogram experiment's network",
        footprint=_histogram_footprint,
        recorded=(*SIGNAL_METRICS, "saturated_last", "dead_last"),
    ),
    "depth": Experiment(
        "depth",
        {
            "init": _init("he"),
            "activation": _activation("relu"),
            "depth": Param("int", 10, low=1, help="layers"),
            "width": Param("int", 128, low=1, help="units per layer"),
            "samples": Param("int", 512, low=1, help="Gaussian input rows"),
            "seed": _seed("seed of inputs, weights and top gradient"),
            "dtype": Param("str", "float64", choices=DTYPES, help="arithmetic type"),
        },
        _run_depth,
        ("act_std_last", "grad_std_first"),
        "act_std",
        "signal propagation at initialization (fastinit depth)",
        footprint=_depth_footprint,
        recorded=SIGNAL_METRICS,
    ),
    "selftest": Experiment(
        "selftest",
        {
            "init": Param("str", "none", help="a label (not checked)"),
            "activation": Param("str", "none", help="a label (not checked)"),
            "seed": _seed("seed (enters the metrics)"),
            "value": Param("float", 0.0, help="added to the 'value' metric"),
            "iterations": Param("int", 10, low=1, help="length of the fake loss curve"),
            "sleep": Param("float", 0.0, low=0.0, help="seconds to sleep"),
            "fail": Param("bool", False, help="raise ValueError"),
            "diverge": Param("bool", False, help="end the loss curve with inf"),
            "crash": Param("bool", False, help="kill the worker process (os._exit)"),
        },
        _run_selftest,
        ("value", "final_loss"),
        "loss",
        "sweep machinery self-test (no numerics)",
        hidden=True,
        footprint=_selftest_footprint,
        numeric=False,
    ),
}

_IN_WORKER = False  # set by fastinit.sweep.execute in pool and Dask worker processes


def canonical_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the parameters its run does not read set to their defaults.

    Grid points that differ only in such a parameter are one run (one key):
    those :func:`unused_params` names.  Its default, not a blank, keeps the keys
    of runs recorded at the default before the rule; a run recorded with another
    value (planar's ``rng='fastinit'`` beside ``xavier``) keeps its old key, and
    a resumed sweep runs it once more under the canonical one.

    Parameters
    ----------
    config : dict
        A full configuration (:func:`full_config`).

    Returns
    -------
    dict
        A new dict if anything changed, else ``config``.
    """
    params = EXPERIMENTS[config["experiment"]].params
    reset = {k: params[k].default for k in unused_params(config) if config[k] != params[k].default}
    return {**config, **reset} if reset else config


def unused_params(config: dict[str, Any]) -> tuple[str, ...]:
    """The parameters a run of ``config`` does not read (recorded at their defaults).

    ``momentum`` beside an optimizer other than momentum or nesterov; planar's
    ``rng`` but for a ``randn*s`` (``std=s``) init on one hidden layer, the only
    weights it draws the notebook's way.

    Parameters
    ----------
    config : dict
        A configuration, or a report group's parameters (``optimizer`` among them).

    Returns
    -------
    tuple of str
        Their names (empty if the run reads every parameter).
    """
    unused = []
    if "momentum" in config and config.get("optimizer") not in ("momentum", "nesterov"):
        unused.append("momentum")
    if "rng" in config and not _draws_notebook_weights(config.get("init"), config.get("depth", 1)):
        unused.append("rng")
    return tuple(unused)


def _draws_notebook_weights(init: Any, depth: Any) -> bool:
    """Whether planar's ``rng='notebook'`` changes a run of ``init`` and ``depth``
    (:func:`fastinit.experiments.planar.draws_notebook_weights`; an init that cannot be
    read counts as drawing: nothing is merged on a guess)."""
    from fastinit.experiments._common import parse_init
    from fastinit.experiments.planar import draws_notebook_weights

    try:
        return draws_notebook_weights(parse_init(init), depth)
    except (TypeError, ValueError):
        return True


def full_config(experiment: str, params: dict[str, Any]) -> dict[str, Any]:
    """``{"experiment": experiment, **defaults, **params}`` (no validation).

    Parameters
    ----------
    experiment : str
        A key of :data:`EXPERIMENTS`.
    params : dict
        Parameter values.

    Returns
    -------
    dict
    """
    if experiment not in EXPERIMENTS:
        raise ValueError(f"experiment: expected one of {sorted(EXPERIMENTS)}, got {experiment!r}")
    defaults = {k: p.default for k, p in EXPERIMENTS[experiment].params.items()}
    unknown = set(params) - set(defaults)
    if unknown:
        raise ValueError(f"{experiment}: unknown parameters {sorted(unknown)}")
    return {"experiment": experiment, **defaults, **params}


def run(config: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration in this process, OpenBLAS on one thread; exceptions propagate.

    Parameters
    ----------
    config : dict
        ``{"experiment": name, **parameters}`` with every parameter present.

    Returns
    -------
    dict
        ``{"status": "ok" | "diverged", "metrics": {...}, "curves": {...}}``.
    """
    experiment = EXPERIMENTS.get(config.get("experiment"))
    if experiment is None:
        raise ValueError(
            f"experiment: expected one of {sorted(EXPERIMENTS)}, got {config.get('experiment')!r}"
        )
    cfg = {k: v for k, v in config.items() if k != "experiment"}
    missing = set(experiment.params) - set(cfg)
    if missing:
        raise ValueError(f"config: missing parameters {sorted(missing)}")
    if not experiment.numeric:
        return experiment.runner(cfg)
    from fastinit.dense import one_blas_thread

    with one_blas_thread():  # the bits of every executor's workers (see the module notes)
        return experiment.runner(cfg)


def execute(config: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration and describe the outcome; never raises for a failing run.

    This is the task every executor sends to its workers.

    Parameters
    ----------
    config : dict
        ``{"experiment": name, **parameters}``.

    Returns
    -------
    dict
        ``status`` (ok, diverged or failed), ``metrics``, ``curves``, ``error``
        (the traceback of a failed run, else None), ``started`` and
        ``finished`` (Unix times), ``wall_time`` (seconds), ``worker``
        (host:pid) and ``version`` (of fastinit).
    """
    started = time.time()
    t0 = time.perf_counter()
    try:
        out = run(config)
        status, metrics, curves, error = out["status"], out["metrics"], out["curves"], None
        if status not in STATUSES:
            raise ValueError(f"runner returned status {status!r}")
    except Exception:
        status, metrics, curves, error = "failed", {}, {}, traceback.format_exc()
    return {
        "status": status,
        "metrics": metrics,
        "curves": curves,
        "error": error,
        "started": started,
        "finished": time.time(),
        "wall_time": time.perf_counter() - t0,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "version": fastinit.__version__,
    }
