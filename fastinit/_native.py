"""Calling compiled functions by address from numba code.

Two kinds of callee, both compiled (or loaded from numba's cache) on first use
and called through an address that the compiled caller receives in an int64
table at run time, so its own compiled code does not depend on which callees
exist and does not contain them:

* C functions (numba ``cfunc``; :func:`compile_kernel`), called with
  :func:`call_void` / :func:`call_f64`: the per-activation, per-loss and
  per-optimizer kernels, the matrix product (:mod:`fastinit.activations`,
  :mod:`fastinit.losses`, :mod:`fastinit.optim`, :mod:`fastinit.dense`).
* numba functions of a fixed signature (:func:`native_address`), called with
  numba's own calling convention (arrays, tuples, exceptions) through a
  :func:`native_caller`: the forward and backward passes and the minibatch
  sampler, which several compiled loops share.

Why not plain calls: numba links every callee's LLVM module into each caller's
and optimizes and compiles it again there, so a function called from three
loops was compiled four times on an empty cache, and the numba-IR inlining of
``inline="always"`` callees copies the callee's whole IR at every level.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from llvmlite import ir
from numba import cfunc, njit, types
from numba.core import cgutils
from numba.core.dispatcher import Dispatcher
from numba.core.imputils import impl_ret_borrowed
from numba.core.typeconv import Conversion
from numba.extending import intrinsic, overload
from numba.np.arrayobj import populate_array

from fastinit import _cache, _first_use

_cache.install()  # numba's cache saves, safe between processes (before anything compiles)
_first_use.install()  # numba's first use without importing scipy.linalg

__all__ = [
    "call_f64",
    "call_void",
    "compile_kernel",
    "dispatch_by_code",
    "float_type",
    "kernel_factory",
    "native_address",
    "native_caller",
    "native_function",
    "pointer_to",
    "view2d",
]

_ITEM_TYPES = {np.dtype(np.float32): types.float32, np.dtype(np.float64): types.float64}


def float_type(dtype: Any) -> types.Float:
    """The numba float type of ``dtype`` (a NumPy dtype, its name, or a numba float type).

    Parameters
    ----------
    dtype : numpy.dtype, str or numba.types.Float
        float32 or float64.

    Returns
    -------
    numba.types.Float
    """
    return dtype if isinstance(dtype, types.Float) else _ITEM_TYPES[np.dtype(dtype)]


def pointer_to(dtype: Any) -> types.CPointer:
    """The numba pointer type of a kernel's array argument of float ``dtype``.

    Parameters
    ----------
    dtype : numpy.dtype or str
        float32 or float64.

    Returns
    -------
    numba.types.CPointer
    """
    return types.CPointer(float_type(dtype))


def _lower_args(context, builder, tuple_type, value):
    """LLVM arguments for a C call: arrays pass their data pointer, integers (and
    bools) go as int64 and reals as float64, the only scalar types of the
    callees' signatures (a float32 was passed as 4 bytes and read as garbage).
    An integer meant for a float64 slot must be converted by the wrapper
    (``float(alpha)``): nothing here knows the slot's type."""
    argv = []
    for i, t in enumerate(tuple_type):
        v = builder.extract_value(value, i)
        if isinstance(t, types.Array):
            v = context.make_array(t)(context, builder, v).data
        elif isinstance(t, (types.Integer, types.Boolean)):
            v = context.cast(builder, v, t, types.int64)
        elif isinstance(t, types.Float):
            v = context.cast(builder, v, t, types.float64)
        argv.append(v)
    return argv


def _call(restype, name):
    def typer(typingctx, fnptr, args):
        """Call the C function at address ``fnptr`` with the tuple ``args``.

        Arrays are passed as pointers to their (C-contiguous) data, integer
        scalars as int64 and real ones as float64, by value, matching the
        ``cfunc`` signatures of the callees (which take no other scalar types);
        the positions and the arrays' dtypes are not checked, so callers go
        through typed wrappers.
        """
        if not isinstance(args, types.BaseTuple):
            return None
        sig = restype(types.int64, args)

        def codegen(context, builder, signature, llargs):
            argv = _lower_args(context, builder, signature.args[1], llargs[1])
            lltype = ir.VoidType() if restype is types.void else ir.DoubleType()
            fnty = ir.FunctionType(lltype, [v.type for v in argv])
            result = builder.call(builder.inttoptr(llargs[0], fnty.as_pointer()), argv)
            return context.get_dummy_value() if restype is types.void else result

        return sig, codegen

    typer.__name__ = typer.__qualname__ = name
    return intrinsic(typer)


