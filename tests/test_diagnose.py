"""fastinit.diagnose and fit(record_stats=True), against an independent NumPy oracle."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

import fastinit
from fastinit import optim
from fastinit import random as _rng
from fastinit.diagnostics import DEAD, FEW_ROWS, FLAGS, SATURATED, VANISHING, recommended_init
from fastinit.init import calculate_gain
from fastinit.model import MLP
from fastinit.train import STAT_FIELDS, batch_rows, fit_many
from tests import reference as ref

RNG = np.random.default_rng(0)
X = RNG.standard_normal((200, 16))
Y = RNG.integers(0, 5, 200)
SIZES = [16, 32, 32, 32, 5]
F64 = "float64"  # one training kernel to compile for most tests (float32: one test)
RELU_FAMILY = ("relu", "leaky_relu", "elu", "selu", "gelu", "gelu_tanh", "silu", "softplus")


def oracle(model: MLP, x: np.ndarray, y=None, loss="softmax_cross_entropy", grad_top=None):
    """Per-layer statistics in float64 NumPy, from tests/reference.py's forward/backward."""
    acts = [(a.name, a.params) for a in model.activations]
    w = [np.asarray(v, np.float64) for v in model.weights]
    b = [np.asarray(v, np.float64) for v in model.biases]
    a = np.asarray(x, np.float64)
    zs, outs, derivs = [], [], []
    for k in range(len(w)):
        z = a @ w[k] + b[k]
        a, d = ref.activation(acts[k][0], z, **acts[k][1])
        zs.append(z)
        outs.append(a)
        derivs.append(d)
    g = ref.loss(loss, a, y)[1] if grad_top is None else np.asarray(grad_top, np.float64)
    dzs = [None] * len(w)
    for k in range(len(w) - 1, -1, -1):
        dzs[k] = g * derivs[k]
        g = dzs[k] @ w[k].T
    out = {f: np.full(len(w), np.nan) for f in STAT_FIELDS}
    for k, (name, _) in enumerate(acts):
        out["pre_mean"][k], out["pre_std"][k] = zs[k].mean(), zs[k].std()
        out["act_mean"][k], out["act_std"][k] = outs[k].mean(), outs[k].std()
        out["grad_mean"][k], out["grad_std"][k] = dzs[k].mean(), dzs[k].std()
        if name == "sigmoid":
            out["saturated"][k] = np.mean((outs[k] < 0.01) | (outs[k] > 0.99))
        elif name == "tanh":
            out["saturated"][k] = np.mean(np.abs(outs[k]) > 0.99)
        if name in RELU_FAMILY:
            inactive = np.abs(derivs[k]) < 0.05
            out["inactive"][k] = inactive.mean()
            out["dead"][k] = np.all(inactive, axis=0).mean()
    out["grad_norm"] = np.array([np.linalg.norm(dz) for dz in dzs])
    return out


def check(got, want, rtol):
    for f in (*STAT_FIELDS, "grad_norm"):
        # a mean can cancel to ~0 (softmax gradients sum to 0): compare it on the std's scale
        atol = rtol * want[f.replace("_mean", "_std")].max() if f.endswith("_mean") else 0
        np.testing.assert_allclose(getattr(got, f), want[f], rtol=rtol, atol=atol, err_msg=f)


@pytest.mark.parametrize(
    ("activation", "loss", "targets"),
    [
        (["tanh", "relu", "sigmoid"], "softmax_cross_entropy", Y),
        (["elu", ("leaky_relu", {"negative_slope": 0.1}), "selu"], "mse", np.eye(5)[Y]),
        (["gelu", "silu", "softplus"], "softmax_cross_entropy", Y),
    ],
)
def test_statistics_match_numpy_float64(activation, loss, targets):
    bias = ("normal", {"std": 0.1})
    model = MLP(SIZES, activation=activation, init="glorot_normal", bias_init=bias, seed=3,
                dtype="float64")  # fmt: skip
    d = fastinit.diagnose(model, X, targets, loss=loss)
    want = oracle(model, X, targets, loss)
    check(d, want, 1e-9)
    w = [np.asarray(v, np.float64) for v in model.weights]
    acts = [(a.name, a.params) for a in model.activations[:-1]]
    logits = ref.forward(w, list(model.biases), acts, X)[0]
    assert d.loss == pytest.approx(ref.loss(loss, logits, targets)[0], rel=1e-9)
    assert d.grad_norm_ratio == pytest.approx(want["grad_norm"][0] / want["grad_norm"][-1])
    # the dW norms: the reference's explicit backpropagation
    grads = ref.loss_and_grads(w, list(model.biases), acts, X, targets, loss)[1]
    np.testing.assert_allclose(d.weight_grad_norm, [np.linalg.norm(g) for g, _ in grads], rtol=1e-9)


def test_float32_and_no_targets_use_a_standard_normal_output_gradient():
    model = MLP(SIZES, activation="relu", init=("normal", {"std": 0.3}), seed=4)  # float32
    d = fastinit.diagnose(model, X, grad_seed=7)
    g = _rng.fill_normal(np.empty((len(X), 5), np.float32), 0.0, 1.0, seed=7, stream=2**32)
    want = oracle(model, X.astype(np.float32), grad_top=g)
    for f in ("pre_std", "act_mean", "act_std", "grad_std", "grad_norm"):
        np.testing.assert_allclose(getattr(d, f), want[f], rtol=1e-4, err_msg=f)
    assert d.loss is None and "N(0, 1)" in d.gradient


def test_the_output_gradient_is_not_drawn_from_the_weights_stream():
    # seed 0 for both (the defaults): stream 0 of key 0 holds layer 0's weights
    model = MLP([20, 50, 5], init=("normal", {"std": 1.0}), seed=0, dtype="float64")
    X20 = np.random.default_rng(2).normal(size=(64, 20))
    d = fastinit.diagnose(model, X20, grad_seed=0)
    same = _rng.fill_normal(np.empty((64, 5)), 0.0, 1.0, seed=0, stream=0)
    assert np.array_equal(same.ravel(), model.weights[0].ravel()[:320])  # the collision
    g = _rng.fill_normal(np.empty((64, 5)), 0.0, 1.0, seed=0, stream=2**32)
    want = oracle(model, X20, grad_top=g)
    np.testing.assert_allclose(d.grad_norm, want["grad_norm"], rtol=1e-9)
    assert abs(np.corrcoef(g.ravel(), model.weights[0].ravel()[:320])[0, 1]) < 0.2


