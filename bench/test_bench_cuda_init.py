"""GPU initializer fill throughput: 4096 x 4096 float32, against a device copy.

Run on a machine with an NVIDIA GPU:
``NUMBA_ENABLE_CUDASIM=0 pytest bench/test_bench_cuda_init.py --benchmark-only``.
Skipped (with the reason) without a GPU or under the CUDA simulator.

Two figures per fill:

- the benchmark's own timing (``benchmark.pedantic``): one ``device="cuda"``
  initializer call and a ``cuda.synchronize()``, i.e. what a user waits for,
  Python argument checks and the launch included;
- ``extra_info``: the kernels' throughput from CUDA events, with the launches
  queued behind a short sleeping kernel so the GPU runs them back to back
  (launch overhead excluded): ``fill_gbps`` (bytes written per second),
  ``copy_gbps`` (the same-run device-to-device copy of the array, bytes read
  plus written per second: the memory roofline) and ``roofline_ratio =
  fill_gbps / copy_gbps``.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastinit import _cuda, init

SHAPE = (4096, 4096)
REPS = 10

FILLS = {
    "uniform": lambda a: init.uniform(SHAPE, low=-1.0, high=1.0, seed=1, out=a, device="cuda"),
    "normal": lambda a: init.normal(SHAPE, std=0.01, seed=1, out=a, device="cuda"),
    "truncated_normal": lambda a: init.truncated_normal(SHAPE, seed=1, out=a, device="cuda"),
    "he_normal": lambda a: init.he_normal(SHAPE, seed=1, out=a, device="cuda"),
}


@pytest.fixture(scope="module")
def cuda():
    if _cuda.simulator_enabled():
        pytest.skip("the CUDA simulator is on (NUMBA_ENABLE_CUDASIM): GPU benchmarks need a GPU")
    try:
        return _cuda.cuda_module()
    except RuntimeError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def sleeper(cuda):
    @cuda.jit
    def sleep(ms):
        for _ in range(ms):
            cuda.nanosleep(1_000_000)

    sleep[1, 1](1)  # compile
    cuda.synchronize()
    return sleep


def kernel_seconds(cuda, sleeper, fn) -> float:
    """Seconds per call of ``fn`` on the GPU, from events, launch gaps hidden."""
    fn()
    cuda.synchronize()
    start, stop = cuda.event(), cuda.event()
    sleeper[1, 1](20)  # keeps the GPU busy while the host queues the REPS calls
    start.record()
    for _ in range(REPS):
        fn()
    stop.record()
    stop.synchronize()
    return cuda.event_elapsed_time(start, stop) / 1e3 / REPS


@pytest.fixture(scope="module")
def out(cuda):
    return cuda.device_array(SHAPE, np.float32)


@pytest.fixture(scope="module")
def copy_gbps(cuda, sleeper, out) -> float:
    src = cuda.to_device(np.ones(SHAPE, np.float32))
    return 2 * out.nbytes / kernel_seconds(cuda, sleeper, lambda: out.copy_to_device(src)) / 1e9


@pytest.mark.benchmark(group="cuda-fill-4096x4096-f32")
@pytest.mark.parametrize("name", list(FILLS))
def test_cuda_fill(benchmark, cuda, sleeper, out, copy_gbps, name):
    fill = FILLS[name]
    gbps = out.nbytes / kernel_seconds(cuda, sleeper, lambda: fill(out)) / 1e9
    gpu = cuda.get_current_device().name
    benchmark.extra_info.update(
        gpu=gpu.decode() if isinstance(gpu, bytes) else str(gpu),
        fill_gbps=round(gbps, 1),
        copy_gbps=round(copy_gbps, 1),
        roofline_ratio=round(gbps / copy_gbps, 3),
    )

    def call():
        fill(out)
        cuda.synchronize()

    benchmark.pedantic(call, rounds=30, warmup_rounds=3)
