"""Branch-free float32 approximations of log, sin/cos and erfinv.

The llvmlite wheels carry no SVML, so numba cannot vectorize calls to ``math.log``
or ``math.sin``: each becomes a scalar libm call.  The fill kernels in
:mod:`fastinit.random` need those functions on every element, so this module
gives float32 versions built only from +, -, *, fused multiply-add, ``sqrt``,
comparisons and integer operations on the float's bits.  LLVM vectorizes them
(8 lanes with AVX2).

Two small LLVM intrinsics make that cheap: :func:`fma` (``llvm.fma``, float32
or float64 (the float64 exp and log1p of :mod:`fastinit.activations` use it), one
rounding, so the polynomials take one instruction per coefficient and give the
same bits on every machine; without hardware FMA it is a libm call) and the
bit casts :func:`float_bits` / :func:`bits_float` (free), which give ``log_f32``
its exponent directly instead of by a chain of compare-and-scale steps.

Error bounds (measured against float64 ``math`` over the whole input range, and
checked by ``tests/test_fastmath.py``):

======================  =========================  ================================
function                domain                     max error
======================  =========================  ================================
``log_f32``             [2**-126, 1] (normal)      2e-7 relative (8.3e-8 measured)
``sincos_2pi``          integer phase in [0,2^24)  2e-7 absolute (1.1e-7 measured)
``erfinv_f32``          (-1, 1)                    1e-6 relative (2.6e-7 measured)
``erfinv_central_f32``  [-0.99, 0.99]              1e-6 relative (2.6e-7 measured)
======================  =========================  ================================

The polynomials are Cephes' single-precision ones (S. Moshier) for log, sin and
cos, and M. Giles, "Approximating the erfinv function", GPU Computing Gems
(2011), for erfinv.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from fastinit import _cache, _first_use

_cache.install()  # numba's cache saves, safe between processes (before anything compiles)
_first_use.install()  # numba's first use without importing scipy.linalg

F = np.float32


# ----------------------------------------------------------------------------- intrinsics
@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` with a single rounding (float32 or float64), ``llvm.fma``."""
    if not (a == b == c and a in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        ft = ir.FloatType() if a == types.float32 else ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [ft], ir.FunctionType(ft, [ft] * 3))
        return builder.call(fn, args)

    return a(a, a, a), codegen


@intrinsic
def float_bits(typingctx, x):
    """The IEEE bits of a float32 as an int32, of a float64 as an int64 (a free bit cast)."""
    width = {types.float32: 32, types.float64: 64}.get(x)
    if width is None:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(width))

    return (types.int32 if width == 32 else types.int64)(x), codegen


@intrinsic
def bits_float(typingctx, i):
    """The float32 whose IEEE bits are the int32 ``i``, or float64 of an int64 (a free bit cast)."""
    if i not in (types.int32, types.int64):
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType() if i == types.int32 else ir.DoubleType())

    return (types.float32 if i == types.int32 else types.float64)(i), codegen


# min/max as numba's builtins evaluate them (``max(a, b)`` is ``b if b > a else a``:
# the same values, NaN included), written out: the builtins are overloads that
# numba compiles as functions of their own, once per argument type and process
# (about 0.05-0.1 s each on an empty cache).
@njit(inline="always", cache=True)
def max2(a: float, b: float) -> float:
    """``max(a, b)`` (numba's builtin semantics)."""
    return b if b > a else a


@njit(inline="always", cache=True)
def min2(a: float, b: float) -> float:
    """``min(a, b)`` (numba's builtin semantics)."""
    return b if b < a else a


@njit(inline="always", cache=True)
def clamp(x: float, lo: float, hi: float) -> float:
    """``min(max(x, lo), hi)`` (numba's builtin semantics)."""
    return min2(max2(x, lo), hi)


@njit(inline="always", cache=True)
def sum4(v: np.ndarray, shift: float, square: bool) -> float:
    """``sum(v - shift)`` or ``sum((v - shift)**2)`` in float64, four independent chains.

    Four partial sums (elements ``i mod 4``) instead of one, so consecutive
    additions do not wait on each other; the order is fixed, so the result is
    deterministic (and independent of the thread count).  The mean losses and
    the layer statistics of training both sum this way.
    """
    n = v.shape[0]
    n4 = n - n % 4
    s0 = s1 = s2 = s3 = 0.0
    for i in range(0, n4, 4):
        e0, e1, e2, e3 = v[i] - shift, v[i + 1] - shift, v[i + 2] - shift, v[i + 3] - shift
        if square:
            e0, e1, e2, e3 = e0 * e0, e1 * e1, e2 * e2, e3 * e3
        s0 += e0
        s1 += e1
        s2 += e2
        s3 += e3
    for i in range(n4, n):
        e = v[i] - shift
        s0 += e * e if square else e
    return (s0 + s1) + (s2 + s3)


@njit(inline="always", cache=True)
def _horner(x, c):
    """``c[0] x^(n-1) + ... + c[n-1]`` by Horner's rule with FMAs (``c`` a tuple)."""
    p = c[0]
    for i in range(1, len(c)):  # a tuple's length is a constant: LLVM unrolls
        p = fma(p, x, c[i])
    return p


# ----------------------------------------------------------------------------- log
_LN2_HI = F(0.693359375)  # ln 2 split in two (Cephes) so e * ln 2 stays exact
_LN2_LO = F(-2.12194440e-4)
_HALF = F(0.5)
_ONE = F(1.0)

