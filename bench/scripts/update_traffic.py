"""What writing the weights in place costs the MNIST step's products, on one and two threads.

The README's threading policy quotes it: NumPy's 14 products of one SGD step
(``bench/numpy_mlp.py``'s ``gemm_floor``), with the ``A.T @ dZ`` ones written
either into buffers of their own ("apart") or over the weights ("in place", as
an SGD update does), per step, best of 3 rounds of 200 steps, with OpenBLAS on
two threads and then on one, repeated ``--repeats`` times::

    python bench/scripts/update_traffic.py

On two threads each weight matrix written in place is written half by each core
and read whole by both in the next products; on one thread nothing crosses.
Compare rows from one phase of the host (see the README's threading policy).
"""

from __future__ import annotations

import argparse
import sys
import time
from itertools import pairwise
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.test_bench_train import MNIST
from fastinit.dense import _openblas_thread_functions


def products(sizes: list[int], batch: int, in_place: bool):
    """One step's products ``steps`` times; the update products over the weights if
    ``in_place``.  Values are kept small (clipped) so that nothing overflows."""
    rng = np.random.default_rng(0)
    a = [(rng.random((batch, n), dtype=np.float32) - 0.5) * 1e-2 for n in sizes]
    w = [(rng.random((i, o), dtype=np.float32) - 0.5) * 1e-2 for i, o in pairwise(sizes)]
    dw = [np.empty_like(x) for x in w]
    dx = [np.empty_like(x) for x in a]
    written = w if in_place else dw

    def run(steps: int) -> None:
        for _ in range(steps):
            for k, wk in enumerate(w):
                np.dot(a[k], wk, out=a[k + 1])
            for k in range(len(w) - 1, -1, -1):
                if k:
                    np.dot(a[k + 1], w[k].T, out=dx[k])  # with the old weights, as fastinit
                np.dot(a[k].T, a[k + 1], out=written[k])
            for x in written:
                np.clip(x, -1e-2, 1e-2, out=x)

    return run


def best_us(run, steps: int = 200, rounds: int = 3) -> float:
    """The best round's time per step, in microseconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(steps)
        times.append((time.perf_counter() - start) / steps * 1e6)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()
    functions = _openblas_thread_functions()
    if functions is None:
        raise SystemExit("update_traffic.py: NumPy's OpenBLAS thread functions were not found")
    threads_now, set_threads = functions
    before = threads_now()
    apart, in_place = products(MNIST, 128, False), products(MNIST, 128, True)
    apart(100), in_place(100)
    try:
        for _ in range(args.repeats):
            cells = []
            for threads in (2, 1):
                set_threads(threads)
                cells.append(
                    f"{threads}t apart {best_us(apart):.0f} in place {best_us(in_place):.0f}"
                )
            set_threads(before)
            print(" | ".join(cells) + " us/step", flush=True)
    finally:
        set_threads(before)


if __name__ == "__main__":
    main()
