"""The CUDA device: one place that decides whether ``device="cuda"`` can run.

``numba.cuda`` is imported here, lazily, and nowhere at package import: a
machine without the ``cuda`` extra or without an NVIDIA driver never touches
it unless a user asks for ``device="cuda"``, and then gets one clear error
saying which of the two is missing.

Under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set before numba is
imported) every CUDA kernel runs in Python on the CPU: slow, but the same
code paths, which is how the test suite checks the CUDA twins without a GPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

DEVICES = ("cpu", "cuda")

_INSTALL_HINT = "install the CUDA extra: pip install 'fastinit[cuda]'"


def simulator_enabled() -> bool:
    """Whether ``NUMBA_ENABLE_CUDASIM`` asks for the CUDA simulator.

    Returns
    -------
    bool
        True when the environment variable is set to a non-zero value.
    """
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def cuda_module() -> Any:
    """Import and return ``numba.cuda``, or raise a clear error.

    Returns
    -------
    module
        The ``numba.cuda`` module (from the ``numba-cuda`` package).

    Raises
    ------
    RuntimeError
        When ``numba-cuda`` is not installed, or no usable NVIDIA GPU and
        driver are present (and the simulator is not enabled).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from numba import cuda
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            f"device='cuda' needs the numba-cuda package, which is not importable ({exc}); "
            + _INSTALL_HINT
        ) from exc
    _load_array_overloads_without_row_stack()  # imports without a GPU
    if simulator_enabled():
        return cuda
    try:
        available = cuda.is_available()
    except Exception as exc:  # pragma: no cover - driver-specific failures
        raise RuntimeError(f"device='cuda' is unusable: the CUDA driver failed ({exc})") from exc
    if not available:
        # numba's own bundled numba.cuda imports without the numba-cuda package
        package = ""
        if not _numba_cuda_installed():
            package = f"; nor is numba-cuda installed: {_INSTALL_HINT}"
        raise RuntimeError(
            "device='cuda' needs an NVIDIA GPU with its driver, and none was found "
            f"(numba.cuda.is_available() is False: no libcuda, or no CUDA device){package}. "
            "Use device='cpu', or set NUMBA_ENABLE_CUDASIM=1 to run the CUDA code in "
            "numba's simulator."
        )
    return cuda


def _load_array_overloads_without_row_stack() -> None:
    """Load numba-cuda's NumPy array overloads where NumPy has no ``row_stack`` (NumPy 2.5).

    numba-cuda (0.30.4 and older) registers an overload of ``np.row_stack`` when
    its registries load, at the first kernel compile, and NumPy 2.5 removed that
    function: every launch then fails with ``AttributeError: module 'numpy' has
    no attribute 'row_stack'`` (NVIDIA/numba-cuda#907, closed unfixed: numba-cuda
    is in maintenance mode).  Its module is loaded here once, with a stand-in
    ``numpy.row_stack`` that is removed straight after: the overload registered
    for the stand-in is never called, and NumPy is left as it was.
    """
    name, removed = "numba.cuda.np.arrayobj", "row_stack"
    if hasattr(np, removed) or name in sys.modules:
        return

    def row_stack(tup: Any) -> Any:  # pragma: no cover - registered, never called
        return np.vstack(tup)

    setattr(np, removed, row_stack)
    try:
        importlib.import_module(name)
    except ImportError:  # numba's bundled numba.cuda: no such module, nothing to load
        pass
    finally:
        delattr(np, removed)


