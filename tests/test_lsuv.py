"""LSUV (Mishkin & Matas 2016): unit output variance per layer, checked with NumPy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastinit
import fastinit.lsuv
from fastinit import init as _init
from fastinit.diagnostics import FEW_ROWS
from fastinit.experiments import histogram, mnist
from fastinit.experiments._common import parse_init
from fastinit.lsuv import LSUVRecord, lsuv
from fastinit.model import MLP
from fastinit.train import batch_rows
from tests import reference as ref

RNG = np.random.default_rng(1)
X = RNG.standard_normal((128, 24)) * 2.5 + 0.3
SIZES = [24, 48, 48, 32, 10]


def output_variances(model: MLP, x: np.ndarray) -> np.ndarray:
    """Var(z_k) per layer by the NumPy reference forward (float64)."""
    a = np.asarray(x, np.float64)
    out = []
    for w, b, act in zip(model.weights, model.biases, model.activations, strict=True):
        z = a @ np.asarray(w, np.float64) + np.asarray(b, np.float64)
        out.append(z.var())
        a, _ = ref.activation(act.name, z, **act.params)
    return np.array(out)


@pytest.mark.parametrize(
    ("activation", "dtype", "tol"),
    [("relu", "float32", 0.1), ("tanh", "float64", 0.01), ("selu", "float64", 0.05)],
)
def test_every_layer_reaches_unit_variance(activation, dtype, tol):
    model = MLP(SIZES, activation=activation, init=("normal", {"std": 0.01}), seed=3, dtype=dtype)
    same, record = lsuv(model, X, tol=tol, return_record=True)
    assert same is model and isinstance(record, LSUVRecord)
    var = output_variances(model, X.astype(dtype))
    assert (np.abs(var - 1) < tol).all(), var
    np.testing.assert_allclose(record.variance, var, rtol=1e-4)
    assert record.converged.all() and (record.iterations >= 1).any()
    assert (record.iterations <= 10).all()


def lsuv_by_diagnose(model: MLP, x: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """LSUV as lsuv ran before it went forward-only: every Var(z_k) from fastinit.diagnose,
    a recorded step of the training kernel (forward and backward pass); returns the
    initial and final variances."""
    for k, w in enumerate(model.weights):
        model.weights[k] = _init.orthogonal(w.shape, seed=model.seed, stream=2 * k,
                                            dtype=model.dtype.name)  # fmt: skip

    def variance(k: int) -> float:
        std = float(fastinit.diagnose(model, x).pre_std[k])
        return std * std

    initial, final = [], []
    for k in range(len(model.weights)):
        w = model.weights[k]  # a live view
        var = variance(k)
        initial.append(var)
        for _ in range(10):
            if abs(var - 1.0) < tol:
                break
            w *= w.dtype.type(1.0 / np.sqrt(var))
            var = variance(k)
        final.append(var)
    return np.array(initial), np.array(final)


@pytest.mark.parametrize(
    ("sizes", "activation", "dtype", "rows"),
    [
        (SIZES, "relu", "float32", 128),
        (SIZES, "tanh", "float64", 128),
        ([24, 8, 8, 3], "sigmoid", "float32", 20),  # narrow: trains feature-major
        ([24, 64, 64, 64, 10], "selu", "float64", 7),
    ],
)
def test_bit_identical_to_measuring_with_the_training_step(sizes, activation, dtype, rows):
    def model() -> MLP:
        return MLP(sizes, activation=activation, bias_init=("normal", {"std": 0.1}), seed=4,
                   dtype=dtype)  # fmt: skip

    x = X[:rows].astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 7 rows: few (a warning of its own)
        got, record = lsuv(model(), x, return_record=True)
    want = model()
    initial, final = lsuv_by_diagnose(want, x, tol=0.1)
    np.testing.assert_array_equal(got._params, want._params)
    np.testing.assert_array_equal(record.initial_variance, initial)
    np.testing.assert_array_equal(record.variance, final)
    # and the independent NumPy forward pass agrees (to rounding)
    np.testing.assert_allclose(record.variance, output_variances(got, x), rtol=1e-4)


def test_measurements_are_forward_passes_up_to_the_layer(monkeypatch):
    import fastinit.train as train

    def no_training_step(*args):
        raise AssertionError("lsuv ran a training step (a backward pass it does not need)")

    passes = []
    forward_stats = train.forward_stats

    def spy(ops, params, layers, act_params, first, count, x, *rest):
        passes.append((first, count, x.shape))
        return forward_stats(ops, params, layers, act_params, first, count, x, *rest)

    monkeypatch.setattr(train, "train_chunk", no_training_step)
    monkeypatch.setattr(train, "forward_stats", spy)
    model = MLP(SIZES, activation="relu", init=("normal", {"std": 0.01}), seed=3,
                dtype="float64")  # fmt: skip
    _, record = lsuv(model, X, orthonormal=False, return_record=True)
    # one pass per measurement (the first, then one per rescaling), of layer k only, on
    # the activations of layer k - 1 (the layers below are not run again)
    want = [
        (k, 1, (len(X), SIZES[k])) for k, n in enumerate(record.iterations) for _ in range(n + 1)
    ]
    assert passes == want and (record.iterations >= 1).all()


def test_orthonormal_pre_init_and_rescaling():
    model = MLP(SIZES, activation="relu", seed=5, dtype="float64")
    lsuv(model, X, tol=1e9)  # no rescaling: just the orthonormal pre-init
    for k, w in enumerate(model.weights):
        want = _init.orthogonal(w.shape, seed=5, stream=2 * k, dtype="float64")
        np.testing.assert_array_equal(w, want)
    model2, record = lsuv(MLP(SIZES, activation="relu", seed=5, dtype="float64"), X,
                          return_record=True)  # fmt: skip
    for w0, w1 in zip(model.weights, model2.weights, strict=True):
        ratio = w1 / w0  # every layer only rescaled
        np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-12)
    assert record.initial_variance[0] == pytest.approx(output_variances(model, X)[0])


def test_max_iter_and_keeping_the_weights():
    model = MLP(SIZES, activation="tanh", init=("normal", {"std": 3.0}), seed=2, dtype="float64")
    before = [w.copy() for w in model.weights]
    _, record = lsuv(model, X, tol=1e-6, max_iter=1, orthonormal=False, return_record=True)
    assert (record.iterations == 1).all()
    for w0, w1 in zip(before, model.weights, strict=True):
        r = w1 / w0
        np.testing.assert_allclose(r, r.flat[0], rtol=1e-5)


def test_bad_input():
    model = MLP(SIZES, seed=0, dtype="float64")
    for kw, name in (
        ({"tol": 0}, "tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"max_iter": 1.5}, "max_iter"),
        ({"max_iter": True}, "max_iter"),  # a bool is not a count
        ({"tol": np.inf}, "tol"),  # every layer "within tol" with no rescaling
    ):
        with pytest.raises(ValueError, match=name):
            lsuv(model, X, **kw)
    with pytest.raises(ValueError, match="X_batch"):
        lsuv(model, X[:, :5])
    with pytest.raises(ValueError, match="model"):
        lsuv(object(), X)
    with pytest.raises(TypeError, match="orthonormal"):
        lsuv(model, X, orthonormal="no")
    with pytest.raises(TypeError, match="return_record"):
        lsuv(model, X, return_record=1)
    before = model._params.copy()
    with pytest.raises(ValueError, match="layer 0"):
        lsuv(model, np.zeros_like(X))
    np.testing.assert_array_equal(model._params, before)  # a failed lsuv changes nothing
    dead = MLP(SIZES, seed=0, dtype="float64", bias_init=("constant", {"value": -100.0}))
    before = dead._params.copy()
    with pytest.raises(ValueError, match="layer 1"):  # after layer 0 was rescaled
        lsuv(dead, X)
    np.testing.assert_array_equal(dead._params, before)


def test_a_layer_with_nothing_to_rescale_says_why():
    # one row and one output unit: the output layer's variance is 0 whatever the weights
    model = MLP([24, 8, 1], seed=0, dtype="float64")
    with pytest.raises(ValueError, match=r"layer 1's .*constant over X_batch.*X_batch has 1"):
        lsuv(model, X[:1])
    # overflow (float32): not "constant", and the model is kept
    model = MLP([24, 8, 3], seed=0, dtype="float32")
    model.weights[0] = np.full((24, 8), 1e38, np.float32)
    before = model._params.copy()
    with pytest.raises(ValueError, match=r"layer 0's .* is (inf|nan).*overflowed"):
        lsuv(model, np.abs(X), orthonormal=False)
    np.testing.assert_array_equal(model._params, before)


def test_a_layer_that_does_not_reach_unit_variance_in_max_iter_warns():
    # biases of std 0.5 (Var(b) ~ 0.25 < 1): reachable, but not to 1e-4 in 2 rescalings
    model = MLP([24, 16, 16, 3], activation="tanh", bias_init=("normal", {"std": 0.5}), seed=0,
                dtype="float64")  # fmt: skip
    with pytest.warns(RuntimeWarning) as caught:
        _, record = lsuv(model, X, tol=1e-4, max_iter=2, return_record=True)
    layers = np.flatnonzero(~record.converged)
    assert len(layers) >= 1
    assert [str(w.message).split(" pre-activation")[0] for w in caught] == [
        f"lsuv: layer {k}'s" for k in layers
    ]
    assert all(
        "after 2 rescalings, not within 1 +- 0.0001; raise max_iter or tol" in str(w.message)
        for w in caught
    )
    assert [w.filename for w in caught] == [__file__] * len(caught)  # points at the caller
    var = output_variances(model, X)
    np.testing.assert_allclose(record.variance, var, rtol=1e-9)
    assert (np.abs(var[~record.converged] - 1) >= 1e-4).all()


def test_usable_by_name_in_the_mnist_experiment(monkeypatch):
    spec = parse_init("LSUV")
    assert spec.lsuv and spec.initializer == "orthogonal"
    calls = []

    def spy(model, batch, **kw):
        calls.append(batch)
        return lsuv(model, batch, **kw)

    monkeypatch.setattr(fastinit.lsuv, "lsuv", spy)  # InitSpec.prepare imports it per call
    with pytest.warns(UserWarning, match="X_batch has 8 rows"):  # the first batch: 8 rows
        r = mnist.run_mnist(("lsuv", "he"), hidden=(16,), iterations=3, batch_size=8,
                            train_size=200, seed=4, dtype="float64", progress=False)  # fmt: skip
    assert len(calls) == 1 and set(r.curves) == {"lsuv", "he"}
    (x_train, _), _ = mnist.datasets.load_mnist(dtype="float64")
    np.testing.assert_array_equal(calls[0], x_train[:200][batch_rows(200, 8, 0, seed=4)])


def test_exported_from_init_and_refused_where_no_model_is_trained():
    import fastinit.init

    assert fastinit.init.lsuv is lsuv
    with pytest.raises(ValueError, match="data-dependent"):
        parse_init("lsuv", data_dependent=False)
    with pytest.raises(ValueError, match="data-dependent"):
        histogram.run_histogram(inits=("lsuv",), activations=("tanh",), layers=2, width=4,
                                samples=8, progress=False)  # fmt: skip


def test_a_variance_below_the_float32_factors_range_is_still_rescaled():
    # Var(z) 1e-81 (subnormal float32 weights) needs a factor 1e40, beyond float32: the
    # weights became inf and lsuv blamed "overflowed (weights or X_batch far too large)"
    model = MLP(SIZES, activation="relu", init=("normal", {"std": 1e-41}), seed=3,
                dtype="float32")  # fmt: skip
    assert 0 < output_variances(model, X)[0] < 1e-78
    _, record = lsuv(model, X, orthonormal=False, return_record=True)
    assert record.initial_variance[0] < 1e-78 and record.converged.all()
    var = output_variances(model, X.astype(np.float32))
    assert (np.abs(var - 1) < 0.1).all(), var
    np.testing.assert_allclose(record.variance, var, rtol=1e-4)


def test_a_std_whose_square_overflows_float64_is_still_rescaled():
    # float64 weights of 1e156: pre-activation std ~1e157, whose variance (1e314) is inf;
    # the factor 1 / sqrt(inf) = 0 zeroed the weights, and lsuv blamed "zero weights"
    # (and it said nothing else: no NumPy overflow warning from its own arithmetic)
    model = MLP(SIZES, activation="relu", init=("normal", {"std": 1e156}), seed=3,
                dtype="float64")  # fmt: skip
    with np.errstate(over="ignore", invalid="ignore"):  # the layers above overflow
        assert np.isinf(output_variances(model, X)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, record = lsuv(model, X, orthonormal=False, return_record=True)
    assert np.isinf(record.initial_variance[0]) and record.converged.all()
    var = output_variances(model, X)
    assert (np.abs(var - 1) < 0.1).all(), var
    np.testing.assert_allclose(record.variance, var, rtol=1e-10)


def test_inputs_whose_squares_underflow_float64_are_still_rescaled():
    # X of std 1e-200: the pre-activations' squares underflow, so their std read 0 and
    # lsuv refused the layer as "constant over X_batch"; weights of 1e200 fit float64
    model = MLP(SIZES, activation="tanh", seed=3, dtype="float64")
    _, record = lsuv(model, X * 1e-200, return_record=True)
    assert record.converged.all() and record.initial_variance[0] < 1e-300  # 1e-400: 0
    var = output_variances(model, X * 1e-200)
    np.testing.assert_allclose(record.variance, var, rtol=1e-10)


def test_inputs_too_small_for_float32_weights_are_named_as_the_cause():
    # X of std 1e-41 (subnormal): unit variance needs float32 weights of ~1e41; the
    # rescaling overflowed them to inf and the error blamed "weights or X_batch far too large"
    model = MLP(SIZES, seed=3)
    before = model._params.copy()
    with pytest.raises(ValueError, match=r"layer 0's .*beyond the float32 range.*too small"):
        lsuv(model, (X * 1e-41).astype(np.float32))
    np.testing.assert_array_equal(model._params, before)


def test_zero_weights_kept_by_orthonormal_false_are_named_as_the_cause():
    # a zeros init kept as the starting point: the error blamed dead units, constant
    # inputs or too few rows, none of which holds here
    model = MLP([24, 8, 8, 3], init=["he_normal", "zeros", "he_normal"], seed=0, dtype="float64")
    before = model._params.copy()
    with pytest.raises(ValueError, match=r"layer 1's .*layer 1's weights are all zero"):
        lsuv(model, X, orthonormal=False)
    np.testing.assert_array_equal(model._params, before)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_layer_whose_variance_is_its_biases_alone_is_refused_not_blown_up(dtype):
    # zero inputs: z = b whatever W, so each rescaling multiplied W by 1/sqrt(Var(b)) (10^10
    # in all, the weights then ~1e9) with a warning that blamed a bias "floor"; in float32
    # with tiny biases the factors overflowed and the error blamed "weights far too large"
    for std in (0.1, 1e-12):
        model = MLP([24, 8, 3], activation="tanh", bias_init=("normal", {"std": std}), seed=0,
                    dtype=dtype)  # fmt: skip
        before = model._params.copy()
        with pytest.raises(ValueError, match=r"layer 0's .*biases alone.*inputs .*all zero"):
            lsuv(model, np.zeros_like(X, dtype=dtype))
        np.testing.assert_array_equal(model._params, before)
    # zero weights kept by orthonormal=False: ten futile rescalings of zeros, then warnings
    model = MLP([24, 8, 8, 3], init=["he_normal", "zeros", "he_normal"],
                bias_init=("normal", {"std": 0.1}), seed=0, dtype=dtype)  # fmt: skip
    before = model._params.copy()
    with pytest.raises(ValueError, match=r"layer 1's .*biases alone.*weights are all zero"):
        lsuv(model, X, orthonormal=False)
    np.testing.assert_array_equal(model._params, before)
    # every ReLU unit below dead (biases -100): layer 1's inputs are zero
    model = MLP([24, 8, 3], seed=0, dtype=dtype)
    model.biases[0], model.biases[1] = np.full(8, -100.0), np.array([0.1, -0.2, 0.05])
    before = model._params.copy()
    with pytest.raises(ValueError, match=r"layer 1's .*biases alone.*every unit of layer 0 is"):
        lsuv(model, X)
    np.testing.assert_array_equal(model._params, before)


def test_biases_alone_within_tol_need_no_rescaling():
    model = MLP([24, 8, 3], activation="relu", seed=0, dtype="float64")
    model.biases[0] = np.tile([1.0, -1.0], 4)  # Var(b) = 1 exactly
    with pytest.warns(UserWarning, match="every row of X_batch is the same"):
        _, record = lsuv(model, np.zeros_like(X), return_record=True)
    assert record.initial_variance[0] == 1.0 and record.iterations[0] == 0
    assert record.converged.all()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_biases_whose_spread_alone_exceeds_the_target_are_refused_not_vanished(dtype):
    # Var(b) over the units ~3.2 > 1.1: each rescaling divided W by >= sqrt(3.2), and
    # max_iter=300 left weights ~1e-77 (float32: zeros) with only a "did not converge" warning
    model = MLP([24, 16, 16, 3], activation="tanh", bias_init=("normal", {"std": 2.0}), seed=0,
                dtype=dtype)  # fmt: skip
    bias = float(np.asarray(model.biases[0], np.float64).var())
    assert bias > 1.1
    before = model._params.copy()
    with pytest.raises(ValueError, match=r"layer 0's .*no rescaling of its weights") as err:
        lsuv(model, X.astype(dtype), max_iter=300)
    assert f"{bias:.4g}" in str(err.value) and "bias_init" in str(err.value)
    np.testing.assert_array_equal(model._params, before)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_biases_are_refused_exactly_when_their_floor_is_past_tol(dtype):
    # the least Var(z) that any scale s of W reaches, min_s Var(s a @ W + b), by a scan of s
    # in NumPy (s -> 0 included: Var(b)); a tol that leaves it just outside 1 +- tol is
    # refused, one that leaves it just inside is not
    model = MLP([24, 16, 3], activation="tanh", bias_init=[("normal", {"std": 1.4}), "zeros"],
                seed=0, dtype=dtype)  # fmt: skip
    x = X.astype(dtype)
    u = x.astype(np.float64) @ np.asarray(model.weights[0], np.float64)
    b = np.asarray(model.biases[0], np.float64)
    floor = min(float((s * u + b).var()) for s in [0.0, *np.geomspace(1e-9, 10.0, 4001)])
    assert 1.2 < floor < (u + b).var() / 4  # not within tol at the start: a rescaling is due
    before = model._params.copy()
    with pytest.raises(ValueError, match=r"layer 0's .*no rescaling of its weights") as err:
        lsuv(model, x, tol=0.75 * (floor - 1.0), orthonormal=False)
    reached = float(str(err.value).split("the least it reaches is ")[1].split(",")[0])
    assert reached == pytest.approx(floor, rel=1e-3)
    np.testing.assert_array_equal(model._params, before)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # it may stop short of tol
        lsuv(model, x, tol=1.25 * (floor - 1.0), orthonormal=False)  # reachable: no error


def test_a_rescaling_that_raises_the_variance_stops_and_keeps_the_weights():
    # biases that cancel the units' means (b = -3 mean(a @ W)): Var(z) 1.63 at the start, and
    # every smaller scale of W gives more (towards Var(b) 3.5), though a larger one reaches
    # 1; LSUV's step W / sqrt(Var) went down forever: 300 rescalings left W ~1e-30
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4))
    x[:, 0] += 3.0
    w = rng.standard_normal((4, 6)) * 0.1
    w[0] += np.linspace(-0.2, 0.2, 6)
    model = MLP([4, 6, 2], activation="tanh", seed=0, dtype="float64")
    model.weights[0], model.biases[0] = w, -3.0 * (x @ w).mean(axis=0)
    start = output_variances(model, x)[0]
    with pytest.warns(
        RuntimeWarning,
        match=r"layer 0's .* is 1\.627 \(0\.627 from 1\) after 0 rescalings.*"
        r"smaller scale of its weights raised it.*variance 3\.533",
    ):
        _, record = lsuv(model, x, max_iter=300, orthonormal=False, return_record=True)
    np.testing.assert_array_equal(model.weights[0], w)  # the step that raised it undone
    assert record.iterations[0] == 0 and record.variance[0] == pytest.approx(start, rel=1e-12)
    assert record.converged[1]


@pytest.mark.parametrize("rows", ["one", "few", "one short", "repeated"])
def test_a_batch_that_cannot_stand_for_the_data_is_warned_of(rows):
    # one row, or one row repeated, "converged" in every layer: the pooled variance then
    # measures only the spread between units, and on real data Var(z_k) was 1.3-2.7
    x = {"one": X[:1], "few": X[:8], "one short": X[: FEW_ROWS - 1],  # FEW_ROWS: not warned
         "repeated": np.repeat(X[:1], 64, axis=0)}[rows]  # fmt: skip
    model = MLP([24, 16, 16, 3], activation="relu", seed=0)
    words = "every row of X_batch is the same" if rows == "repeated" else "X_batch has"
    with pytest.warns(UserWarning, match=f"^lsuv: {words}") as caught:
        lsuv(model, x)
    assert caught[0].filename == __file__  # points at the caller


def test_a_batch_of_real_rows_is_not_warned_of():
    model = MLP([24, 16, 16, 3], activation="relu", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lsuv(model, X[:FEW_ROWS])


def test_the_warning_of_a_layer_short_of_tol_says_how_far_it_is():
    # "variance is 1 ... not within 1 +- 1e-09" contradicted itself
    model = MLP([24, 16, 16, 3], activation="tanh", seed=0)  # float32: 1 to about 1e-7
    with pytest.warns(RuntimeWarning) as caught:
        _, record = lsuv(model, X, tol=1e-9, max_iter=1, return_record=True)
    assert caught
    for w in caught:
        k = int(str(w.message).split("layer ")[1].split("'")[0])
        away = float(str(w.message).split("(")[1].split(" from 1)")[0])
        assert away == pytest.approx(abs(record.variance[k] - 1), rel=1e-2) and away > 0
