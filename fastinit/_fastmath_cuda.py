"""CUDA twins of :mod:`fastinit._fastmath`: the same float32 polynomials, same bits.

Import this module only after :func:`fastinit._cuda.check_device` said ``"cuda"``
(it imports ``numba.cuda`` at import time).  Nothing is compiled at import.

Every device function here repeats, operation for operation, its CPU twin in
:mod:`fastinit._fastmath` and reads the same coefficient tuples from it, so the
polynomials have one source.  What makes the GPU round exactly as the CPU does
(see :mod:`fastinit.random_cuda` for the whole argument):

* every float operation goes through one of the primitives below: ``fmaf``
  (``fma.rn.f32``, where the CPU calls ``llvm.fma.f32``), ``fmul``/``fadd``/
  ``fsub`` (``__nv_fmul_rn``... -> ``mul.rn.f32``, ``add.rn.f32``: an explicit
  rounding mode, which NVVM and ptxas never contract into an FMA, unlike a plain
  ``a * b + c``), ``fsqrt`` (``__nv_fsqrt_rn``, IEEE ``sqrt.rn.f32`` whatever
  ``prec_sqrt`` says) and the bit casts ``float_bits``/``bits_float``;
* no ``fastmath``: NVVM's defaults keep denormals (``-ftz=0``);
* no libm/libdevice transcendental is called: log, sin/cos and erfinv are the
  ported polynomials.

Under the CUDA simulator the primitives are Python functions with the same
IEEE results (numpy float32 scalars round once per operation; ``fmaf`` rounds
the exact product-sum to odd in float64 first, which makes the final rounding
to float32 exact).
"""

from __future__ import annotations

import math

import numpy as np

from fastinit import _fastmath as fm
from fastinit._cuda import cuda_module, simulator_enabled

cuda = cuda_module()

F = np.float32
_I32 = np.int32

if simulator_enabled():

    def _sim_fmaf(a, b, c):
        p = float(a) * float(b)  # exact: 24 + 24 bits fit in 53
        c = float(c)
        s = p + c
        t = s - p
        err = (p - (s - t)) + (c - t)  # TwoSum: p + c == s + err exactly
        if err != 0.0 and (np.float64(s).view(np.int64) & 1) == 0:
            s = math.nextafter(s, math.inf if err > 0.0 else -math.inf)  # round to odd
        return F(s)

    fmaf = cuda.jit(device=True)(_sim_fmaf)

    @cuda.jit(device=True)
    def fmul(a, b):
        """float32 ``a * b``, rounded once, never fused."""
        return F(a) * F(b)

    @cuda.jit(device=True)
    def fadd(a, b):
        """float32 ``a + b``, rounded once, never fused."""
        return F(a) + F(b)

    @cuda.jit(device=True)
    def fsub(a, b):
        """float32 ``a - b``, rounded once, never fused."""
        return F(a) - F(b)

    @cuda.jit(device=True)
    def fsqrt(a):
        """IEEE float32 square root."""
        return np.sqrt(F(a))

    @cuda.jit(device=True)
    def dmul(a, b):
        """float64 ``a * b``, rounded once, never fused."""
        return np.float64(a) * np.float64(b)

    @cuda.jit(device=True)
    def dadd(a, b):
        """float64 ``a + b``, rounded once, never fused."""
        return np.float64(a) + np.float64(b)

    @cuda.jit(device=True)
    def float_bits(x):
        """The IEEE bits of a float32 as an int32."""
        return F(x).view(np.int32)

    @cuda.jit(device=True)
    def bits_float(i):
        """The float32 whose IEEE bits are the int32 ``i``."""
        return _I32(i).view(np.float32)

