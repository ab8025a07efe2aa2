"""Calls by address (fastinit._native): native functions, their callers, views."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit, types
from numba.core.errors import TypingError

from fastinit import _native

SIG = types.float64(types.float32[::1], types.float32[::1], types.int64)


@_native.native_function
def _scaled_copy(a, b, k):
    if k < 0:
        raise ValueError("k must be >= 0")
    s = 0.0
    for i in range(a.shape[0]):
        b[i] = a[i] * k
        s += b[i]
    return s


_call_scaled_copy = _native.native_caller(lambda *args: SIG, "scaled_copy")


@njit
def _caller(address, a, b, k):
    return _call_scaled_copy(address, (a, b, k))


@njit
def _bad_caller(address, a, b):
    return _call_scaled_copy(address, (a, b, 1.5))  # a float where int64 is expected


@njit
def _view(flat, off, m, n):
    return _native.view2d(flat, off, m, n)


def test_native_function_runs_through_its_address_and_raises_from_python():
    address = _native.native_address(_scaled_copy, SIG)
    assert address != 0 and address == _native.native_address(_scaled_copy, SIG)
    a = np.arange(5, dtype=np.float32)
    b = np.zeros_like(a)
    assert _caller(address, a, b, 3) == 30.0
    np.testing.assert_array_equal(b, 3 * a)
    with pytest.raises(ValueError, match="k must be >= 0"):  # the callee's exception
        _caller(address, a, b, -1)
    with pytest.raises(TypeError, match="compiled code"):
        _scaled_copy(a, b, 3)


def test_native_caller_refuses_arguments_of_another_type_when_compiling():
    address = _native.native_address(_scaled_copy, SIG)
    a = np.zeros(3, np.float32)
    with pytest.raises(TypingError):
        _bad_caller(address, a, a)


def test_native_address_checks_the_return_type():
    with pytest.raises(TypeError, match="compiled to return"):
        _native.native_address(_scaled_copy, types.int64(*SIG.args))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_view2d_is_a_writable_view_of_the_flat_array(dtype):
    flat = np.arange(40, dtype=dtype)
    v = _view(flat, 6, 5, 3)
    assert v.shape == (5, 3) and v.flags.c_contiguous and v.dtype == dtype
    np.testing.assert_array_equal(v, flat[6:21].reshape(5, 3))
    assert np.shares_memory(v, flat)
    v[4, 2] = -1
    assert flat[20] == -1
