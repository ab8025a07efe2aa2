"""The training benchmarks' peers do fastinit's work: same step, same data, same threads.

``bench/test_bench_train.py`` judges fastinit by ratios against PyTorch, JAX and
textbook NumPy code timed in the same run; a ratio means something only if every
peer computes the same step.  Here each peer's step function (the one its
benchmark runner calls) takes 3 SGD steps from fastinit's initial weights on the
batches fastinit draws, and its losses and weight updates must match fastinit's
to float32 rounding; each benchmarked runner (the loop around the step that the
benchmark times) must lower the loss about as far as fastinit's runner on the same
data.  The planar notebook baseline must be the notebook's code,
and fastinit's planar run the same computation.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from bench import numpy_mlp, peers
from bench.test_bench_train import (
    MNIST,
    MNIST_FLOPS,
    MNIST_NUMPY_FLOPS,
    WIDE,
    _fastinit,
    _numpy,
    step_flops,
)
from fastinit import datasets, optim, train
from fastinit._system import available_cores
from fastinit.model import MLP
from tests import notebook_planar  # the tests' oracle of the notebook

STEPS, BATCH, LR = 3, 128, 0.01


@pytest.fixture(scope="module")
def mnist_reference():
    """fastinit's 3 steps, as the benchmark runs them, on 1000 random MNIST-shaped rows."""
    rng = np.random.default_rng(0)
    x, y = rng.random((1000, 784), dtype=np.float32), rng.integers(0, 10, 1000)
    model = MLP(MNIST, activation="relu", init="he_normal", seed=0)
    w0 = [(np.array(w), np.array(b)) for w, b in zip(model.weights, model.biases, strict=True)]
    losses = model.fit(
        x, y, optimizer=optim.SGD(LR), batch_size=BATCH, iterations=STEPS,
        sampling="replacement", progress=False,
    ).loss  # fmt: skip
    w1 = [(np.array(w), np.array(b)) for w, b in zip(model.weights, model.biases, strict=True)]
    rows = [train.batch_rows(len(x), BATCH, t, seed=0) for t in range(STEPS)]
    return x, y, rows, w0, losses, w1


def _same_work(name, losses, weights, mnist_reference, loss_rtol=2e-6):
    """Losses equal to float32 rounding; every update equal to 1e-4 of its size."""
    _, _, _, w0, ref_losses, ref_w = mnist_reference
    np.testing.assert_allclose(np.asarray(losses, np.float64), ref_losses, rtol=loss_rtol,
                               err_msg=name)  # fmt: skip
    for k, ((w, b), (rw, rb), (w_0, b_0)) in enumerate(zip(weights, ref_w, w0, strict=True)):
        for got, ref, start, what in ((w, rw, w_0, "W"), (b, rb, b_0, "b")):
            got = np.asarray(got, np.float64)
            assert got.shape == ref.shape, f"{name}: {what}{k + 1} {got.shape} != {ref.shape}"
            step, ref_step = got - start, ref.astype(np.float64) - start
            scale = np.abs(ref_step).max()
            assert scale > 0, f"{name}: {what}{k + 1} did not move"
            assert np.abs(step - ref_step).max() <= 1e-4 * scale, f"{name}: {what}{k + 1} update"


