"""Layer-sequential unit-variance (LSUV) initialization.

D. Mishkin and J. Matas, "All you need is a good init", ICLR 2016.  Data
dependent: start from orthonormal weights, then, layer by layer from the input
up, measure the variance of the layer's output on a minibatch and rescale::

    W_k <- W_k / sqrt(Var(z_k)),    z_k = a_{k-1} @ W_k + b_k  (pre-activation)

until ``|Var(z_k) - 1| < tol`` or ``max_iter`` rescalings (the paper's
``Tol_var = 0.1``, ``T_max = 10``).  Each measurement of layer ``k`` is a
forward pass of layer ``k`` only (no backward pass) on the activations of layer
``k - 1`` at its final weights, computed once, with the statistics
function of the training kernel, :func:`fastinit.train.forward_stats`: ``Var``
is the ``pre_std**2`` that :func:`fastinit.diagnose` reports, bit for bit (over
batch x units, ddof 0).  Biases are left as they are (zeros by default), so a
layer whose biases alone hold ``Var(z_k)`` above ``1 + tol`` whatever the scale
of ``W_k`` is refused (the iteration would shrink ``W_k`` to zero); the output
layer is normalized too, as in the paper.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastinit._validate import check_bool, check_int, check_positive, dtype_range, value_errors

__all__ = ["LSUVRecord", "lsuv"]

#: Why a layer with all-zero weights cannot be rescaled (``k``: the layer).
_ZERO_WEIGHTS = (
    "layer {k}'s weights are all zero (a zeros init, kept by orthonormal=False), and "
    "rescaling zeros leaves zeros: draw them at random or use orthonormal=True"
)


@dataclass
class LSUVRecord:
    """What :func:`lsuv` did, per layer.

    Attributes
    ----------
    initial_variance : numpy.ndarray
        ``Var(z_k)`` after the orthonormal pre-init (and the rescaling of the
        layers below ``k``), before layer ``k``'s first rescaling.
    variance : numpy.ndarray
        ``Var(z_k)`` at the end.
    iterations : numpy.ndarray of int
        Rescalings applied to layer ``k``.
    converged : numpy.ndarray of bool
        Whether ``|variance - 1| < tol``.
    """

    initial_variance: np.ndarray
    variance: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray


def lsuv(
    model: Any,
    X_batch: Any,
    tol: float = 0.1,
    max_iter: int = 10,
    *,
    orthonormal: bool = True,
    return_record: bool = False,
) -> Any:
    """LSUV-initialize ``model`` in place on a minibatch (Mishkin & Matas 2016).

    Parameters
    ----------
    model : MLP
        Modified in place.
    X_batch : array_like, shape (m, n_in)
        A minibatch of training inputs (the paper uses one batch).
    tol : float
        Stop when ``|Var(z_k) - 1| < tol``, > 0.
    max_iter : int
        At most this many rescalings per layer, >= 1.
    orthonormal : bool
        First replace every weight matrix by
        ``fastinit.init.orthogonal(shape, seed=model.seed, stream=2k)`` (the
        model's own seed and streams, so the result is reproducible); False
        keeps the current weights as the starting point.
    return_record : bool
        Also return an :class:`LSUVRecord`.

    Returns
    -------
    MLP or (MLP, LSUVRecord)
        The model (the same object).

    Warns
    -----
    UserWarning
        For a batch of fewer than :data:`fastinit.diagnostics.FEW_ROWS` rows, or
        of one row repeated: ``Var(z_k)`` pools the rows and the units, so such a
        batch measures only the spread between a layer's units.
    RuntimeWarning
        For each layer whose variance is not within ``1 +- tol`` after
        ``max_iter`` rescalings (``record.converged`` is False there), or once a
        scaling down did not lower it (biases that cancel part of ``a @ W``, with
        the layer below its scale of least variance: that step is undone, as every
        further one would shrink the weights to zero); biases are left as they are.

    Raises
    ------
    ValueError
        On bad arguments (``max_iter`` not an integer included), or when a
        layer's output variance on ``X_batch`` is zero or not finite, or comes
        from its biases alone (its weights or its inputs all zero) and is not
        within ``1 +- tol`` (nothing to rescale), or is above ``1 + tol`` at every
        scale of its weights (the spread of its biases over the units alone is, and
        rescaling would shrink the weights to zero); the model is then left as it was.
    TypeError
        If ``tol`` is not a real number, or ``orthonormal`` or
        ``return_record`` is not a bool.
    """
    from fastinit import train as _train

    if not hasattr(model, "_layers"):
        raise ValueError(f"model: expected an MLP, got {type(model).__name__}")
    tol = check_positive(tol, "tol")
    with value_errors():
        max_iter = check_int(max_iter, "max_iter", low=1)
    orthonormal = check_bool(orthonormal, "orthonormal")
    return_record = check_bool(return_record, "return_record")
    X = _train.prepare_x(model, X_batch, "X_batch")
    with model._all_or_nothing():  # an error (a layer with nothing to rescale) keeps the model
        record = _rescale(model, X, tol, max_iter, orthonormal)
    _check_batch(X)  # of a result only: a batch refused above says why
    return (model, record) if return_record else model


def _check_batch(X: np.ndarray) -> None:
    """Warn (at the caller of :func:`lsuv`) of a batch that cannot stand for the data.

    ``Var(z_k)`` pools the batch's rows and the layer's units, so one row, or one
    row repeated, still gives a variance to rescale by, but only the spread
    between the units for one input: the layers then "converge" to scales the
    data do not have (Var(z_k) of 1.3-2.7 on 512 real rows, from one row).
    """
    from fastinit.diagnostics import FEW_ROWS

    if X.shape[0] < FEW_ROWS:
        why = f"X_batch has {X.shape[0]} rows, fewer than {FEW_ROWS}"
    elif (X == X[0]).all():
        why = "every row of X_batch is the same"
    else:
        return
    warnings.warn(
        f"lsuv: {why}: each layer's variance pools its units over these rows and says little "
        "about the data; pass a minibatch of training inputs",
        UserWarning,
        stacklevel=3,
    )


def _rescale(model: Any, X: np.ndarray, tol: float, max_iter: int, orthonormal: bool) -> Any:
    """LSUV's loop over the layers (changes ``model``); returns the :class:`LSUVRecord`."""
    from fastinit import init as _init

    n_layers = len(model.sizes) - 1
    if orthonormal:
        for k in range(n_layers):
            shape = model.weights[k].shape
            model.weights[k] = _init.orthogonal(
                shape, seed=model.seed, stream=2 * k, dtype=model.dtype.name
            )
    std, inputs = _std_meter(model, X)
    initial = np.empty(n_layers)
    final = np.empty(n_layers)
    iters = np.zeros(n_layers, dtype=np.int64)
    for k in range(n_layers):
        w, b = model._split(model._params)[k]
        s = std(k)
        var = initial[k] = s * s  # inf past s = 1.3e154 (float64); rescaled by 1 / s
        if abs(var - 1.0) >= tol:
            _check_reachable(k, var, tol, inputs(k), w, b)
        var, iters[k], raised = _iterate(k, w, s, tol, max_iter, b.any(), std)
        final[k] = var
        model.weights[k] = w.copy()  # through the setter (a device model syncs its copy)
        if not abs(var - 1.0) < tol:
            bias = _least_variance(inputs(k), w, b)[1] if raised else None
            _warn(k, var, tol, int(iters[k]), bias)
    return LSUVRecord(initial, final, iters, np.abs(final - 1.0) < tol)


def _iterate(
    k: int,
    w: np.ndarray,
    s: float,
    tol: float,
    max_iter: int,
    biased: bool,
    std: Callable[[int], float],
) -> tuple[float, int, bool]:
    """Rescale layer ``k``'s weights ``w`` (in place) by ``1 / std(z_k)`` until
    ``|Var(z_k) - 1| < tol`` or ``max_iter`` rescalings; ``s``: its ``std(z_k)`` now.
    (The factor is ``1 / s``, not ``1 / sqrt(Var)``: a float64 variance is inf past a
    standard deviation of 1.3e154, and its factor 0 zeroed the weights.)

    With nonzero biases (``biased``), a scaling down (``var > 1``) that raised the
    variance is undone and ends the loop: the layer is then below its scale of least
    variance (biases that cancel part of ``a @ W``), where every further step would
    raise it again and shrink the weights to zero.  (Without biases ``Var(z_k)`` is
    ``s^2 Var(a @ W)``: a rise is rounding.)  Returns the final variance, the
    rescalings kept and whether that happened.
    """
    n, var = 0, s * s
    while abs(var - 1.0) >= tol and n < max_iter:
        before = w.copy() if biased else None  # only a biased layer's step is undone
        _check_room(k, w, s)
        _scale(w, 1.0 / s)
        last, s = var, std(k)
        var = s * s
        if before is not None and var > last > 1.0:
            w[:] = before
            s = std(k)  # measured again: layer k + 1's inputs
            return s * s, n, True  # (s ** 2 would raise OverflowError where s * s is inf)
        n += 1
    return var, n, False


def _warn(k: int, var: float, tol: float, n: int, bias: float | None) -> None:
    """Warn that layer ``k``'s ``Var(z_k)`` (``var``) ended outside ``1 +- tol`` after ``n``
    rescalings; ``bias``: its biases' variance when a smaller scale raised it, else None."""
    why = (
        "raise max_iter or tol"
        if bias is None
        else f"a smaller scale of its weights raised it (its biases, variance {bias:.4g} "
        "over the units, hold it up): use zero or smaller biases (bias_init)"
    )
    warnings.warn(
        f"lsuv: layer {k}'s pre-activation variance is {var:.4g} ({abs(var - 1.0):.3g} from 1) "
        f"after {n} rescalings, not within 1 +- {tol:g}; {why}; training starts from these "
        "weights",
        RuntimeWarning,
        stacklevel=4,
    )


def _check_room(k: int, w: np.ndarray, s: float) -> None:
    """Refuse the rescaling ``w / s`` of layer ``k`` where it leaves ``w``'s dtype: its
    inputs are too small for weights of that dtype to give it unit variance (the weights
    became inf, and the error blamed weights or inputs "far too large")."""
    top = dtype_range(w.dtype)[1]
    peak = float(np.max(np.abs(w))) / s
    if not peak <= top:
        raise ValueError(
            f"lsuv: layer {k}'s pre-activation std on X_batch is {s:.4g}: unit variance needs "
            f"weights up to {peak:.4g}, beyond the {w.dtype} range ({top:.4g}); X_batch (or "
            "the layers below it) is far too small: scale the inputs up, or use float64"
        )


def _scale(w: np.ndarray, factor: float) -> None:
    """``w *= factor`` in ``w``'s dtype; a factor beyond its range (a float32 layer whose
    ``Var(z)`` is below 1e-77, from subnormal weights or inputs) in two steps of
    ``sqrt(factor)``, not as an infinite factor that made the weights inf."""
    t = w.dtype.type
    if factor <= dtype_range(w.dtype)[1]:
        w *= t(factor)
    else:
        root = t(math.sqrt(factor))
        w *= root
        w *= root


def _std_meter(
    model: Any, X: np.ndarray
) -> tuple[Callable[[int], float], Callable[[int], np.ndarray]]:
    """``std(k)``: the standard deviation of ``z_k`` (``Var(z_k)`` is its square) on ``X``
    at the model's current parameters, and
    ``inputs(k)``: layer ``k``'s input ``a_{k-1}`` (``X`` for ``k = 0``), shape (m, n_k).

    A forward pass of layer ``k`` alone, with the statistics of
    :func:`fastinit.train.forward_stats` (the function the training kernel
    records them with, so the variance is the one ``fit(record_stats=True)``
    and :func:`fastinit.diagnose` report, bit for bit): no backward pass, and
    nothing above layer ``k``.  Its input ``a_{k-1}`` is the output that the last
    ``std(k - 1)`` left in the work array, in layer ``k - 1``'s blocks of
    :func:`fastinit.dense.forward_net`'s layout (``std(k)`` runs layer
    ``k`` on ``work[off_k:]``, writing no lower layer's blocks): layers are
    measured from the input up, and layer ``k - 1``'s weights do not change
    after its last measurement, so layers ``0 .. k - 1`` are computed once, not
    once per measurement of every layer above them.  Raises ValueError when the
    variance is zero or not finite (nothing to rescale).
    """
    from fastinit import dense as _dense
    from fastinit import train as _train

    layers = _dense.with_kernels(model._layers, model.dtype)
    ops = _dense.ops_table(model.dtype)
    m = X.shape[0]
    fan_out = layers[:, _dense.FAN_OUT]
    # forward_net's layout: layer k's activation and derivative blocks from offset[k]
    offset = np.concatenate(([0], np.cumsum(2 * m * fan_out))).tolist()
    work = np.empty(offset[-1], model.dtype)
    zero = np.zeros(int(fan_out.max()), model.dtype)  # the kernel's zero bias
    stats = np.full((len(layers), len(_train.STAT_FIELDS)), np.nan)

    def inputs(k: int) -> np.ndarray:
        # a_{k-1}: X, or layer k - 1's activation block at its final weights
        a = X if k == 0 else work[offset[k - 1] : offset[k - 1] + m * fan_out[k - 1]]
        return a.reshape(m, -1)

    def std_of(k: int) -> float:
        a = inputs(k)
        stats[k] = np.nan
        _train.forward_stats(
            ops, model._params, layers, model._act_params, k, 1, a, work[offset[k] :], zero, stats
        )
        std = float(stats[k, _train.F_PRE_STD])
        if not (math.isfinite(std) and std > 0):
            raise ValueError(
                f"lsuv: layer {k}'s pre-activation variance on X_batch is {std * std!r}, "
                f"expected a finite positive one to rescale: {_why(model, k, std, m)}"
            )
        return std

    return std_of, inputs


def _why(model: Any, k: int, std: float, rows: int) -> str:
    """Why layer ``k``'s pre-activation ``std`` (0 or not finite) leaves nothing to rescale."""
    if std != 0:
        return "the pre-activations overflowed (weights or X_batch far too large)"
    if not model._split(model._params)[k][0].any():
        return _ZERO_WEIGHTS.format(k=k)
    return (
        "the pre-activations are constant over X_batch (dead units below it, constant "
        f"inputs, or too few rows: X_batch has {rows})"
    )


def _least_variance(a: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``(floor, bias)`` for ``Var(z(s))``, ``z(s) = a @ (s W) + b`` over batch x units
    (ddof 0), ``s > 0``: ``floor`` its infimum, ``bias`` its limit ``s -> 0`` (the
    variance of ``b`` over the units alone).  In float64: with ``u = a @ W``,
    ``Var(z(s)) = s^2 Var(u) + 2 s Cov(u, b) + Var(b)``, least at ``s = -Cov / Var(u)``
    when the covariance is negative, else as ``s -> 0``."""
    u = np.asarray(a, np.float64) @ np.asarray(w, np.float64)
    du = u - u.mean()
    peak = float(np.abs(du).max(initial=0.0))
    if peak > 0:  # Var(u) / peak**2 and Cov / peak: the floor's cov**2 / var_u is the
        du /= peak  # same, and du * du no longer overflows past 1.3e154
    db = np.asarray(b, np.float64) - float(np.mean(b, dtype=np.float64))
    var_u = float(np.mean(du * du))
    cov = float(np.mean(du.mean(axis=0) * db))
    bias = float(np.mean(db * db))
    floor = bias - cov * cov / var_u if cov < 0 and var_u > 0 else bias
    return max(floor, 0.0), bias


def _check_reachable(
    k: int, var: float, tol: float, a: np.ndarray, w: np.ndarray, b: np.ndarray
) -> None:
    """Raise ValueError when no rescaling of layer ``k``'s weights ``w`` brings its
    ``Var(z_k)`` (``var``, not within ``1 +- tol``) within it: ``a @ w`` is zero (the
    variance is its biases' whatever the scale), or the least variance that the
    rescaling reaches (:func:`_least_variance`, its biases' spread over the units
    or below) is ``>= 1 + tol`` (rescaling would shrink the weights towards zero)."""
    if not (w.any() and a.any()):
        raise ValueError(_biases_alone(k, var, tol, w))
    floor, bias = _least_variance(a, w, b)
    if floor >= 1.0 + tol:
        raise ValueError(
            f"lsuv: layer {k}'s pre-activation variance on X_batch is {var:.4g}, and no "
            f"rescaling of its weights brings it within 1 +- {tol:g}: the least it reaches "
            f"is {floor:.4g}, as its biases (variance {bias:.4g} over the units) hold it "
            "up, and the weights would shrink towards zero; use zero or smaller biases "
            "(bias_init; a constant one adds no variance) or a larger tol"
        )


def _biases_alone(k: int, var: float, tol: float, w: np.ndarray) -> str:
    """The error for layer ``k`` whose ``Var(z_k)`` is its biases' (``a_{k-1} @ W_k`` is zero)."""
    if not w.any():
        why = _ZERO_WEIGHTS.format(k=k)
    elif k == 0:
        why = "its inputs are all zero (X_batch is all zeros)"
    else:
        why = f"its inputs are all zero (every unit of layer {k - 1} is dead on X_batch)"
    return (
        f"lsuv: layer {k}'s pre-activation variance on X_batch is {var:.4g}, from its biases "
        f"alone, so no rescaling of its weights brings it within 1 +- {tol:g}: {why}"
    )
