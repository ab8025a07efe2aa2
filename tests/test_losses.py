"""Losses from logits: values, gradients, stability, label formats and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from fastinit import losses
from tests import reference as ref

RNG = np.random.default_rng(7)
Z = RNG.normal(size=(9, 4)) * 3
LABELS = RNG.integers(0, 4, size=9)
BINARY = RNG.integers(0, 2, size=9)
TARGETS = RNG.normal(size=(9, 4))


def _cases():
    yield "softmax_cross_entropy", Z, LABELS
    yield "sigmoid_cross_entropy", Z[:, :1], BINARY
    yield "mse", Z, TARGETS


@pytest.mark.parametrize("name, z, y", list(_cases()))
def test_value_and_grad_match_reference(name, z, y):
    value, grad = losses.value_and_grad(name, z, y)
    want_value, want_grad = ref.loss(name, z, y)
    assert value == pytest.approx(want_value, rel=1e-13)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("name, z, y", list(_cases()))
def test_float32_logits_give_float32_gradients(name, z, y):
    value, grad = losses.value_and_grad(name, z.astype(np.float32), y)
    assert grad.dtype == np.float32
    want_value, want_grad = ref.loss(name, z.astype(np.float32), y)
    assert value == pytest.approx(want_value, rel=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("scale", [1e3, 1e6, 1e30])
def test_cross_entropies_are_stable_for_huge_logits(scale):
    z = np.array([[1.0, -1.0, 0.5], [-1.0, 1.0, 0.0]]) * scale
    value, grad = losses.value_and_grad("softmax_cross_entropy", z, [1, 1])
    assert np.isfinite(value) and np.isfinite(grad).all()
    assert value == pytest.approx(scale, rel=1e-12)  # row 0 costs 2 * scale, row 1 nothing
    value, grad = losses.value_and_grad("sigmoid_cross_entropy", z[:, :1], [0, 1])
    assert np.isfinite(value) and np.isfinite(grad).all()
    assert value == pytest.approx(scale, rel=1e-12)  # both rows wrong by scale, mean = scale


def test_one_hot_labels_equal_integer_labels():
    onehot = np.eye(4)[LABELS]
    a = losses.value_and_grad("softmax_cross_entropy", Z, LABELS)
    b = losses.value_and_grad("softmax_cross_entropy", Z, onehot)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])


def test_mse_is_the_mean_over_all_elements_like_pytorch():
    value, _ = losses.value_and_grad("mse", Z, TARGETS)
    assert value == pytest.approx(np.mean((Z - TARGETS) ** 2), rel=1e-13)


def test_agrees_with_pytorch():
    torch = pytest.importorskip("torch")
    t = torch.tensor(Z, requires_grad=True)
    torch.nn.functional.cross_entropy(t, torch.tensor(LABELS)).backward()
    value, grad = losses.value_and_grad("softmax_cross_entropy", Z, LABELS)
    want = torch.nn.functional.cross_entropy(torch.tensor(Z), torch.tensor(LABELS)).item()
    assert value == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize(
    "name, z, y, match",
    [
        ("hinge", Z, LABELS, "loss"),
        ("softmax_cross_entropy", Z, np.array([0, 1, 2, 3, 4, 0, 0, 0, 0]), "y"),
        ("softmax_cross_entropy", Z, np.array([0, 1, -1, 3, 0, 0, 0, 0, 0]), "y"),
        ("softmax_cross_entropy", Z, LABELS[:5], "y"),
        ("softmax_cross_entropy", Z, LABELS + 0.5, "y"),
        ("softmax_cross_entropy", Z, np.ones((9, 4)), "y"),
        ("softmax_cross_entropy", Z[:, :1], BINARY, "loss"),
        ("sigmoid_cross_entropy", Z, BINARY, "loss"),
        ("sigmoid_cross_entropy", Z[:, :1], BINARY * 2, "y"),
        ("mse", Z, TARGETS[:, :2], "y"),
        ("mse", Z, np.full((9, 4), np.nan), "y"),
        ("mse", np.full((9, 4), np.inf), TARGETS, "logits"),
        ("softmax_cross_entropy", Z[:0], LABELS[:0], "logits"),  # was a NaN loss
        ("sigmoid_cross_entropy", Z[:0, :1], BINARY[:0], "logits"),
        ("mse", Z[:, :0], TARGETS[:, :0], "logits"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(name, z, y, match):
    with pytest.raises(ValueError, match=match):
        losses.value_and_grad(name, z, y)


def test_a_column_of_class_labels_is_refused_saying_which_shapes_are_taken():
    # (n, 1) labels (a column, as from a DataFrame) are neither (n,) labels nor one-hot rows
    with pytest.raises(ValueError, match=r"^y: expected integer labels of shape \(9,\) or one-hot"
                       r" rows of shape \(9, 4\), got shape \(9, 1\)"):  # fmt: skip
        losses.value_and_grad("softmax_cross_entropy", Z, LABELS[:, None])


@pytest.mark.parametrize(
    "rows",
    [[[0, 1], [1, 1]], [[0, 1], [0, 0]], [[1, 0], [0, 2]], [[0.5, 0.5], [1, 0]]],
    ids=["two-ones", "no-one", "a-two", "halves"],
)
def test_two_d_labels_must_be_one_hot_in_every_row(rows):
    # a check of "some row sums to 1" took [[0, 1], [1, 1]] as classes [1, 0] (mutation audit)
    z = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"^y: 2-D labels must be one-hot rows"):
        losses.value_and_grad("softmax_cross_entropy", z, np.array(rows))


@pytest.mark.parametrize("dtype", [">f4", ">f8"])
def test_big_endian_logits_are_taken_as_their_values(dtype):
    # refused as "expected a 2-D float32/float64 array, got >f4", where every MLP entry
    # point takes big-endian X, y and weights
    z = np.random.default_rng(0).standard_normal((4, 3)).astype(np.dtype(dtype).newbyteorder("="))
    y = np.array([0, 1, 2, 1])
    value, grad = losses.value_and_grad("softmax_cross_entropy", z.astype(dtype), y)
    want_value, want_grad = losses.value_and_grad("softmax_cross_entropy", z, y)
    assert value == want_value and grad.dtype == z.dtype
    np.testing.assert_array_equal(grad, want_grad)


def test_prepare_targets_resolves_the_loss_and_checks_its_sizes():
    # a loss name gave AttributeError "'str' object has no attribute 'code'"
    from fastinit.losses import prepare_targets

    y_int, _ = prepare_targets("softmax_cross_entropy", [0, 1], 2, 2, np.dtype("float32"))
    assert y_int.tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"^n_out: "):
        prepare_targets("mse", [[0.0]], 1, -1, np.dtype("float32"))
