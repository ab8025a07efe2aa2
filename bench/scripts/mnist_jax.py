"""The whole classic MNIST run in one process, JAX: load, He init, 2000 SGD steps.

The same network, optimizer and batch size as ``mnist_fastinit.py``; the data
are read from the files fastinit ships (gzip + NumPy, without importing
fastinit), and the model and the jitted ``lax.scan`` loop are the JAX peer of
the training benchmarks (``bench/peers.py``).

Both scripts are timed with their caches warm (``bench/test_bench_train.py``):
fastinit keeps a decompressed copy of the data and numba's compiled code; this
script keeps its decompressed copy in ``$BENCH_MNIST_DIR`` when that is set, and
JAX its compiled loop in its persistent cache (``JAX_COMPILATION_CACHE_DIR``).
"""

import gzip
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench import peers  # noqa: E402


def idx(name: str, offset: int) -> np.ndarray:
    packed = ROOT / "fastinit" / "data" / name
    folder = os.environ.get("BENCH_MNIST_DIR")
    kept = Path(folder, packed.stem) if folder else None
    if kept is not None and kept.exists():
        raw = kept.read_bytes()
    else:
        raw = gzip.decompress(packed.read_bytes())
        if kept is not None:  # whole or not at all: a run killed mid-write leaves no half copy
            kept.parent.mkdir(parents=True, exist_ok=True)
            partial = kept.with_suffix(f".{os.getpid()}.tmp")
            partial.write_bytes(raw)
            partial.replace(kept)
    return np.frombuffer(raw, np.uint8, offset=offset)


x = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 784) / np.float32(255)
y = idx("train-labels-idx1-ubyte.gz", 8)
run = peers.jax_mlp(x, y, [784, 100, 100, 100, 100, 10], lr=0.01, batch=128, scan=True)
print(f"final loss {run(2000)[-1]:.4f}")