def test_torch_step_is_fastinits(mnist_reference):
    torch = pytest.importorskip("torch")
    x, y, rows, w0, _, _ = mnist_reference
    model, step = peers.torch_step(MNIST, lr=LR, weights=w0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    losses = [step(xt[torch.from_numpy(r)], yt[torch.from_numpy(r)]).item() for r in rows]
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    weights = [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in linears]
    _same_work("torch", losses, weights, mnist_reference)


def test_jax_step_is_fastinits(mnist_reference):
    jax = pytest.importorskip("jax")
    x, y, rows, w0, _, _ = mnist_reference
    params, update = peers.jax_step(MNIST, lr=LR, weights=w0)
    update = jax.jit(update)
    losses = []
    for r in rows:
        params, loss = update(params, x[r], y[r].astype(np.int32))
        losses.append(float(loss))
    assert all(a.dtype == np.float32 for layer in params for a in layer)
    _same_work("jax", losses, params, mnist_reference)


def test_jax_peers_run_on_the_cpu_where_jax_has_a_gpu():
    # the CPU benchmark's peer: on an H100 host JAX put the step on the GPU (TF32 products),
    # and the step test above missed fastinit's losses by 5e-5
    jax = pytest.importorskip("jax")
    params, update = peers.jax_step([4, 3, 2], lr=LR)
    placed = jax.jit(update)(params, np.ones((2, 4), np.float32), np.zeros(2, np.int32))
    for a in jax.tree_util.tree_leaves((params, placed)):
        assert {d.platform for d in a.devices()} == {"cpu"}, a.devices()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_step_is_fastinits(mnist_reference, dtype):
    x, y, rows, w0, _, _ = mnist_reference
    net = numpy_mlp.MultiLayerNet(MNIST, dtype=dtype)
    for k, (w, b) in enumerate(w0, 1):  # in place: the Affine layers hold these arrays
        net.params[f"W{k}"][...] = w
        net.params[f"b{k}"][...] = b
    xd = x.astype(dtype)
    losses = [numpy_mlp.sgd_step(net, xd[r], y[r], LR) for r in rows]
    assert all(p.dtype == dtype for p in net.params.values())
    weights = [(net.params[f"W{k}"], net.params[f"b{k}"]) for k in range(1, len(MNIST))]
    # the book adds 1e-7 inside the log: about 4e-7 of a loss near 2.4
    _same_work(f"numpy_{np.dtype(dtype).name}", losses, weights, mnist_reference, loss_rtol=1e-6)


@pytest.mark.parametrize("peer", ["torch", "jax_jit_step", "jax_scan"])
def test_peer_runners_train(peer):
    """The benchmarked runners (on a small net: XLA compiles in seconds): a finite loss a step."""
    pytest.importorskip(peer.split("_")[0])
    rng = np.random.default_rng(1)
    x, y = rng.random((100, 16), dtype=np.float32), rng.integers(0, 3, 100)
    if peer == "torch":
        run = peers.torch_mlp(x, y, [16, 8, 3], lr=LR, batch=8)
    else:
        run = peers.jax_mlp(x, y, [16, 8, 3], lr=LR, batch=8, scan=peer == "jax_scan")
    for steps in (3, 4):
        losses = run(steps)
        assert losses.shape == (steps,) and np.isfinite(losses).all()


LEARN_STEPS = 150


@pytest.fixture(scope="module")
def learnable():
    """2000 MNIST-shaped rows whose labels a linear teacher gives: a loss that can fall."""
    rng = np.random.default_rng(0)
    x = rng.random((2000, 784), dtype=np.float32)
    teacher = rng.standard_normal((784, 10)).astype(np.float32)
    return x, np.argmax((x - 0.5) @ teacher, axis=1)


def _benchmarked_runner(name, x, y):
    """The runner ``bench/test_bench_train.py`` times as ``name``, on the mnist workload."""
    if name == "fastinit":
        return _fastinit(x, y, MNIST, BATCH)
    if name.startswith("numpy"):
        dtype = np.float32 if name == "numpy_f32" else np.float64
        return _numpy(x.astype(dtype), y, MNIST, BATCH, dtype)
    pytest.importorskip(name.split("_")[0])
    if name == "torch_eager":
        return peers.torch_mlp(x, y, MNIST, lr=LR, batch=BATCH)
    return peers.jax_mlp(x, y, MNIST, lr=LR, batch=BATCH, scan=name == "jax_scan")


def _learning(name, learnable):
    """Two timed-style calls of ``LEARN_STEPS`` steps: (loss at the start, at the end of
    the first call, at the start of the second), each a mean over the batches there."""
    run = _benchmarked_runner(name, *learnable)
    first, second = run(LEARN_STEPS), run(LEARN_STEPS)
    return first[:20].mean(), first[-50:].mean(), second[:20].mean()


@pytest.fixture(scope="module")
def fastinit_learning(learnable):
    return _learning("fastinit", learnable)


@pytest.mark.parametrize(
    "peer", ["numpy_f32", "numpy_f64", "torch_eager", "jax_jit_step", "jax_scan"]
)
def test_peer_runners_learn_like_fastinit(peer, learnable, fastinit_learning):
    """Each benchmarked runner trains: its loss falls about as far as fastinit's.

    A runner that skipped its update, or dropped it between calls (each round of
    the benchmark is one call), would be timed doing less than fastinit; one
    starting from a much weaker init (PyTorch's default for ``nn.Linear`` left
    this 5-layer net at 2.30 over 300 steps at lr 0.01) would not show it trains.
    """
    start, end, resumed = _learning(peer, learnable)
    ref_start, ref_end, _ = fastinit_learning
    drop, ref_drop = start - end, ref_start - ref_end
    assert ref_drop > 0.05, f"fastinit's loss fell by only {ref_drop:.3f}: no test"
    assert 0.5 * ref_drop <= drop <= 2 * ref_drop, (
        f"{peer}: loss fell by {drop:.3f} in {LEARN_STEPS} steps, fastinit's by {ref_drop:.3f}"
    )
    assert resumed < (start + end) / 2, f"{peer}: the second call restarts ({resumed:.3f})"


@pytest.mark.parametrize("scan", [False, True], ids=["jit_step", "scan"])
def test_jax_runners_take_the_data_as_an_argument(monkeypatch, scan):
    """The data set is an argument of the jitted step or loop, not compiled into it.

    Closed over, the arrays became a constant of the compiled program: the
    MNIST scan took 3.0 s to compile instead of 1.05 s, which the fresh-process
    script (``bench/scripts/mnist_jax.py``, timed with its compilation) counted
    against JAX.  The program's text must not grow with the rows.
    """
    jax = pytest.importorskip("jax")
    real_jit, lengths = jax.jit, {}

    def recording_jit(fun, **kwargs):
        jitted = real_jit(fun, **kwargs)

        def call(*args):
            lengths[n] = max(lengths.get(n, 0), len(jitted.lower(*args).as_text()))
            return jitted(*args)

        return call

    monkeypatch.setattr(jax, "jit", recording_jit)
    rng = np.random.default_rng(0)
    for n in (100, 20_000):  # 20000 x 16 float32: 1.3 MB, 2.6 MB as a hex constant
        x, y = rng.random((n, 16), dtype=np.float32), rng.integers(0, 3, n)
        peers.jax_mlp(x, y, [16, 8, 3], lr=LR, batch=8, scan=scan)(3)
    assert lengths[20_000] < lengths[100] + 1000, lengths


def test_torch_threads_are_the_cpus_allowed(monkeypatch):
    """PyTorch runs as many threads as the CPUs the process may use, like NumPy's OpenBLAS.

    ``os.cpu_count()`` counts the machine's CPUs even under ``taskset`` or a
    container's cpuset: the runner used it, so a peer could run more threads
    than fastinit's BLAS on fewer cores.
    """
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert available_cores() == 2
    torch = pytest.importorskip("torch")  # and the runner gives that count to torch
    before = torch.get_num_threads()
    x, y = np.zeros((10, 4), np.float32), np.zeros(10, np.int64)
    try:
        peers.torch_mlp(x, y, [4, 3, 2], lr=LR, batch=4)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_step_flops():
    """Forward and dW for every layer, dX for every layer but the first (2 FLOPs a MAC)."""
    fwd = 784 * 100 + 3 * 100 * 100 + 100 * 10
    assert MNIST_FLOPS == 2 * 128 * (fwd + fwd + (3 * 100 * 100 + 100 * 10)) == 63_948_800
    assert MNIST_NUMPY_FLOPS == MNIST_FLOPS + 2 * 128 * 784 * 100  # the book's unused dX
    wide = 784 * 1024 + 2 * 1024 * 1024 + 1024 * 10
    assert step_flops(WIDE, 512) == 2 * 512 * (2 * wide + wide - 784 * 1024)
    assert step_flops([2, 4, 1], 400) == 2 * 400 * (2 * (8 + 4) + 4)


# ----------------------------------------------------------------------------- planar
def test_planar_baseline_is_the_notebook(monkeypatch):
    """The notebook's four functions each iteration, its data types, its initialization."""
    x, y = datasets.planar()
    X, Y = numpy_mlp.planar_data(x, y)
    assert X.shape == (2, 400) and X.dtype == np.float64 and not X.flags.c_contiguous
    assert Y.shape == (1, 400) and Y.dtype == np.uint8  # load_planar_dataset's labels
    calls = dict.fromkeys(
        ["forward_propagation", "compute_cost", "backward_propagation", "update_parameters"], 0
    )

    def counting(name):
        f = getattr(numpy_mlp, name)

        def counted(*args, **kwargs):
            calls[name] += 1
            return f(*args, **kwargs)

        return counted

    for name in calls:
        monkeypatch.setattr(numpy_mlp, name, counting(name))
    p, costs = numpy_mlp.planar_model(X, Y, num_iterations=200)
    monkeypatch.undo()
    assert calls == dict.fromkeys(calls, 200)
    p_ref, costs_ref = notebook_planar.nn_model(X, Y, 4, 200)
    np.testing.assert_array_equal(costs, costs_ref)
    for k in p_ref:
        np.testing.assert_array_equal(p[k], p_ref[k])


@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-12), ("float32", 1e-6)])
def test_planar_fastinit_is_the_notebook(dtype, rtol):
    """fastinit's planar benchmark settings compute the notebook's iterations."""
    x, y = datasets.planar()
    X, Y = numpy_mlp.planar_data(x, y)
    p0 = numpy_mlp.initialize_parameters(2, 4, 1)
    p, costs = numpy_mlp.planar_model(X, Y, num_iterations=50, parameters=dict(p0))
    model = MLP([2, 4, 1], activation="tanh", init=("normal", {"std": 0.01}), seed=2, dtype=dtype)
    model.weights = [p0["W1"].T, p0["W2"].T]
    losses = model.fit(
        x, y, optimizer=optim.SGD(1.2), sampling="full", iterations=50,
        loss="sigmoid_cross_entropy", progress=False,
    ).loss  # fmt: skip
    np.testing.assert_allclose(losses, costs, rtol=rtol)
    np.testing.assert_allclose(model.weights[0], p["W1"].T, rtol=10 * rtol, atol=10 * rtol)
    np.testing.assert_allclose(model.biases[1], p["b2"].ravel(), rtol=10 * rtol, atol=10 * rtol)


