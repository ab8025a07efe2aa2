"""Activation functions and their derivatives, named and parametrised as in PyTorch.

Inside compiled code an activation is an integer code plus two float parameters,
so one compiled kernel serves every activation (no recompiles per network).  The
single source of truth for each formula is one small jitted function per
activation (``relu``, ``tanh``, ... below) returning the value and the
derivative together; :func:`activate` dispatches on the code, the dense forward
kernel stores the derivative for the backward pass, and :func:`apply` uses the
same functions.

=============  ======================================================  ==================
name           value ``f(z)``                                          parameters
=============  ======================================================  ==================
identity       ``z``                                                   -
sigmoid        ``1 / (1 + exp(-z))``                                   -
tanh           ``tanh(z)``                                             -
relu           ``max(z, 0)``; derivative 0 at ``z = 0``; NaN kept      -
leaky_relu     ``z`` if ``z > 0`` else ``negative_slope * z``          negative_slope=0.01
elu            ``z`` if ``z > 0`` else ``alpha * (exp(z) - 1)``        alpha=1.0
selu           ``scale * elu(z, alpha)``, PyTorch's constants          -
gelu           ``z * Phi(z)``, exact erf form                          -
gelu_tanh      ``0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))``     -
softplus       ``log(1 + exp(beta z)) / beta``; ``z`` if beta z > th    beta=1.0, threshold=20.0
silu (swish)   ``z * sigmoid(z)``                                      -
=============  ======================================================  ==================

Defaults and the derivative conventions at kinks follow ``torch.nn`` (relu and
leaky_relu use the ``z > 0`` branch test).  Large ``|z|`` never overflows:
sigmoid, tanh and softplus are computed from ``exp(-|z|)`` (tanh from
``expm1(-2|z|)``, exact near 0), derivatives like ``1 - tanh**2`` and
``s (1 - s)`` from the small tail directly (no cancellation), gelu_tanh
evaluates its cubic on ``z`` clamped to [-25, 25] (where tanh is exactly +-1 and
``1 - tanh**2`` is 0 in float32 and float64, so value and derivative are
unchanged), and no formula multiplies ``0 * inf`` for a finite ``z``.  At ``z =
+-inf`` (which fit and forward never see: they refuse non-finite inputs, and a
network whose pre-activations overflow has diverged) silu, gelu and gelu_tanh
give NaN where their limit is 0, and silu' and gelu' NaN at both ends, as
PyTorch does.  exp, expm1 and log1p are the
vectorizable versions below, within a few ulps of libm where ``exp(z)`` is a
normal number; below that (``z < -87.34`` in float32, ``-708.40`` in float64) exp
is 0, not subnormal, so sigmoid, softplus and the slopes of elu and selu are 0 there (PyTorch
gives subnormals such as 3.7e-44 for float32 sigmoid(-100)), and so is silu's
``z sigmoid(z)``, though that stays normal a few units further (to about -91.86 and
-714.97).  erfc (gelu) is libm's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import carray, njit, types
from numba.extending import overload

from fastinit import _fastmath as fm
from fastinit._native import (
    call_void,
    compile_kernel,
    dispatch_by_code,
    kernel_factory,
    pointer_to,
)
from fastinit._validate import as_array, check_finite, check_positive

__all__ = ["NAMES", "Activation", "activate", "apply", "get"]

IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SELU, GELU, GELU_TANH, SOFTPLUS, SILU = range(11)

# name -> (code, ((parameter name, default), ...)); parameters map to p0, p1 in order
_SPECS: dict[str, tuple[int, tuple[tuple[str, float], ...]]] = {
    "identity": (IDENTITY, ()),
    "sigmoid": (SIGMOID, ()),
    "tanh": (TANH, ()),
    "relu": (RELU, ()),
    "leaky_relu": (LEAKY_RELU, (("negative_slope", 0.01),)),
    "elu": (ELU, (("alpha", 1.0),)),
    "selu": (SELU, ()),
    "gelu": (GELU, ()),
    "gelu_tanh": (GELU_TANH, ()),
    "softplus": (SOFTPLUS, (("beta", 1.0), ("threshold", 20.0))),
    "silu": (SILU, ()),
}
_ALIASES = {"linear": "identity", "swish": "silu"}
NAMES: tuple[str, ...] = tuple(_SPECS) + tuple(_ALIASES)
_NAME_OF_CODE = {code: name for name, (code, _) in _SPECS.items()}

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_HALF = 0.7071067811865476  # 1 / sqrt(2)
_INV_SQRT_2PI = 0.3989422804014327  # 1 / sqrt(2 pi)
_GELU_K = 0.7978845608028654  # sqrt(2 / pi)
_GELU_C = 0.044715
_GELU_CLAMP = 25.0  # |u| = 577 there: exp(-2|u|) is 0 in float64 too, so 1 - tanh**2 is 0


# ----------------------------------------------------------------------------- fast math
# exp, expm1 and log1p without libm, so that the loops over activations
# vectorize (the llvmlite wheels carry no SVML: every math.exp is a scalar libm
# call).  Cephes' float32 exp polynomial and a degree-13 Taylor polynomial for
# float64 after the usual reduction x = n ln2 + r, |r| <= ln2 / 2; 2**n is built
# from its bits.  Accuracy against float128 over the whole range (measured):
# exp 2.2e-16 / 8e-8, expm1 2.7e-16 / 1.1e-7 relative (float64 / float32).
# The float64 polynomials (exp's and log1p's 12 terms) are evaluated in Estrin's
# order with fused multiply-adds (a dependency chain of 5 steps instead of 11): on
# 1600 elements, exp went from 3.5 to 1.6 ns and tanh with its derivative from 5.1
# to 2.8 ns per element, the sigmoid cross-entropy from 5.1 to 4.4 ns (float32 exp:
# 0.8-1.2 ns; libm 2.7 ns).
_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
_EXP_SERIES = tuple(1.0 / math.factorial(k) for k in range(2, 14))  # 1/2! .. 1/13!
_ATANH2_F64 = tuple(2.0 / (2 * k + 1) for k in range(11, -1, -1))  # 2/23 .. 2/1
_ATANH2_SERIES = _ATANH2_F64[::-1]  # 2/1 .. 2/23: the coefficient of s**(2k) first
_ATANH2_F32 = tuple(np.float32(2.0 / (2 * k + 1)) for k in range(4, -1, -1))


# round(x / ln2) by the shifter: adding 1.5 * 2**52 (float32: 2**23) rounds to an
# integer, which the low bits of the sum then hold: 2**n is built from them (no
# floor, no float -> int conversion: float64 tanh with its derivative 2.9 -> 2.6 ns).
# It needs IEEE arithmetic: no caller of exp_parts may compile with fastmath
# (reassociation would fold (y + S) - S into y).
_SHIFT32 = np.float32(1.5 * 2.0**23)
_SHIFT64 = 1.5 * 2.0**52


def exp_parts(x: float) -> tuple[float, float, float]:
    """``(2**n, expm1(r), n)`` with ``exp(x) = 2**n * (1 + expm1(r))``; jitted only.

    Meant for ``x <= 0`` (every use here): below the normal range ``2**n`` is 0;
    above ``88.5`` (float32) or ``709`` (float64) the result saturates.

    Parameters
    ----------
    x : float32 or float64
        Argument; the results have its type.

    Returns
    -------
    scale : float
        ``2**n`` (0 where ``exp(x)`` underflows).
    em1 : float
        ``expm1(r)`` of the reduced argument ``r = x - n ln2``, ``|r| <= ln2 / 2``.
    n : float
        ``x / ln2`` rounded to the nearest integer (ties to even), ``x``
        clamped to the saturation range; an integer value in the float type of
        ``x``.
    """


# log of the smallest normal number, 2**-126 and 2**-1022: n = -126 (-1022) there, so
# 2**n is still a normal float's bit pattern; below it exp(x) is subnormal and flushed
_LOG_TINY32, _LOG_TINY64 = -87.33654475055311, -708.3964185322641


@overload(exp_parts)
def _exp_parts(x):
    if x == types.float32:
        f = np.float32

        def exp_parts_f32(x):
            under = x < f(_LOG_TINY32)  # exp underflows: 2**n = 0 gives exp 0, expm1 -1
            x = fm.clamp(x, f(_LOG_TINY32), f(88.5))
            shifted = x * f(_LOG2E) + _SHIFT32  # no fma: float32 exp stays FMA-free
            n = shifted - _SHIFT32
            r = x - n * f(0.693359375) + n * f(2.12194440e-4)
            p = f(1.9875691500e-4)
            p = p * r + f(1.3981999507e-3)
            p = p * r + f(8.3334519073e-3)
            p = p * r + f(4.1665795894e-2)
            p = p * r + f(1.6666665459e-1)
            p = p * r + f(5.0000001201e-1)
            bits = np.int32((fm.float_bits(shifted) + np.int32(127)) << np.int32(23))
            scale = fm.bits_float(bits)
            return (f(0.0) if under else scale), r + r * r * p, n

        return exp_parts_f32
    if x == types.float64:

        def exp_parts_f64(x):
            under = x < _LOG_TINY64
            x = fm.clamp(x, _LOG_TINY64, 709.0)
            shifted = fm.fma(x, _LOG2E, _SHIFT64)
            n = shifted - _SHIFT64
            r = x - n * 0.693145751953125 - n * 1.42860682030941723212e-6
            p = _estrin12(r, _EXP_SERIES)
            scale = fm.bits_float((fm.float_bits(shifted) + 1023) << 52)
            return (0.0 if under else scale), fm.fma(r * r, p, r), n

        return exp_parts_f64
    return None


@njit(inline="always", cache=True, error_model="numpy")
def _estrin12(x, a):
    """``a[0] + a[1] x + ... + a[11] x**11`` (float64) in Estrin's order with fused
    multiply-adds: a dependency chain of 5 steps instead of Horner's 11."""
    x2 = x * x
    x4 = x2 * x2
    s0 = fm.fma(fm.fma(a[3], x, a[2]), x2, fm.fma(a[1], x, a[0]))
    s1 = fm.fma(fm.fma(a[7], x, a[6]), x2, fm.fma(a[5], x, a[4]))
    s2 = fm.fma(fm.fma(a[11], x, a[10]), x2, fm.fma(a[9], x, a[8]))
    return fm.fma(fm.fma(s2, x4, s1), x4, s0)