else:  # pragma: no cover - needs a GPU
    from numba.cuda import libdevice

    @cuda.jit(device=True, forceinline=True)
    def fmaf(a, b, c):
        """float32 ``a * b + c`` with one rounding (``fma.rn.f32``)."""
        return libdevice.fmaf(a, b, c)

    @cuda.jit(device=True, forceinline=True)
    def fmul(a, b):
        """float32 ``a * b``, rounded once, never fused (``mul.rn.f32``)."""
        return libdevice.fmul_rn(a, b)

    @cuda.jit(device=True, forceinline=True)
    def fadd(a, b):
        """float32 ``a + b``, rounded once, never fused (``add.rn.f32``)."""
        return libdevice.fadd_rn(a, b)

    @cuda.jit(device=True, forceinline=True)
    def fsub(a, b):
        """float32 ``a - b``, rounded once, never fused (``sub.rn.f32``)."""
        return libdevice.fsub_rn(a, b)

    @cuda.jit(device=True, forceinline=True)
    def fsqrt(a):
        """IEEE float32 square root (``sqrt.rn.f32``)."""
        return libdevice.fsqrt_rn(a)

    @cuda.jit(device=True, forceinline=True)
    def dmul(a, b):
        """float64 ``a * b``, rounded once, never fused (``mul.rn.f64``)."""
        return libdevice.dmul_rn(a, b)

    @cuda.jit(device=True, forceinline=True)
    def dadd(a, b):
        """float64 ``a + b``, rounded once, never fused (``add.rn.f64``)."""
        return libdevice.dadd_rn(a, b)

    @cuda.jit(device=True, forceinline=True)
    def float_bits(x):
        """The IEEE bits of a float32 as an int32."""
        return libdevice.float_as_int(x)

    @cuda.jit(device=True, forceinline=True)
    def bits_float(i):
        """The float32 whose IEEE bits are the int32 ``i``."""
        return libdevice.int_as_float(i)


# ----------------------------------------------------------------------------- polynomials
# The coefficient tuples of the CPU module, unrolled by hand (a device function
# cannot loop over a global tuple portably between the simulator and NVVM).
_L0, _L1, _L2, _L3, _L4, _L5, _L6, _L7, _L8 = fm._L
_S0, _S1, _S2 = fm._S
_C0, _C1, _C2 = fm._C
_E10, _E11, _E12, _E13, _E14, _E15, _E16, _E17, _E18 = fm._E1
_E20, _E21, _E22, _E23, _E24, _E25, _E26, _E27, _E28 = fm._E2


@cuda.jit(device=True)
def _horner3(x, c0, c1, c2):
    return fmaf(fmaf(c0, x, c1), x, c2)


@cuda.jit(device=True)
def _horner9(x, c0, c1, c2, c3, c4, c5, c6, c7, c8):
    p = fmaf(c0, x, c1)
    p = fmaf(p, x, c2)
    p = fmaf(p, x, c3)
    p = fmaf(p, x, c4)
    p = fmaf(p, x, c5)
    p = fmaf(p, x, c6)
    p = fmaf(p, x, c7)
    return fmaf(p, x, c8)


@cuda.jit(device=True)
def log_f32(y):
    """Twin of :func:`fastinit._fastmath.log_f32` (natural log, y in [2**-126, 1])."""
    i = _I32(float_bits(y) + fm._BIAS_SHIFT)
    e = F(_I32((i >> fm._I23) - fm._I127))
    m = bits_float(_I32((i & fm._MANTISSA) + fm._SQRT_HALF_BITS))
    x = fsub(m, fm._ONE)
    z = fmul(x, x)
    poly = _horner9(x, _L0, _L1, _L2, _L3, _L4, _L5, _L6, _L7, _L8)
    r = fmaf(fmul(x, z), poly, fmaf(e, fm._LN2_LO, fmul(-fm._HALF, z)))
    return fmaf(e, fm._LN2_HI, fadd(x, r))


@cuda.jit(device=True)
def sincos_2pi(k):
    """Twin of :func:`fastinit._fastmath.sincos_2pi`: ``(cos, sin)`` of ``2 pi k / 2**24``."""
    k = _I32(k)
    q = _I32((k + fm._HALF_QUADRANT) >> fm._I22)
    rem = _I32(k - (q << fm._I22))
    x = fmul(F(rem), fm._QUARTER_TURN)
    z = fmul(x, x)
    s = fmaf(fmul(x, z), _horner3(z, _S0, _S1, _S2), x)
    c = fmaf(fmul(z, z), _horner3(z, _C0, _C1, _C2), fmaf(-fm._HALF, z, fm._ONE))
    if (q & 1) != 0:
        c, s = -s, c
    if (q & 2) != 0:
        c, s = -c, -s
    return c, s


@cuda.jit(device=True)
def erfinv_f32(x):
    """Twin of :func:`fastinit._fastmath.erfinv_f32` (and of ``erfinv_central_f32``).

    Only the polynomial that is selected is evaluated (a branch costs little on
    a GPU); the value is the one the CPU selects.
    """
    w = -log_f32(fmaf(-x, x, fm._ONE))
    if w < fm._FIVE:
        p = _horner9(fsub(w, fm._TWO_HALF), _E10, _E11, _E12, _E13, _E14, _E15, _E16, _E17, _E18)
    else:
        p = _horner9(
            fsub(fsqrt(w), fm._THREE), _E20, _E21, _E22, _E23, _E24, _E25, _E26, _E27, _E28
        )
    return fmul(p, x)
