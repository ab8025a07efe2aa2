"""device="cuda" initializers and the CUDA random fills equal the CPU ones bit for bit.

Runs under numba's CUDA simulator when no NVIDIA driver is found (see
conftest.py); on a GPU machine run the same tests on the device with
``NUMBA_ENABLE_CUDASIM=0 python -m pytest tests/test_cuda_init.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastinit import _cuda
from fastinit import init as I
from fastinit import random as R

# numba.cuda warns that the tests' tiny grids under-use a GPU (by message: the
# class lives in numba or numba-cuda depending on the version)
pytestmark = pytest.mark.filterwarnings("ignore:.*under-utilization")

SHAPES = [(7,), (3, 5), (2, 3, 3)]  # 7 and 45: not multiples of 4 (nor 2)
DTYPES = [np.float32, np.float64]
# parameters with many significant bits, so that an FMA where the CPU rounds
# twice (or the reverse) changes some of the results
FILLS = [
    ("fill_uniform", (-1.3, 2.9)),
    ("fill_normal", (0.1, 1.7)),
    ("fill_truncated_normal", (0.1, 0.9, -1.5, 1.9)),  # central erfinv branch on the CPU
    ("fill_truncated_normal", (0.3, 1.1, -3.0, 2.9)),  # tail branch
    ("fill_truncated_normal", (0.3, 1.1, 6.0, 7.5)),  # deep tail: the CPU's rejection sampler
]


# numba.cuda, imported by the fixture: the simulator swaps its kernel API in for
# module globals only, so a test kernel must name it through a global
nbcuda = None


@pytest.fixture(scope="module")
def cuda():
    global nbcuda
    nbcuda = _cuda.cuda_module()
    return nbcuda


@pytest.fixture(scope="module")
def rc():
    from fastinit import random_cuda

    return random_cuda


def same_bits(host: np.ndarray, dev) -> bool:
    got = dev.copy_to_host()
    return (
        got.shape == host.shape
        and got.dtype == host.dtype
        and np.array_equal(got.view(np.uint8), host.view(np.uint8))
    )


# ----------------------------------------------------------------------------- fills
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fill, args", FILLS)
def test_fills_match_cpu_bit_for_bit(cuda, rc, fill, args, dtype):
    cases = [((0,), 0, 0), ((1,), 3, 1), ((7,), 2**64 - 1, 5), ((5, 9), 7, 2**40)]
    # sizes that end on a full Philox block (4 float32 or 2 float64 values): its last
    # value was left unwritten once
    cases += [((8,), 11, 2), ((2, 6), 4, 9)]
    if not _cuda.simulator_enabled():  # many blocks and a grid-stride loop: GPU only
        cases.append(((1031, 1029), 9, 3))
    for shape, seed, stream in cases:
        host = getattr(R, fill)(np.empty(shape, dtype), *args, seed=seed, stream=stream)
        dev = cuda.to_device(np.full(shape, np.nan, dtype))  # a value not written stays NaN
        assert getattr(rc, fill)(dev, *args, seed=seed, stream=stream) is dev
        assert same_bits(host, dev), (fill, shape, dtype)


def test_random_bits_match_cpu(rc):
    # 4, 8, 16: a last Philox block that is full (its 4th word was dropped once)
    for n in (0, 1, 4, 6, 8, 13, 16):
        assert np.array_equal(
            rc.random_bits(n, seed=9, stream=4).copy_to_host(), R.random_bits(n, seed=9, stream=4)
        )
    for bad in (-1, 2**62, True):  # the CPU's rule: 2**62 words is no device array either
        with pytest.raises(ValueError, match=r"n: expected a non-negative integer <= \d+"):
            rc.random_bits(bad)


def test_uniform_index_device_function_matches_cpu(cuda, rc):
    from numba import njit

    @cuda.jit
    def draw(out, k0, k1, s0, s1, n):
        i = nbcuda.grid(1)
        if i < out.size:
            out[i] = rc.uniform_index(k0, k1, s0, s1, i, n)

    @njit
    def draw_cpu(out, k0, k1, s0, s1, n):
        for i in range(out.size):
            out[i] = R.uniform_index(k0, k1, s0, s1, i, n)

    for seed, stream, n in [(0, 0, 10), (2**64 - 1, 2**63 + 5, 1_000_003), (5, 7, 1)]:
        words = R.split_key(seed, stream)
        dev = cuda.device_array(19, np.int64)
        draw[1, 32](dev, *words, n)
        host = np.empty(19, np.int64)
        draw_cpu(host, *words, n)
        assert np.array_equal(dev.copy_to_host(), host)
        assert host.min() >= 0 and host.max() < n


def test_fill_errors(cuda, rc):
    with pytest.raises(TypeError, match="out: expected a numba CUDA device array"):
        rc.fill_uniform(np.empty(3, np.float32))
    with pytest.raises(TypeError, match="out: expected dtype float32 or float64"):
        rc.fill_normal(cuda.device_array(3, np.int32))
    with pytest.raises(ValueError, match="low, high"):
        rc.fill_uniform(cuda.device_array(3, np.float32), 2.0, 1.0)
    with pytest.raises(ValueError, match="std"):
        rc.fill_normal(cuda.device_array(3, np.float32), 0.0, -1.0)
    with pytest.raises(ValueError, match="a, b"):
        rc.fill_truncated_normal(cuda.device_array(3, np.float32), 0.0, 1.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="seed"):
        rc.fill_uniform(cuda.device_array(3, np.float32), seed=-1)
    # a strided view (every other column) was accepted: the simulator filled through the
    # view, and a GPU raised numba's NotImplementedError from reshape instead
    strided = cuda.to_device(np.zeros((4, 6), np.float32))[:, ::2]
    for fill in (rc.fill_uniform, rc.fill_normal, rc.fill_truncated_normal):
        with pytest.raises(ValueError, match="out: expected a C-contiguous device array"):
            fill(strided)


# ----------------------------------------------------------------------------- initializers
def _shapes(name: str):
    if I.get(name) in (I.identity, I.sparse, I.martens_sparse):
        return [(5, 3), (4, 7)]
    if I.get(name) is I.orthogonal:
        return [(5, 3), (2, 3, 3)]
    return SHAPES


@pytest.mark.parametrize("name", I.names())
def test_every_initializer_on_cuda_matches_cpu(cuda, name):
    init = I.get(name)
    for dtype in DTYPES:
        for k, shape in enumerate(_shapes(name)):
            kw = {"seed": 11 + k, "stream": 3, "dtype": dtype}
            host = init(shape, **kw)
            dev = init(shape, device="cuda", **kw)
            assert not isinstance(dev, np.ndarray)
            assert same_bits(host, dev), (name, shape, dtype)
    # in place into a device out; dtype from out
    out = cuda.device_array((4, 7), np.float64)
    host = init((4, 7), seed=1, stream=2, dtype=np.float64)
    assert init((4, 7), seed=1, stream=2, out=out, device="cuda") is out
    assert same_bits(host, out)


def test_device_parameters_reach_the_fill(cuda):
    # non-default parameters go through the wrapper and the nested calls
    kw = {"shape": (6, 5), "seed": 4, "stream": 1}
    for f, params in [
        (I.variance_scaling, {"scale": 3.0, "mode": "fan_out", "distribution": "uniform"}),
        (I.kaiming_normal, {"a": 0.2, "mode": "fan_out", "nonlinearity": "leaky_relu"}),
        (I.xavier_uniform, {"gain": 0.0}),  # zeros through the host path
        (I.truncated_normal, {"mean": 1.0, "std": 0.5, "a": 0.0, "b": 3.0}),
        (I.constant, {"value": -2.5}),
        (I.identity, {"gain": 3.0}),
    ]:
        host = f(**kw, **params)
        assert same_bits(host, f(**kw, **params, device="CUDA"))


def test_device_errors(cuda, monkeypatch):
    with pytest.raises(ValueError, match=r"^device: expected one of \(.cpu., .cuda.\)"):
        I.normal((2, 2), device="gpu")
    with pytest.raises(ValueError, match="device='cuda' needs a numba CUDA device array"):
        I.he_normal((2, 2), device="cuda", out=np.empty((2, 2), np.float32))
    with pytest.raises(ValueError, match="device='cuda' needs a numba CUDA device array"):
        I.orthogonal((2, 2), device="cuda", out=np.empty((2, 2), np.float32))
    dev = cuda.device_array((2, 2), np.float32)
    with pytest.raises(ValueError, match="device='cpu'"):
        I.uniform((2, 2), out=dev, device="cpu")
    with pytest.raises(ValueError, match=r"out: expected shape \(3, 2\)"):
        I.uniform((3, 2), out=dev, device="cuda")
    with pytest.raises(ValueError, match=r"out: expected shape \(3, 2\)"):
        I.identity((3, 2), out=dev, device="cuda")
    with pytest.raises(TypeError, match="out: expected dtype float64"):
        I.glorot_uniform((2, 2), out=dev, dtype="float64", device="cuda")
    for name in ("he_normal", "orthogonal", "zeros", "identity"):  # filled, and made on the host
        with pytest.raises(TypeError, match=r"^out: expected 'float32' or 'float64'"):  # not dtype
            getattr(I, name)((2, 2), out=cuda.device_array((2, 2), np.int32))
    with pytest.raises(ValueError, match="std"):
        I.normal((2, 2), std=-1.0, device="cuda")
    with pytest.raises(ValueError, match="shape"):
        I.normal((2, -1), device="cuda")
    with pytest.raises(TypeError, match="dtype"):
        I.uniform((2, 2), dtype="int8", device="cuda")


def test_cuda_unavailable_raises_a_clear_error(cuda, monkeypatch):
    monkeypatch.setattr(_cuda, "simulator_enabled", lambda: False)
    monkeypatch.setattr(cuda, "is_available", lambda: False)
    # with the cuda extra installed, the error does not ask to install it
    # (pinned: the suite also runs without numba-cuda, on numba's bundled numba.cuda)
    monkeypatch.setattr(_cuda, "_numba_cuda_installed", lambda: True)
    with pytest.raises(RuntimeError, match="needs an NVIDIA GPU") as e:
        I.he_normal((3, 3), device="cuda")
    assert "numba-cuda" not in str(e.value)
    assert I.he_normal((3, 3)).shape == (3, 3)  # the CPU is unaffected
    # without the cuda extra, numba's bundled numba.cuda imports: the error says both
    monkeypatch.setattr(_cuda, "_numba_cuda_installed", lambda: False)
    with pytest.raises(RuntimeError, match=r"nor is numba-cuda installed: .*fastinit\[cuda\]"):
        I.he_normal((3, 3), device="cuda")


def test_numba_cuda_kernels_compile_with_a_numpy_that_has_no_row_stack(python_subprocess):
    # NumPy 2.5 removed np.row_stack; numba-cuda 0.30.4 registers an overload of it when its
    # registries load at the first kernel compile, and every launch then failed with
    # AttributeError (seen on a GPU with NumPy 2.5.2; NVIDIA/numba-cuda#907). NumPy 2.5 is
    # stood in for by removing the function here.
    code = """
