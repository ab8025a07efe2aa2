"""fastinit.init: every initializer's distribution against its formula and scipy."""

import math
import re
import threading
import warnings

import numpy as np
import pytest
from scipy import stats

from fastinit import _cuda, init
from fastinit import random as fr

SHAPE = (400, 300)  # fan_in, fan_out
FAN_IN, FAN_OUT = SHAPE
N = SHAPE[0] * SHAPE[1]


def ks_ok(x, cdf):
    return stats.kstest(np.ravel(x), cdf).pvalue > 1e-3


def trunc2(std):
    return stats.truncnorm(-2, 2, scale=std)


# name, kwargs, scipy reference distribution
CASES = [
    ("normal", {"mean": 0.5, "std": 0.01}, stats.norm(0.5, 0.01)),
    ("uniform", {"low": -0.2, "high": 0.1}, stats.uniform(-0.2, 0.3)),
    (
        "truncated_normal",
        {"mean": 0.1, "std": 1.0, "a": -1.0, "b": 2.0},
        stats.truncnorm(-1.1, 1.9, loc=0.1),
    ),
    ("glorot_normal", {}, trunc2(math.sqrt(2 / (FAN_IN + FAN_OUT)) / 0.87962566103423978)),
    ("glorot_uniform", {}, stats.uniform(-(a := math.sqrt(6 / (FAN_IN + FAN_OUT))), 2 * a)),
    ("he_normal", {}, trunc2(math.sqrt(2 / FAN_IN) / 0.87962566103423978)),
    ("he_uniform", {}, stats.uniform(-(b := math.sqrt(6 / FAN_IN)), 2 * b)),
    ("lecun_normal", {}, trunc2(math.sqrt(1 / FAN_IN) / 0.87962566103423978)),
    ("lecun_uniform", {}, stats.uniform(-(c := math.sqrt(3 / FAN_IN)), 2 * c)),
    ("xavier_normal", {"gain": 2.0}, stats.norm(0, 2 * math.sqrt(2 / (FAN_IN + FAN_OUT)))),
    ("xavier_uniform", {}, stats.uniform(-a, 2 * a)),
    ("kaiming_normal", {}, stats.norm(0, math.sqrt(2 / FAN_IN))),
    (
        "kaiming_normal",
        {"mode": "fan_out", "nonlinearity": "tanh"},
        stats.norm(0, 5 / 3 / math.sqrt(FAN_OUT)),
    ),
    ("kaiming_uniform", {}, stats.uniform(-b, 2 * b)),
    (
        "kaiming_uniform",
        {"a": 0.2, "nonlinearity": "leaky_relu"},
        stats.uniform(-(d := math.sqrt(2 / 1.04) * math.sqrt(3 / FAN_IN)), 2 * d),
    ),
    ("uniform_unit_scaling", {"factor": 1.5}, stats.uniform(-(e := 1.5 * c), 2 * e)),
    (
        "variance_scaling",
        {"scale": 3.0, "mode": "fan_out", "distribution": "untruncated_normal"},
        stats.norm(0, math.sqrt(3 / FAN_OUT)),
    ),
    (
        "variance_scaling",
        {"scale": 0.5, "mode": "fan_avg", "distribution": "uniform"},
        stats.uniform(-(f := math.sqrt(1.5 / 350)), 2 * f),
    ),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("name", "kwargs", "ref"), CASES, ids=[f"{c[0]}{c[1]}" for c in CASES])
def test_distribution_matches_formula(name, kwargs, ref, dtype):
    w = init.get(name)(SHAPE, seed=7, dtype=dtype, **kwargs)
    assert w.shape == SHAPE and w.dtype == np.dtype(dtype)
    lo, hi = ref.support()
    assert w.min() >= lo - 1e-6 * abs(lo) and w.max() <= hi + 1e-6 * abs(hi)
    assert abs(w.mean() - ref.mean()) < 5 * ref.std() / math.sqrt(N)
    assert abs(w.var() / ref.var() - 1) < 5 * math.sqrt(2 / N) * 1.5
    assert ks_ok(w, ref.cdf)


def test_keras_truncated_normal_has_exact_variance():
    w = init.variance_scaling((1000, 1000), scale=2.0, seed=1)
    assert abs(w.var() / (2.0 / 1000) - 1) < 0.01
    s = math.sqrt(2.0 / 1000) / 0.87962566103423978
    assert np.abs(w).max() <= 2 * s * (1 + 1e-6)


def test_keras_constant_is_the_std_of_a_standard_normal_cut_at_two():
    assert init.TRUNCATED_NORMAL_STD == pytest.approx(stats.truncnorm(-2, 2).std(), rel=1e-15)


ND = (5, 5, 64, 32)  # (kh, kw, in, out): fans 25 * 64 and 25 * 32
ND_IN, ND_OUT = 25 * 64, 25 * 32
TANH_LIMIT = 5 / 3 * math.sqrt(3 / ND_IN)  # kaiming_uniform: gain sqrt(3 / fan_in)
ND_CASES = [
    ("kaiming_normal", {"mode": "fan_out"}, stats.norm(0, math.sqrt(2 / ND_OUT))),
    ("kaiming_uniform", {"nonlinearity": "tanh"}, stats.uniform(-TANH_LIMIT, 2 * TANH_LIMIT)),
    ("he_uniform", {}, stats.uniform(-(h := math.sqrt(6 / ND_IN)), 2 * h)),
    ("glorot_normal", {}, trunc2(math.sqrt(2 / (ND_IN + ND_OUT)) / 0.87962566103423978)),
    ("xavier_normal", {}, stats.norm(0, math.sqrt(2 / (ND_IN + ND_OUT)))),
    ("lecun_normal", {}, trunc2(math.sqrt(1 / ND_IN) / 0.87962566103423978)),
]


