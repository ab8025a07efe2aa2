"""fastinit.random: Philox known answers, layout, determinism and distributions."""

import functools

import numpy as np
import pytest
from scipy import stats

from fastinit import random as fr

# Random123's known-answer vectors for Philox4x32-10
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (
        (0xFFFFFFFF,) * 4,
        (0xFFFFFFFF,) * 2,
        (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
    ),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_philox_known_answers(counter, key, expected):
    assert tuple(int(w) for w in fr.philox4x32_10(counter, key)) == expected


def philox_reference(counter, key):
    """Philox4x32-10 written from Salmon et al., SC'11 (Random123's philox.h), in Python ints.

    NumPy's ``numpy.random.Philox`` is Philox4x64-10 (64-bit words), so its raw
    output cannot serve as the reference for the 4x32 variant.
    """
    mask = 0xFFFFFFFF
    (c0, c1, c2, c3), (k0, k1) = counter, key
    for r in range(10):
        if r:  # the key is bumped between rounds
            k0, k1 = (k0 + 0x9E3779B9) & mask, (k1 + 0xBB67AE85) & mask
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2  # mulhilo: 64-bit products
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & mask, (p0 >> 32) ^ c3 ^ k1, p0 & mask
    return c0, c1, c2, c3


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_reference_reproduces_the_known_answers(counter, key, expected):
    assert philox_reference(counter, key) == expected


def test_philox_matches_the_reference_on_random_counters_and_keys():
    rng = np.random.default_rng(0)
    for _ in range(300):
        counter = tuple(int(x) for x in rng.integers(0, 2**32, 4))
        key = tuple(int(x) for x in rng.integers(0, 2**32, 2))
        assert tuple(int(w) for w in fr.philox4x32_10(counter, key)) == philox_reference(
            counter, key
        )


def test_kernel_blocks_match_the_reference_past_32_bit_block_indices():
    # the kernels' block counter spans two words (block >> 32 is the second)
    seed, stream = 0xFEDCBA9876543210, (0xDEADBEEF << 32) | 0x12345678
    key = (seed & 0xFFFFFFFF, seed >> 32)
    words = fr.split_key(seed, stream)
    for block in (0, 1, 2**32 - 1, 2**32, 2**32 + 3, 2**40 + 17, 2**62 + 5, 2**64 - 1):
        index = np.uint64(block) if block >= 2**63 else block  # a Python int is an int64
        got = tuple(int(w) for w in fr.block_words(*words, index))
        counter = (block & 0xFFFFFFFF, block >> 32, 0x12345678, 0xDEADBEEF)
        assert got == philox_reference(counter, key)
    bits = fr.random_bits(4 * 5, seed=seed, stream=stream)
    for block in range(5):
        counter = (block, 0, 0x12345678, 0xDEADBEEF)
        assert tuple(int(w) for w in bits[4 * block : 4 * block + 4]) == philox_reference(
            counter, key
        )


def test_counter_layout_of_raw_words():
    seed, stream = 0x0123456789ABCDEF, (7 << 32) | 5
    bits = fr.random_bits(4 * 3, seed=seed, stream=stream)
    key = (seed & 0xFFFFFFFF, seed >> 32)
    for block in range(3):
        words = fr.philox4x32_10((block, 0, 5, 7), key)
        assert tuple(bits[4 * block : 4 * block + 4]) == tuple(words)


FILLS = pytest.mark.parametrize(
    "fill",
    [
        fr.fill_uniform,
        fr.fill_normal,
        fr.fill_truncated_normal,  # +-2 std: erfinv's central branch only
        functools.partial(fr.fill_truncated_normal, a=-3.0, b=3.0),  # the tails too
    ],
    ids=["uniform", "normal", "truncated_central", "truncated_tails"],
)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@FILLS
def test_prefix_property_any_length(fill, dtype):
    """Element i depends on (seed, stream, i) only: a shorter fill is a prefix of a longer one."""
    long = fill(np.empty(1037, dtype), seed=11, stream=3)
    for n in (1, 2, 3, 5, 8, 513):
        short = fill(np.empty(n, dtype), seed=11, stream=3)
        assert np.array_equal(short, long[:n])
    again = fill(np.empty(1037, dtype), seed=11, stream=3)
    assert np.array_equal(again, long)
    other = fill(np.empty(1037, dtype), seed=11, stream=4)
    assert not np.array_equal(other, long)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@FILLS
def test_serial_and_parallel_paths_write_the_same_values(fill, dtype, monkeypatch):
    """Fills under PARALLEL_MIN run serially, larger ones as a prange: same values."""
    sizes = (1, 3, 4, 7, 4 * 4096 + 5, 9 * 4 * 4096 + 3)  # partial blocks, several chunks
    serial = [fill(np.empty(n, dtype), seed=2, stream=7) for n in sizes]
    big = fill(np.empty(fr.PARALLEL_MIN + 3, dtype), seed=2, stream=7)  # prange by its own rule
    assert np.array_equal(big[: sizes[-1]], serial[-1])
    monkeypatch.setattr(fr, "PARALLEL_MIN", 0)
    for n, expected in zip(sizes, serial, strict=True):
        assert np.array_equal(fill(np.empty(n, dtype), seed=2, stream=7), expected)


def test_shape_does_not_matter_only_flat_index():
    a = fr.fill_normal(np.empty((37, 29), np.float32), seed=5)
    b = fr.fill_normal(np.empty(37 * 29, np.float32), seed=5)
    assert np.array_equal(a.ravel(), b)


def test_uniform_f32_uses_top_24_bits():
    bits = fr.random_bits(64, seed=9, stream=2)
    u = fr.fill_uniform(np.empty(64, np.float32), seed=9, stream=2)
    assert np.array_equal(u, (bits >> 8).astype(np.float32) * np.float32(2.0**-24))


def test_uniform_f64_uses_53_bits():
    bits = fr.random_bits(64, seed=9, stream=2).astype(np.uint64)
    u = fr.fill_uniform(np.empty(32, np.float64), seed=9, stream=2)
    hi, lo = bits[0::2] >> np.uint64(5), bits[1::2] >> np.uint64(6)
    assert np.array_equal(u, (hi * np.uint64(2**26) + lo).astype(np.float64) * 2.0**-53)


def test_same_values_for_one_and_two_threads(python_subprocess):
    code = (
        "import numpy as np, numba, hashlib\n"
        "from fastinit import random as fr\n"
        "fr.PARALLEL_MIN = 1000  # the prange path\n"
        "h = hashlib.sha256()\n"
        "for dt in (np.float32, np.float64):\n"
        "    for f in (fr.fill_uniform, fr.fill_normal, fr.fill_truncated_normal):\n"
        "        h.update(f(np.empty(100_003, dt), seed=3, stream=1).tobytes())\n"
        "    # the deep-tail rejection sampler's prange\n"
        "    x = fr.fill_truncated_normal(np.empty(20_003, dt), 0.0, 1.0, 6.0, 7.0, seed=3)\n"
        "    h.update(x.tobytes())\n"
        "from fastinit import init  # the sparse initializers' prange over columns\n"
        "h.update(init.sparse((300, 200), sparsity=0.3, seed=2).tobytes())\n"
        "h.update(init.martens_sparse((300, 200), seed=2).tobytes())\n"
        "print(numba.get_num_threads(), h.hexdigest())\n"
    )
    one = python_subprocess(code, NUMBA_NUM_THREADS="1").split()
    two = python_subprocess(code, NUMBA_NUM_THREADS="2").split()
    assert one[0] == "1" and two[0] == "2"
    assert one[1] == two[1]


def test_prange_kernels_take_turns_across_python_threads(python_subprocess):
    # numba's workqueue layer (no TBB or OpenMP installed) aborted the whole process
    # ("Concurrent access has been detected") when two threads launched a prange at once
    code = (
        "import threading, numba, numpy as np\n"
        "from fastinit import init, random as fr\n"
        "fr.PARALLEL_MIN = 1000  # every call below takes the prange path\n"
        "def work():\n"
        "    for _ in range(20):\n"
        "        fr.fill_normal(np.empty(50_003, np.float32), seed=3)\n"
        "        fr.random_bits(10_000)\n"
        "        init.sparse((300, 200), seed=1)\n"
        "threads = [threading.Thread(target=work) for _ in range(4)]\n"
        "for t in threads: t.start()\n"
        "for t in threads: t.join()\n"
        "print(numba.threading_layer())\n"
    )
    assert python_subprocess(code, NUMBA_THREADING_LAYER="workqueue").split() == ["workqueue"]


def _refuse(*args):
    raise AssertionError("a prange kernel ran for an array under PARALLEL_MIN")


def test_random_bits_runs_serially_under_parallel_min_with_the_same_words(monkeypatch):
    monkeypatch.setattr(fr, "PARALLEL_MIN", 0)
    parallel = fr.random_bits(1003, seed=5, stream=2)
    monkeypatch.setattr(fr, "PARALLEL_MIN", 1 << 20)
    monkeypatch.setattr(fr, "_bits_kernel", _refuse)
    assert np.array_equal(fr.random_bits(1003, seed=5, stream=2), parallel)


def test_an_ndarray_subclass_out_gets_the_plain_arrays_values(python_subprocess):
    # np.matrix reshapes to (1, n), not (n,): the kernels wrote whole rows past its end
    # (the values of element 0 everywhere, then a segmentation fault on 300 x 200)
    code = (
        "import warnings\n"
        "import numpy as np\n"
        "from fastinit import init, random as fr\n"
        "warnings.simplefilter('ignore', PendingDeprecationWarning)  # np.matrix\n"
        "for dt in (np.float32, np.float64):\n"
        "    for fill in (fr.fill_uniform, fr.fill_normal, fr.fill_truncated_normal):\n"
        "        for shape in ((3, 5), (300, 200)):\n"
        "            m = np.asmatrix(np.zeros(shape, dt))\n"
        "            assert fill(m, seed=4) is m and type(m) is np.matrix\n"
        "            assert np.array_equal(m.A, fill(np.empty(shape, dt), seed=4))\n"
        "    for name in ('he_normal', 'sparse', 'martens_sparse', 'orthogonal'):\n"
        "        m = np.asmatrix(np.zeros((30, 20), dt))\n"
        "        assert init.get(name)((30, 20), seed=2, out=m) is m\n"
        "        assert np.array_equal(m.A, init.get(name)((30, 20), seed=2, dtype=dt))\n"
        "print('ok')\n"
    )
    assert python_subprocess(code).split() == ["ok"]


N = 200_000


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_matches_scipy(dtype):
    x = fr.fill_normal(np.empty(N, dtype), 1.5, 2.0, seed=1)
    assert stats.kstest(x, stats.norm(1.5, 2.0).cdf).pvalue > 1e-3
    assert abs(x.mean() - 1.5) < 5 * 2.0 / np.sqrt(N)
    assert abs(x.var() / 4.0 - 1) < 5 * np.sqrt(2 / N)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_matches_scipy(dtype):
    x = fr.fill_uniform(np.empty(N, dtype), -3.0, 1.0, seed=2)
    assert x.min() >= -3.0 and x.max() <= 1.0
    assert stats.kstest(x, stats.uniform(-3.0, 4.0).cdf).pvalue > 1e-3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("low", "high"), [(0.3, 0.30001), (-0.7, 0.2), (1e-3, 3.0)])