@njit(inline="always", cache=True, error_model="numpy")
def fast_exp(x: float) -> float:
    """``exp(x)`` for ``x <= 0`` (0 below the normal range), vectorizable.

    Parameters
    ----------
    x : float32 or float64
        Argument, ``<= 0``.

    Returns
    -------
    float
        ``exp(x)`` in the type of ``x``.
    """
    scale, em1, _ = exp_parts(x)
    return scale + scale * em1


@njit(inline="always", cache=True, error_model="numpy")
def exp_and_expm1(x: float) -> tuple[float, float]:
    """``(exp(x), expm1(x))``, both to full relative precision, from one reduction.

    Parameters
    ----------
    x : float32 or float64
        Argument, ``<= 0`` in every use here (see :func:`exp_parts`).

    Returns
    -------
    (exp(x), expm1(x)) : tuple of two scalars of the type of ``x``
    """
    scale, em1, n = exp_parts(x)
    ex = scale + scale * em1
    return ex, (em1 if n == 0 else (scale - type(x)(1.0)) + scale * em1)


def log1p_unit(e: float) -> float:
    """``log1p(e)`` for ``e`` in [0, 1], vectorizable; jitted only.

    Parameters
    ----------
    e : float32 or float64
        Argument in [0, 1].

    Returns
    -------
    float
        ``log1p(e)`` in the type of ``e``.
    """