def test_std1_sigmoid_network_is_saturated():
    model = MLP(SIZES, activation="sigmoid", init=("normal", {"std": 1.0}), seed=1, dtype=F64)
    d = fastinit.diagnose(model, X, Y)
    assert d.flags["saturation"]
    assert (d.saturated[:-1] > SATURATED).all()
    assert any(w.startswith("saturation") for w in d.warnings)
    assert "xavier_normal" in d.warnings[-1]  # names the recommended init


def test_std001_relu_network_has_vanishing_activations():
    model = MLP(SIZES, activation="relu", init=("normal", {"std": 0.01}), seed=1, dtype=F64)
    d = fastinit.diagnose(model, X, Y)
    assert d.flags["vanishing_activations"] and d.flags["vanishing_gradients"]
    assert d.pre_std[-1] / np.std(X) < VANISHING
    assert any(w.startswith("vanishing activations") for w in d.warnings)
    assert not d.flags["saturation"]


def test_he_relu_network_is_neither():
    model = MLP(SIZES, activation="relu", init="he_normal", seed=1, dtype=F64)
    d = fastinit.diagnose(model, X, Y)
    assert not any(d.flags.values()), d.warnings
    assert d.warnings == []
    assert (d.dead[:-1] <= DEAD).all()
    assert 0.1 < d.grad_norm_ratio < 10


def test_dead_units_are_reported():
    bias = ("constant", {"value": -20.0})
    model = MLP([16, 32, 5], activation="relu", init="he_normal", bias_init=bias, dtype=F64)
    d = fastinit.diagnose(model, X, Y)
    assert d.dead[0] == 1.0 and d.inactive[0] == 1.0 and d.flags["dead_units"]


def test_recommendations_and_report():
    model = MLP(
        SIZES, activation=["relu", "tanh", ("leaky_relu", {"negative_slope": 0.2})], dtype=F64
    )
    d = fastinit.diagnose(model, X, Y)
    rec = d.recommended
    assert rec[0]["init"] == "kaiming_normal" and rec[0]["gain"] == calculate_gain("relu")
    assert rec[1]["init"] == "xavier_normal" and rec[1]["gain"] == 1.0  # Glorot's, not 5/3
    assert rec[2]["gain"] == pytest.approx(calculate_gain("leaky_relu", 0.2))
    assert rec[0]["std"] == pytest.approx(np.sqrt(2 / 16))
    assert rec[3]["rule"] == "Glorot" and rec[3]["gain"] == 1.0
    text = str(d)
    assert "recommended" in text and "kaiming_normal" in text and len(text.splitlines()) >= 6
    assert text in repr(d)
    data = json.loads(json.dumps(d.to_dict(), allow_nan=True))
    assert data["sizes"] == SIZES and len(data["pre_std"]) == 4
    assert not any(np.isnan(model.weights[0]).ravel())  # the model is untouched
    before = model._params.copy()
    fastinit.diagnose(model, X, Y)
    np.testing.assert_array_equal(model._params, before)


@pytest.mark.parametrize(
    ("activation", "rule", "std"),
    [
        ("relu", "He", math.sqrt(2 / 100)),  # He et al. 2015: sqrt(2 / fan_in)
        (("leaky_relu", {"negative_slope": 0.2}), "He", math.sqrt(2 / (1 + 0.2**2) / 100)),
        ("selu", "LeCun", 1 / math.sqrt(100)),  # Klambauer et al. 2017: 1 / sqrt(fan_in)
        ("tanh", "Glorot", math.sqrt(2 / (100 + 10))),  # Glorot & Bengio 2010
    ],
)
def test_recommended_std_is_the_paper_s_formula(activation, rule, std):
    # fan_in 100, fan_out 10: SELU's std from fan_out (0.316 for 0.1) passed, only tanh's
    # was checked (mutation audit)
    rec = recommended_init(activation, 100, 10)
    assert rec["rule"] == rule and rec["std"] == pytest.approx(std, rel=1e-12), rec


def test_recommended_init_takes_names_and_checks_its_arguments():
    leaky = ("leaky_relu", {"negative_slope": 0.2})
    model = MLP([16, 8, 8, 3], activation=["selu", leaky], dtype=F64)
    for act, spec in zip(model.activations, ["selu", leaky, "linear"], strict=True):
        assert recommended_init(spec, 8, 3) == recommended_init(act, 8, 3)
    rec = recommended_init("tanh", 20, 5)
    assert rec["init"] == "xavier_normal"
    assert rec["std"] == pytest.approx(np.sqrt(2 / 25))
    with pytest.raises(ValueError, match="activation: expected one of"):
        recommended_init("rleu", 8, 3)
    with pytest.raises(ValueError, match=r"fan_in: expected an integer in \[1, inf\], got 0"):
        recommended_init("relu", 0, 3)
    with pytest.raises(TypeError, match="fan_out: expected an integer"):
        recommended_init("relu", 8, 3.0)


def test_bad_input():
    model = MLP(SIZES, seed=0, dtype=F64)
    with pytest.raises(ValueError, match="model"):
        fastinit.diagnose("not a model", X)
    with pytest.raises(ValueError, match="X"):
        fastinit.diagnose(model, X[:, :3])
    with pytest.raises(ValueError, match="loss"):
        fastinit.diagnose(model, X, Y, loss="hinge")
    with pytest.raises(ValueError, match="loss"):
        fastinit.diagnose(model, X, loss="hinge")  # checked without targets too
    with pytest.raises(ValueError, match="grad_seed"):
        fastinit.diagnose(model, X, grad_seed=-1)


def test_grad_seed_is_checked_with_targets_too():
    # as loss is: a bad argument is an error whether or not this call uses it
    model = MLP(SIZES, seed=0, dtype=F64)
    with pytest.raises(ValueError, match="grad_seed"):
        fastinit.diagnose(model, X, Y, grad_seed=-1)
    with pytest.raises(TypeError, match="grad_seed"):
        fastinit.diagnose(model, X, Y, grad_seed=1.5)


