"""Dense-layer kernels: ``Z = f(X @ W + b)`` forward, ``dX, dW, db`` backward.

Memory layout
-------------
All parameters of a network live in one flat array ``params`` of the model
dtype.  A layer table (int64, one row per layer, columns ``FAN_IN, FAN_OUT,
W_OFF, B_OFF, ACT, KERNEL``) says where layer k's ``W`` (``fan_in x fan_out``,
C order) and ``b`` start, its activation code, and the address of its compiled
bias-and-activation kernel (filled per run by :func:`with_kernels`: a network
compiles the loops of its own activations only, on first use); ``act_params``
(float64, ``(n_layers, 2)``) holds the activation parameters.  Kernels
therefore have the same numba type whatever the depth, widths and activations:
one compilation per dtype.  The gradients use the same layout in a second flat
array.

Activations are stored in a flat ``work`` array: for layer k, ``A_k`` (its
output, ``m x fan_out``) and ``D_k``.  The forward pass writes ``X @ W`` into
``D_k``, then one pass adds the bias and writes ``A_k = f(.)`` and
``D_k = f'(.)``.  The backward pass starts from ``dL/dlogits`` in the last
``A`` block; each layer's ``D_k`` becomes ``dL/dZ_k = dL/dA_k * D_k`` (in the
pass that also sums its columns into ``db``), ``dL/dA_{k-1} = dL/dZ_k @ W_k.T``
goes to one scratch block after the layers (``m`` rows of the widest hidden
fan-in, :func:`work_size`), and ``A_{k-1}`` stays for ``dW_k = A_{k-1}.T @
dL/dZ_k``; training needs no other buffer.

Matrix products
---------------
Products go to BLAS ``?gemm`` (NumPy's own library, see below; transposes
passed as flags, no copies), called directly (about 0.5 us per call): measured
on this machine it matched or beat hand-written loops from 256 multiply-adds
up (1.6 us against 2.4 for the planar 400x4x1 product, 1.4 against 6.8 for
100x10x10).  Only products under ``BLAS_MIN_FLOPS`` multiply-adds use the plain
loops below.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic, overload

from fastinit._native import (
    call_void,
    compile_kernel,
    float_type,
    native_address,
    native_caller,
    native_function,
    pointer_to,
    view2d,
)
from fastinit.activations import IDENTITY, activation_kernel, call_bias_activate

FAN_IN, FAN_OUT, W_OFF, B_OFF, ACT, KERNEL = range(6)
LAYER_COLUMNS = 6
BLAS_MIN_FLOPS = 512  # multiply-adds; below this a plain loop beats the BLAS call


# ----------------------------------------------------------------------------- BLAS
# Kernels call NumPy's own OpenBLAS through its CBLAS interface, by a function
# address passed at run time (so the compiled code stays cacheable).  numba's
# np.dot would call SciPy's bundled OpenBLAS instead: a second library with its
# own thread pool.  Measured on 2 cores: right after NumPy did any BLAS work, the
# spinning workers of NumPy's pool made SciPy-BLAS calls 2x slower, and calls
# alternating between the two libraries took 8 ms instead of 0.17 ms; NumPy's
# build (0.3.31) was also 10-20% faster on the MNIST shapes than SciPy's
# (0.3.30).  One library means one pool, shared with the user's NumPy code.
# Without a NumPy CBLAS (other builds), or with FASTINIT_BLAS=scipy, SciPy's
# Fortran ?gemm from scipy.linalg.cython_blas is called the same way (np.dot is
# never compiled: it added ~0.5 s of compile time per kernel).
_ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
FORTRAN, CBLAS32, CBLAS64 = range(3)  # ABI codes in blas_table()[2]
_SYMBOLS = (  # (CBLAS name pattern, ABI)
    ("scipy_cblas_{}gemm64_", CBLAS64),
    ("cblas_{}gemm64_", CBLAS64),
    ("scipy_cblas_{}gemm", CBLAS32),
    ("cblas_{}gemm", CBLAS32),
)


def _numpy_blas_paths() -> list[str]:
    root = os.path.dirname(np.__file__)
    patterns = ("../numpy.libs/*blas*", ".dylibs/*blas*", "../numpy.libs/*.dll")
    return sorted(p for pat in patterns for p in glob.glob(os.path.join(root, pat)))


def _numpy_cblas() -> list[int] | None:
    for path in _numpy_blas_paths():
        try:
            lib = ctypes.CDLL(path)  # already loaded by NumPy: the same library instance
        except OSError:
            continue
        for pattern, abi in _SYMBOLS:
            try:
                fns = [getattr(lib, pattern.format(t)) for t in "sd"]
            except AttributeError:
                continue
            return [ctypes.cast(f, ctypes.c_void_p).value for f in fns] + [abi]
    return None


_THREAD_SYMBOLS = (  # OpenBLAS's thread-count functions, as NumPy's wheels name them
    "scipy_openblas_{}_num_threads64_",
    "scipy_openblas_{}_num_threads",
    "openblas_{}_num_threads64_",  # NumPy 1.22-1.26 wheels (libopenblas64_)
    "openblas_{}_num_threads",
)


@functools.cache
def _openblas_library() -> Any:
    """NumPy's OpenBLAS as a ctypes library: the one of its BLAS files with OpenBLAS's
    thread functions (:data:`_THREAD_SYMBOLS`); None for a NumPy on another BLAS."""
    for path in _numpy_blas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if any(hasattr(lib, p.format("get")) for p in _THREAD_SYMBOLS):
            return lib
    return None


@functools.cache
def _openblas_thread_functions() -> tuple[Any, Any] | None:
    lib = _openblas_library()
    for pattern in _THREAD_SYMBOLS if lib is not None else ():
        try:
            get, put = getattr(lib, pattern.format("get")), getattr(lib, pattern.format("set"))
        except AttributeError:
            continue
        get.restype, put.argtypes, put.restype = ctypes.c_int, [ctypes.c_int], None
        return get, put
    return None


def blas_identity() -> dict[str, Any]:
    """What sets the last bits of a run's products besides the package versions.

    OpenBLAS picks its kernels by the CPU at run time (an AVX-512 host and a
    Zen 3 one give other last bits) and splits a product by its thread count.

    Returns
    -------
    dict
        ``{"library": "OpenBLAS 0.3.31...", "core": "SkylakeX", "threads": 2}`` for
        NumPy's OpenBLAS; ``{"library": "not OpenBLAS"}`` otherwise.
    """
    functions = _openblas_thread_functions()
    if functions is None:
        return {"library": "not OpenBLAS"}
    config, core = (_c_string(_openblas_library(), name) for name in ("config", "corename"))
    library = " ".join(config.split()[:2]) if config.startswith("OpenBLAS") else "OpenBLAS"
    return {"library": library, "core": core or "unknown", "threads": int(functions[0]())}


def _c_string(lib: Any, what: str) -> str:
    """OpenBLAS's ``get_<what>()`` string (config, corename) under NumPy's symbol names."""
    for pattern in _THREAD_SYMBOLS:
        name = pattern.format("get").replace("get_num_threads", f"get_{what}")
        function = getattr(lib, name, None)
        if function is not None:
            function.restype = ctypes.c_char_p
            return (function() or b"").decode("ascii", "replace").strip()
    return ""


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run NumPy's OpenBLAS (and its LAPACK) on one thread inside the block.

    OpenBLAS's LAPACK (``np.linalg.qr``) gives different last bits on one and on
    two threads; on one thread its results do not depend on
    ``OPENBLAS_NUM_THREADS``.  The previous count is restored on exit.  The
    setting is process-wide, so blocks that switch it, in different Python
    threads, take turns (a lock): overlapping, the later one would have saved the
    first one's 1 and restored it last, leaving OpenBLAS on one thread for good.
    Where OpenBLAS is on one thread already and no block has switched it (a Dask
    worker's or a pool worker's, started so), a block switches nothing and
    blocks in several threads run at once.  Nothing is changed for a NumPy
    built on another BLAS.  BLAS work of other Python threads while a block
    runs (a fit's products) runs on one thread too, with that count's bits:
    the sweep's runs use it (:mod:`fastinit.sweep.runners`), the initializers
    do not.

    Yields
    ------
    None
    """
    functions = _openblas_thread_functions()
    if functions is None:
        yield
        return
    get, put = functions
    global _SWITCHING
    with _SWITCHED_LOCK:
        switch = _SWITCHING > 0 or get() != 1
    if not switch:  # one thread already, set by no block: nothing to switch, no turn
        yield
        return
    with _ONE_BLAS_THREAD:
        before = get()
        with _SWITCHED_LOCK:
            _SWITCHING += 1
        put(1)
        try:
            yield
        finally:
            put(before)
            with _SWITCHED_LOCK:
                _SWITCHING -= 1