def test_uniform_stays_within_the_bounds_rounded_to_the_dtype(dtype, low, high):
    # float32(0.3) + float32(0.30001 - 0.3) lies above float32(0.30001): 141 of 1e6
    # draws came out above high when the span was rounded from the float64 difference
    x = fr.fill_uniform(np.empty(1_000_000, dtype), low, high, seed=0)
    assert dtype(low) <= x.min() and x.max() <= dtype(high)
    sigma = (high - low) / np.sqrt(12 * x.size)  # of the mean of U(low, high) draws
    assert abs(x.mean(dtype=np.float64) - (low + high) / 2) < 5 * sigma


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_rounds_to_high_where_the_dtype_cannot_resolve_the_span(dtype):
    # a span of one ulp: low + span u rounds to nearest, so the draws with u > 1/2 give
    # high itself, in float64 as in float32 (as PyTorch's uniform_); none lies above
    low = dtype(1.0)
    high = np.nextafter(low, dtype(2.0))
    x = fr.fill_uniform(np.empty(20_000, dtype), float(low), float(high), seed=4)
    assert set(np.unique(x).tolist()) == {float(low), float(high)}
    assert abs((x == high).mean() - 0.5) < 5 * 0.5 / np.sqrt(x.size)


def test_float32_uniform_refuses_a_span_its_spacing_cannot_hold():
    # (high - low) 2**-24 subnormal: 1e-36 gave draws up to 1.011 high, 1e-38 all zeros
    for high in (1e-36, 1e-38):
        with pytest.raises(ValueError, match=r"high - low: expected 0 or at least 1.97e-31"):
            fr.fill_uniform(np.empty(10, np.float32), 0.0, high)
    x = fr.fill_uniform(np.empty(100_000, np.float32), 0.0, 1e-30, seed=0)  # a normal spacing
    assert x.max() <= np.float32(1e-30) and abs(x.mean(dtype=np.float64) / 5e-31 - 1) < 0.01
    y = fr.fill_uniform(np.empty(10, np.float64), 0.0, 1e-36, seed=0)  # float64 holds it
    assert (y <= 1e-36).all() and y.max() > 5e-37
    assert (fr.fill_uniform(np.empty(3, np.float32), 2.0, 2.0) == 2.0).all()  # no span: low


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("mean", "std", "a", "b"), [(0, 1, -2, 2), (1, 3, -1, 0.5), (0, 1, 1, 5), (0, 1, 3.5, 10)]
)
def test_truncated_normal_matches_scipy(dtype, mean, std, a, b):
    x = fr.fill_truncated_normal(np.empty(N, dtype), mean, std, a, b, seed=3)
    assert x.min() >= a and x.max() <= b
    ref = stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    assert stats.kstest(x, ref.cdf).pvalue > 1e-3
    assert abs(x.mean() - ref.mean()) < 5 * ref.std() / np.sqrt(N)