def test_a_non_finite_loss_gives_nan_gradients_not_zeros():
    model = MLP(SIZES, activation="relu", init=("normal", {"std": 1e100}), seed=1, dtype=F64)
    d = fastinit.diagnose(model, X, Y)
    assert not np.isfinite(d.loss)
    assert np.isnan(d.weight_grad_norm).all() and np.isnan(d.grad_std).all()


# ----------------------------------------------------------------------------- record_stats
def test_recorded_stats_equal_diagnose_at_that_iteration():
    kw = dict(optimizer=optim.SGD(0.05), batch_size=32, sampling="replacement", seed=9,
              progress=False)  # fmt: skip
    model = MLP(SIZES, activation=["tanh", "relu", "sigmoid"], seed=2, dtype="float64")
    hist = model.fit(X, Y, iterations=25, record_stats=True, stats_every=10, **kw)
    np.testing.assert_array_equal(hist.stats["iteration"], [0, 10, 20])
    for r, t in enumerate(hist.stats["iteration"]):
        replay = MLP(SIZES, activation=["tanh", "relu", "sigmoid"], seed=2, dtype="float64")
        if t:
            replay.fit(X, Y, iterations=int(t), **kw)
        rows = batch_rows(len(X), 32, int(t), seed=9)
        d = fastinit.diagnose(replay, X[rows], Y[rows])
        for f in STAT_FIELDS:
            np.testing.assert_allclose(hist.stats[f][r], getattr(d, f), rtol=1e-12, err_msg=f)
        # and the oracle agrees
        check(d, oracle(replay, X[rows], Y[rows]), 1e-9)


