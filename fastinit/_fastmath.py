"""Branch-free float32 approximations of log, sin/cos and erfinv.

The llvmlite wheels carry no SVML, so numba cannot vectorize calls to ``math.log``
or ``math.sin``: each becomes a scalar libm call.  The fill kernels in
:mod:`fastinit.random` need those functions on every element, so this module
gives float32 versions built only from +, -, *, /, ``sqrt`` and comparisons.
LLVM vectorizes them, and the same source compiles for ``numba.cuda``.

Error bounds (measured against float64 ``math`` over the whole input range, and
checked by ``tests/test_fastmath.py``):

==============  =======================  ==========================
function        domain                   max error
==============  =======================  ==========================
``log_f32``     [2**-31, 1]              2e-7 relative (8e-8 measured)
``sincos_2pi``  integer phase in [0,2^24)  2e-7 absolute (1.1e-7 measured)
``erfinv_f32``  (-1, 1)                  1e-6 relative (2.6e-7 measured)
==============  =======================  ==========================

The polynomials are Cephes' single-precision ones (S. Moshier) for log, sin and
cos, and M. Giles, "Approximating the erfinv function", GPU Computing Gems
(2011), for erfinv.
"""

from __future__ import annotations

import numpy as np
from numba import njit

F = np.float32
_LN2_HI = F(0.693359375)  # ln 2 split in two (Cephes) so e * ln 2 stays exact
_LN2_LO = F(-2.12194440e-4)
_SQRT_HALF = F(0.7071067811865476)
_HALF = F(0.5)
_ONE = F(1.0)
_TWO = F(2.0)
_ZERO = F(0.0)

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
_P16, _P8, _P4, _P2, _P1 = F(2.0**16), F(2.0**8), F(2.0**4), F(2.0**2), F(2.0)
_T16, _T8, _T4, _T2, _T1 = F(2.0**-16), F(2.0**-8), F(2.0**-4), F(2.0**-2), F(2.0**-1)


@njit(inline="always", cache=True)
def log_f32(y):
    """Natural log of a float32 ``y`` in [2**-31, 1], without branches or libm.

    The exponent is found by five compare-and-scale steps (exact powers of two),
    the mantissa is brought into [sqrt(1/2), sqrt(2)) and Cephes' polynomial
    for ``log(1 + x)`` does the rest.
    """
    e = _ZERO
    c = y < _T16
    y = y * _P16 if c else y
    e = e - F(16.0) if c else e
    c = y < _T8
    y = y * _P8 if c else y
    e = e - F(8.0) if c else e
    c = y < _T4
    y = y * _P4 if c else y
    e = e - F(4.0) if c else e
    c = y < _T2
    y = y * _P2 if c else y
    e = e - F(2.0) if c else e
    c = y < _T1
    y = y * _P1 if c else y
    e = e - _ONE if c else e
    # now y in [0.5, 1]
    c = y < _SQRT_HALF
    y = y * _TWO if c else y
    e = e - _ONE if c else e
    x = y - _ONE
    z = x * x
    p = _L[0]
    p = p * x + _L[1]
    p = p * x + _L[2]
    p = p * x + _L[3]
    p = p * x + _L[4]
    p = p * x + _L[5]
    p = p * x + _L[6]
    p = p * x + _L[7]
    p = p * x + _L[8]
    r = x * z * p + e * _LN2_LO - _HALF * z
    return x + r + e * _LN2_HI


_S1, _S2, _S3 = F(-1.6666654611e-1), F(8.3321608736e-3), F(-1.9515295891e-4)
_C1, _C2, _C3 = F(4.166664568298827e-2), F(-1.388731625493765e-3), F(2.443315711809948e-5)
_QUARTER_TURN = F(np.pi / 2.0 / 2.0**22)  # radians per unit of a 2**22 quadrant


@njit(inline="always", cache=True)
def sincos_2pi(k):
    """``(cos, sin)`` of ``2*pi*k / 2**24`` for an integer phase ``k`` in [0, 2**24).

    The quadrant and the remainder are split exactly in integers, so the
    polynomial only ever sees an angle in [-pi/4, pi/4].
    """
    k = np.int32(k)
    q = (k + np.int32(1 << 21)) >> np.int32(22)
    rem = k - (q << np.int32(22))
    x = F(rem) * _QUARTER_TURN
    z = x * x
    s = x + x * z * (_S1 + z * (_S2 + z * _S3))
    c = _ONE - _HALF * z + z * z * (_C1 + z * (_C2 + z * _C3))
    # rotate (c, s) by q quarter turns: odd q swaps (c, s) -> (-s, c), q & 2 negates
    odd = (q & np.int32(1)) != np.int32(0)
    cos_t = -s if odd else c
    sin_t = c if odd else s
    neg = (q & np.int32(2)) != np.int32(0)
    cos_t = -cos_t if neg else cos_t
    sin_t = -sin_t if neg else sin_t
    return cos_t, sin_t


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


@njit(inline="always", cache=True)
def erfinv_f32(x):
    """Inverse error function of a float32 ``x`` in (-1, 1) (Giles 2011).

    Both of Giles' branches are evaluated and one is selected, so the loop that
    calls this stays branch-free and vectorizes.
    """
    w = -log_f32((_ONE - x) * (_ONE + x))
    a = w - _TWO_HALF
    p = _E1[0]
    p = p * a + _E1[1]
    p = p * a + _E1[2]
    p = p * a + _E1[3]
    p = p * a + _E1[4]
    p = p * a + _E1[5]
    p = p * a + _E1[6]
    p = p * a + _E1[7]
    p = p * a + _E1[8]
    b = np.sqrt(w) - _THREE
    q = _E2[0]
    q = q * b + _E2[1]
    q = q * b + _E2[2]
    q = q * b + _E2[3]
    q = q * b + _E2[4]
    q = q * b + _E2[5]
    q = q * b + _E2[6]
    q = q * b + _E2[7]
    q = q * b + _E2[8]
    return (p if w < _FIVE else q) * x