@pytest.mark.parametrize(
    ("dtype", "mean", "std", "a", "b"),
    [(np.float32, 0, 1, 5, 6), (np.float32, 0, 1, -100, -4), (np.float64, 0, 1, 10, 11),
     (np.float64, 1, 2, 61, 63), (np.float32, 0, 1, 4, 4.5)],
)  # fmt: skip
def test_truncated_normal_deep_in_a_tail_matches_scipy(dtype, mean, std, a, b):
    # 2 Phi - 1 rounds to +-1 there (the inverse CDF gave a handful of values, e.g.
    # [10, 11] all 10.0): these intervals are drawn by rejection instead
    assert fr.truncation_constants(mean, std, a, b, np.dtype(dtype))[1] == fr.REJECT
    x = fr.fill_truncated_normal(np.empty(N, dtype), mean, std, a, b, seed=3)
    assert x.min() >= a and x.max() <= b and len(np.unique(x)) > N // 2
    ref = stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    assert stats.kstest(x.astype(np.float64), ref.cdf).pvalue > 1e-3
    assert abs(x.mean() - ref.mean()) < 5 * ref.std() / np.sqrt(N)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("mean", "std", "a", "b", "near"),
    [(0, 1e-310, 1, 2, 1), (0, 1e-310, -2, -1, -1), (3, 1e-300, 2.0**33, 2.0**40, 2.0**33),
     (0, 5e-324, 1, 1e30, 1), (0, 1e-200, 1, 2, 1), (1, 1e-160, -1, 0.5, 0.5)],
)  # fmt: skip
def test_truncated_normal_whose_standardized_bounds_overflow_gives_the_near_bound(
    dtype, mean, std, a, b, near
):
    # (a - mean) / std beyond the float64 range (the first four): the draws lie within
    # about std**2 / |a - mean| of the bound nearest the mean, i.e. on it; they were NaN
    x = fr.fill_truncated_normal(np.empty(1001, dtype), mean, std, a, b, seed=1)
    assert np.array_equal(x, np.full(1001, near, dtype))