def test_the_cuda_benchmarks_runner_returns_one_loss_per_step():
    # its runner returned fit's History, which the loss check read as 0-d: on a GPU both
    # fastinit CUDA benchmarks failed at their warm-up (the simulator runs the same code)
    from bench import test_bench_cuda_train as cuda_bench
    from bench.test_bench_train import _check_losses

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    losses = cuda_bench._fastinit(x, y, [6, 5, 3], 8)(3)
    _check_losses(losses, 3, "fastinit")


def test_the_cuda_launch_times_script_times_every_launch_of_a_step(capsys):
    # bench/scripts/cuda_launch_times.py reproduces README's per-launch GPU figures; under
    # the simulator its events time nothing, but every launch of a step must be there
    from bench.scripts import cuda_launch_times as script

    rows = script.launch_times([5, 4, 3], batch=4, reps=1, steps=1, warmup=1)
    names = ["fwd0", "fwd1", "loss", "dsum1", "dW1", "dA1", "dsum0", "dW0", "update", "gather"]
    assert [name for name, _ in rows] == [*names, "step"]
    assert all(isinstance(us, float) for _, us in rows)
    script.main(
        ["--sizes", "5", "3", "--batch", "4", "--reps", "1", "--steps", "1", "--warmup", "1"]
    )
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed[:-1]] == ["fwd0", "loss", "dsum0", "dW0",
                                                         "update", "gather", "step"]  # fmt: skip
    assert printed[-1].startswith("sum of the launches: ")