def test_record_stats_does_not_change_training_and_slices_models():
    def models():
        return [
            MLP(SIZES, seed=5, dtype=F64),
            MLP([16, 8, 5], activation="tanh", seed=6, dtype=F64),
        ]

    kw = dict(optimizer=optim.Adam(0.01), batch_size=16, iterations=12, sampling="shuffle",
              seed=1, progress=False)  # fmt: skip
    plain, recorded = models(), models()
    h0 = fit_many(plain, X, Y, **kw)
    h1 = fit_many(recorded, X, Y, record_stats=True, stats_every=1, **kw)
    # the first network is bit for bit the same; the second (all widths <= NARROW_MAX)
    # trains feature-major but records with the row-major kernels: equal to rounding
    np.testing.assert_array_equal(plain[0]._params, recorded[0]._params)
    np.testing.assert_array_equal(h0[0].loss, h1[0].loss)
    np.testing.assert_allclose(plain[1]._params, recorded[1]._params, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(h0[1].loss, h1[1].loss, rtol=1e-12)
    for p in h0:
        assert p.stats is None
    assert h1[0].stats["pre_std"].shape == (12, 4) and h1[1].stats["pre_std"].shape == (12, 2)
    assert (
        np.isnan(h1[0].stats["saturated"]).all() and np.isnan(h1[1].stats["saturated"][:, 1]).all()
    )
    assert np.isfinite(h1[1].stats["saturated"][:, 0]).all()
    assert np.isfinite(h1[0].stats["dead"][:, :-1]).all()


def test_record_stats_after_divergence_and_bad_input():
    model = MLP([16, 8, 5], activation="relu", init=("normal", {"std": 1e200}), dtype=F64)
    h = model.fit(X, Y, iterations=30, record_stats=True, stats_every=3, progress=False)
    assert h.status == "diverged" and h.diverged_at == 0  # the logits overflow
    np.testing.assert_array_equal(h.stats["iteration"], [0])
    assert np.isnan(h.stats["grad_std"]).all()  # no backward pass on a non-finite loss
    assert not np.isnan(h.stats["pre_std"][0, 0])  # the forward statistics were recorded (inf)
    for bad in (0, -1, 2.5, "3", True):
        with pytest.raises(ValueError, match="stats_every"):
            model.fit(X, Y, iterations=1, record_stats=True, stats_every=bad, progress=False)
    with pytest.raises(ValueError, match="record_stats"):
        model.fit(X, Y, iterations=1, record_stats="yes", progress=False)


# ----------------------------------------------------------------------------- few rows
@pytest.mark.parametrize(
    ("sizes", "activation", "rows"),
    [
        ([16, 64, 64, 1], "relu", 1),  # a one-unit output's std over one row is 0: "vanishing"
        ([16, 64, 3], "relu", 1),  # half the units are off on that row: "dead"
        ([16, 64, 64, 3], "relu", 3),
        ([16, 64, 64, 3], "gelu", 1),
        ([16, 64, 64, 3], "silu", 1),
        ([16, 64, 64, 1], "relu", FEW_ROWS - 1),
    ],
)
def test_few_rows_make_no_finding_but_are_measured(sizes, activation, rows):
    model = MLP(sizes, activation=activation, seed=0, dtype=F64)
    few = fastinit.diagnose(model, X[:rows], grad_seed=1)
    g = _rng.fill_normal(np.empty((rows, sizes[-1])), 0.0, 1.0, seed=1, stream=2**32)
    want = oracle(model, X[:rows], grad_top=g)
    check(few, want, 1e-9)  # the statistics are measured all the same
    assert not any(few.flags.get(f) for f in FLAGS[:-1]), few.warnings
    assert few.rows == rows and few.flags["few_rows"] and set(few.flags) == set(FLAGS)
    (warning,) = few.warnings
    assert warning.startswith(f"few rows: X has {rows} rows, fewer than {FEW_ROWS}")
    assert "no finding" in warning and "diagnose a few hundred rows" in warning
    # what the findings would have said is noise: on the whole batch this model is healthy
    many = fastinit.diagnose(model, X, grad_seed=1)
    assert not any(many.flags.values()) and many.warnings == [], many.warnings


def test_an_overflowed_layer_is_not_reported_as_dead_units():
    # NaN entries (inf - inf) counted as inactive: "dead units: 100% of layer 1's relu
    # units" beside the overflow, and fit(record_stats=True) recorded the same
    model = MLP(SIZES, activation="relu", init=("normal", {"std": 1e200}), seed=1, dtype=F64)
    d = fastinit.diagnose(model, X, Y)
    over = ~(np.isfinite(d.pre_mean) & np.isfinite(d.act_mean))
    assert over[1:].all() and not over[0]  # layer 0's z = X @ W: large but finite
    assert np.isnan(d.dead[over]).all() and np.isnan(d.inactive[over]).all()
    assert np.isfinite(d.dead[0])
    assert d.flags["non_finite"] and not d.flags["dead_units"]
    assert not any(w.startswith("dead units") for w in d.warnings), d.warnings


def test_few_rows_still_report_an_overflow():
    model = MLP([16, 8, 5], activation="relu", init=("normal", {"std": 1e200}), dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy overflow warning: the overflow is a finding
        d = fastinit.diagnose(model, X[:2], Y[:2])
    assert np.isnan(d.grad_std).all()
    # the weights themselves are finite: so is their std (the squares overflow, not the std)
    want = [np.std(w / 1e200) * 1e200 for w in model.weights]
    np.testing.assert_allclose(d.weight_std, want, rtol=1e-12)
    assert d.flags["non_finite"] and d.flags["few_rows"]
    assert [w.split(":")[0] for w in d.warnings] == ["non-finite statistics", "few rows", "the "
                                                     "theory recommends identity"]  # fmt: skip


# ----------------------------------------------------------------------------- input scale
def normalized(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / x.std(axis=0)


SCALE_RNG = np.random.default_rng(5)
PIXELS = SCALE_RNG.integers(0, 256, (200, 16)).astype(np.float64)  # raw 8-bit pixel values
UNNORMALIZED = [
    ("tanh", "glorot_normal", PIXELS),  # layer 0 saturates: layer 1 "vanishes" vs std 74
    ("sigmoid", "glorot_normal", 1e-3 * X),  # sigmoid's 0.5 offset "explodes" vs std 1e-3
    ("relu", "he_normal", 200.0 + 10.0 * X),  # the offset "explodes" layer 0
    ("relu", "he_normal", SCALE_RNG.random((200, 16))),  # all-positive: dead units downstream
]


@pytest.mark.parametrize(("activation", "init", "x"), UNNORMALIZED)
def test_unnormalized_input_is_named_as_the_cause_not_the_weights(activation, init, x):
    model = MLP(SIZES, activation=activation, init=init, seed=1, dtype=F64)
    d = fastinit.diagnose(model, x)
    assert not any("the weights are too" in w for w in d.warnings), d.warnings
    assert d.input_mean == pytest.approx(x.mean(), rel=1e-12)
    assert d.input_std == pytest.approx(x.std(), rel=1e-12)
    assert d.flags["unnormalized_input"]
    (note,) = [w for w in d.warnings if w.startswith("unnormalized input")]
    assert f"mean {x.mean():.3g} and std {x.std():.3g}" in note and "normalize" in note
    for w in d.warnings:
        if w.startswith(("vanishing activations", "exploding activations")):
            assert f"the input is far from unit scale (mean {x.mean():.3g}" in w
    # the weights are at the recommended init: the input is named, not that same init
    assert d.warnings[-1].startswith("the init already matches the theory"), d.warnings[-1]
    assert "the input's scale is the likely cause" in d.warnings[-1]
    # the oracle: with the input normalized, the same weights keep every layer's std
    # within 10x of the input's, and the diagnosis finds nothing about the activations
    want = oracle(model, normalized(x), grad_top=np.ones((len(x), SIZES[-1])))
    assert (VANISHING < want["pre_std"]).all() and (want["pre_std"] < 10).all()
    fixed = fastinit.diagnose(model, normalized(x))
    assert not fixed.flags["unnormalized_input"] and not fixed.flags["dead_units"]
    assert not fixed.flags["vanishing_activations"] and not fixed.flags["exploding_activations"]


def test_unit_scale_inputs_are_not_flagged():
    model = MLP(SIZES, activation="tanh", init="glorot_normal", seed=1, dtype=F64)
    mnist_like = np.random.default_rng(6).random((200, 16)) ** 4  # mean 0.2 < std 0.27
    for x in (X, mnist_like, 5.0 * X, 0.2 * X):
        d = fastinit.diagnose(model, x)
        assert abs(x.mean()) <= x.std() and not d.flags["unnormalized_input"], d.warnings
    std001 = MLP(SIZES, activation="relu", init=("normal", {"std": 0.01}), seed=1, dtype=F64)
    d = fastinit.diagnose(std001, X)  # at unit scale, the weights are to blame
    assert any(w.endswith("the weights are too small") for w in d.warnings)


def test_vanishing_activations_name_the_layers_that_vanish():
    # layer 1's weights are 250x too small, layer 2's 250x too large: only layer 1 vanishes
    init = ["he_normal", ("normal", {"std": 1e-3}), ("normal", {"std": 62.5}), "he_normal"]
    model = MLP(SIZES, activation="relu", init=init, seed=1, dtype=F64)
    want = oracle(model, X, grad_top=np.ones((200, 5)))
    low = np.flatnonzero(want["pre_std"] / X.std() < VANISHING)
    assert list(low) == [1]
    d = fastinit.diagnose(model, X, Y)
    (w,) = [w for w in d.warnings if w.startswith("vanishing activations")]
    assert "x the input std at layer 1 (" in w and "from layer" not in w
    deep = MLP(SIZES, activation="relu", init=("normal", {"std": 0.01}), seed=1, dtype=F64)
    (w,) = [w for w in fastinit.diagnose(deep, X).warnings if w.startswith("vanishing act")]
    assert "x the input std from layer 0 on (" in w  # every layer


# ----------------------------------------------------------------------------- gelu, silu
@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "silu"])
def test_dead_units_without_an_exact_zero_region(activation):
    # healthy: |f'(z)| < 0.05 in the band around the slope's sign change catches about 8%
    # of the entries, but no unit stays in it over the batch
    model = MLP(SIZES, activation=activation, init="he_normal", seed=1, dtype=F64)
    d = fastinit.diagnose(model, X, Y)
    want = oracle(model, X, Y)
    np.testing.assert_allclose(d.inactive[:-1], want["inactive"][:-1], rtol=1e-12)
    assert (0.02 < want["inactive"][:-1]).all() and (want["dead"][:-1] == 0).all()
    assert (d.dead[:-1] == 0).all() and not d.flags["dead_units"]
    # really dead: a bias of -12 holds every unit of layer 0 in the flat negative tail
    bias = [("constant", {"value": -12.0}), "zeros", "zeros"]
    dead = MLP([16, 32, 32, 5], activation=activation, bias_init=bias, seed=1, dtype=F64)
    d = fastinit.diagnose(dead, X, Y)
    want = oracle(dead, X, Y)
    assert want["dead"][0] == 1.0 and d.dead[0] == 1.0 and d.flags["dead_units"]
    assert any(w.startswith(f"dead units: 100% of layer 0's {activation}") for w in d.warnings)


def test_softplus_units_held_in_the_flat_tail_are_dead():
    # softplus's slope is sigmoid(z): below 0.05 for z < -2.94, a smooth relu's zero region
    model = MLP(SIZES, activation="softplus", init="he_normal", seed=1, dtype=F64)
    d = fastinit.diagnose(model, X, Y)
    want = oracle(model, X, Y)
    np.testing.assert_allclose(d.inactive[:-1], want["inactive"][:-1], rtol=1e-12)
    assert (d.dead[:-1] == 0).all() and not d.flags["dead_units"]
    bias = [("constant", {"value": -12.0}), "zeros", "zeros"]
    dead = MLP([16, 32, 32, 5], activation="softplus", bias_init=bias, seed=1, dtype=F64)
    d = fastinit.diagnose(dead, X, Y)
    assert oracle(dead, X, Y)["dead"][0] == 1.0 and d.dead[0] == 1.0
    assert any(w.startswith("dead units: 100% of layer 0's softplus") for w in d.warnings)


# ----------------------------------------------------------------------------- per-feature scale
def badly_scaled(rows: int = 300) -> np.ndarray:
    """100 features of std 0.3, feature 7 of std 50: 167 x the others, yet over all
    entries mean ~0 and std ~5, at unit scale by the pooled rule."""
    x = 0.3 * np.random.default_rng(7).standard_normal((rows, 100))
    x[:, 7] *= 50 / 0.3
    x[:, 3] = 2.5  # a constant feature: no scale, left out of the ratios
    return x


def test_features_on_very_different_scales_are_flagged():
    from fastinit.diagnostics import FEATURE_SCALE, INPUT_SCALE

    x = badly_scaled()
    assert 1 / INPUT_SCALE < x.std() < INPUT_SCALE and abs(x.mean()) < x.std()  # pooled: fine
    stds = x.std(axis=0)
    live = np.delete(stds, 3)
    model = MLP([100, 32, 5], activation="relu", init="he_normal", seed=1, dtype=F64)
    d = fastinit.diagnose(model, x)
    np.testing.assert_allclose(d.feature_std, stds, rtol=1e-12)
    assert d.feature_std[3] == 0.0  # exactly, although 2.5 summed 300 times is not 750
    assert d.feature_std_ratio == pytest.approx(live.max() / live.min(), rel=1e-12)
    median = np.sort(live)[(len(live) - 1) // 2]
    assert d.feature_std_dominance == pytest.approx(live.max() / median, rel=1e-12)
    assert d.feature_std_dominance > FEATURE_SCALE and d.widest_feature == 7
    assert d.flags["unnormalized_input"]
    (note,) = [w for w in d.warnings if w.startswith("unnormalized input")]
    assert "feature 7" in note and f"{d.feature_std_dominance:.3g} x the median" in note
    assert "normalize every feature" in note
    # normalized per feature: nothing to say
    fixed = (x - x.mean(axis=0)) / np.where(stds > 0, stds, 1.0)
    assert not fastinit.diagnose(model, fixed).flags["unnormalized_input"]


def test_a_feature_far_off_center_is_flagged():
    # one feature around 40 among 300 of std 0.3: the pooled mean (0.13) and std (2.3)
    # and every feature's std look fine, yet it adds a 40 x w offset to every unit
    from fastinit.diagnostics import FEATURE_SCALE, INPUT_OFFSET, INPUT_SCALE

    x = 0.3 * np.random.default_rng(9).standard_normal((400, 300))
    x[:, 11] += 40.0
    assert 1 / INPUT_SCALE < x.std() < INPUT_SCALE and abs(x.mean()) < INPUT_OFFSET * x.std()
    model = MLP([300, 32, 5], activation="relu", init="he_normal", seed=1, dtype=F64)
    d = fastinit.diagnose(model, x)
    assert d.feature_std_dominance < FEATURE_SCALE  # the stds alone are at one scale
    np.testing.assert_allclose(d.feature_mean, x.mean(axis=0), rtol=1e-12, atol=1e-15)
    median = np.sort(x.std(axis=0))[(300 - 1) // 2]
    assert d.feature_offset_dominance == pytest.approx(abs(x[:, 11].mean()) / median, rel=1e-12)
    assert d.feature_offset_dominance > FEATURE_SCALE and d.offset_feature == 11
    assert d.flags["unnormalized_input"]
    (note,) = [w for w in d.warnings if w.startswith("unnormalized input")]
    assert "feature 11 has mean 40" in note and "normalize every feature" in note
    # centred per feature: nothing to say
    assert not fastinit.diagnose(model, x - x.mean(axis=0)).flags["unnormalized_input"]
    # a constant column of ones (a bias input) is near the others' scale: not flagged
    ones = np.hstack([x[:, :11], np.ones((400, 1)), x[:, 12:]])
    assert not fastinit.diagnose(model, ones).flags["unnormalized_input"]


def test_sparse_features_at_one_scale_are_not_flagged():
    # MNIST's border pixels: rarely inked, so their std is 1000x below the central ones';
    # a feature far below the others is not a bad scale (it adds little to the signal)
    from fastinit import datasets

    rng = np.random.default_rng(8)
    x = rng.random((300, 40)) ** 4
    x[:, :10] = 0.0
    x[rng.integers(0, 300, 10), np.arange(10)] = 0.004  # one faint pixel each
    (mnist, _), _ = datasets.load_mnist(dtype="float32")
    model = MLP([40, 32, 5], activation="relu", init="he_normal", seed=1, dtype=F64)
    d = fastinit.diagnose(model, x)
    assert d.feature_std_ratio > 100 and not d.flags["unnormalized_input"], d.warnings
    big = MLP([784, 100, 10], activation="relu", init="he_normal", seed=1)
    d = fastinit.diagnose(big, mnist[:1000])
    assert d.feature_std_ratio > 100 and not d.flags["unnormalized_input"], d.warnings


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_feature_moments_match_numpy(dtype):
    # the speed is measured in bench/test_bench_stats.py (feature_moments vs np.std)
    from fastinit.diagnostics import feature_moments

    x = (np.random.default_rng(9).random((3000, 784)) * 255).astype(dtype)
    x[:, 5] = 7  # a constant feature: std exactly 0, mean exactly its value
    mean, std = feature_moments(x)
    assert mean.dtype == std.dtype == np.float64
    np.testing.assert_allclose(mean, x.mean(axis=0, dtype=np.float64), rtol=1e-6)
    np.testing.assert_allclose(std, x.std(axis=0, dtype=np.float64), rtol=1e-6)
    assert std[5] == 0.0 and mean[5] == 7.0
    huge = np.array([[1e300, 1.0], [-1e300, 3.0]])  # squares overflow: scaled first
    np.testing.assert_allclose(feature_moments(huge)[1], [1e300, 1.0], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.uint8, np.bool_, np.longdouble])
def test_moments_of_other_real_dtypes_are_taken_in_float64(dtype):
    # float16 failed inside numba (NotImplementedError); integers compiled a kernel each
    from fastinit import train
    from fastinit.diagnostics import moments

    x = (np.random.default_rng(3).random(50) * 4).astype(dtype)
    mean, std = moments(x)
    assert (mean, std) == pytest.approx((x.astype(np.float64).mean(), x.astype(np.float64).std()))
    assert {str(sig[0].dtype) for sig in train.mean_std.signatures} <= {"float32", "float64"}


@pytest.mark.parametrize("values", [np.array([], np.float32), np.array(["a"]), np.ones(2, complex)])
def test_moments_of_no_or_unreal_values_are_refused_naming_them(values):
    from fastinit.diagnostics import moments

    with pytest.raises(ValueError, match=r"^values: expected"):
        moments(values)


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble])
def test_feature_moments_of_other_float_dtypes(dtype):
    # float16 (data stored compactly) raised numba's NotImplementedError("float16")
    from fastinit.diagnostics import feature_moments

    x = np.random.default_rng(3).standard_normal((50, 4)).astype(dtype)
    x[:, 1] = 2.5
    mean, std = feature_moments(x)
    assert mean.dtype == std.dtype == np.float64
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, x.astype(np.float64).std(axis=0), rtol=1e-12)
    assert std[1] == 0.0 and mean[1] == 2.5