@pytest.mark.parametrize(
    ("dtype", "mean", "near"),
    [(np.float64, 1e15, 1.0), (np.float64, 1e17, 1.0), (np.float64, -1e17, -1.0),
     (np.float32, 1e20, 1.0), (np.float32, -1e38, -1.0)],
)  # fmt: skip
def test_truncated_normal_with_the_mean_far_outside_the_bounds_stays_by_the_near_one(
    dtype, mean, near
):
    # N(mean, 1) on [-1, 1] with |mean| >> 1 is about near -+ Exp(1) / |mean|; the draws
    # were mean + x with x within an ulp of -mean: all 0 for 1e17 (lo == hi), multiples
    # of 1/8 for 1e15
    x = fr.fill_truncated_normal(np.empty(1001, dtype), mean, 1.0, -1.0, 1.0, seed=1)
    assert np.abs(x - near).max() <= 50 / abs(mean) + np.finfo(dtype).eps, np.unique(x)


def test_deep_tail_values_depend_on_the_index_only(monkeypatch):
    a = fr.fill_truncated_normal(np.empty(10_000, np.float32), 0.0, 1.0, 6.0, 7.0, seed=5)
    monkeypatch.setattr(fr, "PARALLEL_MIN", 1000)  # the prange kernel, by chunks
    b = fr.fill_truncated_normal(np.empty(10_007, np.float32), 0.0, 1.0, 6.0, 7.0, seed=5)
    np.testing.assert_array_equal(a, b[:10_000])


