"""The compiled training loop, and ``fit_many`` to train networks on shared minibatches.

One native call runs a chunk of iterations for one or several networks:
minibatch sampling, forward, loss, backward, optimizer update and loss
recording all happen inside :func:`train_chunk`.  Python only validates the
input, allocates the buffers once, sizes the chunks (about 0.2 s each, so the
progress bar advances and Ctrl-C is honoured promptly) and builds the
:class:`History`.

Threading policy (decided by measurement on the 2-core AVX2 build machine,
numba 0.68, NumPy's OpenBLAS 0.3.31; figures and commands in ``bench/``)
-------------------------------------------------------------------------
* The training loop and every element-wise kernel are plain (non-parallel)
  ``@njit`` functions; BLAS owns the threads.  At MNIST sizes the GEMMs are
  ~90% of the FLOPs and run at the same-run sgemm roofline with OpenBLAS's two
  threads, while the fused element-wise passes (bias + activation + derivative,
  derivative product + column sums, the optimizer update) take ~50 us of a
  ~650 us step serially: a parallel pass could not win much and costs below.
* Tiny networks (every width at most 16, e.g. the planar 2-4-1) call no BLAS:
  at 2 or 4 columns a GEMM call costs ~1 us whatever it computes and the
  row-major loops do not vectorize, so they train with the feature-major
  kernels of :mod:`fastinit.narrow` (12 -> 6 us per planar iteration).
* numba's parallel backend is never entered during training (only the
  initializers in :mod:`fastinit.random` and :mod:`fastinit.init` use
  ``prange``, once, before training, only for arrays of ``PARALLEL_MIN``
  elements or more, and one call at a time: :func:`fastinit.random.run_parallel`).  Its
  OpenMP workers spin-wait after a ``prange`` and, sharing 2 cores with
  OpenBLAS's own spinning workers, made a step 50-100x slower (92 ms
  instead of 0.86 ms) unless ``OMP_WAIT_POLICY=passive`` was set by hand; a
  whole step in one ``parallel=True`` function also failed array analysis or
  produced NaN.  A serial loop needs no environment variable.
* Measured and not adopted (an experiment not kept; commit e952096): the batch split into
  row chunks run on numba's threads (forward and ``dL/dz`` per chunk, ``dW``
  per share of rows, one ``prange`` region per part) with OpenBLAS set to one
  thread for the fit.  Two chunks of 64 rows ran 1.8x faster than one after
  the other, but the MNIST step only went from 515-533 to 486-509 us (OpenBLAS's
  own two threads already run these GEMMs at ~90% of two single-threaded
  calls), while the first fit with an empty cache grew by 1.5-2 s of
  compilation.
* The GEMMs call NumPy's own OpenBLAS (:mod:`fastinit.dense`), not SciPy's
  copy that numba's ``np.dot`` would use: one BLAS thread pool in the process
  instead of two.  With two pools, SciPy-BLAS calls made right after NumPy BLAS
  work ran 2x slower (NumPy's idle workers spin for ~0.1 s) and alternating
  calls took 8 ms instead of 0.17 ms.
* OpenBLAS (NumPy's or SciPy's, and so NumPy and PyTorch code alike) degrades
  badly when other processes occupy the cores: its two threads wait on each
  other across scheduler time slices (measured 30-60 ms instead of 0.65-1.5 ms
  per MNIST step while another job ran).  Benchmark on an idle machine.
  The shared 2-vCPU host also moves, for tens of seconds at a time, into a phase
  where two BLAS threads run the step's products no faster than one (the
  products alone: 690-790 us on two threads, 710-790 on one, against 450-530 on
  two otherwise), and the step itself takes 0.92-1.06 ms against 0.55-0.59 ms
  (one BLAS thread: 0.79-0.81 ms in both phases).  Outside the products the step
  then costs ~300 us instead of ~80 us; with one thread, ~25 us plus the
  minibatch gather (40-70 us: 128 random rows of the 188 MB inputs).  The cause,
  measured with NumPy's products alone: the SGD update, each weight matrix
  written in place by its ``A.T @ dZ`` product on both BLAS threads and read
  whole by both in the next products (half of it crossing between the cores):
  +48 us a step in the fast phase, +230 us in the slow one, nothing on one
  thread; the update products on one thread cost more (the README's threading
  policy has the figures).  Two threads are kept: the phase cannot be
  told from inside a run, and changing the count between chunks would change
  the last bits of the products (below), so a run would depend on the host.
* Every result is a function of the data, the seeds and the iteration number:
  sampling uses the counter-based generator (:mod:`fastinit.random`) and
  nothing depends on numba's thread count (tested with ``NUMBA_NUM_THREADS`` 1
  and 2, bit for bit).  OpenBLAS itself picks different kernels and splits for
  different thread counts, so forcing ``OPENBLAS_NUM_THREADS=1`` changes the
  last bits of the GEMMs (measured): runs are bit-reproducible for a given BLAS
  build and thread count, as with any BLAS-backed framework.

Compiled functions and the numba cache
--------------------------------------
Networks are flat arrays plus an int64 layer table (:mod:`fastinit.dense`),
so :func:`train_chunk` has one signature per dtype, whatever the depth, widths,
activations, loss, optimizer or number of networks (no ``typed.List``, whose
methods compile on first use and are not cached), times at most four for the
two optional paths (statistics recording, feature-major tiny networks), each
compiled only when a run uses it.  It contains the loop only: everything it
calls is compiled separately, once, and called by address (:mod:`fastinit._native`),
so it is neither inlined into it nor linked, re-optimized and compiled again
in it, as numba does with ordinary calls.  The activations, the loss and the
optimizers: the layer table, the plan and ``opt`` carry the addresses of their
kernels (:func:`fastinit.activations.activation_kernel`,
:func:`fastinit.losses.loss_kernel`, :func:`fastinit.optim.optimizer_kernel`),
compiled the first time a run uses them.  The forward and backward passes and
the matrix product (``ops``, :func:`fastinit.dense.ops_table`; shared with
inference), the minibatch draw and gather (``plan[P_DRAW]``,
``plan[P_GATHER]``).  Empty cache, a ReLU network with SGD, first fit:
13.5-13.7 s of CPU with everything inlined or linked, 10.2-11.6 s with the
activation, loss and optimizer kernels, about 7.5 s with everything by
address; same bits.  On an empty cache a helper process compiles the dense
kernels meanwhile (:mod:`fastinit._compile_helper`), so the first fit uses
both cores.  Everything is ``cache=True``; nothing compiles at import.
numba keys a cached function on its own source file only: after editing
``activations``, ``losses``, ``dense``, ``optim``, ``narrow``, ``_native`` or
``random``, clear the cache (``NUMBA_CACHE_DIR``), since compiled functions
embed code (and call signatures) from them.

Sampling (all reproducible from ``seed``)
-----------------------------------------
The draws use the run key (:func:`run_key`): the first two words of stream
:data:`SAMPLING_STREAM` of ``seed``, a stream no layer uses, so the batches are
independent of the initial weights of a model built with the same seed (key
``seed`` itself would share layer 0's streams 0 and 1: ``MLP(seed=s)`` fitted with
``seed=s`` picked its rows by its first layer's initial values).
``"replacement"``: row ``r`` of iteration ``t`` is draw ``t * batch_size + r`` of
stream 0 of the run key (:func:`fastinit.random.uniform_index`).
``"shuffle"``: epoch ``e`` visits a Fisher-Yates permutation drawn from stream 1
of the run key (draw ``e * n + i`` swaps position ``i``), ``ceil(n / batch_size)``
batches per epoch, the last one possibly smaller.  ``"full"``: every row, in order, each
iteration (full-batch gradient descent; ``batch_size`` is ignored).

Batches are therefore a function of ``(seed, iteration)`` only: :func:`fit_many`
draws each batch once and steps every network on it, and training the networks
one at a time with the same ``seed`` gives bit-identical results.

Divergence and interruption
---------------------------
When a network's minibatch loss is not finite, that loss is recorded, the
network is not updated (its weights are those that produced it) and it stops;
others in :func:`fit_many` go on.  Ctrl-C is taken between chunks: the networks
hold every completed update, and ``fit`` returns normally with
``History.status == "interrupted"`` and the losses recorded so far (it does not
re-raise, so a notebook keeps the partial curve).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit, types

from fastinit import _compile_helper, _system
from fastinit import _fastmath as fm
from fastinit import losses as _losses
from fastinit import optim as _optim
from fastinit._native import float_type, native_address, native_caller, native_function
from fastinit._progress import ProgressBar
from fastinit._validate import (
    all_finite,
    as_array,
    cast_finite,
    check_bool,
    check_choice,
    check_dtype_holds,
    check_int,
    check_seed,
    check_shape,
    value_errors,
)
from fastinit.activations import (
    ELU,
    GELU,
    GELU_TANH,
    LEAKY_RELU,
    RELU,
    SELU,
    SIGMOID,
    SILU,
    SOFTPLUS,
    TANH,
    call_bias_activate,
)
from fastinit.dense import (
    ACT,
    B_OFF,
    BACKWARD,
    FAN_OUT,
    KERNEL,
    NO_TRANS,
    W_OFF,
    bias,
    block,
    call_backward_net,
    call_forward_net,
    gemm,
    ops_table,
    weight,
    with_kernels,
    work_size,
)
from fastinit.narrow import is_narrow, narrow_step, narrow_work_size
from fastinit.random import philox4x32_10, split_key, uniform_index

__all__ = ["STAT_FIELDS", "History", "fit_many"]

# the stream of seed whose first block is the run key: never a layer's (2k, 2k + 1)
# nor fastinit.random.TOP_GRADIENT_STREAM (2**32)
SAMPLING_STREAM = 2**32 + 1

REPLACEMENT, SHUFFLE, FULL = range(3)
SAMPLINGS = ("replacement", "shuffle", "full")
# plan columns (P_LOSS_KERNEL: losses.loss_kernel address, or GIVEN_GRADIENT; P_DRAW,
# P_GATHER: native addresses of _draw_batch and _gather, 0 for "full" sampling)
(P_LOSS_KERNEL, P_SAMPLING, P_BATCH, P_T0, P_NITER, P_EPOCH, P_STATS_EVERY, P_DRAW,
 P_GATHER) = range(9)  # fmt: skip
PLAN_COLUMNS = P_GATHER + 1
# loss code meaning "y_float holds dL/dlogits" (diagnose without targets)
GIVEN_GRADIENT = -1
# models columns and status columns
M_FIRST, M_COUNT, M_PBEGIN, M_PEND, M_NARROW = range(5)
S_DONE, S_DIVERGED = range(2)
_STREAM_REPLACEMENT = np.uint32(0)
_STREAM_SHUFFLE = np.uint32(1)
_ZERO32 = np.uint32(0)
_CHUNK_SECONDS = 0.2

# ----------------------------------------------------------------------------- layer statistics
# Per-layer statistics of one forward/backward pass (record_stats and
# fastinit.diagnose).  Columns of a stats row; NaN where not applicable.
STAT_FIELDS = (
    "pre_mean",  # mean of the pre-activations z = a_prev @ W + b (batch x units)
    "pre_std",  # their standard deviation (ddof 0)
    "act_mean",  # mean of the activations a = f(z)
    "act_std",
    "grad_mean",  # mean of the back-propagated gradient dL/dz
    "grad_std",
    "saturated",  # sigmoid: fraction of a < 0.01 or a > 0.99; tanh: |a| > 0.99
    "inactive",  # ReLU family: fraction of entries with |f'(z)| < 0.05 (relu: f' == 0)
    "dead",  # ReLU family: fraction of units inactive on every row of the batch
)
(
    F_PRE_MEAN,
    F_PRE_STD,
    F_ACT_MEAN,
    F_ACT_STD,
    F_GRAD_MEAN,
    F_GRAD_STD,
    F_SATURATED,
    F_INACTIVE,
    F_DEAD,
) = range(len(STAT_FIELDS))
SATURATION = 0.99  # sigmoid: a < 1 - SATURATION or a > SATURATION; tanh: |a| > SATURATION
INACTIVE_SLOPE = 0.05  # ReLU family: |f'(z)| below this is "inactive" (relu: exactly 0)


# ----------------------------------------------------------------------------- compiled
@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def _draw_batch(plan, key, t, n, idx, perm):
    """Fill ``idx`` with the rows of iteration ``t`` (not "full"); returns how many.

    "replacement": draw ``r`` of iteration ``t`` is ``uniform_index`` number
    ``t * b + r`` of its stream.  "shuffle": a Fisher-Yates permutation per
    epoch (``perm``, redrawn when the epoch changes: swap ``i`` with number
    ``epoch * n + i`` in ``[0, i]``, ``i = n-1 .. 1``), read ``b`` rows at a time.
    One loop draws for both, so the generator is compiled once.
    """
    b = plan[P_BATCH]
    replacement = plan[P_SAMPLING] == REPLACEMENT
    if replacement:
        draws, base, stream = b, t * b, _STREAM_REPLACEMENT
    else:
        per_epoch = (n + b - 1) // b
        epoch = t // per_epoch
        draws, base, stream = 0, epoch * n, _STREAM_SHUFFLE
        if plan[P_EPOCH] != epoch:
            for i in range(n):
                perm[i] = i
            draws = n - 1
            plan[P_EPOCH] = epoch
    for r in range(draws):
        i = r if replacement else n - 1 - r
        j = uniform_index(key[0], key[1], stream, _ZERO32, base + i, n if replacement else i + 1)
        if replacement:
            idx[r] = j
        else:
            perm[i], perm[j] = perm[j], perm[i]
    if replacement:
        return b
    start = (t % per_epoch) * b
    m = min(b, n - start)
    for r in range(m):  # explicit loops: slice assignment compiles an error formatter
        idx[r] = perm[start + r]
    return m


def _plan(sampling: int, batch: int) -> np.ndarray:
    """A plan (int64, ``PLAN_COLUMNS``) for ``sampling`` and ``batch``; no epoch drawn yet."""
    plan = np.zeros(PLAN_COLUMNS, np.int64)
    plan[P_SAMPLING], plan[P_BATCH], plan[P_EPOCH] = sampling, batch, -1
    return plan


def run_key(seed: int) -> np.ndarray:
    """The key a run's minibatch draws use: words 0 and 1 of stream ``SAMPLING_STREAM`` of ``seed``.

    Not ``seed`` itself: a model draws layer 0's weights and biases from streams
    0 and 1 of its seed, the streams the draws use, so with equal seeds the
    rows would be picked by the initial weights.  The words of another stream
    of the seed are independent of them.

    Parameters
    ----------
    seed : int
        The run's seed, in [0, 2**64).

    Returns
    -------
    numpy.ndarray of uint32, (2,)
        ``fastinit.random.random_bits(2, seed=seed, stream=SAMPLING_STREAM)``.
    """
    k0, k1, s0, s1 = (int(w) for w in split_key(seed, SAMPLING_STREAM))
    return np.array(philox4x32_10((0, 0, s0, s1), (k0, k1))[:2], dtype=np.uint32)


def epoch_permutation(n: int, key: np.ndarray, epoch: int) -> np.ndarray:
    """The order in which "shuffle" sampling visits ``n`` rows in ``epoch``.

    Parameters
    ----------
    n : int
        Rows in the data set.
    key : numpy.ndarray of uint32, (2,)
        The run's key (:func:`run_key`).
    epoch : int
        Epoch number, >= 0.

    Returns
    -------
    numpy.ndarray of int64, (n,)
        The permutation :func:`_draw_batch` draws for that epoch (used by the
        CUDA loop, which gathers on the device).
    """
    plan = _plan(SHUFFLE, n)  # one batch per epoch: iteration ``epoch`` starts it
    perm = np.empty(n, np.int64)
    _draw_batch(plan, key, epoch, n, np.empty(n, np.int64), perm)
    return perm


@native_function
def _gather(x, y_int, y_float, idx, m, xbuf, ybuf_int, ybuf_float):
    """Copy the rows ``idx[:m]`` of the inputs and targets into the batch buffers."""
    for r in range(m):
        i = idx[r]
        for c in range(x.shape[1]):
            xbuf[r, c] = x[i, c]
    if y_int.shape[0]:
        for r in range(m):
            ybuf_int[r] = y_int[idx[r]]
    if y_float.shape[0]:
        for r in range(m):
            for c in range(y_float.shape[1]):
                ybuf_float[r, c] = y_float[idx[r], c]


def _draw_signature() -> Any:
    """The numba signature :func:`_draw_batch` is compiled for."""
    i64 = types.int64
    return i64(i64[::1], types.uint32[::1], i64, i64, i64[::1], i64[::1])


def _gather_signature(dtype: Any) -> Any:
    """The numba signature :func:`_gather` is compiled for (``dtype``: numba or NumPy)."""
    rows, i64 = types.Array(float_type(dtype), 2, "C"), types.int64
    return types.none(rows, i64[::1], rows, i64[::1], i64, rows, i64[::1], rows)


@functools.cache
def _sampler_addresses(dtype_name: str) -> tuple[int, int]:
    """Native addresses of :func:`_draw_batch` and :func:`_gather` (compiled on first use)."""
    draw = native_address(_draw_batch, _draw_signature())
    return draw, native_address(_gather, _gather_signature(dtype_name))


_draw_by_address = native_caller(lambda *a: _draw_signature(), "draw_batch")
_gather_by_address = native_caller(lambda *a: _gather_signature(a[0].dtype), "gather")


# below this std the squares of the deviations lose bits as subnormals (2**-1022 = 1.5e-154**2)
_STD_UNDERFLOW = 1e-150


@njit(cache=True, error_model="numpy")
def mean_std(v: np.ndarray) -> tuple[float, float]:
    """``(mean, std)`` of a flat array in float64, two passes (ddof 0; no cancellation).

    Where the sum or the sum of squares overflows float64 (finite values past
    about 1e154: their squares are inf), or the deviations' squares underflow (a
    std below about 1e-150), both passes are summed again with every value
    scaled by the power of 2 just above the largest magnitude (exact), so
    finite values give their finite mean and std; values that are not finite
    give results that are not.

    Parameters
    ----------
    v : 1-D float array
        The values (at least one).

    Returns
    -------
    mean, std : float
        Their mean and standard deviation, summed in float64
        (:func:`fastinit._fastmath.sum4`).
    """
    n = v.shape[0]
    mean = fm.sum4(v, 0.0, False) / n
    std = math.sqrt(fm.sum4(v, mean, True) / n)
    if not (math.isinf(mean) or math.isinf(std) or std < _STD_UNDERFLOW):
        return mean, std  # (NaN: a NaN value, or inf - inf)
    top = 0.0
    for i in range(n):
        top = max(top, abs(v[i]))  # inf if a value is: no overflow to undo
    if math.isinf(top) or top == 0.0:
        return mean, std
    scale = math.ldexp(1.0, min(-math.frexp(top)[1], 1000))  # |v * scale| < 1, exact
    total = 0.0
    for i in range(n):
        total += v[i] * scale
    mean = total / n
    total = 0.0
    for i in range(n):
        e = v[i] * scale - mean
        total += e * e
    return mean / scale, math.sqrt(total / n) / scale


SATURATING = (SIGMOID, TANH)  # activations with a saturated fraction
RELU_FAMILY = (RELU, LEAKY_RELU, ELU, SELU, GELU, GELU_TANH, SILU, SOFTPLUS)  # inactive, dead


def stats_apply(code: int) -> tuple[bool, bool]:
    """Whether an activation has a saturated fraction, and inactive and dead ones.

    Parameters
    ----------
    code : int
        The activation's code (:mod:`fastinit.activations`).

    Returns
    -------
    saturated, dead : bool
        :data:`SATURATING` and :data:`RELU_FAMILY` membership: the columns
        :func:`activation_stats` writes (NaN there means the signal overflowed).
    """
    return code in SATURATING, code in RELU_FAMILY


@njit(cache=True, error_model="numpy")
def _all_finite(af: np.ndarray, d: np.ndarray) -> bool:
    """Whether every entry of the flat ``af`` and of the 2-D ``d`` is finite."""
    for i in range(af.shape[0]):
        if not np.isfinite(af[i]):
            return False
    for i in range(d.shape[0]):
        for j in range(d.shape[1]):
            if not np.isfinite(d[i, j]):
                return False
    return True


@njit(cache=True, error_model="numpy")
def activation_stats(a: np.ndarray, d: np.ndarray, code: int, out: np.ndarray) -> None:
    """Saturation and inactivity of one layer into ``out[F_SATURATED:F_DEAD + 1]``.

    ``a`` and ``d`` are the layer's activations and derivatives ``f'(z)``, (m, n).
    Saturated (sigmoid, tanh; NaN otherwise): the fraction of entries with ``a``
    outside ``[1 - SATURATION, SATURATION]`` (sigmoid) or ``|a| > SATURATION``
    (tanh).  Inactive and dead (ReLU family: relu, leaky_relu, elu, selu, gelu,
    gelu_tanh, silu, softplus; NaN otherwise): the fraction of entries with ``|f'(z)| <
    INACTIVE_SLOPE`` (relu: zero output and zero gradient), and of units inactive
    on every row of the batch (as in :mod:`fastinit.experiments.histogram`).  A
    layer whose ``a`` or ``d`` holds inf or NaN (the signal overflowed) gets NaN
    in the columns that apply: a NaN entry is neither in a tail nor inactive.

    Parameters
    ----------
    a : (m, n) C-contiguous float array
        The layer's activations ``f(z)``.
    d : (m, n) float array
        The layer's derivatives ``f'(z)``.
    code : int
        The layer's activation code (:mod:`fastinit.activations`).
    out : float64 array, (len(STAT_FIELDS),)
        The layer's stats row; only the columns that apply to ``code`` are
        written, the others are left as they are.
    """
    m, n = a.shape
    af = a.reshape(a.size)
    t = type(af[0])
    hi, lo = t(SATURATION), t(1.0 - SATURATION)
    relu_family = code in RELU_FAMILY
    if not _all_finite(af, d):
        if code in SATURATING:
            out[F_SATURATED] = np.nan
        if relu_family:
            out[F_INACTIVE] = np.nan
            out[F_DEAD] = np.nan
        return
    hits = 0
    if code == SIGMOID:
        for i in range(af.shape[0]):  # integer counts: the loops vectorize
            hits += (af[i] < lo) | (af[i] > hi)
        out[F_SATURATED] = hits / (m * n)
    elif code == TANH:
        for i in range(af.shape[0]):
            hits += abs(af[i]) > hi
        out[F_SATURATED] = hits / (m * n)
    if relu_family:
        slope = t(INACTIVE_SLOPE)
        counts = np.zeros(n, np.int64)
        for i in range(m):
            for j in range(n):
                counts[j] += abs(d[i, j]) < slope
        inactive = 0
        dead = 0
        for j in range(n):
            inactive += counts[j]
            dead += counts[j] == m
        out[F_INACTIVE] = inactive / (m * n)
        out[F_DEAD] = dead / n


@njit(cache=True, error_model="numpy")
def forward_stats(
    ops: np.ndarray,
    params: np.ndarray,
    layers: np.ndarray,
    act_params: np.ndarray,
    first: int,
    count: int,
    x: np.ndarray,
    work: np.ndarray,
    zero: np.ndarray,
    out: np.ndarray,
) -> np.ndarray:
    """:func:`fastinit.dense.forward_net` taking each layer's statistics on the way.

    The same GEMM and bias loop, then the pre-activations ``z = a_prev @ W + b``
    (which the forward pass does not keep: it stores only ``f(z)`` and ``f'(z)``)
    are measured in place before the layer's bias-and-activation kernel
    (:func:`fastinit.activations.call_bias_activate`) runs with the zero bias
    ``zero`` (``max(fan_out)`` zeros): no extra GEMM, and the same values as
    ``forward_net`` (``z + 0 == z``).  Row ``k`` of
    ``out`` (float64, ``(layers, len(STAT_FIELDS))``) receives layer ``k``'s
    ``pre_*``, ``act_*``, ``saturated``, ``inactive`` and ``dead`` columns.
    Returns the logits block, as ``forward_net``.

    Parameters
    ----------
    ops, params, layers, act_params, first, count, x, work
        As for :func:`fastinit.dense.forward_net`.
    zero : 1-D float array of the model dtype
        At least ``max(fan_out)`` zeros (the bias of the activation kernel).
    out : float64 array, (layers, len(STAT_FIELDS))
        Receives the statistics of layers ``first .. first+count-1`` in the
        rows of the same index.

    Returns
    -------
    (m, fan_out of the last layer) array
        The logits block, a view of ``work``.
    """
    m = x.shape[0]
    a = x
    off = 0
    for k in range(first, first + count):
        n = layers[k, FAN_OUT]
        act = block(work, off, m, n)
        d = block(work, off + m * n, m, n)
        gemm(ops, NO_TRANS, a, NO_TRANS, weight(params, layers, k), 1.0, 0.0, d)
        b = bias(params, layers, k)
        for i in range(m):
            for j in range(n):
                d[i, j] += b[j]
        row = out[k]
        row[F_PRE_MEAN], row[F_PRE_STD] = mean_std(work[off + m * n : off + 2 * m * n])
        code = layers[k, ACT]
        p0, p1 = act_params[k, 0], act_params[k, 1]
        call_bias_activate(layers[k, KERNEL], act, d, zero[:n], p0, p1)
        row[F_ACT_MEAN], row[F_ACT_STD] = mean_std(work[off : off + m * n])
        activation_stats(act, d, code, row)
        a = act
        off += 2 * m * n
    return a


@njit(cache=True, error_model="numpy")
def gradient_stats(
    layers: np.ndarray, first: int, count: int, m: int, work: np.ndarray, out: np.ndarray
) -> None:
    """``grad_mean``, ``grad_std`` of ``dL/dz`` per layer, after :func:`backward_net`.

    The backward pass leaves ``dL/dz_k`` in layer ``k``'s derivative block.

    Parameters
    ----------
    layers : numpy.ndarray of int64, (n_layers, LAYER_COLUMNS)
        The layer table.
    first, count : int
        The layers of the backward pass.
    m : int
        Rows of the batch.
    work : 1-D float array
        The work array of the forward and backward passes.
    out : float64 array, (layers, len(STAT_FIELDS))
        Rows ``first .. first+count-1`` receive their ``grad_mean`` and
        ``grad_std`` columns.
    """
    off = 0
    for k in range(first, first + count):
        n = layers[k, FAN_OUT]
        out[k, F_GRAD_MEAN], out[k, F_GRAD_STD] = mean_std(work[off + m * n : off + 2 * m * n])
        off += 2 * m * n


@njit(inline="always", cache=True, error_model="numpy")
def _loss_and_output_grad(logits, y_int, y_float, loss_kernel, row_loss):
    """The minibatch loss; ``logits`` becomes ``dL/dlogits`` (given as ``y_float``
    for ``GIVEN_GRADIENT``, whose loss is reported as 0)."""
    if loss_kernel == GIVEN_GRADIENT:
        for r in range(logits.shape[0]):
            for c in range(logits.shape[1]):
                logits[r, c] = y_float[r, c]
        return 0.0
    return _losses.call_loss(loss_kernel, logits, y_int, y_float, True, row_loss)


@njit(inline="always", cache=True, error_model="numpy")
def _backward_and_update(ops, j, x, net, opt, work):
    """Backward pass of model ``j`` after its forward pass and loss, then its update."""
    params, grads, layers, _, models = net
    codes, hyper, steps, _, _ = opt
    first, count = models[j, M_FIRST], models[j, M_COUNT]
    # plain SGD without weight decay is fused into the backward pass (the dW GEMM
    # updates W in place); with decay, BLAS's beta = 1 - lr * wd rounded to float32
    # would bias the decay (lr * wd = 1e-8 rounds it away), so it runs unfused
    fused = codes[j] == _optim.SGD_CODE and hyper[j, _optim.WD] == 0.0
    lr = hyper[j, _optim.LR] if fused else 0.0
    call_backward_net(ops, params, grads, layers, first, count, x, work, lr, hyper[j, _optim.WD])
    if lr == 0.0:
        _update(j, models, opt, params, grads)
    elif codes[j] != _optim.NONE:
        steps[j] += 1


@njit(inline="always", cache=True, error_model="numpy")
def _step_model(ops, j, batch, loss_kernel, net, opt, work, row_loss):
    """Forward, loss, backward and update of model ``j`` on ``batch``; returns the loss."""
    x, y_int, y_float = batch
    params, _, layers, act_params, models = net
    first, count = models[j, M_FIRST], models[j, M_COUNT]
    logits = call_forward_net(ops, params, layers, act_params, first, count, x, work)
    loss = _loss_and_output_grad(logits, y_int, y_float, loss_kernel, row_loss)
    if math.isfinite(loss):
        _backward_and_update(ops, j, x, net, opt, work)
    return loss


@njit(inline="always", cache=True, error_model="numpy")
def _step_recorded(ops, j, batch, loss_kernel, net, opt, work, row_loss, stats_row, zero):
    """:func:`_step_model` that also writes the layer statistics of this step
    (weights before the update) to ``stats_row`` (see :data:`STAT_FIELDS`)."""
    x, y_int, y_float = batch
    params, _, layers, act_params, models = net
    first, count = models[j, M_FIRST], models[j, M_COUNT]
    logits = forward_stats(ops, params, layers, act_params, first, count, x, work, zero, stats_row)
    loss = _loss_and_output_grad(logits, y_int, y_float, loss_kernel, row_loss)
    if math.isfinite(loss):
        _backward_and_update(ops, j, x, net, opt, work)
        gradient_stats(layers, first, count, x.shape[0], work, stats_row)
    return loss


@njit(inline="always", cache=True, error_model="numpy")
def _step_narrow(j, batch, loss_kernel, net, opt, work, row_loss):
    """:func:`_step_model` with the feature-major kernels of :mod:`fastinit.narrow`."""
    x, y_int, y_float = batch
    params, grads, layers, act_params, models = net
    first, count = models[j, M_FIRST], models[j, M_COUNT]
    loss = narrow_step(params, grads, layers, act_params, first, count, x, y_int, y_float,
                       loss_kernel, work, row_loss)  # fmt: skip
    if math.isfinite(loss):
        _update(j, models, opt, params, grads)
    return loss


@njit(inline="always", cache=True, error_model="numpy")
def _update(j, models, opt, params, grads):
    """Model ``j``'s optimizer step from the gradients in ``grads`` (none for ``NONE``)."""
    codes, hyper, steps, state, kernels = opt
    if codes[j] == _optim.NONE:
        return
    steps[j] += 1
    p0, p1 = models[j, M_PBEGIN], models[j, M_PEND]
    _optim.call_update(
        kernels[j], hyper[j], steps[j], params[p0:p1], grads[p0:p1], state[0, p0:p1],
        state[1, p0:p1],
    )  # fmt: skip


@njit(cache=True, error_model="numpy", no_cfunc_wrapper=True)
def train_chunk(
    ops: np.ndarray,
    plan: np.ndarray,
    key: np.ndarray,
    data: tuple,
    net: tuple,
    opt: tuple,
    bufs: tuple,
    record: tuple,
    with_stats: bool | None,
    with_narrow: bool | None,
) -> None:
    """Run iterations ``plan[P_T0] .. + plan[P_NITER]`` for every live model.

    Parameters
    ----------
    ops : numpy.ndarray of int64, (6,)
        :func:`fastinit.dense.ops_table` of the model dtype.
    plan : numpy.ndarray of int64, (PLAN_COLUMNS,)
        The run's plan (columns ``P_*``): loss kernel, sampling, batch size,
        first iteration and count, the current "shuffle" epoch (updated),
        ``P_STATS_EVERY`` and the sampler addresses.
    key : numpy.ndarray of uint32, (2,)
        The run's key (:func:`run_key`).
    data : tuple
        ``(x, y_int, y_float)``: the inputs and the targets
        (:func:`fastinit.losses.prepare_targets`).  With "full" sampling the
        data are used in place (no copy).
    net : tuple
        ``(params, grads, layers, act_params, models)``: the flat parameters
        and gradients of all models, their layer tables and activation
        parameters, concatenated, and the models table (one row per model,
        columns ``M_*``).
    opt : tuple
        ``(codes, hyper, steps, state, kernels)``: per model the optimizer code,
        hyperparameters, step count (updated) and kernel address; ``state``
        the optimizer slots in the parameter layout.
    bufs : tuple
        ``(xbuf, ybuf_int, ybuf_float, row_loss, work, idx, perm)``: the
        minibatch buffers, the per-row loss, the work array, the drawn row
        indices and the "shuffle" permutation.
    record : tuple
        ``(losses, status, stats, zero)``: ``losses[j, t]`` receives model
        ``j``'s minibatch loss at iteration ``t`` (NaN once it has diverged),
        ``status[j]`` counts its completed updates and holds the iteration
        where it diverged (-1 if none).  With ``plan[P_STATS_EVERY] = k > 0``,
        every iteration ``t`` divisible by ``k`` writes the layer statistics of
        every live model into ``stats[t // k]`` (``(layers of all models,
        len(STAT_FIELDS))``, rows as in the layer table); ``zero`` holds the
        zero biases of :func:`forward_stats`.
    with_stats, with_narrow : None or True
        Whether the run records statistics, and has networks on the
        feature-major path.  numba prunes the branches testing them against
        ``None`` before compiling, so the statistics recorder and the
        feature-major kernels are compiled (in their own specializations of
        this function) only for runs that use them.  That halves the compile
        time of the common case (measured on the empty cache: 23 s with both,
        13 s without).
    """
    x, y_int, y_float = data
    xbuf, ybuf_int, ybuf_float, row_loss, work, idx, perm = bufs
    losses, status, stats, zero = record
    every = plan[P_STATS_EVERY]
    models = net[4]
    n = x.shape[0]
    for t in range(plan[P_T0], plan[P_T0] + plan[P_NITER]):
        alive = 0
        for j in range(models.shape[0]):
            alive += status[j, S_DIVERGED] < 0
        if alive == 0:
            return
        if plan[P_SAMPLING] == FULL:
            batch = (x, y_int, y_float)
        else:
            m = _draw_by_address(plan[P_DRAW], (plan, key, t, n, idx, perm))
            _gather_by_address(
                plan[P_GATHER], (x, y_int, y_float, idx, m, xbuf, ybuf_int, ybuf_float)
            )
            batch = (xbuf[:m], ybuf_int[:m], ybuf_float[:m])
        record_now = every > 0 and t % every == 0
        stats_row = stats[t // every if record_now else 0]
        loss_kernel = plan[P_LOSS_KERNEL]
        for j in range(models.shape[0]):
            if status[j, S_DIVERGED] >= 0:
                losses[j, t] = np.nan
                continue
            if with_stats is not None and record_now:
                loss = _step_recorded(
                    ops, j, batch, loss_kernel, net, opt, work, row_loss, stats_row, zero
                )
            elif with_narrow is not None and models[j, M_NARROW] and loss_kernel != GIVEN_GRADIENT:
                loss = _step_narrow(j, batch, loss_kernel, net, opt, work, row_loss)
            else:
                loss = _step_model(ops, j, batch, loss_kernel, net, opt, work, row_loss)
            losses[j, t] = loss
            if math.isfinite(loss):
                status[j, S_DONE] += 1
            else:
                status[j, S_DIVERGED] = t


# ----------------------------------------------------------------------------- Python side
@dataclass
class History:
    """What a training run recorded.

    Attributes
    ----------
    loss : numpy.ndarray of float64
        Minibatch loss of every iteration run, before that iteration's update.
        After a divergence its last entry is the non-finite loss, except when
        the last update applied left non-finite parameters after a finite loss
        (then ``diverged_at == iterations == len(loss)``).
    iterations : int
        Updates applied.
    wall_time : float
        Seconds for the whole ``fit`` call (compilation on first use included).
    status : str
        ``"ok"``, ``"diverged"`` or ``"interrupted"`` (Ctrl-C; also when the
        network had diverged before the Ctrl-C was taken: ``diverged_at`` says so).
    diverged_at : int or None
        Iteration whose loss was non-finite (``== iterations``), or None.  A
        run whose last update left non-finite weights diverged at the next
        iteration, ``iterations``, whose loss would be the first non-finite one.
    settings : dict
        The run's ``loss``, ``sampling``, ``batch_size`` (rows per step: at most
        n for ``"shuffle"``, n for ``"full"``) and ``seed``.
    stats : dict of numpy.ndarray or None
        With ``record_stats=True``: ``"iteration"`` (R,) int64, the iterations
        ``0, k, 2k, ...`` recorded (``k = stats_every``), and one ``(R, layers)``
        float64 array per name in :data:`STAT_FIELDS` (``pre_mean``,
        ``pre_std``, ``act_mean``, ``act_std``, ``grad_mean``, ``grad_std``,
        ``saturated``, ``inactive``, ``dead``): the statistics of that
        iteration's minibatch with the weights before its update, defined as in
        :func:`fastinit.diagnose` (``grad_*`` are of ``dL/dz``).  NaN where not
        applicable, and for the gradients of a diverged iteration.  None otherwise.
    """

    loss: np.ndarray
    iterations: int
    wall_time: float
    status: str = "ok"
    diverged_at: int | None = None
    settings: dict[str, Any] = field(default_factory=dict, repr=False)
    stats: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def raise_if_interrupted(self) -> History:
        """Re-raise the Ctrl-C that ``fit`` caught, if it caught one; else return self.

        ``fit`` returns what it recorded when interrupted (``status ==
        "interrupted"``); a caller that must not carry on as if the run had
        finished (an experiment, a sweep run) calls this on the result.

        Returns
        -------
        History
            ``self``, when the run was not interrupted.

        Raises
        ------
        KeyboardInterrupt
            If ``status == "interrupted"``.
        """
        if self.status == "interrupted":
            raise KeyboardInterrupt
        return self


@dataclass
class _Run:
    """Arrays handed to :func:`train_chunk` (all allocated once per run)."""

    args: tuple
    plan: np.ndarray
    params: np.ndarray
    grads: np.ndarray
    table: np.ndarray
    state: np.ndarray
    opt_steps: np.ndarray
    losses: np.ndarray
    status: np.ndarray
    stats: np.ndarray


def prepare_x(model: Any, X: Any, name: str = "X", others: Sequence[Any] = ()) -> np.ndarray:
    """Validate ``X`` against a model and return it C-contiguous in the model dtype.

    float32 data for a float32 model is used as is (no copy); other real dtypes
    (float64, integers such as uint8 pixels) are cast once, here, as are
    read-only or non-contiguous arrays (so the kernels see one array type), and
    a view of the parameters of ``model`` (or of ``others``), which a run would
    overwrite as it reads it (``fit(model.weights[0], ...)``).

    Parameters
    ----------
    model : MLP
        The model the data are for (its ``sizes[0]`` and ``dtype``).
    X : array_like
        Real-valued, finite, shape ``(n, sizes[0])`` with n >= 1.
    name : str, default "X"
        Argument name for error messages.
    others : sequence of MLP
        Further models trained on ``X`` (:func:`fit_many`).

    Returns
    -------
    numpy.ndarray of the model dtype, (n, sizes[0])
        C-contiguous and writeable, apart from every model's parameters; ``X``
        itself when it already is one.

    Raises
    ------
    ValueError
        For a non-real dtype, a wrong shape, or values that are not finite (or
        overflow the model dtype), naming ``name``.
    """
    n_in = model.sizes[0]
    X = as_array(X, name, f"an array of shape (n, {n_in})")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected a real-valued array, got dtype {X.dtype}")
    if X.ndim != 2 or X.shape[1] != n_in or X.shape[0] == 0:
        raise ValueError(f"{name}: expected shape (n, {n_in}) with n >= 1, got {X.shape}")
    X = cast_finite(X, model.dtype, name)
    shared = any(np.may_share_memory(X, m._params) for m in (model, *others))
    return X if X.flags.writeable and not shared else X.copy()


def _check_models(models: Any) -> list:
    if not isinstance(models, Sequence) or not models:
        raise ValueError("models: expected a non-empty sequence of MLP models")
    first = models[0]
    for i, m in enumerate(models):
        if not hasattr(m, "_layers"):
            raise ValueError(f"models[{i}]: expected an MLP, got {type(m).__name__}")
        differences = (
            (m.dtype != first.dtype, f"dtype {m.dtype.name}, models[0] {first.dtype.name}"),
            (m.sizes[0] != first.sizes[0], f"{m.sizes[0]} inputs, models[0] {first.sizes[0]}"),
            (m.sizes[-1] != first.sizes[-1], f"{m.sizes[-1]} outputs, models[0] {first.sizes[-1]}"),
        )
        for differs, text in differences:
            if differs:
                raise ValueError(f"models: models[{i}] has {text}; all models need the same "
                                 "dtype, input and output sizes")  # fmt: skip
        if getattr(m, "device", "cpu") != getattr(first, "device", "cpu"):
            raise ValueError("models: all models need to be on the same device (see MLP.to)")
    if len({id(m) for m in models}) != len(models):
        raise ValueError("models: a model appears more than once")
    return list(models)


def _check_optimizers(optimizer: Any, n_models: int) -> list:
    if optimizer is None:
        optimizer = _optim.SGD(0.01)
    if isinstance(optimizer, (list, tuple)):  # one per model
        optimizers = [_optim.get(o, f"optimizer[{k}]") for k, o in enumerate(optimizer)]
        if len(optimizer) != n_models:  # ("adam", {...}) fails above, naming its dict
            raise ValueError(f"optimizer: expected {n_models} optimizers, got {len(optimizer)}")
        return optimizers
    return [_optim.get(optimizer)] * n_models


def _check_in_range(opt: Any, dtype: np.dtype) -> None:
    """Refuse a hyperparameter that the model dtype rounds to 0 or to infinity.

    The kernels round ``lr``, ``eps`` and ``weight_decay`` to the model dtype once:
    in float32 an ``lr`` of 1e-50 would train nothing and an ``eps`` of 1e-50
    would divide 0 by 0 (NaN) where a gradient is 0.
    """
    for name in ("lr", "eps", "weight_decay"):
        value = float(getattr(opt, name, 0.0))
        if value > 0:  # 0: no weight decay
            check_dtype_holds(value, f"optimizer.{name}", dtype, zero=name == "weight_decay")


def _iterations(iterations: Any, epochs: Any, n: int, batch: int, sampling: str) -> int:
    if (iterations is None) == (epochs is None):
        raise ValueError("iterations, epochs: give exactly one of them")
    if iterations is not None:
        return check_int(iterations, "iterations", low=0)
    per_epoch = 1 if sampling == "full" else -(-n // batch)
    return check_int(epochs, "epochs", low=0) * per_epoch


def _layer_tables(models: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tables, acts, rows = [], [], []
    p_off = layer_off = 0
    for m in models:
        t = with_kernels(m._layers, m.dtype)
        t[:, W_OFF] += p_off
        t[:, B_OFF] += p_off
        tables.append(t)
        acts.append(m._act_params)
        narrow = is_narrow(m.sizes)  # the feature-major kernels of fastinit.narrow
        rows.append((layer_off, len(t), p_off, p_off + m._params.size, narrow))
        p_off += m._params.size
        layer_off += len(t)
    return np.concatenate(tables), np.concatenate(acts), np.array(rows, dtype=np.int64)


def _work(model: Any, rows: int) -> int:
    size = work_size(model._layers, rows)
    return max(size, narrow_work_size(model._layers, rows)) if is_narrow(model.sizes) else size


def _buffers(models: list, X: np.ndarray, y_int, y_float, sampling: int, batch: int) -> tuple:
    """``(xbuf, ybuf_int, ybuf_float, row_loss, work, idx, perm)`` for one run."""
    dtype, n = models[0].dtype, X.shape[0]
    rows = 0 if sampling == FULL else batch  # "full" uses the data in place
    return (
        np.empty((rows, X.shape[1]), dtype),
        np.empty(rows if y_int.size else 0, np.int64),
        np.empty((rows if y_float.size else 0, y_float.shape[1]), dtype),
        np.empty(rows or n, dtype),
        np.empty(max(_work(m, rows or n) for m in models), dtype),
        np.empty(rows, np.int64),
        np.empty(n if sampling == SHUFFLE else 0, dtype=np.int64),
    )


_CHECKED_ABOVE = 1 << 26  # bytes: smaller runs skip the 0.3 ms of reading the memory available


def _least_run_bytes(models: list, fa: FitArguments) -> int:
    """Bytes of a CPU run's largest arrays: its loss histories and the buffers of
    :func:`_buffers` for its rows (gathered minibatch, work array).

    A kernel that overcommits memory lets NumPy allocate buffers far beyond it,
    and kills the process that then writes them: :func:`fit_many` refuses a run
    above :func:`fastinit._system.available_memory` first (runs above
    ``_CHECKED_ABOVE`` bytes).  Python integers: no overflow for sizes no array
    can have.
    """
    rows = 0 if fa.mode == FULL else fa.batch  # "full" uses the data in place, as in _buffers
    work = max(_work(m, rows or fa.X.shape[0]) for m in models)
    itemsize = np.dtype(models[0].dtype).itemsize
    return 8 * fa.n_iter * len(models) + itemsize * (rows * fa.X.shape[1] + work)


def _build_run(
    models, opts, X, y_int, y_float, loss, sampling, batch, seed, n_iter, stats_every=0
) -> _Run:
    """Allocate a run; ``loss`` is a loss spec or a loss code (``GIVEN_GRADIENT``).

    On an empty cache, a helper process compiles the dense kernels meanwhile
    (:mod:`fastinit._compile_helper`); it is killed if this fails or is interrupted.
    """
    dtype = models[0].dtype
    helper = _compile_helper.start(np.dtype(dtype).name)
    try:
        return _allocate_run(models, opts, X, y_int, y_float, loss, sampling, batch, seed,
                             n_iter, stats_every, helper)  # fmt: skip
    finally:
        if helper is not None:
            helper.close()


def _allocate_run(
    models, opts, X, y_int, y_float, loss, sampling, batch, seed, n_iter, stats_every, helper
) -> _Run:
    """:func:`_build_run` with its helper (or None)."""
    dtype = models[0].dtype
    layers, act_params, table = _layer_tables(models)
    states = [o.state_for(m, m._params.size, dtype) for m, o in zip(models, opts, strict=True)]
    if len(models) == 1:
        params, state = models[0]._params, states[0].slots
    else:
        params = np.concatenate([m._params for m in models])
        state = np.zeros((2, params.size if any(s.slots.size for s in states) else 0), dtype)
        for s, row in zip(states, table, strict=True):
            state[:, row[M_PBEGIN] : row[M_PEND]] = s.slots if s.slots.size else 0
    grads = np.zeros_like(params)
    steps = np.array([s.step for s in states], dtype=np.int64)
    codes = np.array([o.code for o in opts], np.int64)
    kernels = np.array([_optim.optimizer_kernel(o.code, dtype) for o in opts], np.int64)
    opt = (codes, np.array([o.hyper() for o in opts]), steps, state, kernels)
    if isinstance(loss, int):  # GIVEN_GRADIENT
        loss_kernel = loss
    else:
        loss_kernel = _losses.loss_kernel(loss.code, dtype)
    plan = _plan(sampling, batch)
    plan[P_LOSS_KERNEL], plan[P_STATS_EVERY] = loss_kernel, stats_every
    key = run_key(seed)
    losses = np.full((len(models), n_iter), np.nan)
    status = np.zeros((len(models), 2), dtype=np.int64)
    status[:, S_DIVERGED] = -1
    # a (1, layers, fields) dummy when off: the kernel's argument types never change
    n_records = -(-n_iter // stats_every) if stats_every else 1
    stats = np.full((n_records, len(layers), len(STAT_FIELDS)), np.nan)
    zero = np.zeros(int(layers[:, FAN_OUT].max()) if stats_every else 0, dtype)  # zero biases
    args = (
        np.zeros(BACKWARD + 1, np.int64),  # the ops table, filled by _link_kernels
        plan,
        key,
        (X, y_int, y_float),
        (params, grads, layers, act_params, table),
        opt,
        _buffers(models, X, y_int, y_float, sampling, batch),
        (losses, status, stats, zero),
        True if stats_every else None,  # with_stats
        True if table[:, M_NARROW].any() else None,  # with_narrow
    )
    run = _Run(args, plan, params, grads, table, state, steps, losses, status, stats)
    _link_kernels(run, np.dtype(dtype).name, sampling != FULL, helper)
    return run


def _link_kernels(run: _Run, dtype_name: str, sampled: bool, helper: Any) -> None:
    """Put the dense kernels' and the sampler's addresses into the run.

    With a compile helper (:mod:`fastinit._compile_helper`) compiling the
    dense kernels, first compile :func:`train_chunk` for the run's argument
    types and the sampler, then wait for the helper and load its kernels from
    the cache.
    """
    if helper is not None:
        train_chunk.compile(tuple(train_chunk.typeof_pyval(a) for a in run.args))
    if sampled:
        run.plan[P_DRAW], run.plan[P_GATHER] = _sampler_addresses(dtype_name)
    if helper is not None:
        helper.wait()
    run.args[0][:] = ops_table(dtype_name)


def _write_back(models: list, opts: list, run: _Run) -> None:
    """Copy a multi-model run's parameters and optimizer state back into the models."""
    for j, (m, o) in enumerate(zip(models, opts, strict=True)):
        p0, p1 = run.table[j, M_PBEGIN], run.table[j, M_PEND]
        state = o.state_for(m, m._params.size, m.dtype)
        if len(models) > 1:
            m._params[:] = run.params[p0:p1]
            if state.slots.size:
                state.slots[:] = run.state[:, p0:p1]
        state.step = int(run.opt_steps[j])


def _bar_loss(recent: np.ndarray) -> float | tuple[float, float] | None:
    """What the bar shows of the networks' latest losses: the one network's, or the
    lowest and the highest finite ones of several (None: none finite)."""
    finite = recent[np.isfinite(recent)]
    if finite.size == 0:
        return None
    if recent.size == 1:
        return float(finite[0])
    return float(finite.min()), float(finite.max())


def _run_chunks(run: _Run, n_iter: int, bar: ProgressBar) -> str:
    """Call the kernel chunk by chunk; returns "ok" or "interrupted"."""
    done = 0
    chunk = min(n_iter, 4)
    try:
        while done < n_iter and (run.status[:, S_DIVERGED] < 0).any():
            run.plan[P_T0], run.plan[P_NITER] = done, chunk
            start = time.perf_counter()
            train_chunk(*run.args)
            seconds = time.perf_counter() - start
            done += chunk
            bar.update(done, _bar_loss(run.losses[:, done - 1]))
            chunk = int(min(max(1, _CHUNK_SECONDS * chunk / max(seconds, 1e-9)), 16 * chunk))
            chunk = min(chunk, n_iter - done)
    except KeyboardInterrupt:  # as a chunk returned, most likely: the bar says where it stopped
        reached = int((run.status[:, S_DONE] + (run.status[:, S_DIVERGED] >= 0)).max())
        if reached > done:
            bar.update(reached, _bar_loss(run.losses[:, reached - 1]))
        return "interrupted"
    finally:
        bar.close()
    return "ok"


def layer_stats(run: _Run, j: int, n_iter: int) -> dict[str, np.ndarray]:
    """Model ``j``'s recorded statistics: ``{"iteration": (R,), field: (R, layers)}``.

    Parameters
    ----------
    run : _Run
        A run built with statistics recording (``plan[P_STATS_EVERY] = k > 0``).
    j : int
        The model's index in the run.
    n_iter : int
        Iterations recorded; ``R = ceil(n_iter / k)``.

    Returns
    -------
    dict of numpy.ndarray
        ``"iteration"``: the int64 iterations ``0, k, 2k, ...``; one float64
        ``(R, layers of model j)`` copy per name in :data:`STAT_FIELDS`.
    """
    every = int(run.plan[P_STATS_EVERY])
    first, count = int(run.table[j, M_FIRST]), int(run.table[j, M_COUNT])
    iteration = np.arange(0, n_iter, every, dtype=np.int64)
    block_ = run.stats[: len(iteration), first : first + count]
    out = {"iteration": iteration}
    for f, name in enumerate(STAT_FIELDS):
        out[name] = block_[:, :, f].copy()
    return out


def outcome(status: str, done: int, diverged: int, params: np.ndarray) -> tuple[str, int | None]:
    """A run's ``History.status`` and ``diverged_at``, on the CPU and the GPU alike.

    Divergence is seen in the loss, which is computed before each update; an
    update that leaves non-finite parameters after a finite loss (the last one
    before the run ended) is caught here instead, from the parameters written
    back: the run diverged at iteration ``done``, whose loss would have been the
    first non-finite one.  An interrupted run stays ``"interrupted"`` whether or
    not it diverged first (``fit`` caught a Ctrl-C, so
    ``History.raise_if_interrupted`` must raise it), with that ``diverged_at``.

    Parameters
    ----------
    status : str
        ``"ok"`` or ``"interrupted"``: how the loop ended.
    done : int
        Updates applied.
    diverged : int
        Iteration whose loss was non-finite, -1 if none.
    params : numpy.ndarray
        The model's parameters after the run.

    Returns
    -------
    tuple of (str, int or None)
        The status (``"diverged"`` if either sign says so, unless interrupted)
        and ``diverged_at``.
    """
    if diverged >= 0:
        diverged_at = diverged
    elif not all_finite(params):
        diverged_at = done
    else:
        return status, None
    # a Ctrl-C stays one: raise_if_interrupted must raise it
    return ("interrupted" if status == "interrupted" else "diverged"), diverged_at


def _history(run: _Run, model: Any, j: int, status: str, seconds: float, settings: dict) -> History:
    done, diverged = (int(v) for v in run.status[j])
    recorded = done + (diverged >= 0)
    status, diverged_at = outcome(status, done, diverged, model._params)
    stats = None
    if run.plan[P_STATS_EVERY]:
        stats = layer_stats(run, j, recorded)
    return History(
        loss=run.losses[j, :recorded].copy(),
        iterations=done,
        wall_time=seconds,
        status=status,
        diverged_at=diverged_at,
        settings=settings,
        stats=stats,
    )


def batch_rows(
    n: int, batch_size: int, iteration: int, *, sampling: str = "replacement", seed: int = 0
) -> np.ndarray:
    """The data rows that ``fit``/``fit_many`` use at ``iteration`` (see the module docstring).

    Parameters
    ----------
    n : int
        Rows in the data set.
    batch_size : int
        As given to :func:`fit_many` (``"shuffle"`` uses ``min(batch_size, n)``).
    iteration : int
        Iteration number, >= 0.
    sampling, seed
        As given to :func:`fit_many`.

    Returns
    -------
    numpy.ndarray of int64
        Row indices, in batch order (all rows for ``"full"``).
    """
    with value_errors():
        n = check_int(n, "n", low=1, high=2**63 - 1)
        batch = check_int(batch_size, "batch_size", low=1)
        t = check_int(iteration, "iteration", low=0, high=2**63 - 1)
    mode = SAMPLINGS.index(check_choice(sampling, "sampling", SAMPLINGS))
    seed = check_seed(seed, "seed")
    if mode != REPLACEMENT:  # all n rows are listed (or permuted): an array of n
        check_shape((n,), "n")
    check_shape((min(batch, n) if mode == SHUFFLE else batch,), "batch_size")
    if mode == FULL:
        return np.arange(n, dtype=np.int64)
    batch = min(batch, n) if mode == SHUFFLE else batch
    plan = _plan(mode, batch)
    key = run_key(seed)
    idx = np.empty(batch, np.int64)
    m = _draw_batch(plan, key, t, n, idx, np.empty(n if mode == SHUFFLE else 0, np.int64))
    return idx[:m].copy()


def fit_many(
    models: Sequence[Any],
    X: Any,
    y: Any,
    *,
    optimizer: Any = None,
    batch_size: int = 128,
    iterations: int | None = None,
    epochs: int | None = None,
    sampling: str = "replacement",
    loss: str = "softmax_cross_entropy",
    seed: int = 0,
    progress: bool = True,
    record_stats: bool = False,
    stats_every: int = 10,
) -> list[History]:
    """Train several networks on the same minibatch sequence, in one compiled loop.

    Each iteration's batch is drawn and gathered once, then every network takes a
    step on it (the classic setup comparing initializations).  Because batches
    depend only on ``(seed, iteration)``, this equals training each network
    alone with :meth:`MLP.fit` and the same ``seed``, bit for bit.

    Parameters
    ----------
    models : sequence of MLP
        Networks with the same dtype and input/output sizes (hidden layers may differ).
    X : array_like, shape (n, n_in)
        Inputs; cast once to the model dtype unless already in it.
    y : array_like
        Targets for ``loss`` (see :func:`fastinit.losses.prepare_targets`).
    optimizer : Optimizer, str or list of them, optional
        One optimizer for all (each model keeps its own state in it) or one per
        model; default ``SGD(lr=0.01)``.
    batch_size : int
        Rows per minibatch, >= 1 (``"shuffle"`` uses at most n).
    iterations, epochs : int
        Exactly one: the number of updates, or of epochs (``ceil(n / batch_size)``
        iterations each; one for ``"full"``), >= 0 (0 trains nothing: an empty
        ``"ok"`` History).
    sampling : {"replacement", "shuffle", "full"}
        See the module docstring.
    loss : str
        ``softmax_cross_entropy``, ``sigmoid_cross_entropy`` or ``mse``.
    seed : int
        Key of the minibatch sampling, in [0, 2**64); not the models' own seeds.
        The batches are a function of ``seed`` and the iteration number within
        this call: a second call with the same seed draws the same batches
        again (the same epoch orders for ``"shuffle"``) instead of continuing
        the first call's sequence.  Train in one call, or give each call its
        own seed.
    progress : bool
        Show a progress bar on stderr when the run takes more than about 1 s; its
        ``loss`` is the lowest and the highest of the models' latest minibatch
        losses (``loss 0.2163-2.302``; those not finite left out).
    record_stats : bool
        Record per-layer statistics (see :data:`STAT_FIELDS` and
        :func:`fastinit.diagnose`) inside the compiled loop into
        ``History.stats``: on iterations ``0, k, 2k, ...``, on that iteration's
        minibatch, with the weights before its update.  A recorded step
        measures the pre-activations between each GEMM and its activation
        (no extra GEMM) and makes a few float64 passes over the activations
        and gradients; training results are unchanged (bit for bit; for
        networks on the feature-major path, :mod:`fastinit.narrow`, recorded
        steps run the row-major kernels: equal to rounding), and
        without it the loop runs as before.
    stats_every : int
        ``k`` above, >= 1 (default 10).

    Returns
    -------
    list of History
        One per model.

    Raises
    ------
    ValueError
        For bad input, naming the argument, before any kernel runs.
    MemoryError
        Naming ``iterations`` (or ``epochs``) and ``batch_size`` when the run's
        loss history or minibatch buffers cannot be allocated (on the CPU or
        the device; ``X`` instead of ``batch_size`` with ``sampling="full"``),
        or ``X`` when a device model's inputs do not fit in the device's memory.
        On the CPU a run whose buffers exceed the memory available is refused
        before they are allocated: a kernel that overcommits would otherwise
        kill the process once it writes them.
    """
    start = time.perf_counter()
    models = _check_models(models)
    with value_errors():  # the bad-input rule of fit: ValueError, whatever the mistake
        check_bool(record_stats, "record_stats")
        check_bool(progress, "progress")
        every = check_int(stats_every, "stats_every", low=1, high=2**63 - 1)  # int64
    fa = _fit_arguments(models, X, y, optimizer, batch_size, iterations, epochs, sampling, loss,
                        seed)  # fmt: skip
    bar = ProgressBar(fa.n_iter, enabled=bool(progress))
    if getattr(models[0], "device", "cpu") == "cuda":  # all on one device (_check_models)
        if record_stats:
            raise ValueError(
                "record_stats: per-layer statistics are recorded on the CPU only; "
                "train a model moved with .to('cpu') to record them"
            )
        from fastinit.train_cuda import run_fit

        return run_fit(models, fa, bar, start)
    least = _least_run_bytes(models, fa)
    if least > _CHECKED_ABOVE and least > (_system.available_memory() or least):
        raise fa.allocation_error(len(models))  # before NumPy's overcommitted buffers kill it
    try:
        run = _build_run(models, fa.opts, fa.X, fa.y_int, fa.y_float, fa.spec, fa.mode, fa.batch,
                         fa.seed, fa.n_iter, every if record_stats else 0)  # fmt: skip
    except MemoryError:
        raise fa.allocation_error(len(models)) from None
    try:
        status = _run_chunks(run, fa.n_iter, bar)
    finally:
        _write_back(models, fa.opts, run)
    seconds = time.perf_counter() - start
    # one settings dict per History (as on the device): labelling one relabels no other
    return [_history(run, m, j, status, seconds, fa.settings()) for j, m in enumerate(models)]


@dataclass
class FitArguments:
    """The validated arguments of one :func:`fit_many` call, for the CPU and CUDA loops.

    Attributes
    ----------
    opts : list of fastinit.optim.Optimizer
        One optimizer per model.
    spec : fastinit.losses.Loss
        The loss.
    mode : int
        The sampling, an index into ``SAMPLINGS``.
    batch, seed : int
        Rows per step and the sampling seed.
    X : numpy.ndarray
        The inputs, C-contiguous in the models' dtype.
    y_int, y_float : numpy.ndarray
        The targets as the loss kernels take them (:func:`fastinit.losses.prepare_targets`).
    n_iter : int
        Iterations to run.
    length : str
        ``"iterations"`` or ``"epochs"``: the argument that set ``n_iter``.
    """

    opts: list
    spec: Any
    mode: int
    batch: int
    seed: int
    X: np.ndarray
    y_int: np.ndarray
    y_float: np.ndarray
    n_iter: int
    length: str

    def allocation_error(self, n_models: int) -> MemoryError:
        """The error for a run whose buffers cannot be allocated, naming its arguments.

        Parameters
        ----------
        n_models : int
            Networks trained together (one loss history each).

        Returns
        -------
        MemoryError
            Naming ``iterations`` (or ``epochs``) and ``batch_size`` (``X`` with
            ``sampling="full"``, whose steps work on every row), with the loss
            history's size.
        """
        history = (f"a loss history of {self.n_iter} iterations for {n_models} model(s), "
                   f"{8 * self.n_iter * n_models:.3g} bytes")  # fmt: skip
        if self.mode == FULL:  # batch_size is not used: every step works on all of X
            return MemoryError(
                f"{self.length}, X: this run's buffers cannot be allocated ({history}; work "
                f"arrays for all {self.X.shape[0]} rows of X, the full batch); use fewer "
                f"{self.length} or fewer rows"
            )
        return MemoryError(
            f"{self.length}, batch_size: this run's buffers cannot be allocated ({history}; "
            f"minibatches of {self.batch} rows); use fewer {self.length} or a smaller batch_size"
        )

    def settings(self) -> dict[str, Any]:
        """What ``History.settings`` records.

        Returns
        -------
        dict
            ``{"loss": str, "sampling": str, "batch_size": int, "seed": int}``;
            ``batch_size`` is the rows per step the run used (at most n for
            ``"shuffle"``, n for ``"full"``, which ignores the argument).
        """
        batch = self.X.shape[0] if self.mode == FULL else self.batch
        return {"loss": self.spec.name, "sampling": SAMPLINGS[self.mode],
                "batch_size": batch, "seed": self.seed}  # fmt: skip


def _fit_arguments(models, X, y, optimizer, batch_size, iterations, epochs, sampling, loss,
                   seed) -> FitArguments:  # fmt: skip
    """Validate and prepare :func:`fit_many`'s arguments (ValueErrors name the argument)."""
    with value_errors():  # the bad-input rule of fit: ValueError, whatever the mistake
        fa = _checked_arguments(models, X, y, optimizer, batch_size, iterations, epochs,
                                sampling, loss, seed)  # fmt: skip
    # sizes no array can have (numpy's limit: intp bytes) fail here, not as "array is too big"
    row_bytes = max(8, fa.X.shape[1] * fa.X.itemsize)  # a gathered row, or its int64 index
    batch_bytes = 0 if fa.mode == FULL else fa.batch * row_bytes  # full: X is the batch
    if max(8 * fa.n_iter * len(models), batch_bytes) > np.iinfo(np.intp).max:
        raise fa.allocation_error(len(models))
    return fa


def _checked_arguments(models, X, y, optimizer, batch_size, iterations, epochs, sampling, loss,
                       seed) -> FitArguments:  # fmt: skip
    """:func:`_fit_arguments` before the size check; may raise TypeError."""
    opts = _check_optimizers(optimizer, len(models))
    for opt in opts:
        _check_in_range(opt, models[0].dtype)
    spec = _losses.get(loss)
    mode = SAMPLINGS.index(check_choice(sampling, "sampling", SAMPLINGS))
    batch = check_int(batch_size, "batch_size", low=1)
    seed = check_seed(seed, "seed")
    Xc = prepare_x(models[0], X, others=models[1:])
    n = Xc.shape[0]
    y_int, y_float = _losses.prepare_targets(spec, y, n, models[0].sizes[-1], models[0].dtype)
    batch = min(batch, n) if mode == SHUFFLE else batch
    n_iter = _iterations(iterations, epochs, n, batch, SAMPLINGS[mode])
    length = "iterations" if epochs is None else "epochs"
    return FitArguments(opts, spec, mode, batch, seed, Xc, y_int, y_float, n_iter, length)


def loss_and_grads(model: Any, X: Any, y: Any, loss: str) -> tuple[float, list]:
    """Full-batch loss and gradients of one model (no update), by the training kernel.

    Parameters
    ----------
    model : MLP
        A CPU model.
    X : array_like, shape (n, sizes[0])
        Inputs (:func:`prepare_x`).
    y : array_like
        Targets for ``loss`` (:func:`fastinit.losses.prepare_targets`).
    loss : str
        ``softmax_cross_entropy``, ``sigmoid_cross_entropy`` or ``mse``.

    Returns
    -------
    loss : float
        The mean loss over the rows of ``X``.
    grads : list of (dW, db)
        One pair of views of a gradient array per layer, shaped like the
        weights and biases (NaN when the loss is not finite).
    """
    spec = _losses.get(loss)
    Xc = prepare_x(model, X)
    y_int, y_float = _losses.prepare_targets(spec, y, Xc.shape[0], model.sizes[-1], model.dtype)
    run = _build_run(
        [model], [_optim.NoUpdate()], Xc, y_int, y_float, spec, FULL, Xc.shape[0], 0, 1
    )
    run.plan[P_T0], run.plan[P_NITER] = 0, 1
    train_chunk(*run.args)
    value = float(run.losses[0, 0])
    if not math.isfinite(value):
        run.grads[:] = np.nan
    return value, model._split(run.grads)