@overload(log1p_unit)
def _log1p_unit(e):
    # log1p(e) = 2 atanh(s): s = e / (2 + e), or ln 2 + 2 atanh((e - 1) / (e + 3)) for
    # e > sqrt(2) - 1; |s| <= 0.1716 and the odd series in s converges fast.
    coefs = {types.float32: _ATANH2_F32, types.float64: _ATANH2_F64}.get(e)
    if coefs is None:
        return None

    def impl(e):
        t = type(e)
        big = e > t(0.41421356237309503)
        s = (e - t(1.0) if big else e) / (e + t(3.0) if big else e + t(2.0))
        s2 = s * s
        p = coefs[0]
        for c in coefs[1:]:
            p = p * s2 + c
        return s * p + (t(_LN2) if big else t(0.0))

    def impl_f64(e):  # the same series in Estrin's order with fused multiply-adds
        big = e > 0.41421356237309503
        s = (e - 1.0 if big else e) / (e + 3.0 if big else e + 2.0)
        return fm.fma(s, _estrin12(s * s, _ATANH2_SERIES), _LN2 if big else 0.0)

    return impl_f64 if e == types.float64 else impl


@njit(inline="always", cache=True, error_model="numpy")
def sigmoid_parts(z: float) -> tuple[float, float, float]:
    """``(sigmoid(z), 1 - sigmoid(z), exp(-|z|))``, each accurate (no ``1 - s`` cancellation).

    Parameters
    ----------
    z : float32 or float64
        Argument; the results have its type.

    Returns
    -------
    (s, 1 - s, exp(-|z|)) : tuple of three scalars of the type of ``z``
    """
    e = fast_exp(-abs(z))
    q = type(z)(1.0) / (type(z)(1.0) + e)
    s_big = q  # sigmoid(|z|)
    s_small = e * q  # sigmoid(-|z|)
    return (s_big, s_small, e) if z >= 0 else (s_small, s_big, e)


