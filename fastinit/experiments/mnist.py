"""The MNIST comparison of inits: 784-100-100-100-100-10, SGD, the same minibatches for all.

"Deep Learning from Scratch", ch. 6 (weight_init_compare.py): networks that differ
only in their initial weights are trained with SGD (lr 0.01, batch 128 drawn with
replacement, 2000 iterations), every network on the same minibatch each
iteration.  The book uses ReLU in all of them and maps 'xavier' to std sqrt(1/n),
'he' to std sqrt(2/n) (n = fan-in).  What it shows: std=0.01 barely learns in
2000 iterations; Xavier and He both learn; He fastest.

All networks of a repetition are trained together by
:func:`fastinit.train.fit_many`: each minibatch is drawn (from fastinit's
counter-based generator, keyed by the seed) and gathered once, and every network
takes its step on it.
The recorded loss of an iteration is the loss of its minibatch before the
update (the book records it just after).

``summary.json`` follows the convention of ``fastinit report``: per init, the
``final_loss`` and ``test_accuracy`` means and their ``*_std`` (sample standard
deviation over the seeds, ddof 1; null for fewer than two) are over the seeds
whose value is finite (``final_loss_count`` of them); a run that diverged has no
final loss nor test accuracy (null).  Non-finite numbers are written as null.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastinit import activations as _act
from fastinit import datasets, optim
from fastinit._cuda import check_device
from fastinit._progress import count
from fastinit._validate import check_bool, check_dtype, check_int, value_errors
from fastinit.experiments._common import (
    SMOOTH_WINDOW,
    Output,
    check_hidden,
    check_lr,
    check_memory,
    check_seed_range,
    fixed,
    parse_inits,
    prepared_output,
    provenance,
    pyplot,
    seeds_note,
    smooth_curve,
    spread_cell,
    subplots,
    text_table,
)
from fastinit.train import batch_rows, fit_many

DEFAULT_INITS = ("std=0.01", "xavier", "he")
MARKERS = ("o", "s", "D", "^", "v", "x", "*", "P")
LOSS_EVERY = 100  # the book prints the loss every 100 iterations


@dataclass
class MnistResult:
    """Loss curves (seeds x iterations) and test accuracies per init.

    Attributes
    ----------
    config : dict
        The run's settings (written to summary.json).
    curves : dict of str -> numpy.ndarray
        Per init, ``(seeds, iterations)`` minibatch losses, NaN after a divergence.
    test_accuracy : dict of str -> numpy.ndarray
        Per init, the test accuracy of each seed's network (NaN if it diverged).
    status : dict of str -> list of str
        Per init, each seed's ``History.status``.
    iterations_per_second : float
        Updates applied per second of the fits (their ``wall_time``, compilation
        on first use included), summed over every network and seed: the networks
        of a seed train side by side, each iteration one update of each.
    """

    config: dict[str, Any]
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    test_accuracy: dict[str, np.ndarray] = field(default_factory=dict)
    status: dict[str, list[str]] = field(default_factory=dict)
    iterations_per_second: float = 0.0

    def final_loss(self, init: str) -> np.ndarray:
        """Per seed, the mean training loss over the last 100 iterations.

        NaN for a seed whose run diverged: its curve ends at the non-finite
        loss, padded with NaN to the full length, so it has no final loss.

        Parameters
        ----------
        init : str
            An init's name, a key of ``curves``.

        Returns
        -------
        numpy.ndarray of float64, shape (seeds,)
            The mean of each seed's last ``min(100, iterations)`` losses.
        """
        c = self.curves[init]
        tail = c[:, -min(100, c.shape[1]) :]
        finite = np.isfinite(tail).all(axis=1)
        out = np.full(len(c), np.nan)
        out[finite] = tail[finite].mean(axis=1)
        return out

    def summary(self) -> dict[str, Any]:
        """The key figures for summary.json.

        Per init: ``final_loss`` and ``test_accuracy``, the means over the seeds
        whose value is finite (``final_loss_count`` seeds for the loss), and
        ``final_loss_std`` and ``test_accuracy_std``, the sample standard
        deviations (ddof 1, as ``fastinit report``), None for fewer than two
        such seeds; ``per_seed`` lists every seed's values (NaN where a run
        diverged: it has neither a final loss nor a test accuracy) and status.

        Returns
        -------
        dict
            ``results`` (``{init: figures}`` as above), ``iterations_per_second``
            and the provenance (``config``, versions, ``created``).
        """
        from fastinit.sweep.report import mean_std  # the report's convention

        results = {}
        for name in self.curves:
            fl, acc = self.final_loss(name), self.test_accuracy[name]
            fl_finite = [float(v) for v in fl if np.isfinite(v)]
            fl_mean, fl_std = mean_std(fl_finite)
            acc_mean, acc_std = mean_std([float(v) for v in acc if np.isfinite(v)])
            results[name] = {
                "final_loss": fl_mean,
                "test_accuracy": acc_mean,
                "final_loss_std": fl_std,
                "test_accuracy_std": acc_std,
                "final_loss_count": len(fl_finite),
                "per_seed": {
                    "final_loss": fl.tolist(),
                    "test_accuracy": acc.tolist(),
                    "status": self.status[name],
                },
            }
        return {
            "results": results,
            "iterations_per_second": self.iterations_per_second,
            **provenance(self.config),
        }

    def table(self) -> str:
        """Final loss and test accuracy per init, as text ("n/a": every seed diverged).

        Over several seeds, each cell is the mean ± the sample standard
        deviation of ``summary.json`` (the mean alone where one seed is left;
        :func:`~fastinit.experiments._common.spread_cell`).

        Returns
        -------
        str
            The aligned table, then a line per init with diverged seeds, one
            saying which seeds the cells are over (several seeds) and one
            with the training speed; then, as the book prints while training,
            the minibatch loss of iterations 0, 100, 200, ... per init (the
            rows of ``loss_curves.csv``; over several seeds the mean of the
            finite ones, "n/a" where none is).
        """
        rows = [
            (name, *(spread_cell(r[k], r[f"{k}_std"]) for k in ("final_loss", "test_accuracy")))
            for name, r in self.summary()["results"].items()
        ]
        lines = [text_table(("init", "final loss", "test acc"), rows, "<>>")]
        note = seeds_note(max(map(len, self.curves.values()), default=0), self.config.get("seed"))
        lines += [note] if note else []
        for name, status in self.status.items():
            diverged = sum(st == "diverged" for st in status)
            if diverged:
                lines.append(f"{name}: {diverged} of {count(len(status), 'seed')} diverged "
                             "(left out)")  # fmt: skip
        lines.append(
            f"{self.iterations_per_second:.0f} network-iterations/s "
            f"({count(len(self.status), 'network')} side by side; compilation included)"
        )
        return "\n".join([*lines, "", self._loss_table()])

    def _loss_table(self) -> str:
        """The minibatch loss every ``LOSS_EVERY`` iterations per init, titled."""
        names = list(self.curves)
        length = max((c.shape[1] for c in self.curves.values()), default=0)
        rows = []
        for i in range(0, length, LOSS_EVERY):
            finite = [c[:, i][np.isfinite(c[:, i])] for c in self.curves.values()]
            rows.append((str(i), *(fixed(float(v.mean())) if v.size else "n/a" for v in finite)))
        seeds = max((len(c) for c in self.curves.values()), default=0)
        over = "; mean over the seeds" if seeds > 1 else ""
        title = f"minibatch loss every {LOSS_EVERY} iterations (before the update{over})"
        return title + "\n" + text_table(("iteration", *names), rows, ">" * (len(names) + 1))


def run_mnist(
    inits: tuple[str, ...] = DEFAULT_INITS,
    *,
    activation: str = "relu",
    hidden: tuple[int, ...] = (100, 100, 100, 100),
    iterations: int = 2000,
    batch_size: int = 128,
    lr: float = 0.01,
    seeds: int = 1,
    seed: int = 0,
    train_size: int | None = None,
    dtype: str = "float32",
    out: Any = None,
    progress: bool = True,
    device: str = "cpu",
) -> MnistResult:
    """Train one network per init on MNIST with the same minibatches; compare.

    Parameters
    ----------
    inits : tuple of str
        Init specs (``"std=0.01"``, ``"xavier"``, ``"he"``, ``"lsuv"`` (LSUV on
        the first training batch), or any :mod:`fastinit.init` name).
    activation : str
        Hidden activation, ReLU by default as in the book.
    hidden : tuple of int
        Hidden layer widths.
    iterations, batch_size : int
        SGD iterations and minibatch size (drawn with replacement).
    lr : float
        SGD learning rate.
    seeds : int
        Repetitions; repetition ``r`` uses seed ``seed + r`` for weights and batches.
    seed : int
        First seed.
    train_size : int, optional
        Use only the first ``train_size`` training images (for quick runs).
    dtype : {'float32', 'float64'}
        Arithmetic type.
    out : path-like, optional
        Directory for ``mnist_loss.png``, ``summary.json`` and ``loss_curves.csv``.
    progress : bool
        Show a progress bar on runs longer than a second.
    device : {'cpu', 'cuda'}
        Where the networks train (``'cuda'``: :mod:`fastinit.train_cuda`; same
        initial weights and minibatches, results equal to float32 tolerance).

    Returns
    -------
    MnistResult

    Raises
    ------
    ValueError
        For a bad argument, naming it, before anything runs (see :mod:`fastinit.experiments`).
    MemoryError
        Naming ``hidden``, ``batch_size``, ``iterations`` or ``seeds``, before
        anything runs, when the run's arrays (every seed's loss curves
        included) would not fit in the memory available
        (:func:`~fastinit.experiments._common.check_memory`).
    KeyboardInterrupt
        On Ctrl-C, with nothing written.
    """
    with value_errors():  # a wrong type: TypeError, and ValueError as fit raises
        device = check_device(device, "device")
        dtype = check_dtype(dtype).name
        specs = parse_inits(inits, dtype=dtype)
        _act.get(activation, "activation")  # checked before the data is loaded
        hidden = check_hidden(hidden)
        progress = check_bool(progress, "progress")
        iterations = check_int(iterations, "iterations", low=1)
        batch_size = check_int(batch_size, "batch_size", low=1)
        seed, seeds = check_seed_range(seed, seeds)
        lr = check_lr(lr, dtype)
        if train_size is not None:
            train_size = check_int(train_size, "train_size", low=1)
    footprint = functools.partial(_footprint, models=len(specs), dtype=dtype, device=device)
    sizes = {"hidden": hidden, "batch_size": batch_size, "iterations": iterations, "seeds": seeds}
    check_memory(footprint, sizes)
    (x_train, t_train), (x_test, t_test) = datasets.load_mnist(dtype=dtype)
    if train_size is not None:
        train_size = check_int(train_size, "train_size", low=1, high=len(x_train))
        x_train, t_train = x_train[:train_size], t_train[:train_size]
    sizes = [x_train.shape[1], *hidden, 10]
    config = {
        "experiment": "mnist",
        "inits": [s.name for s in specs],  # as parsed: results are keyed by these names
        "activation": activation,
        "sizes": sizes,
        "iterations": iterations,
        "batch_size": batch_size,
        "optimizer": {"name": "SGD", "lr": lr},
        "sampling": "replacement",
        "seeds": seeds,
        "seed": seed,
        "train_size": len(x_train),
        "dtype": dtype,
        "device": device,
    }
    result = MnistResult(config)
    with prepared_output(out, "mnist"):  # a failed run removes what it made
        _train(result, specs, (x_train, t_train), (x_test, t_test), progress)
        if out is not None:
            with Output(Path(out), "mnist") as output:  # all files or none
                _write(result, output)
    return result


def _footprint(sizes: dict[str, Any], *, models: int, dtype: str, device: str) -> dict[str, int]:
    """Bytes a run allocates, from below (:func:`~fastinit.experiments._common.check_memory`):
    the sweep's estimate of a fit (its parameters and loss history per network, its work
    arrays once; on the CPU), and every seed's loss curves, kept."""
    from fastinit.sweep.runners import MNIST_CLASSES, MNIST_INPUTS, _mlp_footprint

    iterations = sizes["iterations"]
    parts = {"loss curves of every seed": 8 * sizes["seeds"] * models * iterations}
    if device == "cpu":  # on a GPU the networks and their work arrays are on the device
        cfg = {"dtype": dtype, "optimizer": "sgd", "iterations": iterations}
        layers = [MNIST_INPUTS, *sizes["hidden"], MNIST_CLASSES]
        one = _mlp_footprint(cfg, layers, sizes["batch_size"], True)
        parts |= {k: n if k == "activations" else models * n for k, n in one.items()}
    return parts