@pytest.mark.parametrize(("name", "kwargs", "ref"), ND_CASES, ids=[c[0] for c in ND_CASES])
def test_nd_kernels_use_the_receptive_field_in_both_fans(name, kwargs, ref):
    w = init.get(name)(ND, seed=3, dtype="float64", **kwargs)
    lo, hi = ref.support()
    assert lo <= w.min() and w.max() <= hi
    assert abs(w.var() / ref.var() - 1) < 5 * math.sqrt(2 / w.size) * 1.5
    assert ks_ok(w, ref.cdf)


def test_fans_are_pytorchs_for_the_same_layer():
    # PyTorch lays the same weight out (out, in, *receptive_field)
    torch = pytest.importorskip("torch")  # an optional second oracle (closed form: above)
    fans = getattr(torch.nn.init, "_calculate_fan_in_and_fan_out", None)
    if fans is None:
        pytest.skip("this PyTorch has no _calculate_fan_in_and_fan_out")
    for shape in [(3, 5), (3, 3, 16, 32), (2, 4, 6, 8, 10), (7, 1, 1)]:
        torch_shape = (shape[-1], shape[-2], *shape[:-2])
        assert init.fan_in_and_fan_out(shape) == fans(torch.empty(torch_shape)), shape


def test_shapes_below_2d_get_keras_fans_under_every_name():
    # PyTorch and JAX refuse them; Keras' compute_fans: (n,) -> (n, n), () -> (1, 1)
    n = 20_000
    x = init.xavier_uniform((n,), seed=1, dtype="float64")
    limit = math.sqrt(6 / (n + n))
    assert 0.99 * limit < np.abs(x).max() <= limit
    y = init.kaiming_normal((n,), seed=1, dtype="float64")
    assert ks_ok(y, stats.norm(0, math.sqrt(2 / n)).cdf)
    z = init.kaiming_uniform((), seed=1, dtype="float64")
    assert z.shape == () and abs(z) <= math.sqrt(6)


@pytest.mark.parametrize(
    ("keras", "pytorch", "kwargs", "variance"),
    [
        ("he_normal", "kaiming_normal", {}, 2 / FAN_IN),
        ("glorot_normal", "xavier_normal", {}, 2 / (FAN_IN + FAN_OUT)),
        ("lecun_normal", "kaiming_normal", {"nonlinearity": "linear"}, 1 / FAN_IN),
    ],
)
def test_keras_normals_are_truncated_and_pytorch_normals_are_not(keras, pytorch, kwargs, variance):
    # same variance; Keras cuts at 2 s with s = sqrt(variance) / 0.8796, PyTorch does not
    k = init.get(keras)(SHAPE, seed=3, dtype="float64")
    t = init.get(pytorch)(SHAPE, seed=3, dtype="float64", **kwargs)
    cut = 2 * math.sqrt(variance) / 0.87962566103423978
    assert np.abs(k).max() <= cut
    beyond = stats.norm(0, math.sqrt(variance)).sf(cut) * 2 * N  # about 2.3% of the draws
    assert abs((np.abs(t) > cut).sum() - beyond) < 5 * math.sqrt(beyond)
    for w in (k, t):
        assert abs(w.var() / variance - 1) < 5 * math.sqrt(2 / N) * 1.5


def test_msra_is_the_untruncated_gaussian_of_he_et_al():
    # Caffe's MSRAFiller (He et al. 2015): N(0, 2 / fan_in), as kaiming_normal's defaults;
    # it was Keras' truncated he_normal
    assert init.get("msra") is init.kaiming_normal
    w = init.get("MSRA")(SHAPE, seed=5, dtype="float64")
    assert ks_ok(w, stats.norm(0, math.sqrt(2 / FAN_IN)).cdf)
    assert np.abs(w).max() > 2 * math.sqrt(2 / FAN_IN) / 0.87962566103423978


def test_fans_follow_keras():
    assert init.fan_in_and_fan_out((3, 5)) == (3, 5)
    assert init.fan_in_and_fan_out((7,)) == (7, 7)
    assert init.fan_in_and_fan_out(()) == (1, 1)
    assert init.fan_in_and_fan_out((3, 3, 16, 32)) == (9 * 16, 9 * 32)
    assert init.fan_in_and_fan_out((2, 4, 6, 8, 10)) == (48 * 8, 48 * 10)
    assert init.fan_in_and_fan_out((7, 1, 1)) == (7, 7)