@njit(inline="always", cache=True, error_model="numpy")
def _tanh_parts(z):
    """``(tanh(z), 1 - tanh(z)**2)`` via ``expm1(-2|z|)``, accurate in both tails."""
    one = type(z)(1.0)
    ex, em = exp_and_expm1(type(z)(-2.0) * abs(z))
    q = one / (one + ex)
    th = -em * q  # tanh(|z|), but -0.0 at z = 0: the sign is z's (tanh is odd)
    return math.copysign(th, z), type(z)(4.0) * ex * q * q


# ----------------------------------------------------------------------------- activations
# One function per activation: f(z, p0, p1) -> (value, derivative) in the type of
# z.  They are the only place each formula is written; activate() dispatches on
# the integer code, and the hot loops take the function itself.
_E = {"cache": True, "error_model": "numpy"}
_ACTIVATION_SECTIONS = """

    Parameters
    ----------
    z : float32 or float64
        Pre-activation.
    {params}

    Returns
    -------
    (value, derivative) : tuple of two scalars of the type of ``z``
    """


def _activation_doc(p0: str | None = None, p1: str | None = None) -> Callable:
    """Append the sections every activation shares to its one-line docstring.

    Parameters
    ----------
    p0, p1 : str, optional
        What the parameter means; both None: "unused".

    Returns
    -------
    callable
        A decorator returning the function itself, documented.
    """
    if p0 is None and p1 is None:
        params = "p0, p1 : float\n        Activation parameters; unused."
    else:
        params = f"p0 : float\n        {p0}\n    p1 : float\n        {p1}"

    def document(fn: Callable) -> Callable:
        fn.__doc__ = fn.__doc__ + _ACTIVATION_SECTIONS.format(params=params)
        return fn

    return document


@njit(**_E)
@_activation_doc()
def identity(z: float, p0: float, p1: float) -> tuple[float, float]:
    """``z``; derivative 1."""
    return z, type(z)(1.0)


@njit(**_E)
@_activation_doc()
def relu(z: float, p0: float, p1: float) -> tuple[float, float]:
    """``max(z, 0)``; derivative 1 for ``z > 0`` else 0; NaN stays NaN (PyTorch)."""
    t = type(z)
    return (t(0.0) if z <= 0 else z), (t(1.0) if z > 0 else t(0.0))