def _train(result: MnistResult, specs: list, train: tuple, test: tuple, progress: bool) -> None:
    """Train every init's network, seed after seed, as ``result.config`` says; fill ``result``."""
    (x_train, t_train), (x_test, t_test) = train, test
    cfg = result.config
    sizes, activation, dtype, device = cfg["sizes"], cfg["activation"], cfg["dtype"], cfg["device"]
    seed, seeds, iterations = cfg["seed"], cfg["seeds"], cfg["iterations"]
    batch_size, lr = cfg["batch_size"], cfg["optimizer"]["lr"]
    curves = {s.name: [] for s in specs}
    accs = {s.name: [] for s in specs}
    status = {s.name: [] for s in specs}
    total_time = 0.0
    iterations_run = 0
    data_dependent = any(s.lsuv for s in specs)
    for r in range(seeds):
        x_first = None  # iteration 0's batch, copied only for LSUV
        if data_dependent:
            x_first = x_train[batch_rows(len(x_train), batch_size, 0, seed=seed + r)]
        models = [
            s.build_model(sizes, activation=activation, seed=seed + r, dtype=dtype,
                          x_batch=x_first).to(device)
            for s in specs
        ]  # fmt: skip
        histories = fit_many(
            models, x_train, t_train, optimizer=optim.SGD(lr), batch_size=batch_size,
            iterations=iterations, sampling="replacement", seed=seed + r, progress=progress,
        )  # fmt: skip
        for history in histories:
            history.raise_if_interrupted()  # Ctrl-C: no results that look complete
        total_time += histories[0].wall_time
        iterations_run += sum(h.iterations for h in histories)
        for spec, model, history in zip(specs, models, histories, strict=True):
            curve = np.full(iterations, np.nan)
            curve[: len(history.loss)] = history.loss
            curves[spec.name].append(curve)
            # as fastinit sweep: a diverged network (non-finite weights) has no test accuracy
            ok = history.status == "ok"
            accs[spec.name].append(model.evaluate(x_test, t_test)["accuracy"] if ok else np.nan)
            status[spec.name].append(history.status)
    for name in curves:
        result.curves[name] = np.array(curves[name])
        result.test_accuracy[name] = np.array(accs[name], dtype=np.float64)
        result.status[name] = status[name]
    # the updates applied (a diverged network stops early), per second
    result.iterations_per_second = iterations_run / max(total_time, 1e-12)