def test_calculate_gain_is_pytorchs_table():
    assert init.calculate_gain("linear") == 1
    assert init.calculate_gain("conv2d") == 1
    assert init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="nonlinearity"):
        init.calculate_gain("swishy")
    # a name that is no str: named, not NumPy's "truth value ... is ambiguous"
    for name in (np.array(["relu", "tanh"]), 1, None):
        with pytest.raises(TypeError, match=r"^nonlinearity: expected a name \(str\)"):
            init.calculate_gain(name)
    for name in ("conv1d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
        assert init.calculate_gain(name) == 1
    # a slope whose square overflows: sqrt(2) / |slope|, as the formula is to rounding
    assert init.calculate_gain("leaky_relu", 1e200) == pytest.approx(math.sqrt(2) * 1e-200)
    assert init.calculate_gain("leaky_relu", -1e155) == pytest.approx(math.sqrt(2) * 1e-155)


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    names = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
             "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu")  # fmt: skip
    for name in names:
        for param in (None, 0, 0.2, -3.0, 1e3):
            expected = torch.nn.init.calculate_gain(name, param)
            assert init.calculate_gain(name, param) == pytest.approx(expected, rel=1e-15)
    for name in ("gelu", "swish"):
        with pytest.raises(ValueError):
            torch.nn.init.calculate_gain(name)
        with pytest.raises(ValueError, match="nonlinearity"):
            init.calculate_gain(name)


@pytest.mark.parametrize("fill", [init.kaiming_normal, init.kaiming_uniform])
def test_kaiming_names_a_when_it_is_bad(fill):
    with pytest.raises(ValueError, match=r"^a: expected a finite number, got nan"):
        fill((3, 3), a=float("nan"))
    with pytest.raises(TypeError, match=r"^a: expected a real number"):
        fill((3, 3), a="0.1")
    w = fill((300, 300), a=1e200, seed=0)  # gain sqrt(2) 1e-200: std underflows to 0
    assert w.dtype == np.float32 and not np.any(w)


_SQUARE_LEAVES_FLOAT64 = [
    (init.xavier_normal, {"gain": 1e-170}, 1e-170 * math.sqrt(2 / 90)),
    (init.xavier_uniform, {"gain": 1e-170}, 1e-170 * math.sqrt(2 / 90)),
    (init.xavier_normal, {"gain": 1e200}, 1e200 * math.sqrt(2 / 90)),
    (init.xavier_uniform, {"gain": 1e200}, 1e200 * math.sqrt(2 / 90)),
    (init.kaiming_normal, {"a": 1e200}, math.sqrt(2) * 1e-200 / math.sqrt(40)),
    (init.kaiming_uniform, {"a": -1e200}, math.sqrt(2) * 1e-200 / math.sqrt(40)),
    *(
        (init.variance_scaling, {"scale": 5e-324, "distribution": d}, 2**-537 / math.sqrt(40))
        for d in ("truncated_normal", "untruncated_normal", "uniform")
    ),  # 5e-324 is 2**-1074
]  # fmt: skip


@pytest.mark.parametrize(("fill", "kwargs", "std"), _SQUARE_LEAVES_FLOAT64)
def test_a_gain_or_scale_whose_square_leaves_float64_still_scales_the_draws(fill, kwargs, std):
    # the std is gain sqrt(2 / (fan_in + fan_out)) (torch, which never squares the gain),
    # or sqrt(scale / fan): the PyTorch names squared the gain (1e-170 -> 0: all zeros;
    # 1e200 -> inf: refused), and scale / 40 underflowed (5e-324: zeros, or an error
    # naming std, which the caller never passed)
    x = fill((40, 50), dtype="float64", seed=0, **kwargs) / std  # x.std() would underflow
    assert np.isfinite(x).all() and abs(x.std() - 1) < 0.1, x.std()


