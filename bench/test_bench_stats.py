"""Cost of ``fit(record_stats=True)`` against a plain fit, on the MNIST workload;
``diagnose``'s per-feature statistics against NumPy.

Run ``pytest bench/test_bench_stats.py --benchmark-only``.  Workload as
``mnist`` in ``bench/test_bench_train.py``: MLP 784-100-100-100-100-10, ReLU,
SGD lr 0.01, batches of 128 rows sampled with replacement from 60000 x 784
random float32 data, 500 steps per round.  Each recording benchmark stores in
``extra_info``:

* ``ratio_vs_plain``: the median time of a fit recording every ``k`` steps over
  the median of a plain fit, both timed in alternation in the same test (so
  both see the same machine state);
* ``extra_per_recorded_step_us``: the added time per recorded step.

A recorded step measures the pre-activations between each GEMM and its
activation (no extra GEMM) and makes a few float64 passes over the
pre-activations, activations, derivatives and gradients (about 8 passes over
52k values per MNIST step).

Measured on the 2-core build machine (shared with other jobs; OpenBLAS 0.3.31):
plain 0.61-0.67 ms/step; ``k=10`` ratio 1.01 (+60 us per recorded step, within
the noise), ``k=1`` ratio 1.29 (+175 us per recorded step).  With
``record_stats=False`` the loop costs what it did before the recorder existed
(best of 7 runs of 300 steps: 613 us/step before, 625 after, within the 2-3%
run-to-run noise).
"""

from __future__ import annotations

import statistics
import time

import pytest

from fastinit import optim
from fastinit.model import MLP

MNIST = [784, 100, 100, 100, 100, 10]
STEPS = 500


def _fit(x, y, every: int | None):
    def run(steps: int = STEPS):
        model = MLP(MNIST, activation="relu", init="he_normal", seed=0)
        kw = {} if every is None else {"record_stats": True, "stats_every": every}
        return model.fit(x, y, optimizer=optim.SGD(0.01), batch_size=128, iterations=steps,
                         sampling="replacement", progress=False, **kw)  # fmt: skip

    return run


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _bench(benchmark, x, y, every: int | None, rounds: int = 5) -> None:
    fn = _fit(x, y, every)
    fn(10)  # compile / warm up outside the timing
    info = {"steps": STEPS, "impl": "plain" if every is None else f"record_stats k={every}"}
    if every is not None:
        plain = _fit(x, y, None)
        plain(10)
        t_plain, t_stats = [], []
        for _ in range(rounds):
            t_plain.append(_seconds(plain))
            t_stats.append(_seconds(fn))
        mp, ms = statistics.median(t_plain), statistics.median(t_stats)
        recorded = -(-STEPS // every)
        info.update(
            ratio_vs_plain=round(ms / mp, 4),
            extra_per_recorded_step_us=round(1e6 * (ms - mp) / recorded, 1),
            plain_per_step_us=round(1e6 * mp / STEPS, 1),
        )
    benchmark.extra_info.update(info)
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="record_stats")
def test_mnist_plain(benchmark, mnist_like):
    _bench(benchmark, *mnist_like, None)


@pytest.mark.benchmark(group="record_stats")
def test_mnist_record_stats_every_10(benchmark, mnist_like):
    _bench(benchmark, *mnist_like, 10)


@pytest.mark.benchmark(group="record_stats")
def test_mnist_record_stats_every_1(benchmark, mnist_like):
    _bench(benchmark, *mnist_like, 1)


@pytest.mark.benchmark(group="feature_moments")
@pytest.mark.parametrize("impl", ["fastinit", "numpy"])
def test_feature_moments(benchmark, mnist_like, impl):
    """Every feature's mean and std of 60000 x 784 float32 (``diagnose``'s input pass):
    :func:`fastinit.diagnostics.feature_moments` against NumPy's ``mean``/``std(axis=0)``
    in float64, the same sums.  Measured (2 cores, quiet): 0.025 s against 0.155 s."""
    import numpy as np

    from fastinit.diagnostics import feature_moments

    x, _ = mnist_like
    if impl == "fastinit":
        feature_moments(x[:10])  # compile outside the timing

        def fn():
            return feature_moments(x)
    else:

        def fn():
            return x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64)

    benchmark.extra_info["impl"] = impl
    benchmark.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)
