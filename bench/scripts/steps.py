"""Per-step time of one implementation on the MNIST workload, in its own process.

For comparisons the pytest benchmarks cannot make in one process, such as
fastinit and JAX each confined to one core::

    OPENBLAS_NUM_THREADS=1 taskset -c 0 python bench/scripts/steps.py fastinit
    taskset -c 0 python bench/scripts/steps.py jax_scan
    python bench/scripts/steps.py fastinit          # both cores, for the same session

(``OPENBLAS_NUM_THREADS=1`` only makes the one BLAS thread explicit: under
``taskset`` OpenBLAS already sizes its pool from the allowed CPUs.) The workload
is ``bench/test_bench_train.py``'s ``mnist`` group: MLP 784-100-100-100-100-10,
ReLU, SGD lr 0.01, batches of 128 rows drawn with replacement from 60000 x 784
random float32 rows. Prints the median and the minimum per step over
``--rounds`` rounds of ``--steps`` steps, after one untimed round (numba's cache
or XLA compiling the scan).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import peers
from bench.test_bench_train import MNIST, _fastinit


def main(argv: list[str] | None = None) -> None:
    """Time ``--rounds`` rounds of ``--steps`` training steps and print per-step figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", choices=["fastinit", "jax_scan", "torch_eager"])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x, y = rng.random((60000, 784), dtype=np.float32), rng.integers(0, 10, 60000)
    if args.impl == "fastinit":
        run = _fastinit(x, y, MNIST, 128)
    elif args.impl == "jax_scan":
        run = peers.jax_mlp(x, y, MNIST, lr=0.01, batch=128, scan=True)
    else:  # as many threads as the CPUs allowed (taskset): available_cores
        run = peers.torch_mlp(x, y, MNIST, lr=0.01, batch=128)
    run(args.steps)  # compiles (lax.scan: per length) and warms up
    per_step = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        run(args.steps)
        per_step.append((time.perf_counter() - start) / args.steps)
    print(
        f"{args.impl}: median {np.median(per_step) * 1e6:.0f} us/step, "
        f"min {min(per_step) * 1e6:.0f} us/step ({args.rounds} x {args.steps} steps)"
    )


if __name__ == "__main__":
    main()
