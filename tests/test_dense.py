"""Dense kernels called by address: the matrix product, the backward element-wise pass."""

from __future__ import annotations

import types

import numpy as np
import pytest
from numba import njit

from fastinit import dense


@njit
def _gemm(ops, ta, a, tb, b, alpha, beta, c):
    dense.gemm(ops, ta, a, tb, b, alpha, beta, c)


@njit
def _sums(ops, g, d, db, code, b, lr, decay):
    dense.derivative_and_sums(ops, g, d, db, code, b, lr, decay)


@njit
def _backward(ops, a, w, b, g, d, dw, db, da, code, lr, decay):
    dense.dense_backward(ops, a, w, b, g, d, dw, db, da, code, lr, decay)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta", [dense.NO_TRANS, dense.TRANS])
@pytest.mark.parametrize("tb", [dense.NO_TRANS, dense.TRANS])
@pytest.mark.parametrize("m, n, k", [(3, 2, 5), (1, 1, 1), (16, 24, 40)])  # loop, loop, BLAS
@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (-0.5, 0.75)])
def test_gemm_matches_numpy_for_every_orientation(dtype, ta, tb, m, n, k, alpha, beta):
    assert (m * n * k >= dense.BLAS_MIN_FLOPS) == ((m, n, k) == (16, 24, 40))
    rng = np.random.default_rng(m * n * k)
    a = rng.standard_normal((k, m) if ta == dense.TRANS else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb == dense.TRANS else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    op_a = a.T if ta == dense.TRANS else a
    op_b = b.T if tb == dense.TRANS else b
    expected = alpha * (op_a.astype(np.float64) @ op_b) + (beta * c if beta else 0.0)
    _gemm(dense.ops_table(dtype), ta, a, tb, b, alpha, beta, c)
    assert c.dtype == dtype
    np.testing.assert_allclose(c, expected, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)  # fmt: skip


def test_gemm_on_row_slices_uses_the_leading_dimension():
    """A row slice of a wider buffer: the product must read rows ``lda`` apart."""
    rng = np.random.default_rng(0)
    buf = rng.standard_normal((20, 30)).astype(np.float32)
    a = buf[:, :7]  # 20 x 7, rows 30 apart
    assert not a.flags.c_contiguous
    b = rng.standard_normal((7, 9)).astype(np.float32)
    c = np.zeros((20, 9), np.float32)
    _gemm(dense.ops_table(np.float32), dense.NO_TRANS, a[:, :], dense.NO_TRANS, b, 1.0, 0.0, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("identity", [False, True])
@pytest.mark.parametrize("lr", [0.0, 0.1])
def test_derivative_sums_and_fused_bias_step(dtype, identity, lr):
    rng = np.random.default_rng(3)
    m, n = 7, 5  # m not a multiple of 4: the unrolled rows and the rest
    g = rng.standard_normal((m, n)).astype(dtype)
    d = rng.standard_normal((m, n)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    db = np.full(n, np.nan, dtype)
    dz = g.copy() if identity else g * d
    b_expected = b - dtype(lr) * (dz.sum(axis=0) + dtype(0.01) * b) if lr else b.copy()
    code = 0 if identity else 3
    assert (code == dense.IDENTITY) == identity
    _sums(dense.ops_table(dtype), g, d, db, code, b, lr, 0.01)
    np.testing.assert_array_equal(d, dz)
    np.testing.assert_allclose(db, dz.sum(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b, b_expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lr, decay", [(0.0, 0.0), (0.1, 0.0), (0.1, 0.05)])
def test_backward_gives_the_gradients_or_the_fused_sgd_step_with_decay(lr, decay):
    # w = (1 - lr decay) w - lr a.T @ dz, as documented: fit fuses only decay-free SGD,
    # so a sign slip in the decay term (1 + lr decay) passed every test (mutation audit)
    rng = np.random.default_rng(5)
    m, fan_in, fan_out = 6, 4, 3
    a, g = rng.standard_normal((m, fan_in)), rng.standard_normal((m, fan_out))
    w, b = rng.standard_normal((fan_in, fan_out)), rng.standard_normal(fan_out)
    d = rng.standard_normal((m, fan_out))  # f'(z); tanh's code: applied
    dz = g * d
    w0, b0 = w.copy(), b.copy()
    dw, db, da = np.full_like(w, np.nan), np.empty(fan_out), np.empty((m, fan_in))
    _backward(dense.ops_table(np.float64), a, w, b, g, d, dw, db, da, 2, lr, decay)
    np.testing.assert_allclose(da, dz @ w0.T, rtol=1e-12)  # with the old weights
    np.testing.assert_allclose(db, dz.sum(axis=0), rtol=1e-12)
    if lr == 0.0:
        np.testing.assert_allclose(dw, a.T @ dz, rtol=1e-12)
        np.testing.assert_array_equal(w, w0)
    else:
        np.testing.assert_allclose(w, (1 - lr * decay) * w0 - lr * (a.T @ dz), rtol=1e-12)
        np.testing.assert_allclose(b, b0 - lr * (dz.sum(axis=0) + decay * b0), rtol=1e-12)


def test_ops_table_is_one_per_dtype():
    f32, f64 = dense.ops_table(np.float32), dense.ops_table("float64")
    assert dense.ops_table("float32") is f32 and dense.ops_table(np.dtype(np.float64)) is f64
    assert f32.dtype == np.int64 and (f32 != 0).all() and (f64 != 0).all()
    for col in (dense.GEMM, dense.SUMS, dense.FORWARD, dense.BACKWARD):
        assert f32[col] != f64[col]
    assert f32[dense.BLAS_ABI] == f64[dense.BLAS_ABI]


def test_scalars_of_any_numeric_type_reach_the_kernels_as_int64_and_float64(python_subprocess):
    # a Python int for alpha (a float64 slot) was passed as an int64 and crashed the
    # process; a float32 was passed as a 4-byte float and read as garbage
    code = (
        "import numpy as np\n"
        "from tests.test_dense import _gemm\n"
        "from fastinit import dense\n"
        "a, b = np.arange(6.0).reshape(2, 3), np.ones((3, 2))\n"
        "N = dense.NO_TRANS\n"
        "for alpha, beta in [(1, 0), (np.float32(2.0), np.int32(0)), (np.int8(1), 0.0)]:\n"
        "    c = np.zeros((2, 2))\n"
        "    _gemm(dense.ops_table('float64'), N, a, N, b, alpha, beta, c)\n"
        "    print(c.ravel().tolist())\n"
    )
    lines = python_subprocess(code).split("\n")
    one, two = "[3.0, 3.0, 12.0, 12.0]", "[6.0, 6.0, 24.0, 24.0]"
    assert lines[:3] == [one, two, one]


def _refused(ta, a, tb, b, c):
    """``_gemm`` on these operands; the ValueError's message (none: fails)."""
    ops = dense.ops_table(c.dtype)
    with pytest.raises(ValueError) as err:
        _gemm(ops, ta, a, tb, b, 1.0, 0.0, c)
    return str(err.value)


def test_gemm_refuses_operands_whose_shapes_do_not_agree():
    # the kernel took its sizes from c and a: it read 4 of b's 5 rows, or past b's end
    N, T = dense.NO_TRANS, dense.TRANS
    a, c = np.ones((3, 4)), np.zeros((3, 2))
    assert _refused(N, a, N, np.ones((5, 2)), c).startswith("a, b: ")
    assert _refused(N, a, T, np.ones((2, 3)), c).startswith("a, b: ")
    assert _refused(N, a, N, np.ones((4, 3)), c).startswith("c: ")
    assert _refused(T, a, N, np.ones((3, 2)), np.zeros((3, 2))).startswith("c: ")


def test_gemm_refuses_mixed_dtypes():
    # a float64 a through the float32 kernel was read as pairs of float32: garbage
    a = np.ones((3, 4))
    b, c = np.ones((4, 2), np.float32), np.zeros((3, 2), np.float32)
    assert _refused(dense.NO_TRANS, a, dense.NO_TRANS, b, c).startswith("a, b: ")
    # an integer operand of c's width was read as floats too (3e-323 for 6)
    a, b, c = np.arange(12).reshape(3, 4), np.ones((4, 2)), np.zeros((3, 2))
    assert _refused(dense.NO_TRANS, a, dense.NO_TRANS, b, c).startswith("a, b: ")


def test_gemm_takes_empty_operands_of_any_strides():
    # NumPy may give a fresh empty array zero strides: nothing to read, nothing refused
    a, b = np.ones((3, 0)), np.ones((0, 2))
    c = np.full((3, 2), 7.0)
    _gemm(dense.ops_table(np.float64), dense.NO_TRANS, a, dense.NO_TRANS, b, 1.0, 0.0, c)
    np.testing.assert_array_equal(c, np.zeros((3, 2)))


def _cols(x, pad=1):
    """``x``'s values as a column slice of a wider buffer (numba's any-layout type: the
    tests below share one compiled signature)."""
    buf = np.zeros((x.shape[0], x.shape[1] + pad), x.dtype)
    buf[:, : x.shape[1]] = x
    return buf[:, : x.shape[1]]


def test_gemm_refuses_rows_that_are_not_contiguous_and_ascending():
    # a c with strided columns was written with a leading dimension that skips
    # them; a reversed a (negative row stride) made BLAS refuse the call and
    # leave c stale: both silent
    N, rng = dense.NO_TRANS, np.random.default_rng(1)
    a, b = _cols(rng.standard_normal((3, 4))), _cols(rng.standard_normal((4, 2)))
    assert _refused(N, a, N, b, np.zeros((2, 4))[:, :3].T).startswith("c: ")
    assert _refused(N, a[::-1], N, b, _cols(np.zeros((3, 2)))).startswith("a: ")
    assert _refused(N, a, N, np.zeros((2, 5))[:, :4].T, _cols(np.zeros((3, 2)))).startswith("b: ")


def test_gemm_refuses_a_result_overlapping_an_operand():
    # c = a @ b written into a itself reads rows of a already overwritten
    N = dense.NO_TRANS
    a, b = _cols(np.arange(9.0).reshape(3, 3)), _cols(np.ones((3, 3)))
    assert _refused(N, a, N, b, a).startswith("c: ")
    assert _refused(N, b, N, a, a[:, :]).startswith("c: ")
    buf = np.zeros((3, 6))
    assert _refused(N, buf[:, :3], N, b, buf[:, 3:]).startswith("c: ")


def test_gemm_on_a_one_row_view_whose_row_stride_is_one_element():
    # x.T of an (k, 1) column is (1, k) with strides (8, 8): its leading dimension
    # went to BLAS as 1 < k, which refused the call ("parameter number 10 had an
    # illegal value") and left c stale
    rng = np.random.default_rng(2)
    a = rng.standard_normal((40, 1)).T
    b = rng.standard_normal((40, 30))
    assert a.strides == (8, 8) and a.shape[1] * b.shape[1] >= dense.BLAS_MIN_FLOPS
    c = np.full((1, 30), np.nan)
    _gemm(dense.ops_table(np.float64), dense.NO_TRANS, a, dense.NO_TRANS, b, 1.0, 0.0, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "name, shapes",
    [
        ("g", {"g": (7, 4)}),
        ("db", {"db": (4,)}),
        ("b", {"b": (6,)}),
    ],
)
def test_derivative_and_sums_refuses_operands_that_do_not_agree(name, shapes):
    m, n = 7, 5
    arrays = {k: np.ones(shapes.get(k, s)) for k, s in
              {"g": (m, n), "d": (m, n), "db": (n,), "b": (n,)}.items()}  # fmt: skip
    with pytest.raises(ValueError, match=rf"^{name}: "):
        _sums(dense.ops_table(np.float64), arrays["g"], arrays["d"], arrays["db"], 3,
              arrays["b"], 0.1, 0.0)  # fmt: skip


def test_derivative_and_sums_refuses_strided_and_mixed_operands():
    # the pass runs flat over g and d: a column slice was read as whole rows
    m, n = 7, 5
    g, d, db, b = np.ones((m, 2 * n))[:, :n], np.ones((m, n)), np.zeros(n), np.zeros(n)
    with pytest.raises(ValueError, match=r"^g: "):
        _sums(dense.ops_table(np.float64), g, d, db, 3, b, 0.1, 0.0)
    with pytest.raises(ValueError, match=r"^g, db, b: "):
        _sums(dense.ops_table(np.float64), np.ones((m, n), np.float32), d, db, 3, b, 0.1, 0.0)
    with pytest.raises(ValueError, match=r"^g, db, b: "):  # int64: the same width, read as floats
        _sums(dense.ops_table(np.float64), np.ones((m, n), np.int64), d, db, 3, b, 0.1, 0.0)


class _FakeLibrary:
    """A loaded library exporting only the given names (as ctypes attributes)."""

    def __init__(self, *names):
        for name in names:
            setattr(self, name, types.SimpleNamespace())


def test_thread_functions_found_under_numpy_1_2x_wheel_names(monkeypatch):
    # NumPy 1.22-1.26 wheels name them openblas_{get,set}_num_threads64_: one_blas_thread
    # did nothing there, and orthogonal's bits followed OPENBLAS_NUM_THREADS
    names = ("openblas_get_num_threads64_", "openblas_set_num_threads64_")
    monkeypatch.setattr(dense, "_numpy_blas_paths", lambda: ["libopenblas64_.so"])
    monkeypatch.setattr(dense.ctypes, "CDLL", lambda path: _FakeLibrary(*names))
    found = dense._openblas_thread_functions.__wrapped__()
    assert found is not None and len(found) == 2


def test_scipy_fallback_refuses_an_ilp64_cython_blas(monkeypatch):
    # the fallback passes 32-bit integers: an ILP64 cython_blas would read garbage
    monkeypatch.setattr(dense, "_numpy_cblas", lambda: None)
    monkeypatch.setattr(dense, "_scipy_cython_blas_is_ilp64", lambda: True)
    with pytest.raises(RuntimeError, match="64-bit \\(ILP64\\) integers"):
        dense.blas_table.__wrapped__()
    monkeypatch.setattr(dense, "_scipy_cython_blas_is_ilp64", lambda: False)
    assert dense.blas_table.__wrapped__()[-1] == dense.FORTRAN


def test_blas_choice_refuses_an_unknown_value(monkeypatch):
    monkeypatch.setenv("FASTINIT_BLAS", "scpiy")  # a typo ran NumPy's silently
    with pytest.raises(ValueError, match=r"^FASTINIT_BLAS: expected 'numpy', 'scipy' or unset"):
        dense.blas_table.__wrapped__()
    monkeypatch.setenv("FASTINIT_BLAS", "SciPy")
    assert dense.blas_table.__wrapped__()[-1] == dense.FORTRAN
