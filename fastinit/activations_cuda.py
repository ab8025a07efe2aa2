"""CUDA twin of :mod:`fastinit.activations`: one device function per activation.

Same names, integer codes, parameters ``(p0, p1)`` and defaults as the CPU
module (the codes and constants are imported from it); each function returns
``(value, derivative)`` in the type of ``z``.  The formulas are the CPU ones
written with CUDA's libdevice ``exp``, ``expm1``, ``log1p``, ``erfc`` (the CPU
module's vectorizable polynomials exist only for its SIMD loops), so results
agree to a few float32 ulps, and they are stable the same way: sigmoid, tanh and
softplus from ``exp(-|z|)``, ``1 - tanh**2`` and ``s (1 - s)`` from the small
tail, gelu_tanh's cubic on ``z`` clamped to the CPU's ``[-_GELU_CLAMP, _GELU_CLAMP]``.

Nothing here imports ``numba.cuda`` at import time: :func:`device_functions`
builds the device functions on first use (through :mod:`fastinit._cuda`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from fastinit import activations as _act
from fastinit._cuda import cuda_module, device_memory

__all__ = ["apply", "device_functions"]

cuda: Any = None  # numba.cuda, set on first use (never at import)

_SELU_ALPHA = _act._SELU_ALPHA
_SELU_SCALE = _act._SELU_SCALE
_SQRT_HALF = _act._SQRT_HALF
_INV_SQRT_2PI = _act._INV_SQRT_2PI
_GELU_K = _act._GELU_K
_GELU_C = _act._GELU_C
_GELU_CLAMP = _act._GELU_CLAMP
IDENTITY, SIGMOID, TANH, RELU = _act.IDENTITY, _act.SIGMOID, _act.TANH, _act.RELU
LEAKY_RELU, ELU, SELU, GELU = _act.LEAKY_RELU, _act.ELU, _act.SELU, _act.GELU
GELU_TANH, SOFTPLUS = _act.GELU_TANH, _act.SOFTPLUS


@functools.cache
def device_functions() -> Any:
    """Build the device functions once; returns a namespace with ``activate`` and ``sigmoid_parts``.

    ``activate(code, p0, p1, z) -> (value, derivative)`` dispatches on the code
    like :func:`fastinit.activations.activate`; ``sigmoid_parts(z) -> (s, 1 - s,
    exp(-|z|))`` is shared with :mod:`fastinit.losses_cuda`.

    Returns
    -------
    namespace
        Attributes ``activate`` and ``sigmoid_parts`` (CUDA device functions) and
        ``apply_kernel``, the kernel ``apply_kernel[blocks, threads](value, deriv,
        code, p0, p1)`` that :func:`apply` launches (``value = f(deriv)``,
        ``deriv = f'(deriv)`` on 1-D device arrays).  Built once and cached.
    """
    global cuda  # a module global: the simulator swaps the module in kernels' globals
    cuda = cuda_module()
    dev = cuda.jit(device=True)

    @dev
    def sigmoid_parts(z):
        t = type(z)
        e = t(math.exp(-abs(z)))
        q = t(1.0) / (t(1.0) + e)
        s_small = e * q
        if z >= 0:
            return q, s_small, e
        return s_small, q, e

    @dev
    def tanh_parts(z):
        t = type(z)
        a = t(-2.0) * abs(z)
        ex = t(math.exp(a))
        em = t(math.expm1(a))
        q = t(1.0) / (t(1.0) + ex)
        th = -em * q
        return (th if z >= 0 else -th), t(4.0) * ex * q * q

    @dev
    def elu(z, alpha):
        t = type(z)
        if z > 0:
            return z, t(1.0)
        return alpha * t(math.expm1(z)), alpha * t(math.exp(z))

    @dev
    def activate(code, p0, p1, z):
        t = type(z)
        one = t(1.0)
        if code == RELU:  # NaN stays NaN (a NaN z fails both tests)
            return (t(0.0) if z <= 0 else z), (one if z > 0 else t(0.0))
        if code == IDENTITY:
            return z, one
        if code == TANH:
            return tanh_parts(z)
        if code == SIGMOID:
            s, rest, _ = sigmoid_parts(z)
            return s, s * rest
        if code == LEAKY_RELU:
            slope = t(p0)
            return (z, one) if z > 0 else (z * slope, slope)
        if code == ELU:
            return elu(z, t(p0))
        if code == SELU:
            v, d = elu(z, t(_SELU_ALPHA))
            return t(_SELU_SCALE) * v, t(_SELU_SCALE) * d
        if code == GELU:
            cdf = t(0.5) * t(math.erfc(-z * t(_SQRT_HALF)))  # as the CPU: no cancellation
            pdf = t(_INV_SQRT_2PI) * t(math.exp(t(-0.5) * z * z))
            return z * cdf, cdf + z * pdf
        if code == GELU_TANH:
            zc = z  # clamped as the CPU's fm.clamp: a NaN stays NaN (fmin/fmax would drop it)
            if zc < t(-_GELU_CLAMP):
                zc = t(-_GELU_CLAMP)
            if zc > t(_GELU_CLAMP):
                zc = t(_GELU_CLAMP)
            k, c, half = t(_GELU_K), t(_GELU_C), t(0.5)
            th, dth = tanh_parts(k * (zc + c * zc * zc * zc))
            return half * z * (one + th), half * (one + th) + half * zc * dth * k * (
                one + t(3.0) * c * zc * zc
            )
        if code == SOFTPLUS:
            beta = t(p0)
            bz = beta * z
            s, _, e = sigmoid_parts(bz)
            if bz > t(p1):
                return z, one
            return (max(bz, t(0.0)) + t(math.log1p(e))) / beta, s
        s, rest, _ = sigmoid_parts(z)  # SILU
        return z * s, s * (one + z * rest)

    @cuda.jit
    def apply_kernel(value, deriv, code, p0, p1):
        i = cuda.grid(1)
        if i < value.shape[0]:
            value[i], deriv[i] = activate(code, p0, p1, deriv[i])

    return _Namespace(activate=activate, sigmoid_parts=sigmoid_parts, apply_kernel=apply_kernel)


class _Namespace:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def apply(
    x: np.ndarray, activation: Any = "relu", **params: float
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate an activation and its derivative element-wise on the device.

    The twin of :func:`fastinit.activations.apply` (same arguments and
    validation); the input is copied to the device and the results back.

    Parameters
    ----------
    x : numpy.ndarray
        float32 or float64 array of any shape (other real dtypes become float64).
    activation : str, tuple or Activation
        See :func:`fastinit.activations.get`.
    **params : float
        Activation parameters (PyTorch names).

    Returns
    -------
    value, derivative : numpy.ndarray
        ``f(x)`` and ``f'(x)`` (host arrays), shaped and typed like ``x``.

    Raises
    ------
    ValueError
        If ``x`` is not a real (bool, integer or float) array.
    """
    from fastinit.dense_cuda import configure

    act = _act.get(activation, **params)
    x = _act.real_input(x)  # the CPU twin's checks, message for message
    global cuda  # a module global: the simulator swaps the module in kernels' globals
    cuda = cuda_module()
    flat = np.ascontiguousarray(x).reshape(-1)
    with device_memory("x", x.shape, flat.dtype):
        deriv = cuda.to_device(flat)
        value = cuda.device_array_like(deriv)
    if flat.size:
        threads = 32
        p0, p1 = act.values
        kernel = device_functions().apply_kernel
        configure(kernel, (flat.size + threads - 1) // threads, threads)(
            value, deriv, act.code, p0, p1
        )
    return value.copy_to_host().reshape(x.shape), deriv.copy_to_host().reshape(x.shape)