call_void = _call(types.void, "call_void")
call_f64 = _call(types.float64, "call_f64")

_ALIVE: list[Any] = []  # the compiled kernels: their machine code lives as long as they do


def compile_kernel(py_func: Any, sig: Any) -> int:
    """Compile ``py_func`` as a C function of signature ``sig`` (or load it from numba's cache).

    The compiled object is kept for the life of the process, so the returned
    address stays valid.

    Parameters
    ----------
    py_func : function
        The kernel body (numba nopython code).
    sig : numba signature
        Its C signature.

    Returns
    -------
    int
        The function's address.
    """
    compiled = cfunc(sig, cache=True, error_model="numpy")(py_func)
    _ALIVE.append(compiled)
    return compiled.address


def kernel_factory(build: Any) -> Any:
    """Decorator: ``build(code, dtype) -> address`` runs once per (code, dtype).

    The wrapped function takes any integer ``code`` and anything
    ``numpy.dtype`` accepts, and caches the address by ``(int(code),
    dtype name)``, so ``np.float32``, ``"float32"`` and ``np.dtype("float32")``
    share one kernel.
    """
    cached = functools.cache(build)

    @functools.wraps(build)
    def address(code: int, dtype: Any) -> int:
        return cached(int(code), np.dtype(dtype).name)

    return address


def dispatch_by_code(table: Any, name: str) -> Any:
    """A function for compiled code: ``f(code, *args)`` calls ``table[code](*args)``.

    ``code`` must be a compile-time constant (a kernel's closure variable): the
    overload types ``table[code]`` only, not every entry, which is what keeps a
    kernel's compile time to the one activation, loss or optimizer it runs.

    Parameters
    ----------
    table : sequence or mapping of functions, indexed by code
        numba functions, or plain Python functions (nopython code), which are
        compiled here without the Python and C wrappers that only calls from
        Python need (about 0.1 s each on an empty cache); they stay plain
        Python functions for Python callers.
    name : str
        The function's name (for error messages).

    Returns
    -------
    function
        Callable from numba code only.
    """

    keys = range(len(table)) if isinstance(table, (tuple, list)) else table.keys()
    compiled = {key: _internal(table[key]) for key in keys}

    def stub(code, *args):
        raise NotImplementedError(f"{name}: compiled code only")

    stub.__name__ = stub.__qualname__ = name

    @overload(stub, jit_options={"cache": True, "error_model": "numpy"})
    def _impl(code, *args):
        if isinstance(code, types.IntegerLiteral):
            fn = compiled[code.literal_value]

            def impl(code, *args):
                return fn(*args)

            return impl
        return None

    return stub


def _internal(fn: Any) -> Any:
    """``fn`` if it is a numba function, else it compiled for calls from compiled code only."""
    if isinstance(fn, Dispatcher):
        return fn
    return njit(cache=True, error_model="numpy", no_cpython_wrapper=True, no_cfunc_wrapper=True)(fn)


class NativeFunction:
    """A numba function compiled to be called by address only (:func:`native_function`).

    Attributes
    ----------
    dispatcher : numba dispatcher
        The ``@njit`` function, compiled without the Python wrapper (about 0.1 s
        of compilation each) and the C wrapper that nothing here calls.
    """

    def __init__(self, py_func: Any) -> None:
        functools.update_wrapper(self, py_func)
        self.dispatcher = _internal(py_func)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            f"{self.__name__} runs only from compiled code, through native_address and a "
            "native_caller"
        )


def native_function(py_func: Any) -> NativeFunction:
    """Decorator: compile ``py_func`` (numba nopython code) for calls by address only.

    Calling the result from Python raises TypeError (it has no Python entry
    point); compiled code calls it through :func:`native_address` and a
    :func:`native_caller`.
    """
    return NativeFunction(py_func)