LOSS_AXIS_TOP = 2.5  #: the top of the loss figure's axis, as the book's (ln 10 = 2.30 at chance)


def _seed_mean_std(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed loss curves' mean and sample std (ddof 1) over the seeds, per iteration.

    As the table and ``fastinit report``: over the seeds whose smoothed loss is finite
    there (a diverged seed's curve ends at its non-finite loss, padded with NaN: it is
    left out from then on, not the whole init's curve); NaN where none (the std: fewer
    than two) is.
    """
    smooth = np.array([smooth_curve(np.where(np.isfinite(c), c, np.nan)) for c in curves])
    finite = np.isfinite(smooth)
    n = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = np.where(finite, smooth, 0.0).sum(axis=0) / n
        squares = np.where(finite, (smooth - mean) ** 2, 0.0).sum(axis=0)
        sd = np.sqrt(squares / (n - 1))
    return np.where(n > 0, mean, np.nan), np.where(n > 1, sd, np.nan)


def _write(result: MnistResult, output: Output) -> None:
    output.json("summary.json", result.summary())
    names = list(result.curves)
    seeds = result.config["seeds"]
    header = ["iteration"] + [
        f"{n}[seed={result.config['seed'] + r}]" for n in names for r in range(seeds)
    ]
    columns = [result.curves[n][r] for n in names for r in range(seeds)]
    rows = [[i, *(float(c[i]) for c in columns)] for i in range(result.config["iterations"])]
    output.csv("loss_curves.csv", header, rows)
    plt = pyplot()
    fig, ax = subplots(plt, figsize=(6.4, 4.8))
    x = np.arange(result.config["iterations"])
    for k, name in enumerate(names):
        mean, sd = _seed_mean_std(result.curves[name])
        diverged = sum(st == "diverged" for st in result.status[name])
        notes = [f"{diverged} of {count(seeds, 'seed')} diverged"] if diverged else []
        if np.nanmax(mean, initial=-np.inf) > LOSS_AXIS_TOP:  # the book's view cuts it: say so
            notes.append(f"above the axis to {np.nanmax(mean):.3g}")
        label = f"{name} ({'; '.join(notes)})" if notes else name
        ax.plot(x, mean, marker=MARKERS[k % len(MARKERS)], markevery=100, label=label)
        if seeds > 1:
            ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
    ax.set_xlabel("iterations")
    smoothed = result.config["iterations"] >= SMOOTH_WINDOW  # shorter curves are drawn raw
    ax.set_ylabel("minibatch loss" + (" (smoothed: Kaiser window of 11)" if smoothed else ""))
    ax.set_ylim(0, LOSS_AXIS_TOP)
    ax.legend()
    title = f"MNIST {'-'.join(map(str, result.config['sizes']))}, {result.config['activation']}"
    ax.set_title(title + (f", mean ± std over {seeds} seeds" if seeds > 1 else ""))
    output.figure("mnist_loss.png", fig)
    plt.close(fig)
