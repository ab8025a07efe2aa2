"""GPU training throughput: ``MLP(device="cuda")`` against PyTorch CUDA, with a same-run GEMM.

Real NVIDIA GPU only (skipped, with the reason, without one or under the CUDA
simulator).  Run ``pytest bench/test_bench_cuda_train.py --benchmark-only
--benchmark-json=out.json`` then ``python bench/report.py out.json``.  Workloads
(the CPU benchmark's, ``bench/test_bench_train.py``):

* ``cuda_mnist``: 784-100-100-100-100-10 ReLU, SGD lr 0.01, batches of 128 rows
  sampled with replacement on the device from 60000 x 784 random float32 data,
  2000 steps per round.
* ``cuda_wide``: 784-1024-1024-1024-10, batch 512, 200 steps per round.
* ``cuda_gemm``: this package's tiled GEMM kernel (``fastinit.dense_cuda``) at
  2048 x 2048 x 2048 float32, for GFLOP/s, with ``torch.matmul`` as the peer.

Peers: PyTorch eager on the GPU (``nn.Sequential``, ``CrossEntropyLoss``,
``optim.SGD``, batch indices from ``torch.randint`` on the device), when torch
with CUDA is importable.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os

import numpy as np
import pytest

from bench.test_bench_train import _fastinit as _cpu_fastinit
from bench.test_bench_train import _run, step_flops

MNIST = [784, 100, 100, 100, 100, 10]  # the CPU benchmark's workloads
WIDE = [784, 1024, 1024, 1024, 10]


def _gpu_reason() -> str | None:
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return "NUMBA_ENABLE_CUDASIM is set: GPU benchmarks need a real GPU"
    if ctypes.util.find_library("cuda") is None:
        return "no CUDA driver (libcuda) on this machine"
    try:
        from fastinit._cuda import cuda_module

        cuda_module()
    except RuntimeError as err:
        return str(err)
    return None


_REASON = _gpu_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


def _fastinit(x, y, sizes, batch):
    return _cpu_fastinit(x, y, sizes, batch, device="cuda")  # the CPU benchmark's runner


def _torch_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _torch(x, y, sizes, batch):
    import torch

    torch.manual_seed(0)
    layers: list = []
    for k in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt = torch.from_numpy(x).cuda()
    yt = torch.from_numpy(y.astype(np.int64)).cuda()

    def run(steps):
        record = torch.empty(steps, device="cuda")
        for i in range(steps):
            idx = torch.randint(0, xt.shape[0], (batch,), device="cuda")
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            record[i] = loss.detach()
        return record.cpu().numpy()

    return run


needs_torch = pytest.mark.skipif(not _torch_available(), reason="torch with CUDA not importable")


# ----------------------------------------------------------------------------- mnist
@pytest.mark.benchmark(group="cuda_mnist")
def test_cuda_mnist_fastinit(benchmark, mnist_like):
    flops = step_flops(MNIST, 128)
    _run(benchmark, _fastinit(*mnist_like, MNIST, 128), steps=2000, flops=flops, impl="fastinit")


@needs_torch
@pytest.mark.benchmark(group="cuda_mnist")
def test_cuda_mnist_torch(benchmark, mnist_like):
    flops = step_flops(MNIST, 128)
    _run(benchmark, _torch(*mnist_like, MNIST, 128), steps=2000, flops=flops, impl="torch_cuda")


# ----------------------------------------------------------------------------- wide
@pytest.mark.benchmark(group="cuda_wide")
def test_cuda_wide_fastinit(benchmark, mnist_like):
    flops = step_flops(WIDE, 512)
    _run(benchmark, _fastinit(*mnist_like, WIDE, 512), steps=200, flops=flops, impl="fastinit")


@needs_torch
@pytest.mark.benchmark(group="cuda_wide")
def test_cuda_wide_torch(benchmark, mnist_like):
    flops = step_flops(WIDE, 512)
    _run(benchmark, _torch(*mnist_like, WIDE, 512), steps=200, flops=flops, impl="torch_cuda")


# ----------------------------------------------------------------------------- gemm
N_GEMM = 2048


@pytest.mark.benchmark(group="cuda_gemm")
def test_cuda_gemm_fastinit_2048(benchmark):
    from fastinit._cuda import cuda_module
    from fastinit.dense_cuda import gemm

    cuda = cuda_module()
    rng = np.random.default_rng(0)
    a, b = (cuda.to_device(rng.random((N_GEMM, N_GEMM), dtype=np.float32)) for _ in range(2))
    c = cuda.device_array((N_GEMM, N_GEMM), np.float32)
    gemm("NN", a, b, c)
    ref = a.copy_to_host() @ b.copy_to_host()
    np.testing.assert_allclose(c.copy_to_host(), ref, rtol=1e-3)  # correct before timed

    def run(steps):
        for _ in range(steps):
            gemm("NN", a, b, c)
        cuda.synchronize()

    _run(benchmark, run, steps=20, flops=2 * N_GEMM**3, impl="fastinit_gemm", rounds=7)


@needs_torch
@pytest.mark.benchmark(group="cuda_gemm")
def test_cuda_gemm_torch_2048(benchmark):
    import torch

    a = torch.rand(N_GEMM, N_GEMM, device="cuda")
    b = torch.rand(N_GEMM, N_GEMM, device="cuda")
    c = torch.empty_like(a)
    torch.backends.cuda.matmul.allow_tf32 = False  # the same float32 arithmetic

    def run(steps):
        for _ in range(steps):
            torch.matmul(a, b, out=c)
        torch.cuda.synchronize()

    _run(benchmark, run, steps=20, flops=2 * N_GEMM**3, impl="torch_matmul", rounds=7)