# ----------------------------------------------------------------------------- dead causes
def test_vanishing_activations_caused_by_dead_units_name_them_not_the_weights():
    # He weights (the recommended scale) but a bias of -20 kills every unit of layer 0:
    # layer 1's pre-activations are its bias alone, so they "vanish" from layer 1 on
    bias = [("constant", {"value": -20.0}), "zeros", "zeros"]
    model = MLP([16, 32, 32, 5], activation="relu", init="he_normal", bias_init=bias, dtype=F64)
    want = oracle(model, X, Y)
    assert want["dead"][0] == 1.0 and want["pre_std"][1] / X.std() < VANISHING
    d = fastinit.diagnose(model, X, Y)
    (w,) = [w for w in d.warnings if w.startswith("vanishing activations")]
    assert "100% of layer 0's relu units are dead" in w, w
    assert "the weights are too small" not in w
    # the same with layer 1's own units alive (a bias of 0.01 keeps each of them active):
    # the dead units named are those of the layer feeding it
    bias = [("constant", {"value": -20.0}), ("constant", {"value": 0.01}), "zeros"]
    model = MLP([16, 32, 32, 5], activation="relu", init="he_normal", bias_init=bias, dtype=F64)
    want = oracle(model, X, Y)
    assert want["dead"][0] == 1.0 and want["dead"][1] == 0.0
    assert want["pre_std"][1] / X.std() < VANISHING
    d = fastinit.diagnose(model, X, Y)
    (w,) = [w for w in d.warnings if w.startswith("vanishing activations")]
    assert "100% of layer 0's relu units are dead" in w and "too small" not in w, w
    # dead units above the layer that vanishes do not explain it: the weights are blamed
    bias = ["zeros", "zeros", ("constant", {"value": -20.0}), "zeros"]
    small = MLP(SIZES, activation="relu", init=("normal", {"std": 0.01}), bias_init=bias,
                seed=1, dtype=F64)  # fmt: skip
    d = fastinit.diagnose(small, X, Y)
    assert d.dead[2] == 1.0
    (w,) = [w for w in d.warnings if w.startswith("vanishing activations")]
    assert w.endswith("the weights are too small"), w


