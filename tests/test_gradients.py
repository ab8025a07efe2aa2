"""``loss_and_grads`` against central finite differences and the NumPy reference (float64)."""

from __future__ import annotations

import numpy as np
import pytest

from fastinit.model import MLP
from tests import reference as ref
from tests.test_activations import NAMES as ACTIVATIONS

RNG = np.random.default_rng(3)
X = RNG.normal(size=(6, 3))
LABELS = np.array([0, 1, 2, 1, 0, 2])
TARGETS = {
    "softmax_cross_entropy": (3, LABELS),
    "sigmoid_cross_entropy": (1, np.array([0, 1, 1, 0, 1, 0])),
    "mse": (3, RNG.normal(size=(6, 3))),
}


def _model(activation: str, n_out: int) -> MLP:
    init = ("normal", {"std": 0.8})
    return MLP(
        [3, 5, 4, n_out], activation=activation, init=init, bias_init=init, seed=11, dtype="float64"
    )


def _numerical_grads(model: MLP, loss: str, y: np.ndarray, h: float = 1e-6) -> list:
    grads = []
    for arrays in (model.weights, model.biases):
        for a in arrays:  # live views: perturb in place
            g = np.empty_like(a)
            for i in np.ndindex(a.shape):
                keep = a[i]
                a[i] = keep + h
                up = model.loss_and_grads(X, y, loss=loss)[0]
                a[i] = keep - h
                down = model.loss_and_grads(X, y, loss=loss)[0]
                a[i] = keep
                g[i] = (up - down) / (2 * h)
            grads.append(g)
    n = len(grads) // 2
    return list(zip(grads[:n], grads[n:], strict=True))


def _check(model: MLP, loss: str, y: np.ndarray) -> None:
    value, grads = model.loss_and_grads(X, y, loss=loss)
    numeric = _numerical_grads(model, loss, y)
    for (dw, db), (nw, nb) in zip(grads, numeric, strict=True):
        assert dw.dtype == np.float64
        np.testing.assert_allclose(dw, nw, rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(db, nb, rtol=1e-5, atol=1e-8)
    acts = [(a.name, a.params) for a in model.activations[:-1]]
    want_value, want = ref.loss_and_grads(list(model.weights), list(model.biases), acts, X, y, loss)
    assert value == pytest.approx(want_value, rel=1e-12)
    for (dw, db), (rw, rb) in zip(grads, want, strict=True):
        np.testing.assert_allclose(dw, rw, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(db, rb, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation(activation):
    _check(_model(activation, 3), "softmax_cross_entropy", LABELS)


@pytest.mark.parametrize("loss", list(TARGETS))
def test_every_loss(loss):
    n_out, y = TARGETS[loss]
    _check(_model("tanh", n_out), loss, y)


def test_mixed_activations_per_layer():
    model = MLP(
        [3, 5, 4, 3],
        activation=["elu", ("leaky_relu", {"negative_slope": 0.3})],
        init=("normal", {"std": 0.8}),
        seed=2,
        dtype="float64",
    )
    _check(model, "softmax_cross_entropy", LABELS)


def test_wide_layers_take_the_blas_path_and_agree():
    x = RNG.normal(size=(64, 40))
    y = RNG.integers(0, 10, size=64)
    model = MLP([40, 48, 10], activation="relu", seed=5, dtype="float64")
    value, grads = model.loss_and_grads(x, y)
    acts = [("relu", {})]
    want_value, want = ref.loss_and_grads(
        list(model.weights), list(model.biases), acts, x, y, "softmax_cross_entropy"
    )
    assert value == pytest.approx(want_value, rel=1e-12)
    for (dw, db), (rw, rb) in zip(grads, want, strict=True):
        np.testing.assert_allclose(dw, rw, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(db, rb, rtol=1e-10, atol=1e-13)


def test_one_row_of_a_transposed_column_takes_the_blas_path_and_agrees():
    # x.T of a (40, 1) column is C-contiguous with strides (8, 8): used in place, its
    # row stride went to BLAS as a leading dimension of 1 < 40, which refused the
    # product ("parameter number 10 had an illegal value"): loss and gradients from
    # stale work memory, silently
    x = RNG.normal(size=(40, 1)).T
    assert x.flags.c_contiguous and x.strides == (8, 8)
    y = np.array([3])
    model = MLP([40, 48, 10], activation="relu", seed=5, dtype="float64")
    value, grads = model.loss_and_grads(x, y)
    want_value, want = ref.loss_and_grads(
        list(model.weights), list(model.biases), [("relu", {})], x, y, "softmax_cross_entropy"
    )
    assert value == pytest.approx(want_value, rel=1e-12)
    for (dw, db), (rw, rb) in zip(grads, want, strict=True):
        np.testing.assert_allclose(dw, rw, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(db, rb, rtol=1e-10, atol=1e-13)