@njit(**_E)
@_activation_doc(p0="``negative_slope``.", p1="Unused.")
def leaky_relu(z: float, p0: float, p1: float) -> tuple[float, float]:
    """``z`` or ``negative_slope * z`` (``p0``); slope for ``z <= 0`` (PyTorch)."""
    slope = type(z)(p0)
    return (z, type(z)(1.0)) if z > 0 else (z * slope, slope)


@njit(**_E)
@_activation_doc()
def sigmoid(z: float, p0: float, p1: float) -> tuple[float, float]:
    """``1 / (1 + exp(-z))``; derivative ``s (1 - s)`` with both factors accurate."""
    s, rest, _ = sigmoid_parts(z)
    return s, s * rest


@njit(**_E)
@_activation_doc()
def tanh(z: float, p0: float, p1: float) -> tuple[float, float]:
    """``tanh(z)``; derivative ``1 - tanh(z)**2``."""
    return _tanh_parts(z)


@njit(**_E)
@_activation_doc(p0="``alpha``.", p1="Unused.")
def elu(z: float, p0: float, p1: float) -> tuple[float, float]:
    """``z`` or ``alpha (exp(z) - 1)`` with ``alpha = p0``; derivative ``alpha exp(z)``."""
    t = type(z)
    ex, em = exp_and_expm1(fm.min2(z, t(0.0)))
    alpha = t(p0)
    return (z, t(1.0)) if z > 0 else (alpha * em, alpha * ex)


@njit(**_E)
@_activation_doc()
def selu(z: float, p0: float, p1: float) -> tuple[float, float]:
    """``scale * elu(z, alpha)`` with PyTorch's constants."""
    value, slope = elu(z, _SELU_ALPHA, p1)
    scale = type(z)(_SELU_SCALE)
    return scale * value, scale * slope


@njit(**_E)
@_activation_doc()
def gelu(z: float, p0: float, p1: float) -> tuple[float, float]:
    """``z Phi(z)`` (exact erf form); derivative ``Phi(z) + z phi(z)``.

    ``Phi(z) = erfc(-z / sqrt 2) / 2``: the same function as ``(1 + erf(z / sqrt 2)) / 2``
    without its cancellation, which made ``Phi`` 0 for ``z < -5.9`` (float64; -3.9 in
    float32) where it is 1e-9 or more.
    """
    t = type(z)
    cdf = t(0.5) * math.erfc(-z * t(_SQRT_HALF))
    pdf = t(_INV_SQRT_2PI) * fast_exp(t(-0.5) * z * z)
    return z * cdf, cdf + z * pdf


@njit(**_E)
@_activation_doc()
def gelu_tanh(z: float, p0: float, p1: float) -> tuple[float, float]:
    """``0.5 z (1 + tanh(u))``, ``u = sqrt(2/pi) (z + 0.044715 z**3)`` (cubic on z in [-25, 25])."""
    t = type(z)
    one, half = t(1.0), t(0.5)
    zc = fm.clamp(z, t(-_GELU_CLAMP), t(_GELU_CLAMP))
    k, c = t(_GELU_K), t(_GELU_C)
    th, dth = _tanh_parts(k * (zc + c * zc * zc * zc))
    return half * z * (one + th), half * (one + th) + half * zc * dth * k * (
        one + t(3.0) * c * zc * zc
    )


@njit(**_E)
@_activation_doc(
    p0="``beta``, > 0.",
    p1="``threshold``: above it (in ``beta z``) the value is ``z``, the derivative 1.",
)
def softplus(z: float, p0: float, p1: float) -> tuple[float, float]:
    """``log(1 + exp(beta z)) / beta`` (``beta = p0``), ``z`` where ``beta z > p1``."""
    t = type(z)
    beta = t(p0)
    bz = beta * z
    s, _, e = sigmoid_parts(bz)
    if bz > t(p1):
        return z, t(1.0)
    return (fm.max2(bz, t(0.0)) + log1p_unit(e)) / beta, s


