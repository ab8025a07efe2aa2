"""The CUDA training twins against the CPU code, on the same inputs.

Runs under numba's CUDA simulator when no NVIDIA driver is present (see
``conftest.py``; every CUDA thread is a Python thread there, hence the tiny
shapes), and on a real GPU with ``NUMBA_ENABLE_CUDASIM=0``.  Oracles are the
CPU kernels (themselves tested against NumPy/PyTorch formulas elsewhere) and
NumPy products.
"""

from __future__ import annotations

import enum
import functools
import io

import numpy as np
import pytest

from fastinit import activations, losses, optim, train
from fastinit._cuda import simulator_enabled
from fastinit._progress import ProgressBar
from fastinit.model import MLP
from fastinit.train import fit_many
from tests.test_optim import BAD_UPDATES

pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaWarning")

SIZES = [5, 7, 6, 3]
RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.standard_normal((14, 5)).astype(np.float32), rng.integers(0, 3, 14)


def _pair(dtype: str = "float32", activation=("tanh", "gelu"), **kw) -> tuple[MLP, MLP]:
    acts = list(activation)
    cpu = MLP(SIZES, activation=acts, seed=3, dtype=dtype, **kw)
    return cpu, MLP(SIZES, activation=acts, seed=3, dtype=dtype, device="cuda", **kw)


def _close(a, b, dtype="float32") -> None:
    tol = (RTOL, ATOL) if dtype == "float32" else (1e-10, 1e-12)
    np.testing.assert_allclose(a, b, rtol=tol[0], atol=tol[1])


# ----------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_activation_value_and_derivative(dtype):
    from fastinit import activations_cuda

    x = np.concatenate([np.linspace(-12, 12, 25), [-100.0, -30.0, 0.0, 30.0, 100.0, np.nan]])
    x = x.astype(dtype)
    # a few ulps: libdevice's erfc/exp against the CPU's
    rtol, atol = (2e-6, 4e-7) if dtype == "float32" else (1e-13, 1e-15)
    for name in activations.NAMES:
        want = activations.apply(x, name)
        got = activations_cuda.apply(x, name)
        for w, g in zip(want, got, strict=True):
            assert g.dtype == x.dtype
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=name)
    for spec in [("leaky_relu", {"negative_slope": 0.3}), ("elu", {"alpha": 0.5}),
                 ("softplus", {"beta": 2.0, "threshold": 5.0})]:  # fmt: skip
        for w, g in zip(activations.apply(x, spec), activations_cuda.apply(x, spec), strict=True):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=str(spec))


