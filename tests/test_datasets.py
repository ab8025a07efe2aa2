"""Tests for fastinit.datasets: MNIST, the IDX reader, planar and gaussian data."""

# The planar oracle is the classic exercise's code, which uses numpy's global legacy RNG.
# ruff: noqa: NPY002

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from fastinit import datasets as D
from fastinit.random import fill_normal

# Published by the MNIST authors: label counts per digit 0..9 and file sizes.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
PAYLOAD_SIZES = {
    "train-images-idx3-ubyte": 47040016,
    "train-labels-idx1-ubyte": 60008,
    "t10k-images-idx3-ubyte": 7840016,
    "t10k-labels-idx1-ubyte": 10008,
}


def idx_bytes(a: np.ndarray, code: int) -> bytes:
    """Encode ``a`` as an IDX file with type ``code`` (independent of the reader)."""
    header = bytes([0, 0, code, a.ndim]) + b"".join(d.to_bytes(4, "big") for d in a.shape)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


@pytest.fixture
def keep_global_rng():
    state = np.random.get_state()
    yield
    np.random.set_state(state)


@pytest.fixture(autouse=True)
def no_env_dir(monkeypatch):
    monkeypatch.delenv(D.MNIST_DIR_ENV, raising=False)


# ----------------------------------------------------------------------------- planar
def load_planar_dataset_oracle(seed, m=400):
    """The classic exercise's code, verbatim apart from the seed and m arguments."""
    np.random.seed(seed)
    N = int(m / 2)
    D = 2
    X = np.zeros((m, D))
    Y = np.zeros((m, 1), dtype="uint8")
    a = 4
    for j in range(2):
        ix = range(N * j, N * (j + 1))
        t = np.linspace(j * 3.12, (j + 1) * 3.12, N) + np.random.randn(N) * 0.2
        r = a * np.sin(4 * t) + np.random.randn(N) * 0.2
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        Y[ix] = j
    X = X.T
    Y = Y.T
    return X, Y


@pytest.mark.parametrize(("seed", "m"), [(1, 400), (2, 400), (3, 10), (0, 2)])
def test_planar_equals_classic_exercise(keep_global_rng, seed, m):
    X, y = D.planar(seed=seed, m=m)
    X_ref, Y_ref = load_planar_dataset_oracle(seed, m)
    assert X.shape == (m, 2) and X.dtype == np.float64
    assert y.shape == (m,) and y.dtype == np.int64
    np.testing.assert_array_equal(X, X_ref.T)
    np.testing.assert_array_equal(y, Y_ref.ravel())


def test_planar_defaults_are_the_training_set(keep_global_rng):
    X, y = D.planar()
    X_ref, Y_ref = load_planar_dataset_oracle(1, 400)
    np.testing.assert_array_equal(X, X_ref.T)
    np.testing.assert_array_equal(y, Y_ref.ravel())


