"""Calling compiled C functions by address from numba code.

The per-activation and per-loss kernels (:func:`fastinit.activations.activation_kernel`,
:func:`fastinit.losses.loss_kernel`) are numba ``cfunc`` objects compiled on
first use; the training loop receives their addresses in int64 tables and
calls them through :func:`call_void` and :func:`call_f64`, so its own compiled
code does not depend on which kernels exist.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from llvmlite import ir
from numba import cfunc, types
from numba.extending import intrinsic, overload

__all__ = [
    "call_f64",
    "call_void",
    "compile_kernel",
    "dispatch_by_code",
    "kernel_factory",
    "pointer_to",
]

_ITEM_TYPES = {np.dtype(np.float32): types.float32, np.dtype(np.float64): types.float64}


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
    return types.CPointer(_ITEM_TYPES[np.dtype(dtype)])


def _lower_args(context, builder, tuple_type, value):
    """LLVM arguments for a C call: arrays pass their data pointer, scalars themselves."""
    argv = []
    for i, t in enumerate(tuple_type):
        v = builder.extract_value(value, i)
        argv.append(
            context.make_array(t)(context, builder, v).data if isinstance(t, types.Array) else v
        )
    return argv


def _call(restype, name):
    def typer(typingctx, fnptr, args):
        """Call the C function at address ``fnptr`` with the tuple ``args``.

        Arrays are passed as pointers to their (C-contiguous) data, int64 and
        float64 scalars by value, matching the ``cfunc`` signature of the
        callee; nothing is checked, so callers go through typed wrappers.
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
    table : sequence or mapping of numba functions, indexed by code
    name : str
        The function's name (for error messages).

    Returns
    -------
    function
        Callable from numba code only.
    """

    def stub(code, *args):
        raise NotImplementedError(f"{name}: compiled code only")

    stub.__name__ = stub.__qualname__ = name

    @overload(stub, jit_options={"cache": True, "error_model": "numpy"})
    def _impl(code, *args):
        if isinstance(code, types.IntegerLiteral):
            fn = table[code.literal_value]

            def impl(code, *args):
                return fn(*args)

            return impl
        return None

    return stub
