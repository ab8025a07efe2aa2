"""Data sets for initialization experiments: MNIST, the planar 'flower', Gaussian inputs.

MNIST ships inside the package (``fastinit/data/``) as the four standard IDX
files, gzip-compressed, holding the original uint8 images and labels (60000
training and 10000 test examples).  Nothing is downloaded at run time.  Each
shipped file's SHA-256 (of the ``.gz`` bytes as stored) is checked before it
is parsed, and the parsed arrays are cached in-process.  The SHA-256 of every
decompressed IDX payload is recorded too (:data:`MNIST_PAYLOAD_SHA256`): it
identifies the data independently of how it was compressed.  See
``fastinit/data/README.md`` for provenance and ``scripts/make_mnist.py`` for
the conversion.

:func:`load_idx` reads any IDX file, compressed or not (Fashion-MNIST, your
own copy of MNIST...), and :func:`load_mnist` accepts ``path=`` or the
environment variable ``FASTINIT_MNIST_DIR`` to read the four standard files
from another directory.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fastinit._files import write_bytes
from fastinit._validate import (
    check_bool,
    check_dtype,
    check_int,
    check_path,
    check_seed,
    check_shape,
)
from fastinit.random import fill_normal

__all__ = [
    "CACHE_DIR_ENV",
    "MNIST_DIR_ENV",
    "MNIST_PAYLOAD_SHA256",
    "MNIST_SHA256",
    "cache_dir",
    "check_planar_size",
    "gaussian",
    "load_idx",
    "load_mnist",
    "mnist_train_size",
    "parse_idx",
    "planar",
]

#: Environment variable naming a directory with the four standard MNIST files.
MNIST_DIR_ENV = "FASTINIT_MNIST_DIR"

#: Environment variable naming where decompressed copies of the shipped data are
#: kept (default ``$XDG_CACHE_HOME/fastinit``, else ``~/.cache/fastinit``); one of
#: ``0``, ``off``, ``none`` (any case) turns the copies off.
CACHE_DIR_ENV = "FASTINIT_CACHE_DIR"
_CACHE_OFF = ("0", "off", "none")

_DATA_DIR = Path(__file__).resolve().parent / "data"

#: The four standard MNIST files by role, named without ``.gz``.
_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: SHA-256 of the shipped ``.gz`` files, byte for byte; checked at load time.
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "71524e2cd1ad2968737f7f2f2ff69cbfc32df8ccddff51593f7cb2d4e0eb5b64"
    ),
    "train-labels-idx1-ubyte.gz": (
        "fe03b8bd7915f70bf5aa08be480aa413fbd85afcaa58b35d230d335f284fd88e"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "5634745efa576a17e7d4cf5cd9d09123c75e6538e5114267c2d156edaf519341"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "ae18e77e031ccde52407f794d123116439864147d33ac992975f85dd4dc42af6"
    ),
}

#: SHA-256 of the decompressed IDX payloads (header included), which are the
#: original MNIST files; checked on the decompressed copies kept in :func:`cache_dir`
#: before they are parsed, and by ``scripts/make_mnist.py`` and the tests.
MNIST_PAYLOAD_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

_IMAGE_SHAPE = (28, 28)
_N_CLASSES = 10

# ----------------------------------------------------------------------------- IDX reader
#: IDX type codes -> big-endian numpy dtypes.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def _decompress(raw: bytes, name: str) -> bytes:
    """Gunzip ``raw`` (if it starts with the gzip magic), or raise ValueError naming ``name``."""
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise ValueError(f"{name}: corrupt gzip data ({exc})") from exc


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file.

    Parameters
    ----------
    data : bytes
        The whole file: magic number, dimensions, payload.
    name : str
        What to call the data in error messages (usually the file name).

    Returns
    -------
    numpy.ndarray
        A new, writeable array in native byte order with the file's shape and type.

    Raises
    ------
    ValueError
        If the magic number, type code, dimensions or payload length are wrong.
    TypeError
        Naming ``data``, if it is not bytes (bytes, bytearray or memoryview).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data: expected the bytes of an IDX file, got {type(data).__name__}")
    view = _idx_view(bytes(data) if isinstance(data, memoryview) else data, name)
    return view.astype(view.dtype.newbyteorder("="))


def _idx_view(data: bytes, name: str) -> np.ndarray:
    """:func:`parse_idx` without the copy: a read-only view of ``data`` in the file's byte order."""
    if len(data) < 4:
        raise ValueError(
            f"{name}: not an IDX file: {len(data)} bytes, shorter than the magic number"
        )
    if data[:2] != b"\x00\x00":
        raise ValueError(
            f"{name}: bad magic number 0x{data[:4].hex()}: an IDX file starts with two zero bytes"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{name}: unknown IDX type code 0x{code:02X} (expected one of {known})")
    start = 4 + 4 * ndim
    if len(data) < start:
        raise ValueError(
            f"{name}: truncated header: {ndim} dimensions need {start} bytes, got {len(data)}"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    got = len(data) - start
    if got < expected:
        raise ValueError(
            f"{name}: truncated: shape {dims} of {dtype.str[1:]} needs {expected} bytes of data, "
            f"got {got}"
        )
    if got > expected:
        raise ValueError(
            f"{name}: {got - expected} trailing bytes: shape {dims} of {dtype.str[1:]} needs "
            f"{expected} bytes of data, got {got}"
        )
    flat = np.frombuffer(data, dtype=dtype, count=math.prod(dims), offset=start)
    return flat.reshape(dims)


def load_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the format of MNIST and Fashion-MNIST), gzip-compressed or not.

    Compression is detected from the content (the gzip magic bytes), not the name.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    numpy.ndarray
        A new, writeable array in native byte order: uint8, int8, int16, int32,
        float32 or float64 for type codes 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E,
        shaped by the file's big-endian dimensions.

    Raises
    ------
    ValueError
        Naming the file and what is wrong: corrupt gzip data, bad magic number
        (the first two bytes must be zero), unknown type code, truncated header
        or data (expected N bytes, got M), or trailing bytes; naming ``path``
        if it is empty.
    FileNotFoundError
        If the file does not exist.
    TypeError
        If ``path`` is not a str or path-like (bytes included).
    """
    check_path(path, "path")
    if not os.fspath(path):  # Path("") is the working directory
        raise ValueError("path: expected a file name, got ''")
    path = Path(path)
    return _parse_file(path.read_bytes(), path)


# ----------------------------------------------------------------------------- MNIST
_CACHE: dict[tuple[Any, ...], dict[str, np.ndarray]] = {}


def _find_file(directory: Path, stem: str) -> Path:
    """The file for ``stem`` in ``directory``: ``stem.gz``, ``stem``, or the dotted variant."""
    dotted = stem.replace("-idx", ".idx")  # "train-images.idx3-ubyte", as on some mirrors
    names = [f"{stem}.gz", stem, f"{dotted}.gz", dotted]
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{directory}: no MNIST file {' or '.join(map(repr, names))}")


def _verify_sha256(path: Path, raw: bytes, expected: str) -> None:
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected:
        raise ValueError(
            f"{path}: SHA-256 mismatch, the file is damaged: expected {expected}, got {actual}; "
            "reinstall fastinit or rebuild the file with scripts/make_mnist.py"
        )


def _read_verified(paths: Mapping[str, Path], sha256: Mapping[str, str] | None) -> dict[str, bytes]:
    """The bytes of each file, all checked against ``sha256`` (if given) before any parsing."""
    raws = {role: p.read_bytes() for role, p in paths.items()}
    if sha256 is not None:
        for role, p in paths.items():
            if p.name not in sha256:
                raise ValueError(f"{p}: no recorded SHA-256 for a file named {p.name!r}")
            _verify_sha256(p, raws[role], sha256[p.name])
    return raws


def _parse_file(raw: bytes, path: Path) -> np.ndarray:
    return parse_idx(_decompress(raw, str(path)), str(path))


def cache_dir() -> Path | None:
    """Where decompressed copies of the shipped data are kept, or ``None`` (turned off).

    ``$FASTINIT_CACHE_DIR`` if set (``0``, ``off`` or ``none`` turn the copies
    off), else ``$XDG_CACHE_HOME/fastinit`` (if an absolute path: the XDG Base
    Directory specification says to ignore a relative one), else
    ``~/.cache/fastinit`` (``None`` when there is no home directory to find).

    Returns
    -------
    pathlib.Path or None
    """
    value = os.environ.get(CACHE_DIR_ENV)
    if value is not None and value.strip().lower() in _CACHE_OFF:
        return None
    if value:
        return Path(value).expanduser()  # "~/x" set where no shell expands it (a Docker ENV)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # a relative one is invalid (XDG spec): not the cwd's
        return Path(xdg) / "fastinit"
    try:
        return Path.home() / ".cache" / "fastinit"
    except (RuntimeError, KeyError):  # no HOME and no passwd entry
        return None


def _gzip_trailer(raw: bytes) -> tuple[int, int]:
    """``(CRC-32, size mod 2**32)`` of the uncompressed data: the last 8 bytes of a gzip file."""
    return int.from_bytes(raw[-8:-4], "little"), int.from_bytes(raw[-4:], "little")


def _read_copy(path: Path, raw: bytes, payload_sha256: str | None) -> bytes | None:
    """The decompressed copy of ``raw`` at ``path`` if it is there and is ``raw``'s payload:
    its SHA-256 is ``payload_sha256`` (about as fast as the CRC-32: 27 against 19 ms for
    the training images), or, without one, its length and CRC-32 match ``raw``'s trailer."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    crc, size = _gzip_trailer(raw)
    if len(data) % 2**32 != size:
        return None
    if payload_sha256 is not None:  # a CRC-32 can be kept by a deliberate edit
        return data if hashlib.sha256(data).hexdigest() == payload_sha256 else None
    return data if zlib.crc32(data) == crc else None


def _write_copy(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (:func:`fastinit._files.replacing`).

    The copy gets the default permissions (``0o666`` less the umask), so that a
    cache directory shared between users serves them all; errors are ignored
    (the copy is a cache), an interrupt is not, and leaves no temporary file.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, data)
    except OSError:
        pass


def _decompress_shipped(raw: bytes, path: Path, sha256: str) -> bytes:
    """:func:`_decompress` for a checksummed file, through a copy kept in :func:`cache_dir`.

    The copy is named by the file's verified SHA-256 and accepted only when its
    SHA-256 is the payload's (:data:`MNIST_PAYLOAD_SHA256`; a file without one:
    its length and CRC-32 match the gzip trailer of ``raw``); a missing, stale or
    damaged copy is rebuilt.  Reading it (about 20 ms for the training images)
    replaces a 0.2 s decompression in every new process.
    """
    directory = cache_dir()
    if directory is None or not raw.startswith(_GZIP_MAGIC):
        return _decompress(raw, str(path))
    copy = directory / f"{path.name.removesuffix('.gz')}-{sha256[:16]}"
    data = _read_copy(copy, raw, MNIST_PAYLOAD_SHA256.get(path.name.removesuffix(".gz")))
    if data is None:
        data = _decompress(raw, str(path))
        _write_copy(copy, data)
    return data


def _check_mnist_arrays(arrays: dict[str, np.ndarray], paths: dict[str, Path]) -> None:
    """Check that the images and labels of each split have MNIST's types and shapes."""
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        ipath, lpath = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != _IMAGE_SHAPE:
            raise ValueError(
                f"{ipath}: expected uint8 images of shape (N, 28, 28), "
                f"got {images.dtype} of shape {images.shape}"
            )
        if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
            raise ValueError(
                f"{lpath}: expected {images.shape[0]} uint8 labels to match {ipath.name}, "
                f"got {labels.dtype} of shape {labels.shape}"
            )
        if labels.size and labels.max() >= _N_CLASSES:
            raise ValueError(f"{lpath}: expected labels 0..9, found {int(labels.max())}")


def _load_arrays(directory: Path, sha256: Mapping[str, str] | None) -> dict[str, np.ndarray]:
    """The four MNIST arrays (uint8, read-only) from ``directory``, cached in-process.

    The shipped copy is decompressed once per machine (:func:`cache_dir`).

    ``sha256`` maps file names to the expected SHA-256 of their bytes (``None``
    skips the check).  The cache key includes each file's size and modification
    time and its resolved path (a relative ``path`` is read from the working
    directory of each call), so a changed file is read again.  This is also the
    tests' hook to run the checksum verification on a damaged copy of the
    shipped files.
    """
    paths = {role: _find_file(directory, stem) for role, stem in _MNIST_FILES.items()}
    # the file's real path: a relative one names another file in another working directory
    stats = tuple(
        (str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths.values()
    )
    key = (stats, None if sha256 is None else tuple(sorted(sha256.items())))
    if key not in _CACHE:
        raws = _read_verified(paths, sha256)
        arrays = {}
        for role, p in paths.items():
            if sha256 is None:
                data = _decompress(raws[role], str(p))
            else:
                data = _decompress_shipped(raws[role], p, sha256[p.name])
            view = _idx_view(data, str(p))  # MNIST's arrays are uint8: no byte swap, no copy
            arrays[role] = view.astype(view.dtype.newbyteorder("="), copy=False)
        _check_mnist_arrays(arrays, paths)
        for a in arrays.values():
            a.flags.writeable = False
        _CACHE[key] = arrays
    return _CACHE[key]


def _mnist_source(path: str | os.PathLike[str] | None) -> tuple[Path, Mapping[str, str] | None]:
    """The directory to read and the checksums to enforce (only for the shipped copy)."""
    name = "path"
    if path is None:
        path, name = os.environ.get(MNIST_DIR_ENV) or None, MNIST_DIR_ENV
    if path is None:
        return _DATA_DIR, MNIST_SHA256
    check_path(path, "path", "a directory name or None")
    if not os.fspath(path):  # Path("") is the working directory; an empty variable is unset
        raise ValueError("path: expected a directory name or None, got ''")
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"{name}: {str(directory)!r} is not a directory")
    return directory, None


def _images(raw: np.ndarray, normalize: bool, flatten: bool, dtype: np.dtype) -> np.ndarray:
    # one pass, converting on the fly: the same values as astype(dtype) / 255
    x = np.divide(raw, dtype.type(255), dtype=dtype) if normalize else raw.astype(dtype)
    # math.prod, not -1: NumPy cannot infer a dimension of an empty split (0 images)
    return (
        x.reshape(len(x), math.prod(_IMAGE_SHAPE))
        if flatten
        else x.reshape(len(x), 1, *_IMAGE_SHAPE)
    )


def _labels(raw: np.ndarray, one_hot: bool, dtype: np.dtype) -> np.ndarray:
    if not one_hot:
        return raw.astype(np.int64)
    t = np.zeros((raw.size, _N_CLASSES), dtype=dtype)
    t[np.arange(raw.size), raw] = 1
    return t


def load_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    dtype: Any = "float32",
    path: str | os.PathLike[str] | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST, with the signature of "Deep Learning from Scratch" (``dataset/mnist.py``).

    Parameters
    ----------
    normalize : bool
        Divide pixel values by 255 into [0, 1]; otherwise they stay 0..255
        (converted to ``dtype``).
    flatten : bool
        Images as rows of 784 values, shape (N, 784); otherwise (N, 1, 28, 28).
    one_hot_label : bool
        Labels as one-hot rows of ``dtype``, shape (N, 10); otherwise int64
        class numbers, shape (N,).
    dtype : {"float32", "float64"}
        Floating type of the images (and of one-hot labels).
    path : str, os.PathLike or None
        A directory holding the four standard files (``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
        ``t10k-labels-idx1-ubyte``, each with or without ``.gz``; the dotted
        names ``train-images.idx3-ubyte`` etc. work too).  ``None`` uses the
        environment variable ``FASTINIT_MNIST_DIR`` if set and non-empty,
        else the copy shipped with fastinit.  Checksums are enforced only for
        the shipped copy; headers, types and shapes are always checked.  The
        shipped copy is decompressed once per machine into :func:`cache_dir`.

    Returns
    -------
    ((x_train, t_train), (x_test, t_test)) : tuple of tuples of numpy.ndarray
        New arrays (the caller may modify them): 60000 training and 10000 test
        examples for MNIST, in the original order.

    Raises
    ------
    ValueError
        If a shipped file fails its SHA-256 check, or a file is not a valid
        IDX file of MNIST's types and shapes (the message names the file).
    FileNotFoundError
        If ``path`` is not a directory or lacks one of the files.
    TypeError
        If an argument has the wrong type.
    """
    normalize = check_bool(normalize, "normalize")
    flatten = check_bool(flatten, "flatten")
    one_hot_label = check_bool(one_hot_label, "one_hot_label")
    dt = check_dtype(dtype)
    arrays = _load_arrays(*_mnist_source(path))
    return tuple(
        (
            _images(arrays[f"{split}_images"], normalize, flatten, dt),
            _labels(arrays[f"{split}_labels"], one_hot_label, dt),
        )
        for split in ("train", "test")
    )


# ----------------------------------------------------------------------------- synthetic
def planar(seed: int = 1, m: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """The 'flower' data set of the Coursera planar-classification exercise.

    The same algorithm and draws as the exercise's ``load_planar_dataset``
    (``np.random.seed(seed)`` followed by ``np.random.randn`` calls), but from a
    local ``numpy.random.RandomState(seed)``, so numpy's global random state is
    left alone.  Seed 1 with ``m=400`` gives the exercise's data set (the one it
    trains and reports accuracy on); fastinit's planar experiment and sweeps
    use seed 2 as a held-out test set, which the exercise does not have.

    Parameters
    ----------
    seed : int
        Seed of the legacy generator, in [0, 2**32).
    m : int
        Number of points, a positive even integer; half of each class.

    Returns
    -------
    X : numpy.ndarray of float64, shape (m, 2)
        The points (the exercise returns the transpose, shape (2, m)).
    y : numpy.ndarray of int64, shape (m,)
        Class 0 for the first m/2 points, 1 for the rest (the exercise
        returns uint8 of shape (1, m)).
    """
    seed = check_int(seed, "seed", low=0, high=2**32 - 1)
    m = check_planar_size(m)
    rng = np.random.RandomState(seed)
    n = m // 2
    a = 4  # maximum ray of the flower
    X = np.zeros((m, 2))
    y = np.zeros(m, dtype=np.int64)
    for j in range(2):
        ix = slice(n * j, n * (j + 1))
        t = np.linspace(j * 3.12, (j + 1) * 3.12, n) + rng.randn(n) * 0.2  # theta
        r = a * np.sin(4 * t) + rng.randn(n) * 0.2  # radius
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[ix] = j
    return X, y


def check_planar_size(m: Any) -> int:
    """``m`` as :func:`planar` accepts it, a positive even integer of points an array
    can hold; else ValueError (TypeError for a non-integer).

    Parameters
    ----------
    m : int
        Number of points.

    Returns
    -------
    int
    """
    m = check_int(m, "m", low=1)
    if m % 2:
        raise ValueError(f"m: expected a positive even integer, got {m}")
    check_shape((m, 2), "m")  # the points' array (m, 2): one NumPy can make
    return m


def mnist_train_size(path: str | os.PathLike[str] | None = None) -> int:
    """How many training images :func:`load_mnist` would return (60000 for the shipped copy).

    Reads only the training labels file (60 kB), from the directory
    :func:`load_mnist` reads (``path``, else ``$FASTINIT_MNIST_DIR``, else the
    shipped copy), unchecked: where :func:`load_mnist` refuses the files (a
    checksum, a count that differs from the images'), this count may still come.

    Parameters
    ----------
    path : str or os.PathLike, optional
        As in :func:`load_mnist`.

    Returns
    -------
    int
    """
    directory, _ = _mnist_source(path)
    return len(load_idx(_find_file(directory, _MNIST_FILES["train_labels"])))


def gaussian(n: int, d: int, seed: int = 0, dtype: Any = "float32") -> np.ndarray:
    """Standard normal inputs for activation-histogram experiments.

    Drawn with fastinit's counter-based generator,
    ``fastinit.random.fill_normal(out, 0.0, 1.0, seed=seed, stream=0)``, so the
    result depends only on ``(n, d, seed, dtype)``, not on the thread count.

    Parameters
    ----------
    n : int
        Number of samples, >= 1.
    d : int
        Number of features, >= 1.
    seed : int
        Generator key, in [0, 2**64).
    dtype : {"float32", "float64"}
        Floating type of the result.

    Returns
    -------
    numpy.ndarray, shape (n, d)
        Independent N(0, 1) draws.
    """
    n = check_int(n, "n", low=1)
    d = check_int(d, "d", low=1)
    seed = check_seed(seed)
    check_shape((n, d), "(n, d)")  # an array NumPy could not make is refused by name
    out = np.empty((n, d), dtype=check_dtype(dtype))
    return fill_normal(out, 0.0, 1.0, seed=seed, stream=0)