def test_planar_leaves_global_rng_alone(keep_global_rng):
    np.random.seed(12345)
    before = np.random.get_state()
    D.planar(seed=2)
    after = np.random.get_state()
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"m": 3}, ValueError, "m: expected a positive even integer"),
        ({"m": 0}, ValueError, "m: "),
        ({"m": -4}, ValueError, "m: "),
        ({"m": 400.0}, TypeError, "m: expected an integer"),
        ({"m": 2**61}, ValueError, "^m: "),  # NumPy's "array is too big" named nothing
        ({"m": 10**30}, ValueError, "^m: "),
        ({"seed": -1}, ValueError, "seed: "),
        ({"seed": 2**32}, ValueError, "seed: "),
        ({"seed": True}, TypeError, "seed: "),
        ({"seed": "1"}, TypeError, "seed: "),
    ],
)
def test_planar_validates(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        D.planar(**kwargs)


# ----------------------------------------------------------------------------- gaussian
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gaussian_uses_fastinit_rng(dtype):
    x = D.gaussian(300, 7, seed=5, dtype=dtype)
    assert x.shape == (300, 7) and x.dtype == np.dtype(dtype)
    ref = fill_normal(np.empty((300, 7), dtype=dtype), 0.0, 1.0, seed=5, stream=0)
    np.testing.assert_array_equal(x, ref)
    np.testing.assert_array_equal(x, D.gaussian(300, 7, seed=5, dtype=dtype))
    assert not np.array_equal(x, D.gaussian(300, 7, seed=6, dtype=dtype))
    assert abs(x.mean()) < 0.1 and abs(x.std() - 1.0) < 0.05


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "pattern"),
    [
        ((0, 3), {}, ValueError, "n: "),
        ((3, -1), {}, ValueError, "d: "),
        ((2.5, 3), {}, TypeError, "n: "),
        ((3, 3), {"seed": -1}, ValueError, "seed: "),
        ((3, 3), {"dtype": "int32"}, TypeError, "dtype: "),
        ((10**10, 10**10), {}, ValueError, r"\(n, d\): "),
    ],
)
def test_gaussian_validates(args, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        D.gaussian(*args, **kwargs)


# ----------------------------------------------------------------------------- MNIST
@pytest.fixture(scope="module")
def mnist():
    return D.load_mnist()


def test_shipped_files_match_checksums():
    for name, expected in D.MNIST_SHA256.items():
        raw = (D._DATA_DIR / name).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == expected, name
        payload = gzip.decompress(raw)
        stem = name.removesuffix(".gz")
        assert len(payload) == PAYLOAD_SIZES[stem]
        assert hashlib.sha256(payload).hexdigest() == D.MNIST_PAYLOAD_SHA256[stem]


def test_mnist_shapes_dtypes_ranges(mnist):
    (x_train, t_train), (x_test, t_test) = mnist
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert t_train.shape == (60000,) and t_test.shape == (10000,)
    assert x_train.dtype == x_test.dtype == np.float32
    assert t_train.dtype == t_test.dtype == np.int64
    for x in (x_train, x_test):
        assert x.min() == 0.0 and x.max() == 1.0
        k = np.rint(x * 255)  # every value is (uint8 k) / 255, correctly rounded
        np.testing.assert_array_equal(x, k.astype(np.float32) / np.float32(255))


def test_mnist_label_counts_are_official(mnist):
    (_, t_train), (_, t_test) = mnist
    assert np.bincount(t_train, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(t_test, minlength=10).tolist() == TEST_COUNTS


def test_mnist_matches_idx_files(mnist):
    _, (x_test, t_test) = mnist
    raw = D.load_idx(D._DATA_DIR / "t10k-images-idx3-ubyte.gz")
    assert raw.dtype == np.uint8 and raw.shape == (10000, 28, 28)
    np.testing.assert_array_equal(x_test, raw.reshape(10000, -1) / np.float32(255))
    np.testing.assert_array_equal(t_test, D.load_idx(D._DATA_DIR / "t10k-labels-idx1-ubyte.gz"))


def test_mnist_unnormalized_one_hot_unflattened(mnist):
    (x, t), (xt, tt) = D.load_mnist(
        normalize=False, flatten=False, one_hot_label=True, dtype="float64"
    )
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28)
    assert x.dtype == np.float64 and x.min() == 0.0 and x.max() == 255.0
    np.testing.assert_array_equal(x, np.rint(x))
    assert t.shape == (60000, 10) and tt.shape == (10000, 10) and t.dtype == np.float64
    np.testing.assert_array_equal(t.sum(axis=1), 1.0)
    np.testing.assert_array_equal(t.argmax(axis=1), mnist[0][1])
    np.testing.assert_array_equal(tt.argmax(axis=1), mnist[1][1])
    np.testing.assert_array_equal(x.reshape(60000, -1).astype(np.float32) / 255, mnist[0][0])


def test_mnist_one_hot_dtype_follows_dtype():
    (_, t), _ = D.load_mnist(one_hot_label=True)
    assert t.dtype == np.float32 and t.shape == (60000, 10)


def test_mnist_arrays_are_fresh_and_cache_is_reused(mnist):
    (x, t), _ = D.load_mnist()
    x[:] = -1.0
    t[:] = -1
    (x2, t2), _ = D.load_mnist()
    np.testing.assert_array_equal(x2, mnist[0][0])
    np.testing.assert_array_equal(t2, mnist[0][1])
    first = D._load_arrays(D._DATA_DIR, D.MNIST_SHA256)
    assert D._load_arrays(D._DATA_DIR, D.MNIST_SHA256) is first
    assert not first["train_images"].flags.writeable


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"normalize": 1}, TypeError, "normalize: "),
        ({"flatten": "no"}, TypeError, "flatten: "),
        ({"one_hot_label": None}, TypeError, "one_hot_label: "),
        ({"dtype": "int8"}, TypeError, "dtype: "),
        ({"path": 7}, TypeError, "path: "),
    ],
)
def test_mnist_validates(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        D.load_mnist(**kwargs)


def test_mnist_path_uncompressed_copy(tmp_path, mnist):
    for name in D.MNIST_SHA256:
        raw = gzip.decompress((D._DATA_DIR / name).read_bytes())
        (tmp_path / name.removesuffix(".gz")).write_bytes(raw)
    (x, t), (xt, tt) = D.load_mnist(path=tmp_path)
    for got, want in zip((x, t, xt, tt), (*mnist[0], *mnist[1]), strict=True):
        np.testing.assert_array_equal(got, want)
    assert D.load_mnist(path=str(tmp_path))[1][1].shape == (10000,)


def write_small_mnist(directory: Path, n_train=5, n_test=3, gz=True, labels_of=None):
    """A tiny, valid MNIST-shaped directory (not checksummed: not the shipped copy)."""
    rng = np.random.default_rng(0)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10 if labels_of is None else labels_of(n)
        for kind, a, dims in (("images", images, 3), ("labels", labels, 1)):
            name = f"{stem}-{kind}-idx{dims}-ubyte"
            data = idx_bytes(a, 0x08)
            if gz:
                (directory / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (directory / name).write_bytes(data)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_env_var_directory(tmp_path, monkeypatch, gz):
    write_small_mnist(tmp_path, gz=gz)
    monkeypatch.setenv(D.MNIST_DIR_ENV, str(tmp_path))
    (x, t), (xt, tt) = D.load_mnist(flatten=False)
    assert x.shape == (5, 1, 28, 28) and xt.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(t, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(tt, [0, 1, 2])
    raw = D.load_idx(next(tmp_path.glob("train-images*")))
    np.testing.assert_array_equal(x[:, 0] * 255, raw.astype(np.float32))


def test_mnist_empty_split_keeps_the_documented_shapes(tmp_path):
    # an IDX file of 0 images passes every check: its split is an empty (0, 784) array,
    # not NumPy's "cannot reshape array of size 0 into shape (0,newaxis)"
    write_small_mnist(tmp_path, n_train=2, n_test=0)
    (x, t), (xt, tt) = D.load_mnist(path=tmp_path, one_hot_label=True)
    assert x.shape == (2, 784) and xt.shape == (0, 784) and xt.dtype == np.float32
    assert t.shape == (2, 10) and tt.shape == (0, 10)
    _, (xt, tt) = D.load_mnist(path=tmp_path, flatten=False, normalize=False)
    assert xt.shape == (0, 1, 28, 28) and tt.shape == (0,) and tt.dtype == np.int64


def test_mnist_explicit_path_beats_env_var(tmp_path, monkeypatch):
    write_small_mnist(tmp_path)
    monkeypatch.setenv(D.MNIST_DIR_ENV, str(tmp_path / "missing"))
    assert D.load_mnist(path=tmp_path)[0][0].shape == (5, 784)


def test_mnist_directory_checks(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        D.load_mnist(path=tmp_path / "missing")
    monkeypatch.setenv(D.MNIST_DIR_ENV, "   ")  # quoted: a blank name is seen
    with pytest.raises(FileNotFoundError, match=f"^{D.MNIST_DIR_ENV}: '   ' is not a directory"):
        D.load_mnist()
    monkeypatch.delenv(D.MNIST_DIR_ENV)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        D.load_mnist(path=tmp_path)
    write_small_mnist(tmp_path, labels_of=lambda n: np.full(n, 10, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz: expected labels 0\.\.9"):
        D.load_mnist(path=tmp_path)


def test_mnist_directory_shape_mismatch(tmp_path):
    write_small_mnist(tmp_path)
    labels = np.zeros(4, dtype=np.uint8)  # 5 images
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels, 8)))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz: expected 5 uint8 labels"):
        D.load_mnist(path=tmp_path)
    images = np.zeros((5, 28, 27), dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images, 8)))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: expected uint8 images"):
        D.load_mnist(path=tmp_path)


@pytest.fixture
def damaged_copy(tmp_path):
    """A copy of the shipped data with one byte of the test labels flipped."""
    copy = tmp_path / "data"
    shutil.copytree(D._DATA_DIR, copy)
    target = copy / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    return copy


def test_damaged_shipped_file_fails_checksum(damaged_copy):
    target = damaged_copy / "t10k-labels-idx1-ubyte.gz"
    actual = hashlib.sha256(target.read_bytes()).hexdigest()
    expected = D.MNIST_SHA256["t10k-labels-idx1-ubyte.gz"]
    pattern = f"{re.escape(str(target))}: SHA-256 mismatch.*expected {expected}, got {actual}"
    with pytest.raises(ValueError, match=pattern):
        D._load_arrays(damaged_copy, D.MNIST_SHA256)


def test_damaged_shipped_copy_through_load_mnist(damaged_copy, monkeypatch):
    monkeypatch.setattr(D, "_DATA_DIR", damaged_copy)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: SHA-256 mismatch"):
        D.load_mnist()
    # the same damaged directory given as path= is not checksummed: the gzip CRC catches it
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: corrupt gzip"):
        D.load_mnist(path=damaged_copy)


# ----------------------------------------------------------------------------- decompressed copy
@pytest.fixture
def fresh_copy_dir(tmp_path, monkeypatch):
    """An empty FASTINIT_CACHE_DIR and no in-process arrays, so loads go to the files."""
    monkeypatch.setenv(D.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(D, "_CACHE", {})
    return tmp_path / "cache"


def _load_shipped():
    return D._load_arrays(D._DATA_DIR, D.MNIST_SHA256)


def test_shipped_data_decompressed_once_into_the_cache_dir(fresh_copy_dir, mnist):
    (x, t), (xt, tt) = D.load_mnist()
    copies = sorted(p.name for p in fresh_copy_dir.iterdir())
    assert copies == sorted(f"{n[:-3]}-{D.MNIST_SHA256[n][:16]}" for n in D.MNIST_SHA256)
    for name in copies:  # the copies are the original MNIST files
        payload = (fresh_copy_dir / name).read_bytes()
        assert hashlib.sha256(payload).hexdigest() == D.MNIST_PAYLOAD_SHA256[name[:-17]]
    for got, want in zip((x, t, xt, tt), (*mnist[0], *mnist[1]), strict=True):
        np.testing.assert_array_equal(got, want)
    D._CACHE.clear()
    mtimes = {p: p.stat().st_mtime_ns for p in fresh_copy_dir.iterdir()}
    arrays = _load_shipped()  # from the copies: nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in fresh_copy_dir.iterdir()} == mtimes
    np.testing.assert_array_equal(arrays["train_labels"], mnist[0][1])


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "crc-kept"])
def test_damaged_copy_is_rebuilt(fresh_copy_dir, mnist, damage, monkeypatch):
    _load_shipped()
    D._CACHE.clear()
    copy = next(fresh_copy_dir.glob("train-labels-*"))
    data = bytearray(copy.read_bytes())
    if damage == "flip":
        data[-1] ^= 0x01  # a label 5 <-> 4 swap would pass every shape check
    if damage == "crc-kept":  # an edit that keeps the length and CRC-32 (labels can be
        data[-1] ^= 0x01  # chosen to), emulated: the gzip trailer is made to match it
        trailer = (zlib.crc32(bytes(data)), len(data) % 2**32)
        monkeypatch.setattr(D, "_gzip_trailer", lambda raw: trailer)
    copy.write_bytes(bytes(data[: len(data) // 2] if damage == "truncate" else data))
    if damage == "empty":
        copy.write_bytes(b"")
    np.testing.assert_array_equal(_load_shipped()["train_labels"], mnist[0][1])
    payload = copy.read_bytes()
    assert hashlib.sha256(payload).hexdigest() == D.MNIST_PAYLOAD_SHA256["train-labels-idx1-ubyte"]


def test_copies_get_default_permissions(fresh_copy_dir, mnist):
    # a cache shared between users must be readable by them: the mode open() gives
    fresh_copy_dir.mkdir()
    reference = fresh_copy_dir / "reference"
    reference.write_bytes(b"")
    D.load_mnist()
    modes = {p.name: p.stat().st_mode & 0o777 for p in fresh_copy_dir.iterdir()}
    assert len(modes) == 5 and set(modes.values()) == {modes["reference"]}


def test_interrupted_copy_leaves_no_temporary_file(fresh_copy_dir, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(D.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        D._write_copy(fresh_copy_dir / "copy", b"data")
    assert list(fresh_copy_dir.iterdir()) == []


# " off" or "none\n" (a stray blank, a value read from a file) was a relative directory
# " off" made in the working directory
@pytest.mark.parametrize("off", ["0", "off", "None", " off", "none\n"])
def test_cache_dir_can_be_turned_off(tmp_path, monkeypatch, off, mnist):
    monkeypatch.setenv(D.CACHE_DIR_ENV, off)
    monkeypatch.setattr(D, "_CACHE", {})
    monkeypatch.chdir(tmp_path)
    assert D.cache_dir() is None
    np.testing.assert_array_equal(_load_shipped()["test_labels"], mnist[1][1])
    assert list(tmp_path.iterdir()) == []


def test_cache_dir_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv(D.CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert D.cache_dir() == tmp_path / "fastinit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert D.cache_dir() == Path.home() / ".cache" / "fastinit"

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", no_home)
    assert D.cache_dir() is None


def test_unwritable_cache_dir_still_loads(tmp_path, monkeypatch, mnist):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")  # the cache "directory" is a file: mkdir fails
    monkeypatch.setenv(D.CACHE_DIR_ENV, str(blocker / "cache"))
    monkeypatch.setattr(D, "_CACHE", {})
    np.testing.assert_array_equal(_load_shipped()["train_labels"], mnist[0][1])
    assert list(tmp_path.iterdir()) == [blocker]


# ----------------------------------------------------------------------------- IDX reader
@pytest.mark.parametrize(
    ("code", "dtype"),
    [(0x08, "u1"), (0x09, "i1"), (0x0B, "i2"), (0x0C, "i4"), (0x0D, "f4"), (0x0E, "f8")],
)
@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_round_trip(tmp_path, code, dtype, gz):
    a = (np.arange(24) * 37 - 300).reshape(2, 3, 4)
    a = (a % 256 if dtype == "u1" else a % 256 - 128 if dtype == "i1" else a).astype(dtype)
    if dtype.startswith("f"):
        a = a / 7
    data = idx_bytes(a, code)
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    path.write_bytes(gzip.compress(data) if gz else data)
    got = D.load_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative and got.shape == (2, 3, 4)
    assert got.flags.writeable
    np.testing.assert_array_equal(got, a)


def test_load_idx_detects_gzip_by_content(tmp_path):
    a = np.arange(5, dtype=np.uint8)
    path = tmp_path / "labels.idx"  # gzip data without a .gz name
    path.write_bytes(gzip.compress(idx_bytes(a, 0x08)))
    np.testing.assert_array_equal(D.load_idx(path), a)


def good_idx() -> bytes:
    return idx_bytes(np.arange(12, dtype=np.int16).reshape(3, 4), 0x0B)


def corrupt_gzip() -> bytes:
    raw = bytearray(gzip.compress(good_idx()))
    raw[12] ^= 0xFF  # inside the deflate stream
    return bytes(raw)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (good_idx()[:-3], "truncated: shape (3, 4) of i2 needs 24 bytes of data, got 21"),
        (good_idx() + b"\x00\x01", "2 trailing bytes: shape (3, 4) of i2 needs 24 bytes"),
        # a single trailing byte was accepted, the file read as if it ended there
        (good_idx() + b"\x00", "1 trailing bytes: shape (3, 4) of i2 needs 24 bytes"),
        (b"\x01" + good_idx()[1:], "bad magic number 0x01000b02"),
        (b"\x00\x00\x0a\x02" + good_idx()[4:], "unknown IDX type code 0x0A"),
        (good_idx()[:9], "truncated header: 2 dimensions need 12 bytes, got 9"),
        (b"\x00\x00", "not an IDX file: 2 bytes"),
        (corrupt_gzip(), "corrupt gzip data"),
        (gzip.compress(good_idx())[:-10], "corrupt gzip data"),
    ],
    ids=[
        "truncated",
        "trailing",
        "trailing-1",
        "magic",
        "dtype",
        "header",
        "short",
        "gzip",
        "gzip-cut",
    ],
)
def test_load_idx_errors_name_file(tmp_path, data, message):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: {re.escape(message)}"):
        D.load_idx(path)


@pytest.mark.parametrize("path", [None, b"mnist-idx1-ubyte", 3])
def test_load_idx_names_a_path_of_the_wrong_type(path):
    with pytest.raises(TypeError, match=r"^path: expected a file name"):
        D.load_idx(path)


# ----------------------------------------------------------------------------- script
def load_script():
    path = Path(__file__).parents[1] / "scripts" / "make_mnist.py"
    spec = importlib.util.spec_from_file_location("make_mnist", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_mnist_helpers():
    mm = load_script()
    u = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(mm.to_uint8(u.astype(np.float32) / np.float32(256)), u)
    with pytest.raises(SystemExit, match="not all integers"):
        mm.to_uint8(np.array([0.5 / 256], dtype=np.float32))
    with pytest.raises(SystemExit, match="outside"):
        mm.to_uint8(np.array([1.0], dtype=np.float32))
    data = mm.encode_idx(u)
    assert data == idx_bytes(u, 0x08)
    gz = mm.gzip_bytes(data)
    assert gz == mm.gzip_bytes(data) and gzip.decompress(gz) == data
    assert gz[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    np.testing.assert_array_equal(D.parse_idx(data), u)


def test_planar_size_check_and_the_training_set_count():
    assert D.check_planar_size(400) == 400
    for bad in (401, 0, -2):
        with pytest.raises(ValueError, match="m: expected"):
            D.check_planar_size(bad)
    (x, _), _ = D.load_mnist()
    assert D.mnist_train_size() == len(x) == 60000


def test_a_tilde_in_the_environment_is_the_home_directory(tmp_path, monkeypatch):
    # set where no shell expands it (a Docker ENV, a systemd unit): not a directory named "~"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(D.CACHE_DIR_ENV, "~/cache")
    assert D.cache_dir() == tmp_path / "cache"
    (tmp_path / "mine").mkdir()
    monkeypatch.setenv(D.MNIST_DIR_ENV, "~/mine")
    assert D._mnist_source(None) == (tmp_path / "mine", None)


def test_a_relative_xdg_cache_home_is_ignored(monkeypatch, tmp_path):
    # the XDG Base Directory spec: a relative path in these variables is invalid, ignore it
    # (else the 54 MB copies would land under whatever directory the process runs in)
    monkeypatch.delenv(D.CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for relative in ("cache", "~/cache", "./cache"):
        monkeypatch.setenv("XDG_CACHE_HOME", relative)
        assert D.cache_dir() == tmp_path / ".cache" / "fastinit"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert D.cache_dir() == tmp_path / "xdg" / "fastinit"


def test_an_empty_mnist_path_is_refused_not_read_as_the_working_directory():
    with pytest.raises(ValueError, match=r"^path: expected a directory name or None, got ''"):
        D.load_mnist(path="")


def test_a_relative_mnist_path_is_read_from_the_working_directory_of_each_call(
    tmp_path, monkeypatch
):
    # two copies with files of the same sizes and times (as extracted from two archives made
    # alike): the same relative path names the one in the working directory of each call
    for name, label in (("a", 1), ("b", 2)):
        (tmp_path / name / "mnist").mkdir(parents=True)
        write_small_mnist(
            tmp_path / name / "mnist",
            gz=False,
            labels_of=lambda n, v=label: np.full(n, v, np.uint8),
        )
        for f in (tmp_path / name / "mnist").iterdir():
            os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    monkeypatch.setattr(D, "_CACHE", {})
    for name, label in (("a", 1), ("b", 2), ("a", 1)):
        monkeypatch.chdir(tmp_path / name)
        assert set(D.load_mnist(path="mnist")[0][1]) == {label}, name


def test_an_empty_mnist_dir_variable_means_the_shipped_copy(monkeypatch, mnist):
    # FASTINIT_MNIST_DIR="" (set but empty: `export FASTINIT_MNIST_DIR=`) was the refused
    # path '' where load_mnist documents "if set and non-empty"
    unset = D._mnist_source(None)
    monkeypatch.setenv(D.MNIST_DIR_ENV, "")
    assert D._mnist_source(None) == unset == (D._DATA_DIR, D.MNIST_SHA256)
    assert D.mnist_train_size() == len(mnist[0][1])
    np.testing.assert_array_equal(D.load_mnist()[1][1], mnist[1][1])


def test_a_rewritten_file_of_the_same_size_is_read_again(tmp_path, monkeypatch):
    # the in-process cache kept the old arrays when a file changed but kept its size:
    # a relabelled training set went on training with the old labels
    monkeypatch.setattr(D, "_CACHE", {})
    write_small_mnist(tmp_path, gz=False)
    labels = tmp_path / "train-labels-idx1-ubyte"
    before = D.load_mnist(path=tmp_path)[0][1]
    raw = bytearray(labels.read_bytes())
    raw[8] = (raw[8] + 1) % 10  # the first training label
    mtime = labels.stat().st_mtime_ns
    labels.write_bytes(bytes(raw))
    os.utime(labels, ns=(mtime, mtime + 10**9))  # a later time, whatever the clock's resolution
    after = D.load_mnist(path=tmp_path)[0][1]
    np.testing.assert_array_equal(after, D.load_idx(labels))
    assert after[0] != before[0]


@pytest.mark.parametrize(("data", "exc"), [(None, TypeError), (5, TypeError), ("abc", TypeError),
                                           (np.zeros(8, np.uint8), TypeError)])  # fmt: skip
def test_parse_idx_names_data_that_is_no_bytes(data, exc):
    # "object of type 'NoneType' has no len()", an AttributeError, "truth value ... ambiguous"
    with pytest.raises(exc, match=r"^data: expected the bytes of an IDX file"):
        D.parse_idx(data)
    assert D.parse_idx(bytearray(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07")).tolist() == [7]


def test_load_idx_refuses_an_empty_name():
    # Path("") is the working directory: "IsADirectoryError: '.'"
    with pytest.raises(ValueError, match=r"^path: expected a file name, got ''"):
        D.load_idx("")
