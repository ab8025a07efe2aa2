"""Shared data for the training benchmarks (``pytest bench --benchmark-only``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # so ``bench.numpy_mlp`` and ``bench.peers`` import
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))


@pytest.fixture(scope="session")
def mnist_like() -> tuple[np.ndarray, np.ndarray]:
    """Random data of MNIST's shape: 60000 x 784 float32 in [0, 1), 10 classes."""
    rng = np.random.default_rng(0)
    return rng.random((60000, 784), dtype=np.float32), rng.integers(0, 10, 60000)


@pytest.fixture(scope="session")
def mnist_like64(mnist_like) -> np.ndarray:
    """The same inputs in float64."""
    return mnist_like[0].astype(np.float64)