@pytest.mark.parametrize("shape", [(50, 20), (20, 50), (30, 30), (6, 2, 5)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal(shape, gain):
    w = init.orthogonal(shape, gain=gain, seed=3, dtype="float64")
    m = w.reshape(-1, shape[-1])  # (*receptive_field, in, out): the out filters are orthonormal
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(gram.shape[0]), atol=1e-10)
    w32 = init.orthogonal(shape, gain=gain, seed=3)
    np.testing.assert_allclose(w32, w, rtol=1e-5, atol=1e-6)


def test_orthogonal_nd_follows_keras_rows_and_scale():
    # (3, 3, 16, 32): 144 x 32, columns orthonormal, so every entry has variance 1/144
    # (Keras/JAX Orthogonal; PyTorch's (out, in, kh, kw) view gives the same scale)
    w = init.orthogonal((3, 3, 16, 32), seed=1, dtype="float64")
    assert abs(w.std() - 1 / 12) < 0.01


def test_uniform_unit_scaling_of_a_vector_uses_input_size_one():
    # TF1: input_size = max(prod(shape[:-1]), 1) -> limit = factor * sqrt(3) for 1-D shapes
    x = init.uniform_unit_scaling((10_000,), factor=2.0, seed=1, dtype="float64")
    assert 0.99 * 2 * math.sqrt(3) < np.abs(x).max() <= 2 * math.sqrt(3)
    assert init.uniform_unit_scaling(()).shape == ()


def test_orthogonal_is_haar_distributed():
    # the sign correction makes the diagonal of a Haar orthogonal matrix mean zero
    diag = np.array([np.diag(init.orthogonal((4, 4), seed=s, dtype="float64")) for s in range(400)])
    assert np.abs(diag.mean(axis=0)).max() < 5 * 0.5 / math.sqrt(400)


def test_sparse_zeros_per_column():
    w = init.sparse((40, 30), sparsity=0.25, std=0.5, seed=2)
    assert np.all((w == 0).sum(axis=0) == 10)
    nz = w[w != 0]
    assert abs(nz.std() - 0.5) < 0.05
    assert not np.array_equal(w[:, 0] == 0, w[:, 1] == 0)


@pytest.mark.parametrize(
    ("sparsity", "rows"), [(0.07, 100), (0.28, 25), (1 / 3, 9), (0.05, 3), (0.0, 5), (1.0, 7)]
)
def test_sparse_zero_count_is_the_ceiling_of_the_product(sparsity, rows):
    # ceil of the float64 product, as torch: 0.07 * 100 = 7.000000000000001 gives 8 zeros
    w = init.sparse((rows, 6), sparsity=sparsity, std=1.0, seed=1, dtype="float64")
    assert np.all((w == 0).sum(axis=0) == math.ceil(sparsity * rows))


def test_sparse_zero_count_is_pytorchs():
    torch = pytest.importorskip("torch")  # an optional second oracle
    for sparsity, rows in [(0.07, 100), (0.28, 25), (1 / 3, 9), (0.05, 3), (0.0, 5), (1.0, 7)]:
        w = init.sparse((rows, 6), sparsity=sparsity, std=1.0, seed=1, dtype="float64")
        ref = torch.nn.init.sparse_(torch.empty(rows, 6, dtype=torch.float64), sparsity, std=1.0)
        np.testing.assert_array_equal((w == 0).sum(axis=0), (ref == 0).sum(dim=0).numpy())


@pytest.mark.parametrize(("make", "kwargs"), [(init.sparse, {"sparsity": 0.3}),
                                             (init.martens_sparse, {"k": 3})])  # fmt: skip
def test_sparse_zero_positions_are_uniform_over_the_rows(make, kwargs):
    # each column's zero rows (martens_sparse: its non-zero ones) are a uniformly random
    # subset: every row is picked equally often over many columns, the last one included
    w = make((10, 4000), std=1.0, seed=4, dtype="float64", **kwargs)
    picked = (w == 0) if make is init.sparse else (w != 0)
    assert np.all(picked.sum(axis=0) == 3)
    assert stats.chisquare(picked.sum(axis=1)).pvalue > 1e-3


def test_martens_sparse_k_per_unit():
    w = init.martens_sparse((100, 50), k=15, seed=2)
    assert np.all((w != 0).sum(axis=0) == 15)
    small = init.martens_sparse((10, 4), k=15, seed=2)
    assert np.all(small != 0)


@pytest.mark.parametrize("make", [init.sparse, init.martens_sparse])
def test_sparse_runs_serially_under_parallel_min_with_the_same_zeros(make, monkeypatch):
    # like the fills: no prange kernel to compile nor thread pool to start for a layer
    monkeypatch.setattr(fr, "PARALLEL_MIN", 0)
    parallel = make((40, 30), seed=4, dtype="float64")
    monkeypatch.setattr(fr, "PARALLEL_MIN", 1 << 20)
    monkeypatch.setattr(init, "_pick_rows_kernel", _refuse_prange)
    assert np.array_equal(make((40, 30), seed=4, dtype="float64"), parallel)


def _refuse_prange(*args):
    raise AssertionError("a prange kernel ran for an array under PARALLEL_MIN")


def test_constants_and_identity():
    assert np.all(init.zeros((3, 4)) == 0)
    assert np.all(init.ones((3, 4), dtype="float64") == 1)
    assert np.all(init.constant((2, 2), value=0.25) == 0.25)
    np.testing.assert_array_equal(init.identity((2, 3), gain=3.0), 3.0 * np.eye(2, 3))


def test_out_fills_in_place_and_equals_fresh_array():
    out = np.empty(SHAPE, np.float64)
    res = init.he_normal(SHAPE, seed=4, out=out)
    assert res is out
    np.testing.assert_array_equal(out, init.he_normal(SHAPE, seed=4, dtype="float64"))


def test_streams_independent_and_seed_reproducible():
    a = init.normal((300, 300), seed=1, stream=0)
    b = init.normal((300, 300), seed=1, stream=1)
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 5 / 300
    np.testing.assert_array_equal(a, init.normal((300, 300), seed=1, stream=0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", init.names())
def test_a_layer_is_drawn_from_its_own_stream_whatever_else_the_network_holds(name, dtype):
    """Layer k is ``name(shape, seed, stream=2k)``: other layers' widths, inits and count
    (and the bias inits) change nothing in it."""
    from fastinit.model import MLP

    base = MLP([5, 7, 6, 3], init=name, seed=11, dtype=dtype)
    others = [
        MLP([5, 7, 6, 3, 4], init=name, seed=11, dtype=dtype),  # a layer more
        MLP([5, 7, 6, 9], init=name, seed=11, dtype=dtype),  # the last layer wider
        MLP([5, 7, 6, 3], init=[name, name, "ones"], bias_init="uniform", seed=11, dtype=dtype),
    ]
    for k in range(2):
        alone = init.get(name)(base.weights[k].shape, seed=11, stream=2 * k, dtype=dtype)
        np.testing.assert_array_equal(base.weights[k], alone)
        for other in others:
            np.testing.assert_array_equal(other.weights[k], alone)


def test_get_names_and_aliases():
    assert init.get("Glorot_Uniform") is init.glorot_uniform
    assert init.get("xavier-uniform") is init.xavier_uniform
    assert init.get("he") is init.he_normal
    assert init.get("kaiming_normal") is init.kaiming_normal
    f = init.get(init.ones)
    assert f is init.ones
    with pytest.raises(ValueError, match="glorot_uniform"):
        init.get("glorrot")
    for name in init.names():
        assert init.get(name)((4, 3), seed=0).shape == (4, 3)


BAD = [
    (lambda: init.normal((3, 3), std=-1.0), ValueError, "std"),
    (lambda: init.normal((3, 3), std=float("inf")), ValueError, "std"),
    (lambda: init.truncated_normal((3, 3), a=2.0, b=1.0), ValueError, "a, b"),
    (lambda: init.uniform((3, 3), low=1.0, high=0.0), ValueError, "low"),
    (lambda: init.variance_scaling((3, 3), mode="fan_mid"), ValueError, "mode"),
    (lambda: init.variance_scaling((3, 3), distribution="normalish"), ValueError, "distribution"),
    (lambda: init.variance_scaling((3, 3), scale=0.0), ValueError, "scale"),
    (lambda: init.kaiming_normal((3, 3), mode="fan_avg"), ValueError, "mode"),
    (lambda: init.he_normal((3, -2)), ValueError, "shape"),
    (lambda: init.he_normal((3, 2.5)), TypeError, "shape"),
    (lambda: init.he_normal("3x3"), TypeError, "shape"),
    (lambda: init.orthogonal((5,)), ValueError, "shape"),
    (lambda: init.identity((5,)), ValueError, "shape"),
    (lambda: init.sparse((5,)), ValueError, "shape"),
    (lambda: init.sparse((5, 5), sparsity=1.5), ValueError, "sparsity"),
    (lambda: init.martens_sparse((5, 5), k=0), ValueError, "k"),
    (lambda: init.he_normal((3, 3), out=np.empty((3, 4), np.float32)), ValueError, "out"),
    (lambda: init.he_normal((3, 3), out=np.empty((3, 3), np.int64)), TypeError, "out: .*int64"),
    (lambda: init.he_normal((3, 3), dtype="flaot32"), TypeError, "dtype"),  # not float64
    (lambda: init.constant((3,), value=1e39), ValueError, "value: .*float32 range"),
    (lambda: init.identity((2, 2), gain=1e39), ValueError, "gain: .*float32 range"),
    (lambda: init.xavier_uniform((3, 3), gain=1e200), ValueError, "gain"),
    (lambda: init.uniform((3,), low=-3e38, high=3e38), ValueError, "high - low"),
    (lambda: init.normal((3,), std=1e39), ValueError, "std"),
    (lambda: init.truncated_normal((3,), std=1e39), ValueError, "std"),
    (
        lambda: init.he_normal((3, 3), dtype="float32", out=np.empty((3, 3))),
        TypeError,
        "out",
    ),
    (lambda: init.he_normal((3, 3), out=np.empty((3, 6), np.float32)[:, ::2]), ValueError, "out"),
    (lambda: init.he_normal((3, 3), dtype="float16"), TypeError, "dtype"),
    (lambda: init.he_normal((3, 3), seed=-1), ValueError, "seed"),
    (lambda: init.he_normal((3, 3), seed=2**64), ValueError, "seed"),
    (lambda: init.zeros((3, 3), seed=-5), ValueError, "seed"),
    (lambda: init.constant((3, 3), value=float("nan")), ValueError, "value"),
    (lambda: init.get(3), TypeError, "name"),
    (lambda: init.normal((True, 3)), TypeError, "^shape: "),  # a bool is not a dimension
    (lambda: init.orthogonal(()), ValueError, "^shape: "),
    (lambda: init.orthogonal((0,)), ValueError, "^shape: .*at least 2"),  # empty, but 1-D
    (lambda: init.identity((0, 2, 3)), ValueError, "^shape: identity needs a 2-D"),
    # an empty shape draws nothing but checks the other arguments all the same
    (lambda: init.he_normal((0, 5), seed=-1), ValueError, "^seed: "),
    (lambda: init.normal((0, 5), std=-1.0), ValueError, "^std: "),
    (lambda: init.uniform((5, 0), low=1.0, high=0.0), ValueError, "^low, high: "),
    (lambda: init.sparse((0, 5), sparsity=1.5), ValueError, "^sparsity: "),
    (lambda: init.constant((0,), value=float("inf")), ValueError, "^value: "),
    (lambda: init.xavier_uniform((0, 5), gain=-1.0), ValueError, "^gain: "),
    (lambda: init.normal((0, 5), out=np.empty((5, 0), np.float32)), ValueError, "^out: "),
    (lambda: init.normal((0, 5), device="tpu"), ValueError, "^device: "),
    (lambda: init.sparse((2, 3, 4)), ValueError, "^shape: "),
    (lambda: init.normal((3, 3), std=float("nan")), ValueError, "^std: "),
    (lambda: init.normal((3, 3), std=True), TypeError, "^std: "),
    (lambda: init.truncated_normal((3, 3), std=0.0), ValueError, "^std: "),
    (lambda: init.truncated_normal((3, 3), a=float("nan")), ValueError, "^a: "),
    (lambda: init.sparse((5, 5), sparsity=-0.1), ValueError, "^sparsity: "),
    (lambda: init.sparse((5, 5), sparsity=float("nan")), ValueError, "^sparsity: "),
    (lambda: init.sparse((5, 5), sparsity=True), TypeError, "^sparsity: "),
    (lambda: init.sparse((5, 5), std=-1.0), ValueError, "^std: "),
    (lambda: init.xavier_normal((3, 3), gain=float("nan")), ValueError, "^gain: "),
    (lambda: init.orthogonal((3, 3), gain=float("inf")), ValueError, "^gain: "),
    (lambda: init.uniform_unit_scaling((3, 3), factor=0.0), ValueError, "^factor: "),
    (lambda: init.kaiming_normal((3, 3), nonlinearity="gelu"), ValueError, "^nonlinearity: "),
    (lambda: init.kaiming_uniform((3, 3), nonlinearity=None), TypeError, "^nonlinearity: "),
    (lambda: init.calculate_gain("leaky_relu", True), TypeError, "^param: "),
    (lambda: init.variance_scaling((3, 3), distribution="normal"), ValueError, "^distribution: "),
    (lambda: init.he_normal((3, 3), dtype="int32"), TypeError, "^dtype: "),
    (lambda: init.he_normal((3, 3), dtype=bool), TypeError, "^dtype: "),
    (lambda: init.orthogonal((3, 3), dtype=np.complex128), TypeError, "^dtype: "),
    (lambda: init.normal((3, 3), stream=-1), ValueError, "^stream: "),
    # a magnitude past the float32 range, negative: -inf otherwise
    (lambda: init.constant((3,), value=-1e39), ValueError, "^value: .*float32 range"),
    (lambda: init.identity((2, 2), gain=-1e39), ValueError, "^gain: .*float32 range"),
    (lambda: init.orthogonal((3, 3), gain=-1e39), ValueError, "^gain: .*float32 range"),
    # a slope that is not finite has no gain (inf gave 0: an all-zero layer)
    (lambda: init.calculate_gain("leaky_relu", float("inf")), ValueError, "^param: "),
    (lambda: init.kaiming_normal((3, 3), a=float("-inf")), ValueError, "^a: "),
    (lambda: init.martens_sparse((5, 5), k=True), TypeError, "^k: "),  # a bool is not a count
]


@pytest.mark.parametrize(("call", "exc", "word"), BAD)
def test_bad_input_names_the_argument(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("variance_scaling", {"mode": "FAN_AVG", "distribution": "Uniform"}),
        ("variance_scaling", {"mode": "Fan_Out", "distribution": "UNTRUNCATED_NORMAL"}),
        ("kaiming_normal", {"mode": "FAN_OUT"}),
        ("kaiming_uniform", {"mode": "Fan_In"}),
    ],
)
def test_mode_and_distribution_names_are_case_insensitive(name, kwargs):
    fill = init.get(name)
    lower = {k: v.lower() for k, v in kwargs.items()}
    np.testing.assert_array_equal(fill(SHAPE, seed=3, **kwargs), fill(SHAPE, seed=3, **lower))


def test_orthogonal_does_not_depend_on_openblas_threads(python_subprocess):
    # OpenBLAS's QR gives other last bits on two threads (e.g. 77% of a 300x200 float64)
    code = (
        "import hashlib\n"
        "from fastinit import init\n"
        "h = hashlib.sha256()\n"
        "for shape in ((300, 200), (200, 300)):\n"
        "    h.update(init.orthogonal(shape, seed=1, dtype='float64').tobytes())\n"
        "print(h.hexdigest())\n"
    )
    one = python_subprocess(code, OPENBLAS_NUM_THREADS="1")
    two = python_subprocess(code, OPENBLAS_NUM_THREADS="2")
    assert one == two


def test_orthogonal_leaves_openblas_thread_count_alone(monkeypatch):
    # its QR switched OpenBLAS, process-wide, to one thread: a fit running meanwhile in
    # another Python thread took other last bits (59 of 60 losses, at random)
    from fastinit import dense

    calls = []
    spies = (lambda: 2, calls.append)
    monkeypatch.setattr(dense, "_openblas_thread_functions", lambda: spies)
    init.orthogonal((30, 20), seed=1, dtype="float64")
    assert calls == []


@pytest.mark.parametrize(
    "shape",
    # (300, 260), (260, 300): more than one chunk of _QR_CHUNK = 128 columns per reflection
    [(1, 1), (2, 1), (7, 3), (50, 50), (40, 200), (300, 41), (300, 260), (260, 300)],
)
def test_orthogonal_is_the_sign_corrected_q_of_numpys_qr(shape):
    # the oracle: NumPy's (LAPACK's) QR of the same normal draws, Q times sign(diag(R))
    rows, cols = shape
    flat = np.empty((max(shape), min(shape)))
    fr.fill_normal(flat, 0.0, 1.0, seed=5, stream=2)
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    expected = q if rows >= cols else q.T
    w = init.orthogonal(shape, seed=5, stream=2, dtype="float64")
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-13 * max(shape))


def test_one_blas_thread_restores_the_thread_count():
    from fastinit.dense import _openblas_thread_functions, one_blas_thread

    functions = _openblas_thread_functions()
    if functions is None:  # a NumPy without OpenBLAS: nothing to switch
        with one_blas_thread():
            pass
        return
    get, put = functions
    before = get()
    with pytest.raises(RuntimeError), one_blas_thread():
        assert get() == 1
        raise RuntimeError
    assert get() == before
    put(2)  # two Python threads' blocks overlapping in time, then nested blocks
    try:
        first_in, second_in, first_out = (threading.Event() for _ in range(3))

        seen = []

        def second():
            first_in.wait()
            with one_blas_thread(), one_blas_thread():
                second_in.set()
                first_out.wait(5.0)  # without a lock: leave after the first block
                seen.append(get())
            seen.append(get())

        worker = threading.Thread(target=second)
        worker.start()
        with one_blas_thread():
            first_in.set()
            second_in.wait(0.3)  # without a lock the second block is inside by now
        first_out.set()
        worker.join()
        assert seen == [1, 2] and get() == 2
    finally:
        put(before)


def test_orthogonal_gain_must_fit_the_dtype():
    with pytest.raises(ValueError, match="gain"):
        init.orthogonal((4, 4), gain=1e39, dtype="float32")
    w = init.orthogonal((4, 4), gain=1e39, dtype="float64")
    np.testing.assert_allclose((w / 1e39).T @ (w / 1e39), np.eye(4), atol=1e-12)


@pytest.mark.parametrize("fill", [init.xavier_normal, init.xavier_uniform])
def test_xavier_refuses_a_negative_gain_as_pytorch_does(fill):
    with pytest.raises(ValueError, match="gain"):
        fill((3, 4), gain=-1.0)
    assert not fill((3, 4), gain=0.0).any()


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda dt: init.variance_scaling((3, 4), scale=1e80, dtype=dt), "scale"),
        (
            lambda dt: init.variance_scaling((3, 4), scale=1e80, distribution="uniform", dtype=dt),
            "scale",
        ),
        (
            lambda dt: init.variance_scaling(
                (3, 4), scale=1e80, distribution="untruncated_normal", out=np.empty((3, 4), dt)
            ),
            "scale",
        ),
        (lambda dt: init.xavier_normal((3, 4), gain=1e40, dtype=dt), "gain"),
        (lambda dt: init.xavier_uniform((3, 4), gain=1e40, dtype=dt), "gain"),
        (lambda dt: init.uniform_unit_scaling((3, 4), factor=1e40, dtype=dt), "factor"),
    ],
)
def test_a_scale_too_large_for_float32_is_named_not_the_fills_parameter(call, word):
    # the fills' own names (std, low, "mean, std") are not arguments of these functions
    with pytest.raises(ValueError, match=rf"^{word}: .*float32"):
        call(np.float32)
    assert np.isfinite(call(np.float64)).all()  # the same scale fits float64


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("constant", {"value": 1e39}),
        ("identity", {"gain": 1e39}),
        ("normal", {"std": 1e38}),
        ("uniform", {"low": -3e38, "high": 3e38}),
        ("truncated_normal", {"std": 3e38, "a": -1.0, "b": 1.0}),
        ("variance_scaling", {"scale": 1e80}),
        ("xavier_normal", {"gain": 1e38}),
        ("orthogonal", {"gain": 1e39}),
        ("sparse", {"std": 1e38}),
        ("uniform_unit_scaling", {"factor": 1e40}),
    ],
)
def test_a_value_too_large_for_out_leaves_out_untouched(name, kwargs):
    out = np.full((4, 3), 7.0, np.float32)
    with pytest.raises(ValueError, match="float32"):
        init.get(name)((4, 3), out=out, **kwargs)
    assert (out == 7.0).all()  # nothing written before the error


