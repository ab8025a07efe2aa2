"""Counter-based random numbers: Philox4x32-10, reproducible on any thread count.

Numba's ``np.random`` inside ``prange`` keeps one state per thread, so a parallel
fill depends on how the work was split.  fastinit instead draws every value as a
pure function of ``(seed, stream, element index)`` with the stateless
Philox4x32-10 generator of Salmon, Moraes, Dror and Shaw, "Parallel random
numbers: as easy as 1, 2, 3", SC'11 (the Random123 library).

Counter and key layout
----------------------
One Philox call maps a 128-bit counter and a 64-bit key to four 32-bit words::

    key     = (seed & 0xFFFFFFFF,  seed >> 32)                   # seed in [0, 2**64)
    counter = (block & 0xFFFFFFFF, block >> 32,                  # block in [0, 2**64)
               stream & 0xFFFFFFFF, stream >> 32)                # stream in [0, 2**64)

``stream`` names an independent tensor (layer k's weights, its biases, the
minibatch indices of a run...), so adding a tensor never changes another one.
A model draws layer k's weights from stream ``2k`` and its biases from
``2k + 1`` of its seed; :data:`TOP_GRADIENT_STREAM` (``2**32``), never a layer's,
holds the standard normal output gradients of :func:`fastinit.diagnose` and the
depth experiment, so they are independent of the weights of the same seed.
Within a stream, element ``i`` of a flat array uses:

=========================  ===========  =============================================
draw                       block        words
=========================  ===========  =============================================
uint32 / float32 uniform   ``i // 4``   word ``i % 4``, top 24 bits
float64 uniform            ``i // 2``   words ``2*(i%2)``, ``2*(i%2)+1``, 53 bits
float32 normal             ``i // 4``   Box-Muller on words (0, 1) -> i%4 in {0, 1},
                                        on words (2, 3) -> i%4 in {2, 3}
float64 normal             ``i // 2``   Box-Muller on the two float64 uniforms
=========================  ===========  =============================================

Uniforms are ``k * 2**-24`` (float32) or ``k * 2**-53`` (float64) in [0, 1);
where a logarithm follows, ``1 - u`` is used, which lies in (0, 1] and is never 0.
Float32 fills scale and shift with a fused multiply-add, so ``low + (high - low) * u``
and ``mean + std * z`` are rounded once.  Float32 normals use the branch-free
approximations of :mod:`fastinit._fastmath` (errors of order 1e-7, far below
float32 sampling noise), so the fill loops vectorize; float64 normals use libm.

Speed (4096 x 4096 float32, one AVX2 core): the Philox words alone cost about
0.8 ns per element, eight vector instructions (see ``_philox_lanes``), which is
why a uniform fill takes about 3.5x the time of ``ndarray.fill``.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
from numba import njit, prange

from fastinit import _fastmath as fm
from fastinit._validate import (
    MAX_ELEMENTS,
    check_finite,
    check_nonneg,
    check_positive,
    check_representable,
    check_seed,
)

__all__ = [
    "fill_normal",
    "fill_truncated_normal",
    "fill_uniform",
    "philox4x32_10",
    "random_bits",
    "split_key",
]

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


@njit(inline="always", cache=True)
def _philox_lanes(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on six uint64 whose low 32 bits are the words.

    The high halves may hold garbage, and so may the results': only low halves
    are ever read.  The mask before each multiply is free (``vpmuludq``, the
    32x32 -> 64-bit vector multiply, reads only the low halves), so a vectorized
    loop keeps the words in 64-bit lanes for all ten rounds: 2 multiplies, 2
    shifts and 4 xors per round for 4 blocks.  Narrowing to uint32 after each
    round, as the textbook form does, made LLVM shuffle between 32- and 64-bit
    lanes and cost 2.3x.
    """
    for _ in range(10):
        p0 = (c0 & _LOW32) * _M0
        p1 = (c2 & _LOW32) * _M1
        c0, c1, c2, c3 = (p1 >> _SHIFT32) ^ c1 ^ k0, p1, (p0 >> _SHIFT32) ^ c3 ^ k1, p0
        k0 = k0 + _W0  # carries into the high half are garbage too
        k1 = k1 + _W1
    return c0, c1, c2, c3