_ONE_BLAS_THREAD = threading.RLock()  # held by the thread inside a switching block (reentrant)
_SWITCHING = 0  # switching blocks open now (each restores its count when it ends)
_SWITCHED_LOCK = threading.Lock()


@functools.cache
def blas_table() -> np.ndarray:
    """``[sgemm address, dgemm address, ABI]``: NumPy's CBLAS, else SciPy's Fortran BLAS.

    Returns
    -------
    numpy.ndarray of int64, (3,)
        The addresses of the single- and double-precision ``?gemm`` and the ABI
        code they are called with: ``CBLAS64`` or ``CBLAS32`` (NumPy's CBLAS,
        64- or 32-bit integers) or ``FORTRAN`` (SciPy's ``cython_blas``, used
        without a NumPy CBLAS or with ``FASTINIT_BLAS=scipy``).  Cached for the
        process.

    Raises
    ------
    ValueError
        If ``FASTINIT_BLAS`` is set to something other than ``numpy`` or ``scipy``.
    RuntimeError
        If the SciPy fallback is needed and SciPy's ``cython_blas`` is ILP64.
    """
    choice = os.environ.get("FASTINIT_BLAS", "").lower()
    if choice not in ("", "numpy", "scipy"):
        raise ValueError(f"FASTINIT_BLAS: expected 'numpy', 'scipy' or unset, got {choice!r}")
    found = None if choice == "scipy" else _numpy_cblas()
    if found is None:
        if _scipy_cython_blas_is_ilp64():
            raise RuntimeError(
                "fastinit found no CBLAS ?gemm in NumPy's bundled libraries (looked for "
                f"{', '.join(p.format('s') for p, _ in _SYMBOLS)} in {_numpy_blas_paths()}) "
                "and SciPy's scipy.linalg.cython_blas takes 64-bit (ILP64) integers, which "
                "its fallback does not pass: install NumPy's wheel (pip install numpy) or a "
                "SciPy built with LP64 cython_blas (unset FASTINIT_BLAS=scipy if set)"
            )
        found = [get_cython_function_address("scipy.linalg.cython_blas", f"{t}gemm") for t in "sd"]
        found.append(FORTRAN)
    return np.array(found, dtype=np.int64)


