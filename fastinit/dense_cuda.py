"""CUDA twin of :mod:`fastinit.dense`: tiled GEMM, fused forward and backward kernels.

Layout
------
The same as on the CPU: a network's parameters are one flat device array,
located by the int64 layer table (``FAN_IN, FAN_OUT, W_OFF, B_OFF, ACT``; the CPU's
``KERNEL`` column is unused here) and
``act_params``; gradients use the same layout in a second flat array, and the
activations of a batch live in a flat ``work`` array, two blocks per layer
(``A_k`` then ``D_k``) plus the ``dL/dA`` scratch at the end
(:func:`fastinit.dense.work_size`).  The host reads the table once and builds
the list of kernel launches of a forward or backward pass (:func:`forward_launches`,
:func:`backward_launches`) with their views and launch configurations, so a
training step is a replay of that list: no allocation, no host round-trip.

Kernels
-------
* :func:`gemm_kernel`: ``C = alpha op(A) op(B) + beta C`` for the three cases the
  CPU uses (NN forward ``X @ W``, TN ``dW = A.T @ dZ``, NT ``dA = dZ @ W.T``),
  row-major, shared-memory tiles of ``BK`` along the reduction, each block
  computing a ``BM x BN`` tile with ``TS x TS`` threads and each thread
  ``RT x RT`` outputs (64 x 64 tiles, 16 x 16 threads, 4 x 4 outputs, BK 16 on a
  GPU, or 16 x 16 tiles for products too small to give 128 large tiles, whose
  blocks hold 4 groups of threads that split the reduction tiles among them and
  add their sums in group order at the end; 8 x 8 tiles of 2 x 2 threads in 2
  groups under the simulator, which runs every thread as a Python thread; see
  :func:`tile_config`), shared tile rows padded by one element against bank
  conflicts, accumulating in the model dtype (float32 for float32), with bounds
  checks at the edges.  Tiles are loaded so that consecutive threads read
  consecutive addresses of the source matrix whatever the transposition, each
  thread's share of a tile in a loop of constant length (unrolled: its loads
  are in flight together).
* The forward kernel is the NN GEMM with a fused epilogue: ``Z = f(acc + b)``
  and ``D = f'(acc + b)`` (identity: ``Z = acc + b``, ``D`` unused), one launch
  per layer.
* :func:`derivative_sums_kernel`: ``D = G * D`` (``dL/dz``; ``D = G`` for the
  identity) and ``db = D.sum(axis=0)``, one pass.

Every kernel takes the training loop's one-element divergence flag and returns
at once when it is non-zero (see :mod:`fastinit.losses_cuda`).
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any

import numpy as np

from fastinit._cuda import (
    check_device_array,
    cuda_module,
    first_replay,
    may_share_memory,
    packed_launch,
    simulator_enabled,
    specialize,
)
from fastinit._validate import DTYPES
from fastinit.activations import IDENTITY
from fastinit.dense import ACT, B_OFF, FAN_IN, FAN_OUT, W_OFF

__all__ = [
    "Launch",
    "backward_launches",
    "check_launch",
    "configure",
    "derivative_sums_kernel",
    "forward_launches",
    "gemm",
    "gemm_kernel",
    "tile_config",
]

cuda: Any = None  # numba.cuda, set on first use (never at import)

NN, TN, NT = "NN", "TN", "NT"


_MIN_BLOCKS = 128  # fewer 64 x 64 tiles than this: use 16 x 16 tiles (more blocks in flight)


def tile_config(small: bool = False) -> tuple[int, int, int, int]:
    """``(TS, RT, BK, SPLITS)``: threads per tile side, outputs per thread per side,
    reduction tile, and thread groups sharing a tile's reduction.

    GPU: 64 x 64 tiles (16 x 16 threads, 4 x 4 outputs each, BK 16, one group),
    or with ``small`` 16 x 16 tiles (8 x 8 threads, 2 x 2 outputs, BK 32) for
    products too small to fill the GPU with the large tiles (MNIST's 128 x 100
    layers, the 10-wide output layer), with 4 groups of 8 x 8 threads each
    taking every fourth reduction tile: the few blocks of such a product then
    have 8 warps each, not 2, to hide the latency of their loads (MNIST's first
    layer, 56 blocks reducing over 784 inputs, took 89 µs on an H100 with one
    group).  Simulator: 8 x 8 tiles of 2 x 2 threads, BK 8, 2 groups.

    Parameters
    ----------
    small : bool, default False
        Use the small tiles (ignored under the simulator).

    Returns
    -------
    tuple of int
        ``(TS, RT, BK, SPLITS)``: a block has ``SPLITS`` groups of ``TS x TS``
        threads, each thread computing ``RT x RT`` outputs of a ``TS * RT``
        square tile over every ``SPLITS``-th reduction tile of ``BK``; the
        groups' sums are then added in group order.
    """
    if simulator_enabled():
        return (2, 4, 8, 2)
    return (8, 2, 32, 4) if small else (16, 4, 16, 1)


def _column_config() -> tuple[int, int]:
    """Block shape ``(columns, row groups)`` of the derivative/column-sum kernel."""
    return (8, 1) if simulator_enabled() else (32, 8)


@functools.cache
def gemm_kernel(case: str, epilogue: bool, dtype: str, small: bool = False) -> Any:
    """The tiled matrix-product kernel for ``case`` in ``("NN", "TN", "NT")``.

    Launch ``kernel[grid, (TS, TS, SPLITS)](a, b, c, alpha, beta, bias, z, code, p0, p1, flag)``
    with :func:`gemm_grid`.  Without ``epilogue``: ``c = alpha op(a) op(b) +
    beta c`` (``beta == 0`` ignores the old ``c``); with it (NN only):
    ``z = f(a @ b + bias)`` and ``c = f'(a @ b + bias)`` for activation ``code``.

    Parameters
    ----------
    case : str
        ``"NN"`` (``a @ b``), ``"TN"`` (``a.T @ b``) or ``"NT"`` (``a @ b.T``).
    epilogue : bool
        Fuse the bias and activation (the forward kernel, NN only); else a plain
        ``c = alpha op(a) op(b) + beta c``.
    dtype : str
        ``"float32"`` or ``"float64"``: the element and accumulation type.
    small : bool, default False
        Use the small tiles of :func:`tile_config`.

    Returns
    -------
    numba CUDA kernel
        Compiled on first launch; built once per ``(case, epilogue, dtype, small)``.

    Raises
    ------
    ValueError
        If ``case`` is not one of the three.
    """
    if case not in (NN, TN, NT):
        raise ValueError(f"case: expected 'NN', 'TN' or 'NT', got {case!r}")
    global cuda  # a module global: the simulator swaps the module in kernels' globals
    cuda = cuda_module()
    from numba import types

    from fastinit.activations_cuda import device_functions

    activate = device_functions().activate
    ts, rt, bk, splits = tile_config(small)
    bm = ts * rt
    red = bm if splits > 1 else 1  # the groups' sums, in shared memory (none for one group)
    padded = bm + 1  # shared rows one longer: the column-wise tile stores hit distinct banks
    nthreads = ts * ts
    loads = bk * bm // nthreads  # tile elements per thread: a constant, so the loads unroll
    assert loads * nthreads == bk * bm, (ts, rt, bk)
    trans_a, trans_b = case == TN, case == NT
    nbt = types.float32 if dtype == "float32" else types.float64
    epi = bool(epilogue)

    @cuda.jit
    def kernel(a, b, c, alpha, beta, bias, z, code, p0, p1, flag):
        if flag[0] != 0:
            return
        tiles_a = cuda.shared.array((splits, bk, padded), nbt)
        tiles_b = cuda.shared.array((splits, bk, padded), nbt)
        sums = cuda.shared.array((splits, red, red), nbt)
        acc = cuda.local.array((rt, rt), nbt)
        a_r = cuda.local.array(rt, nbt)
        b_r = cuda.local.array(rt, nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        group = cuda.threadIdx.z
        a_s = tiles_a[group]
        b_s = tiles_b[group]
        tid = ty * ts + tx
        row0 = cuda.blockIdx.x * bm  # rows on x: up to 2**31 - 1 tiles (y allows 65535)
        col0 = cuda.blockIdx.y * bm
        if trans_a:
            m, k = a.shape[1], a.shape[0]
        else:
            m, k = a.shape[0], a.shape[1]
        n = b.shape[0] if trans_b else b.shape[1]
        zero = nbt(0.0)
        for r in range(rt):
            for q in range(rt):
                acc[r, q] = zero
        for k_all in range(0, k, bk * splits):  # the same trip count for every group
            k0 = k_all + group * bk  # this group's reduction tile (zeros past k)
            for step in range(loads):  # all of a thread's loads in flight at once
                idx = tid + step * nthreads
                if trans_a:  # a is (k, m): consecutive threads along m
                    ii = idx % bm
                    kk = idx // bm
                    gi = row0 + ii
                    gk = k0 + kk
                    a_s[kk, ii] = a[gk, gi] if (gi < m and gk < k) else zero
                else:  # a is (m, k): consecutive threads along k
                    kk = idx % bk
                    ii = idx // bk
                    gi = row0 + ii
                    gk = k0 + kk
                    a_s[kk, ii] = a[gi, gk] if (gi < m and gk < k) else zero
                if trans_b:  # b is (n, k): along k
                    kk = idx % bk
                    jj = idx // bk
                    gj = col0 + jj
                    gk = k0 + kk
                    b_s[kk, jj] = b[gj, gk] if (gj < n and gk < k) else zero
                else:  # b is (k, n): along n
                    jj = idx % bm
                    kk = idx // bm
                    gj = col0 + jj
                    gk = k0 + kk
                    b_s[kk, jj] = b[gk, gj] if (gj < n and gk < k) else zero
            cuda.syncthreads()
            for kk in range(bk):
                for r in range(rt):
                    a_r[r] = a_s[kk, ty + r * ts]
                for q in range(rt):
                    b_r[q] = b_s[kk, tx + q * ts]
                for r in range(rt):
                    for q in range(rt):
                        acc[r, q] += a_r[r] * b_r[q]
            cuda.syncthreads()
        if splits > 1:  # add the groups' sums in group order, in group 0
            for r in range(rt):
                for q in range(rt):
                    sums[group, ty + r * ts, tx + q * ts] = acc[r, q]
            cuda.syncthreads()
            if group != 0:
                return
            for r in range(rt):
                for q in range(rt):
                    total = sums[0, ty + r * ts, tx + q * ts]
                    for g in range(1, splits):
                        total += sums[g, ty + r * ts, tx + q * ts]
                    acc[r, q] = total
        for r in range(rt):
            i = row0 + ty + r * ts
            if i < m:
                for q in range(rt):
                    j = col0 + tx + q * ts
                    if j < n:
                        if epi:
                            v = acc[r, q] + bias[j]
                            if code == IDENTITY:
                                z[i, j] = v
                            else:
                                z[i, j], c[i, j] = activate(code, p0, p1, v)
                        elif beta != 0:
                            c[i, j] = alpha * acc[r, q] + beta * c[i, j]
                        else:
                            c[i, j] = alpha * acc[r, q]

    return kernel


def gemm_grid(m: int, n: int) -> tuple[tuple[int, int], tuple[int, int, int], bool]:
    """``(grid, block, small)`` of :func:`gemm_kernel` for an ``m x n`` result.

    Parameters
    ----------
    m, n : int
        Rows and columns of the result ``c``.

    Returns
    -------
    grid : tuple of int
        ``(row tiles, column tiles)``: the rows (a batch, or every row of a
        full-batch run) on the grid's x axis, which CUDA allows 2**31 - 1
        blocks; y allows 65535, 4,194,240 rows of 64-row tiles.
    block : tuple of int
        ``(TS, TS, SPLITS)`` threads (:func:`tile_config`).
    small : bool
        Whether the small tiles are used: the large ones would give fewer than
        ``_MIN_BLOCKS`` blocks.

    Raises
    ------
    ValueError
        If ``n`` needs more than 65535 column tiles (a layer millions of units
        wide), or the result is empty (``m`` or ``n`` is 0: no block to launch).
    """
    if m < 1 or n < 1:  # a zero-size grid is a launch error on a GPU (the simulator runs it)
        raise ValueError(f"sizes: a {m} x {n} product has no tiles to launch")
    small = False
    for small in (False, True):
        ts, rt, _, splits = tile_config(small)
        bm = ts * rt
        grid = ((m + bm - 1) // bm, (n + bm - 1) // bm)
        if grid[0] * grid[1] >= _MIN_BLOCKS:
            break
    if grid[1] > _MAX_GRID_Y:
        raise ValueError(
            f"sizes: a product with {n} columns needs {grid[1]} column tiles; CUDA allows "
            f"{_MAX_GRID_Y}"
        )
    return grid, (ts, ts, splits), small


_MAX_GRID = (2**31 - 1, 65535, 65535)  # blocks along a CUDA grid's x, y, z axes, every GPU
_MAX_GRID_Y = _MAX_GRID[1]
_MAX_BLOCK = (1024, 1024, 64)  # threads along a block's x, y, z axes
_MAX_THREADS = 1024  # threads per block


def _dims(dims: Any) -> tuple[int, ...]:
    """A grid or block given as an int or a 1- to 3-tuple, as ``(x, y, z)``."""
    values = [int(v) for v in (dims if isinstance(dims, (tuple, list)) else (dims,))]
    return (*values, 1, 1, 1)[:3]


def check_launch(grid: Any, block: Any) -> None:
    """Refuse a launch configuration that a GPU refuses, wherever it runs.

    The CUDA simulator launches any grid (a zero-size one runs nothing, one
    past the hardware's limits runs every block), so :func:`configure`, which
    every kernel of the training loop goes through, checks here what the
    driver would refuse with ``CUDA_ERROR_INVALID_VALUE``: tests under the
    simulator then fail as a GPU run would.

    Parameters
    ----------
    grid, block : int or tuple of int
        Blocks per grid axis and threads per block axis (1 to 3 of each).

    Raises
    ------
    ValueError
        If an axis has no block or thread, more blocks than CUDA allows on it
        (2**31 - 1 on x, 65535 on y and z), more threads than a block axis
        allows (1024, 1024, 64), or the block more than 1024 threads.
    """
    g, b = _dims(grid), _dims(block)
    if min(g) < 1 or min(b) < 1:
        raise ValueError(f"launch: grid {g} and block {b} must have at least 1 on every axis")
    if any(v > lim for v, lim in zip(g, _MAX_GRID, strict=True)):
        raise ValueError(f"launch: grid {g} exceeds CUDA's {_MAX_GRID} blocks per axis")
    if any(v > lim for v, lim in zip(b, _MAX_BLOCK, strict=True)) or math.prod(b) > _MAX_THREADS:
        raise ValueError(
            f"launch: block {b} exceeds CUDA's {_MAX_BLOCK} threads per axis or "
            f"{_MAX_THREADS} per block"
        )


@functools.cache
def derivative_sums_kernel() -> Any:
    """``kernel[grid, block](g, d, db, code, flag)``: ``d = g * d``, ``db = d.sum(axis=0)``.

    For the identity ``d = g``.  Launch with :func:`column_grid`.

    Returns
    -------
    numba CUDA kernel
        ``g``, ``d``: (m, n) device arrays (``d`` holds ``f'`` on entry, ``dL/dz``
        on exit); ``db``: (n,) device array, written; ``code``: activation code;
        ``flag``: the one-element divergence flag.  Built once per process.
    """
    global cuda  # a module global: the simulator swaps the module in kernels' globals
    cuda = cuda_module()
    cw, rg = _column_config()

    @cuda.jit
    def kernel(g, d, db, code, flag):
        if flag[0] != 0:
            return
        part = cuda.shared.array((rg, cw), np.float64)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        j = cuda.blockIdx.x * cw + tx
        m, n = d.shape
        s = np.float64(0.0)  # as on a GPU (under the simulator 0.0 + float32 is float32)
        if j < n:
            for i in range(ty, m, rg):
                v = g[i, j] if code == IDENTITY else g[i, j] * d[i, j]
                d[i, j] = v
                s += v
        part[ty, tx] = s
        cuda.syncthreads()
        if ty == 0 and j < n:
            total = part[0, tx]
            for r in range(1, rg):
                total += part[r, tx]
            db[j] = total

    return kernel


def column_grid(n: int) -> tuple[int, tuple[int, int]]:
    """``(grid, block)`` of :func:`derivative_sums_kernel` for ``n`` columns.

    Parameters
    ----------
    n : int
        Columns of ``d``.

    Returns
    -------
    grid : int
        Blocks, one per group of block columns.
    block : tuple of int
        ``(columns, row groups)`` threads.
    """
    cw, rg = _column_config()
    return (n + cw - 1) // cw, (cw, rg)


def configure(kernel: Any, grid: Any, block: Any) -> Any:
    """A launcher for ``kernel[grid, block](*args)``, cheap to call many times.

    On a GPU the first call specializes the kernel for its argument types
    (``kernel.specialize``: later calls skip numba's type dispatch, most of a
    launch's host cost) and fixes the launch configuration, with numba's
    low-occupancy warning silenced (the small grids here are deliberate: the
    loss is one block).  The simulator's ``kernel[...]`` returns the kernel
    itself with its configuration changed in place, so there it is re-applied
    per call.

    Parameters
    ----------
    kernel : numba CUDA kernel
        The kernel to launch.
    grid, block : int or tuple of int
        The launch configuration.

    Returns
    -------
    callable
        ``launch(*args)``: launches ``kernel[grid, block](*args)``, returns None.
        Later calls must pass arguments of the same types as the first.

    Raises
    ------
    ValueError
        For a configuration a GPU refuses (:func:`check_launch`), under the
        simulator too.
    """
    check_launch(grid, block)
    if simulator_enabled():
        return lambda *args: kernel[grid, block](*args)
    ready: list = []

    def launch(*args: Any) -> None:
        if not ready:
            ready.append(specialize(kernel, grid, block, args)[1])
        ready[0](*args)

    return launch


class Launch:
    """One kernel launch with its configuration and arguments bound, replayed by ``()``.

    On a GPU the arguments are converted for the driver once
    (:class:`fastinit._cuda.PackedLaunch`): a replay is one driver call, about
    13 µs of host time on an H100's host against 94 µs through numba's
    ``kernel[grid, block](*args)``, which converts every argument again.  Where
    that cannot be prepared (under the simulator, or with numba-cuda internals
    other than those it was written for), or the first replay's values are
    refused (:func:`fastinit._cuda.first_replay`), it launches through
    :func:`configure`.
    :meth:`set` changes scalar arguments between replays (a training step's
    iteration, Adam's bias corrections); the arrays stay bound.

    Parameters
    ----------
    kernel : numba CUDA kernel
        The kernel to launch.
    grid, block : int or tuple of int
        The launch configuration (see :func:`configure`).
    args : tuple
        The kernel's arguments, passed at every call.
    """

    __slots__ = ("args", "configured", "names", "packed_launch", "replayed")

    def __init__(self, kernel: Any, grid: Any, block: Any, args: tuple) -> None:
        self.configured = configure(kernel, grid, block)
        self.args = list(args)
        self.names = _argument_names(kernel.py_func)
        self.packed_launch = packed_launch(kernel, grid, block, tuple(args))
        self.replayed = False  # a packed replay has run (its values were taken)

    @property
    def packed(self) -> bool:
        """Whether a replay is one driver call (:class:`fastinit._cuda.PackedLaunch`)."""
        return self.packed_launch is not None

    def __call__(self) -> None:
        if self.packed_launch is None:
            self.configured(*self.args)
        elif self.replayed:
            self.packed_launch()
        elif first_replay(self.packed_launch):
            self.replayed = True
        else:  # its values were refused: numba's launch from now on
            self.packed_launch = None
            self.configured(*self.args)

    def set(self, **values: Any) -> None:
        """Change scalar arguments, by name, for the later replays.

        Parameters
        ----------
        **values
            New values of scalar arguments of the kernel, each of the type its
            first value had (an int for an int, a dtype scalar for a float).

        Raises
        ------
        ValueError
            For a name that is not one of the kernel's arguments, or one of
            its array arguments.
        """
        where, names = self.names
        for name, value in values.items():
            if name not in names:
                raise ValueError(
                    f"launch: no argument {name!r} in {where.split('.')[0]}'s kernel "
                    f"(its arguments: {', '.join(names)})"
                )
            index = names.index(name)
            if not np.isscalar(self.args[index]):
                raise ValueError(
                    f"launch: argument {name!r} is an array, bound when the launch was "
                    "prepared; only scalars can be set"
                )
            self.args[index] = value
            if self.packed_launch is not None:
                self.packed_launch.set(index, value)


@functools.cache
def _argument_names(py_func: Any) -> tuple[str, tuple[str, ...]]:
    """The kernel's qualified name and its arguments' names (read once per kernel)."""
    return py_func.__qualname__, tuple(inspect.signature(py_func).parameters)


def _block(work: Any, off: int, m: int, n: int) -> Any:
    return work[off : off + m * n].reshape(m, n)


def _weight(params: Any, layers: np.ndarray, k: int) -> Any:
    fi, fo, off = int(layers[k, FAN_IN]), int(layers[k, FAN_OUT]), int(layers[k, W_OFF])
    return params[off : off + fi * fo].reshape(fi, fo)


def _bias(params: Any, layers: np.ndarray, k: int) -> Any:
    off = int(layers[k, B_OFF])
    return params[off : off + int(layers[k, FAN_OUT])]


def forward_launches(
    params: Any, layers: np.ndarray, act_params: np.ndarray, x: Any, work: Any, flag: Any
) -> tuple[list[Launch], Any]:
    """The launches of a forward pass of ``x`` (m rows) and the logits block.

    Parameters
    ----------
    params : device array
        Flat parameters (layout of :mod:`fastinit.dense`).
    layers, act_params : numpy arrays
        The model's layer table and activation parameters (host).
    x : (m, n_in) device array
    work : device array of at least ``work_size(layers, m)`` elements
    flag : one-element int64 device array
        Divergence flag (zero to run).

    Returns
    -------
    launches : list of Launch
    logits : (m, n_out) device view of ``work``
    """
    m = x.shape[0]
    dtype = np.dtype(params.dtype).name
    a, off, launches = x, 0, []
    for k in range(len(layers)):
        n = int(layers[k, FAN_OUT])
        z, d = _block(work, off, m, n), _block(work, off + m * n, m, n)
        grid, block, small = gemm_grid(m, n)
        p0, p1 = (float(v) for v in act_params[k])
        one, zero = np.dtype(dtype).type(1.0), np.dtype(dtype).type(0.0)
        args = (a, _weight(params, layers, k), d, one, zero, _bias(params, layers, k), z)
        args += (int(layers[k, ACT]), p0, p1, flag)
        launches.append(Launch(gemm_kernel(NN, True, dtype, small), grid, block, args))
        a, off = z, off + 2 * m * n
    return launches, a


def backward_launches(
    params: Any, grads: Any, layers: np.ndarray, x: Any, work: Any, flag: Any
) -> list[Launch]:
    """The launches of the backward pass after :func:`forward_launches` (same ``x``, ``work``).

    ``dL/dlogits`` must be in the logits block when they run; they write every
    layer's ``dW``, ``db`` into ``grads`` (the layout of ``params``).

    Parameters
    ----------
    params : device array
        Flat parameters (layout of :mod:`fastinit.dense`).
    grads : device array
        Flat gradients, same layout and dtype as ``params``; written.
    layers : numpy.ndarray of int64
        The model's layer table (host).
    x : (m, n_in) device array
        The input of the forward pass.
    work : device array
        The work array of the forward pass (``work_size(layers, m)`` elements);
        its ``D`` blocks receive ``dL/dz`` and its scratch block ``dL/dA``.
    flag : one-element int64 device array
        Divergence flag (zero to run).

    Returns
    -------
    list of Launch
        Per layer from the last: the derivative and bias-gradient kernel, the
        ``dW`` product and, except for the first layer, the ``dL/dA`` product.
    """
    m = x.shape[0]
    dtype = np.dtype(params.dtype).name
    one, zero = np.dtype(dtype).type(1.0), np.dtype(dtype).type(0.0)
    outs = [int(v) for v in layers[:, FAN_OUT]]
    top = 2 * m * sum(outs)
    off = top - 2 * m * outs[-1]
    g = _block(work, off, m, outs[-1])
    dsum = derivative_sums_kernel()
    launches = []
    for k in range(len(layers) - 1, -1, -1):
        n, fan_in = outs[k], int(layers[k, FAN_IN])
        d = _block(work, off + m * n, m, n)
        dw, db = _weight(grads, layers, k), _bias(grads, layers, k)
        grid, block = column_grid(n)
        launches.append(Launch(dsum, grid, block, (g, d, db, int(layers[k, ACT]), flag)))
        a = _block(work, off - 2 * m * fan_in, m, fan_in) if k > 0 else x
        grid, block, small = gemm_grid(fan_in, n)
        args = (a, d, dw, one, zero, db, dw, 0, 0.0, 0.0, flag)
        launches.append(Launch(gemm_kernel(TN, False, dtype, small), grid, block, args))
        if k > 0:
            da = _block(work, top, m, fan_in)
            grid, block, small = gemm_grid(m, fan_in)
            args = (d, _weight(params, layers, k), da, one, zero, db, da, 0, 0.0, 0.0, flag)
            launches.append(Launch(gemm_kernel(NT, False, dtype, small), grid, block, args))
            g = da
            off -= 2 * m * fan_in
    return launches


def gemm(case: str, a: Any, b: Any, c: Any, alpha: float = 1.0, beta: float = 0.0) -> None:
    """``c = alpha op(a) op(b) + beta c`` on device arrays (``case`` "NN", "TN" or "NT").

    Used by the tests and the benchmark; the training loop replays prepared launches.

    Parameters
    ----------
    case : str
        ``"NN"`` (``a @ b``), ``"TN"`` (``a.T @ b``) or ``"NT"`` (``a @ b.T``).
    a, b : 2-D device arrays
        The operands, of ``c``'s dtype.
    c : (m, n) device array
        The result, updated in place (an empty one, ``m`` or ``n`` 0, launches nothing).
    alpha, beta : float, defaults 1.0 and 0.0
        The scale of the product and of the old ``c`` (``beta == 0`` ignores it).

    Raises
    ------
    TypeError
        If ``a``, ``b`` or ``c`` is not a device array (a host ``c`` would be
        copied to the device twice, and the stale copy written back last).
    ValueError
        If ``case`` is unknown, the shapes or dtypes do not match (the kernel
        takes its sizes from ``a`` and ``b`` and would read and write out of
        bounds), the dtype is not float32 or float64, or ``c`` overlaps ``a`` or
        ``b`` (:func:`fastinit._cuda.may_share_memory`: blocks would read tiles
        that others have already overwritten).
    """
    if case not in ("NN", "TN", "NT"):
        raise ValueError(f"case: expected 'NN', 'TN' or 'NT', got {case!r}")
    for name, x in (("a", a), ("b", b), ("c", c)):
        check_device_array(x, name)
    if not (len(a.shape) == len(b.shape) == len(c.shape) == 2):
        raise ValueError(f"a, b, c: expected 2-D arrays, got {a.shape}, {b.shape}, {c.shape}")
    (m, k) = a.shape[::-1] if case == "TN" else a.shape
    (k2, n) = b.shape[::-1] if case == "NT" else b.shape
    if k != k2 or tuple(c.shape) != (m, n):
        raise ValueError(
            f"a, b, c: op(a) {m}x{k} times op(b) {k2}x{n} does not give c's {tuple(c.shape)}"
        )
    dtype = np.dtype(c.dtype)
    if dtype not in DTYPES.values():
        raise ValueError(f"c: expected float32 or float64, got {dtype}")
    if np.dtype(a.dtype) != dtype or np.dtype(b.dtype) != dtype:
        raise ValueError(f"a, b: expected c's dtype {dtype}, got {a.dtype} and {b.dtype}")
    for name, x in (("a", a), ("b", b)):  # blocks read every tile of a and b as others write c
        if may_share_memory(x, c):
            raise ValueError(f"c: expected memory apart from {name}'s; write the product elsewhere")
    if m == 0 or n == 0:  # c is empty: nothing to write, and no block to launch
        return
    grid, block, small = gemm_grid(m, n)
    flag = cuda_module().to_device(np.zeros(1, np.int64))
    configure(gemm_kernel(case, False, dtype.name, small), grid, block)(
        a, b, c, dtype.type(alpha), dtype.type(beta), c[0], c, 0, 0.0, 0.0, flag
    )