class PackedLaunch:
    """A kernel launch whose arguments numba-cuda has converted once: a replay is one
    driver call.

    numba-cuda's ``kernel[grid, block](*args)`` converts every argument at every
    launch (a device array becomes its pointer, shape and strides), about 94 µs a
    launch on an H100's host, most of a small training step's time.  Here the
    kernel is specialized once (:meth:`numba.cuda.dispatcher.CUDADispatcher.specialize`),
    numba-cuda's own conversion (``_Kernel._prepare_args``) runs once, and
    :meth:`__call__` hands the converted values to ``cuda.core.launch``: 13 µs a
    launch there.  The arrays must outlive the launch (the caller keeps them);
    scalars converted to ctypes values are changed in place by :meth:`set`.

    Build it with :func:`packed_launch`, which returns None where numba-cuda's
    internals differ from what this needs.
    """

    __slots__ = ("_config", "_function", "_launch", "_positions", "_stream", "_values")

    def __init__(self, kernel: Any, grid: Any, block: Any, args: tuple) -> None:
        from cuda.core import LaunchConfig, launch

        specialized, configured = specialize(kernel, grid, block, args)
        (compiled,) = specialized.overloads.values()
        if compiled.debug or compiled.cooperative:
            raise _Unpackable("a debug or cooperative kernel")
        values: list = []
        written: list = []  # numba-cuda's copy-backs of host arrays: none allowed here
        self._positions = []
        for ty, value in zip(compiled.argument_types, args, strict=True):
            self._positions.append(len(values))
            compiled._prepare_args(ty, value, configured.stream, written, values)
        if written:
            raise _Unpackable("a host array argument")
        self._values, self._stream, self._launch = values, configured.stream, launch
        self._config = LaunchConfig(
            grid=configured.griddim, block=configured.blockdim, shmem_size=0
        )
        self._function = compiled._codelibrary.get_cufunc().kernel

    def __call__(self) -> None:
        self._launch(self._stream, self._config, self._function, *self._values)

    def set(self, index: int, value: Any) -> None:
        """Change scalar argument ``index`` for the later launches.

        Parameters
        ----------
        index : int
            The argument's position.
        value : scalar
            Its new value, of the type the first value had.
        """
        position = self._positions[index]
        held = self._values[position]
        if isinstance(held, ctypes._SimpleCData):
            held.value = value  # the launch reads it when it runs
        else:  # booleans are passed as they are
            self._values[position] = value