def test_exploding_activations_caused_by_spread_biases_name_them_not_the_weights():
    # He weights (the recommended scale) but biases of std 30 across layer 0's units:
    # its pre-activation std is about 30 x the input's, all of it from the biases
    bias = [("normal", {"std": 30.0}), "zeros", "zeros"]
    model = MLP([16, 32, 32, 5], activation="tanh", init="xavier_normal", bias_init=bias,
                seed=2, dtype=F64)  # fmt: skip
    b0 = np.asarray(model.biases[0], np.float64)
    want = oracle(model, X, Y)
    assert want["pre_std"][0] / X.std() > 10 and b0.std() / X.std() > 10
    assert np.std(X @ np.asarray(model.weights[0])) / X.std() < 10  # the weights alone: not
    d = fastinit.diagnose(model, X, Y)
    np.testing.assert_allclose(d.bias_std, [np.std(b) for b in model.biases], rtol=1e-12)
    (w,) = [w for w in d.warnings if w.startswith("exploding activations")]
    assert "the weights are too large" not in w, w
    assert f"layer 0's biases have a std of {b0.std() / X.std():.3g} x the input std" in w, w
    # large weights with zero biases are still blamed on the weights
    big = MLP([16, 32, 32, 5], activation="tanh", init=("normal", {"std": 5.0}), dtype=F64)
    (w,) = [w for w in fastinit.diagnose(big, X, Y).warnings if w.startswith("exploding act")]
    assert w.endswith("the weights are too large"), w


