"""Optional peer frameworks for the training benchmarks: PyTorch (CPU eager) and JAX.

Each is imported only if importable; neither is a dependency.  Every runner
trains the same architecture with SGD on minibatches of random rows (sampled
with replacement) and records the loss of every step, like ``fastinit``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable

import numpy as np

Runner = Callable[[int], np.ndarray]  # run(n_steps) -> losses


def available(name: str) -> bool:
    """Whether a module can be imported, without importing it."""
    return importlib.util.find_spec(name) is not None


def torch_mlp(
    x: np.ndarray,
    y: np.ndarray,
    sizes: list[int],
    *,
    lr: float,
    batch: int,
    threads: int | None = None,
    seed: int = 0,
) -> Runner:
    """PyTorch eager: ``nn.Sequential`` of Linear/ReLU, ``CrossEntropyLoss``, ``optim.SGD``."""
    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)
    torch.manual_seed(seed)
    layers: list = []
    for k in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    gen = torch.Generator().manual_seed(seed)

    def run(steps: int) -> np.ndarray:
        record = torch.empty(steps)
        for i in range(steps):
            idx = torch.randint(0, xt.shape[0], (batch,), generator=gen)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            record[i] = loss.detach()
        return record.numpy()

    return run


def _jax_setup(x, y, sizes, seed):
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.PRNGKey(seed), len(sizes))
    params = [
        (jax.random.normal(k, (a, b), jnp.float32) * np.sqrt(2.0 / a), jnp.zeros(b, jnp.float32))
        for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=False)
    ]

    def loss_fn(params, xb, yb):
        h = xb
        for w, b in params[:-1]:
            h = jax.nn.relu(h @ w + b)
        logits = h @ params[-1][0] + params[-1][1]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), yb[:, None], axis=1))

    return jax, jnp, params, loss_fn, jnp.asarray(x), jnp.asarray(y.astype(np.int32))


def jax_mlp(
    x: np.ndarray,
    y: np.ndarray,
    sizes: list[int],
    *,
    lr: float,
    batch: int,
    scan: bool,
    seed: int = 0,
) -> Runner:
    """JAX: a jitted SGD step called from Python, or the whole loop in one ``lax.scan``."""
    jax, jnp, params, loss_fn, xj, yj = _jax_setup(x, y, sizes, seed)
    n = xj.shape[0]

    def step(carry, key):
        p = carry
        idx = jax.random.randint(key, (batch,), 0, n)
        loss, grads = jax.value_and_grad(loss_fn)(p, xj[idx], yj[idx])
        p = jax.tree_util.tree_map(lambda a, g: a - lr * g, p, grads)
        return p, loss

    def keyed_step(p, key):  # the jit step carries its key: no host-side slicing per step
        key, sub = jax.random.split(key)
        p, loss = step(p, sub)
        return p, key, loss

    state = {"params": params, "key": jax.random.PRNGKey(seed + 1)}
    if scan:
        many = jax.jit(lambda p, keys: jax.lax.scan(step, p, keys), donate_argnums=0)
    else:
        one = jax.jit(keyed_step, donate_argnums=0)

    def run(steps: int) -> np.ndarray:
        state["key"], sub = jax.random.split(state["key"])
        if scan:
            state["params"], losses = many(state["params"], jax.random.split(sub, steps))
            return np.asarray(losses)
        losses = []
        for _ in range(steps):  # keys[i] of a device array was an eager dispatch per step
            state["params"], sub, loss = one(state["params"], sub)
            losses.append(loss)
        return np.asarray(jnp.stack(losses))

    return run