def test_streams_are_uncorrelated():
    a = fr.fill_normal(np.empty(N), seed=4, stream=0)
    b = fr.fill_normal(np.empty(N), seed=4, stream=1)
    c = fr.fill_normal(np.empty(N), seed=5, stream=0)
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(N)
    assert abs(np.corrcoef(a, c)[0, 1]) < 5 / np.sqrt(N)


def test_normal_tails_are_finite():
    x = fr.fill_normal(np.empty(2_000_000, np.float32), seed=6)
    assert np.isfinite(x).all()
    assert 4.5 < np.abs(x).max() < 7.0
    for t in (3.0, 4.0):  # the tail mass, where the float32 log and sin/cos matter most
        expected = 2 * stats.norm.sf(t) * x.size
        assert abs((np.abs(x) > t).sum() - expected) < 5 * np.sqrt(expected)


def test_float64_normals_are_both_box_muller_outputs_of_each_block():
    # block b gives draws 2b and 2b + 1: (z0, z0) instead of (z0, z1) passed this file
    # (mutation audit; only test_init's Haar test noticed)
    seed, stream, n = 11, 3, 64
    out = fr.fill_normal(np.empty(n), mean=1.5, std=2.0, seed=seed, stream=stream)
    words = fr.split_key(seed, stream)
    for b in range(n // 2):
        z0, z1 = fr.box_muller_f64(*fr.block_words(*words, b))
        assert (out[2 * b], out[2 * b + 1]) == (1.5 + 2.0 * z0, 1.5 + 2.0 * z1), b


@pytest.mark.parametrize(("dtype", "bits"), [(np.float32, 24), (np.float64, 53)])
def test_box_muller_radius_is_bounded_by_the_smallest_uniform(dtype, bits):
    # the largest |z|: 1 - u = 2**-bits, radius sqrt(-2 log 2**-bits); u = 0: radius 0, not NaN
    top = np.uint32(0xFFFFFFFF)
    if dtype == np.float32:
        largest = fr.box_muller_f32(top, np.uint32(0))[0]
        zero = fr.box_muller_f32(np.uint32(0), np.uint32(0x12345678))
    else:
        largest = fr.box_muller_f64(top, top, np.uint32(0), np.uint32(0))[0]
        zero = fr.box_muller_f64(*(np.uint32(w) for w in (0, 0, 0x12345678, 0)))
    radius = np.sqrt(-2 * np.log(2.0**-bits))
    assert largest == pytest.approx(radius, rel=1e-6) and largest <= fr.Z_MAX
    assert zero == (0.0, 0.0)


@pytest.mark.parametrize(
    ("call", "exc", "word"),
    [
        (lambda: fr.fill_normal(np.empty(3), std=-1.0), ValueError, "std"),
        (lambda: fr.fill_normal(np.empty(3), std=float("nan")), ValueError, "std"),
        (lambda: fr.fill_normal(np.empty(3), mean=float("inf")), ValueError, "mean"),
        (lambda: fr.fill_uniform(np.empty(3), 2.0, 1.0), ValueError, "low"),
        (lambda: fr.fill_uniform(np.empty(3, np.float32), 0, 1e39), ValueError, "high"),
        (lambda: fr.fill_normal(np.empty(3, np.float32), 0, 1e38), ValueError, "mean, std"),
        (lambda: fr.fill_truncated_normal(np.empty(3), a=1.0, b=0.0), ValueError, "a, b"),
        (lambda: fr.fill_truncated_normal(np.empty(3), std=0.0), ValueError, "std"),
        (lambda: fr.fill_normal(np.empty(3), seed=-1), ValueError, "seed"),
        (lambda: fr.fill_normal(np.empty(3), seed=2**64), ValueError, "seed"),
        (lambda: fr.fill_normal(np.empty(3), stream=1.5), TypeError, "stream"),
        (lambda: fr.fill_normal(np.empty(3, np.int32)), TypeError, "out"),
        (lambda: fr.fill_normal(np.empty((4, 4))[:, ::2]), ValueError, "out"),
        (lambda: fr.fill_normal([0.0, 1.0]), TypeError, "out"),
        (lambda: fr.random_bits(-1), ValueError, "n"),
        (lambda: fr.random_bits(2**62), ValueError, "^n: "),  # NumPy's "array is too big"
        (lambda: fr.random_bits(2**64), ValueError, "^n: "),
    ],
)
def test_bad_input_names_the_argument(call, exc, word):
    with pytest.raises(exc, match=word):
        call()
