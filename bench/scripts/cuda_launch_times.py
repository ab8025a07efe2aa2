"""GPU time of each kernel launch of one training step, by CUDA events.

Where a device step's time goes, launch by launch::

    NUMBA_ENABLE_CUDASIM=0 python bench/scripts/cuda_launch_times.py
    NUMBA_ENABLE_CUDASIM=0 python bench/scripts/cuda_launch_times.py \
        --sizes 784 1024 1024 1024 10 --batch 512

The network (default MNIST's 784-100-100-100-100-10, ReLU, SGD lr 0.01, batches
of 128 rows drawn with replacement from 10000 random float32 rows) is trained
for ``--warmup`` steps (20), then each launch of its step (the forward products ``fwd<k>``, the
loss, per layer from the top the derivative and bias sums ``dsum<k>``, the weight
gradient ``dW<k>`` and the input gradient ``dA<k>``, the optimizer update and the
batch gather) is replayed ``--reps`` times back to back between two CUDA events.
A launch shorter than the host's launch cost (about 11 µs on the H100 machine)
reads as that cost.  The last line times whole steps the same way.  Under the
CUDA simulator it runs, but its events measure nothing (-1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

MNIST = [784, 100, 100, 100, 100, 10]


def _names(n_layers: int) -> list[str]:
    """The launches of a step in the order ``train_cuda`` replays them (gather last here)."""
    names = [f"fwd{k}" for k in range(n_layers)] + ["loss"]
    for k in range(n_layers - 1, -1, -1):
        names += [f"dsum{k}", f"dW{k}"] + ([f"dA{k}"] if k else [])
    return [*names, "update", "gather"]


def launch_times(
    sizes: list[int], batch: int = 128, reps: int = 300, steps: int = 200, warmup: int = 20
) -> list[tuple[str, float]]:
    """``(launch, microseconds)`` for each launch of a step, then ``("step", microseconds)``.

    Parameters
    ----------
    sizes : list of int
        Layer widths of the ReLU network.
    batch : int
        Rows per batch.
    reps : int
        Back-to-back replays of each launch.
    steps : int
        Whole steps timed for the last entry.
    warmup : int
        Steps run before any timing (at least 1: the first builds the launches).

    Returns
    -------
    list of (str, float)
        GPU time per launch (and per step), from CUDA events; -1 under the simulator.
    """
    from fastinit import MLP, optim, train
    from fastinit import train_cuda as tc
    from fastinit._cuda import cuda_module
    from fastinit.losses import get, prepare_targets

    cuda = cuda_module()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((max(10000, batch), sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], x.shape[0])
    model = MLP(sizes, device="cuda")
    spec = get("softmax_cross_entropy")
    xc = train.prepare_x(model, x)
    yi, yf = prepare_targets(spec, y, xc.shape[0], sizes[-1], model.dtype)
    warmup = max(1, warmup)
    total = warmup + steps
    run = tc._Run(cuda, [model], [optim.SGD(0.01)], xc, yi, yf, spec, train.REPLACEMENT,
                  batch, 0, total)  # fmt: skip
    for t in range(warmup):
        run.step(t)
    net = run.nets[0]
    plan = net.plans[batch]
    launches = [*plan.forward, plan.loss, *plan.backward, net.update, run.gathers[batch]]
    out = []
    for name, launch in zip(_names(len(sizes) - 1), launches, strict=True):
        out.append((name, _timed(cuda, launch, reps)))
    steps_run = iter(range(warmup, total))
    out.append(("step", _timed(cuda, lambda: run.step(next(steps_run)), steps)))
    return out


def _timed(cuda, call, n: int) -> float:
    """Microseconds per call of ``call`` over ``n`` calls, between two CUDA events."""
    cuda.synchronize()
    start, end = cuda.event(), cuda.event()
    start.record()
    for _ in range(n):
        call()
    end.record()
    end.synchronize()
    ms = start.elapsed_time(end)
    return ms * 1e3 / n if ms >= 0 else -1.0


def main(argv: list[str] | None = None) -> None:
    """Print the launch times of one step of ``--sizes`` at ``--batch`` rows.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=MNIST)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args(argv)
    rows = launch_times(args.sizes, args.batch, args.reps, args.steps, args.warmup)
    for name, us in rows:
        print(f"{name:8s} {us:8.1f} us")
    print(f"sum of the launches: {sum(us for name, us in rows if name != 'step'):.0f} us")


if __name__ == "__main__":
    main()
