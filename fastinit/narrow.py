"""Feature-major kernels for tiny networks (every layer at most ``NARROW_MAX`` wide).

For a network like the planar notebook's 2-4-1, a BLAS call costs about 1 us
whatever it computes, and a row-major product with 2 or 4 columns does not
vectorize: five such products were half of a 12 us training step.  Stored
feature-major instead (layer ``k``'s activations as ``(fan_out, m)``, one row
per unit), every operation is a loop over the ``m`` batch rows, contiguous in
memory, which LLVM vectorizes:

* forward: ``Z[j, :] = b[j] + sum_p W[p, j] A[p, :]`` (``fan_in`` axpys per unit),
  then the activation over the flat block (:func:`fastinit.activations.call_activate`);
* backward: ``dZ = dA * f'(Z)`` and ``db[j] = sum(dZ[j, :])`` in one pass,
  ``dW[p, j] = A[p, :] . dZ[j, :]``, ``dA_prev[p, :] = sum_j W[p, j] dZ[j, :]``.

The dot products and row sums are reductions; they are compiled with
``fastmath={"reassoc"}`` so that LLVM may split them into vector lanes.  The
order of the additions therefore differs from the row-major path (and from
BLAS), by rounding only, and is fixed by the compiled code: the results do
not depend on the number of threads.  The training loop
(:func:`fastinit.train.train_chunk`) takes this path for networks whose
widths are all at most ``NARROW_MAX`` when no statistics are being recorded;
the update is the optimizer's own kernel (:func:`fastinit.optim.call_update`).

``work`` holds, per layer, ``Z^T`` and ``D^T`` blocks of ``fan_out * m`` (the
backward pass overwrites ``Z^T`` with ``dL/dA^T``), then the transposed input
``X^T`` and a row-major copy of the logits for the loss (``narrow_work_size``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fastinit import losses as _losses
from fastinit.activations import IDENTITY, call_activate
from fastinit.dense import ACT, FAN_IN, FAN_OUT, KERNEL, bias, block, weight

NARROW_MAX = 16  # widest layer (inputs included) taking the feature-major path

_E = {"cache": True, "error_model": "numpy"}
_R = {"cache": True, "error_model": "numpy", "fastmath": {"reassoc"}}


def is_narrow(sizes: tuple[int, ...]) -> bool:
    """Whether a network of these widths takes the feature-major training path.

    Parameters
    ----------
    sizes : tuple of int
        Layer widths, input and output included.

    Returns
    -------
    bool
        True when every width is at most :data:`NARROW_MAX`.
    """
    return max(sizes) <= NARROW_MAX


def narrow_work_size(layers: np.ndarray, rows: int) -> int:
    """Elements of ``work`` that :func:`narrow_step` needs for ``rows`` rows.

    Parameters
    ----------
    layers : (n_layers, LAYER_COLUMNS) int64 array
        The layer table (:mod:`fastinit.dense`).
    rows : int
        Batch rows.

    Returns
    -------
    int
    """
    n_in, n_out = int(layers[0, FAN_IN]), int(layers[-1, FAN_OUT])
    return int(rows) * (2 * int(layers[:, FAN_OUT].sum()) + n_in + n_out)  # Python ints


@njit(**_E)  # not inlined: _grad_t's reassociation must not regroup these sums
def _sum_rows(out, start, coef, rows):
    """``out = start + coef[0] rows[0] + coef[1] rows[1] + ...``, added left to right.

    Two terms per pass over ``out`` (the first pass also takes ``start``): each
    pass loads and stores ``out`` once, so a 2-input unit is one pass, not three.
    """
    n, m = coef.shape[0], out.shape[0]
    c0, r0 = coef[0], rows[0]
    if n == 1:
        for i in range(m):
            out[i] = start + c0 * r0[i]
        return
    c1, r1 = coef[1], rows[1]
    for i in range(m):
        out[i] = (start + c0 * r0[i]) + c1 * r1[i]
    for k in range(2, n - 1, 2):
        c0, r0, c1, r1 = coef[k], rows[k], coef[k + 1], rows[k + 1]
        for i in range(m):
            out[i] = (out[i] + c0 * r0[i]) + c1 * r1[i]
    if n % 2:
        c0, r0 = coef[n - 1], rows[n - 1]
        for i in range(m):
            out[i] += c0 * r0[i]


@njit(**_E)
def _dense_t(a, w, b, z, d, kernel, p0, p1):
    """``d = W^T a + b`` (feature-major), then ``z = f(d)``, ``d = f'(d)``."""
    for j in range(w.shape[1]):
        _sum_rows(d[j], b[j], w[:, j], a)
    call_activate(kernel, z.reshape(z.size), d.reshape(d.size), p0, p1)


