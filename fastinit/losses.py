"""Losses computed from logits, numerically stable, with their gradients.

==========================  =========================================================
name                        loss over a batch of ``m`` rows, ``C`` output units
==========================  =========================================================
``softmax_cross_entropy``   ``mean_i [logsumexp(z_i) - z_i[y_i]]``; labels are
                            integers in ``[0, C)`` or one-hot rows.  PyTorch's
                            ``CrossEntropyLoss()`` (reduction ``mean``).
``sigmoid_cross_entropy``   ``mean_i [max(z_i, 0) - z_i y_i + log1p(exp(-|z_i|))]``
                            for one output unit and targets in [0, 1] (binary
                            labels).  PyTorch's ``BCEWithLogitsLoss()``.
``mse``                     ``sum_ij (z_ij - y_ij)**2 / (m C)``: the mean over all
                            elements, as PyTorch's ``MSELoss()`` (no factor 1/2).
==========================  =========================================================

The gradients with respect to the logits are ``(softmax(z_i) - onehot(y_i)) / m``,
``(sigmoid(z_i) - y_i) / m`` and ``2 (z_ij - y_ij) / (m C)``.  The logsumexp
subtracts the row maximum, so no ``exp`` overflows; per-row terms are computed in
the model dtype and summed in float64.  As in PyTorch, a softmax row whose label
logit leads the others by about 17 or more (float32; 37 in float64) has its
``logsumexp`` round to that logit: its loss reads 0 (the true one is below 6e-8,
resp. 1e-16) and so does the label's gradient; the other classes' stay exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import carray, njit, types

from fastinit import _fastmath as fm
from fastinit._native import call_f64, compile_kernel, dispatch_by_code, kernel_factory, pointer_to
from fastinit._validate import all_finite, as_array, cast_finite, check_int
from fastinit.activations import fast_exp, log1p_unit, sigmoid_parts

__all__ = ["NAMES", "Loss", "get", "prepare_targets", "value_and_grad"]

SOFTMAX_CE, SIGMOID_CE, MSE = range(3)
_CODES = {"softmax_cross_entropy": SOFTMAX_CE, "sigmoid_cross_entropy": SIGMOID_CE, "mse": MSE}
_ALIASES = {"cross_entropy": "softmax_cross_entropy", "bce": "sigmoid_cross_entropy"}
NAMES: tuple[str, ...] = tuple(_CODES) + tuple(_ALIASES)


# ----------------------------------------------------------------------------- compiled
@njit(inline="always", cache=True, error_model="numpy")
def _softmax_ce_row(z, label, scale, write_grad):
    mx = z[0]
    for j in range(1, z.shape[0]):
        mx = fm.max2(mx, z[j])
    zy = z[label] - mx
    s = type(mx)(0.0)
    for j in range(z.shape[0]):  # one exp loop (LLVM unswitches write_grad)
        e = fast_exp(z[j] - mx)
        s += e
        if write_grad:
            z[j] = e
    if write_grad:
        g = type(mx)(scale) / s
        for j in range(z.shape[0]):
            z[j] *= g
        z[label] -= type(mx)(scale)
    return math.log(s) - zy


@njit(inline="always", cache=True, error_model="numpy")
def _sigmoid_ce_terms(x, target):
    s, _, e = sigmoid_parts(x)
    return fm.max2(x, type(x)(0.0)) - x * target + log1p_unit(e), s - target


@njit(inline="always", cache=True, error_model="numpy")
def _sigmoid_ce(z, target, row_loss, write_grad):
    # flat, branch-free loops (the sum happens later): they vectorize
    scale = type(z[0])(1.0 / z.shape[0])
    if write_grad:
        for i in range(z.shape[0]):
            loss, g = _sigmoid_ce_terms(z[i], target[i])
            z[i] = g * scale
            row_loss[i] = loss
    else:
        for i in range(z.shape[0]):
            row_loss[i] = _sigmoid_ce_terms(z[i], target[i])[0]


@njit(inline="always", cache=True, error_model="numpy")
def _mse_row(z, target, scale, write_grad):
    s = 0.0
    for j in range(z.shape[0]):
        r = z[j] - target[j]
        s += r * r
        if write_grad:
            z[j] = type(r)(2.0 * scale) * r
    return s


def _softmax_ce_rows(z, y_int, y_float, write_grad, row_loss):
    scale = 1.0 / z.shape[0]
    for i in range(z.shape[0]):
        row_loss[i] = _softmax_ce_row(z[i], y_int[i], scale, write_grad)
    return scale


def _sigmoid_ce_rows(z, y_int, y_float, write_grad, row_loss):
    m = z.shape[0]
    _sigmoid_ce(z.reshape(m), y_float.reshape(m), row_loss, write_grad)
    return 1.0 / m


def _mse_rows(z, y_int, y_float, write_grad, row_loss):
    scale = 1.0 / (z.shape[0] * z.shape[1])
    for i in range(z.shape[0]):
        row_loss[i] = _mse_row(z[i], y_float[i], scale, write_grad)
    return scale


# by loss code; plain functions: dispatch_by_code compiles the one a kernel uses
_ROWS = (_softmax_ce_rows, _sigmoid_ce_rows, _mse_rows)
# f(code, z, y_int, y_float, write_grad, row_loss): per-row losses into row_loss; their scale
_rows_by_code = dispatch_by_code(_ROWS, "loss_rows_by_code")


@kernel_factory
def loss_kernel(code: int, dtype: Any) -> int:
    """Address of the compiled mean loss (and gradient) of one loss, for one dtype.

    Compiled on first use (or loaded from numba's cache), so a run compiles
    only the loss it uses; called through :func:`call_loss`.

    Parameters
    ----------
    code : int
        Loss code (``SOFTMAX_CE``, ``SIGMOID_CE``, ``MSE``).
    dtype : numpy.dtype or str
        float32 or float64: the type of the logits, float targets and scratch.

    Returns
    -------
    int
        Address of a C function ``double(z, y_int, y_float, row_loss, m, C,
        write_grad)`` computing what :func:`call_loss` documents.
    """
    item = pointer_to(dtype)
    i64 = types.int64
    sig = types.float64(item, types.CPointer(i64), item, item, i64, i64, i64)

    def kernel(z_ptr, y_int_ptr, y_float_ptr, row_loss_ptr, m, c, write_grad):
        z = carray(z_ptr, (m, c))
        # the targets this loss reads; the other array may be empty (a null pointer)
        y_int = carray(y_int_ptr, (m if code == SOFTMAX_CE else 0,))
        y_float = carray(y_float_ptr, (0 if code == SOFTMAX_CE else m, c))
        row_loss = carray(row_loss_ptr, (m,))
        scale = _rows_by_code(code, z, y_int, y_float, write_grad != 0, row_loss)
        return fm.sum4(row_loss, 0.0, False) * scale  # float64, a fixed order

    return compile_kernel(kernel, sig)


@njit(inline="always", cache=True, error_model="numpy")
def call_loss(
    kernel: int,
    z: np.ndarray,
    y_int: np.ndarray,
    y_float: np.ndarray,
    write_grad: bool,
    row_loss: np.ndarray,
) -> float:
    """Mean loss of logits ``z`` (m, C) for the targets of the same rows.

    Parameters
    ----------
    kernel : int
        :func:`loss_kernel` of the loss and the dtype of ``z``.
    z : (m, C) C-contiguous array
        Logits; overwritten by ``dL/dz`` when ``write_grad``.
    y_int : (m,) int64 array
        Class labels (softmax cross-entropy), else unused (may be empty).
    y_float : (m, C) array
        Targets (sigmoid cross-entropy, mse), else unused (may be empty).
    write_grad : bool
    row_loss : (>= m,) array of the dtype of ``z``
        Scratch for the per-row losses (float64 stores halved the speed of the
        vectorized sigmoid loop, measured).

    Returns
    -------
    float
        The loss; per-row terms in the dtype of ``z``, their sum in float64.
    """
    if kernel == 0:
        raise ValueError("no loss kernel: pass losses.loss_kernel(code, dtype)")
    flag = 1 if write_grad else 0
    return call_f64(kernel, (z, y_int, y_float, row_loss, z.shape[0], z.shape[1], flag))


@njit(cache=True, error_model="numpy")
def loss_value(
    kernel: int,
    z: np.ndarray,
    y_int: np.ndarray,
    y_float: np.ndarray,
    write_grad: bool,
    row_loss: np.ndarray,
) -> float:
    """:func:`call_loss` for Python callers (``value_and_grad``, ``MLP.evaluate``).

    Parameters
    ----------
    kernel, z, y_int, y_float, write_grad, row_loss
        As for :func:`call_loss`.

    Returns
    -------
    float
        The loss, as for :func:`call_loss`.
    """
    return call_loss(kernel, z, y_int, y_float, write_grad, row_loss)


# ----------------------------------------------------------------------------- Python side
@dataclass(frozen=True)
class Loss:
    """A loss by canonical name, lowered to an integer ``code`` for the kernels.

    Attributes
    ----------
    name : str
        The canonical name (``"softmax_cross_entropy"``, ``"sigmoid_cross_entropy"``
        or ``"mse"``).
    """

    name: str

    def __post_init__(self) -> None:
        if self.name not in _CODES:  # a canonical name; get() also takes aliases
            raise ValueError(
                f"name: expected one of {', '.join(map(repr, _CODES))}, got {self.name!r} "
                "(losses.get takes aliases too)"
            )

    @property
    def code(self) -> int:
        """Integer code used inside compiled kernels."""
        return _CODES[self.name]


def get(spec: Any, name: str = "loss") -> Loss:
    """Resolve a loss name (case-insensitive; aliases ``cross_entropy``, ``bce``).

    Parameters
    ----------
    spec : str or Loss
        ``"softmax_cross_entropy"``, ``"sigmoid_cross_entropy"``, ``"mse"`` or an
        alias; a :class:`Loss` passes through.
    name : str
        Argument name used in error messages.

    Returns
    -------
    Loss
        With the canonical name.

    Raises
    ------
    ValueError
        For an unknown name, naming the argument ``name``.
    """
    if isinstance(spec, Loss):
        return spec
    if not isinstance(spec, str) or spec.lower() not in NAMES:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, NAMES))}, got {spec!r}")
    return Loss(_ALIASES.get(spec.lower(), spec.lower()))


def _class_labels(y: np.ndarray, n_out: int, name: str) -> np.ndarray:
    if y.ndim == 2:
        if y.shape[1] != n_out:
            n = y.shape[0]
            raise ValueError(
                f"{name}: expected integer labels of shape ({n},) or one-hot rows of shape "
                f"({n}, {n_out}), got shape {y.shape}"
            )
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise ValueError(f"{name}: 2-D labels must be one-hot rows (one 1, zeros elsewhere)")
        return np.array(y.argmax(axis=1), dtype=np.int64)
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise ValueError(f"{name}: class labels must be integers, got non-integer values")
    if y.size and (y.min() < 0 or y.max() >= n_out):  # before the cast: 1e300 or 2**64-1 wrap
        raise ValueError(
            f"{name}: labels must lie in [0, {n_out - 1}] for {n_out} output units, "
            f"got values in [{y.min().item()!r}, {y.max().item()!r}]"
        )
    return y.astype(np.int64)


def _float_targets(y: np.ndarray, n_out: int, dtype: np.dtype, name: str) -> np.ndarray:
    if y.ndim == 1 and n_out == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[1] != n_out:
        raise ValueError(f"{name}: expected shape (n, {n_out}), got {y.shape}")
    targets = cast_finite(y, dtype, name)
    # a private copy: one array type for the kernels
    return targets.copy() if np.may_share_memory(targets, y) else targets


def prepare_targets(
    loss: Loss | str, y: Any, n: int, n_out: int, dtype: np.dtype, name: str = "y"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate targets for ``loss`` and return the kernel arrays ``(y_int, y_float)``.

    Parameters
    ----------
    loss : Loss or str
        The loss, or a name :func:`get` resolves.
    y : array_like
        Labels (softmax cross-entropy: integers in ``[0, n_out)`` of shape (n,)
        or one-hot (n, n_out); sigmoid cross-entropy: (n,) or (n, 1) values in
        [0, 1]; mse: (n, n_out), or (n,) when ``n_out == 1``).
    n : int
        Number of samples (rows of X).
    n_out : int
        Output units of the model.
    dtype : numpy.dtype
        Model dtype (float targets are cast to it).
    name : str
        Argument name for error messages.

    Returns
    -------
    y_int : (n,) int64 array (empty unless softmax cross-entropy)
    y_float : (n, n_out) array of ``dtype`` (empty unless sigmoid CE or mse)
    """
    loss = get(loss)
    n, n_out = check_int(n, "n", low=0), check_int(n_out, "n_out", low=1)
    y = as_array(y, name, "a 1-D or 2-D array of targets")
    if y.dtype.kind not in "biuf" or y.ndim not in (1, 2):
        raise ValueError(f"{name}: expected a 1-D or 2-D real array, got {y.dtype} {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"{name}: expected {n} rows to match X, got {y.shape[0]}")
    y_int = np.zeros(0, np.int64)
    y_float = np.zeros((0, n_out), dtype)
    if loss.code == SOFTMAX_CE:
        if n_out < 2:
            raise ValueError(
                "loss: 'softmax_cross_entropy' needs at least 2 output units; "
                "use 'sigmoid_cross_entropy' for one"
            )
        return _class_labels(y, n_out, name), y_float
    if loss.code == SIGMOID_CE:
        if n_out != 1:
            raise ValueError(f"loss: 'sigmoid_cross_entropy' needs 1 output unit, got {n_out}")
        y_float = _float_targets(y, 1, dtype, name)
        if y_float.size and (y_float.min() < 0 or y_float.max() > 1):
            raise ValueError(f"{name}: sigmoid cross-entropy targets must lie in [0, 1]")
        return y_int, y_float
    return y_int, _float_targets(y, n_out, dtype, name)


def check_logits(logits: Any) -> np.ndarray:
    """``logits`` as an array, checked as :func:`value_and_grad` and its CUDA twin need it.

    Parameters
    ----------
    logits : array_like
        2-D float32 or float64, at least one row and one column, finite.

    Returns
    -------
    numpy.ndarray
        ``np.asarray(logits)``, in native byte order (big-endian floats are converted).

    Raises
    ------
    ValueError
        Naming ``logits`` and what was expected.
    """
    z = np.asarray(logits)
    if z.dtype.kind == "f" and not z.dtype.isnative:
        z = z.astype(z.dtype.newbyteorder("="))
    if z.ndim != 2 or z.dtype not in (np.float32, np.float64):
        raise ValueError(f"logits: expected a 2-D float32/float64 array, got {z.dtype} {z.shape}")
    if z.size == 0:  # the mean over no rows (or no units) is 0 / 0
        raise ValueError(f"logits: expected at least one row and one column, got {z.shape}")
    if not all_finite(z):
        raise ValueError("logits: expected finite values")
    return z


def value_and_grad(loss: Any, logits: np.ndarray, y: Any) -> tuple[float, np.ndarray]:
    """Loss and its gradient with respect to ``logits``, with the training kernel.

    Parameters
    ----------
    loss : str or Loss
        Loss name (see the module table).
    logits : (m, C) float32 or float64 array
    y : array_like
        Targets in the formats of :func:`prepare_targets`.

    Returns
    -------
    loss : float
    grad : numpy.ndarray
        ``dL/dlogits``, shaped and typed like ``logits``.
    """
    spec = get(loss)
    z = check_logits(logits)
    y_int, y_float = prepare_targets(spec, y, z.shape[0], z.shape[1], z.dtype)
    grad = np.array(z, order="C")
    kernel = loss_kernel(spec.code, z.dtype)
    value = loss_value(kernel, grad, y_int, y_float, True, np.empty(z.shape[0], z.dtype))
    return float(value), grad