class _Pedantic:
    """pytest-benchmark's fixture as far as ``alternate`` uses it: rounds of one call."""

    def __init__(self):
        self.extra_info = {}

    def pedantic(self, fn, *, rounds, iterations, warmup_rounds=0):
        assert iterations == 1
        for _ in range(warmup_rounds + rounds):
            fn()


@pytest.mark.parametrize("n", [2, 3, 4])
def test_paired_rounds_balance_which_implementation_runs_first_and_which_before_which(n):
    # the targets' ratios are medians of per-round ratios: each implementation must run
    # once a round, first in as many rounds as the others, and after each other one in as
    # many rounds (a rotated order put each after the same one in 10 of 12 rounds: any
    # carry-over, spinning threads or a cache flushed by the sgemm, stayed with one pair);
    # warm-up calls (the JAX scan compiles per length) are not timed
    from collections import Counter

    from bench.test_bench_train import alternate

    calls = []

    def runner(name):
        def run(steps):
            calls.append((name, steps))
            return None if name == "sgemm" else np.zeros(steps)

        return run

    names = ["fastinit", "peer", "sgemm", "other"][:n]
    runners = {name: (runner(name), k + 1, 1e6 * (k + 1)) for k, name in enumerate(names)}
    bench = _Pedantic()
    alternate(bench, runners)  # 2n rounds by default
    warm, timed = calls[:n], calls[n:]
    assert sorted(warm) == sorted((name, k + 1) for k, name in enumerate(names))
    rounds = [[name for name, _ in timed[i : i + n]] for i in range(0, len(timed), n)]
    assert len(rounds) == 2 * n and all(sorted(r) == sorted(names) for r in rounds)
    assert set(Counter(r[0] for r in rounds).values()) == {2}
    after = Counter((r[i], r[i + 1]) for r in rounds for i in range(n - 1))
    assert len(after) == n * (n - 1) and len(set(after.values())) == 1, after
    paired = bench.extra_info["paired"]
    assert bench.extra_info["orders"] == rounds
    assert {name: (p["steps"], p["flops"], len(p["seconds"])) for name, p in paired.items()} == {
        name: (k + 1, 1e6 * (k + 1), 2 * n) for k, name in enumerate(names)}  # fmt: skip
    assert all(s > 0 for p in paired.values() for s in p["seconds"])


def test_a_paired_round_whose_trainer_diverged_is_refused():
    from bench.test_bench_train import alternate

    runners = {"fastinit": (lambda steps: np.zeros(steps), 4, 1.0),
               "peer": (lambda steps: np.full(steps, np.nan), 4, 1.0)}  # fmt: skip
    with pytest.raises(AssertionError, match="peer: a non-finite loss"):
        alternate(_Pedantic(), runners, rounds=2)