def test_truncated_normal_with_a_huge_std_but_bounded_draws_is_allowed():
    # the draws lie in [a, b]; only sqrt(2) std and the bounds' distances must fit float32
    x = init.truncated_normal((100_000,), std=1e38, a=-1.0, b=1.0, seed=2)
    assert x.dtype == np.float32 and x.min() >= -1.0 and x.max() <= 1.0
    assert abs(x.var() - 1 / 3) < 0.01  # std >> b - a: uniform on [-1, 1]
    with pytest.raises(ValueError, match="std"):
        init.truncated_normal((3,), std=3e38, a=-1.0, b=1.0)
    with pytest.raises(ValueError, match="a, b"):
        init.truncated_normal((3,), mean=1e38, a=-3e38, b=1.0)


# ----------------------------------------------------------------------------- zero-size shapes
EMPTY_SHAPES = [(0, 5), (5, 0), (0,), (2, 0, 3), (0, 0)]


def _filled(shape):
    """``shape`` with its zeros replaced: the non-empty shape of the same rank."""
    return tuple(d or 2 for d in shape)


@pytest.mark.parametrize("shape", EMPTY_SHAPES)
@pytest.mark.parametrize("name", init.names())  # every canonical name and alias, via get
def test_a_zero_size_shape_gives_an_empty_array(name, shape):
    # PyTorch leaves an empty tensor as it is, Keras and JAX return an empty array; a
    # rank the initializer refuses (identity's (0,)) is refused as for the same rank
    # without zeros, with the same error
    fill = init.get(name)
    try:
        before = fill((4, 3), seed=7, stream=2)
        fill(_filled(shape), seed=7)
    except ValueError as err:
        with pytest.raises(ValueError, match=r"^shape: "):
            fill(shape, seed=7)
        assert str(err).startswith("shape: ")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default = fill(shape, seed=7, stream=2)
        wide = fill(list(shape), seed=7, stream=2, dtype="float64")
        out = np.empty(shape, np.float64)
        assert fill(shape, seed=7, out=out) is out
    assert default.shape == shape and default.dtype == np.float32
    assert wide.shape == shape and wide.dtype == np.float64
    # nothing drawn, nothing changed: the same seed then gives the same values
    assert np.array_equal(fill((4, 3), seed=7, stream=2), before)


