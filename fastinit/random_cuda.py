"""CUDA twin of :mod:`fastinit.random`: the same Philox4x32-10 draws, bit for bit.

Import this module only after :func:`fastinit._cuda.check_device` said
``"cuda"`` (or through :func:`fastinit._cuda.cuda_module`): it imports
``numba.cuda`` at import time.  Nothing is compiled at import; each kernel is
compiled for its argument types on first launch (``cache=True``).

Device functions (for other CUDA kernels): :func:`philox_lanes`,
:func:`block_words`, :func:`uniform_f32`, :func:`uniform_f64`,
:func:`uniform_index`, :func:`box_muller_f32`.  Host functions:
:func:`fill_uniform`, :func:`fill_normal`, :func:`fill_truncated_normal` (fill a
numba device array in place) and :func:`random_bits` (a new device array); their
parameters, validation and results are those of the CPU functions of the same
name, for the same ``(seed, stream, shape, dtype)``.

One CUDA thread computes one Philox block (4 float32 or 2 float64 outputs, the
CPU's layout, see :mod:`fastinit.random`) in a grid-stride loop; the last,
partial block writes only the elements that exist.

Why the GPU gives the CPU's bits
--------------------------------
* Integers (Philox, the 24- and 53-bit uniforms, ``uniform_index``) are exact on
  both sides; the Philox rounds are the CPU's ``uint64``-lane form.
* Floating point: NVVM (and ptxas) contract ``a * b + c`` into one FMA by default
  (``-fma=1``; numba-cuda's ``cuda.jit`` offers no per-kernel switch other than
  ``fastmath``, which makes it worse), while numba on the CPU never contracts.
  So every float operation in these kernels, and in :mod:`fastinit._fastmath_cuda`,
  is written through a primitive with an explicit rounding mode:
  ``libdevice.fmul_rn``/``fadd_rn``/``fsub_rn``/``dmul_rn``/``dadd_rn``
  (PTX ``mul.rn``/``add.rn``, which the CUDA documentation guarantees are never
  merged into an FMA) wherever the CPU rounds twice, and ``libdevice.fmaf``
  (``fma.rn.f32``) exactly where the CPU calls ``llvm.fma.f32``.
* ``sqrt`` is ``fsqrt_rn`` (IEEE, independent of ``prec_sqrt``); no division is
  needed; no ``fastmath``, so denormals are kept (``-ftz=0``) as on the CPU;
  int32 -> float32 conversions are exact (|x| < 2**24).
* No transcendental from libdevice: the float32 log, sin/cos and erfinv are the
  CPU's own polynomials (:mod:`fastinit._fastmath_cuda`, same coefficients).
* Host-side constants (``(high - low) * 2**-24``, the truncation bounds) are
  computed with the CPU's formulas in numpy, in the output dtype.
* float64 normal and truncated-normal fills are the exception: the CPU uses libm
  (``log``, ``cos``, ``sin``, ``erf``, ``exp``), whose float64 results are not
  correctly rounded and differ from libdevice's in the last bit for some inputs,
  so no device kernel can promise the CPU's bits.  Those two fills run the CPU
  kernel on the host and copy the result to the device (bit-identical by
  construction; float32, the default, and every uniform fill run on the device).

Checked on an NVIDIA H100 (numba-cuda 0.30.4): every fill, float32 and float64,
1000 x 1001 and 4097 elements, equal to the CPU's bits; the float64 uniform
written plainly as ``low + scale * u`` differed from the CPU in 51% of 2**20
values (NVVM had fused it), and the PTX of ``_uniform_f64_kernel`` holds
``mul.rn.f64``/``add.rn.f64`` and no ``fma``.

Tests: ``tests/test_cuda_init.py`` runs under the CUDA simulator when no driver
is found; on a machine with an NVIDIA GPU run them on the real device with::

    NUMBA_ENABLE_CUDASIM=0 python -m pytest tests/test_cuda_init.py
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastinit import _fastmath_cuda as fc
from fastinit import random as _rng
from fastinit._cuda import check_device_array, cuda_module, device_memory, simulator_enabled

cuda = cuda_module()

__all__ = [
    "block_words",
    "box_muller_f32",
    "fill_normal",
    "fill_truncated_normal",
    "fill_uniform",
    "philox_lanes",
    "random_bits",
    "uniform_f32",
    "uniform_f64",
    "uniform_index",
]

_U64 = np.uint64
_M0 = _rng._M0
_M1 = _rng._M1
_W0 = _rng._W0
_W1 = _rng._W1
_LOW32 = _rng._LOW32
_SHIFT32 = _rng._SHIFT32
_SHIFT8 = _rng._SHIFT8
_F32_UNIT = _rng._F32_UNIT
_F64_UNIT = _rng._F64_UNIT
_ONE_F32 = _rng._ONE_F32
_M2_F32 = _rng._M2_F32
_2_26 = _U64(67108864)


# ----------------------------------------------------------------------------- Philox
@cuda.jit(device=True)
def philox_round(c0: int, c1: int, c2: int, c3: int, k0: int, k1: int) -> tuple[int, int, int, int]:
    """One Philox4x32 round on uint64 lanes whose low 32 bits are the words.

    The body of one iteration of the CPU's ``fastinit.random._philox_lanes`` loop.

    Parameters
    ----------
    c0, c1, c2, c3 : numpy.uint64
        The four counter (state) words, in the low 32 bits.
    k0, k1 : numpy.uint64
        The round's two key words, in the low 32 bits.

    Returns
    -------
    tuple of 4 numpy.uint64
        The new state words; only their low 32 bits are meaningful.
    """
    p0 = (c0 & _LOW32) * _M0
    p1 = (c2 & _LOW32) * _M1
    return (p1 >> _SHIFT32) ^ c1 ^ k0, p1, (p0 >> _SHIFT32) ^ c3 ^ k1, p0


@cuda.jit(device=True)
def philox_lanes(c0: int, c1: int, c2: int, c3: int, k0: int, k1: int) -> tuple[int, int, int, int]:
    """Twin of ``fastinit.random._philox_lanes``: Philox4x32-10 on uint64 lanes.

    Only the low 32 bits of the inputs and of the four results are meaningful.

    Parameters
    ----------
    c0, c1, c2, c3 : numpy.uint64
        The 128-bit counter as four words, low word first.
    k0, k1 : numpy.uint64
        The 64-bit key as two words, low word first.

    Returns
    -------
    tuple of 4 numpy.uint64
        The four output words, masked to their low 32 bits.
    """
    for _ in range(10):
        c0, c1, c2, c3 = philox_round(c0, c1, c2, c3, k0, k1)
        k0 = (k0 + _W0) & _LOW32
        k1 = (k1 + _W1) & _LOW32
    return c0 & _LOW32, c1 & _LOW32, c2 & _LOW32, c3 & _LOW32


@cuda.jit(device=True)
def block_words(
    key0: int, key1: int, stream0: int, stream1: int, block: int
) -> tuple[int, int, int, int]:
    """Twin of :func:`fastinit.random.block_words`: the four words of ``block``.

    Returned as uint64 holding 32-bit values.

    Parameters
    ----------
    key0, key1 : numpy.uint32
        The key's low and high 32-bit words (as from :func:`fastinit.random.split_key`).
    stream0, stream1 : numpy.uint32
        The stream's low and high 32-bit words.
    block : int
        The block index, in [0, 2**64): the counter's low two words.

    Returns
    -------
    tuple of 4 numpy.uint64
        The block's four Philox4x32-10 output words, each < 2**32.
    """
    b = _U64(block)
    return philox_lanes(
        b & _LOW32, b >> _SHIFT32, _U64(stream0), _U64(stream1), _U64(key0), _U64(key1)
    )


@cuda.jit(device=True)
def u24_f32(w: int) -> float:
    """The top 24 bits of a word as a float32, exactly.

    Device version of :func:`fastinit.random.u24_f32`.

    Parameters
    ----------
    w : numpy.uint32 or numpy.uint64
        The word; of a uint64 only the low 32 bits are read.

    Returns
    -------
    numpy.float32
        ``(w & 0xFFFFFFFF) >> 8``, an integer in [0, 2**24).
    """
    return np.float32(np.int32((_U64(w) & _LOW32) >> _SHIFT8))


@cuda.jit(device=True)
def uniform_f32(w: int) -> float:
    """Twin of :func:`fastinit.random.uniform_f32`: float32 uniform in [0, 1).

    Parameters
    ----------
    w : numpy.uint32 or numpy.uint64
        The word; only its low 32 bits are read.

    Returns
    -------
    numpy.float32
        ``u24_f32(w) * 2**-24``.
    """
    return fc.fmul(u24_f32(w), _F32_UNIT)


@cuda.jit(device=True)
def uniform_f64(hi: int, lo: int) -> float:
    """Twin of :func:`fastinit.random.uniform_f64`: float64 uniform in [0, 1) (53 bits).

    Parameters
    ----------
    hi : numpy.uint32 or numpy.uint64
        The word whose top 27 bits are the high bits of the 53 (low 32 bits read).
    lo : numpy.uint32 or numpy.uint64
        The word whose top 26 bits are the low bits of the 53 (low 32 bits read).

    Returns
    -------
    numpy.float64
        ``((hi >> 5) * 2**26 + (lo >> 6)) * 2**-53``.
    """
    a = (_U64(hi) & _LOW32) >> _U64(5)
    b = (_U64(lo) & _LOW32) >> _U64(6)
    return fc.dmul(np.float64(a * _2_26 + b), _F64_UNIT)


@cuda.jit(device=True)
def uniform_index(key0: int, key1: int, stream0: int, stream1: int, i: int, n: int) -> int:
    """Twin of :func:`fastinit.random.uniform_index`: an integer in [0, n) for draw ``i``.

    Same block/word layout (block ``i // 2``, words (0, 1) for even ``i``,
    (2, 3) for odd ``i``) and the same result as the CPU function.

    Parameters
    ----------
    key0, key1, stream0, stream1 : numpy.uint32
        Key and stream words, as in :func:`block_words`.
    i : int
        The draw's index in the stream, >= 0.
    n : int
        The number of possible values, >= 1.

    Returns
    -------
    numpy.int64
        ``min(int(u * n), n - 1)`` with ``u`` the draw's float64 uniform.
    """
    w0, w1, w2, w3 = block_words(key0, key1, stream0, stream1, np.int64(i) >> 1)
    if (np.int64(i) & 1) == 0:
        u = uniform_f64(w0, w1)
    else:
        u = uniform_f64(w2, w3)
    k = np.int64(fc.dmul(u, np.float64(n)))
    return min(k, np.int64(n) - 1)


@cuda.jit(device=True)
def box_muller_f32(w_radius: int, w_angle: int) -> tuple[float, float]:
    """Twin of :func:`fastinit.random.box_muller_f32`: two float32 standard normals.

    Parameters
    ----------
    w_radius : numpy.uint32 or numpy.uint64
        The word whose uniform ``u`` gives the radius ``sqrt(-2 log(1 - u))``.
    w_angle : numpy.uint32 or numpy.uint64
        The word whose top 24 bits give the angle, ``2 pi k / 2**24``.

    Returns
    -------
    tuple of 2 numpy.float32
        The radius times the cosine and times the sine of the angle.
    """
    u = fc.fsub(_ONE_F32, uniform_f32(w_radius))
    r = fc.fsqrt(fc.fmul(_M2_F32, fc.log_f32(u)))
    c, s = fc.sincos_2pi(np.int32((_U64(w_angle) & _LOW32) >> _SHIFT8))
    return fc.fmul(r, c), fc.fmul(r, s)


# ----------------------------------------------------------------------------- kernels
# One thread per Philox block, grid-stride loop.  ``_store4``/``_store2`` write
# the block's values, only those below ``n`` in the last, partial block.


@cuda.jit(device=True)
def _store4(out, b, n, v0, v1, v2, v3):
    i = 4 * b
    if i + 3 < n:
        out[i] = v0
        out[i + 1] = v1
        out[i + 2] = v2
        out[i + 3] = v3
    else:
        out[i] = v0
        if i + 1 < n:
            out[i + 1] = v1
        if i + 2 < n:
            out[i + 2] = v2


@cuda.jit(device=True)
def _store2(out, b, n, v0, v1):
    out[2 * b] = v0
    if 2 * b + 1 < n:
        out[2 * b + 1] = v1


@cuda.jit(cache=True)
def _bits_kernel(out, k0, k1, s0, s1):
    n = out.size
    for b in range(cuda.grid(1), (n + 3) // 4, cuda.gridsize(1)):
        w0, w1, w2, w3 = block_words(k0, k1, s0, s1, b)
        _store4(out, b, n, np.uint32(w0), np.uint32(w1), np.uint32(w2), np.uint32(w3))


@cuda.jit(cache=True)
def _uniform_f32_kernel(out, low, step, k0, k1, s0, s1):
    # CPU: fma(step, u24, low) with step = (high - low) * 2**-24
    n = out.size
    for b in range(cuda.grid(1), (n + 3) // 4, cuda.gridsize(1)):
        w0, w1, w2, w3 = block_words(k0, k1, s0, s1, b)
        _store4(
            out,
            b,
            n,
            fc.fmaf(step, u24_f32(w0), low),
            fc.fmaf(step, u24_f32(w1), low),
            fc.fmaf(step, u24_f32(w2), low),
            fc.fmaf(step, u24_f32(w3), low),
        )


@cuda.jit(cache=True)
def _uniform_f64_kernel(out, low, scale, k0, k1, s0, s1):
    # CPU: low + scale * u, two roundings
    n = out.size
    for b in range(cuda.grid(1), (n + 1) // 2, cuda.gridsize(1)):
        w0, w1, w2, w3 = block_words(k0, k1, s0, s1, b)
        _store2(
            out,
            b,
            n,
            fc.dadd(low, fc.dmul(scale, uniform_f64(w0, w1))),
            fc.dadd(low, fc.dmul(scale, uniform_f64(w2, w3))),
        )


@cuda.jit(cache=True)
def _normal_f32_kernel(out, mean, std, k0, k1, s0, s1):
    # CPU: fma(std, z, mean), z from Box-Muller on words (0, 1) and (2, 3)
    n = out.size
    for b in range(cuda.grid(1), (n + 3) // 4, cuda.gridsize(1)):
        w0, w1, w2, w3 = block_words(k0, k1, s0, s1, b)
        z0, z1 = box_muller_f32(w0, w1)
        z2, z3 = box_muller_f32(w2, w3)
        _store4(
            out,
            b,
            n,
            fc.fmaf(std, z0, mean),
            fc.fmaf(std, z1, mean),
            fc.fmaf(std, z2, mean),
            fc.fmaf(std, z3, mean),
        )


@cuda.jit(device=True)
def _trunc_f32(w, lo2, step, scale, mean, a, b):
    # CPU: min(max(fma(scale, erfinv(fma(step, u24, lo2)), mean), a), b)
    y = fc.erfinv_f32(fc.fmaf(step, u24_f32(w), lo2))
    return min(max(fc.fmaf(scale, y, mean), a), b)


@cuda.jit(cache=True)
def _trunc_normal_f32_kernel(out, lo2, step, scale, mean, a, b, k0, k1, s0, s1):
    n = out.size
    for i in range(cuda.grid(1), (n + 3) // 4, cuda.gridsize(1)):
        w0, w1, w2, w3 = block_words(k0, k1, s0, s1, i)
        _store4(
            out,
            i,
            n,
            _trunc_f32(w0, lo2, step, scale, mean, a, b),
            _trunc_f32(w1, lo2, step, scale, mean, a, b),
            _trunc_f32(w2, lo2, step, scale, mean, a, b),
            _trunc_f32(w3, lo2, step, scale, mean, a, b),
        )


# 256 threads a block on a GPU; the simulator runs each thread of a block as a
# Python thread, so there a block of 32 makes the small test launches cheaper
_THREADS = 32 if simulator_enabled() else 256
_MAX_GRID = 8192  # x 256 threads: enough to fill any current GPU, then grid-stride


def _grid(nblocks: int) -> int:
    """CUDA blocks of a fill over ``nblocks`` Philox blocks (one thread each, then grid-stride)."""
    return min((nblocks + _THREADS - 1) // _THREADS, _MAX_GRID)


def _launch(kernel: Any, nblocks: int, *args: Any) -> None:
    """Launch ``kernel`` over ``nblocks`` Philox blocks (nothing when there are none)."""
    if nblocks > 0:
        kernel[_grid(nblocks), _THREADS](*args)


# ----------------------------------------------------------------------------- public fills
def _flat_device(out: Any) -> Any:
    """Validate a device ``out`` and return a flat (1-d) view of it."""
    check_device_array(out, "out")
    if out.dtype not in (np.float32, np.float64):
        raise TypeError(f"out: expected dtype float32 or float64, got {out.dtype}")
    if not out.is_c_contiguous():
        raise ValueError("out: expected a C-contiguous device array")
    return out.reshape(out.size)


def _host_then_copy(out: Any, flat: Any, cpu_fill: Any, *args: Any, **kwargs: Any) -> Any:
    """Run the CPU fill into a host buffer and copy it into ``flat`` (float64 normals)."""
    host = np.empty(flat.shape, dtype=flat.dtype)
    cpu_fill(host, *args, **kwargs)
    flat.copy_to_device(host)
    return out


def fill_uniform(
    out: Any, low: float = 0.0, high: float = 1.0, *, seed: int = 0, stream: int = 0
) -> Any:
    """Fill a device array with U[low, high) draws: :func:`fastinit.random.fill_uniform` on a GPU.

    Parameters
    ----------
    out : numba.cuda device array
        C-contiguous float32 or float64, any shape.
    low, high : float
        Bounds, finite, ``low <= high``.
    seed, stream : int
        Key and stream, each in [0, 2**64).

    Returns
    -------
    numba.cuda device array
        ``out``, bit-identical to the CPU fill of a host array of the same shape and dtype.
    """
    flat = _flat_device(out)
    low, span = _rng.uniform_constants(low, high, flat.dtype)
    words = _rng.split_key(seed, stream)
    n = flat.size
    if flat.dtype == np.float32:
        step = span * _F32_UNIT  # the CPU's float32 product
        _launch(_uniform_f32_kernel, (n + 3) // 4, flat, low, step, *words)
    else:
        _launch(_uniform_f64_kernel, (n + 1) // 2, flat, low, span, *words)
    return out


def fill_normal(
    out: Any, mean: float = 0.0, std: float = 1.0, *, seed: int = 0, stream: int = 0
) -> Any:
    """Fill a device array with N(mean, std**2) draws: :func:`fastinit.random.fill_normal` on a GPU.

    float32 runs on the device; float64 runs the CPU kernel and copies (its libm
    calls have no bit-identical device twin, see the module docstring).

    Parameters
    ----------
    out : numba.cuda device array
        C-contiguous float32 or float64, any shape.
    mean : float
        Finite mean.
    std : float
        Finite standard deviation >= 0.
    seed, stream : int
        Key and stream, each in [0, 2**64).

    Returns
    -------
    numba.cuda device array
        ``out``, bit-identical to the CPU fill.
    """
    flat = _flat_device(out)
    mean, std = _rng.normal_constants(mean, std, flat.dtype)
    words = _rng.split_key(seed, stream)
    if flat.dtype == np.float64:
        return _host_then_copy(out, flat, _rng.fill_normal, mean, std, seed=seed, stream=stream)
    args = (flat, np.float32(mean), np.float32(std), *words)
    _launch(_normal_f32_kernel, (flat.size + 3) // 4, *args)
    return out


def fill_truncated_normal(
    out: Any,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    *,
    seed: int = 0,
    stream: int = 0,
) -> Any:
    """Fill a device array with N(mean, std**2) truncated to [a, b] (CUDA twin).

    :func:`fastinit.random.fill_truncated_normal` on a GPU.

    float32 runs on the device; float64, and an interval so far in one tail
    that the CPU draws it by rejection, run the CPU kernel and copy (see the
    module docstring).

    Parameters
    ----------
    out : numba.cuda device array
        C-contiguous float32 or float64, any shape.
    mean : float
        Finite mean of the untruncated normal.
    std : float
        Finite standard deviation > 0 of the untruncated normal.
    a, b : float
        Finite absolute bounds, ``a < b``.
    seed, stream : int
        Key and stream, each in [0, 2**64).

    Returns
    -------
    numba.cuda device array
        ``out``, bit-identical to the CPU fill.
    """
    flat = _flat_device(out)
    consts, method = _rng.truncation_constants(mean, std, a, b, flat.dtype)  # validates
    if flat.dtype == np.float64 or method == _rng.REJECT:  # deep tails: the CPU's sampler
        return _host_then_copy(
            out, flat, _rng.fill_truncated_normal, mean, std, a, b, seed=seed, stream=stream
        )
    lo2, span2, scale, mean32, a32, b32 = consts
    step = span2 * _F32_UNIT  # the CPU's float32 product
    args = (flat, lo2, step, scale, mean32, a32, b32, *_rng.split_key(seed, stream))
    _launch(_trunc_normal_f32_kernel, (flat.size + 3) // 4, *args)
    return out


def random_bits(n: int, *, seed: int = 0, stream: int = 0) -> Any:
    """The first ``n`` raw uint32 words of a stream, as a device array.

    Parameters
    ----------
    n : int
        How many words, >= 0 and at most ``2**60 - 1`` (as on the CPU).
    seed, stream : int
        Key and stream, each in [0, 2**64).

    Returns
    -------
    numba.cuda device array of uint32, shape (n,)
        Equal to :func:`fastinit.random.random_bits` with the same arguments.
    """
    n = _rng._word_count(n)
    with device_memory("n", (n,), np.uint32):
        out = cuda.device_array(n, dtype=np.uint32)
    _launch(_bits_kernel, (n + 3) // 4, out, *_rng.split_key(seed, stream))
    return out