def _scipy_cython_blas_is_ilp64() -> bool:
    """Whether SciPy's ``cython_blas`` takes 64-bit integers (a SciPy built ILP64-only,
    from 1.18): read from ``scipy.__config__`` as numba reads it; older SciPys are LP64."""
    try:
        from scipy.__config__ import CONFIG

        return bool(CONFIG["Build Dependencies"]["blas"]["cython blas ilp64"])
    except (ImportError, KeyError, TypeError):
        return False


def _call_cblas(builder, fnptr, ints, args):
    """``cblas_?gemm(RowMajor, ...)`` with its integers converted to ``ints``."""
    i32 = ir.IntType(32)
    ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc = args
    flt, ptr = alpha.type, a.type
    fnty = ir.FunctionType(
        ir.VoidType(), [i32, i32, i32, ints, ints, ints, flt, ptr, ints, ptr, ints, flt, ptr, ints]
    )

    def conv(v, t):
        return builder.trunc(v, t) if t.width < v.type.width else v

    builder.call(
        builder.inttoptr(fnptr, fnty.as_pointer()),
        [
            ir.Constant(i32, _ROW_MAJOR),
            conv(ta, i32),
            conv(tb, i32),
            conv(m, ints),
            conv(n, ints),
            conv(k, ints),
            alpha,
            a,
            conv(lda, ints),
            b,
            conv(ldb, ints),
            beta,
            c,
            conv(ldc, ints),
        ],
    )


def _call_fortran(builder, fnptr, args):
    """Fortran ``?gemm`` (all arguments by reference, column-major, 32-bit ints).

    Row-major ``C = op(A) op(B)`` is column-major ``C^T = op(B)^T op(A)^T``: the
    operands swap, the transpose flags stay.
    """
    i8, i32 = ir.IntType(8), ir.IntType(32)
    ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc = args

    def ref(v):  # a stack slot in the entry block: no stack growth when called in a loop
        return cgutils.alloca_once_value(builder, v)

    def flag(t):  # 112 (Trans) -> 'T', else 'N'
        is_t = builder.icmp_signed("==", t, ir.Constant(t.type, TRANS))
        return ref(builder.select(is_t, ir.Constant(i8, ord("T")), ir.Constant(i8, ord("N"))))

    def int_ref(v):
        return ref(builder.trunc(v, i32))

    argv = [
        flag(tb),
        flag(ta),
        int_ref(n),
        int_ref(m),
        int_ref(k),
        ref(alpha),
        b,
        int_ref(ldb),
        a,
        int_ref(lda),
        ref(beta),
        c,
        int_ref(ldc),
    ]
    fnty = ir.FunctionType(ir.VoidType(), [v.type for v in argv])
    builder.call(builder.inttoptr(fnptr, fnty.as_pointer()), argv)


