"""NumPy baselines in the style of the classic textbooks, for the benchmarks.

``MultiLayerNet`` follows "Deep Learning from Scratch" (Saito, 2016): layer
objects (``Affine``, ``Relu``, ``SoftmaxWithLoss``) with ``forward`` and
``backward``, parameters in a dict, plain SGD, minibatches drawn with
``np.random.choice``-style sampling with replacement.  It runs in float64 (as
in the book) or float32.  As in the book, ``Affine.backward`` computes ``dx``
for every layer, the first included, whose input gradient nothing uses: one
matrix product per step more than fastinit, PyTorch, JAX or ``gemm_floor``
compute (measured: about 10% of this code's MNIST-bench step in float32, 15% in
float64).

``planar_model`` is the 2-4-1 tanh/sigmoid network of the classic Coursera
"planar data classification" notebook, column-major (``X`` is ``(2, m)``),
full batch, with its cross-entropy cost computed every iteration.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from itertools import pairwise

import numpy as np


# ----------------------------------------------------------------------------- layers
class Affine:
    """``out = x @ W + b``."""

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        self.W, self.b = W, b
        self.x = self.dW = self.db = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.dot(x, self.W) + self.b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx


class Relu:
    """``max(x, 0)`` with the mask kept for the backward pass."""

    def __init__(self) -> None:
        self.mask = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout[self.mask] = 0
        return dout


def softmax(x: np.ndarray) -> np.ndarray:
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


class SoftmaxWithLoss:
    """Softmax and mean cross-entropy for integer labels."""

    def __init__(self) -> None:
        self.y = self.t = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        self.t, self.y = t, softmax(x)
        batch = self.y.shape[0]
        return -np.sum(np.log(self.y[np.arange(batch), t] + 1e-7)) / batch

    def backward(self) -> np.ndarray:
        batch = self.t.shape[0]
        dx = self.y.copy()
        dx[np.arange(batch), self.t] -= 1
        return dx / batch


class MultiLayerNet:
    """Fully connected ReLU network, He initialization, as in the book."""

    def __init__(self, sizes: list[int], dtype: type = np.float64, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.params: dict[str, np.ndarray] = {}
        self.layers: OrderedDict = OrderedDict()
        n = len(sizes) - 1
        for k in range(1, n + 1):
            std = np.sqrt(2.0 / sizes[k - 1])
            self.params[f"W{k}"] = (std * rng.standard_normal((sizes[k - 1], sizes[k]))).astype(
                dtype
            )
            self.params[f"b{k}"] = np.zeros(sizes[k], dtype)
            self.layers[f"Affine{k}"] = Affine(self.params[f"W{k}"], self.params[f"b{k}"])
            if k < n:
                self.layers[f"Relu{k}"] = Relu()
        self.last_layer = SoftmaxWithLoss()

    def loss(self, x: np.ndarray, t: np.ndarray) -> float:
        for layer in self.layers.values():
            x = layer.forward(x)
        return self.last_layer.forward(x, t)

    def gradient(self, x: np.ndarray, t: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        loss = self.loss(x, t)
        dout = self.last_layer.backward()
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        grads = {}
        for key, layer in self.layers.items():
            if key.startswith("Affine"):
                k = key[len("Affine") :]
                grads[f"W{k}"], grads[f"b{k}"] = layer.dW, layer.db
        return loss, grads


def train_sgd(
    net: MultiLayerNet,
    x: np.ndarray,
    t: np.ndarray,
    iterations: int,
    batch_size: int = 128,
    lr: float = 0.01,
    seed: int = 0,
) -> np.ndarray:
    """The book's training loop: sample a batch with replacement, gradient, SGD step."""
    rng = np.random.default_rng(seed)
    losses = np.empty(iterations)
    for i in range(iterations):
        batch_mask = rng.integers(0, x.shape[0], batch_size)
        loss, grads = net.gradient(x[batch_mask], t[batch_mask])
        for key, g in grads.items():
            net.params[key] -= lr * g
        losses[i] = loss
    return losses


def gemm_floor(sizes: list[int], batch: int, dtype: type = np.float32) -> Callable[[int], None]:
    """Only the matrix products of one SGD step, ``steps`` times: a floor, not a trainer.

    The products any dense MLP step must compute, with the same shapes and
    transposes as the step: ``A_{k-1} @ W_k`` (forward), ``A_{k-1}^T @ dZ_k``
    (dW) for every layer, ``dZ_k @ W_k^T`` (dX) for every layer but the first.
    They run back to back on fixed buffers through ``np.dot(..., out=)``
    (NumPy's BLAS, the library fastinit calls), with nothing else: no sampling,
    bias, activation, loss or update.  An estimate of what the products cost in
    the same run, not a strict bound: the 14 Python calls add about 12 us of
    dispatch per step, and on a shared host the load moves between the two
    measurements (fastinit's step measured 0.82-0.97x of it in some runs).
    """
    rng = np.random.default_rng(0)
    a = [rng.random((batch, n), dtype=dtype) for n in sizes]  # activations / dZ per layer
    w = [rng.random((i, o), dtype=dtype) for i, o in pairwise(sizes)]
    dw = [np.empty_like(wk) for wk in w]
    dx = [np.empty_like(ak) for ak in a]

    def run(steps: int) -> None:
        for _ in range(steps):
            for k, wk in enumerate(w):
                np.dot(a[k], wk, out=a[k + 1])
            for k in range(len(w) - 1, -1, -1):
                np.dot(a[k].T, a[k + 1], out=dw[k])
                if k:
                    np.dot(a[k + 1], w[k].T, out=dx[k])

    return run


# ----------------------------------------------------------------------------- planar notebook
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def planar_model(
    X: np.ndarray,
    Y: np.ndarray,
    n_h: int = 4,
    num_iterations: int = 10000,
    learning_rate: float = 1.2,
    seed: int = 2,
) -> tuple[dict, np.ndarray]:
    """``nn_model`` of the planar notebook: X is (2, m), Y is (1, m); returns params, costs."""
    rng = np.random.default_rng(seed)
    n_x, n_y, m = X.shape[0], Y.shape[0], X.shape[1]
    p = {
        "W1": rng.standard_normal((n_h, n_x)) * 0.01,
        "b1": np.zeros((n_h, 1)),
        "W2": rng.standard_normal((n_y, n_h)) * 0.01,
        "b2": np.zeros((n_y, 1)),
    }
    costs = np.empty(num_iterations)
    for i in range(num_iterations):
        Z1 = np.dot(p["W1"], X) + p["b1"]
        A1 = np.tanh(Z1)
        Z2 = np.dot(p["W2"], A1) + p["b2"]
        A2 = _sigmoid(Z2)
        logprobs = np.multiply(np.log(A2), Y) + np.multiply(np.log(1 - A2), 1 - Y)
        costs[i] = -np.sum(logprobs) / m
        dZ2 = A2 - Y
        dW2 = (1 / m) * np.dot(dZ2, A1.T)
        db2 = (1 / m) * np.sum(dZ2, axis=1, keepdims=True)
        dZ1 = np.multiply(np.dot(p["W2"].T, dZ2), 1 - np.power(A1, 2))
        dW1 = (1 / m) * np.dot(dZ1, X.T)
        db1 = (1 / m) * np.sum(dZ1, axis=1, keepdims=True)
        p["W1"] = p["W1"] - learning_rate * dW1
        p["b1"] = p["b1"] - learning_rate * db1
        p["W2"] = p["W2"] - learning_rate * dW2
        p["b2"] = p["b2"] - learning_rate * db2
    return p, costs