@njit(**_E)
@_activation_doc()
def silu(z: float, p0: float, p1: float) -> tuple[float, float]:
    """``z sigmoid(z)``; derivative ``s (1 + z (1 - s))``."""
    s, rest, _ = sigmoid_parts(z)
    return z * s, s * (type(z)(1.0) + z * rest)


@njit(**_E)
def activate(code: int, p0: float, p1: float, z: float) -> tuple[float, float]:
    """Value and derivative of activation ``code`` at ``z``.

    A scalar formula for compiled code.  Called from Python, each new
    combination of argument types (an np.int32 code, a float32 ``p0``) compiles
    it once more, numba's rule; for arrays, :func:`apply` is the Python entry.

    Parameters
    ----------
    code : int
        Activation code (module constants ``IDENTITY`` ... ``SILU``).
    p0, p1 : float
        Its parameters in the order of the table above (unused ones ignored).
    z : float32 or float64
        Pre-activation; the results have its type.

    Returns
    -------
    (value, derivative) : tuple of two scalars of the type of ``z``
    """
    if code == RELU:
        return relu(z, p0, p1)
    if code == TANH:
        return tanh(z, p0, p1)
    if code == SIGMOID:
        return sigmoid(z, p0, p1)
    if code == IDENTITY:
        return identity(z, p0, p1)
    if code == LEAKY_RELU:
        return leaky_relu(z, p0, p1)
    if code == ELU:
        return elu(z, p0, p1)
    if code == SELU:
        return selu(z, p0, p1)
    if code == GELU:
        return gelu(z, p0, p1)
    if code == GELU_TANH:
        return gelu_tanh(z, p0, p1)
    if code == SOFTPLUS:
        return softplus(z, p0, p1)
    return silu(z, p0, p1)


# ----------------------------------------------------------------------------- kernels
# Every loop applying an activation (the dense forward pass, the feature-major
# kernels of fastinit.narrow, apply()) calls one compiled kernel per
# (activation, dtype) through its address (call_bias_activate, call_activate).
# A kernel is compiled, or loaded from numba's cache, the first time something
# uses its activation: a ReLU network compiles the ReLU loop only, and the
# training loop that calls the kernels stays one compiled function for every
# activation.  The loop reads ``d`` and writes ``z``, so the stores are
# unconditional and it vectorizes (an in-place ``z = max(z, 0)`` became a
# conditional store that LLVM did not vectorize, 3x slower, measured).
_FUNCTIONS = (identity, sigmoid, tanh, relu, leaky_relu, elu, selu, gelu, gelu_tanh, softplus, silu)
_by_code = dispatch_by_code(_FUNCTIONS, "activation_by_code")  # f(code, z, p0, p1)


@kernel_factory
def activation_kernel(code: int, dtype: Any) -> int:
    """Address of the compiled ``z = f(d + b)``, ``d = f'(d + b)`` for one activation.

    Parameters
    ----------
    code : int
        Activation code (``IDENTITY`` ... ``SILU``).
    dtype : numpy.dtype or str
        float32 or float64.

    Returns
    -------
    int
        Address of a C function ``void(z, d, b, m, n, p0, p1, with_bias)``:
        ``z`` and ``d`` point to C-contiguous (m, n) arrays, ``b`` to n biases,
        ``p0, p1`` are the activation's parameters (float64).  With ``with_bias``
        the bias is first added to ``d`` row by row; then ``f`` runs over the
        flat arrays, so the loop vectorizes whatever ``n`` is (with ``n = 4`` a
        row-wise loop was 5x slower).  For the identity ``z = d`` and ``d`` is
        kept (not replaced by ones): the backward pass skips its derivative
        (:func:`fastinit.dense.dense_backward`).  The address is valid for the
        life of the process; the kernel is compiled once per (code, dtype) and
        cached on disk.
    """
    item = pointer_to(dtype)
    i64, f64 = types.int64, types.float64
    sig = types.void(item, item, item, i64, i64, f64, f64, i64)

    def kernel(z_ptr, d_ptr, b_ptr, m, n, p0, p1, with_bias):
        z = carray(z_ptr, (m * n,))
        d = carray(d_ptr, (m * n,))
        if with_bias:
            b = carray(b_ptr, (n,))
            for i in range(m):
                for j in range(n):
                    d[i * n + j] += b[j]
        if code == IDENTITY:  # a constant: numba prunes the other branch
            for i in range(m * n):
                z[i] = d[i]
        else:
            for i in range(m * n):
                z[i], d[i] = _by_code(code, d[i], p0, p1)

    return compile_kernel(kernel, sig)


