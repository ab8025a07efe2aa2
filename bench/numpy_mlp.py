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

The book's loop (``train_neuralnet.py``) runs a second forward pass after each
update to record the loss, and its ``MultiLayerNet`` adds weight-decay terms
even at ``weight_decay_lambda=0``; neither is here (``train_sgd`` records the
loss of the step's own forward pass, like fastinit, PyTorch and JAX), so this
baseline does less than the book's code, not more.

``planar_model`` is ``nn_model`` of the classic Coursera "planar data
classification" notebook, built from the notebook's own functions
(``forward_propagation``, ``compute_cost``, ``backward_propagation``,
``update_parameters``): 2-4-1 tanh/sigmoid, column-major (``X`` is ``(2, m)``),
full batch, its cross-entropy cost computed every iteration, on the data as
the notebook holds them (:func:`planar_data`).
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
        losses[i] = sgd_step(net, x[batch_mask], t[batch_mask], lr)
    return losses


def sgd_step(net: MultiLayerNet, x_batch: np.ndarray, t_batch: np.ndarray, lr: float) -> float:
    """One step of the book's loop on one batch: gradient, then ``params -= lr * grad``."""
    loss, grads = net.gradient(x_batch, t_batch)
    for key, g in grads.items():
        net.params[key] -= lr * g
    return loss


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
# The notebook's functions as published (the 2017-2020 versions of the exercise;
# later ones also ``copy.deepcopy`` each parameter in ``update_parameters``, which
# costs more): parameters, cache and gradients in dicts, one function per part,
# the asserts the notebook keeps in its loop.  Inlining them into one loop (as this
# module did before) skips the notebook's calls and dict packing: its loop was
# about 10% faster than the notebook's, which flattered the baseline.
def sigmoid(x: np.ndarray) -> np.ndarray:
    """``planar_utils.sigmoid``."""
    return 1 / (1 + np.exp(-x))


def layer_sizes(X: np.ndarray, Y: np.ndarray) -> tuple[int, int, int]:
    n_x = X.shape[0]  # size of input layer
    n_h = 4
    n_y = Y.shape[0]  # size of output layer
    return (n_x, n_h, n_y)


def initialize_parameters(n_x: int, n_h: int, n_y: int, seed: int = 2) -> dict:
    """``np.random.seed(2)`` then ``randn``, from a local ``RandomState(2)`` (same draws)."""
    rng = np.random.RandomState(seed)
    W1 = rng.randn(n_h, n_x) * 0.01
    b1 = np.zeros((n_h, 1))
    W2 = rng.randn(n_y, n_h) * 0.01
    b2 = np.zeros((n_y, 1))
    assert W1.shape == (n_h, n_x)
    assert b1.shape == (n_h, 1)
    assert W2.shape == (n_y, n_h)
    assert b2.shape == (n_y, 1)
    parameters = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}
    return parameters


def forward_propagation(X: np.ndarray, parameters: dict) -> tuple[np.ndarray, dict]:
    W1 = parameters["W1"]
    b1 = parameters["b1"]
    W2 = parameters["W2"]
    b2 = parameters["b2"]
    Z1 = np.dot(W1, X) + b1
    A1 = np.tanh(Z1)
    Z2 = np.dot(W2, A1) + b2
    A2 = sigmoid(Z2)
    assert A2.shape == (1, X.shape[1])
    cache = {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2}
    return A2, cache


def compute_cost(A2: np.ndarray, Y: np.ndarray, parameters: dict) -> float:
    m = Y.shape[1]  # number of examples
    logprobs = np.multiply(np.log(A2), Y) + np.multiply(np.log(1 - A2), 1 - Y)
    cost = -np.sum(logprobs) / m
    cost = float(np.squeeze(cost))  # makes sure cost is the dimension we expect
    assert isinstance(cost, float)
    return cost


def backward_propagation(parameters: dict, cache: dict, X: np.ndarray, Y: np.ndarray) -> dict:
    m = X.shape[1]
    W1 = parameters["W1"]  # noqa: F841  (retrieved, unused, as in the notebook)
    W2 = parameters["W2"]
    A1 = cache["A1"]
    A2 = cache["A2"]
    dZ2 = A2 - Y
    dW2 = (1 / m) * np.dot(dZ2, A1.T)
    db2 = (1 / m) * np.sum(dZ2, axis=1, keepdims=True)
    dZ1 = np.multiply(np.dot(W2.T, dZ2), 1 - np.power(A1, 2))
    dW1 = (1 / m) * np.dot(dZ1, X.T)
    db1 = (1 / m) * np.sum(dZ1, axis=1, keepdims=True)
    grads = {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2}
    return grads


def update_parameters(parameters: dict, grads: dict, learning_rate: float = 1.2) -> dict:
    W1 = parameters["W1"]
    b1 = parameters["b1"]
    W2 = parameters["W2"]
    b2 = parameters["b2"]
    dW1 = grads["dW1"]
    db1 = grads["db1"]
    dW2 = grads["dW2"]
    db2 = grads["db2"]
    W1 = W1 - learning_rate * dW1
    b1 = b1 - learning_rate * db1
    W2 = W2 - learning_rate * dW2
    b2 = b2 - learning_rate * db2
    parameters = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}
    return parameters


def planar_data(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(X, Y)`` as ``load_planar_dataset`` returns them, from ``datasets.planar()``'s ``(x, y)``.

    ``X = X.T`` of a C-ordered ``(m, 2)`` float64 array (a transposed view) and
    ``Y`` uint8 of shape ``(1, m)``: the notebook's cost and backward pass mix
    float64 with those uint8 labels every iteration.
    """
    return np.asarray(x, np.float64).T, np.asarray(y, np.uint8)[None, :]


def planar_model(
    X: np.ndarray,
    Y: np.ndarray,
    n_h: int = 4,
    num_iterations: int = 10000,
    learning_rate: float = 1.2,
    seed: int = 2,
    parameters: dict | None = None,
) -> tuple[dict, np.ndarray]:
    """``nn_model`` of the planar notebook: X is (2, m), Y is (1, m); returns params, costs.

    The notebook's loop (it prints the cost every 1000 iterations if asked; this
    one keeps every cost, which the benchmark checks).  ``parameters``: start
    from these instead of ``initialize_parameters`` (for the agreement checks).
    """
    n_x = layer_sizes(X, Y)[0]
    n_y = layer_sizes(X, Y)[2]
    if parameters is None:
        parameters = initialize_parameters(n_x, n_h, n_y, seed)
    costs = np.empty(num_iterations)
    for i in range(0, num_iterations):
        A2, cache = forward_propagation(X, parameters)
        cost = compute_cost(A2, Y, parameters)
        grads = backward_propagation(parameters, cache, X, Y)
        parameters = update_parameters(parameters, grads, learning_rate)
        costs[i] = cost
    return parameters, costs