@njit(inline="always", cache=True)
def _philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on six uint32 words; returns four uint32 words."""
    w0, w1, w2, w3 = _philox_lanes(
        np.uint64(c0), np.uint64(c1), np.uint64(c2), np.uint64(c3), np.uint64(k0), np.uint64(k1)
    )
    return (
        np.uint32(w0 & _LOW32),
        np.uint32(w1 & _LOW32),
        np.uint32(w2 & _LOW32),
        np.uint32(w3 & _LOW32),
    )


@njit(cache=True)
def philox4x32_10(
    counter: tuple[int, int, int, int], key: tuple[int, int]
) -> tuple[np.uint32, np.uint32, np.uint32, np.uint32]:
    """Philox4x32 with 10 rounds (Salmon et al., SC'11).

    Parameters
    ----------
    counter : tuple of 4 ints
        The 128-bit counter as four 32-bit words (low word first).
    key : tuple of 2 ints
        The 64-bit key as two 32-bit words.  Each word (of the key and the
        counter), a Python int in [-2**63, 2**63) or a NumPy integer, is taken
        modulo 2**32, unchecked (from 2**63 on, numba's conversion raises
        OverflowError naming no argument): this is the kernels' building block,
        compiled into them
        (:func:`split_key` splits a 64-bit seed into checked words).  Called
        from Python, each new combination of word types (Python ints,
        np.uint32) compiles it once more, numba's rule.

    Returns
    -------
    tuple of 4 numpy.uint32
        The four output words; Random123's known-answer vectors hold, e.g.
        ``philox4x32_10((0, 0, 0, 0), (0, 0))`` is
        ``(0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)``.
    """
    return _philox(
        np.uint32(counter[0]),
        np.uint32(counter[1]),
        np.uint32(counter[2]),
        np.uint32(counter[3]),
        np.uint32(key[0]),
        np.uint32(key[1]),
    )


@njit(inline="always", cache=True)
def _block_lanes(key0, key1, stream0, stream1, block):
    """The words of ``block`` as the low halves of four uint64 (see ``_philox_lanes``)."""
    b = np.uint64(block)
    return _philox_lanes(
        b, b >> _SHIFT32, np.uint64(stream0), np.uint64(stream1), np.uint64(key0), np.uint64(key1)
    )


@njit(inline="always", cache=True)
def block_words(
    key0: int, key1: int, stream0: int, stream1: int, block: int
) -> tuple[int, int, int, int]:
    """The four words of ``block`` (an int64 >= 0) in a stream; for use in kernels.

    Parameters
    ----------
    key0, key1 : numpy.uint32
        The key's low and high 32-bit words (as from :func:`split_key`).
    stream0, stream1 : numpy.uint32
        The stream's low and high 32-bit words (as from :func:`split_key`).
    block : int
        The block index: the counter's low two words.  An int64 >= 0 (what a
        Python int becomes), or a uint64 for blocks from 2**63 on.

    Returns
    -------
    tuple of 4 numpy.uint32
        The block's four Philox4x32-10 output words.
    """
    w0, w1, w2, w3 = _block_lanes(key0, key1, stream0, stream1, block)
    return (
        np.uint32(w0 & _LOW32),
        np.uint32(w1 & _LOW32),
        np.uint32(w2 & _LOW32),
        np.uint32(w3 & _LOW32),
    )


def split_key(seed: int, stream: int) -> tuple[np.uint32, np.uint32, np.uint32, np.uint32]:
    """Validate ``seed`` and ``stream`` and split them into 32-bit words.

    Parameters
    ----------
    seed : int
        The generator key, in [0, 2**64).
    stream : int
        The stream number, in [0, 2**64).

    Returns
    -------
    tuple of 4 numpy.uint32
        ``(key0, key1, stream0, stream1)``, low words first.
    """
    seed = check_seed(seed, "seed")
    stream = check_seed(stream, "stream")
    return (
        np.uint32(seed & 0xFFFFFFFF),
        np.uint32(seed >> 32),
        np.uint32(stream & 0xFFFFFFFF),
        np.uint32(stream >> 32),
    )


# ----------------------------------------------------------------------------- transforms
_F32_UNIT = np.float32(2.0**-24)
_F64_UNIT = 2.0**-53
_SHIFT8 = np.uint64(8)
_M2_F32 = np.float32(-2.0)
_ONE_F32 = np.float32(1.0)
_TWOPI = 2.0 * math.pi


@njit(inline="always", cache=True)
def u24(w: int) -> int:
    """Integer in [0, 2**24) from the top 24 bits of a word (or of a uint64's low half).

    Parameters
    ----------
    w : numpy.uint32 or numpy.uint64
        The word; of a uint64 only the low 32 bits are read.

    Returns
    -------
    numpy.int32
        ``(w & 0xFFFFFFFF) >> 8``.
    """
    return np.int32((np.uint64(w) & _LOW32) >> _SHIFT8)


@njit(inline="always", cache=True)
def u24_f32(w: int) -> float:
    """``u24(w)`` as a float32, exactly.

    Parameters
    ----------
    w : numpy.uint32 or numpy.uint64
        The word, as in :func:`u24`.

    Returns
    -------
    numpy.float32
        The integer in [0, 2**24), exactly representable.
    """
    return np.float32(u24(w))  # via int32: int32 -> float32 vectorizes, uint32 does not


@njit(inline="always", cache=True)
def uniform_f32(w: int) -> float:
    """float32 uniform in [0, 1) from one word (24 bits).

    Parameters
    ----------
    w : numpy.uint32 or numpy.uint64
        The word, as in :func:`u24`.

    Returns
    -------
    numpy.float32
        ``u24(w) * 2**-24``.
    """
    return u24_f32(w) * _F32_UNIT


@njit(inline="always", cache=True)
def uniform_f64(hi: int, lo: int) -> float:
    """float64 uniform in [0, 1) from two words (53 bits).

    Parameters
    ----------
    hi : numpy.uint32
        The word whose top 27 bits are the high bits of the 53.
    lo : numpy.uint32
        The word whose top 26 bits are the low bits of the 53.

    Returns
    -------
    float
        ``((hi >> 5) * 2**26 + (lo >> 6)) * 2**-53``.
    """
    a = np.uint64(hi >> np.uint32(5))
    b = np.uint64(lo >> np.uint32(6))
    return np.float64(a * np.uint64(67108864) + b) * _F64_UNIT


@njit(inline="always", cache=True)
def box_muller_f32(w_radius: int, w_angle: int) -> tuple[float, float]:
    """Two float32 standard normals from two words (branch-free, vectorizable).

    Parameters
    ----------
    w_radius : numpy.uint32 or numpy.uint64
        The word whose uniform ``u`` gives the radius ``sqrt(-2 log(1 - u))``.
    w_angle : numpy.uint32 or numpy.uint64
        The word whose top 24 bits give the angle, ``2 pi u24(w_angle) / 2**24``.

    Returns
    -------
    tuple of 2 numpy.float32
        The radius times the cosine and times the sine of the angle.
    """
    u = _ONE_F32 - uniform_f32(w_radius)  # (0, 1]
    r = np.sqrt(_M2_F32 * fm.log_f32(u))
    c, s = fm.sincos_2pi(u24(w_angle))
    return r * c, r * s


@njit(inline="always", cache=True)
def box_muller_f64(w0: int, w1: int, w2: int, w3: int) -> tuple[float, float]:
    """Two float64 standard normals from four words.

    Parameters
    ----------
    w0, w1 : numpy.uint32
        The words of the radius' uniform ``u`` (see :func:`uniform_f64`), radius
        ``sqrt(-2 log(1 - u))``.
    w2, w3 : numpy.uint32
        The words of the angle's uniform ``v``, angle ``2 pi v``.

    Returns
    -------
    tuple of 2 float
        The radius times the cosine and times the sine of the angle.
    """
    u = 1.0 - uniform_f64(w0, w1)  # (0, 1]
    t = _TWOPI * uniform_f64(w2, w3)
    r = math.sqrt(-2.0 * math.log(u))
    return r * math.cos(t), r * math.sin(t)


@njit(inline="always", cache=True)
def uniform_index(key0: int, key1: int, stream0: int, stream1: int, i: int, n: int) -> int:
    """Integer in [0, n) for draw ``i`` of a stream (float64 uniform layout).

    Parameters
    ----------
    key0, key1, stream0, stream1 : numpy.uint32
        Key and stream words, as in :func:`block_words`.
    i : int
        The draw's index in the stream, >= 0: block ``i // 2``, words (0, 1) for
        even ``i`` and (2, 3) for odd ``i``.
    n : int
        The number of possible values, >= 1.

    Returns
    -------
    numpy.int64
        ``min(int(u * n), n - 1)`` with ``u`` the draw's float64 uniform.
    """
    w0, w1, w2, w3 = block_words(key0, key1, stream0, stream1, i >> 1)
    u = uniform_f64(w0, w1) if (i & 1) == 0 else uniform_f64(w2, w3)
    return fm.min2(np.int64(u * n), n - 1)


# ----------------------------------------------------------------------------- fill kernels
# A fill is a plain serial loop (``*_run``) over blocks of 4 (float32) or 2
# (float64) values, indexed from 0 to its size, which LLVM vectorizes.  Large
# arrays (PARALLEL_MIN elements and up) go to a prange over chunks of _CHUNK
# blocks, each chunk one ``*_run`` call: measured with numba 0.68, neither the body
# of a prange loop nor a loop over ``range(start, stop)`` of the whole array
# vectorizes (1.6-1.7x slower).  Smaller arrays (every layer of the classic
# experiments: MNIST's largest is 78,400 weights, filled in well under a
# millisecond) call the run function once: no parallel kernel to compile (about
# 1 s on an empty cache) and no thread pool started beside BLAS's.  Blocks are
# independent, so the values do not depend on the path or on how the chunks
# are shared out; the last, partial block comes from the same run function
# (:func:`_fill`).

_CHUNK = 4096
PARALLEL_MIN = 1 << 20  # elements: smaller fills run serially (see _fill)
TOP_GRADIENT_STREAM = 2**32  # N(0, 1) output gradients: never a layer's stream (2k, 2k + 1)


_PARALLEL_LOCK = threading.Lock()


def run_parallel(kernel: Any, *args: Any) -> None:
    """Call the ``prange`` kernel ``kernel(*args)``, one such call at a time in the process.

    Where neither TBB nor OpenMP is installed, numba runs ``prange`` on its
    workqueue threading layer, which aborts the whole process when two Python
    threads (a thread pool, a multi-threaded Dask worker) launch parallel work at
    once.  Each kernel uses every thread anyway, so taking turns costs nothing.

    Parameters
    ----------
    kernel : numba dispatcher
        A ``parallel=True`` kernel.
    *args
        Its arguments.
    """
    with _PARALLEL_LOCK:
        kernel(*args)


@njit(inline="always", cache=True)
def _bits_block(out, k0, k1, s0, s1, b):
    w = block_words(k0, k1, s0, s1, b)
    for j in range(min(4, out.size - 4 * b)):
        out[4 * b + j] = w[j]


@njit(cache=True)
def _bits_run(out, k0, k1, s0, s1):
    for b in range((out.size + 3) // 4):
        _bits_block(out, k0, k1, s0, s1, b)


@njit(parallel=True, cache=True)
def _bits_kernel(out, k0, k1, s0, s1):
    for b in prange((out.size + 3) // 4):
        _bits_block(out, k0, k1, s0, s1, b)


@njit(inline="always", cache=True)
def _uniform4_f32(low, step, k0, k1, s0, s1, b):
    # low + (high - low) * k * 2**-24 with one rounding; step = (high - low) * 2**-24
    w0, w1, w2, w3 = _block_lanes(k0, k1, s0, s1, b)
    return (
        fm.fma(step, u24_f32(w0), low),
        fm.fma(step, u24_f32(w1), low),
        fm.fma(step, u24_f32(w2), low),
        fm.fma(step, u24_f32(w3), low),
    )


@njit(cache=True)
def _uniform_f32_run(out, first, low, step, k0, k1, s0, s1):
    for b in range(out.size // 4):
        v = _uniform4_f32(low, step, k0, k1, s0, s1, first + b)
        out[4 * b], out[4 * b + 1], out[4 * b + 2], out[4 * b + 3] = v


@njit(parallel=True, cache=True)
def _uniform_f32(out, low, step, k0, k1, s0, s1):
    nb = out.size // 4
    for c in prange((nb + _CHUNK - 1) // _CHUNK):
        chunk = out[4 * c * _CHUNK : 4 * min(nb, (c + 1) * _CHUNK)]
        _uniform_f32_run(chunk, c * _CHUNK, low, step, k0, k1, s0, s1)


@njit(inline="always", cache=True)
def _uniform2_f64(low, scale, k0, k1, s0, s1, b):
    w0, w1, w2, w3 = block_words(k0, k1, s0, s1, b)
    return low + scale * uniform_f64(w0, w1), low + scale * uniform_f64(w2, w3)


@njit(cache=True)
def _uniform_f64_run(out, first, low, scale, k0, k1, s0, s1):
    for b in range(out.size // 2):
        out[2 * b], out[2 * b + 1] = _uniform2_f64(low, scale, k0, k1, s0, s1, first + b)


@njit(parallel=True, cache=True)
def _uniform_f64(out, low, scale, k0, k1, s0, s1):
    nb = out.size // 2
    for c in prange((nb + _CHUNK - 1) // _CHUNK):
        chunk = out[2 * c * _CHUNK : 2 * min(nb, (c + 1) * _CHUNK)]
        _uniform_f64_run(chunk, c * _CHUNK, low, scale, k0, k1, s0, s1)


@njit(inline="always", cache=True)
def _normal4_f32(mean, std, k0, k1, s0, s1, b):
    w0, w1, w2, w3 = _block_lanes(k0, k1, s0, s1, b)
    z0, z1 = box_muller_f32(w0, w1)
    z2, z3 = box_muller_f32(w2, w3)
    return (
        fm.fma(std, z0, mean),
        fm.fma(std, z1, mean),
        fm.fma(std, z2, mean),
        fm.fma(std, z3, mean),
    )


@njit(cache=True)
def _normal_f32_run(out, first, mean, std, k0, k1, s0, s1):
    for b in range(out.size // 4):
        v = _normal4_f32(mean, std, k0, k1, s0, s1, first + b)
        out[4 * b], out[4 * b + 1], out[4 * b + 2], out[4 * b + 3] = v


@njit(parallel=True, cache=True)
def _normal_f32(out, mean, std, k0, k1, s0, s1):
    nb = out.size // 4
    for c in prange((nb + _CHUNK - 1) // _CHUNK):
        chunk = out[4 * c * _CHUNK : 4 * min(nb, (c + 1) * _CHUNK)]
        _normal_f32_run(chunk, c * _CHUNK, mean, std, k0, k1, s0, s1)


@njit(inline="always", cache=True)
def _normal2_f64(mean, std, k0, k1, s0, s1, b):
    w0, w1, w2, w3 = block_words(k0, k1, s0, s1, b)
    z0, z1 = box_muller_f64(w0, w1, w2, w3)
    return mean + std * z0, mean + std * z1


@njit(cache=True)
def _normal_f64_run(out, first, mean, std, k0, k1, s0, s1):
    for b in range(out.size // 2):
        out[2 * b], out[2 * b + 1] = _normal2_f64(mean, std, k0, k1, s0, s1, first + b)


@njit(parallel=True, cache=True)
def _normal_f64(out, mean, std, k0, k1, s0, s1):
    nb = out.size // 2
    for c in prange((nb + _CHUNK - 1) // _CHUNK):
        chunk = out[2 * c * _CHUNK : 2 * min(nb, (c + 1) * _CHUNK)]
        _normal_f64_run(chunk, c * _CHUNK, mean, std, k0, k1, s0, s1)


@njit(cache=True)
def _trunc_f32(w, lo2, step, scale, mean, a, b, tails):
    # Not inline="always": typing one copy instead of four per block halved the
    # compile time of a fill (5.0 -> 2.7 s; measured again with the central branch
    # only: 1.3 s against 4.1 s inlined); LLVM still inlines it (same speed and bits).
    # tails: None (numba prunes the other branch: the central polynomial only) or True
    x = fm.fma(step, u24_f32(w), lo2)  # uniform on [2*cdf(a) - 1, 2*cdf(b) - 1)
    y = fm.erfinv_central_f32(x) if tails is None else fm.erfinv_f32(x)
    return fm.clamp(fm.fma(scale, y, mean), a, b)


@njit(inline="always", cache=True)
def _trunc4_f32(lo2, step, scale, mean, a, b, k0, k1, s0, s1, block, tails):
    w0, w1, w2, w3 = _block_lanes(k0, k1, s0, s1, block)
    return (
        _trunc_f32(w0, lo2, step, scale, mean, a, b, tails),
        _trunc_f32(w1, lo2, step, scale, mean, a, b, tails),
        _trunc_f32(w2, lo2, step, scale, mean, a, b, tails),
        _trunc_f32(w3, lo2, step, scale, mean, a, b, tails),
    )


@njit(cache=True)
def _trunc_tails_f32_run(out, first, lo2, step, scale, mean, a, b, k0, k1, s0, s1):
    for i in range(out.size // 4):
        v = _trunc4_f32(lo2, step, scale, mean, a, b, k0, k1, s0, s1, first + i, True)
        out[4 * i], out[4 * i + 1], out[4 * i + 2], out[4 * i + 3] = v


@njit(cache=True)
def _trunc_central_f32_run(out, first, lo2, step, scale, mean, a, b, k0, k1, s0, s1):
    # every |x| <= fm.CENTRAL_MAX: Giles' central branch only, half the work
    for i in range(out.size // 4):
        v = _trunc4_f32(lo2, step, scale, mean, a, b, k0, k1, s0, s1, first + i, None)
        out[4 * i], out[4 * i + 1], out[4 * i + 2], out[4 * i + 3] = v


@njit(parallel=True, cache=True)
def _trunc_normal_f32(out, lo2, step, scale, mean, a, b, k0, k1, s0, s1, tails):
    # tails is None (every draw in erfinv's central range) or True: numba prunes the
    # "is None" branches before compiling, so each case compiles one run function
    nb = out.size // 4
    for c in prange((nb + _CHUNK - 1) // _CHUNK):
        chunk = out[4 * c * _CHUNK : 4 * min(nb, (c + 1) * _CHUNK)]
        if tails is None:
            _trunc_central_f32_run(chunk, c * _CHUNK, lo2, step, scale, mean, a, b, k0, k1, s0, s1)
        else:
            _trunc_tails_f32_run(chunk, c * _CHUNK, lo2, step, scale, mean, a, b, k0, k1, s0, s1)


@njit(inline="always", cache=True)
def _erfinv_f64(x):
    # Giles' float64 approximation refined by two Newton steps on erf.
    w = -math.log((1.0 - x) * (1.0 + x))
    if w < 6.25:
        w -= 3.125
        p = -3.6444120640178196996e-21
        for c in (
            -1.685059138182016589e-19, 1.2858480715256400167e-18, 1.115787767802518096e-17,
            -1.333171662854620906e-16, 2.0972767875968561637e-17, 6.6376381343583238325e-15,
            -4.0545662729752068639e-14, -8.1519341976054721522e-14, 2.6335093153082322977e-12,
            -1.2975133253453532498e-11, -5.4154120542946279317e-11, 1.051212273321532285e-09,
            -4.1126339803469836976e-09, -2.9070369957882005086e-08, 4.2347877827932403518e-07,
            -1.3654692000834678645e-06, -1.3882523362786468719e-05, 0.0001867342080340571352,
            -0.00074070253416626697512, -0.0060336708714301490533, 0.24015818242558961693,
            1.6536545626831027356,
        ):  # fmt: skip
            p = c + p * w
    elif w < 16.0:
        w = math.sqrt(w) - 3.25
        p = 2.2137376921775787049e-09
        for c in (
            9.0756561938885390979e-08, -2.7517406297064545428e-07, 1.8239629214389227755e-08,
            1.5027403968909827627e-06, -4.013867526981545969e-06, 2.9234449089955446044e-06,
            1.2475304481671778723e-05, -4.7318229009055733981e-05, 6.8284851459573175448e-05,
            2.4031110387097893999e-05, -0.0003550375203628474796, 0.00095328937973738049703,
            -0.0016882755560235047313, 0.0024914420961078508066, -0.0037512085075692412107,
            0.005370914553590063617, 1.0052589676941592334, 3.0838856104922207635,
        ):  # fmt: skip
            p = c + p * w
    else:
        w = math.sqrt(w) - 5.0
        p = -2.7109920616438573243e-11
        for c in (
            -2.5556418169965252055e-10, 1.5076572693500548083e-09, -3.7894654401267369937e-09,
            7.6157012080783393804e-09, -1.4960026627149240478e-08, 2.9147953450901080826e-08,
            -6.7711997758452339498e-08, 2.2900482228026654717e-07, -9.9298272942317002539e-07,
            4.5260625972231537039e-06, -1.9681778105531670567e-05, 7.5995277030017761139e-05,
            -0.00021503011930044477347, -0.00013871931833623122026, 1.0103004648645343977,
            4.8499064014085844221,
        ):  # fmt: skip
            p = c + p * w
    y = p * x
    for _ in range(2):  # Newton on erf(y) = x: erf'(y) = 2/sqrt(pi) exp(-y^2)
        err = math.erf(y) - x
        y -= err / (1.1283791670955126 * math.exp(-y * y))
    return y


@njit(inline="always", cache=True)
def _trunc2_f64(lo2, span2, scale, mean, a, b, k0, k1, s0, s1, i):
    w0, w1, w2, w3 = block_words(k0, k1, s0, s1, i)
    x0 = lo2 + span2 * uniform_f64(w0, w1)
    x1 = lo2 + span2 * uniform_f64(w2, w3)
    return (
        fm.clamp(mean + scale * _erfinv_f64(x0), a, b),
        fm.clamp(mean + scale * _erfinv_f64(x1), a, b),
    )


@njit(cache=True)
def _trunc_f64_run(out, first, lo2, span2, scale, mean, a, b, k0, k1, s0, s1):
    for i in range(out.size // 2):
        v = _trunc2_f64(lo2, span2, scale, mean, a, b, k0, k1, s0, s1, first + i)
        out[2 * i], out[2 * i + 1] = v


@njit(parallel=True, cache=True)
def _trunc_normal_f64(out, lo2, span2, scale, mean, a, b, k0, k1, s0, s1):
    # libm-bound (erf, exp, log per element): nothing to vectorize, prange directly
    for i in prange(out.size // 2):
        out[2 * i], out[2 * i + 1] = _trunc2_f64(lo2, span2, scale, mean, a, b, k0, k1, s0, s1, i)


_REJECT_TRIES = 64  # proposals per element; each is accepted with probability >= 0.76
_TRY_SHIFT = 40  # try j of element i draws block i + j * 2**40 (arrays below 2**40 elements)


@njit(cache=True, error_model="numpy")
def _trunc_reject_run(out, first, lo, hi, sign, near, std, a, b, k0, k1, s0, s1):
    """Standard normals truncated to [lo, hi] (lo > -inf; the deep-tail case has lo > 0),
    by Robert's (1995) exponential proposals ``x = lo + e``, as ``near + sign * std * e``
    clamped to [a, b] (``near`` the bound that ``lo`` stands for; ``a``, ``b`` in the
    output type).  Not ``mean + sign * std * x``: with ``|mean|`` far beyond ``[a, b]``
    that cancels (mean 1e17 on [-1, 1] gave 0, not 1).  Element ``i`` uses blocks
    ``first + i + j * 2**40`` of the stream for its tries ``j``: a function of its index only."""
    lam = 0.5 * (lo + math.sqrt(lo * lo + 4.0))  # the optimal exponential rate
    d2 = fm.max2(lam - hi, 0.0) ** 2  # lam beyond hi: the ratio peaks at hi
    span = -math.expm1(-lam * (hi - lo))  # excesses e = -log1p(-u span) / lam in [0, hi - lo)
    t = type(a)
    for i in range(out.size):
        e = 0.0
        for j in range(_REJECT_TRIES):
            w0, w1, w2, w3 = block_words(k0, k1, s0, s1, first + i + (j << _TRY_SHIFT))
            e = -math.log1p(-uniform_f64(w0, w1) * span) / lam
            x = lo + e
            if uniform_f64(w2, w3) < math.exp(0.5 * (d2 - (x - lam) * (x - lam))):
                break
        out[i] = fm.clamp(t(near + sign * std * e), a, b)


@njit(parallel=True, cache=True, error_model="numpy")
def _trunc_reject(out, lo, hi, sign, near, std, a, b, k0, k1, s0, s1):
    n = out.size
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        chunk = out[c * _CHUNK : min(n, (c + 1) * _CHUNK)]
        _trunc_reject_run(chunk, c * _CHUNK, lo, hi, sign, near, std, a, b, k0, k1, s0, s1)


def _fill(parallel: Any, run: Any, flat: np.ndarray, lanes: int, *params: Any) -> None:
    """Fill ``flat`` with ``run``'s blocks of ``lanes`` values (block ``i``: ``flat[lanes*i:]``).

    Arrays of ``PARALLEL_MIN`` elements or more go to ``parallel`` (a ``prange``
    over whole blocks); smaller ones to one serial ``run`` call, so the usual
    layer sizes neither compile a parallel kernel nor start numba's thread pool.
    The last, partial block is drawn whole into a scratch block by ``run``.
    Every block is a function of its index only, so both paths write the same
    values (tested).
    """
    nb = flat.size // lanes
    whole = flat[: lanes * nb]
    if flat.size >= PARALLEL_MIN:
        run_parallel(parallel, whole, *params)
    else:
        run(whole, 0, *params)
    if flat.size % lanes:
        rest = np.empty(lanes, flat.dtype)
        run(rest, nb, *params)
        flat[lanes * nb :] = rest[: flat.size % lanes]


# ----------------------------------------------------------------------------- public fills
def _flat_float(out: np.ndarray) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a numpy.ndarray, got {type(out).__name__}")
    if out.dtype not in (np.float32, np.float64):
        raise TypeError(f"out: expected dtype float32 or float64, got {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out: expected a writeable C-contiguous array")
    # a plain view: a subclass's reshape may keep two dimensions (np.matrix gives (1, n)),
    # and the kernels, which index the flat array unchecked, wrote whole rows past its end
    return out.view(np.ndarray).reshape(-1)


def fill_uniform(
    out: np.ndarray, low: float = 0.0, high: float = 1.0, *, seed: int = 0, stream: int = 0
) -> np.ndarray:
    """Fill ``out`` in place with U[low, high) draws of a stream.

    Parameters
    ----------
    out : numpy.ndarray
        Writeable C-contiguous float32 or float64 array, any shape.
    low, high : float
        Bounds, finite, ``low <= high``.
    seed, stream : int
        Key and stream, each in [0, 2**64).

    Returns
    -------
    numpy.ndarray
        ``out``.  Element ``i`` is ``low + (high - low) * u_i`` with ``u_i`` the
        stream's i-th uniform in [0, 1) (see the module docstring for the
        layout); in either dtype that sum can round up to ``high`` itself (as in
        PyTorch's ``uniform_``), never above it, so the values lie in [low, high]
        as rounded to the dtype (``float32(0.1)`` is a little above 0.1, so a
        float32 fill up to ``high=0.1`` can hold it; PyTorch and JAX also cast the
        bounds).  That takes a spacing of the draws, ``(high - low) 2**-24``
        (float32) or ``2**-53`` (float64), finer than the dtype's spacing near
        ``high``.
    """
    flat = _flat_float(out)
    low, span = uniform_constants(low, high, flat.dtype)
    words = split_key(seed, stream)
    if flat.dtype == np.float32:  # step = (high - low) 2**-24: one rounding per value
        _fill(_uniform_f32, _uniform_f32_run, flat, 4, low, span * _F32_UNIT, *words)
    else:
        _fill(_uniform_f64, _uniform_f64_run, flat, 2, low, span, *words)
    return out


def uniform_constants(low: float, high: float, dtype: np.dtype) -> tuple[np.floating, np.floating]:
    """Validate uniform bounds; return ``(low, high - low)`` in ``dtype``.

    Shared by the CPU fill and its CUDA twin.  Every value must fit ``dtype``:
    ``low``, ``high`` and the span (else the fill would write inf).  The span
    is that of the bounds rounded to ``dtype``, so that ``low + span * u`` with
    ``u < 1`` never rounds above ``high`` (``float32(high) - float32(low)`` can
    be smaller than ``float32(high - low)``).  In float32 a non-zero span must
    be at least ``2**-102`` (about 2e-31): the fill's spacing ``span * 2**-24``
    must be a normal number, else the draws would be wrong, not just coarse.

    Parameters
    ----------
    low, high : float
        As in :func:`fill_uniform`.
    dtype : numpy.dtype
        float32 or float64.

    Returns
    -------
    tuple of numpy.floating
    """
    low = check_finite(low, "low")
    high = check_finite(high, "high")
    if low > high:
        raise ValueError(f"low, high: expected low <= high, got low={low}, high={high}")
    dtype = np.dtype(dtype)
    check_representable(low, "low", dtype)
    check_representable(high, "high", dtype)
    t = dtype.type
    span = float(t(high)) - float(t(low))  # exact for float32 bounds
    check_representable(span, "high - low", dtype)
    if dtype == np.float32 and 0.0 < span < _F32_MIN_SPAN:
        raise ValueError(
            f"high - low: expected 0 or at least {_F32_MIN_SPAN:.3g} in float32 (the spacing of "
            f"the draws, (high - low) 2**-24, must be a normal number), got {span:.4g}; "
            "use float64"
        )
    return t(low), t(span)


_F32_MIN_SPAN = 2.0**-102  # 2**-24 of it is float32's smallest normal number, 2**-126


# the largest |z| a normal fill draws: Box-Muller's sqrt(-2 ln u) at the smallest
# uniform, 2**-24 in float32 (5.77) and 2**-53 in float64 (8.57)
Z_MAX = 9.0


def normal_constants(mean: float, std: float, dtype: np.dtype) -> tuple[float, float]:
    """Validate a normal's ``mean`` and ``std`` (>= 0).

    Every draw must fit ``dtype``: ``|mean| + Z_MAX std`` within its range.
    Shared by the normal fill and its CUDA twin.

    Parameters
    ----------
    mean, std : float
        As in :func:`fill_normal`.
    dtype : numpy.dtype
        float32 or float64.

    Returns
    -------
    tuple of float
        ``(mean, std)``.
    """
    mean = check_finite(mean, "mean")
    std = check_nonneg(std, "std")
    check_representable(abs(mean) + Z_MAX * std, f"mean, std: |mean| + {Z_MAX:g} std", dtype)
    return mean, std


def fill_normal(
    out: np.ndarray, mean: float = 0.0, std: float = 1.0, *, seed: int = 0, stream: int = 0
) -> np.ndarray:
    """Fill ``out`` in place with N(mean, std**2) draws of a stream (Box-Muller).

    G. E. P. Box and M. E. Muller, 'A note on the generation of random normal
    deviates', Ann. Math. Statist. 29, 1958: ``z = sqrt(-2 log(1 - u)) cos(2 pi v)``
    (and ``sin``) for two uniforms.  The radius is largest at the smallest
    ``1 - u``: ``|z| <= sqrt(48 log 2)``, about 5.77, in float32 (24-bit ``u``)
    and ``sqrt(106 log 2)``, about 8.57, in float64 (53 bits); a true normal
    exceeds 5.77 with probability 8e-9.

    Parameters
    ----------
    out : numpy.ndarray
        Writeable C-contiguous float32 or float64 array, any shape.
    mean : float
        Finite mean.
    std : float
        Finite standard deviation >= 0.
    seed, stream : int
        Key and stream, each in [0, 2**64).

    Returns
    -------
    numpy.ndarray
        ``out``.
    """
    flat = _flat_float(out)
    mean, std = normal_constants(mean, std, flat.dtype)
    words = split_key(seed, stream)
    t = flat.dtype.type
    if flat.dtype == np.float32:
        _fill(_normal_f32, _normal_f32_run, flat, 4, t(mean), t(std), *words)
    else:
        _fill(_normal_f64, _normal_f64_run, flat, 2, t(mean), t(std), *words)
    return out


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def fill_truncated_normal(
    out: np.ndarray,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    *,
    seed: int = 0,
    stream: int = 0,
) -> np.ndarray:
    """Fill ``out`` with N(mean, std**2) truncated to [a, b], by the inverse CDF.

    This is PyTorch's ``trunc_normal_`` method: ``a`` and ``b`` are absolute
    bounds; ``u`` is drawn uniformly on ``[2 Phi(alpha) - 1, 2 Phi(beta) - 1)``
    with ``alpha = (a - mean) / std``, ``beta = (b - mean) / std``, and the value
    is ``mean + std * sqrt(2) * erfinv(u)``, clamped to [a, b] as rounded to the
    dtype (in float32 a bound that is no float32 number moves by up to half an
    ulp, outward or inward, as PyTorch's and JAX's casts move it).  No rescaling:
    the standard deviation of the result is less than ``std``.  (PyTorch 2.x
    has since moved to rejection sampling; JAX's ``truncated_normal`` is this
    method too.)  Far in one tail ``2 Phi - 1`` rounds to +-1, where that
    method would return a handful of values: an ``[a, b]`` where fewer than
    ``TRUNC_MIN_LEVELS`` (4096) distinct values of ``u`` remain (in float32
    from about 4 std, in float64 from about 7.5 std) is drawn instead by
    rejection from exponential proposals (C. P. Robert, 'Simulation of
    truncated normal variables', Statistics and Computing 5, 1995), in float64
    whatever the output type; element ``i``'s tries use blocks ``i + j 2**40``
    of the stream, so it too depends only on ``(seed, stream, i)``.

    Parameters
    ----------
    out : numpy.ndarray
        Writeable C-contiguous float32 or float64 array, any shape.
    mean : float
        Finite mean of the untruncated normal.
    std : float
        Finite standard deviation > 0 of the untruncated normal.
    a, b : float
        Finite absolute bounds, ``a < b``.  ``mean``, ``sqrt(2) std``, ``a``, ``b``
        and the bounds' distances from ``mean`` must fit ``out``'s dtype.
    seed, stream : int
        Key and stream, each in [0, 2**64).

    Returns
    -------
    numpy.ndarray
        ``out``.
    """
    flat = _flat_float(out)
    consts, method = truncation_constants(mean, std, a, b, flat.dtype)
    words = split_key(seed, stream)
    if method == REJECT:
        _fill(_trunc_reject, _trunc_reject_run, flat, 1, *consts, *words)
        return out
    (lo2, span2, *rest), tails = consts, method == TAILS
    if flat.dtype == np.float64:
        _fill(_trunc_normal_f64, _trunc_f64_run, flat, 2, lo2, span2, *rest, *words)
        return out
    run = _trunc_tails_f32_run if tails else _trunc_central_f32_run
    flag = True if tails else None

    def parallel(whole, *params):
        _trunc_normal_f32(whole, *params, flag)

    _fill(parallel, run, flat, 4, lo2, span2 * _F32_UNIT, *rest, *words)
    return out


# the largest standardized bound |(a - mean) / std| used: its square, the deep-tail
# sampler's, fits float64
Z_CAP = 1e150
# fewest distinct values of 2 Phi(x) - 1 on [alpha, beta] the inverse CDF is used with
TRUNC_MIN_LEVELS = 4096
CENTRAL, TAILS, REJECT = range(3)  # truncated-normal methods (truncation_constants)


def truncation_constants(
    mean: float, std: float, a: float, b: float, dtype: np.dtype
) -> tuple[tuple[Any, ...], int]:
    """Validate truncated-normal parameters; return the fill kernels' constants and method.

    The draw is ``mean + std sqrt(2) erfinv(lo2 + span2 u)`` with ``u`` uniform
    in [0, 1) and ``lo2, lo2 + span2`` the bounds mapped to (-1, 1) by
    ``2 Phi(.) - 1`` (clamped strictly inside so erfinv stays finite), then
    clipped to ``[a, b]``.  Shared by the CPU fills and their CUDA twins.

    Parameters
    ----------
    mean, std, a, b : float
        As in :func:`fill_truncated_normal`.
    dtype : numpy.dtype
        float32 or float64: the type of the constants.

    Returns
    -------
    constants : tuple
        ``CENTRAL``/``TAILS``: ``(lo2, span2, std * sqrt(2), mean, a, b)`` in
        ``dtype``.  ``REJECT``: ``(lo, hi, sign, near, std, a, b)``, the
        standardized interval (capped at ``Z_CAP``) mirrored to the upper tail
        (``sign`` -1 for a lower one) and the bound nearest the mean in float64,
        ``a`` and ``b`` in ``dtype``.
    method : int
        ``CENTRAL`` (the inverse CDF within erfinv's central range: beyond about
        2.5 std a float32 fill needs its tail branch, Keras' 2 std never does),
        ``TAILS`` (the inverse CDF with erfinv's tail branch) or ``REJECT`` (the
        interval is too far in one tail for the inverse CDF in ``dtype``).
    """
    dtype = np.dtype(dtype)
    mean = check_representable(check_finite(mean, "mean"), "mean", dtype)
    std = check_positive(std, "std")
    check_representable(std * math.sqrt(2.0), "std: sqrt(2) std", dtype)
    a = check_representable(check_finite(a, "a"), "a", dtype)
    b = check_representable(check_finite(b, "b"), "b", dtype)
    if not a < b:
        raise ValueError(f"a, b: expected a < b, got a={a}, b={b}")
    # every draw lies in [a, b], so the kernels' mean + offset needs |a - mean| and |b - mean|
    # to fit (the untruncated normal's Z_MAX std rule would refuse bounded draws)
    check_representable(max(b - mean, mean - a), "a, b: distance of a bound from mean", dtype)
    # standardized bounds capped at Z_CAP: beyond it every draw lies within std / |alpha| of
    # the bound nearest the mean, i.e. on it, and the rejection sampler's lo**2 would overflow
    # (a bound beyond the float64 range, (a - mean) / std = inf, gave NaN draws)
    alpha, beta = (min(max((x - mean) / std, -Z_CAP), Z_CAP) for x in (a, b))
    lo2 = 2.0 * _norm_cdf(alpha) - 1.0
    hi2 = 2.0 * _norm_cdf(beta) - 1.0
    edge = 1.0 - (2.0**-24 if dtype == np.float32 else 2.0**-53)
    lo2 = min(max(lo2, -edge), edge)
    hi2 = min(max(hi2, -edge), edge)
    t = dtype.type
    levels = (hi2 - lo2) / float(np.spacing(t(max(abs(lo2), abs(hi2)))))
    if levels < TRUNC_MIN_LEVELS:  # [a, b] far in one tail: 2 Phi - 1 rounds to +-1 there
        lo, hi, sign, near = (alpha, beta, 1.0, a) if alpha >= 0 else (-beta, -alpha, -1.0, b)
        return (lo, hi, sign, near, std, t(a), t(b)), REJECT
    consts = (t(lo2), t(hi2 - lo2), t(std * math.sqrt(2.0)), t(mean), t(a), t(b))
    return consts, TAILS if max(abs(lo2), abs(hi2)) > fm.CENTRAL_MAX else CENTRAL


def random_bits(n: int, *, seed: int = 0, stream: int = 0) -> np.ndarray:
    """The first ``n`` raw uint32 words of a stream.

    Parameters
    ----------
    n : int
        How many words, >= 0 and at most ``2**60 - 1`` (no larger array fits NumPy).
    seed, stream : int
        Key and stream, each in [0, 2**64).

    Returns
    -------
    numpy.ndarray of uint32, shape (n,)
        Word ``i`` is word ``i % 4`` of block ``i // 4``.
    """
    out = np.empty(_word_count(n), dtype=np.uint32)
    if out.size >= PARALLEL_MIN:
        run_parallel(_bits_kernel, out, *split_key(seed, stream))
    else:
        _bits_run(out, *split_key(seed, stream))
    return out


def _word_count(n: Any) -> int:
    """``n`` of :func:`random_bits` (and its CUDA twin) as an int, or ``ValueError`` naming it."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= MAX_ELEMENTS:
        raise ValueError(f"n: expected a non-negative integer <= {MAX_ELEMENTS}, got {n!r}")
    return int(n)