@pytest.mark.parametrize("dtype, lowest", [("float32", -12.0), ("float64", -37.0)])
def test_gelu_twin_keeps_its_relative_precision_in_the_negative_tail(dtype, lowest):
    # the twin wrote Phi as (1 + erf(z / sqrt 2)) / 2, 0 past z = -5.9 (float64), as the CPU did
    from scipy.special import ndtr

    from fastinit import activations_cuda

    z = np.linspace(lowest, -1.0, 31).astype(dtype)
    value = activations_cuda.apply(z, "gelu")[0]
    wide = z.astype(np.float64)
    np.testing.assert_allclose(value, wide * ndtr(wide), rtol=2e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("x", [[1 + 2j], ["1.0"], [None, 1.0]])
def test_activation_apply_refuses_non_real_input_as_on_the_cpu(x):
    # the twin cast it to float64 as the CPU once did: complex lost its imaginary part
    # (a ComplexWarning only), "1.0" was parsed, None failed inside NumPy naming nothing
    from fastinit import activations_cuda

    for apply in (activations.apply, activations_cuda.apply):
        with pytest.raises(ValueError, match=r"^x: expected a real \(bool, integer or float\)"):
            apply(x, "tanh")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_loss_value_and_gradient(dtype):
    from fastinit import losses_cuda

    rng = np.random.default_rng(1)
    z = (rng.standard_normal((6, 4)) * 5).astype(dtype)
    cases = [
        ("softmax_cross_entropy", z, rng.integers(0, 4, 6)),
        ("sigmoid_cross_entropy", z[:, :1], rng.random(6)),
        ("mse", z, rng.standard_normal((6, 4))),
    ]
    for name, logits, y in cases:
        want_v, want_g = losses.value_and_grad(name, logits, y)
        got_v, got_g = losses_cuda.value_and_grad(name, logits, y)
        assert got_g.dtype == logits.dtype
        np.testing.assert_allclose(got_v, want_v, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(got_g, want_g, rtol=1e-5, atol=1e-7, err_msg=name)
    with pytest.raises(ValueError, match="logits"):
        losses_cuda.value_and_grad("mse", z[0], z[0])


@pytest.mark.parametrize(
    ("loss", "shape"),
    [("mse", (0, 3)), ("mse", (3, 0)), ("softmax_cross_entropy", (0, 3)),
     ("sigmoid_cross_entropy", (0, 1))],
)  # fmt: skip
def test_the_loss_of_empty_logits_is_refused_as_on_the_cpu(loss, shape):
    # the mean over no rows is 0 / 0: a ZeroDivisionError in the simulator, a silent NaN
    # on a GPU (numba-cuda's numpy error model); the CPU twin refuses the logits
    from fastinit import losses_cuda

    z = np.zeros(shape, np.float32)
    y = np.zeros(shape[0], np.int64) if loss == "softmax_cross_entropy" else z.copy()
    for value_and_grad in (losses.value_and_grad, losses_cuda.value_and_grad):
        with pytest.raises(ValueError, match=r"^logits: expected at least one row and one column"):
            value_and_grad(loss, z, y)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_an_mse_row_beyond_float32_overflows_as_on_the_cpu():
    # the CPU keeps each row's term in the model dtype: a float32 row sum of squares above
    # 3.4e38 is inf, the loss is not finite and a fit diverges; the device must agree
    from fastinit import losses_cuda

    z = np.full((1, 2), 1.5e19, np.float32)  # each square 2.25e38 (finite), their sum is not
    y = np.zeros((1, 2))
    want, _ = losses.value_and_grad("mse", z, y)
    got, _ = losses_cuda.value_and_grad("mse", z, y)
    assert want == got == np.inf


def test_row_terms_are_added_in_float64_under_the_simulator_as_on_a_gpu():
    # two finite float32 row terms whose sum is not: the CPU and a GPU add them in float64;
    # under the simulator a 0.0 accumulator plus a float32 was float32, and overflowed
    from fastinit import losses_cuda

    z = np.zeros((5, 1), np.float32)
    z[[0, 4]] = 1.4e19  # rows 0 and 4: one thread's rows under the simulator (4 threads)
    y = np.zeros(5)
    want, _ = losses.value_and_grad("mse", z, y)
    got, _ = losses_cuda.value_and_grad("mse", z, y)
    assert np.isfinite(want)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("case", ["NN", "TN", "NT"])
def test_gemm_cases_match_numpy(case):
    from fastinit._cuda import cuda_module, simulator_enabled
    from fastinit.dense_cuda import gemm

    cuda = cuda_module()
    rng = np.random.default_rng(2)
    # several tiles and ragged edges: under the simulator's 8 x 8 tiles, and on a GPU
    # the 64 x 64 tiles with several reduction steps (the 9 x 11 x 10 case fits in one)
    m, k, n = (9, 11, 10) if simulator_enabled() else (130, 70, 140)
    a = rng.standard_normal((k, m) if case == "TN" else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if case == "NT" else (k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    op_a = a.T if case == "TN" else a
    op_b = b.T if case == "NT" else b
    c = cuda.to_device(c0)
    gemm(case, cuda.to_device(a), cuda.to_device(b), c, alpha=-0.5, beta=0.25)
    np.testing.assert_allclose(
        c.copy_to_host(), -0.5 * op_a @ op_b + 0.25 * c0, rtol=1e-5, atol=1e-5
    )


def test_gemm_refuses_operands_that_do_not_match():
    from fastinit._cuda import cuda_module
    from fastinit.dense_cuda import gemm

    cuda = cuda_module()
    a, c = cuda.to_device(np.ones((3, 5), np.float32)), cuda.to_device(np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"op\(a\) 3x5 times op\(b\) 4x2"):
        gemm("NN", a, cuda.to_device(np.ones((4, 2), np.float32)), c)  # read past b
    b = cuda.to_device(np.ones((5, 2), np.float32))
    with pytest.raises(ValueError, match=r"does not give c's \(2, 2\)"):
        gemm("NN", a, b, cuda.to_device(np.ones((4, 2), np.float32))[:2])  # write past c
    with pytest.raises(ValueError, match="dtype"):
        gemm("NN", a, cuda.to_device(np.ones((5, 2))), c)
    with pytest.raises(ValueError, match="case"):
        gemm("TT", a, b, c)
    ints = [cuda.to_device(np.ones(shape, np.int32)) for shape in ((3, 5), (5, 2), (3, 2))]
    with pytest.raises(ValueError, match=r"^c: expected float32 or float64, got int32"):
        gemm("NN", *ints)  # no integer kernel: the tiles accumulate in c's type


def test_gemm_refuses_a_c_that_overlaps_an_operand():
    # blocks read tiles of a and b while others write theirs of c: c = a @ b in place was
    # silently wrong (29.7 off for a 10 x 10 product under the simulator; a race on a GPU)
    from fastinit._cuda import cuda_module
    from fastinit.dense_cuda import gemm

    cuda = cuda_module()
    a = cuda.to_device(np.arange(100, dtype=np.float32).reshape(10, 10))
    before = a.copy_to_host()
    apart = cuda.to_device(np.ones((4, 10), np.float32))
    for case, ops, name in [("NN", (a, a[:, ::-1], a), "a"), ("NT", (a[2:7], a, a[:5]), "a"),
                            ("TN", (apart, a[6:], a), "b")]:  # fmt: skip
        with pytest.raises(ValueError, match=rf"^c: expected memory apart from {name}'s"):
            gemm(case, *ops)
    np.testing.assert_array_equal(a.copy_to_host(), before)  # refused before any launch
    c = cuda.to_device(np.zeros((5, 10), np.float32))
    gemm("NN", a[:5], a, c)  # the operands may share memory; only c must be apart
    np.testing.assert_allclose(c.copy_to_host(), before[:5] @ before, rtol=1e-6)


class _InterfaceArray:
    """A NumPy view seen as a GPU's DeviceNDArray is: ``__cuda_array_interface__`` (the
    simulator's arrays have none) with the address of element 0, shape and strides."""

    def __init__(self, a):
        self.shape, self.strides, self.dtype, self.size = a.shape, a.strides, a.dtype, a.size
        self.__cuda_array_interface__ = {"data": (a.__array_interface__["data"][0], False)}


def test_may_share_memory_reads_a_gpu_arrays_interface_as_numpy_does():
    from fastinit._cuda import may_share_memory

    m = np.zeros((6, 8), np.float32)
    views = [m, m[:3], m[3:], m[::-1], m[:, ::-1][2:4], m[1:2, 7:], m[5:, :1], m[:0], m.T[3:]]
    for a in views:
        for b in views:
            want = np.may_share_memory(a, b)
            assert may_share_memory(_InterfaceArray(a), _InterfaceArray(b)) == want, (a, b)


@pytest.mark.parametrize("host", ["a", "b", "c"])
def test_gemm_refuses_host_arrays(host):
    # a host c was copied to the device twice (as c and as the unused epilogue output):
    # the second, stale copy written back last left c unchanged, on a GPU as in the simulator
    from fastinit._cuda import cuda_module
    from fastinit.dense_cuda import gemm

    cuda = cuda_module()
    ops = {"a": np.ones((3, 5), np.float32), "b": np.ones((5, 2), np.float32),
           "c": np.zeros((3, 2), np.float32)}  # fmt: skip
    ops = {k: v if k == host else cuda.to_device(v) for k, v in ops.items()}
    with pytest.raises(
        TypeError, match=rf"^{host}: expected a numba CUDA device array, got ndarray"
    ):
        gemm("NN", **ops)


def test_gemm_grid_puts_rows_on_the_axis_without_the_65535_limit(monkeypatch):
    from fastinit import dense_cuda

    monkeypatch.setattr(dense_cuda, "simulator_enabled", lambda: False)  # the GPU's tiles
    grid, block, small = dense_cuda.gemm_grid(5_000_000, 10)  # a full batch of 5e6 rows
    assert grid == (78125, 1) and block == (16, 16, 1) and not small
    with pytest.raises(ValueError, match="sizes: a product with 5000000 columns"):
        dense_cuda.gemm_grid(10, 5_000_000)


def test_gemm_of_an_empty_result_launches_no_empty_grid(monkeypatch):
    # a zero-size grid is a launch error on a GPU, which the simulator runs as a no-op
    from fastinit import dense_cuda
    from fastinit._cuda import cuda_module

    cuda = cuda_module()
    grids = []
    real = dense_cuda.configure
    monkeypatch.setattr(dense_cuda, "configure", lambda k, g, b: grids.append(g) or real(k, g, b))
    for m, k, n in [(0, 3, 2), (3, 2, 0), (0, 0, 0)]:
        a, b, c = (cuda.to_device(np.ones(s, np.float32)) for s in [(m, k), (k, n), (m, n)])
        dense_cuda.gemm("NN", a, b, c, beta=0.5)
        assert c.copy_to_host().shape == (m, n)
    assert grids == []  # nothing to compute: no launch at all
    with pytest.raises(ValueError, match=r"sizes: a 3 x 0 product has no tiles"):
        dense_cuda.gemm_grid(3, 0)
    c = cuda.to_device(np.full((3, 2), 2.0, np.float32))  # k = 0: the empty sum, c = beta c
    empty = cuda.to_device(np.ones((3, 0), np.float32))
    dense_cuda.gemm("NN", empty, cuda.to_device(np.ones((0, 2), np.float32)), c, 3.0, 0.5)
    np.testing.assert_array_equal(c.copy_to_host(), np.ones((3, 2), np.float32))
    assert len(grids) == 1 and min(np.atleast_1d(grids[0])) >= 1


def test_bias_gradients_are_summed_in_float64_under_the_simulator_as_on_a_gpu():
    # compiled, the column sum starts from a float64 0.0; under the simulator 0.0 plus a
    # float32 was float32, which dropped each 3e-8 added to 1 (half an ulp is 6e-8)
    from fastinit import activations
    from fastinit._cuda import cuda_module
    from fastinit.dense_cuda import column_grid, configure, derivative_sums_kernel

    cuda = cuda_module()
    g = np.array([[1.0]] + [[3e-8]] * 10, np.float32)
    d, db = cuda.to_device(np.zeros_like(g)), cuda.to_device(np.zeros(1, np.float32))
    flag = cuda.to_device(np.zeros(1, np.int64))
    launch = configure(derivative_sums_kernel(), *column_grid(1))
    launch(cuda.to_device(g), d, db, activations.IDENTITY, flag)
    assert db.copy_to_host()[0] == np.float32(g.astype(np.float64).sum())


def _sgd_launch(lr: float):
    # the update kernel as one prepared Launch: p -= lr * g on four float32 parameters
    from fastinit import optim as _o
    from fastinit._cuda import cuda_module
    from fastinit.dense_cuda import Launch
    from fastinit.optim_cuda import factors, update_kernel

    cuda = cuda_module()
    p, g = cuda.to_device(np.ones(4, np.float32)), cuda.to_device(np.ones(4, np.float32))
    slot, flag = cuda.to_device(np.zeros(4, np.float32)), cuda.to_device(np.zeros(1, np.int64))
    f = factors(_o.SGD_CODE, np.array([lr, 0, 0, 0, 0, 0.0]), 1, "float32")
    return Launch(update_kernel(), 1, 4, (_o.SGD_CODE, p, g, slot, slot, *f, flag)), p


def test_a_prepared_launch_replays_with_the_scalars_set_since():
    # a training step replays prepared launches; the scalars that change per step (the
    # iteration, Adam's factors) are set by name in between, the arrays stay bound
    launch, p = _sgd_launch(0.5)
    launch()
    np.testing.assert_array_equal(p.copy_to_host(), np.full(4, 0.5, np.float32))
    launch.set(lr=np.float32(0.125))
    launch()
    launch()
    np.testing.assert_array_equal(p.copy_to_host(), np.full(4, 0.25, np.float32))
    assert launch.packed is not simulator_enabled()  # one driver call a replay on a GPU
    with pytest.raises(ValueError, match=r"^launch: no argument 'rate' in update_kernel's kernel"):
        launch.set(rate=0.1)
    with pytest.raises(ValueError, match=r"^launch: argument 'p' is an array, .*only scalars"):
        launch.set(p=np.zeros(4, np.float32))


def test_a_launch_that_cannot_be_prepared_warns_once_and_goes_through_numba(monkeypatch):
    # numba-cuda's internals other than 0.30's: the step is ~7x slower through numba's own
    # launch, which the user should hear of once rather than find out from a profile
    import warnings

    from fastinit import _cuda

    def layout_changed(*args):
        raise AttributeError("'_Kernel' object has no attribute '_prepare_args'")

    monkeypatch.setattr(_cuda, "simulator_enabled", lambda: False)
    monkeypatch.setattr(_cuda, "PackedLaunch", layout_changed)
    monkeypatch.setattr(_cuda, "_UNPREPARED", [])
    with pytest.warns(RuntimeWarning, match=r"^fastinit: .*numba's own launch.*_prepare_args"):
        assert _cuda.packed_launch(None, 1, 1, ()) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _cuda.packed_launch(None, 1, 1, ()) is None  # once a process


class _RefusedReplay:
    # a PackedLaunch that built but whose values the driver call refuses before launching
    def __init__(self, error):
        self.error, self.calls = error, 0

    def __call__(self):
        self.calls += 1
        raise self.error

    def set(self, index, value):
        pass


def test_a_prepared_launch_refused_at_its_first_replay_goes_through_numba(monkeypatch):
    # a numba-cuda / cuda-core whose layout builds a PackedLaunch but whose launch refuses
    # its values: the step must run (through numba's launch, with the warning), not raise
    from fastinit import _cuda, dense_cuda

    refused = _RefusedReplay(TypeError("launch(): argument 5 must be a ctypes value"))
    monkeypatch.setattr(dense_cuda, "packed_launch", lambda *args: refused)
    monkeypatch.setattr(_cuda, "_UNPREPARED", [])
    launch, p = _sgd_launch(0.5)
    assert launch.packed
    with pytest.warns(RuntimeWarning, match=r"^fastinit: .*numba's own launch.*argument 5"):
        launch()
    np.testing.assert_array_equal(p.copy_to_host(), np.full(4, 0.5, np.float32))
    assert not launch.packed and refused.calls == 1
    launch.set(lr=np.float32(0.25))
    launch()  # numba's launch from now on, with the scalars set since
    np.testing.assert_array_equal(p.copy_to_host(), np.full(4, 0.25, np.float32))
    assert refused.calls == 1


@pytest.mark.parametrize("later", [False, True])
def test_a_driver_error_of_a_prepared_launch_is_raised(monkeypatch, later):
    # only a refusal of the first replay's values falls back: an error of the launch itself
    # (a CUDA error), or any error after a replay has run, is the caller's to see
    from fastinit import dense_cuda

    class DriverError(RuntimeError):
        pass

    runs = _RefusedReplay(TypeError("refused") if later else DriverError("launch failed"))
    replays = []

    def replay():
        replays.append(None)
        if later and len(replays) == 1:
            return None  # the first replay ran
        return runs()

    monkeypatch.setattr(dense_cuda, "packed_launch", lambda *args: replay)
    launch, _ = _sgd_launch(0.5)
    if later:
        launch()
    with pytest.raises(TypeError if later else DriverError):
        launch()
    assert launch.packed


@pytest.mark.skipif(simulator_enabled(), reason="launches are packed on a GPU only")
def test_packed_launches_train_exactly_as_numbas_own_launches(monkeypatch, data):
    # the same kernels on the same arguments: a packed replay (the iteration and Adam's
    # factors set in place between steps) must give numba's launches' results bit for bit
    from fastinit import dense_cuda

    X, y = data
    runs = []
    for packed in (True, False):
        if not packed:
            monkeypatch.setattr(dense_cuda, "packed_launch", lambda *args: None)
        dev = _pair()[1]
        kw = dict(batch_size=4, iterations=7, sampling="shuffle", seed=2, progress=False)
        h = dev.fit(X, y, optimizer=optim.Adam(0.05), **kw)
        runs.append([h.loss, *dev.weights, *dev.biases])
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_launch_configurations_a_gpu_refuses_are_refused_under_the_simulator_too():
    # the simulator runs a zero-size grid (as nothing), 65536 tiles on y, 2048 threads a
    # block; the driver refuses each (CUDA_ERROR_INVALID_VALUE): configure refuses them first
    from fastinit.dense_cuda import configure, derivative_sums_kernel

    kernel = derivative_sums_kernel()
    bad = [(0, 32), ((4, 0), (8, 8)), ((1, 65536), (8, 8)), ((1, 1, 65536), 32), (2**31, 32),
           (1, 0), (1, 1025), (1, (32, 33)), (1, (1, 1, 65)), (1, (2048, 1))]  # fmt: skip
    for grid, block in bad:
        with pytest.raises(ValueError, match=r"^launch: "):
            configure(kernel, grid, block)
    for grid, block in [((2**31 - 1, 65535, 65535), 1024), (1, (32, 32)), (1, (1, 16, 64))]:
        configure(kernel, grid, block)  # CUDA's limits themselves are allowed


def test_launch_configurations_of_the_largest_shapes_stay_within_cuda_limits(monkeypatch):
    # computed without launching, with the GPU's tiles and blocks: a batch (or a full
    # batch) of 60000 rows through 4096-unit layers, a 4096 x 4096 or 1e8-element fill
    from fastinit import dense_cuda, losses_cuda, optim_cuda, random_cuda, train_cuda
    from fastinit.dense_cuda import check_launch

    for module in (dense_cuda, losses_cuda, optim_cuda, train_cuda):
        monkeypatch.setattr(module, "simulator_enabled", lambda: False)
    monkeypatch.setattr(random_cuda, "_THREADS", 256)
    rows, units = [1, 128, 60000, 5_000_000], [1, 10, 784, 4096]
    # Z and dA: (rows, units); dW: (fan_in, units)
    for shape in [(m, n) for m in rows for n in units] + [(f, n) for f in units for n in units]:
        grid, block, small = dense_cuda.gemm_grid(*shape)
        check_launch(grid, block)
        ts, rt, *_ = dense_cuda.tile_config(small)
        assert grid[0] * ts * rt >= shape[0] and grid[1] * ts * rt >= shape[1]
    for m in rows:
        check_launch(*train_cuda._gather_config(m))
    for n in units:
        grid, block = dense_cuda.column_grid(n)
        check_launch(grid, block)
        assert grid * block[0] >= n
    for n in (1, 4096 * 4096 + 4096, 10**9):
        check_launch(optim_cuda.blocks(n), optim_cuda.threads())
    for size in (1, 4096 * 4096, 10**8, 2**31 + 5):
        for per_block in (4, 2):  # float32 (4 values per Philox block), float64 (2)
            check_launch(random_cuda._grid((size + per_block - 1) // per_block), 256)
    check_launch(1, losses_cuda.threads())
    # the widest product CUDA's grid holds: exactly 65535 column tiles (the y axis's
    # limit) launch; one column more is refused.  65535 itself was refused once
    ts, rt, *_ = dense_cuda.tile_config(False)
    widest = 65535 * ts * rt
    grid, block, small = dense_cuda.gemm_grid(60000, widest)
    assert grid[1] == 65535 and not small
    check_launch(grid, block)
    with pytest.raises(ValueError, match="needs 65536 column tiles; CUDA allows 65535"):
        dense_cuda.gemm_grid(60000, widest + 1)


@pytest.fixture
def gpu_shapes(monkeypatch):
    """The GPU's tiles and blocks under the simulator, which otherwise runs smaller ones.

    The simulator's 8 x 8 GEMM tiles have BK == BM, and its column-sum blocks one row
    group: an index mixing the two, or the reduction over row groups, is only run here.
    """
    from fastinit import dense_cuda, losses_cuda
    from fastinit._cuda import simulator_enabled

    if not simulator_enabled():
        pytest.skip("on a GPU every other test runs these shapes")
    built = (dense_cuda.gemm_kernel, dense_cuda.derivative_sums_kernel, losses_cuda.loss_kernel)
    gpu_tiles = {False: (16, 4, 16, 1), True: (8, 2, 32, 4)}  # tile_config on a GPU
    monkeypatch.setattr(dense_cuda, "tile_config", lambda small=False: gpu_tiles[small])
    monkeypatch.setattr(dense_cuda, "_column_config", lambda: (32, 8))
    monkeypatch.setattr(losses_cuda, "threads", lambda: 128)
    for cache in built:
        cache.cache_clear()
    yield dense_cuda
    for cache in built:  # rebuilt with the simulator's shapes (monkeypatch undoes after this)
        cache.cache_clear()


@pytest.mark.parametrize("small", [False, True], ids=["64x64_tiles", "16x16_tiles"])
def test_kernels_with_the_gpu_tiles_and_blocks(gpu_shapes, monkeypatch, small, data):
    from fastinit._cuda import cuda_module

    cuda = cuda_module()
    monkeypatch.setattr(gpu_shapes, "_MIN_BLOCKS", 10**9 if small else 1)
    rng = np.random.default_rng(4)
    m, k, n = 70, 37, 18  # partial row and column tiles, 3 (2) reduction steps of BK 16 (32)
    for case in ("NN", "TN", "NT"):
        a = rng.standard_normal((k, m) if case == "TN" else (m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if case == "NT" else (k, n)).astype(np.float32)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        c = cuda.to_device(c0)
        gpu_shapes.gemm(case, cuda.to_device(a), cuda.to_device(b), c, alpha=-0.5, beta=0.25)
        want = -0.5 * (a.T if case == "TN" else a) @ (b.T if case == "NT" else b) + 0.25 * c0
        np.testing.assert_allclose(c.copy_to_host(), want, rtol=1e-5, atol=1e-5, err_msg=case)
    if not small:
        return  # the rest does not depend on the tiles: run once
    # the fused forward, the 128-thread loss and the column sums over 8 row groups
    X, y = data
    cpu, dev = _pair()
    want, want_grads = cpu.loss_and_grads(X, y)
    got, got_grads = dev.loss_and_grads(X, y)
    _close(got, want)
    for (dw, db), (cw, cb) in zip(got_grads, want_grads, strict=True):
        _close(dw, cw)
        _close(db, cb)


OPTIMIZERS = [
    optim.SGD(0.1, weight_decay=0.01),
    optim.Momentum(0.1, 0.9, weight_decay=0.01),
    optim.Nesterov(0.1, 0.8),
    optim.AdaGrad(0.1, weight_decay=0.02),
    optim.RMSprop(0.05, 0.9),
    optim.Adam(0.01, 0.8, 0.95, weight_decay=0.01),
]


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: type(o).__name__)
def test_one_step_of_every_optimizer(opt):
    from fastinit import optim_cuda
    from fastinit._cuda import cuda_module

    cuda = cuda_module()
    rng = np.random.default_rng(3)
    p, g, s0, s1 = (rng.random(37).astype(np.float32) for _ in range(4))
    host = [a.copy() for a in (p, g, s0, s1)]
    dev = [cuda.to_device(a) for a in (p, g, s0, s1)]
    optim.apply_update(opt.code, opt.hyper(), 3, *host)
    optim_cuda.apply_update(opt.code, opt.hyper(), 3, *dev)
    for h, d in zip(host, dev, strict=True):
        np.testing.assert_allclose(d.copy_to_host(), h, rtol=1e-6, atol=1e-7)
    assert not np.allclose(host[0], p)  # the step changed the parameters


def test_adam_with_betas_near_one_matches_cpu_from_a_fresh_state():
    # 1 - beta comes from float64 on both (1 - float32(0.999999) is 1% off): v = (1 - b2) g**2
    from fastinit import optim_cuda
    from fastinit._cuda import cuda_module

    cuda = cuda_module()
    opt = optim.Adam(0.01, 0.99, 0.999999)
    rng = np.random.default_rng(5)
    p, g = (rng.normal(size=37).astype(np.float32) for _ in range(2))
    host = [p.copy(), g, np.zeros(37, np.float32), np.zeros(37, np.float32)]
    dev = [cuda.to_device(a) for a in host]
    optim.apply_update(opt.code, opt.hyper(), 1, *host)
    optim_cuda.apply_update(opt.code, opt.hyper(), 1, *dev)
    for h, d in zip(host, dev, strict=True):
        np.testing.assert_allclose(d.copy_to_host(), h, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(host[3], (1 - 0.999999) * g.astype(np.float64) ** 2, rtol=1e-6)


# ----------------------------------------------------------------------------- network
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_forward_and_loss_and_grads_match_cpu(data, dtype):
    X, y = data
    cpu, dev = _pair(dtype)
    assert dev.device == "cuda" and cpu.device == "cpu"
    logits = dev.forward(X)
    assert isinstance(logits, np.ndarray) and logits.dtype == np.dtype(dtype)
    _close(logits, cpu.forward(X), dtype)
    np.testing.assert_array_equal(dev.predict(X), cpu.predict(X))
    want, want_grads = cpu.loss_and_grads(X, y)
    got, got_grads = dev.loss_and_grads(X, y)
    _close(got, want, dtype)
    for (dw, db), (cw, cb) in zip(got_grads, want_grads, strict=True):
        _close(dw, cw, dtype)
        _close(db, cb, dtype)
    ev_dev, ev_cpu = dev.evaluate(X, y), cpu.evaluate(X, y)
    _close(ev_dev["loss"], ev_cpu["loss"], dtype)
    assert ev_dev["accuracy"] == ev_cpu["accuracy"]


@pytest.mark.parametrize(
    ("sampling", "opt", "loss"),
    [
        ("replacement", "momentum", "softmax_cross_entropy"),
        ("shuffle", "adam", "softmax_cross_entropy"),
        ("full", "sgd", "mse"),
    ],
)
def test_fit_matches_cpu(data, sampling, opt, loss):
    X, y = data
    if loss == "mse":
        y = np.eye(3, dtype=np.float32)[y]
    cpu, dev = _pair(activation=("relu", "silu"))
    kw = dict(batch_size=4, iterations=5, sampling=sampling, loss=loss, seed=11, progress=False)
    h_cpu = cpu.fit(X, y, optimizer=optim.get(opt, lr=0.05), **kw)
    h_dev = dev.fit(X, y, optimizer=optim.get(opt, lr=0.05), **kw)
    assert (h_dev.iterations, h_dev.status, h_dev.diverged_at) == (5, "ok", None)
    assert h_dev.settings == h_cpu.settings
    _close(h_dev.loss, h_cpu.loss)
    for a, b in zip(dev.weights, cpu.weights, strict=True):
        _close(a, b)
    assert not np.allclose(h_dev.loss[0], h_dev.loss[-1])  # training moved


def test_fit_float64_continues_optimizer_state(data):
    X, y = data
    cpu, dev = _pair("float64", activation=("elu", "tanh"))
    opt_cpu, opt_dev = optim.Adam(0.02), optim.Adam(0.02)
    kw = dict(batch_size=5, seed=4, progress=False)
    cpu.fit(X, y, optimizer=opt_cpu, iterations=3, **kw)
    dev.fit(X, y, optimizer=opt_dev, iterations=2, **kw)
    dev.fit(X, y, optimizer=opt_dev, iterations=1, **kw)  # Adam state and step carried over
    # the second device fit restarts the batch sequence: compare with the same on the CPU
    cpu2 = MLP(SIZES, activation=["elu", "tanh"], seed=3, dtype="float64")
    opt2 = optim.Adam(0.02)
    cpu2.fit(X, y, optimizer=opt2, iterations=2, **kw)
    cpu2.fit(X, y, optimizer=opt2, iterations=1, **kw)
    assert opt_dev.state_for(dev, dev._params.size, dev.dtype).step == 3
    for a, b in zip([*dev.weights, *dev.biases], [*cpu2.weights, *cpu2.biases], strict=True):
        _close(a, b, "float64")
    assert not np.allclose(dev.weights[0], cpu.weights[0])  # the restart mattered


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the simulator's scalars
def test_a_last_update_that_overflows_the_weights_diverges_on_the_device_too(data):
    X, y = data
    cpu, dev = _pair(activation=("relu", "relu"))
    kw = dict(optimizer=optim.SGD(1e38), iterations=1, sampling="full", progress=False)
    h_cpu, h_dev = cpu.fit(X * 100, y, **kw), dev.fit(X * 100, y, **kw)
    assert not all(np.isfinite(w).all() for w in dev.weights)  # the premise
    assert np.isfinite(h_dev.loss).all() and len(h_dev.loss) == 1
    assert (h_dev.status, h_dev.diverged_at) == (h_cpu.status, h_cpu.diverged_at) == ("diverged", 1)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the simulator's scalars
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0 there
def test_fit_many_cuda_and_divergence_match_cpu(data):
    from fastinit.train_cuda import fit_many_cuda

    X, y = data
    y1 = np.eye(3, dtype=np.float32)[y]
    cpu = [MLP(SIZES, seed=s) for s in (1, 2)]
    dev = [MLP(SIZES, seed=s, device="cuda") for s in (1, 2)]
    opts = [optim.SGD(0.05), optim.SGD(1e30)]  # the second blows up
    kw = dict(batch_size=4, iterations=4, loss="mse", seed=2, progress=False)
    h_cpu = fit_many(cpu, X, y1, optimizer=opts, **kw)
    h_dev = fit_many_cuda(dev, X, y1, optimizer=[optim.SGD(0.05), optim.SGD(1e30)], **kw)
    assert h_cpu[1].status == "diverged"
    for hc, hd, mc, md in zip(h_cpu, h_dev, cpu, dev, strict=True):
        assert (hd.status, hd.iterations, hd.diverged_at) == (
            hc.status,
            hc.iterations,
            hc.diverged_at,
        )
        assert len(hd.loss) == len(hc.loss)
        finite = np.isfinite(hc.loss)
        np.testing.assert_array_equal(np.isfinite(hd.loss), finite)
        np.testing.assert_allclose(hd.loss[finite], hc.loss[finite], rtol=RTOL)
        for a, b in zip(md.weights, mc.weights, strict=True):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="device='cuda'"):
        fit_many_cuda(cpu, X, y, iterations=1)
    with pytest.raises(ValueError, match="record_stats"):
        dev[0].fit(X, y, iterations=1, record_stats=True)
    # fastinit.train.fit_many routes device models to the device loop, refuses a mix
    again = [MLP(SIZES, seed=1, device="cuda")]
    h_again = fit_many(again, X, y1, optimizer=optim.SGD(0.05), **kw)
    np.testing.assert_array_equal(h_again[0].loss, h_dev[0].loss)
    for a, b in zip(again[0].weights, dev[0].weights, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="same device"):
        fit_many([cpu[0], dev[0]], X, y1, **kw)


def test_ctrl_c_after_an_update_launch_leaves_a_consistent_model(monkeypatch, sigint_default, data):
    # on a GPU the host blocks inside a launch once the launch queue is full, and a Ctrl-C
    # surfaces as that launch returns: after an update, the model had one update more than
    # History.iterations (and the optimizer's step) said; the CPU takes Ctrl-C between chunks
    import signal

    from fastinit import optim_cuda, train_cuda

    updates = []

    class Launch(train_cuda.Launch):
        __slots__ = ("update",)

        def __init__(self, kernel, grid, block, args):
            super().__init__(kernel, grid, block, args)
            self.update = kernel is optim_cuda.update_kernel()

        def __call__(self):
            super().__call__()
            if self.update:
                updates.append(1)
                if len(updates) == 2:
                    signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(train_cuda, "Launch", Launch)
    out = io.StringIO()  # and the bar's last line says so (it said the chunk before)
    monkeypatch.setattr(train, "ProgressBar", functools.partial(ProgressBar, min_seconds=0.0,
                                                                stream=out))  # fmt: skip
    X, y = data
    cpu, dev = _pair()
    opt_cpu, opt_dev = optim.Adam(0.05), optim.Adam(0.05)
    kw = dict(batch_size=4, seed=2, progress=False)
    h = dev.fit(X, y, optimizer=opt_dev, iterations=6, **{**kw, "progress": True})
    assert h.status == "interrupted" and h.iterations == len(h.loss) == len(updates)
    last = out.getvalue().splitlines()[-1]
    assert last.split(" loss ")[0].endswith(f" {h.iterations}/6"), out.getvalue()
    assert opt_dev.state_for(dev, dev._params.size, dev.dtype).step == h.iterations
    h_cpu = cpu.fit(X, y, optimizer=opt_cpu, iterations=h.iterations, **kw)
    _close(h.loss, h_cpu.loss)
    for a, b in zip([*dev.weights, *dev.biases], [*cpu.weights, *cpu.biases], strict=True):
        _close(a, b)


# ----------------------------------------------------------------------------- model
def test_to_round_trip_weights_and_assignment(data):
    X, _ = data
    cpu, dev = _pair()
    model = MLP(SIZES, activation=["tanh", "gelu"], seed=3)
    assert model.to("cuda") is model and model.device == "cuda"
    w0 = model.weights[0]
    w0[:] = 0  # a host copy: the model is unchanged
    _close(model.forward(X), cpu.forward(X))
    new = np.full((5, 7), 0.1)
    model.weights[0] = new  # copied to the device
    cpu.weights[0] = new
    _close(model.forward(X), cpu.forward(X))
    with pytest.raises(ValueError, match="shape"):
        model.weights[0] = np.zeros((2, 2))
    assert model.to("cpu") is model and model.device == "cpu"
    np.testing.assert_array_equal(model.weights[0], new.astype(np.float32))
    _close(model.forward(X), cpu.forward(X))
    np.testing.assert_array_equal(
        dev.to("cpu")._params, MLP(SIZES, ["tanh", "gelu"], seed=3)._params
    )


def test_device_arrays_are_accepted_as_init_values(data):
    from fastinit import init

    X, _ = data
    w0 = init.he_normal((5, 7), seed=9, device="cuda")  # a device array, as assignment takes
    model = MLP(SIZES, activation=["tanh", "gelu"], init=[w0, "xavier_normal", "he_normal"],
                device="cuda")  # fmt: skip
    np.testing.assert_array_equal(model.weights[0], init.he_normal((5, 7), seed=9))
    cpu = MLP(SIZES, activation=["tanh", "gelu"], init=[w0.copy_to_host(), "xavier_normal",
              "he_normal"])  # fmt: skip
    _close(model.forward(X), cpu.forward(X))


def test_save_load_device_model(tmp_path, data):
    X, y = data
    _, dev = _pair()
    dev.fit(X, y, iterations=2, batch_size=4, progress=False)
    path = tmp_path / "m.npz"
    dev.save(path)
    loaded = MLP.load(path)
    assert loaded.device == "cpu"
    for a, b in zip(loaded.weights, dev.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    _close(loaded.to("cuda").forward(X), dev.forward(X))


def test_cuda_unavailable_gives_a_clear_error(monkeypatch):
    from fastinit import _cuda

    cuda = _cuda.cuda_module()
    monkeypatch.setattr(_cuda, "simulator_enabled", lambda: False)
    monkeypatch.setattr(cuda, "is_available", lambda: False, raising=False)
    with pytest.raises(RuntimeError, match="NVIDIA GPU"):
        MLP(SIZES, device="cuda")
    with pytest.raises(RuntimeError, match="NVIDIA GPU"):
        MLP(SIZES).to("cuda")
    with pytest.raises(ValueError, match="device"):
        MLP(SIZES, device="tpu")


# ----------------------------------------------------------------------------- experiments
@pytest.mark.filterwarnings("ignore:lsuv. X_batch has:UserWarning")  # batches of 4 rows
def test_mnist_experiment_on_the_device_matches_the_cpu(monkeypatch):
    from fastinit.experiments import mnist

    rng = np.random.default_rng(5)
    tiny = (
        (rng.random((40, 12), dtype=np.float32), rng.integers(0, 10, 40)),
        (rng.random((9, 12), dtype=np.float32), rng.integers(0, 10, 9)),
    )
    monkeypatch.setattr(mnist.datasets, "load_mnist", lambda **kw: tiny)
    from fastinit import train_cuda

    calls = []
    real = train_cuda.run_fit  # the device loop that fit_many routes device models to
    monkeypatch.setattr(train_cuda, "run_fit", lambda *a, **k: calls.append(1) or real(*a, **k))
    kw = dict(hidden=(6,), iterations=3, batch_size=4, seed=1, progress=False)
    cpu = mnist.run_mnist(("he", "lsuv"), **kw)
    assert not calls
    dev = mnist.run_mnist(("he", "lsuv"), device="cuda", **kw)
    assert dev.config["device"] == "cuda" and calls == [1]
    for name in ("he", "lsuv"):
        np.testing.assert_allclose(dev.curves[name], cpu.curves[name], rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="device"):
        mnist.run_mnist(("he",), device="tpu", **kw)


@pytest.mark.parametrize(("length", "value"), [("iterations", 10**15), ("epochs", 10**15)])
def test_a_device_run_too_long_to_allocate_names_its_length(length, value):
    # 8e15 bytes of loss history: refused at once, as on the CPU
    m = MLP([2, 3, 2]).to("cuda")
    x, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int64)
    with pytest.raises(MemoryError, match=rf"^{length}, batch_size: .*fewer {length}"):
        m.fit(x, y, optimizer=optim.SGD(0.1), progress=False, **{length: value})


def test_loss_and_grads_beyond_the_device_memory_names_x(monkeypatch):
    from fastinit import train_cuda

    def full(*args, **kwargs):  # the device is out of memory for the full-batch arrays
        raise MemoryError

    m = MLP([2, 3, 2]).to("cuda")
    monkeypatch.setattr(train_cuda, "_Run", full)
    with pytest.raises(MemoryError, match=r"^X: the work arrays of a full-batch pass over 4 rows"):
        m.loss_and_grads(np.zeros((4, 2), np.float32), np.zeros(4, np.int64))


class _DriverError(Exception):
    """What numba.cuda's driver raises (``CudaAPIError``: a ``code``, here an enum)."""

    def __init__(self, code, msg):
        super().__init__(code, msg)
        self.code, self.msg = code, msg


class _FullDevice:
    """A ``cuda`` module whose device memory is full: the driver's out-of-memory error."""

    @staticmethod
    def to_device(array):
        oom = enum.IntEnum("CUresult", {"CUDA_ERROR_OUT_OF_MEMORY": 2})
        raise _DriverError(oom.CUDA_ERROR_OUT_OF_MEMORY, "Call to cuMemAlloc results in OOM")


class _BrokenDevice:
    """A ``cuda`` module whose driver fails for another reason (code 999: unknown)."""

    @staticmethod
    def to_device(array):
        raise _DriverError(999, "CUDA_ERROR_UNKNOWN")


def test_the_activation_and_loss_twins_beyond_the_device_memory_name_their_input(monkeypatch):
    from fastinit import activations_cuda, losses_cuda

    def full(*args, **kwargs):
        _FullDevice.to_device(None)

    for module in (activations_cuda, losses_cuda):
        monkeypatch.setattr(module.cuda_module(), "to_device", full)
    with pytest.raises(MemoryError, match=r"^x: \(3, 4\) float32 \(48 bytes\) does not fit"):
        activations_cuda.apply(np.zeros((3, 4), np.float32), "relu")
    with pytest.raises(MemoryError, match=r"^logits: \(3, 4\) float64 \(96 bytes\)"):
        losses_cuda.value_and_grad("softmax_cross_entropy", np.zeros((3, 4)), [0, 1, 2])


def test_a_model_the_device_cannot_hold_names_its_sizes(monkeypatch):
    from fastinit._cuda import cuda_module

    monkeypatch.setattr(cuda_module(), "to_device", _FullDevice.to_device)
    model = MLP(SIZES)
    with pytest.raises(MemoryError, match=r"^sizes: the model's 111 float32 parameters \(512 "):
        model.to("cuda")
    assert model.device == "cpu"  # left where it was
    with pytest.raises(MemoryError, match=r"^sizes: "):
        MLP(SIZES, device="cuda")


def test_inputs_too_large_for_the_device_name_x():
    from fastinit.train_cuda import upload_inputs

    x = np.zeros((5, 3), np.float32)
    with pytest.raises(MemoryError, match=r"^X: 5 rows of inputs \(60 bytes\) do not fit"):
        upload_inputs(_FullDevice, x)
    with pytest.raises(_DriverError):  # not a memory error: passed on as it is
        upload_inputs(_BrokenDevice, x)


def test_views_taken_on_the_cpu_stop_writing_into_a_model_moved_to_the_gpu(data):
    X, _ = data
    model = MLP(SIZES, seed=3)
    view = model.weights[0]
    before = model.forward(X)
    model.to("cuda")
    view[:] = 0.0  # the model's weights on the device are not this array any more
    assert (model.weights[0] != 0).any()
    _close(model.forward(X), before)
    _close(model.to("cpu").forward(X), before)


def test_forward_work_arrays_beyond_the_device_memory_name_the_model(monkeypatch):
    from fastinit import train_cuda

    real = train_cuda.cuda_module()

    class FullForWork:  # room for the inputs, not for the forward pass's work array
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def device_array(*args, **kwargs):
            _FullDevice.to_device(None)

    m = MLP([2, 3, 2]).to("cuda")
    monkeypatch.setattr(train_cuda, "cuda", getattr(train_cuda, "cuda", real), raising=False)
    monkeypatch.setattr(train_cuda, "cuda_module", FullForWork)
    with pytest.raises(MemoryError, match=r"^model: the work arrays of a forward pass over 4 rows"):
        m.forward(np.zeros((4, 2), np.float32))


@pytest.mark.parametrize("host", ["p", "g", "s0", "s1"])
def test_apply_update_refuses_host_arrays(host):
    # host operands were copied to the device and back one by one: an unused slot passed as
    # p itself (which the docstring allows) was written back last, undoing the update
    from fastinit import optim_cuda
    from fastinit._cuda import cuda_module

    cuda = cuda_module()
    ops = {k: np.ones(6, np.float32) for k in ("p", "g", "s0", "s1")}
    ops = {k: v if k == host else cuda.to_device(v) for k, v in ops.items()}
    with pytest.raises(
        TypeError, match=rf"^{host}: expected a numba CUDA device array, got ndarray"
    ):
        optim_cuda.apply_update(optim.ADAM, optim.Adam(0.1).hyper(), 1, **ops)


@pytest.mark.parametrize(("case", "ops", "name"), BAD_UPDATES, ids=[c[0] for c in BAD_UPDATES])
def test_apply_update_refuses_operands_that_do_not_fit(case, ops, name):
    # the CPU twin's cases (tests/test_optim.py) on device arrays
    from fastinit import optim_cuda
    from fastinit._cuda import cuda_module

    cuda = cuda_module()
    dev = {k: cuda.to_device(v) if k in ("p", "g", "s0", "s1") else v for k, v in ops.items()}
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        optim_cuda.apply_update(**dev)


def test_a_device_model_pickles_and_deep_copies_as_a_cpu_model_does(data):
    import copy
    import pickle

    X, _ = data
    cpu, dev = _pair()
    for clone in (pickle.loads(pickle.dumps(dev)), copy.deepcopy(dev)):
        assert clone.device == "cuda"
        for a, b in zip(clone.weights, cpu.weights, strict=True):
            np.testing.assert_array_equal(a, b)
        _close(clone.forward(X), cpu.forward(X))
        zeroed, _ = _pair()
        zeroed.weights[0] = clone.weights[0] = np.zeros_like(cpu.weights[0])
        _close(clone.forward(X), zeroed.forward(X))  # it computes with its own parameters
        np.testing.assert_array_equal(dev.weights[0], cpu.weights[0])  # the original's kept
    back = pickle.loads(pickle.dumps(dev.to("cpu")))
    assert back.device == "cpu" and back._params.ctypes.data % 64 == 0  # aligned as made
    np.testing.assert_array_equal(back.forward(X), cpu.forward(X))


class _StrictDeviceArray:
    """A simulator device array that behaves as numba-cuda 0.30.4's DeviceNDArray does on a
    GPU (seen on an H100): it refuses a host copy of negative strides, and a view of it
    with negative strides sliced by a negative step has no elements (the simulator copies
    and slices any)."""

    __cuda_ndarray__ = True

    def __init__(self, a):
        self._a = a
        self.shape, self.strides, self.dtype, self.size = a.shape, a.strides, a.dtype, a.size
        face = getattr(a, "__cuda_array_interface__", None)  # on a GPU (a simulator array: the
        if face is None:  # __array_interface__ of the NumPy array it holds)
            self.__array_interface__ = a.__array_interface__
        else:
            self.__cuda_array_interface__ = face

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        steps = [k.step for k in index if isinstance(k, slice) and k.step is not None]
        view = self._a[index]
        if any(s < 0 for s in self.strides) and any(s < 0 for s in steps):
            view = view[tuple(slice(0, 0) for _ in view.shape)]
        return _StrictDeviceArray(view)

    def copy_to_host(self):
        if any(s < 0 for s in self.strides):
            raise NotImplementedError(
                f"D->H copy not implemented for negative strides: {self.strides}"
            )
        return self._a.copy_to_host()


def test_device_arrays_with_negative_strides_are_read_as_their_values(data):
    from fastinit._cuda import cuda_module

    cuda = cuda_module()
    X, _ = data
    w = np.arange(35, dtype=np.float32).reshape(5, 7) / 35
    flipped = _StrictDeviceArray(cuda.to_device(np.ascontiguousarray(w[::-1, ::-1])))[::-1, ::-1]
    assert any(s < 0 for s in flipped.strides)
    for model in (MLP(SIZES, init=[flipped, "he_normal", "he_normal"], seed=3),  # an init value
                  MLP(SIZES, seed=3)):  # fmt: skip
        model.weights[0] = flipped  # an assignment
        np.testing.assert_array_equal(model.weights[0], w)
    x_rev = _StrictDeviceArray(cuda.to_device(X))[::-1]  # X
    np.testing.assert_array_equal(model.forward(x_rev), model.forward(X[::-1]))


def test_a_device_model_unpickled_where_there_is_no_gpu_says_what_to_do(monkeypatch):
    # the error was the generic "needs an NVIDIA GPU", without the way out the docstring gives
    import pickle

    from fastinit import _cuda

    _, dev = _pair()
    blob = pickle.dumps(dev)
    cuda = _cuda.cuda_module()
    monkeypatch.setattr(_cuda, "simulator_enabled", lambda: False)
    monkeypatch.setattr(cuda, "is_available", lambda: False)
    with pytest.raises(
        RuntimeError, match=r"needs an NVIDIA GPU.*pickled on 'cuda'.*\.to\('cpu'\)"
    ):
        pickle.loads(blob)