def test_fans_of_a_zero_size_shape_are_kerass():
    assert init.fan_in_and_fan_out((0, 5)) == (0, 5)
    assert init.fan_in_and_fan_out((3, 0, 4)) == (0, 12)
    assert init.fan_in_and_fan_out((0,)) == (0, 0)


@pytest.mark.parametrize(
    ("shape", "exc", "shown"),
    [
        ((0, -1), ValueError, "(0, -1)"),
        ((-1, 0), ValueError, "(-1, 0)"),
        (-3, ValueError, "got -3"),
        ((0, 2.5), TypeError, "(0, 2.5)"),
        ((0, True), TypeError, "(0, True)"),
        ((0, None), TypeError, "(0, None)"),
        ("0x3", TypeError, "'0x3'"),
    ],
)
def test_a_zero_size_shape_still_refuses_bad_dimensions(shape, exc, shown):
    # zeros are allowed; negative and non-integer dimensions are refused as before,
    # the error naming the shape as given
    for fill in (init.he_normal, init.orthogonal, init.constant, init.fan_in_and_fan_out):
        with pytest.raises(exc, match=rf"^shape: .*{re.escape(shown)}"):
            fill(shape)


@pytest.mark.parametrize("name", init.names())
def test_a_zero_size_shape_on_cuda_gives_an_empty_device_array(name):
    fill = init.get(name)
    try:
        fill((2, 2), seed=1)
    except ValueError:  # refuses a 2-D shape
        return
    for dtype in (np.float32, np.float64):
        dev = fill((0, 3), seed=1, dtype=dtype, device="cuda")
        assert dev.shape == (0, 3) and dev.dtype == dtype
        assert dev.copy_to_host().shape == (0, 3)
        out = _cuda.cuda_module().device_array((3, 0), dtype)
        assert fill((3, 0), seed=1, out=out) is out