def native_address(function: Any, sig: Any) -> int:
    """Compile ``function`` for ``sig`` (or load it from numba's cache); its native address.

    The address is the numba-ABI entry point of the compiled function (not its
    Python wrapper), for a :func:`native_caller` of the same signature.  The
    dispatcher keeps the compiled code alive; module-level dispatchers live as
    long as the process.  The lookup and building ``sig`` cost ~0.1 ms: callers
    cache the address (``dense.ops_table``, ``train._sampler_addresses``).

    Parameters
    ----------
    function : numba dispatcher or NativeFunction
        An ``@njit`` or :func:`native_function` function.
    sig : numba signature
        Its exact signature (return type included).

    Returns
    -------
    int
    """
    dispatcher = function.dispatcher if isinstance(function, NativeFunction) else function
    dispatcher.compile(sig)
    compiled = dispatcher.overloads[tuple(sig.args)]
    if compiled.signature.return_type != sig.return_type:
        raise TypeError(f"{dispatcher.py_func.__name__}{sig}: compiled to return "
                        f"{compiled.signature.return_type}")  # fmt: skip
    return compiled.library.get_pointer_to_function(compiled.fndesc.mangled_name)


def native_caller(signature_for: Any, name: str) -> Any:
    """A function for compiled code: ``f(address, args)`` calls a :func:`native_address`.

    Parameters
    ----------
    signature_for : callable
        ``signature_for(*arg_types) -> numba signature``, evaluated when a
        caller is compiled: the signature the callee was compiled for (from
        the caller's argument types, e.g. its float type).  Each argument is
        converted to it if that is safe (e.g. a C-contiguous array to an
        any-layout one); any other argument is a compile error, not a crash or
        a silent cast.
    name : str
        The function's name (for error messages).

    Returns
    -------
    function
        ``f(address, args_tuple)``, callable from numba code only; returns
        what the callee returns and re-raises its exceptions.
    """

    def typer(typingctx, address, args):
        if not isinstance(args, types.BaseTuple):
            return None
        sig = signature_for(*args)
        if len(sig.args) != len(args):
            return None
        for got, want in zip(args, sig.args, strict=True):
            conversion = typingctx.can_convert(got, want)
            if got != want and (conversion is None or conversion > Conversion.safe):
                return None  # e.g. float -> int: a compile error, not a silent cast

        def codegen(context, builder, signature, llargs):
            got_types = signature.args[1]
            argv = [
                context.cast(builder, builder.extract_value(llargs[1], i), got_types[i], want)
                for i, want in enumerate(sig.args)
            ]
            fnty = context.call_conv.get_function_type(sig.return_type, sig.args)
            fn = builder.inttoptr(llargs[0], fnty.as_pointer())
            status, result = context.call_conv.call_function(
                builder, fn, sig.return_type, sig.args, argv
            )
            with cgutils.if_unlikely(builder, status.is_error):
                context.call_conv.return_status_propagate(builder, status)
            return result

        return sig.return_type(types.int64, args), codegen

    typer.__name__ = typer.__qualname__ = name
    return intrinsic(typer)


@intrinsic
def view2d(typingctx, flat, offset, rows, cols):
    """``flat[offset : offset + rows * cols].reshape(rows, cols)`` without the checks.

    A C-contiguous (rows, cols) view of a C-contiguous 1-D array, sharing its
    memory (and keeping it alive).  numba's ``reshape`` compiles a helper call,
    a size check and an exception path per use; the forward and backward
    passes take several views per layer, so this keeps their compiled code
    (and compile time) small.  The caller guarantees ``offset + rows * cols <=
    flat.size`` (:func:`fastinit.dense.work_size` sizes the buffers).
    """
    if not (isinstance(flat, types.Array) and flat.ndim == 1 and flat.layout == "C"):
        return None
    result = flat.copy(ndim=2, layout="C")
    sig = result(flat, types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        src = context.make_array(signature.args[0])(context, builder, args[0])
        out = context.make_array(signature.return_type)(context, builder)
        itemsize = context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype))
        size = context.get_constant(types.intp, itemsize)
        populate_array(
            out,
            data=builder.gep(src.data, [args[1]]),
            shape=[args[2], args[3]],
            strides=[builder.mul(args[3], size), size],
            itemsize=size,
            meminfo=src.meminfo,
            parent=src.parent,
        )
        return impl_ret_borrowed(context, builder, signature.return_type, out._getvalue())

    return sig, codegen