@intrinsic
def _blas_gemm(typingctx, fn, abi, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Row-major ``c = alpha * op(a) @ op(b) + beta * c`` through the BLAS ``?gemm`` at
    address ``fn`` with ABI ``abi`` (:func:`blas_table`); ``a, b, c`` are pointers."""
    i64, f64 = types.int64, types.float64
    sig = types.void(i64, i64, i64, i64, i64, i64, i64, f64, a, i64, b, i64, f64, c, i64)

    def codegen(context, builder, signature, args):
        fnptr, abi_code, ta, tb, mm, nn, kk, al, aa, la, bb, lb, be, cc, lc = args
        dtype = signature.args[8].dtype
        i64t = ir.IntType(64)
        al = context.cast(builder, al, f64, dtype)
        be = context.cast(builder, be, f64, dtype)
        call = (ta, tb, mm, nn, kk, al, aa, la, bb, lb, be, cc, lc)
        switch = builder.switch(abi_code, builder.append_basic_block("gemm.fortran"))
        done = builder.append_basic_block("gemm.done")
        for code, emit in (
            (CBLAS64, lambda: _call_cblas(builder, fnptr, i64t, call)),
            (CBLAS32, lambda: _call_cblas(builder, fnptr, ir.IntType(32), call)),
        ):
            block = builder.append_basic_block(f"gemm.abi{code}")
            switch.add_case(ir.Constant(i64t, code), block)
            builder.position_at_end(block)
            emit()
            builder.branch(done)
        builder.position_at_end(switch.default)
        _call_fortran(builder, fnptr, call)
        builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


def with_kernels(layers: np.ndarray, dtype: Any) -> np.ndarray:
    """A copy of a layer table with each layer's ``KERNEL`` column filled for ``dtype``.

    The column holds the address of the layer's compiled bias-and-activation
    kernel (:func:`fastinit.activations.activation_kernel`, compiled on first
    use); it is 0 in the tables models keep, which compiled code refuses.

    Parameters
    ----------
    layers : numpy.ndarray of int64, (n_layers, LAYER_COLUMNS)
    dtype : numpy.dtype or str
        The network's float type.

    Returns
    -------
    numpy.ndarray
    """
    out = layers.copy()
    out[:, KERNEL] = [activation_kernel(int(code), dtype) for code in layers[:, ACT]]
    return out


# ----------------------------------------------------------------------------- kernels
# The matrix product and the backward element-wise pass are C functions
# (numba cfuncs, one per dtype, compiled or loaded from numba's cache on first
# use) that the compiled loops call by address from an ``ops`` table
# (:func:`ops_table`).  A callee compiled as a plain numba function would be
# linked into every caller's module and optimized and compiled again there
# (numba re-optimizes each linked callee in each caller): the training loop,
# the statistics recorder and the inference loop each carried their own copy.
GEMM, SUMS, BLAS_FN, BLAS_ABI, FORWARD, BACKWARD = range(6)  # columns of ops_table()


def _gemm_kernel(fn, abi, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """``c = alpha op(a) op(b) + beta c`` (row-major, leading dimensions given)."""
    if m * n * k >= BLAS_MIN_FLOPS:
        _blas_gemm(fn, abi, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    if m == 0 or n == 0:
        return
    t = type(c[0])
    a_row, a_col = (1, lda) if ta == TRANS else (lda, 1)  # element (i, p) of op(a)
    b_row, b_col = (1, ldb) if tb == TRANS else (ldb, 1)  # element (p, j) of op(b)
    for i in range(m):
        for j in range(n):
            s = t(0.0)
            for p in range(k):
                s += a[i * a_row + p * a_col] * b[p * b_row + j * b_col]
            v = s if alpha == 1.0 else t(alpha) * s
            c[i * ldc + j] = v + t(beta) * c[i * ldc + j] if beta != 0.0 else v


def _sums_kernel(g, d, db, m, n, code, b, lr, decay):
    """``d = g * d`` (``d = g`` for the identity) and ``db = d.sum(axis=0)``, one pass;
    then, if ``lr > 0``, the SGD step of the biases ``b -= lr (db + decay b)``."""
    if code == IDENTITY:
        for i in range(m * n):
            d[i] = g[i]
    else:
        for i in range(m * n):  # flat: vectorizes whatever the width
            d[i] *= g[i]
    for j in range(n):
        db[j] = 0
    m4 = m - m % 4
    for i in range(0, m4, 4):  # four rows per pass: a 4x shorter dependency chain for small n
        for j in range(n):
            r = i * n + j
            db[j] += (d[r] + d[r + n]) + (d[r + 2 * n] + d[r + 3 * n])
    for i in range(m4, m):
        for j in range(n):
            db[j] += d[i * n + j]
    if lr > 0:
        t = type(b[0])
        for j in range(n):
            b[j] -= t(lr) * (db[j] + t(decay) * b[j])


def ops_table(dtype: Any) -> np.ndarray:
    """The ``ops`` table the compiled dense code takes: kernel and BLAS addresses for ``dtype``.

    Parameters
    ----------
    dtype : numpy.dtype or str
        float32 or float64.

    Returns
    -------
    numpy.ndarray of int64, (6,)
        ``[GEMM, SUMS, BLAS_FN, BLAS_ABI, FORWARD, BACKWARD]``: the addresses of
        the compiled matrix-product kernel (``c = alpha op(a) op(b) + beta c``:
        BLAS, or a plain loop under ``BLAS_MIN_FLOPS`` multiply-adds) and of the
        backward element-wise kernel (``dL/dz``, its column sums, the fused SGD
        step of the biases), the BLAS ``?gemm`` they call and its ABI
        (:func:`blas_table`), and the native entry points of
        :func:`forward_net` and :func:`backward_net` (:func:`call_forward_net`,
        :func:`call_backward_net`).  Compiled once per dtype and process (or
        loaded from numba's cache); valid for the process.
    """
    return _ops_table(np.dtype(dtype).name)


@functools.cache
def _ops_table(name: str) -> np.ndarray:
    item = pointer_to(name)
    i64, f64 = types.int64, types.float64
    gemm_sig = types.void(i64, i64, i64, i64, i64, i64, i64, f64, item, i64, item, i64, f64,
                          item, i64)  # fmt: skip
    sums_sig = types.void(item, item, item, i64, i64, i64, item, f64, f64)
    blas = blas_table()
    return np.array(
        [
            compile_kernel(_gemm_kernel, gemm_sig),
            compile_kernel(_sums_kernel, sums_sig),
            blas[0 if name == "float32" else 1],
            blas[2],
            native_address(forward_net, forward_signature(name)),
            native_address(backward_net, backward_signature(name)),
        ],
        dtype=np.int64,
    )


@njit(inline="always", cache=True, error_model="numpy")
def _ld(a):
    """The leading dimension of ``a``, whose rows are contiguous and ascending (checked by
    :func:`gemm`; by construction on the unchecked training paths, which pass C-contiguous
    blocks); a one-row view of a column, ``x.T``, has a row stride of one element, less
    than BLAS accepts."""
    return max(a.strides[0] // a.itemsize, a.shape[1], 1)  # BLAS wants >= 1 (empty too)


def same_dtype(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether ``x`` and ``y`` have one dtype; inside njit code a constant of the types.

    Parameters
    ----------
    x, y : numpy.ndarray

    Returns
    -------
    bool
    """
    return x.dtype == y.dtype


@overload(same_dtype, inline="always")
def _same_dtype_typed(x, y):
    same = x.dtype == y.dtype  # numba cannot compare two different dtypes at run time
    return lambda x, y: same


@njit(inline="always", cache=True, error_model="numpy")
def _rows_ascending(x):
    """Whether 2-D ``x`` is what a leading dimension describes: contiguous rows, in
    ascending memory, none overlapping the next."""
    rows, cols = x.shape
    if x.size == 0:  # nothing to read (NumPy may give an empty array zero strides)
        return True
    return (cols <= 1 or x.strides[1] == x.itemsize) and (
        rows <= 1 or x.strides[0] >= cols * x.itemsize
    )


@njit(inline="always", cache=True, error_model="numpy")
def _overlap(x, y):
    """Whether the byte ranges of two 2-D arrays with ascending rows overlap
    (:func:`numpy.may_share_memory`'s rule: bounds only)."""
    if x.size == 0 or y.size == 0:
        return False
    x0, y0 = np.intp(x.ctypes.data), np.intp(y.ctypes.data)
    x1 = x0 + (x.shape[0] - 1) * x.strides[0] + (x.shape[1] - 1) * x.strides[1] + x.itemsize
    y1 = y0 + (y.shape[0] - 1) * y.strides[0] + (y.shape[1] - 1) * y.strides[1] + y.itemsize
    return x0 < y1 and y0 < x1


@njit(inline="always", cache=True, error_model="numpy")
def _check_gemm(ta, a, tb, b, c):
    """:func:`gemm`'s operand rules (constant messages: no formatter to compile)."""
    if not (same_dtype(a, c) and same_dtype(b, c)):
        raise ValueError("a, b: expected c's dtype")
    am, ak = (a.shape[1], a.shape[0]) if ta == TRANS else (a.shape[0], a.shape[1])
    bk, bn = (b.shape[1], b.shape[0]) if tb == TRANS else (b.shape[0], b.shape[1])
    if ak != bk:
        raise ValueError("a, b: expected op(a) to have as many columns as op(b) has rows")
    if (am, bn) != c.shape:
        raise ValueError("c: expected the shape of op(a) @ op(b)")
    if not _rows_ascending(a):
        raise ValueError("a: expected contiguous rows in ascending memory (C order or a row slice)")
    if not _rows_ascending(b):
        raise ValueError("b: expected contiguous rows in ascending memory (C order or a row slice)")
    if not _rows_ascending(c):
        raise ValueError("c: expected contiguous rows in ascending memory (C order or a row slice)")
    if _overlap(a, c) or _overlap(b, c):
        raise ValueError("c: expected memory apart from a's and b's; write the product elsewhere")


@njit(inline="always", cache=True, error_model="numpy")
def gemm(
    ops: np.ndarray,
    ta: int,
    a: np.ndarray,
    tb: int,
    b: np.ndarray,
    alpha: float,
    beta: float,
    c: np.ndarray,
) -> None:
    """``c = alpha op(a) @ op(b) + beta c`` (``op`` transposes where ``ta``/``tb`` is ``TRANS``).

    ``beta = 0`` ignores the old ``c`` (as BLAS does); ``gemm(ops, TRANS, a,
    NO_TRANS, dz, -lr, 1 - lr * weight_decay, w)`` is the SGD update of a weight
    matrix.  Rows must be contiguous (C-order arrays or row slices of them).

    Parameters
    ----------
    ops : numpy.ndarray of int64, (6,)
        The :func:`ops_table` of the arrays' dtype.
    ta : int
        ``TRANS`` to use the transpose of ``a``, else ``NO_TRANS``.
    a : 2-D array
        The left operand: ``op(a)`` is (m, k).
    tb : int
        ``TRANS`` to use the transpose of ``b``, else ``NO_TRANS``.
    b : 2-D array
        The right operand: ``op(b)`` is (k, n).
    alpha, beta : float
        The scale of the product and of the old ``c``.
    c : (m, n) array
        Updated in place.

    Raises
    ------
    ValueError
        If the dtypes or shapes do not agree (the sizes are taken from ``c``
        and ``op(a)``: a wrong ``b`` would be read out of bounds), the rows of ``a``,
        ``b`` or ``c`` are not contiguous in ascending memory (an F-order or
        reversed array: BLAS refuses the call and leaves ``c`` stale), or ``c``
        overlaps ``a`` or ``b`` (:func:`numpy.may_share_memory`'s rule).  The
        dtype of ``ops`` is not checked.
    """
    _check_gemm(ta, a, tb, b, c)
    _product(ops, ta, a, tb, b, alpha, beta, c)


@njit(inline="always", cache=True, error_model="numpy")
def _product(ops, ta, a, tb, b, alpha, beta, c):
    """:func:`gemm` unchecked: the passes over a layer table, whose blocks fit by
    construction (the checks took 10% of a small network's step: 3.3 -> 3.7 us)."""
    m, n = c.shape
    k = a.shape[0] if ta == TRANS else a.shape[1]
    blas = (ops[BLAS_FN], ops[BLAS_ABI])
    args = (*blas, ta, tb, m, n, k, float(alpha), a, _ld(a), b, _ld(b), float(beta), c, _ld(c))
    call_void(ops[GEMM], args)


@njit(inline="always", cache=True, error_model="numpy")
def derivative_and_sums(
    ops: np.ndarray,
    g: np.ndarray,
    d: np.ndarray,
    db: np.ndarray,
    code: int,
    b: np.ndarray,
    lr: float,
    decay: float,
) -> None:
    """``d = g * d`` (``dL/dz``) and ``db = d.sum(axis=0)``, in one pass.

    ``d = g * d`` is ``dL/dz`` from ``dL/da`` and ``f'`` (``d = g`` for the
    identity); the pass runs over C-contiguous ``g`` and ``d``.  With ``lr > 0``
    it also takes the plain SGD step of the biases, ``b -= lr (db + decay b)``.

    Parameters
    ----------
    ops : numpy.ndarray of int64, (6,)
        The :func:`ops_table` of the arrays' dtype.
    g : (m, n) array
        ``dL/da``, the gradient of the layer output.
    d : (m, n) array
        ``f'`` on entry, ``dL/dz`` on exit.
    db : (n,) array
        Receives the column sums of ``dL/dz``.
    code : int
        Activation code (the identity's derivative is not applied).
    b : (n,) array
        The layer's biases, updated in place if ``lr > 0``.
    lr, decay : float
        Learning rate (0: no update) and weight decay of the bias step.

    Raises
    ------
    ValueError
        If the dtypes differ, ``g`` is not shaped like ``d``, ``db`` or ``b``
        has not ``d``'s number of columns, or an array is not C-contiguous (the
        pass runs over the flat memory).
    """
    if not (same_dtype(g, d) and same_dtype(db, d) and same_dtype(b, d)):
        raise ValueError("g, db, b: expected d's dtype")
    if g.shape != d.shape:
        raise ValueError("g: expected d's shape")
    if db.shape[0] != d.shape[1]:
        raise ValueError("db: expected one element per column of d")
    if b.shape[0] != d.shape[1]:
        raise ValueError("b: expected one element per column of d")
    if not g.flags.c_contiguous:
        raise ValueError("g: expected a C-contiguous array")
    if not d.flags.c_contiguous:
        raise ValueError("d: expected a C-contiguous array")
    if not (db.flags.c_contiguous and b.flags.c_contiguous):
        raise ValueError("db, b: expected C-contiguous arrays")
    _sums(ops, g, d, db, code, b, lr, decay)


@njit(inline="always", cache=True, error_model="numpy")
def _sums(ops, g, d, db, code, b, lr, decay):
    """:func:`derivative_and_sums` unchecked (see :func:`_product`)."""
    call_void(ops[SUMS], (g, d, db, d.shape[0], d.shape[1], code, b, float(lr), float(decay)))


# ----------------------------------------------------------------------------- one layer
@njit(inline="always", cache=True, error_model="numpy")
def dense_forward(
    ops: np.ndarray,
    a: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    z: np.ndarray,
    d: np.ndarray,
    kernel: int,
    p0: float,
    p1: float,
) -> None:
    """``z = f(a @ w + b)`` and ``d = f'(a @ w + b)``.

    The operands are not checked (the training passes' blocks fit by
    construction): they must follow :func:`gemm`'s rules, unchecked here.

    Parameters
    ----------
    ops : numpy.ndarray of int64, (6,)
        The :func:`ops_table` of the arrays' dtype.
    a : (m, fan_in) array
    w : (fan_in, fan_out) array
    b : (fan_out,) array
    z, d : (m, fan_out) arrays, written
    kernel : int
        The layer's ``KERNEL`` column (:func:`with_kernels`).
    p0, p1 : float
        The activation's parameters (:mod:`fastinit.activations`).
    """
    _product(ops, NO_TRANS, a, NO_TRANS, w, 1.0, 0.0, d)
    call_bias_activate(kernel, z, d, b, p0, p1)  # one pass: bias, f and f'


@njit(inline="always", cache=True, error_model="numpy")
def dense_backward(
    ops: np.ndarray,
    a: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    g: np.ndarray,
    d: np.ndarray,
    dw: np.ndarray,
    db: np.ndarray,
    da: np.ndarray,
    code: int,
    lr: float,
    decay: float,
) -> None:
    """Backward pass of :func:`dense_forward`, with the SGD update fused in if ``lr > 0``.

    Unchecked, as :func:`dense_forward`: the operands must follow the rules that
    :func:`gemm` and :func:`derivative_and_sums` check.

    Parameters
    ----------
    ops : numpy.ndarray of int64, (6,)
        The :func:`ops_table` of the arrays' dtype.
    a : (m, fan_in) array
        The layer input.
    w, b : the layer's weights (fan_in, fan_out) and biases (fan_out,)
    g : (m, fan_out) array
        ``dL/d(output)``.
    d : (m, fan_out) array
        ``f'`` from the forward pass on entry, ``dL/dz`` on exit.
    dw, db : arrays shaped like ``w`` and ``b``
        Receive the gradients (``dw`` untouched when the update is fused).
    da : (m, fan_in) array or None-like empty array
        Receives ``dL/da = dL/dz @ w.T`` (computed with the old ``w``) if it has rows.
    code : int
        Activation code (the identity's derivative is not applied).
    lr, decay : float
        ``lr > 0``: plain SGD in place, ``w = (1 - lr decay) w - lr a.T @ dz`` inside
        the GEMM and ``b -= lr (db + decay b)``; ``lr = 0``: write ``dw`` instead.
    """
    _sums(ops, g, d, db, code, b, lr, decay)
    if da.shape[0]:
        _product(ops, NO_TRANS, d, TRANS, w, 1.0, 0.0, da)
    if lr > 0:  # w = (1 - lr decay) w - lr a.T @ dz
        _product(ops, TRANS, a, NO_TRANS, d, -lr, 1.0 - lr * decay, w)
    else:
        _product(ops, TRANS, a, NO_TRANS, d, 1.0, 0.0, dw)


# ----------------------------------------------------------------------------- whole network
@njit(inline="always", cache=True, error_model="numpy")
def weight(params: np.ndarray, layers: np.ndarray, k: int) -> np.ndarray:
    """View of layer ``k``'s weight matrix in a flat parameter (or gradient) array.

    Parameters
    ----------
    params : 1-D C-contiguous array
        The flat parameter (or gradient) array.
    layers : numpy.ndarray of int64, (n_layers, LAYER_COLUMNS)
        The layer table.
    k : int
        Layer index.

    Returns
    -------
    (fan_in, fan_out) C-contiguous array
        A view sharing ``params``' memory.
    """
    return view2d(params, layers[k, W_OFF], layers[k, FAN_IN], layers[k, FAN_OUT])


@njit(inline="always", cache=True, error_model="numpy")
def bias(params: np.ndarray, layers: np.ndarray, k: int) -> np.ndarray:
    """View of layer ``k``'s bias vector.

    Parameters
    ----------
    params, layers, k
        As for :func:`weight`.

    Returns
    -------
    (fan_out,) array
        A slice of ``params``.
    """
    off = layers[k, B_OFF]
    return params[off : off + layers[k, FAN_OUT]]


@njit(inline="always", cache=True, error_model="numpy")
def block(work: np.ndarray, off: int, m: int, n: int) -> np.ndarray:
    """An (m, n) view of ``work`` starting at ``off``.

    Parameters
    ----------
    work : 1-D C-contiguous array
        The flat work buffer; must hold ``off + m * n`` elements.
    off : int
        Offset of the block's first element.
    m, n : int
        Rows and columns of the block.

    Returns
    -------
    (m, n) C-contiguous array
        A view sharing ``work``'s memory.
    """
    return view2d(work, off, m, n)


@native_function
def forward_net(
    ops: np.ndarray,
    params: np.ndarray,
    layers: np.ndarray,
    act_params: np.ndarray,
    first: int,
    count: int,
    x: np.ndarray,
    work: np.ndarray,
) -> np.ndarray:
    """Forward pass of layers ``first .. first+count-1`` on ``x`` (m rows).

    ``work`` must hold ``work_size`` elements; layer j's output ``A_j`` and
    derivative ``D_j`` are consecutive blocks.  Returns the logits block.

    Parameters
    ----------
    ops : numpy.ndarray of int64, (6,)
        The :func:`ops_table` of the model dtype.
    params : 1-D C-contiguous array
        The flat parameter array.
    layers : numpy.ndarray of int64, (n_layers, LAYER_COLUMNS)
        The layer table, ``KERNEL`` column filled (:func:`with_kernels`).
    act_params : numpy.ndarray of float64, (n_layers, 2)
        The activation parameters.
    first, count : int
        The first layer and the number of layers to run.
    x : (m, fan_in of layer ``first``) array
        The input rows (any layout with contiguous rows).
    work : 1-D C-contiguous array
        The work buffer, :func:`work_size` elements for ``m`` rows.

    Returns
    -------
    (m, fan_out of the last layer) array
        The output block of the last layer run, a view of ``work``.
    """
    m = x.shape[0]
    a = x
    off = 0
    for k in range(first, first + count):
        n = layers[k, FAN_OUT]
        z = block(work, off, m, n)
        w = weight(params, layers, k)
        b = bias(params, layers, k)
        dense_forward(
            ops,
            a,
            w,
            b,
            z,
            block(work, off + m * n, m, n),
            layers[k, KERNEL],
            act_params[k, 0],
            act_params[k, 1],
        )
        a = z
        off += 2 * m * n
    return a


@native_function
def backward_net(
    ops: np.ndarray,
    params: np.ndarray,
    grads: np.ndarray,
    layers: np.ndarray,
    first: int,
    count: int,
    x: np.ndarray,
    work: np.ndarray,
    lr: float,
    decay: float,
) -> None:
    """Backward pass after :func:`forward_net`; ``dL/dlogits`` must be in the logits block.

    Writes every layer's ``dW``, ``db`` into ``grads`` (same layout as ``params``),
    or with ``lr > 0`` applies plain SGD to ``params`` directly (see
    :func:`dense_backward`).  ``dL/dA`` of each hidden layer passes through the
    scratch block at the end of ``work``.

    Parameters
    ----------
    ops : numpy.ndarray of int64, (6,)
        The :func:`ops_table` of the model dtype.
    params : 1-D C-contiguous array
        The flat parameter array (updated in place if ``lr > 0``).
    grads : 1-D C-contiguous array
        Receives the gradients (``params``' layout); its weights are untouched if
        ``lr > 0``.
    layers : numpy.ndarray of int64, (n_layers, LAYER_COLUMNS)
        The layer table.
    first, count : int
        The layers of the :func:`forward_net` call.
    x : (m, fan_in of layer ``first``) array
        The input rows of the forward pass.
    work : 1-D C-contiguous array
        The work buffer of the forward pass (:func:`work_size` elements).
    lr, decay : float
        Learning rate (0: write the gradients only) and weight decay.
    """
    m = x.shape[0]
    top = 0
    for k in range(first, first + count):
        top += 2 * m * layers[k, FAN_OUT]
    last = first + count - 1
    off = top - 2 * m * layers[last, FAN_OUT]
    g = block(work, off, m, layers[last, FAN_OUT])
    for k in range(last, first - 1, -1):
        n = layers[k, FAN_OUT]
        fan_in = layers[k, FAN_IN]
        if k > first:
            a = block(work, off - 2 * m * fan_in, m, fan_in)
            da = block(work, top, m, fan_in)
        else:
            a = x
            da = block(work, top, 0, fan_in)
        dense_backward(
            ops,
            a,
            weight(params, layers, k),
            bias(params, layers, k),
            g,
            block(work, off + m * n, m, n),
            weight(grads, layers, k),
            bias(grads, layers, k),
            da,
            layers[k, ACT],
            lr,
            decay,
        )
        g = da
        off -= 2 * m * fan_in


def forward_signature(dtype: Any) -> Any:
    """The numba signature :func:`forward_net` is compiled for (``dtype``: numba or NumPy).

    Any-layout ``x`` and result (a row slice of a buffer or the data itself);
    C-contiguous flat ``params`` and ``work``.

    Parameters
    ----------
    dtype : numpy.dtype, str or numba.types.Float
        The model's float type, float32 or float64.

    Returns
    -------
    numba.core.typing.templates.Signature
        The signature ``(ops, params, layers, act_params, first, count, x, work)
        -> logits``.
    """
    dt = float_type(dtype)
    flat, rows = types.Array(dt, 1, "C"), types.Array(dt, 2, "A")
    i64 = types.int64
    return rows(i64[::1], flat, i64[:, ::1], types.float64[:, ::1], i64, i64, rows, flat)


def backward_signature(dtype: Any) -> Any:
    """The numba signature :func:`backward_net` is compiled for.

    Parameters
    ----------
    dtype : numpy.dtype, str or numba.types.Float
        The model's float type, float32 or float64.

    Returns
    -------
    numba.core.typing.templates.Signature
        The signature ``(ops, params, grads, layers, first, count, x, work, lr,
        decay) -> none``, with the layouts of :func:`forward_signature`.
    """
    dt = float_type(dtype)
    flat, rows = types.Array(dt, 1, "C"), types.Array(dt, 2, "A")
    i64, f64 = types.int64, types.float64
    return types.none(i64[::1], flat, flat, i64[:, ::1], i64, i64, rows, flat, f64, f64)


_forward_by_address = native_caller(lambda *a: forward_signature(a[1].dtype), "forward_net")
_backward_by_address = native_caller(lambda *a: backward_signature(a[1].dtype), "backward_net")


@njit(inline="always", cache=True, error_model="numpy")
def call_forward_net(
    ops: np.ndarray,
    params: np.ndarray,
    layers: np.ndarray,
    act_params: np.ndarray,
    first: int,
    count: int,
    x: np.ndarray,
    work: np.ndarray,
) -> np.ndarray:
    """:func:`forward_net` through ``ops[FORWARD]`` (compiled once, not into the caller).

    Parameters
    ----------
    ops, params, layers, act_params, first, count, x, work
        As for :func:`forward_net`.

    Returns
    -------
    (m, fan_out of the last layer) array
        The logits block of ``work`` (:func:`forward_net`).
    """
    args = (ops, params, layers, act_params, first, count, x, work)
    return _forward_by_address(ops[FORWARD], args)


@njit(inline="always", cache=True, error_model="numpy")
def call_backward_net(
    ops: np.ndarray,
    params: np.ndarray,
    grads: np.ndarray,
    layers: np.ndarray,
    first: int,
    count: int,
    x: np.ndarray,
    work: np.ndarray,
    lr: float,
    decay: float,
) -> None:
    """:func:`backward_net` through ``ops[BACKWARD]``.

    Parameters
    ----------
    ops, params, grads, layers, first, count, x, work, lr, decay
        As for :func:`backward_net`.
    """
    args = (ops, params, grads, layers, first, count, x, work, lr, decay)
    _backward_by_address(ops[BACKWARD], args)


def work_size(layers: np.ndarray, rows: int) -> int:
    """Elements of ``work`` for ``rows`` rows: two blocks per layer and the dL/dA scratch.

    Parameters
    ----------
    layers : numpy.ndarray of int64, (n_layers, LAYER_COLUMNS)
        The layer table.
    rows : int
        The most rows a forward or backward pass runs on.

    Returns
    -------
    int
        ``rows * (2 * sum of fan_out + widest fan_in after the first layer)``.
    """
    scratch = int(layers[1:, FAN_IN].max()) if len(layers) > 1 else 0
    return int(rows) * (2 * int(layers[:, FAN_OUT].sum()) + scratch)  # Python ints: no overflow


@njit(cache=True, error_model="numpy")
def forward_rows(
    ops: np.ndarray,
    net: tuple,
    first: int,
    count: int,
    x: np.ndarray,
    out: np.ndarray,
    xbuf: np.ndarray,
    work: np.ndarray,
) -> None:
    """Logits of every row of ``x`` into ``out``, ``xbuf.shape[0]`` rows at a time.

    ``net = (params, layers, act_params)``; each block of ``x`` is copied into
    ``xbuf`` and ``work`` must hold ``work_size(layers, xbuf.shape[0])`` elements.

    Parameters
    ----------
    ops : numpy.ndarray of int64, (6,)
        The :func:`ops_table` of the model dtype.
    net : tuple
        ``(params, layers, act_params)`` as for :func:`forward_net`, ``layers``
        with its ``KERNEL`` column filled.
    first, count : int
        The first layer and the number of layers to run.
    x : (n, n_features) array
        The input rows.
    out : (n, n_outputs) array
        Receives the logits.
    xbuf : (rows, n_features) C-contiguous array
        Block buffer; its row count sets the block size.
    work : 1-D C-contiguous array
        The work buffer, ``work_size(layers, xbuf.shape[0])`` elements.
    """
    params, layers, act_params = net
    n = x.shape[0]
    rows = xbuf.shape[0]
    for r0 in range(0, n, rows):
        m = min(n, r0 + rows) - r0
        xb = xbuf[:m]
        for i in range(m):  # explicit loops: slice assignment compiles an error formatter
            for j in range(x.shape[1]):
                xb[i, j] = x[r0 + i, j]
        logits = call_forward_net(ops, params, layers, act_params, first, count, xb, work)
        for i in range(m):
            for j in range(out.shape[1]):
                out[r0 + i, j] = logits[i, j]
