"""Error bounds of the branch-free float32 approximations, against float64 oracles."""

import numpy as np
from numba import njit
from scipy.special import erfinv

from fastinit import _fastmath as fm


@njit(cache=True)
def _log_all(x, out):
    for i in range(x.size):
        out[i] = fm.log_f32(x[i])


@njit(cache=True)
def _sincos_all(k, c, s):
    for i in range(k.size):
        c[i], s[i] = fm.sincos_2pi(k[i])


@njit(cache=True)
def _erfinv_all(x, out):
    for i in range(x.size):
        out[i] = fm.erfinv_f32(x[i])


def test_log_relative_error_below_2e7():
    x = np.geomspace(2.0**-31, 1.0, 400_001).astype(np.float32)
    x = np.concatenate([x, np.float32(2.0**-24) * np.arange(1, 2**14, dtype=np.float32)])
    out = np.empty_like(x)
    _log_all(x, out)
    ref = np.log(x.astype(np.float64))
    rel = np.abs(out - ref) / np.maximum(np.abs(ref), 1e-300)
    exact = ref == 0
    assert np.all(out[exact] == 0)
    assert rel[~exact].max() < 2e-7


def test_sincos_absolute_error_below_2e7_on_every_phase():
    k = np.arange(2**24, dtype=np.int32)
    c = np.empty(k.size, np.float32)
    s = np.empty(k.size, np.float32)
    _sincos_all(k, c, s)
    theta = 2 * np.pi * k.astype(np.float64) / 2**24
    assert np.abs(c - np.cos(theta)).max() < 2e-7
    assert np.abs(s - np.sin(theta)).max() < 2e-7


def test_erfinv_relative_error_below_1e6():
    x = np.linspace(-1, 1, 2_000_001)[1:-1].astype(np.float32)
    x = np.concatenate([x, np.float32(1) - np.geomspace(2.0**-24, 0.5, 1000).astype(np.float32)])
    out = np.empty_like(x)
    _erfinv_all(x, out)
    ref = erfinv(x.astype(np.float64))
    nz = ref != 0
    assert np.all(out[~nz] == 0)
    assert (np.abs(out - ref)[nz] / np.abs(ref[nz])).max() < 1e-6