@pytest.mark.parametrize("rows", [200, 3])
def test_symmetric_weights_are_flagged(rows):
    # a constant init: every hidden unit of a layer computes the same thing and gets the same
    # gradient, forever (the layer acts as one unit); with an MSE loss nothing else shows it
    model = MLP([16, 32, 32, 5], activation="tanh", init=("constant", {"value": 0.1}),
                dtype=F64)  # fmt: skip
    y = RNG.standard_normal((rows, 5))
    d = fastinit.diagnose(model, X[:rows], y, loss="mse")
    assert d.flags["symmetric_weights"] and d.symmetric_layers == [0, 1], d.warnings
    (w,) = [w for w in d.warnings if w.startswith("symmetric weights")]
    assert "layers 0, 1" in w, w
    assert any(w.startswith("the theory recommends") for w in d.warnings)
    # the same layers one step later: the symmetry does not break (equal gradients)
    model.fit(X[:rows], y, loss="mse", optimizer=optim.SGD(0.1), iterations=1, batch_size=rows)
    for w, b in zip(list(model.weights)[:2], list(model.biases)[:2], strict=True):
        assert (w == w[:, :1]).all() and (b == b[0]).all()
    # equal incoming weights but random outgoing ones: the units get different gradients
    broken = MLP([16, 32, 32, 5], activation="tanh",
                 init=[("constant", {"value": 0.1}), "xavier_normal", "xavier_normal"],
                 dtype=F64)  # fmt: skip
    d = fastinit.diagnose(broken, X, Y)
    assert not d.flags["symmetric_weights"] and d.symmetric_layers == []


def test_layer_lists_name_runs_of_layers_as_ranges():
    from fastinit.diagnostics import _layers_text

    assert _layers_text(np.arange(1, 50), 60) == "at layers 1-49"  # the rest overflowed to NaN
    assert _layers_text(np.array([0, 1, 3, 5, 6, 7]), 10) == "at layers 0, 1, 3, 5-7"
    assert _layers_text(np.array([4]), 10) == "at layer 4"
    assert _layers_text(np.arange(3, 10), 10) == "from layer 3 on"


@pytest.mark.parametrize("sizes", [[128, 32, 32, 5], [32, 32, 32, 32, 5]])
def test_a_tanh_network_at_the_recommended_init_raises_no_finding(sizes):
    # Glorot & Bengio 2010's xavier init (gain 1) for tanh; PyTorch's gain 5/3 put 21% (a
    # 128-32 layer) or 11% (32-32) of the first layer's standardized-input entries past
    # |tanh| = 0.99: diagnose warned of saturation and recommended that same init again
    n = len(sizes) - 1
    recs = [recommended_init("tanh" if k < n - 1 else "identity", sizes[k], sizes[k + 1])
            for k in range(n)]  # fmt: skip
    assert recs[0]["gain"] == 1.0 and recs[0]["rule"] == "Glorot"
    model = MLP(sizes, activation="tanh", init=[(r["init"], {"gain": r["gain"]}) for r in recs],
                seed=0, dtype=F64)  # fmt: skip
    x = np.random.default_rng(5).standard_normal((200, sizes[0]))
    d = fastinit.diagnose(model, x, Y)
    assert d.warnings == [] and d.saturated[0] < SATURATED / 2, d.warnings


# ----------------------------------------------------------------------------- at the theory
AT_THE_THEORY = [  # each at the init diagnose recommends, with a finding all the same
    ("relu", "he_normal", [16] + [32] * 10 + [5], "dead_units", "dead relu units grow with depth"),
    ("sigmoid", "xavier_normal", [16, 32, 32, 32, 32, 5], "vanishing_gradients", "sigmoid's"),
]


@pytest.mark.parametrize(("activation", "init", "sizes", "flag", "cause"), AT_THE_THEORY)
def test_a_finding_at_the_recommended_init_names_depth_not_the_same_init(
    activation, init, sizes, flag, cause
):
    # diagnose said "the theory recommends kaiming_normal" to a user already at kaiming_normal
    model = MLP(sizes, activation=activation, init=init, seed=0, dtype=F64)
    d = fastinit.diagnose(model, X, Y)
    assert d.flags[flag], d.warnings
    assert not any(w.startswith("the theory recommends") for w in d.warnings), d.warnings
    advice = d.warnings[-1]
    assert advice.startswith("the init already matches the theory"), advice
    assert cause in advice and "fewer layers" in advice and "fastinit.lsuv" in advice, advice
    rec = recommended_init(activation, sizes[1], sizes[2])
    assert f"{activation}: {rec['init']} (gain {rec['gain']:.3g})" in advice
    # 1.5 x the recommended std: the init differs, and it is recommended as before
    acts = [activation] * (len(sizes) - 2) + ["identity"]
    stds = [recommended_init(a, sizes[k], sizes[k + 1])["std"] for k, a in enumerate(acts)]
    off = MLP(sizes, activation=activation, init=[("normal", {"std": 1.5 * s}) for s in stds],
              seed=0, dtype=F64)  # fmt: skip
    d = fastinit.diagnose(off, X, Y)
    assert any(d.flags.values()) and d.warnings[-1].startswith("the theory recommends"), d.warnings


def test_recommended_weights_with_large_biases_name_the_biases():
    # He weights, biases of -20: the weights are right, the biases are the cause
    model = MLP([16, 32, 5], activation="relu", init="he_normal",
                bias_init=[("constant", {"value": -20.0}), "zeros"], dtype=F64)  # fmt: skip
    d = fastinit.diagnose(model, X, Y)
    assert d.flags["dead_units"]
    advice = d.warnings[-1]
    assert advice.startswith("the weights already match the theory"), advice
    assert "the biases are far from 0 at layer 0" in advice, advice
    assert "start them at 0" in advice and "kaiming_normal" in advice, advice


