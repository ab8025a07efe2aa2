"""Argument checks shared by the public API.

Every public function validates its input here, before any kernel runs, and
raises ``ValueError`` or ``TypeError`` naming the argument and what was expected.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from fastinit._cuda import is_device_array, to_host
from fastinit._progress import count

DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
# the most elements of a float64 array: NumPy counts its bytes in an intp (2**60 - 1)
MAX_ELEMENTS = int(np.iinfo(np.intp).max) // 8


def check_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """Return float32 or float64 as a numpy dtype, or raise TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:  # (a misspelt name; not None, which NumPy equates with float64)
        dt = np.dtype(np.void)
    if dtype is None or dt not in DTYPES.values():
        raise TypeError(f"{name}: expected 'float32' or 'float64', got {dtype!r}")
    return dt


def check_representable(value: float, name: str, dtype: np.dtype) -> float:
    """Return ``value`` if its magnitude fits ``dtype`` (finite once cast), or raise."""
    top = dtype_range(dtype)[1]
    if not abs(value) <= top:
        raise ValueError(f"{name}: expected a magnitude within the {dtype} range ({top:.4g}), "
                         f"got {value:.4g}")  # fmt: skip
    return value


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` as a bool if it is one (Python or NumPy), or raise TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int in [low, high], or raise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {value}")
    return value


def check_seed(value: Any, name: str = "seed") -> int:
    """Return a seed or stream number in [0, 2**64)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer in [0, 2**64), got {value!r}")
    value = int(value)
    if not 0 <= value < 2**64:
        raise ValueError(f"{name}: expected an integer in [0, 2**64), got {value}")
    return value


def check_finite(value: Any, name: str) -> float:
    """Return ``value`` as a finite float, or raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond the float range
        raise ValueError(f"{name}: expected a finite number, got an integer beyond the "
                         "float range") from None  # fmt: skip
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    return value


def check_nonneg(value: Any, name: str) -> float:
    """Return ``value`` as a finite float >= 0, or raise."""
    value = check_finite(value, name)
    if value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value}")
    return value


def check_positive(value: Any, name: str) -> float:
    """Return ``value`` as a finite float > 0, or raise."""
    value = check_finite(value, name)
    if value <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value}")
    return value


def all_finite(values: np.ndarray) -> bool:
    """Whether every value of the float array ``values`` is finite.

    A finite sum proves it (a NaN or an infinity makes the sum NaN or
    infinite) in one pass without a temporary: 18 instead of 30 ms on MNIST's
    training images.  Only a sum that is not finite (a non-finite value, or
    finite values overflowing the sum) is checked value by value.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(values, axis=None)):
            return True
    return bool(np.isfinite(values).all())


def cast_finite(values: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    """``values`` as a C-contiguous ``dtype`` array (not copied if it is one), or
    ValueError if a value is NaN or inf, or becomes inf in ``dtype`` (a float64
    beyond the float32 range), without NumPy's overflow warning."""
    cast = values.dtype != dtype
    if cast and values.dtype.kind == "f" and not all_finite(values):
        cast = False  # non-finite already: the error below says so
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(values, dtype=dtype)
    if not all_finite(out):
        if cast:
            big = float(np.abs(values).max())
            raise ValueError(f"{name}: expected values within the {dtype} range, got {big:.4g}")
        raise ValueError(f"{name}: expected finite values, found NaN or inf")
    return out


def check_shape(
    shape: Any, name: str = "shape", *, min_ndim: int = 0, allow_zero: bool = False
) -> tuple[int, ...]:
    """Return ``shape`` as a tuple of positive ints with at least ``min_ndim`` entries.

    With ``allow_zero``, dimensions may also be 0 (an empty array's shape).  The
    product of the non-zero dimensions is at most :data:`MAX_ELEMENTS`, as NumPy
    requires of a float64 array (of an empty one too), so a shape no array can
    have is refused here, naming ``name``, not by NumPy's ``array is too big``.
    """
    kind = "non-negative" if allow_zero else "positive"
    expected = f"{name}: expected a tuple of {kind} integers, got"
    given = shape
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, np.ndarray):  # sizes, as MLP(sizes=np.array(...)) takes them
        if shape.dtype.kind not in "iu":
            raise TypeError(f"{expected} an array of {shape.dtype}")
        if shape.ndim > 1:
            raise ValueError(f"{expected} an array of {shape.ndim} dimensions")
        shape = shape.tolist()  # an int for a 0-d array, a list of ints for a 1-d one
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if not isinstance(shape, Sequence) or isinstance(shape, str):
        raise TypeError(f"{expected} {shape!r}")
    given = given if given is not shape else tuple(shape)  # an int is named as given
    dims = []
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"{expected} {given!r}")
        if d < 0 or (d == 0 and not allow_zero):
            raise ValueError(f"{expected} {given!r}")
        dims.append(int(d))
    if math.prod(d for d in dims if d) > MAX_ELEMENTS:
        raise ValueError(
            f"{name}: expected at most {MAX_ELEMENTS} elements (zero dimensions left out), "
            f"got {given!r}"
        )
    if len(dims) < min_ndim:
        raise ValueError(
            f"{name}: expected at least {min_ndim} dimensions, got {len(dims)} ({tuple(dims)!r})"
        )
    return tuple(dims)


def check_path(
    value: Any, name: str, expected: str = "a file name", *, allow_bytes: bool = False
) -> Any:
    """``value`` where it can name a file or a directory: a str or an ``os.PathLike``
    (and a bytes name with ``allow_bytes``).

    Parameters
    ----------
    value : Any
        What the caller passed.
    name : str
        The argument's name, for the message.
    expected : str
        What was expected (``"a directory name or None"``), for the message.
    allow_bytes : bool
        Take a bytes name too.

    Returns
    -------
    str, bytes or os.PathLike
        ``value``.

    Raises
    ------
    TypeError
        ``name: expected <expected>, got <type>``.
    """
    kinds = (str, bytes, os.PathLike) if allow_bytes else (str, os.PathLike)
    if not isinstance(value, kinds):
        raise TypeError(f"{name}: expected {expected}, got {type(value).__name__}")
    return value


def suggest(word: Any, choices: Any) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to ``word``, or empty if none is close."""
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices`` (case-insensitive), or raise."""
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value.lower()


def check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype, name: str = "out") -> np.ndarray:
    """Check a user-supplied output array against the expected shape and dtype."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array")
    if not out.flags.writeable:
        raise ValueError(f"{name}: expected a writeable array")
    return out


def as_array(value: Any, name: str, expected: str) -> np.ndarray:
    """``np.asarray(value)``, naming ``name`` when NumPy cannot make an array of it.

    A ragged nested list raises NumPy's ValueError, whose message names no argument;
    an object converting itself can raise its own TypeError or RuntimeError (a torch
    tensor that requires grad, a bfloat16 one): each becomes a ValueError naming
    ``name``, with the reason given.

    Parameters
    ----------
    value : array_like
        What the caller passed.
    name : str
        The argument's name, for the message.
    expected : str
        What was expected (``"an array of shape (n, 784)"``), for the message.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ValueError
        ``name: expected <expected> (NumPy's reason)``; a masked array with
        masked values (one without any passes as its data).
    """
    if is_device_array(value):  # NumPy's copy of it fails on negative strides
        return to_host(value)
    try:
        masked = np.ma.count_masked(value) if isinstance(value, np.ma.MaskedArray) else 0
    except TypeError:  # a structured mask: no real numbers either
        raise ValueError(
            f"{name}: expected {expected}, got a masked array of {value.dtype}"
        ) from None
    if masked:  # np.asarray keeps the values under the mask, as if they were data
        raise ValueError(
            f"{name}: a masked array with {count(masked, 'masked value')}; fastinit would use "
            "the values under the mask: fill them (.filled(value)) or leave those rows out"
        )
    try:
        return np.asarray(value)
    except (ValueError, TypeError, RuntimeError) as err:
        raise ValueError(f"{name}: expected {expected} ({err})") from None


def check_dtype_holds(value: float, name: str, dtype: Any, *, zero: bool = False) -> float:
    """Return ``value`` (a number > 0) if ``dtype`` holds it without rounding it to 0 or
    to infinity, else raise ValueError naming ``name``, the range and the rounding.

    One rule for the hyperparameters the kernels round to the model dtype once
    (``lr``, ``eps``, ``weight_decay``): in float32 an ``lr`` of 1e-50 trains nothing.

    Parameters
    ----------
    value : float
        A positive number (0 and negative numbers are the caller's to refuse or allow).
    name : str
        What the error calls it (``lr``, ``--lr``, ``optimizer.eps``).
    dtype : numpy dtype or name
        The float dtype the value is rounded to.
    zero : bool
        Whether 0 is allowed too (``weight_decay``: none); the error then says so.

    Returns
    -------
    float
        ``value``.

    Raises
    ------
    ValueError
        ``lr: expected a number in [1.4e-45, 3.4e+38] with dtype 'float32' (it would round
        1e-50 to 0), got 1e-50``.
    """
    low, high = dtype_range(dtype)
    if not (low <= value <= high or (zero and value == 0)):
        rounded = "0" if value < low else "infinity"
        raise ValueError(
            f"{name}: expected {'0 or ' if zero else ''}a number in [{low:.3g}, {high:.3g}] "
            f"with dtype {np.dtype(dtype).name!r} (it would round {value:g} to {rounded}), "
            f"got {value:g}"
        )
    return value


def dtype_range(dtype: Any) -> tuple[float, float]:
    """The positive values ``dtype`` holds without rounding them to 0 or to infinity.

    Parameters
    ----------
    dtype : numpy dtype or name
        A float dtype.

    Returns
    -------
    tuple of (float, float)
        Its smallest subnormal and its largest finite value, as Python floats (a
        float32 scalar would cast what it is compared with).
    """
    finfo = np.finfo(dtype)
    return float(finfo.smallest_subnormal), float(finfo.max)


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (``progress=1``, ``iterations=2.5``).

    Both a ``TypeError``, as the checks in this module raise for a wrong type, and
    a ``ValueError``, the rule of ``MLP``, ``fit`` and the experiments for any bad
    argument, so one ``except`` catches a bad value whichever function got it (as
    NumPy's ``AxisError`` is both an IndexError and a ValueError).
    """


@contextlib.contextmanager
def value_errors() -> Iterator[None]:
    """Raise the ``TypeError`` of an argument check in the block as :class:`ArgumentTypeError`.

    Yields
    ------
    None
    """
    try:
        yield
    except ArgumentTypeError:
        raise
    except TypeError as err:
        raise ArgumentTypeError(str(err)) from None


def check_unit_interval(value: Any, name: str) -> float:
    """Return ``value`` if it is a real number in [0, 1) (a momentum, a decay), or raise.

    Parameters
    ----------
    value : float
        The number to check.
    name : str
        The argument's name, for the message.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        For a number outside [0, 1) (``check_nonneg``'s errors for the rest).
    """
    value = check_nonneg(value, name)
    if value >= 1:
        raise ValueError(f"{name}: expected a number in [0, 1), got {value}")
    return value