@njit(inline="always", **_E)
def call_bias_activate(
    kernel: int, z: np.ndarray, d: np.ndarray, b: np.ndarray, p0: float, p1: float
) -> None:
    """``z = f(d + b)``, ``d = f'(d + b)`` on C-contiguous (m, n) ``z, d`` and (n,) ``b``.

    ``kernel`` is the address of the activation's kernel
    (:func:`activation_kernel`; a layer table's ``KERNEL`` column).

    Parameters
    ----------
    kernel : int
        Address from :func:`activation_kernel` for the activation and the dtype
        of ``z``; 0 raises ``ValueError``.
    z : (m, n) C-contiguous array
        Receives the activations.
    d : (m, n) C-contiguous array of the dtype of ``z``
        Pre-activations without the bias; overwritten by the derivatives (for
        the identity, by ``d + b``).
    b : (n,) array of the dtype of ``z``
        Biases, added to each row of ``d``.
    p0, p1 : float
        The activation's parameters (float64).
    """
    if kernel == 0:
        raise ValueError("no activation kernel: fill the layer table with dense.with_kernels")
    call_void(kernel, (z, d, b, z.shape[0], z.shape[1], float(p0), float(p1), 1))


@njit(inline="always", **_E)
def call_activate(kernel: int, z: np.ndarray, d: np.ndarray, p0: float, p1: float) -> None:
    """``z = f(d)``, ``d = f'(d)`` on C-contiguous flat arrays (the identity keeps ``d``).

    Parameters
    ----------
    kernel : int
        Address from :func:`activation_kernel` for the activation and the dtype
        of ``z``; 0 raises ``ValueError``.
    z : 1-D C-contiguous array
        Receives the activations.
    d : 1-D C-contiguous array of the size and dtype of ``z``
        Pre-activations; overwritten by the derivatives (kept for the identity).
    p0, p1 : float
        The activation's parameters (float64).
    """
    if kernel == 0:
        raise ValueError("no activation kernel: fill the layer table with dense.with_kernels")
    call_void(kernel, (z, d, d, z.shape[0], 1, float(p0), float(p1), 0))


@njit(**_E)
def _apply(kernel, value, deriv, p0, p1):
    call_activate(kernel, value, deriv, p0, p1)


# ----------------------------------------------------------------------------- Python side
@dataclass(frozen=True)
class Activation:
    """An activation by name with its parameters, lowered to ``(code, p0, p1)``.

    Attributes
    ----------
    name : str
        Canonical name (aliases resolved).
    params : dict
        Parameter values by PyTorch name, defaults filled in.
    """

    name: str
    params: dict[str, float] = field(default_factory=dict)

    @property
    def code(self) -> int:
        """Integer code used inside compiled kernels."""
        return _SPECS[self.name][0]

    @property
    def values(self) -> tuple[float, float]:
        """The parameters as ``(p0, p1)`` (0.0 where unused)."""
        vals = [float(self.params[k]) for k, _ in _SPECS[self.name][1]]
        return tuple([*vals, 0.0, 0.0][:2])