def test_biases_of_a_fraction_of_the_pre_activation_std_are_named():
    # constant biases shift the pre-activations without spreading them: the layer's
    # pre-activation std is the weights' alone, and biases whose root mean square is
    # above VANISHING x that std are named, below it they count as about 0
    sizes = [16] + [32] * 10 + [5]  # dead units at He init (AT_THE_THEORY)
    for value, named in ((-0.5, True), (-0.1, False)):
        bias = [("constant", {"value": value})] + ["zeros"] * 10
        model = MLP(sizes, activation="relu", init="he_normal", bias_init=bias, seed=0,
                    dtype=F64)  # fmt: skip
        std = oracle(model, X, Y)["pre_std"][0]
        assert (abs(value) > VANISHING * std) == named and abs(value) < std / 2
        d = fastinit.diagnose(model, X, Y)
        assert d.flags["dead_units"], d.warnings
        advice = d.warnings[-1]
        if named:
            assert advice.startswith("the weights already match the theory"), advice
            assert "the biases are far from 0 at layer 0" in advice, advice
        else:
            assert advice.startswith("the init already matches the theory"), advice


@pytest.mark.parametrize("errors", [3.5, 4.5])
def test_weights_match_the_recommended_std_within_four_standard_errors(errors):
    # weights of exactly the recommended std s (standardized draws) everywhere but layer 0,
    # whose std, or mean, is `errors` standard errors of N draws of N(0, s^2) away:
    # s / sqrt(2 N) for the std, s / sqrt(N) for the mean; 4 is the bound
    sizes = [16] + [32] * 10 + [5]
    acts = ["relu"] * (len(sizes) - 2) + ["identity"]
    for moment in ("std", "mean"):
        model = MLP(sizes, activation="relu", init="he_normal", seed=0, dtype=F64)
        for k, act in enumerate(acts):
            s = recommended_init(act, sizes[k], sizes[k + 1])["std"]
            w = np.asarray(model.weights[k], np.float64)
            w = (w - w.mean()) / w.std() * s
            if k == 0 and moment == "std":
                w *= 1.0 + errors / math.sqrt(2 * w.size)
            elif k == 0:
                w += errors * s / math.sqrt(w.size)
            model.weights[k] = w
        d = fastinit.diagnose(model, X, Y)
        assert d.flags["dead_units"], d.warnings
        advice = d.warnings[-1]
        if errors < 4:
            assert advice.startswith("the init already matches the theory"), (moment, advice)
        else:
            assert advice.startswith("the theory recommends"), (moment, advice)


# ----------------------------------------------------------------------------- mean_std
@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e160, 1e300, 1e306, 1e-160, 1e-200, 1e-300])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mean_std_is_exact_where_the_squares_or_the_sum_overflow(scale, dtype):
    # squares of 1e160 overflow float64 (std read inf), a sum of 1001 values of 1e306 too
    # (mean inf), though both are representable; squares of 1e-160 and less underflow
    # (std read 0 or a few subnormal ulps: "constant" to lsuv)
    from fastinit.train import mean_std

    if dtype == "float32" and scale > 1e30:
        scale = 1e30  # float32's range; its squares, in float64, never overflow
    if dtype == "float32" and scale < 1e-30:
        scale = 1e-30  # nor underflow
    unit = np.random.default_rng(3).standard_normal(1001) + 0.5
    v = (unit * scale).astype(dtype)
    top = float(np.max(np.abs(v)))
    scaled = v.astype(np.float64) / top
    mean, std = mean_std(v)
    assert mean == pytest.approx(np.mean(scaled) * top, rel=1e-13, abs=0)
    assert std == pytest.approx(np.std(scaled) * top, rel=1e-13, abs=0)
    assert mean_std(v[:1]) == (float(v[0]), 0.0)


def test_mean_std_of_values_that_are_not_finite_is_not_finite():
    from fastinit.train import mean_std

    for v in ([1.0, np.inf], [1e300, -np.inf, 2.0], [np.nan, 1e200], [np.inf, -np.inf]):
        mean, std = mean_std(np.array(v))
        assert not (np.isfinite(mean) and np.isfinite(std)), v


def test_feature_moments_of_values_whose_squares_underflow():
    # deviations below about 1e-154 square to 0: a varying feature read as constant (std 0)
    from fastinit.diagnostics import feature_moments

    x = np.array([[1e-170, 1.0], [-1e-170, 2.0], [3e-170, 4.0]])
    mean, std = feature_moments(x)
    scaled = x[:, 0] * 1e170
    assert std[0] == pytest.approx(scaled.std() * 1e-170, rel=1e-12) and std[0] > 0
    assert mean[0] == pytest.approx(scaled.mean() * 1e-170, rel=1e-12)
    assert (mean[1], std[1]) == (x[:, 1].mean(), x[:, 1].std())  # the other feature as it was


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_feature_moments_refuse_values_that_are_not_finite(bad):
    # an inf gave NaN and NumPy's "invalid value encountered in divide"
    from fastinit.diagnostics import feature_moments

    x = np.ones((3, 2))
    x[1, 0] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"^x: expected finite values"):
            feature_moments(x)


@pytest.mark.parametrize("scale", [3e-151, 5e-152, 7.7e-153])
def test_feature_moments_rescale_only_features_whose_squares_underflow(scale):
    # std 1.5e-154 .. 1e-150: squares still normal numbers, yet the feature was taken again
    # scaled, one ulp away from the unscaled passes
    from fastinit.diagnostics import _feature_moments, feature_moments

    x = np.array([[0.0], [scale], [2 * scale], [0.3 * scale]])
    mean, std = feature_moments(x)
    plain_mean, plain_std, _ = _feature_moments(x)
    assert (mean[0], std[0]) == (plain_mean[0], plain_std[0])


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_feature_moments_refuse_a_feature_that_is_infinite_throughout(bad):
    # a constant column of inf read as mean inf, std 0, without an error
    from fastinit.diagnostics import feature_moments

    with pytest.raises(ValueError, match=r"^x: expected finite values"):
        feature_moments(np.array([[bad, 1.0], [bad, 2.0]]))
