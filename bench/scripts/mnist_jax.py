"""The whole classic MNIST run in one process, JAX: load, He init, 2000 SGD steps.

The same network, optimizer and batch size as ``mnist_fastinit.py``; the data
are read from the files fastinit ships (gzip + NumPy, without importing
fastinit), the loop is one jitted ``lax.scan``.
"""

import gzip
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

DATA = Path(__file__).resolve().parents[2] / "fastinit" / "data"
SIZES = [784, 100, 100, 100, 100, 10]


def idx(name: str, offset: int) -> np.ndarray:
    return np.frombuffer(gzip.decompress((DATA / name).read_bytes()), np.uint8, offset=offset)


x = jnp.asarray(idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 784) / np.float32(255))
y = jnp.asarray(idx("train-labels-idx1-ubyte.gz", 8).astype(np.int32))
keys = jax.random.split(jax.random.PRNGKey(0), len(SIZES) - 1)
params = [
    (jax.random.normal(k, (a, b), jnp.float32) * np.sqrt(2.0 / a), jnp.zeros(b, jnp.float32))
    for k, a, b in zip(keys, SIZES[:-1], SIZES[1:], strict=True)
]


def loss_fn(p, xb, yb):
    h = xb
    for w, b in p[:-1]:
        h = jax.nn.relu(h @ w + b)
    logits = h @ p[-1][0] + p[-1][1]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), yb[:, None], axis=1))


def step(p, key):
    i = jax.random.randint(key, (128,), 0, x.shape[0])
    loss, grads = jax.value_and_grad(loss_fn)(p, x[i], y[i])
    return jax.tree_util.tree_map(lambda a, g: a - 0.01 * g, p, grads), loss


params, losses = jax.jit(lambda p, k: jax.lax.scan(step, p, k))(
    params, jax.random.split(jax.random.PRNGKey(1), 2000)
)
print(f"final loss {float(losses[-1]):.4f}")