def specialize(kernel: Any, grid: Any, block: Any, args: tuple) -> tuple[Any, Any]:
    """``kernel`` specialized for the types of ``args`` and configured for ``[grid, block]``.

    Later calls of the configured kernel skip numba's type dispatch.  numba's
    low-occupancy warning is silenced: the small grids here are deliberate (the
    loss is one block).

    Parameters
    ----------
    kernel : numba CUDA kernel
        A ``@cuda.jit`` kernel, not yet specialized.
    grid, block : int or tuple of int
        The launch configuration.
    args : tuple
        Arguments of the types it will be launched with.

    Returns
    -------
    specialized, configured
        The specialized dispatcher and ``specialized[grid, block]``.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*under-utilization")
        specialized = kernel.specialize(*args)
        return specialized, specialized[grid, block]


class _Unpackable(Exception):
    """A launch :class:`PackedLaunch` cannot prepare (numba's own launch takes it)."""


def packed_launch(kernel: Any, grid: Any, block: Any, args: tuple) -> PackedLaunch | None:
    """A :class:`PackedLaunch` of ``kernel[grid, block](*args)``, or None where it cannot be.

    Parameters
    ----------
    kernel : numba CUDA kernel
        A ``@cuda.jit`` kernel, not yet specialized.
    grid, block : int or tuple of int
        The launch configuration (checked by the caller).
    args : tuple
        Its arguments: device arrays and scalars.

    Returns
    -------
    PackedLaunch or None
        None under the simulator, and where numba-cuda's internals are not the
        ones this was written against (numba-cuda 0.30 with cuda-core 1.2): the
        caller then launches through numba, as fast as numba allows, and the
        first such launch of a process warns (RuntimeWarning) saying why.
    """
    if simulator_enabled():
        return None
    try:
        return PackedLaunch(kernel, grid, block, args)
    except (ImportError, AttributeError, TypeError, ValueError, _Unpackable) as err:
        _warn_unprepared(err)
        return None


def first_replay(packed: Any) -> bool:
    """Run a :class:`PackedLaunch`'s first replay; False where its values were refused.

    A numba-cuda or cuda-core other than the pinned ones may build the launch
    but refuse its values at the driver call (TypeError, ValueError or
    AttributeError, raised before anything is launched).  Then this warns as
    :func:`packed_launch` does (once a process) and returns False: the caller
    launches through numba from then on.  Any other error (a CUDA error of the
    launch itself) is raised.

    Parameters
    ----------
    packed : PackedLaunch
        A launch not replayed yet.

    Returns
    -------
    bool
        True if the replay ran.
    """
    try:
        packed()
    except (AttributeError, TypeError, ValueError) as err:
        _warn_unprepared(err)
        return False
    return True


def _warn_unprepared(err: BaseException) -> None:
    """Warn, once a process, that launches go through numba's own launch, and why."""
    if not _UNPREPARED:
        _UNPREPARED.append(err)
        warnings.warn(
            f"fastinit: CUDA launches go through numba's own launch, which converts "
            f"every argument each time (a training step about 7x slower on an H100): "
            f"this numba-cuda cannot be prepared for replays ({type(err).__name__}: "
            f"{err}); fastinit's prepared launches were written for numba-cuda 0.30",
            RuntimeWarning,
            stacklevel=3,
        )


_UNPREPARED: list = []  # the first reason a launch could not be prepared, once warned of


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says that host or device memory ran out.

    Parameters
    ----------
    err : BaseException
        An error raised while allocating.

    Returns
    -------
    bool
        True for a ``MemoryError`` (the host, or the simulator's device) and for
        a CUDA driver error with code 2, ``CUDA_ERROR_OUT_OF_MEMORY``.
    """
    if isinstance(err, MemoryError):
        return True
    try:
        return int(getattr(err, "code", -1)) == 2
    except (TypeError, ValueError):
        return False


class NamedMemoryError(MemoryError):
    """A MemoryError that already names the argument to change: :func:`memory_error` passes
    it on unchanged (an inner block's error is the more precise one)."""


@contextlib.contextmanager
def memory_error(make: Callable[[], BaseException]) -> Iterator[None]:
    """Replace an out-of-memory error raised in the block (:func:`out_of_memory`) by
    ``make()``, one that names the argument to change; a :class:`NamedMemoryError` and
    every other error pass unchanged.

    Parameters
    ----------
    make : callable
        Makes the error to raise instead.
    """
    try:
        yield
    except NamedMemoryError:
        raise
    except Exception as err:
        if not out_of_memory(err):
            raise
        raise make() from None


def device_memory(name: str, dims: tuple[int, ...], dtype: Any) -> Any:
    """:func:`memory_error` for one array of shape ``dims``, whose size the argument ``name`` sets.

    Parameters
    ----------
    name : str
        The argument that sized the array (``"shape"``, ``"n"``).
    dims : tuple of int
        The array's shape.
    dtype : dtype_like
        Its dtype.

    Returns
    -------
    context manager
        Raising ``MemoryError("name: (dims) dtype (N bytes) does not fit in the device's
        memory; ...")`` where the block ran out of memory.
    """
    nbytes = math.prod(dims) * np.dtype(dtype).itemsize
    return memory_error(
        lambda: MemoryError(
            f"{name}: {tuple(dims)} {np.dtype(dtype).name} ({nbytes} bytes) does not fit in "
            f"the device's memory; use a smaller {name}, or device='cpu'"
        )
    )


def _numba_cuda_installed() -> bool:
    """Whether the ``numba-cuda`` package (the ``cuda`` extra) is installed."""
    import importlib.util

    return importlib.util.find_spec("numba_cuda") is not None


def check_device(device: Any, name: str = "device") -> str:
    """Validate a ``device`` argument; for ``"cuda"``, check that CUDA can run.

    Parameters
    ----------
    device : {"cpu", "cuda"}
        The requested device (case-insensitive).
    name : str
        Argument name used in error messages.

    Returns
    -------
    str
        ``"cpu"`` or ``"cuda"``.

    Raises
    ------
    ValueError
        When ``device`` is not one of :data:`DEVICES`.
    RuntimeError
        When ``device`` is ``"cuda"`` and CUDA is unavailable (see :func:`cuda_module`).
    """
    if not isinstance(device, str) or device.lower() not in DEVICES:
        raise ValueError(f"{name}: expected one of {DEVICES}, got {device!r}")
    device = device.lower()
    if device == "cuda":
        cuda_module()
    return device


def is_device_array(a: Any) -> bool:
    """Whether ``a`` is a numba CUDA device array (without importing numba.cuda).

    Parameters
    ----------
    a : object
        Anything.

    Returns
    -------
    bool
        True for numba device arrays: real ones expose ``__cuda_array_interface__``
        and ``copy_to_host``, the simulator's set ``__cuda_ndarray__``.
    """
    if getattr(a, "__cuda_ndarray__", False):
        return True
    return hasattr(a, "__cuda_array_interface__") and hasattr(a, "copy_to_host")


def check_device_array(a: Any, name: str) -> None:
    """Refuse a host array (or anything else) where a kernel's operand must be on the device.

    A NumPy array passed to a kernel is copied to the device and back around
    the launch, one copy per argument: an array passed twice (or two views of
    one) is written back twice, the second copy undoing the first's results.

    Parameters
    ----------
    a : object
        The operand.
    name : str
        Its argument name, for the message.

    Raises
    ------
    TypeError
        ``name: expected a numba CUDA device array, got <type>`` when ``a`` is
        not one (:func:`is_device_array`).
    """
    if not is_device_array(a):
        raise TypeError(f"{name}: expected a numba CUDA device array, got {type(a).__name__}")


def _interface(a: Any) -> dict:
    """``a``'s ``__cuda_array_interface__`` (a simulator array's ``__array_interface__``)."""
    face = getattr(a, "__cuda_array_interface__", None)
    return face if face is not None else a.__array_interface__


def _byte_range(a: Any) -> tuple[int, int]:
    """``[first, end)``: the device addresses that ``a``'s elements span (empty for no element)."""
    start = _interface(a)["data"][0]
    if a.size == 0:
        return start, start
    reach = [(n - 1) * s for n, s in zip(a.shape, a.strides, strict=True)]
    first = start + sum(r for r in reach if r < 0)
    return first, start + sum(r for r in reach if r > 0) + a.dtype.itemsize


def may_share_memory(a: Any, b: Any) -> bool:
    """Whether two device arrays' address ranges overlap (:func:`numpy.may_share_memory`'s rule).

    Bounds only: interleaved views (``d[::2]``, ``d[1::2]``) count as overlapping.

    Parameters
    ----------
    a, b : numba CUDA device arrays

    Returns
    -------
    bool
        True when some address lies in both ranges.
    """
    (a0, a1), (b0, b1) = _byte_range(a), _byte_range(b)
    return a0 < b1 and b0 < a1


def to_host(a: Any) -> Any:
    """A device array's values as a NumPy array, whatever the signs of its strides.

    numba copies no device array with a negative stride to the host
    (``NotImplementedError: D->H copy not implemented for negative strides``),
    such as ``d[::-1]``, and on a GPU a negative-step slice of such a view has no
    elements (numba-cuda 0.30.4, seen on an H100), so it cannot be flipped back
    either: the bytes its elements span are copied as one run, and read on the
    host with its shape, dtype and strides.

    Parameters
    ----------
    a : numba CUDA device array

    Returns
    -------
    numpy.ndarray
        ``a``'s shape, dtype and values (C-contiguous where a stride is negative).
    """
    if not any(s < 0 for s in a.strides):
        return a.copy_to_host()
    if a.size == 0:
        return np.empty(a.shape, a.dtype)
    first, end = _byte_range(a)
    span = _bytes_to_host(a, first, end - first)
    offset = _interface(a)["data"][0] - first
    return np.ndarray(a.shape, a.dtype, buffer=span, offset=offset, strides=a.strides).copy()


def _bytes_to_host(owner: Any, first: int, nbytes: int) -> np.ndarray:
    """``nbytes`` bytes of device memory from address ``first`` (inside ``owner``), on the host."""
    if simulator_enabled():  # the simulator's device memory is host memory
        return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(first)).copy()
    face = {"shape": (nbytes,), "typestr": "|u1", "data": (first, False), "version": 3}
    return cuda_module().from_cuda_array_interface(face, owner=owner).copy_to_host()