def get(spec: Any, name: str = "activation", **params: float) -> Activation:
    """Resolve an activation from a name, a ``(name, params)`` pair or an Activation.

    Parameters
    ----------
    spec : str, tuple or Activation
        ``"relu"``, ``("leaky_relu", {"negative_slope": 0.2})`` or an
        :class:`Activation`.  Names are case-insensitive; aliases: ``linear``
        (identity), ``swish`` (silu).
    name : str
        Argument name used in error messages.
    **params : float
        Parameters (PyTorch names), merged over those in ``spec``.

    Returns
    -------
    Activation
    """
    if isinstance(spec, Activation):
        spec = (spec.name, spec.params)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], dict):
        spec, params = spec[0], {**spec[1], **params}
    if not isinstance(spec, str) or spec.lower() not in (*_SPECS, *_ALIASES):
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, NAMES))}, got {spec!r}")
    key = _ALIASES.get(spec.lower(), spec.lower())
    allowed = dict(_SPECS[key][1])
    unknown = set(params) - set(allowed)
    if unknown:
        raise ValueError(
            f"{name}: {key!r} takes parameters {sorted(allowed)}, got {sorted(unknown)}"
        )
    merged = {k: check_finite(params.get(k, d), f"{name}.{k}") for k, d in allowed.items()}
    if key == "softplus":
        check_positive(merged["beta"], f"{name}.beta")
    return Activation(key, merged)


def from_values(name: str, values: Any, arg: str = "activation") -> Activation:
    """The activation ``name`` with parameters given positionally as ``(p0, p1)``.

    Parameters
    ----------
    name : str
        Canonical activation name (no aliases, case-sensitive).
    values : iterable of float
        The parameters in the order of the module table, e.g. ``Activation.values``;
        values beyond the activation's parameters are ignored, missing ones take
        their defaults.
    arg : str
        Argument name used in error messages.

    Returns
    -------
    Activation
    """
    if name not in _SPECS:
        raise ValueError(f"{arg}: unknown activation {name!r}")
    keys = [k for k, _ in _SPECS[name][1]]
    return get((name, dict(zip(keys, (float(v) for v in values), strict=False))), arg)


def name_of_code(code: int) -> str:
    """Canonical name of an activation code.

    Parameters
    ----------
    code : int
        Activation code (``IDENTITY`` ... ``SILU``).

    Returns
    -------
    str
        The canonical name, e.g. ``"relu"``.
    """
    return _NAME_OF_CODE[int(code)]


def real_input(x: Any, name: str = "x") -> np.ndarray:
    """``x`` as a float32 or float64 array (other real dtypes as float64) for :func:`apply`.

    Parameters
    ----------
    x : array_like
        Bool, integer or float values (also held as Python objects).
    name : str
        The argument's name in error messages.

    Returns
    -------
    numpy.ndarray
        ``x`` itself where it is float32 or float64, else a float64 copy.

    Raises
    ------
    ValueError
        If ``x`` is not a real array (complex, text, objects), naming ``name``.
    """
    x = as_array(x, name, "a real array")
    real = (int, float, np.integer, np.floating, np.bool_)  # bool is an int
    if x.dtype.kind == "O" and all(isinstance(v, real) for v in x.flat):
        return x.astype(np.float64)  # numbers held as Python objects (None is no number)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected a real (bool, integer or float) array, got {x.dtype}")
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def apply(
    x: np.ndarray, activation: Any = "relu", **params: float
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate an activation and its derivative element-wise with the compiled formulas.

    Parameters
    ----------
    x : numpy.ndarray
        float32 or float64 array of any shape (other real dtypes become float64).
    activation : str, tuple or Activation
        See :func:`get`.
    **params : float
        Activation parameters (PyTorch names).

    Returns
    -------
    value, derivative : numpy.ndarray
        ``f(x)`` and ``f'(x)``, shaped and typed like ``x``.

    Raises
    ------
    ValueError
        If ``x`` is not a real (bool, integer or float) array.
    """
    act = get(activation, **params)
    x = real_input(x)
    deriv = np.array(x, order="C").reshape(-1)  # a fresh writeable copy: the input
    value = np.empty_like(deriv)
    _apply(activation_kernel(act.code, x.dtype), value, deriv, *act.values)
    if act.code == IDENTITY:  # the kernel keeps d for the backward pass; f' is 1
        deriv[:] = 1
    return value.reshape(x.shape), deriv.reshape(x.shape)