# Cephes logf polynomial for log(1 + x), x in [sqrt(0.5) - 1, sqrt(2) - 1].
_L = tuple(
    F(c)
    for c in (
        7.0376836292e-2,
        -1.1514610310e-1,
        1.1676998740e-1,
        -1.2420140846e-1,
        1.4249322787e-1,
        -1.6668057665e-1,
        2.0000714765e-1,
        -2.4999993993e-1,
        3.3333331174e-1,
    )
)
_MANTISSA = np.int32(0x007FFFFF)
_SQRT_HALF_BITS = np.int32(0x3F3504F3)  # bits of float32(sqrt(0.5))
_BIAS_SHIFT = np.int32(0x3F800000 - 0x3F3504F3)  # bits of 1.0 minus those of sqrt(0.5)
_I23 = np.int32(23)
_I127 = np.int32(127)


@njit(inline="always", cache=True)
def log_f32(y: float) -> float:
    """Natural log of a normal positive float32 ``y`` (used on [2**-126, 1]).

    ``y = m * 2**e`` with ``m`` in [sqrt(1/2), sqrt(2)) is read off the bits in
    integers: shifting them by ``bits(1) - bits(sqrt(1/2))`` carries into the
    exponent exactly when the mantissa is at least sqrt(1/2)'s (no compare, no
    select).  Cephes' polynomial for ``log(1 + x)``, ``x = m - 1``, does the rest.
    """
    i = np.int32(float_bits(y) + _BIAS_SHIFT)
    e = F(np.int32((i >> _I23) - _I127))
    m = bits_float(np.int32((i & _MANTISSA) + _SQRT_HALF_BITS))
    x = m - _ONE
    z = x * x
    r = fma(x * z, _horner(x, _L), fma(e, _LN2_LO, -_HALF * z))
    return fma(e, _LN2_HI, x + r)


# ----------------------------------------------------------------------------- sin, cos
_S = (F(-1.9515295891e-4), F(8.3321608736e-3), F(-1.6666654611e-1))
_C = (F(2.443315711809948e-5), F(-1.388731625493765e-3), F(4.166664568298827e-2))
_QUARTER_TURN = F(np.pi / 2.0 / 2.0**22)  # radians per unit of a 2**22 quadrant
_I1, _I2, _I22 = np.int32(1), np.int32(2), np.int32(22)
_I0 = np.int32(0)
_HALF_QUADRANT = np.int32(1 << 21)


@njit(inline="always", cache=True)
def sincos_2pi(k: int) -> tuple[float, float]:
    """``(cos, sin)`` of ``2*pi*k / 2**24`` for an integer phase ``k`` in [0, 2**24).

    The quadrant and the remainder are split exactly in integers, so the
    polynomial only ever sees an angle in [-pi/4, pi/4].  Every integer is cast
    back to int32: numba widens int32 arithmetic to int64, and int64 -> float32
    has no AVX2 instruction (it would be done lane by lane).
    """
    k = np.int32(k)
    q = np.int32((k + _HALF_QUADRANT) >> _I22)
    rem = np.int32(k - (q << _I22))
    x = F(rem) * _QUARTER_TURN
    z = x * x
    s = fma(x * z, _horner(z, _S), x)
    c = fma(z * z, _horner(z, _C), fma(-_HALF, z, _ONE))
    # rotate (c, s) by q quarter turns: odd q swaps (c, s) -> (-s, c), q & 2 negates
    odd = np.int32(q & _I1) != _I0
    cos_t = -s if odd else c
    sin_t = c if odd else s
    neg = np.int32(q & _I2) != _I0
    cos_t = -cos_t if neg else cos_t
    sin_t = -sin_t if neg else sin_t
    return cos_t, sin_t


# ----------------------------------------------------------------------------- erfinv
_E1 = tuple(
    F(c)
    for c in (
        2.81022636e-08,
        3.43273939e-07,
        -3.5233877e-06,
        -4.39150654e-06,
        0.00021858087,
        -0.00125372503,
        -0.00417768164,
        0.246640727,
        1.50140941,
    )
)
_E2 = tuple(
    F(c)
    for c in (
        -0.000200214257,
        0.000100950558,
        0.00134934322,
        -0.00367342844,
        0.00573950773,
        -0.0076224613,
        0.00943887047,
        1.00167406,
        2.83297682,
    )
)
_FIVE = F(5.0)
_TWO_HALF = F(2.5)
_THREE = F(3.0)
CENTRAL_MAX = 0.99  # |x| <= this keeps w = -log(1 - x^2) < 3.92, inside Giles' w < 5


@njit(inline="always", cache=True)
def erfinv_f32(x: float) -> float:
    """Inverse error function of a float32 ``x`` in (-1, 1) (Giles 2011).

    Both of Giles' branches are evaluated and one is selected, so the loop that
    calls this stays branch-free and vectorizes.
    """
    w = -log_f32(fma(-x, x, _ONE))  # 1 - x^2, one rounding
    p = _horner(w - _TWO_HALF, _E1)
    q = _horner(np.sqrt(w) - _THREE, _E2)
    return (p if w < _FIVE else q) * x


@njit(inline="always", cache=True)
def erfinv_central_f32(x: float) -> float:
    """:func:`erfinv_f32` for ``|x| <= CENTRAL_MAX`` only: Giles' central branch.

    Half the work of :func:`erfinv_f32` (no square root, no second polynomial)
    and the same value wherever it applies; for truncations within about 2.5
    standard deviations, such as Keras' (+-2), every draw is in range.
    """
    w = -log_f32(fma(-x, x, _ONE))
    return _horner(w - _TWO_HALF, _E1) * x
