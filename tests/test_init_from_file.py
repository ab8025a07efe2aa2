"""MLP(init=<path>): pretrained weights from an .npz file, checked layer by layer."""

from __future__ import annotations

import itertools
import pathlib

import numpy as np
import pytest

from fastinit.model import MLP

SIZES = [6, 5, 4, 3]


def arrays(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    w = [rng.standard_normal((a, b)).astype(dtype) for a, b in itertools.pairwise(SIZES)]
    b = [rng.standard_normal(n).astype(dtype) for n in SIZES[1:]]
    return w, b


def test_from_a_saved_model(tmp_path):
    src = MLP(SIZES, activation="tanh", init="glorot_normal",
              bias_init=("normal", {"std": 0.5}), seed=3, dtype="float64")  # fmt: skip
    src.save(tmp_path / "m.npz")
    for path in (tmp_path / "m.npz", str(tmp_path / "m.npz")):
        m = MLP(SIZES, activation="tanh", init=path, dtype="float64")
        for a, b in zip(m.weights, src.weights, strict=True):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(m.biases, src.biases, strict=True):
            np.testing.assert_array_equal(a, b)  # biases from the file win over bias_init
        x = np.random.default_rng(0).standard_normal((4, 6))
        np.testing.assert_array_equal(m.forward(x), src.forward(x))


@pytest.mark.parametrize("names", [("W", "b"), ("weights_", "biases_")])
def test_plain_npz_key_names_and_cast(tmp_path, names):
    w, b = arrays()
    np.savez(tmp_path / "p.npz", **{f"{names[0]}{k}": v for k, v in enumerate(w)},
             **{f"{names[1]}{k}": v for k, v in enumerate(b)})  # fmt: skip
    m = MLP(SIZES, init=tmp_path / "p.npz")
    assert m.dtype == np.float32
    for k in range(3):
        np.testing.assert_array_equal(m.weights[k], w[k].astype(np.float32))
        np.testing.assert_array_equal(m.biases[k], b[k].astype(np.float32))


def test_weights_only_use_bias_init(tmp_path):
    w, _ = arrays()
    np.savez(tmp_path / "w.npz", **{f"W{k}": v for k, v in enumerate(w)})
    m = MLP(SIZES, init=str(tmp_path / "w.npz"), bias_init=("constant", {"value": 0.25}),
            dtype="float64")  # fmt: skip
    np.testing.assert_array_equal(m.weights[2], w[2])
    assert all((b == 0.25).all() for b in m.biases)


def test_shape_errors_name_the_layer(tmp_path):
    w, b = arrays()
    w[1] = np.zeros((5, 7))
    np.savez(tmp_path / "bad.npz", **{f"W{k}": v for k, v in enumerate(w)})
    with pytest.raises(
        ValueError, match=r"layer 1 weights.*expected shape \(5, 4\), found \(5, 7\)"
    ):
        MLP(SIZES, init=tmp_path / "bad.npz")
    w, b = arrays()
    b[2] = np.zeros(2)
    np.savez(tmp_path / "badb.npz", **{f"W{k}": v for k, v in enumerate(w)},
             **{f"b{k}": v for k, v in enumerate(b)})  # fmt: skip
    with pytest.raises(ValueError, match=r"layer 2 biases.*expected shape \(3,\), found \(2,\)"):
        MLP(SIZES, init=tmp_path / "badb.npz")


@pytest.mark.parametrize(
    ("kind", "bad", "message"),
    [("W", np.nan, "expected finite values"), ("b", np.inf, "expected finite values"),
     ("W", "x", "expected a real-valued array")],
)  # fmt: skip
def test_value_errors_name_the_file_and_the_layer(tmp_path, kind, bad, message):
    w, b = arrays()
    arrays_of = {"W": w, "b": b}[kind]
    arrays_of[1] = np.full(arrays_of[1].shape, bad)
    path = tmp_path / "bad.npz"
    np.savez(path, **{f"W{k}": v for k, v in enumerate(w)},
             **{f"b{k}": v for k, v in enumerate(b)})  # fmt: skip
    what = {"W": "weights", "b": "biases"}[kind]
    with pytest.raises(ValueError, match=rf"^init: layer 1 {what} in .*bad\.npz: {message}"):
        MLP(SIZES, init=path)


def test_bad_files(tmp_path):
    w, b = arrays()
    cases = {
        "missing.npz": {f"W{k}": v for k, v in enumerate(w[:2])},
        "extra.npz": {**{f"W{k}": v for k, v in enumerate(w)}, "W3": np.zeros((3, 3))},
        "partial.npz": {**{f"W{k}": v for k, v in enumerate(w)}, "b0": b[0]},
        "both.npz": {**{f"W{k}": v for k, v in enumerate(w)}, "weights_0": w[0]},
        "pickled.npz": {**{f"W{k}": v for k, v in enumerate(w)},
                        "b0": np.array([object()], dtype=object)},
    }  # fmt: skip
    messages = {
        "missing.npz": "no weights for layer 2",
        "extra.npz": "more than",
        "partial.npz": "not for layer 1",
        "both.npz": "both",
        "pickled.npz": "readable",
    }
    for name, content in cases.items():
        np.savez(tmp_path / name, **content)
        with pytest.raises(ValueError, match=messages[name]):
            MLP(SIZES, init=tmp_path / name)
    (tmp_path / "junk.npz").write_text("not a zip")
    np.save(tmp_path / "plain.npy", w[0])  # one array, not an archive
    junk = (tmp_path / "junk.npz", tmp_path / "plain.npy", tmp_path / "absent.npz")
    for path in (*junk, pathlib.Path("no/such/dir")):
        with pytest.raises(ValueError, match="init"):
            MLP(SIZES, init=path)
    # a plain name is still an initializer name
    with pytest.raises(ValueError, match="unknown initializer"):
        MLP(SIZES, init="weights")


def test_name_without_suffix_as_save_and_load_take_it(tmp_path):
    src = MLP(SIZES, seed=4)
    src.save(tmp_path / "m")  # writes m.npz, which MLP.load(tmp_path / "m") reads
    for path in (tmp_path / "m", str(tmp_path / "m")):
        np.testing.assert_array_equal(MLP(SIZES, init=path).weights[1], src.weights[1])


def test_other_keys_are_not_read(tmp_path):
    # another tool's file: extra arrays, one of them pickled, which allow_pickle=False refuses
    w, _ = arrays()
    np.savez(tmp_path / "tool.npz", **{f"W{k}": v for k, v in enumerate(w)},
             config=np.array([{"lr": 0.1}], dtype=object), step=np.array(7))  # fmt: skip
    m = MLP(SIZES, init=tmp_path / "tool.npz", dtype="float64")
    np.testing.assert_array_equal(m.weights[2], w[2])
    np.savez(tmp_path / "pickled_w.npz", **{f"W{k}": v for k, v in enumerate(w[:2])},
             W2=np.array([[object()]], dtype=object))  # fmt: skip
    with pytest.raises(ValueError, match="readable"):  # a needed array is never unpickled
        MLP(SIZES, init=tmp_path / "pickled_w.npz")
