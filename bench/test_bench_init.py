"""Initializer fill throughput: 4096 x 4096 float32, against same-run baselines.

Run: ``pytest bench/test_bench_init.py --benchmark-only``.  Baselines measured in
the same run: ``ndarray.fill`` (the memory-write bound), NumPy's
``default_rng().standard_normal(out=...)`` and ``.random(out=...)``, and the
``torch.nn.init`` equivalents when torch is importable.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastinit import init

SHAPE = (4096, 4096)


@pytest.fixture(scope="module")
def out():
    a = np.empty(SHAPE, np.float32)
    a.fill(0.0)  # touch the pages once
    return a


FASTINIT = {
    "he_normal": lambda a: init.he_normal(SHAPE, seed=1, out=a),
    "glorot_uniform": lambda a: init.glorot_uniform(SHAPE, seed=1, out=a),
    "truncated_normal": lambda a: init.truncated_normal(SHAPE, seed=1, out=a),
    "normal": lambda a: init.normal(SHAPE, std=0.01, seed=1, out=a),
}


@pytest.mark.benchmark(group="fill-4096x4096-f32")
@pytest.mark.parametrize("name", list(FASTINIT))
def test_fastinit(benchmark, out, name):
    FASTINIT[name](out)  # compile outside the timing
    benchmark.extra_info["impl"] = f"fastinit {name}"
    benchmark(FASTINIT[name], out)


@pytest.mark.benchmark(group="fill-4096x4096-f32")
def test_baseline_ndarray_fill(benchmark, out):
    benchmark.extra_info.update(impl="ndarray.fill (memory-write bound)", reference=True)
    benchmark(out.fill, 0.5)


@pytest.mark.benchmark(group="fill-4096x4096-f32")
def test_baseline_numpy_standard_normal(benchmark, out):
    rng = np.random.default_rng(0)
    benchmark.extra_info["impl"] = "numpy standard_normal"
    benchmark(lambda: rng.standard_normal(SHAPE, dtype=np.float32, out=out))


@pytest.mark.benchmark(group="fill-4096x4096-f32")
def test_baseline_numpy_random(benchmark, out):
    rng = np.random.default_rng(0)
    benchmark.extra_info["impl"] = "numpy random"
    benchmark(lambda: rng.random(SHAPE, dtype=np.float32, out=out))


TORCH = {
    "kaiming_normal_": lambda nn, t: nn.init.kaiming_normal_(t),
    "xavier_uniform_": lambda nn, t: nn.init.xavier_uniform_(t),
    "trunc_normal_": lambda nn, t: nn.init.trunc_normal_(t),
}


@pytest.mark.benchmark(group="fill-4096x4096-f32")
@pytest.mark.parametrize("name", list(TORCH))
def test_baseline_torch(benchmark, name):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    t = torch.empty(SHAPE, dtype=torch.float32)
    benchmark.extra_info["impl"] = f"torch {name}"
    benchmark(TORCH[name], torch.nn, t)