@njit(**_R)
def _grad_t(a, g, d, w, dw, db, da, code):
    """Backward of :func:`_dense_t`: ``d = g * f'`` (``g`` for the identity), ``db``,
    ``dw``, and ``da = W dZ`` if ``da`` has rows (``da`` may be ``a``: written last)."""
    fan_in, fan_out = w.shape
    m = g.shape[1]
    zero = type(w[0, 0])(0.0)
    for j in range(fan_out):
        s = zero
        if code == IDENTITY:
            for i in range(m):
                d[j, i] = g[j, i]
                s += g[j, i]
        else:
            for i in range(m):
                v = g[j, i] * d[j, i]
                d[j, i] = v
                s += v
        db[j] = s
    for p in range(fan_in):
        for j in range(fan_out):
            s = zero
            for i in range(m):
                s += a[p, i] * d[j, i]
            dw[p, j] = s
    if da.shape[0]:  # after dw: da may be a itself
        for p in range(fan_in):
            _sum_rows(da[p], zero, w[p], d)


@njit(**_E)
def narrow_step(
    params: np.ndarray,
    grads: np.ndarray,
    layers: np.ndarray,
    act_params: np.ndarray,
    first: int,
    count: int,
    x: np.ndarray,
    y_int: np.ndarray,
    y_float: np.ndarray,
    loss_kernel: int,
    work: np.ndarray,
    row_loss: np.ndarray,
) -> float:
    """Loss of layers ``first .. first+count-1`` on the rows of ``x``; gradients into ``grads``.

    ``x`` is row-major ``(m, n_in)`` as everywhere else; it is transposed into
    ``work`` first.  Returns the loss (the gradients are not written when it is
    not finite).

    Parameters
    ----------
    params, grads : 1-D arrays of the model dtype
        Flat parameters and gradients in the layout of :mod:`fastinit.dense`;
        ``grads`` receives the layers' ``dW`` and ``db``.
    layers : (n_layers, LAYER_COLUMNS) int64 array
        The layer table, its ``KERNEL`` column filled
        (:func:`fastinit.dense.with_kernels`).
    act_params : (n_layers, 2) float64 array
        The activation parameters ``(p0, p1)`` of each layer.
    first, count : int
        The model's layers are rows ``first .. first+count-1`` of ``layers``.
    x : (m, n_in) C-contiguous array of the model dtype
        Input rows.
    y_int, y_float : arrays
        Targets as for :func:`fastinit.losses.call_loss`.
    loss_kernel : int
        :func:`fastinit.losses.loss_kernel` of the loss and the model dtype.
    work : 1-D array of the model dtype
        Scratch of at least :func:`narrow_work_size` elements for ``m`` rows.
    row_loss : (>= m,) array of the model dtype
        Scratch for the per-row losses.

    Returns
    -------
    float
        The mean loss (float64), NaN or inf if the forward pass diverged.
    """
    m = x.shape[0]
    last = first + count - 1
    n_in = layers[first, FAN_IN]
    n_out = layers[last, FAN_OUT]
    off = 0
    for k in range(first, first + count):
        off += 2 * m * layers[k, FAN_OUT]
    xt = block(work, off, n_in, m)
    rows = block(work, off + n_in * m, m, n_out)
    for p in range(n_in):  # contiguous writes: this order vectorizes
        for i in range(m):
            xt[p, i] = x[i, p]
    a = xt
    off = 0
    for k in range(first, first + count):
        n = layers[k, FAN_OUT]
        z = block(work, off, n, m)
        _dense_t(a, weight(params, layers, k), bias(params, layers, k), z,
                 block(work, off + m * n, n, m), layers[k, KERNEL], act_params[k, 0],
                 act_params[k, 1])  # fmt: skip
        a = z
        off += 2 * m * n
    if n_out == 1:  # (1, m) and (m, 1) are the same memory
        loss = _losses.call_loss(loss_kernel, a.reshape((m, 1)), y_int, y_float, True, row_loss)
    else:  # the loss works on row-major logits
        for c in range(n_out):
            for i in range(m):
                rows[i, c] = a[c, i]
        loss = _losses.call_loss(loss_kernel, rows, y_int, y_float, True, row_loss)
        for c in range(n_out):
            for i in range(m):
                a[c, i] = rows[i, c]  # dL/dlogits, feature-major
    if not np.isfinite(loss):
        return loss
    g = a
    off -= 2 * m * n_out
    for k in range(last, first - 1, -1):
        n = layers[k, FAN_OUT]
        fan_in = layers[k, FAN_IN]
        if k > first:  # dA of the layer below replaces its output, no longer needed
            prev = block(work, off - 2 * m * fan_in, fan_in, m)
            da = prev
        else:
            prev = xt
            da = xt[:0]
        _grad_t(prev, g, block(work, off + m * n, n, m), weight(params, layers, k),
                weight(grads, layers, k), bias(grads, layers, k), da, layers[k, ACT])  # fmt: skip
        g = prev
        off -= 2 * m * fan_in
    return loss