import numpy as np
if hasattr(np, "row_stack"):
    del np.row_stack
    np.__all__.remove("row_stack")
from fastinit._cuda import cuda_module
cuda_module()
import numba.cuda.np.arrayobj  # what the first compile loads (no GPU needed to import it)
print(hasattr(np, "row_stack"))
"""
    assert python_subprocess(code).split() == ["False"]  # the stand-in does not outlive the load


class _OutOfMemory(Exception):
    """What numba.cuda's driver raises when the device is full (``CudaAPIError``, code 2)."""

    code = 2


def test_an_initializer_beyond_the_device_memory_names_its_shape(cuda, monkeypatch):
    def full(*args, **kwargs):
        raise _OutOfMemory("Call to cuMemAlloc results in CUDA_ERROR_OUT_OF_MEMORY")

    monkeypatch.setattr(cuda, "device_array", full)  # a device fill's out
    monkeypatch.setattr(cuda, "to_device", full)  # what is made on the host, then copied
    for f in (I.he_normal, I.orthogonal, I.zeros):
        with pytest.raises(MemoryError, match=r"^shape: \(300, 200\) float32 \(240000 bytes\) "):
            f((300, 200), device="cuda")

    from fastinit import random_cuda

    with pytest.raises(MemoryError, match=r"^n: \(1000,\) uint32 \(4000 bytes\) .*smaller n"):
        random_cuda.random_bits(1000)

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA_ERROR_UNKNOWN")  # not a memory error: passed on as it is

    monkeypatch.setattr(cuda, "device_array", broken)
    with pytest.raises(RuntimeError, match="UNKNOWN"):
        I.he_normal((300, 200), device="cuda")
