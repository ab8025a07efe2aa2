"""CUDA twin of :mod:`fastinit.losses`: the three losses from logits, with gradients.

Same codes and scaling as the CPU module: the gradient written over the logits
is ``(softmax(z_i) - onehot(y_i)) / m``, ``(sigmoid(z_i) - y_i) / m`` or
``2 (z_ij - y_ij) / (m C)``, and the loss is the float64 sum of per-row terms
(in the model dtype) times ``1/m`` (``1/(m C)`` for mse).  One thread computes
one row; the rows of a batch run in a single block, whose threads add their
rows in float64 and reduce in shared memory, so the loss of a training step is
one kernel launch and stays on the device (:mod:`fastinit.train_cuda` copies
the recorded losses back once per chunk).

Divergence flag: the kernel reads ``flag[0]``; when it is non-zero (the network
already diverged) it records NaN and writes nothing else; when the loss it
computes is not finite it sets ``flag[0] = t + 1`` so that every later kernel of
the step (backward, update) leaves the network alone, as on the CPU.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from fastinit import losses as _losses
from fastinit._cuda import cuda_module, device_memory, simulator_enabled

__all__ = ["loss_kernel", "value_and_grad"]

cuda: Any = None  # numba.cuda, set on first use (never at import)

SOFTMAX_CE, SIGMOID_CE, MSE = _losses.SOFTMAX_CE, _losses.SIGMOID_CE, _losses.MSE


def threads() -> int:
    """Threads of the loss block (a power of two): 128 on a GPU, 4 under the simulator.

    Returns
    -------
    int
    """
    return 4 if simulator_enabled() else 128


@functools.cache
def loss_kernel() -> Any:
    """The kernel ``loss[1, threads()](z, y_int, y_float, code, record, t, col, flag)``.

    ``z`` (m, C) logits, overwritten by ``dL/dz``; ``record[t, col]`` receives
    the loss (float64); ``flag`` is the one-element divergence flag (see the
    module docstring).

    Returns
    -------
    numba CUDA kernel
        Compiled on first call and cached; launch it with one block of
        :func:`threads` threads.
    """
    from fastinit.activations_cuda import device_functions

    global cuda  # a module global: the simulator swaps the module in kernels' globals
    cuda = cuda_module()
    sigmoid_parts = device_functions().sigmoid_parts
    nt = threads()
    f64 = np.float64

    @cuda.jit(device=True)
    def softmax_ce_row(z, i, label, scale):
        t = type(z[i, 0])
        mx = z[i, 0]
        for j in range(1, z.shape[1]):
            mx = max(mx, z[i, j])
        zy = z[i, label] - mx
        s = t(0.0)
        for j in range(z.shape[1]):
            e = t(math.exp(z[i, j] - mx))
            z[i, j] = e
            s += e
        g = t(scale) / s
        for j in range(z.shape[1]):
            z[i, j] *= g
        z[i, label] -= t(scale)
        return t(math.log(s)) - zy

    @cuda.jit(device=True)
    def sigmoid_ce_row(z, i, target, scale):
        t = type(z[i, 0])
        x = z[i, 0]
        s, _, e = sigmoid_parts(x)
        z[i, 0] = (s - target) * t(scale)
        return max(x, t(0.0)) - x * target + t(math.log1p(e))

    @cuda.jit(device=True)
    def mse_row(z, i, y, scale):
        t = type(z[i, 0])
        s = f64(0.0)  # float64 as on a GPU (under the simulator 0.0 + float32 is float32)
        for j in range(z.shape[1]):
            r = z[i, j] - y[i, j]
            s += r * r
            z[i, j] = t(2.0 * scale) * r
        return t(s)  # the row's term in the model dtype, as the CPU stores it (may be inf)

    @cuda.jit
    def kernel(z, y_int, y_float, code, record, t, col, flag):
        partial = cuda.shared.array(nt, f64)
        tid = cuda.threadIdx.x
        if flag[0] != 0:
            if tid == 0:
                record[t, col] = math.nan
            return
        m = z.shape[0]
        scale = 1.0 / (m * z.shape[1]) if code == MSE else 1.0 / m
        acc = f64(0.0)  # float64 as on a GPU (under the simulator 0.0 + float32 is float32)
        for i in range(tid, m, nt):
            if code == SOFTMAX_CE:
                acc += softmax_ce_row(z, i, y_int[i], scale)
            elif code == SIGMOID_CE:
                acc += sigmoid_ce_row(z, i, y_float[i, 0], scale)
            else:
                acc += mse_row(z, i, y_float, scale)
        partial[tid] = acc
        cuda.syncthreads()
        step = nt // 2
        while step > 0:
            if tid < step:
                partial[tid] += partial[tid + step]
            cuda.syncthreads()
            step //= 2
        if tid == 0:
            total = partial[0] * scale
            record[t, col] = total
            if not math.isfinite(total):
                flag[0] = t + 1

    return kernel


def value_and_grad(loss: Any, logits: np.ndarray, y: Any) -> tuple[float, np.ndarray]:
    """Loss and its gradient with respect to ``logits``, computed on the device.

    The twin of :func:`fastinit.losses.value_and_grad` (same arguments,
    validation and results to float32 rounding).

    Parameters
    ----------
    loss : str or Loss
        Loss name (see the table of :mod:`fastinit.losses`).
    logits : (m, C) float32 or float64 array
        Host array of finite logits.
    y : array_like
        Targets in the formats of :func:`fastinit.losses.prepare_targets`.

    Returns
    -------
    loss : float
    grad : numpy.ndarray
        ``dL/dlogits`` (host array), shaped and typed like ``logits``.

    Raises
    ------
    ValueError
        For logits that are not a 2-D float32/float64 array with at least one
        row and one column of finite values, or targets that do not match them.
    """
    from fastinit.dense_cuda import configure

    spec = _losses.get(loss)
    z = _losses.check_logits(logits)  # the CPU twin's checks
    y_int, y_float = _losses.prepare_targets(spec, y, z.shape[0], z.shape[1], z.dtype)
    global cuda  # a module global: the simulator swaps the module in kernels' globals
    cuda = cuda_module()
    with device_memory("logits", z.shape, z.dtype):
        dz = cuda.to_device(np.ascontiguousarray(z))
        record = cuda.to_device(np.full((1, 1), np.nan))
        flag = cuda.to_device(np.zeros(1, np.int64))
        yi = cuda.to_device(y_int if y_int.size else np.zeros(1, np.int64))
        yf = cuda.to_device(y_float if y_float.size else np.zeros((1, 1), z.dtype))
    configure(loss_kernel(), 1, threads())(dz, yi, yf, spec.code, record, 0, 0, flag)
    return float(record.copy_to_host()[0, 0]), dz.copy_to_host()