@pytest.mark.parametrize(
    "call",
    [
        lambda: init.normal((2**40, 2**40)),  # 2**80 elements: beyond int64
        lambda: init.zeros((2**31, 2**31, 4)),
        lambda: init.he_normal((0, 2**70)),  # empty, but NumPy cannot hold the dimension
        lambda: init.orthogonal((0, 2**63)),
        lambda: init.sparse((2**62, 2**3)),
        lambda: init.fan_in_and_fan_out((2**70, 2**70, 0)),
    ],
)
def test_a_shape_no_array_can_have_is_refused_naming_shape(call):
    # NumPy's own errors ("array is too big", "Maximum allowed dimension exceeded")
    # named no argument; no float64 array holds more than (2**63 - 1) // 8 elements
    with pytest.raises(ValueError, match=r"^shape: .*at most 1152921504606846975 elements"):
        call()


def test_one_blas_thread_blocks_run_at_once_where_openblas_has_one_thread_already():
    """A Dask worker's threads (OpenBLAS started on one thread) run their blocks together:
    nothing is switched, so nothing needs a turn; a block that switches still waits."""
    from fastinit.dense import _openblas_thread_functions, one_blas_thread

    functions = _openblas_thread_functions()
    if functions is None:  # a NumPy without OpenBLAS: nothing to switch
        return
    get, put = functions
    before = get()
    put(1)
    try:
        both_in = threading.Barrier(2, timeout=5.0)
        broken = []

        def block():
            with one_blas_thread():
                try:
                    both_in.wait()  # taking turns, the first waits here alone and breaks
                except threading.BrokenBarrierError:
                    broken.append(True)
                assert get() == 1

        workers = [threading.Thread(target=block) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert not broken and get() == 1
    finally:
        put(before)


def test_the_device_parameter_is_documented_in_dedented_docstrings_too():
    # Python 3.13 strips docstrings' common indentation: the device entry was then appended
    # after the Returns section instead of inserted before it (test_docs failed on 3.13.0)
    def fill(shape, *, seed=0):
        return np.zeros(shape)

    fill.__doc__ = "Zeros.\n\nParameters\n----------\nshape : tuple\n    Shape.\n\nReturns\n-------\nnumpy.ndarray\n"  # noqa: E501
    doc = init._device_aware(fill, on_host=True).__doc__
    assert doc.index("device : {'cpu', 'cuda'}") < doc.index("Returns")
    indented = init._device_aware(init.zeros.__wrapped__, on_host=True).__doc__  # as 3.11 has it
    assert indented.index("device : {'cpu', 'cuda'}") < indented.index("Returns")
