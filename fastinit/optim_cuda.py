"""CUDA twin of :func:`fastinit.optim.apply_update`: one element-wise kernel, six optimizers.

Same codes (``SGD_CODE`` ... ``ADAM``), the same ``hyper`` array
``[lr, a, b, eps, weight_decay, 0]`` and step semantics (``step`` is the
1-based index of this step; Adam's bias corrections use it), the same formulas
(PyTorch's, see :mod:`fastinit.optim`), with the scalar factors computed on the
host in float64 and rounded once to the model dtype.  On the CPU plain SGD
without weight decay is fused into the weight GEMM (``W = W - lr A.T dZ``); here
it is this kernel's ``p -= lr (g + wd p)``, the same formula (and the CPU's with
weight decay).

The kernel also takes the one-element divergence flag of the training loop
(:mod:`fastinit.losses_cuda`): a non-zero flag leaves everything untouched.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from fastinit import optim as _optim
from fastinit._cuda import check_device_array, cuda_module, simulator_enabled

__all__ = ["FACTORS", "apply_update", "factors", "update_kernel"]

cuda: Any = None  # numba.cuda, set on first use (never at import)

SGD_CODE, MOMENTUM, NESTEROV = _optim.SGD_CODE, _optim.MOMENTUM, _optim.NESTEROV
ADAGRAD, RMSPROP, ADAM = _optim.ADAGRAD, _optim.RMSPROP, _optim.ADAM

FACTORS = ("lr", "wd", "a", "ac", "b", "bc", "c", "eps")  # factors()'s, the kernel's arguments


def threads() -> int:
    """Threads per block of the update kernel (256 on a GPU, 16 under the simulator).

    Returns
    -------
    int
    """
    return 16 if simulator_enabled() else 256


def blocks(n: int) -> int:
    """Blocks of the (grid-stride) update kernel for ``n`` parameters: one under the simulator.

    Parameters
    ----------
    n : int
        Number of parameters.

    Returns
    -------
    int
        ``ceil(n / 256)`` clipped to [1, 4096] on a GPU; 1 under the simulator.
    """
    return 1 if simulator_enabled() else max(1, min(4096, (n + 255) // 256))


def factors(code: int, hyper: np.ndarray, step: int, dtype: Any) -> tuple:
    """The kernel's scalars ``(lr, wd, a, ac, b, bc, c, eps)`` for one step, rounded to ``dtype``.

    ``a, b, c``: momentum (momentum, Nesterov); ``decay, 1 - decay`` (RMSprop;
    ``1, 1`` for AdaGrad); ``b1, b2, sqrt(1 - b2**step)`` (Adam, whose ``lr``
    is then the step size ``lr / (1 - b1**step)``).  ``ac, bc``: Adam's
    ``1 - b1, 1 - b2``, from float64 (``1 - float32(0.99999)`` is 1.3e-3 off),
    as :mod:`fastinit.optim` does.

    Parameters
    ----------
    code : int
        Optimizer code (``SGD_CODE`` ... ``ADAM``).
    hyper : float64 array
        ``[lr, a, b, eps, weight_decay, 0]`` (``Optimizer.hyper()``).
    step : int
        1-based index of this step (Adam's bias corrections).
    dtype : numpy.dtype or str
        The model dtype.

    Returns
    -------
    tuple of eight scalars of ``dtype``
        ``(lr, wd, a, ac, b, bc, c, eps)``; 0 where unused, ``eps`` is ``hyper``'s.
    """
    t = np.dtype(dtype).type
    lr, ha, hb, eps, wd = (float(v) for v in hyper[:5])
    a = ac = b = bc = c = 0.0
    if code in (MOMENTUM, NESTEROV):
        a = ha
    elif code == ADAGRAD:
        a = b = 1.0
    elif code == RMSPROP:
        a, b = ha, 1.0 - ha
    elif code == ADAM:
        a, ac, b, bc, c = ha, 1.0 - ha, hb, 1.0 - hb, math.sqrt(1.0 - hb**step)
        lr = lr / (1.0 - ha**step)
    return t(lr), t(wd), t(a), t(ac), t(b), t(bc), t(c), t(eps)


@functools.cache
def update_kernel() -> Any:
    """``update[blocks(p.size), threads()](code, p, g, s0, s1, *factors(...), flag)``.

    A grid-stride loop over the flat parameters; the scalars come from :func:`factors`.

    Returns
    -------
    numba CUDA kernel
        Compiled on first call and cached.
    """
    global cuda  # a module global: the simulator swaps the module in kernels' globals
    cuda = cuda_module()

    @cuda.jit
    def kernel(code, p, g, s0, s1, lr, wd, a, ac, b, bc, c, eps, flag):
        if flag[0] != 0:
            return
        for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
            pi = p[i]
            gi = g[i] + wd * pi
            if code == SGD_CODE:
                p[i] = pi - lr * gi
            elif code == MOMENTUM or code == NESTEROV:
                vi = a * s0[i] + gi
                s0[i] = vi
                p[i] = pi - (lr * (gi + a * vi) if code == NESTEROV else lr * vi)
            elif code == ADAGRAD or code == RMSPROP:
                si = a * s0[i] + b * gi * gi
                s0[i] = si
                p[i] = pi - lr * gi / (math.sqrt(si) + eps)
            elif code == ADAM:
                mi = a * s0[i] + ac * gi
                vi = b * s1[i] + bc * gi * gi
                s0[i] = mi
                s1[i] = vi
                p[i] = pi - lr * mi / (math.sqrt(vi) / c + eps)

    return kernel


def apply_update(code: int, hyper: np.ndarray, step: int, p: Any, g: Any, s0: Any, s1: Any) -> None:
    """One optimizer step on device arrays, the twin of :func:`fastinit.optim.apply_update`.

    Parameters
    ----------
    code : int
        Optimizer code (``NONE`` does nothing).
    hyper : float64 array
        ``[lr, a, b, eps, weight_decay, 0]``.
    step : int
        1-based index of this step.
    p, g, s0, s1 : 1-D device arrays of the model dtype
        Parameters, gradients and the two state slots (unused slots are not
        read: pass any 1-D array of the dtype).

    Raises
    ------
    TypeError
        If ``p``, ``g``, ``s0`` or ``s1`` is not a device array (host arrays would
        be copied back one by one: an unused slot passed as ``p`` would undo the step).
    ValueError
        If the operands do not fit (:func:`fastinit.optim.check_update`).
    """
    from fastinit.dense_cuda import configure

    for name, a in (("p", p), ("g", g), ("s0", s0), ("s1", s1)):
        check_device_array(a, name)
    _optim.check_update(code, hyper, step, p, g, s0, s1, contiguous=False)
    if code == _optim.NONE or p.shape[0] == 0:
        return
    global cuda  # a module global: the simulator swaps the module in kernels' globals
    cuda = cuda_module()
    flag = cuda.to_device(np.zeros(1, np.int64))
    configure(update_kernel(), blocks(p.shape[0]), threads())(
        code, p, g, s0, s1, *factors(code, hyper, step, p.dtype), flag
    )
