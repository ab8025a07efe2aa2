"""Plain NumPy reference implementation of the MLP, written from PyTorch's formulas.

Independent of fastinit's kernels: float64 math with ``scipy.special`` where a
closed form is awkward.  Used by the tests to check forward, backward, losses
and one step of every optimizer.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_softmax, ndtr, softmax

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def activation(name: str, z: np.ndarray, **p: float) -> tuple[np.ndarray, np.ndarray]:
    """Value and derivative of a PyTorch activation (float64)."""
    z = np.asarray(z, dtype=np.float64)
    if name == "identity":
        return z.copy(), np.ones_like(z)
    if name == "sigmoid":
        s = expit(z)
        return s, s * (1 - s)
    if name == "tanh":
        t = np.tanh(z)
        return t, 1 - t * t
    if name == "relu":
        return np.where(z > 0, z, 0.0), (z > 0).astype(np.float64)
    if name == "leaky_relu":
        a = p.get("negative_slope", 0.01)
        return np.where(z > 0, z, a * z), np.where(z > 0, 1.0, a)
    if name in ("elu", "selu"):
        alpha = SELU_ALPHA if name == "selu" else p.get("alpha", 1.0)
        scale = SELU_SCALE if name == "selu" else 1.0
        neg = np.minimum(z, 0)
        return (
            scale * np.where(z > 0, z, alpha * np.expm1(neg)),
            scale * np.where(z > 0, 1.0, alpha * np.exp(neg)),
        )
    if name == "gelu":
        cdf = ndtr(z)  # Phi, to full relative precision in the tail
        return z * cdf, cdf + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
    if name == "gelu_tanh":
        k, c = np.sqrt(2 / np.pi), 0.044715
        t = np.tanh(k * (z + c * z**3))
        return 0.5 * z * (1 + t), 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * k * (1 + 3 * c * z * z)
    if name == "softplus":
        beta, threshold = p.get("beta", 1.0), p.get("threshold", 20.0)
        bz = beta * z
        value = np.where(bz > threshold, z, np.logaddexp(0, bz) / beta)
        return value, np.where(bz > threshold, 1.0, expit(bz))
    if name in ("silu", "swish"):
        s = expit(z)
        return z * s, s * (1 + z * (1 - s))
    raise ValueError(name)


def loss(name: str, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Loss and gradient w.r.t. the logits ``z`` (m, C), PyTorch reductions (mean)."""
    z = np.asarray(z, dtype=np.float64)
    m = z.shape[0]
    if name == "softmax_cross_entropy":
        labels = y.argmax(axis=1) if np.ndim(y) == 2 else np.asarray(y)
        onehot = np.eye(z.shape[1])[labels]
        return -np.sum(log_softmax(z, axis=1) * onehot) / m, (softmax(z, axis=1) - onehot) / m
    t = np.asarray(y, dtype=np.float64).reshape(z.shape)
    if name == "sigmoid_cross_entropy":
        value = np.sum(np.logaddexp(0, z) - z * t) / m
        return value, (expit(z) - t) / m
    if name == "mse":
        return np.mean((z - t) ** 2), 2 * (z - t) / z.size
    raise ValueError(name)


def forward(weights, biases, acts, x):
    """Logits and the per-layer cache ``(inputs, derivatives)``."""
    a = np.asarray(x, dtype=np.float64)
    inputs, derivs = [], []
    for k, (w, b) in enumerate(zip(weights, biases, strict=True)):
        inputs.append(a)
        name, params = acts[k] if k < len(acts) else ("identity", {})
        a, d = activation(name, a @ np.asarray(w, np.float64) + b, **params)
        derivs.append(d)
    return a, (inputs, derivs)


def loss_and_grads(weights, biases, acts, x, y, loss_name):
    """Full-batch loss and ``[(dW, db), ...]`` by explicit backpropagation."""
    logits, (inputs, derivs) = forward(weights, biases, acts, x)
    value, g = loss(loss_name, logits, y)
    grads = []
    for k in range(len(weights) - 1, -1, -1):
        dz = g * derivs[k]
        grads.append((inputs[k].T @ dz, dz.sum(axis=0)))
        g = dz @ np.asarray(weights[k], np.float64).T
    return value, grads[::-1]


def optimizer_step(name, p, g, state, step, **h):
    """One PyTorch-formula step on float64 arrays; ``state`` is a dict updated in place."""
    lr, wd = h["lr"], h.get("weight_decay", 0.0)
    g = g + wd * p
    if name == "sgd":
        return p - lr * g
    if name in ("momentum", "nesterov"):
        mu = h.get("momentum", 0.9)
        v = mu * state.get("v", 0.0) + g
        state["v"] = v
        return p - lr * (g + mu * v if name == "nesterov" else v)
    if name == "adagrad":
        s = state.get("s", 0.0) + g * g
        state["s"] = s
        return p - lr * g / (np.sqrt(s) + h.get("eps", 1e-10))
    if name == "rmsprop":
        decay = h.get("decay", 0.99)
        s = decay * state.get("s", 0.0) + (1 - decay) * g * g
        state["s"] = s
        return p - lr * g / (np.sqrt(s) + h.get("eps", 1e-8))
    if name == "adam":
        b1, b2, eps = h.get("beta1", 0.9), h.get("beta2", 0.999), h.get("eps", 1e-8)
        m = b1 * state.get("m", 0.0) + (1 - b1) * g
        v = b2 * state.get("v", 0.0) + (1 - b2) * g * g
        state["m"], state["v"] = m, v
        m_hat, v_hat = m / (1 - b1**step), v / (1 - b2**step)
        return p - lr * m_hat / (np.sqrt(v_hat) + eps)
    raise ValueError(name)
