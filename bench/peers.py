"""Optional peer frameworks for the training benchmarks: PyTorch (CPU eager) and JAX (CPU).

Each is imported only if importable; neither is a dependency.  Every runner
trains the same architecture with SGD on minibatches of random rows (sampled
with replacement, drawn and gathered inside the timed loop) and records the loss
of every step, like ``fastinit``, on as many threads as fastinit's BLAS
(``fastinit._system.available_cores``; XLA sizes its pool the same way).  The step functions
(:func:`torch_step`, :func:`jax_step`) are what the runners call;
``tests/test_bench_peers.py`` checks that 3 of their steps from fastinit's
weights on fastinit's batches give fastinit's losses and weights, and that each
runner, from its own He-normal init, lowers the loss about as far as fastinit's
in the same steps, carrying its parameters from one call (one timed round) to the next.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np

from fastinit._system import available_cores

Runner = Callable[[int], np.ndarray]  # run(n_steps) -> losses


def available(name: str) -> bool:
    """Whether a module can be imported, without importing it."""
    return importlib.util.find_spec(name) is not None


def torch_step(sizes: list[int], *, lr: float, weights=None, seed: int = 0):
    """PyTorch eager: ``nn.Sequential`` of Linear/ReLU, ``CrossEntropyLoss``, ``optim.SGD``.

    Returns ``(model, step)``: ``step(xb, yb)`` takes one SGD step on a batch of
    tensors and returns the loss tensor.  ``weights``: optional ``[(W, b), ...]``
    with ``W`` as ``(fan_in, fan_out)`` (fastinit's layout), else He-normal
    weights and zero biases, the init of fastinit's, the NumPy and the JAX runs
    (PyTorch's default for ``nn.Linear``, uniform with a third of He's variance
    and non-zero biases, left the benchmark's 5-layer net at a loss of 2.30 over
    300 steps at lr 0.01 while the others fell: a peer not seen to train).
    """
    import torch

    torch.manual_seed(seed)
    layers: list = []
    for k in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        if weights is None:
            for lin in linears:  # He normal: std sqrt(2 / fan_in)
                torch.nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
                torch.nn.init.zeros_(lin.bias)
        else:
            for lin, (w, b) in zip(linears, weights, strict=True):
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(np.asarray(w).T)))
                lin.bias.copy_(torch.from_numpy(np.asarray(b)))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    return model, step


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
    """:func:`torch_step` on batches of ``batch`` rows drawn with replacement.

    ``threads``: PyTorch's intra-op threads, by default ``available_cores()``
    (the count NumPy's OpenBLAS runs fastinit's products on).
    """
    import torch

    torch.set_num_threads(threads or available_cores())
    _, step = torch_step(sizes, lr=lr, seed=seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    gen = torch.Generator().manual_seed(seed)

    def run(steps: int) -> np.ndarray:
        record = torch.empty(steps)
        for i in range(steps):
            idx = torch.randint(0, xt.shape[0], (batch,), generator=gen)
            record[i] = step(xt[idx], yt[idx]).detach()
        return record.numpy()

    return run


def _jax_cpu():
    """JAX's first CPU device: the peers run there, also where JAX would pick a GPU.

    The runners' arrays are committed to it (``jax.device_put``), so that every
    jitted step runs on the CPU; on a GPU host JAX's default device was the GPU,
    whose TF32 products missed fastinit's float32 losses by 5e-5 (seen on an H100).
    """
    import jax

    return jax.devices("cpu")[0]


def jax_step(sizes: list[int], *, lr: float, weights=None, seed: int = 0):
    """JAX: the SGD step of the MLP, to be traced into ``jax.jit`` or ``lax.scan``.

    Returns ``(params, update)``: ``update(params, xb, yb) -> (params, loss)``,
    softmax cross-entropy from the logits (mean over the batch), plain SGD.
    ``weights``: optional ``[(W, b), ...]`` with ``W`` as ``(fan_in, fan_out)``,
    else He-normal weights and zero biases.
    """
    import jax
    import jax.numpy as jnp

    if weights is None:
        keys = jax.random.split(jax.random.PRNGKey(seed), len(sizes))
        normal = jax.random.normal
        params = [
            (normal(k, (a, b), jnp.float32) * np.sqrt(2.0 / a), jnp.zeros(b, jnp.float32))
            for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=False)
        ]
    else:
        params = [(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)) for w, b in weights]
    params = jax.device_put(params, _jax_cpu())  # committed: jit runs the step there

    def loss_fn(params, xb, yb):
        h = xb
        for w, b in params[:-1]:
            h = jax.nn.relu(h @ w + b)
        logits = h @ params[-1][0] + params[-1][1]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), yb[:, None], axis=1))

    def update(p, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(p, xb, yb)
        return jax.tree_util.tree_map(lambda a, g: a - lr * g, p, grads), loss

    return params, update


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
    """JAX: a jitted SGD step called from Python, or the whole loop in one ``lax.scan``.

    The data are an argument of the jitted function, as JAX code passes them:
    closed over, they were compiled into it as a constant (2 s more to compile
    the MNIST scan, which a fresh process pays; the step ran as fast).
    """
    import jax
    import jax.numpy as jnp

    params, update = jax_step(sizes, lr=lr, seed=seed)
    xj, yj = jax.device_put((x, y.astype(np.int32)), _jax_cpu())
    n = xj.shape[0]

    def step(p, key, xa, ya):
        idx = jax.random.randint(key, (batch,), 0, n)
        return update(p, xa[idx], ya[idx])

    def keyed_step(p, key, xa, ya):  # the jit step carries its key: no host-side slicing
        key, sub = jax.random.split(key)
        p, loss = step(p, sub, xa, ya)
        return p, key, loss

    def loop(p, keys, xa, ya):
        return jax.lax.scan(lambda q, key: step(q, key, xa, ya), p, keys)

    state = {"params": params, "key": jax.device_put(jax.random.PRNGKey(seed + 1), _jax_cpu())}
    if scan:
        many = jax.jit(loop, donate_argnums=0)
    else:
        one = jax.jit(keyed_step, donate_argnums=0)

    def run(steps: int) -> np.ndarray:
        state["key"], sub = jax.random.split(state["key"])
        if scan:
            keys = jax.random.split(sub, steps)
            state["params"], losses = many(state["params"], keys, xj, yj)
        else:
            losses = []
            for _ in range(steps):  # keys[i] of a device array was an eager dispatch per step
                state["params"], sub, loss = one(state["params"], sub, xj, yj)
                losses.append(loss)
            losses = jnp.stack(losses)
        # async dispatch: the last update is done too before the timer stops
        jax.block_until_ready(state["params"])
        return np.asarray(losses)

    return run
