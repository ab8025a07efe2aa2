"""MLP: construction, initialization streams, weights, inference, files and bad input."""

from __future__ import annotations

import array
import io
import os
import re
import struct
import warnings
import zipfile

import numpy as np
import pytest

import fastinit
from fastinit import init, optim, train
from fastinit._validate import all_finite
from fastinit.model import MLP
from tests import reference as ref

RNG = np.random.default_rng(1)
X = RNG.normal(size=(20, 4)).astype(np.float32)
Y = RNG.integers(0, 3, size=20)


def _acts(model: MLP) -> list:
    return [(a.name, a.params) for a in model.activations[:-1]]


# ----------------------------------------------------------------------------- construction
def test_layer_k_uses_streams_2k_and_2k_plus_1_of_the_seed():
    model = MLP([4, 8, 3], init="glorot_uniform", bias_init=("normal", {"std": 0.1}), seed=9)
    for k, (fi, fo) in enumerate([(4, 8), (8, 3)]):
        w = init.get("glorot_uniform")((fi, fo), seed=9, stream=2 * k, dtype="float32")
        b = init.get("normal")((fo,), std=0.1, seed=9, stream=2 * k + 1, dtype="float32")
        np.testing.assert_array_equal(model.weights[k], w)
        np.testing.assert_array_equal(model.biases[k], b)
    deeper = MLP([4, 8, 5, 3], init="glorot_uniform", seed=9)
    np.testing.assert_array_equal(deeper.weights[0], model.weights[0])
    assert not np.array_equal(MLP([4, 8, 3], seed=10).weights[0], MLP([4, 8, 3], seed=9).weights[0])


def test_nested_lists_in_a_per_layer_list_are_arrays_as_assignment_takes_them():
    # model.weights[k] = [[...]] takes nested lists; init=[...] per layer refused them
    w0, w1 = [[0.5, -1.0], [2.0, 0.25]], [[1.5], [-0.5]]
    model = MLP([2, 2, 1], init=[w0, w1], bias_init=[[0.1, 0.2], [0.3]])
    np.testing.assert_array_equal(model.weights[0], np.array(w0, np.float32))
    np.testing.assert_array_equal(model.weights[1], np.array(w1, np.float32))
    np.testing.assert_array_equal(model.biases[0], np.array([0.1, 0.2], np.float32))
    with pytest.raises(ValueError, match=r"^init\[1\]: expected shape \(2, 1\), got \(2,\)"):
        MLP([2, 2, 1], init=[w0, [1.0, 2.0]])
    with pytest.raises(ValueError, match=r"^init\[0\]: .*'he_normal'"):
        MLP([2, 2, 1], init=[["he_normal"], w1])  # a list of names is not an array


def test_init_forms_per_layer():
    w1 = np.full((8, 3), 0.5)
    model = MLP(
        [4, 8, 3], init=[("normal", {"std": 2.0}), w1], bias_init=[0.1 * np.ones(8), "ones"]
    )
    assert model.weights[0].std() > 1.0
    np.testing.assert_array_equal(model.weights[1], w1.astype(np.float32))
    np.testing.assert_allclose(model.biases[0], 0.1)
    np.testing.assert_array_equal(model.biases[1], 1.0)
    calls = []

    def custom(shape, *, seed=0, stream=0, dtype=None, out=None):
        calls.append((shape, seed, stream))
        return np.full(shape, 0.25)

    model = MLP([4, 8, 3], init=custom, seed=3)
    assert calls == [((4, 8), 3, 0), ((8, 3), 3, 2)]
    np.testing.assert_array_equal(model.weights[1], 0.25)


def test_activation_per_hidden_layer_and_linear_output():
    model = MLP([4, 6, 5, 2], activation=["tanh", ("leaky_relu", {"negative_slope": 0.2})])
    assert [a.name for a in model.activations] == ["tanh", "leaky_relu", "identity"]
    assert model.activations[1].params == {"negative_slope": 0.2}
    assert repr(model) == (
        "MLP(sizes=[4, 6, 5, 2], activation=[tanh, leaky_relu(negative_slope=0.2)], "
        "dtype='float32')"
    )
    assert fastinit.MLP is MLP and model.n_params == 4 * 6 + 6 + 6 * 5 + 5 + 5 * 2 + 2


# ----------------------------------------------------------------------------- weights
def test_fit_names_itself_for_a_keyword_it_does_not_take():
    # fit passes its keywords on: "fit_many() got an unexpected keyword argument", a
    # function the caller never called
    said = r"^MLP\.fit\(\) got an unexpected keyword argument 'iterationz' \(did you mean "
    with pytest.raises(TypeError, match=said + r"'iterations'\?\)$"):
        MLP([3, 2]).fit(np.ones((4, 3)), np.zeros(4, dtype=int), iterationz=2)
    with pytest.raises(TypeError, match=r"'lr'; it takes batch_size, epochs, iterations"):
        MLP([3, 2]).fit(np.ones((4, 3)), np.zeros(4, dtype=int), lr=0.1)


def test_weights_and_biases_concatenate_as_lists_do():
    # the "lists of NumPy arrays": `m.weights + m.biases` raised TypeError
    m = MLP([3, 4, 2])
    both = m.weights + m.biases
    assert isinstance(both, list) and [a.shape for a in both] == [(3, 4), (4, 2), (4,), (2,)]
    both[0][0, 0] = 7.0  # live views, as m.weights[k] is
    assert m.weights[0][0, 0] == 7.0
    assert [a.shape for a in [np.ones(1)] + m.biases] == [(1,), (4,), (2,)]  # noqa: RUF005
    assert [a.shape for a in m.biases + (np.ones(1),)] == [(4,), (2,), (1,)]  # noqa: RUF005
    with pytest.raises((TypeError, ValueError)):  # NumPy's, as for a list of the views
        m.weights + np.ones(3)  # an array is not a list of layers


def test_weights_and_biases_are_assignable_and_validated():
    model = MLP([4, 8, 3])
    new = RNG.normal(size=(4, 8))
    model.weights[0] = new  # float64 in, copied into float32
    assert model.weights[0].dtype == np.float32
    np.testing.assert_allclose(model.weights[0], new, rtol=1e-7)
    model.biases = [np.ones(8), np.zeros(3)]
    np.testing.assert_array_equal(model.biases[0], 1.0)
    before = model.weights[1].copy()
    with pytest.raises(ValueError, match=r"weights\[1\].*shape"):
        model.weights[1] = np.zeros((3, 8))
    with pytest.raises(ValueError, match="weights"):
        model.weights = [np.zeros((4, 8))]
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        model.weights = [np.zeros((4, 8)), np.full((8, 3), np.nan)]
    with pytest.raises(ValueError, match=r"weights\[1\]: .*float32 range"):
        model.weights[1] = np.full((8, 3), 1e39)  # finite in float64, inf in float32
    np.testing.assert_array_equal(model.weights[1], before)  # all or nothing
    assert np.any(model.weights[0] != 0)


# ----------------------------------------------------------------------------- inference
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_forward_and_predict_match_reference(dtype):
    model = MLP([4, 7, 6, 3], activation=["gelu", "sigmoid"], dtype=dtype, seed=2)
    logits = model.forward(X)
    assert logits.dtype == np.dtype(dtype)
    want, _ = ref.forward(list(model.weights), list(model.biases), _acts(model), X)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(logits, want, rtol=tol, atol=tol)
    np.testing.assert_array_equal(model.predict(X), want.argmax(axis=1))


def test_forward_in_blocks_equals_one_block():
    model = MLP([4, 8, 3], dtype="float64")
    big = RNG.normal(size=(2500, 4))  # three blocks of rows
    np.testing.assert_array_equal(model.forward(big)[2400:], model.forward(big[2400:]))


def test_single_sigmoid_unit_predicts_positive_logits():
    model = MLP([4, 5, 1], activation="tanh", seed=4)
    logits = model.forward(X)[:, 0]
    np.testing.assert_array_equal(model.predict(X), (logits > 0).astype(int))
    y = (logits > 0).astype(int)
    result = model.evaluate(X, y, loss="sigmoid_cross_entropy")
    assert result["accuracy"] == 1.0
    assert result["loss"] == pytest.approx(
        ref.loss("sigmoid_cross_entropy", logits[:, None], y)[0], rel=1e-5
    )


def test_a_single_logit_of_zero_is_class_0():
    # `logit >= 0` made a logit of exactly 0 (sigmoid 0.5, e.g. a zero-initialised
    # model) class 1
    model = MLP([2, 1], dtype="float64")
    model.weights = [np.array([[1.0], [0.0]])]
    model.biases = [np.zeros(1)]
    x = np.array([[-1e-300, 0.0], [0.0, 5.0], [1e-300, 0.0]])
    logits = model.forward(x)[:, 0]
    assert logits[1] == 0.0
    np.testing.assert_array_equal(model.predict(x), (logits > 0).astype(np.int64))  # [0, 0, 1]
    zeros = MLP([2, 3, 1], activation="tanh", init="zeros")
    assert np.all(zeros.forward(x) == 0.0)
    np.testing.assert_array_equal(zeros.predict(x), [0, 0, 0])


def test_evaluate_matches_reference():
    model = MLP([4, 8, 3], dtype="float64", seed=8)
    result = model.evaluate(X, Y)
    logits, _ = ref.forward(list(model.weights), list(model.biases), _acts(model), X)
    assert result["loss"] == pytest.approx(
        ref.loss("softmax_cross_entropy", logits, Y)[0], rel=1e-12
    )
    assert result["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == Y))


def test_float32_stays_float32_end_to_end():
    model = MLP([4, 8, 3], dtype="float32")
    assert train.prepare_x(model, X) is X  # float32 C-contiguous input: no copy
    _, grads = model.loss_and_grads(X, Y)
    assert all(g.dtype == np.float32 for pair in grads for g in pair)
    model.fit(X, Y, iterations=3, batch_size=4, progress=False)
    assert all(w.dtype == np.float32 for w in model.weights)
    assert model.forward(X).dtype == np.float32


def test_float64_input_is_cast_once_for_a_float32_model():
    a, b = MLP([4, 8, 3], seed=1), MLP([4, 8, 3], seed=1)
    np.testing.assert_array_equal(a.forward(X.astype(np.float64)), a.forward(X))
    ha = a.fit(X.astype(np.float64), Y, iterations=5, batch_size=4, progress=False)
    hb = b.fit(X, Y, iterations=5, batch_size=4, progress=False)
    np.testing.assert_array_equal(ha.loss, hb.loss)


# ----------------------------------------------------------------------------- files
def test_save_load_round_trip(tmp_path):
    model = MLP(
        [4, 6, 5, 3],
        activation=[("softplus", {"beta": 2.0, "threshold": 10.0}), "selu"],
        dtype="float64",
        seed=6,
    )
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = MLP.load(path)
    assert loaded.sizes == model.sizes and loaded.dtype == model.dtype
    assert loaded.activations == model.activations
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))


@pytest.mark.parametrize("sizes", [[4, 6, 3], [4, 40, 3]])  # feature-major and BLAS paths
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_continues_after_save_and_load_as_documented(tmp_path, sizes, dtype):
    # the file holds the parameters, not an optimizer's state: SGD (stateless) continues
    # bit for bit; a stateful optimizer starts afresh, as a new optimizer object would
    def fit(model, opt):
        return model.fit(X, Y, optimizer=opt, iterations=6, batch_size=8, seed=3,
                         progress=False)  # fmt: skip

    for make in (lambda: optim.SGD(0.1, weight_decay=0.01), lambda: optim.SGD(0.1)):
        kept, opt = MLP(sizes, seed=1, dtype=dtype), make()
        fit(kept, opt)
        kept.save(tmp_path / "m.npz")
        loaded = MLP.load(tmp_path / "m.npz")
        h_kept, h_loaded = fit(kept, opt), fit(loaded, opt)
        np.testing.assert_array_equal(h_loaded.loss, h_kept.loss)
        np.testing.assert_array_equal(loaded._params, kept._params)
    kept, adam = MLP(sizes, seed=1, dtype=dtype), optim.Adam(0.01)
    fit(kept, adam)
    kept.save(tmp_path / "m.npz")
    loaded, fresh = MLP.load(tmp_path / "m.npz"), MLP.load(tmp_path / "m.npz")
    fit(loaded, adam)  # the optimizer object has no state for this new model
    fit(fresh, optim.Adam(0.01))
    np.testing.assert_array_equal(loaded._params, fresh._params)
    fit(kept, adam)  # continues from its state: other values
    assert not np.array_equal(kept._params, loaded._params)


def test_save_and_load_agree_on_a_name_without_suffix(tmp_path):
    model = MLP(np.array([4, 6, 3]), seed=2)  # sizes may be a 1-D integer array
    model.save(tmp_path / "model")  # numpy.savez writes model.npz
    assert (tmp_path / "model.npz").exists()
    loaded = MLP.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))


def test_interrupted_save_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = MLP([4, 6, 3], seed=1, dtype="float64")
    old.save(path)
    calls = []

    def interrupted(*args, **kwargs):  # Ctrl-C while numpy writes the third array
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return write_array(*args, **kwargs)

    write_array = np.lib.format.write_array
    monkeypatch.setattr(np.lib.format, "write_array", interrupted)
    with pytest.raises(KeyboardInterrupt):
        MLP([4, 6, 3], seed=2, dtype="float64").save(path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left
    loaded = MLP.load(path)
    for a, b in zip(loaded.weights, old.weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_save_permissions_and_symlinks_as_numpy(tmp_path):
    model = MLP([4, 6, 3], seed=1)
    np.savez(tmp_path / "numpy.npz", a=np.zeros(1))
    model.save(tmp_path / "new.npz")
    mode = (tmp_path / "numpy.npz").stat().st_mode & 0o777
    assert (tmp_path / "new.npz").stat().st_mode & 0o777 == mode
    (tmp_path / "new.npz").chmod(0o600)  # an existing file keeps its permissions
    model.save(tmp_path / "new.npz")
    assert (tmp_path / "new.npz").stat().st_mode & 0o777 == 0o600
    (tmp_path / "link.npz").symlink_to(tmp_path / "new.npz")  # written through, as numpy does
    MLP([4, 6, 3], seed=2).save(tmp_path / "link.npz")
    assert (tmp_path / "link.npz").is_symlink()
    np.testing.assert_array_equal(
        MLP.load(tmp_path / "new.npz").weights[0], MLP([4, 6, 3], seed=2).weights[0]
    )
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "no" / "m.npz"))):
        model.save(tmp_path / "no" / "m.npz")  # the error names the file, not a temporary one


def test_save_and_load_file_objects(tmp_path):
    model = MLP([4, 6, 3], activation="tanh", seed=3)
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(MLP.load(buffer).forward(X), model.forward(X))
    model.save(tmp_path / "m.npz")
    with open(tmp_path / "m.npz", "rb") as f:
        np.testing.assert_array_equal(MLP.load(f).forward(X), model.forward(X))
    with pytest.raises(ValueError, match=r"<BytesIO>: not a readable \.npz model file"):
        MLP.load(io.BytesIO(b"junk"))


def test_corrupt_or_mismatching_files_raise_value_error_naming_the_file(tmp_path):
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match=r"corrupt\.npz"):
        MLP.load(bad)
    with pytest.raises(ValueError, match=r"missing\.npz"):
        MLP.load(tmp_path / "missing.npz")
    model = MLP([4, 6, 3])
    model.save(tmp_path / "good.npz")
    arrays = dict(np.load(tmp_path / "good.npz"))
    for name, change in [
        ("shape.npz", {"W1": np.zeros((5, 3))}),
        ("sizes.npz", {"sizes": np.array([4, 6, 2, 3])}),
        ("format.npz", {"format": np.array("something else")}),
        ("act.npz", {"activations": np.array(["relu", "nope"])}),
        ("output.npz", {"activations": np.array(["relu", "relu"])}),
        ("float_sizes.npz", {"sizes": np.array([4.0, 6.0, 3.0])}),
        ("extra.npz", {"W2": np.zeros((3, 3))}),
        ("huge.npz", {"sizes": np.array([4, 10**12, 3])}),  # refused before allocating
        (
            "one_width.npz",
            {
                "sizes": np.array([4]),
                "activations": np.array([], "<U8"),
                "activation_params": np.zeros((0, 2)),
            },
        ),
    ]:
        np.savez(tmp_path / name, **{**arrays, **change})
        with pytest.raises(ValueError, match=re.escape(name)):
            MLP.load(tmp_path / name)
    np.savez_compressed(tmp_path / "packed.npz", **arrays)
    raw = bytearray((tmp_path / "packed.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "packed.npz") as z:  # W0: read by both loaders
        w0 = z.getinfo("W0.npy")
    raw[w0.header_offset + 30 + len(w0.filename) + len(w0.extra) + w0.compress_size // 2] ^= 0xFF
    # (inside W0's deflated data: zlib fails before the CRC check)
    (tmp_path / "damaged.npz").write_bytes(bytes(raw))
    for load in (MLP.load, lambda path: MLP([4, 6, 3], init=path)):
        with pytest.raises(ValueError, match=r"damaged\.npz.* readable \.npz"):
            load(tmp_path / "damaged.npz")
    np.save(tmp_path / "plain.npy", np.zeros(3))  # a .npy, not an archive
    with pytest.raises(ValueError, match=r"plain\.npy: not a readable \.npz model file \(not a"):
        MLP.load(tmp_path / "plain.npy")
    del arrays["b0"]
    np.savez(tmp_path / "key.npz", **arrays)
    with pytest.raises(ValueError, match=r"key\.npz.*b0"):
        MLP.load(tmp_path / "key.npz")


def _with_zip_field(raw: bytes, local: int, central: int, change) -> bytes:
    """``raw`` with ``change(buffer, position)`` applied at offset ``local`` into every
    local file header and ``central`` into every central directory header."""
    out = bytearray(raw)
    for signature, offset in ((b"PK\x03\x04", local), (b"PK\x01\x02", central)):
        i = 0
        while (i := out.find(signature, i)) >= 0:
            change(out, i + offset)
            i += 4
    return bytes(out)


def test_an_archive_zipfile_or_numpy_cannot_read_is_a_value_error_naming_the_file(tmp_path):
    # an unknown compression method (NotImplementedError), an encrypted member
    # (RuntimeError) and a header claiming 2**40 elements (MemoryError) escaped as such
    MLP([4, 5, 3], seed=1).save(tmp_path / "good.npz")
    raw = (tmp_path / "good.npz").read_bytes()

    def method_99(b, at):
        struct.pack_into("<H", b, at, 99)

    def encrypted(b, at):
        b[at] |= 1

    files = {
        "method.npz": _with_zip_field(raw, 8, 10, method_99),
        "encrypted.npz": _with_zip_field(raw, 6, 8, encrypted),
    }
    header = io.BytesIO()
    np.save(header, np.zeros(3, np.float32))
    huge = header.getvalue().replace(b"'shape': (3,)", b"'shape': (1099511627776,)")
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as z:
        for key, value in np.load(tmp_path / "good.npz").items():
            member = io.BytesIO()
            np.save(member, value)
            z.writestr(f"{key}.npy", huge if key == "b0" else member.getvalue())
    files["huge.npz"] = packed.getvalue()
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        for load in (MLP.load, lambda path: MLP([4, 5, 3], init=path)):
            with pytest.raises(ValueError, match=re.escape(name) + r".* readable \.npz"):
                load(tmp_path / name)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"W0": np.full((4, 5), 0.1)}, r"W0: expected the file's dtype float32, got float64"),
        ({"W0": np.ones((4, 5), bool)}, r"W0: expected the file's dtype float32, got bool"),
        ({"b1": np.zeros(3, np.float64)}, r"b1: expected the file's dtype float32, got float64"),
        ({"activation_params": np.array([[0.5 + 3j, 0], [0, 0]])}, r"activation_params: .*real"),
        ({"W0": np.full((4, 5), np.nan, np.float32)}, r"W0: expected finite values"),
        ({"b1": np.array([0, np.inf, 0], np.float32)}, r"b1: expected finite values"),
        ({"activations": np.array("relu")}, r"activations: expected a 1-D array"),
    ],
)
def test_a_hand_edited_model_file_is_refused_naming_its_array(tmp_path, change, match):
    # a float64 or bool W0 in a float32 file was cast silently (W0 != the file's 0.1), a
    # complex parameter lost its imaginary part with a ComplexWarning, and the messages
    # named init[0] / bias_init[1] (arguments the user never passed) or a 0-d iteration
    MLP([4, 5, 3], activation=("elu", {"alpha": 0.5}), seed=1).save(tmp_path / "good.npz")
    np.savez(tmp_path / "edited.npz", **{**dict(np.load(tmp_path / "good.npz")), **change})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"edited\.npz: invalid fastinit model file: " + match):
            MLP.load(tmp_path / "edited.npz")


def test_a_loaded_model_keeps_its_seed(tmp_path):
    # the seed was not saved: a loaded model had seed 0, so lsuv (which redraws its
    # orthogonal start from model.seed) gave another network than the saved model's
    from fastinit.lsuv import lsuv

    model = MLP([6, 8, 3], activation="tanh", seed=2**64 - 5)
    model.save(tmp_path / "m.npz")
    loaded = MLP.load(tmp_path / "m.npz")
    assert loaded.seed == model.seed
    x = np.random.default_rng(0).standard_normal((32, 6))
    np.testing.assert_array_equal(lsuv(loaded, x).weights[0], lsuv(model, x).weights[0])
    arrays = dict(np.load(tmp_path / "m.npz"))  # a file of format 1 (no seed): seed 0
    del arrays["seed"]
    np.savez(tmp_path / "old.npz", **{**arrays, "format": np.array("fastinit.MLP/1")})
    assert MLP.load(tmp_path / "old.npz").seed == 0


@pytest.mark.parametrize("key", ["sizes", "activations", "activation_params", "dtype"])
def test_a_model_file_missing_an_array_says_which(tmp_path, key):
    MLP([4, 6, 3]).save(tmp_path / "good.npz")
    arrays = dict(np.load(tmp_path / "good.npz"))
    del arrays[key]
    np.savez(tmp_path / "cut.npz", **arrays)
    with pytest.raises(ValueError, match=rf"cut\.npz: invalid .*: missing \['{key}'\]$"):
        MLP.load(tmp_path / "cut.npz")


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sizes": [4]}, "sizes"),
        ({"sizes": [4, 0, 3]}, "sizes"),
        ({"sizes": [4, 2.5, 3]}, "sizes"),
        ({"sizes": [4, 2**62, 3]}, "sizes: .* parameters are more than any array can hold"),
        ({"seed": 1.5}, "seed"),
        ({"activation": "relux"}, "activation"),
        ({"activation": ["relu", "tanh"]}, "activation"),
        ({"init": "nonsense"}, "init"),
        ({"init": [np.zeros((4, 6))]}, "init"),
        ({"init": [np.zeros((4, 5)), np.zeros((6, 3))]}, r"^init\[0\]: expected shape"),
        ({"bias_init": 3}, "bias_init"),
        ({"dtype": "float16"}, "dtype"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLP(**{"sizes": [4, 6, 3], **kwargs})


@pytest.mark.parametrize(
    "x, y, kwargs, match",
    [
        (X[:, :3], Y, {}, "X"),
        (X[:, :, None], Y, {}, "X"),
        (np.where(X > 1, np.nan, X), Y, {}, "X"),
        (np.where(X > 1, 1e300, X.astype(np.float64)), Y, {}, "X: .*float32 range"),
        (X, Y[:-1], {}, "y"),
        (X, np.where(Y == 0, 3, Y), {}, "y"),
        (X, Y, {"loss": "hinge"}, "loss"),
        (X, Y, {"optimizer": "lbfgs"}, "optimizer"),
        (X, Y, {"optimizer": "sgd", "batch_size": 0}, "batch_size"),
        (X, Y, {"batch_size": -5}, "batch_size"),
        (X, Y, {"sampling": "bootstrap"}, "sampling"),
        (X, Y, {"iterations": 3, "epochs": 1}, "iterations"),
        (X, Y, {"iterations": None}, "iterations"),
        (X, Y, {"iterations": -1}, "iterations"),
        (X, Y, {"seed": -1}, "seed"),
    ],
)
def test_bad_fit_arguments_raise_before_any_kernel_runs(x, y, kwargs, match):
    model = MLP([4, 6, 3])
    before = model.weights[0].copy()
    with pytest.raises(ValueError, match=match):
        model.fit(x, y, **{"iterations": 2, "progress": False, **kwargs})
    np.testing.assert_array_equal(model.weights[0], before)


def test_values_beyond_float32_are_refused_without_numpy_overflow_warnings():
    model = MLP([4, 6, 3])
    big = np.full((5, 4), 1e300)  # finite float64, inf once cast to float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="X: expected values within the float32 range"):
            model.forward(big)
        with pytest.raises(ValueError, match="y: expected values within the float32 range"):
            MLP([4, 3]).fit(X, np.full((len(X), 3), -1e39), loss="mse", iterations=1)
        with pytest.raises(ValueError, match=r"biases\[0\]: expected values within"):
            model.biases[0] = np.full(6, 1e39)
    assert np.isfinite(MLP([4, 3], dtype="float64").forward(big)).all()  # fine in float64


def test_bad_arguments_of_the_other_methods():
    model = MLP([4, 6, 3])
    with pytest.raises(ValueError, match="X"):
        model.forward(X[:, :2])
    with pytest.raises(ValueError, match="y"):
        model.evaluate(X, Y[:3])
    with pytest.raises(ValueError, match="loss"):
        model.loss_and_grads(X, Y, loss="nll")
    with pytest.raises(ValueError, match="lr"):
        model.fit(X, Y, optimizer=optim.get("sgd", lr=0.0), iterations=1)


@pytest.mark.parametrize(
    ("labels", "shown"),
    [
        (np.array([0.0, 1e300]), "[0.0, 1e+300]"),  # wrapped to a negative int64 before
        (np.array([-1e300, 1.0]), "[-1e+300, 1.0]"),
        (np.array([0, 2**64 - 1], np.uint64), "[0, 18446744073709551615]"),  # wrapped to -1
        (np.array([0, 3], np.int8), "[0, 3]"),
    ],
)
def test_out_of_range_labels_are_reported_as_given(labels, shown):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy cast warning either
        with pytest.raises(ValueError) as e:
            MLP([4, 3]).evaluate(X[:2], labels)
    assert str(e.value).endswith(f"got values in {shown}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_all_finite_is_exact_when_the_shortcut_sum_overflows(dtype):
    big = np.finfo(dtype).max
    cases = {
        (): True,
        (1.0, -2.0, 3.5): True,
        (big, big, -1.0): True,  # finite values whose sum overflows
        (-big, -big): True,
        (1.0, np.nan, 2.0): False,
        (np.inf, 1.0): False,
        (-np.inf, 1.0): False,
        (np.inf, -np.inf): False,  # sum NaN
        (big, big, np.nan): False,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for values, expected in cases.items():
            a = np.array(values, dtype=dtype).reshape(-1, 1)
            assert all_finite(a) is expected, values
            assert all_finite(np.repeat(a, 3, axis=1)) is expected, values


def test_assigning_the_models_own_layers_in_another_order_swaps_them():
    model = MLP([4, 4, 4, 4], seed=0)
    w0, w1, w2 = (w.copy() for w in model.weights)
    model.weights = [model.weights[2], model.weights[1], model.weights[0]]
    for got, want in zip(model.weights, (w2, w1, w0), strict=True):
        np.testing.assert_array_equal(got, want)
    b = [v.copy() + k for k, v in enumerate(model.biases)]
    model.biases = b
    model.biases = list(reversed(model.biases))
    for got, want in zip(model.biases, reversed(b), strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_slice_of_layers_is_assignable_all_or_nothing():
    model = MLP([3, 4, 5, 2], seed=0)
    w0, w1 = (w.copy() for w in model.weights[:2])
    model.weights[1:] = [np.ones((4, 5)), np.full((5, 2), 2.0)]
    np.testing.assert_array_equal(model.weights[0], w0)
    assert model.weights[1].sum() == 20 and model.weights[2].sum() == 20
    with pytest.raises(ValueError, match=r"weights\[1:3\]: expected 2 arrays, got 1"):
        model.weights[1:3] = [w1]
    with pytest.raises(ValueError, match=r"weights\[2\]: expected shape \(5, 2\)"):
        model.weights[::2] = [np.zeros((3, 4)), np.zeros((4, 2))]  # the second is wrong
    np.testing.assert_array_equal(model.weights[0], w0)  # the first was restored
    model.biases[:2] = [model.biases[1][:4] + 1, [*model.biases[0].tolist(), 5.0]]
    assert model.biases[0].tolist() == [1.0] * 4 and model.biases[1].tolist() == [0.0] * 4 + [5]
    same = MLP([4, 4, 4, 4], seed=0)
    v0, v1, _ = (w.copy() for w in same.weights)
    same.weights[0:2] = [same.weights[1], same.weights[0]]  # its own views: swapped
    np.testing.assert_array_equal(same.weights[0], v1)
    np.testing.assert_array_equal(same.weights[1], v0)


def test_one_layer_network_checks_its_activation_too():
    with pytest.raises(ValueError, match="activation"):
        MLP([3, 2], activation="nonsense")
    with pytest.raises(ValueError, match="activation"):
        MLP([3, 2], activation=["relu"])  # no hidden layer
    assert MLP([3, 2], activation=[]).sizes == (3, 2)


# ----------------------------------------------------------------------------- audit
def test_a_layer_index_out_of_range_is_an_index_error_as_for_a_list():
    model = MLP([4, 6, 3])
    for bad in (2, -3):
        message = rf"layer: expected an integer in \[-2, 1\], got {bad}"
        with pytest.raises(IndexError, match=message):
            model.weights[bad]
        with pytest.raises(IndexError, match="layer"):
            model.biases[bad] = np.zeros(3)
    with pytest.raises(ValueError, match="layer"):  # still what it raised before
        model.biases[5]
    with pytest.raises(TypeError, match="layer: expected an integer"):
        model.weights[1.0]
    shapes, k = [], 0
    while True:  # the list idiom: index until IndexError
        try:
            shapes.append(model.weights[k].shape)
        except IndexError:
            break
        k += 1
    assert shapes == [(4, 6), (6, 3)]


def _raising_init(shape, *, seed=0, stream=0, dtype=None, out=None):
    raise TypeError("the caller's own bug")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"init": ("normal", {"std": "a"})}, r"^init: 'normal': std: expected a real number"),
        ({"bias_init": ("normal", {"std": -1.0})}, r"^bias_init: 'normal': std: expected a"),
        ({"init": ["he_normal", ("normal", {"sd": 1.0}), "zeros"]}, r"^init\[1\]: .*'sd'"),
        ({"bias_init": "orthogonal"}, r"^bias_init: 'orthogonal': shape: expected at least 2"),
        ({"init": ("normal", {"seed": 3})}, r"^init: expected initializer parameters without 'se"),
        ({"bias_init": ("zeros", {"dtype": "float64"})}, r"^bias_init: .* without 'dtype'"),
        (
            {"activation": ("leaky_relu", {"negative_slope": "x"})},
            r"^activation\.negative_slope: expected a real number",
        ),
        ({"activation": ["relu"]}, r"^activation: expected 2 entries \(one per hidden layer\)"),
    ],
)
def test_bad_initializer_and_activation_parameters_are_value_errors_naming_the_argument(
    kwargs, match
):
    with pytest.raises(ValueError, match=match):
        MLP(**{"sizes": [4, 6, 5, 3], **kwargs})


def test_a_callables_own_errors_are_not_rewritten():
    with pytest.raises(TypeError, match=r"^the caller's own bug$"):
        MLP([4, 3], init=_raising_init)


@pytest.mark.parametrize("name", ["init", "bias_init"])
def test_a_callable_that_cannot_take_the_initializer_arguments_names_the_argument(name):
    # a lambda of the shape alone failed inside the model with "<lambda>() got an
    # unexpected keyword argument 'seed'", naming neither the argument nor the signature
    with pytest.raises(ValueError, match=rf"^{name}: .*f\(shape, \*, seed, stream, dtype\)"):
        MLP([4, 3], **{name: lambda shape: np.zeros(shape)})
    with pytest.raises(ValueError, match=rf"^{name}\[1\]: "):
        MLP([4, 5, 3], **{name: ["zeros", lambda shape, seed: np.zeros(shape)]})
    taking = MLP([4, 3], **{name: lambda shape, **kw: np.full(shape, 0.5)})  # **kw takes them
    assert np.all((taking.weights if name == "init" else taking.biases)[0] == 0.5)


def test_a_wrapping_adapter_is_checked_by_its_own_signature_not_the_wrapped_ones():
    # inspect.signature follows __wrapped__ (functools.wraps): an adapter that takes the
    # initializer's arguments was refused for the shape-only function it wraps
    import functools

    def adapt(f):
        @functools.wraps(f)
        def wrapper(shape, *, seed=0, stream=0, dtype=None, **kw):
            return f(shape).astype(dtype)

        return wrapper

    @adapt
    def halves(shape):
        return np.full(shape, 0.5)

    assert np.all(MLP([4, 3], init=halves).weights[0] == 0.5)


def test_a_network_too_large_for_memory_names_sizes(monkeypatch):
    # NumPy's "Unable to allocate 64.0 GiB for an array with shape (17181311008,)" named a
    # buffer the user never made
    import fastinit.model

    def refuse(n, dtype):
        raise MemoryError(f"Unable to allocate {n} elements")

    monkeypatch.setattr(fastinit.model, "_aligned_zeros", refuse)
    with pytest.raises(MemoryError, match=r"^sizes: the model's 51 float32 parameters \(204 b"):
        MLP([4, 6, 3])
    monkeypatch.undo()
    # the parameters fit, a layer's draw does not (MLP([20000, 20000]) under a ulimit)
    real = fastinit.model._init_values

    def draw_refused(spec, shape, *args):
        if len(shape) == 2 and shape[0] == 6:
            raise MemoryError(f"Unable to allocate an array with shape {shape}")
        return real(spec, shape, *args)

    monkeypatch.setattr(fastinit.model, "_init_values", draw_refused)
    with pytest.raises(MemoryError, match=r"^sizes: the model's 51 float32 parameters"):
        MLP([4, 6, 3])


def test_load_of_an_archive_that_is_no_saved_model_says_so(tmp_path):
    # "expected format 'fastinit.MLP/2', got None": an archive of layer arrays (np.savez)
    np.savez(tmp_path / "layers.npz", W0=np.zeros((4, 3)), b0=np.zeros(3))
    with pytest.raises(ValueError, match=r"layers\.npz: .*no 'format' entry.*MLP\(sizes, init="):
        MLP.load(tmp_path / "layers.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match=r"other\.npz: .*no 'format' entry") as err:
        MLP.load(tmp_path / "other.npz")
    assert "init=" not in str(err.value)  # no layer arrays: no pointer to init=path


def test_assigning_non_arrays_names_the_argument_and_changes_nothing():
    model = MLP([4, 6, 3], seed=1)
    before = [w.copy() for w in model.weights]
    with pytest.raises(ValueError, match=r"^weights: expected a sequence of 2 arrays"):
        model.weights = None
    with pytest.raises(ValueError, match=r"^biases\[1:2\]: expected a sequence of 1 arrays"):
        model.biases[1:] = 3.0
    with pytest.raises(ValueError, match=r"^weights\[0\]: expected an array of shape \(4, 6\)"):
        model.weights[0] = [[1.0] * 6] * 3 + [[1.0] * 5]  # a ragged nested list
    with pytest.raises(ValueError, match=r"^weights\[1\]: expected an array of shape \(6, 3\)"):
        model.weights = [np.ones((4, 6)), [[1.0, 2.0], [3.0]]]
    for got, want in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_assigning_lists_of_the_models_own_rows_swaps_layers():
    # lists of row views alias the parameters as much as the views themselves
    model = MLP([4, 4, 4, 4], seed=3)
    w0, w1, w2 = (w.copy() for w in model.weights)
    model.weights = [list(model.weights[2]), list(model.weights[1]), list(model.weights[0])]
    for got, want in zip(model.weights, (w2, w1, w0), strict=True):
        np.testing.assert_array_equal(got, want)


def test_save_refuses_parameters_that_load_would_refuse(tmp_path):
    path = tmp_path / "model.npz"
    good = MLP([4, 6, 3], seed=1)
    good.save(path)
    saved = path.read_bytes()
    model = MLP([4, 6, 3], seed=2)
    model.weights[0][1, 2] = np.nan  # a live view: written through, unchecked
    with pytest.raises(ValueError, match=r"^weights\[0\]: expected finite values to save"):
        model.save(path)
    assert path.read_bytes() == saved  # the previous checkpoint survives
    with pytest.raises(ValueError, match="finite"):
        MLP([4, 6, 3], init=[w for w in model.weights])  # what load would have done
    model.weights[0] = good.weights[0]
    model.biases[1][0] = np.inf
    buffer = io.BytesIO()
    with pytest.raises(ValueError, match=r"^biases\[1\]: expected finite values to save"):
        model.save(buffer)
    assert buffer.getvalue() == b""
    model.biases[1] = good.biases[1]
    model.save(path)  # finite again: saved and loaded
    np.testing.assert_array_equal(MLP.load(path).forward(X), model.forward(X))


def test_evaluate_accuracy_is_nan_when_a_logit_is_nan():
    model = MLP([4, 6, 3], seed=5)
    y = model.predict(X)
    assert model.evaluate(X, y)["accuracy"] == 1.0
    model.weights[1][2, 0] = np.nan  # every row's logit 0 is now NaN
    assert np.isnan(model.forward(X)[:, 0]).all()
    result = model.evaluate(X, y)
    assert np.isnan(result["loss"]) and np.isnan(result["accuracy"])
    assert np.isnan(model.evaluate(X, np.eye(3)[y], loss="mse")["accuracy"])
    # finite parameters, NaN from an overflow: relu(inf) * 0 in the second layer
    wide = MLP([1, 1, 2], init=[np.full((1, 1), 3e38), np.array([[1.0, 0.0]])])
    x = np.array([[10.0], [-1.0]], np.float32)
    logits = wide.forward(x)
    assert np.isnan(logits[0, 1]) and np.isfinite(logits[1]).all()
    assert np.isnan(wide.evaluate(x, [0, 0])["accuracy"])
    single = MLP([4, 5, 1], activation="tanh", seed=4)
    labels = single.predict(X)
    assert single.evaluate(X, labels, loss="sigmoid_cross_entropy")["accuracy"] == 1.0
    single.biases[1][0] = np.nan
    result = single.evaluate(X, labels, loss="sigmoid_cross_entropy")
    assert np.isnan(result["accuracy"])


def test_ragged_inputs_and_targets_name_the_argument():
    model = MLP([2, 3])
    ragged = [[1.0, 2.0], [3.0]]
    for method in (model.forward, model.predict):
        with pytest.raises(ValueError, match=r"^X: expected an array of shape \(n, 2\) \("):
            method(ragged)
    with pytest.raises(ValueError, match=r"^X: expected an array of shape \(n, 2\)"):
        model.evaluate(ragged, [0, 1])
    with pytest.raises(ValueError, match=r"^y: expected a 1-D or 2-D array of targets \("):
        model.evaluate(np.ones((2, 2)), [[0, 1, 0], [1]])
    with pytest.raises(ValueError, match=r"^y: expected a 1-D or 2-D array of targets"):
        model.loss_and_grads(np.ones((2, 2)), [[0, 1, 0], [1]])
    with pytest.raises(ValueError, match=r"^X: expected an array of shape \(n, 2\)"):
        model.loss_and_grads(ragged, [0, 1])
    with pytest.raises(ValueError, match=r"^X: expected an array of shape \(n, 2\) \("):
        model.fit(ragged, [0, 1], iterations=1, progress=False)
    with pytest.raises(ValueError, match=r"^y: expected a 1-D or 2-D array of targets \("):
        model.fit(np.ones((2, 2)), [[0, 1, 0], [1]], iterations=1, progress=False)


def test_a_masked_array_with_masked_values_is_refused_naming_the_argument():
    # np.asarray dropped the mask: the values under it were trained on as data
    from fastinit import activations

    model = MLP([2, 3], seed=1)
    X = np.ma.masked_array(np.ones((2, 2)), mask=[[0, 1], [0, 0]])
    y = np.ma.masked_array([0, 1], mask=[1, 0])
    said = r"^{}: a masked array with 1 masked value"
    for method in (model.forward, model.predict):
        with pytest.raises(ValueError, match=said.format("X")):
            method(X)
    with pytest.raises(ValueError, match=said.format("X")):
        model.fit(X, [0, 1], iterations=1, progress=False)
    with pytest.raises(ValueError, match=said.format("y")):
        model.evaluate(np.ones((2, 2)), y)
    with pytest.raises(ValueError, match=said.format("x")):
        activations.apply(np.ma.masked_array([1.0, -1.0], mask=[0, 1]))
    unmasked = np.ma.masked_array(np.ones((2, 2)))  # nothing masked: its values are the data
    assert np.array_equal(model.forward(unmasked), model.forward(np.ones((2, 2))))


# ----------------------------------------------------------------------------- interop
class _ArrayLike:
    """An object NumPy converts with ``__array__``, as a torch tensor or a DataFrame."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)


def test_init_takes_the_array_likes_that_assignment_takes():
    w0, w1, b0 = RNG.normal(size=(4, 6)), RNG.normal(size=(6, 3)), RNG.normal(size=6)
    built = MLP(
        [4, 6, 3],
        init=[_ArrayLike(w0), _ArrayLike(w1)],
        bias_init=[_ArrayLike(b0), 0.5 * np.ones(3)],
    )
    assigned = MLP([4, 6, 3])
    assigned.weights = [_ArrayLike(w0), _ArrayLike(w1)]
    assigned.biases = [_ArrayLike(b0), 0.5 * np.ones(3)]
    np.testing.assert_array_equal(built._params, assigned._params)
    np.testing.assert_array_equal(built.weights[1], w1.astype(np.float32))


def test_init_takes_buffers_as_assignment_does():
    # a memoryview or an array.array (the buffer protocol) was assigned but refused by
    # the constructor: "init: expected a name, callable, (name, kwargs) or array"
    w0, w1 = RNG.normal(size=(4, 6)), RNG.normal(size=(6, 3))
    b0 = array.array("d", RNG.normal(size=6))
    built = MLP([4, 6, 3], init=[memoryview(w0), w1], bias_init=[b0, memoryview(np.ones(3))])
    assigned = MLP([4, 6, 3])
    assigned.weights = [memoryview(w0), w1]
    assigned.biases = [b0, memoryview(np.ones(3))]
    np.testing.assert_array_equal(built._params, assigned._params)
    np.testing.assert_array_equal(built.biases[0], np.asarray(b0, dtype=np.float32))
    for name in (b"he_normal", bytearray(b"he_normal")):  # bytes are not a buffer of weights
        with pytest.raises(ValueError, match=r"^init: expected a name"):
            MLP([4, 6, 3], init=name)


def test_pytorch_linear_layers_load_through_init_and_compute_the_same_logits():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)
    ).double()
    weights = [net[0].weight.detach().T, net[2].weight.detach().T]  # (out, in) -> (in, out)
    biases = [net[0].bias.detach(), net[2].bias.detach()]
    model = MLP([4, 6, 3], activation="tanh", init=weights, bias_init=biases, dtype="float64")
    expected = net(torch.from_numpy(X.astype(np.float64))).detach().numpy()
    np.testing.assert_allclose(model.forward(X), expected, rtol=1e-12, atol=1e-14)


def test_a_transposed_weight_matrix_is_refused_with_a_hint_at_the_transpose(tmp_path):
    torch_layout = np.ones((6, 4))  # a PyTorch Linear(4, 6).weight: (out, in)
    hint = r"expected shape \(4, 6\), (got|found) \(6, 4\) \(the transpose: .*\.T"
    with pytest.raises(ValueError, match=r"^weights\[0\]: " + hint):
        MLP([4, 6, 3]).weights[0] = torch_layout
    with pytest.raises(ValueError, match=r"^init\[0\]: " + hint):  # the argument
        MLP([4, 6, 3], init=[torch_layout, np.ones((6, 3))])
    np.savez(tmp_path / "torch.npz", W0=torch_layout, W1=np.ones((3, 6)))
    with pytest.raises(ValueError, match=r"^init: layer 0 weights in .*torch\.npz: " + hint):
        MLP([4, 6, 3], init=tmp_path / "torch.npz")
    with pytest.raises(ValueError, match=r"expected shape \(6,\), got \(1, 6\)$"):  # no hint
        MLP([4, 6, 3]).biases[0] = np.ones((1, 6))


def test_load_finds_the_saved_file_beside_a_directory_of_the_same_name(tmp_path):
    model = MLP([4, 6, 3], seed=4)
    (tmp_path / "run1").mkdir()  # e.g. the run's figures
    model.save(tmp_path / "run1")  # writes run1.npz
    np.testing.assert_array_equal(MLP.load(tmp_path / "run1")._params, model._params)
    from_init = MLP([4, 6, 3], init=tmp_path / "run1")
    np.testing.assert_array_equal(from_init._params, model._params)


def test_another_models_weights_and_biases_are_per_layer_inits():
    source = MLP([4, 6, 3], seed=5, bias_init=("normal", {"std": 0.1}))
    copy = MLP([4, 6, 3], init=source.weights, bias_init=source.biases)
    np.testing.assert_array_equal(copy._params, source._params)
    copy.weights[0][0, 0] = 7.0  # a copy, not the source's memory
    assert source.weights[0][0, 0] != 7.0


def test_save_onto_a_directory_names_the_path_and_leaves_nothing(tmp_path):
    target = tmp_path / "m.npz"
    target.mkdir()
    with pytest.raises(IsADirectoryError) as e:
        MLP([2, 3, 1]).save(target)
    assert e.value.filename == str(target)  # not the hidden temporary file
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"] and not any(target.iterdir())


def test_a_full_disk_while_saving_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    # "[Errno 28] No space left on device" named no file: the write failed before the sync
    import errno

    path = tmp_path / "m.npz"
    MLP([2, 3, 1], seed=1).save(path)
    before = path.read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np.lib.format, "write_array", full)
    with pytest.raises(OSError) as e:
        MLP([2, 3, 1], seed=2).save(path)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"] and path.read_bytes() == before


def test_save_paths_that_are_no_file_names_are_refused_naming_path(tmp_path, monkeypatch):
    # save(123) said "expected str, bytes or os.PathLike object", save("") wrote ./.npz,
    # and a bytes name went to np.savez, which fails on it (and would not replace atomically)
    monkeypatch.chdir(tmp_path)
    model = MLP([2, 3, 1], seed=1)
    for bad in (123, None, 1.5):
        with pytest.raises(TypeError, match=r"^path: expected a file name or a binary file"):
            model.save(bad)
    with pytest.raises(ValueError, match=r"^path: expected a file name, got ''"):
        model.save("")
    assert list(tmp_path.iterdir()) == []
    model.save(os.fsencode(tmp_path / "b"))
    assert [p.name for p in tmp_path.iterdir()] == ["b.npz"]
    np.testing.assert_array_equal(MLP.load(tmp_path / "b.npz").weights[0], model.weights[0])


def test_init_names_taken_from_numpy_arrays_are_names():
    # np.str_ has __array__: the array-like branch took it for weights ("dtype <U9")
    names = np.array(["he_normal", "zeros"])
    model = MLP([4, 6, 3], init=names[0], bias_init=names[1], seed=3)
    same = MLP([4, 6, 3], init="he_normal", bias_init="zeros", seed=3)
    for w, v in zip(model.weights, same.weights, strict=True):
        np.testing.assert_array_equal(w, v)


class _RefusesConversion:
    """An array-like whose conversion fails as a torch tensor requiring grad does."""

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("Can't call numpy() on Tensor that requires grad.")


def test_an_array_like_that_refuses_conversion_is_a_value_error_naming_the_argument():
    with pytest.raises(ValueError, match=r"^init\[0\]: expected .*requires grad"):
        MLP([3, 2], init=[_RefusesConversion()])
    model = MLP([3, 2])
    with pytest.raises(ValueError, match=r"^weights\[0\]: expected .*requires grad"):
        model.weights[0] = _RefusesConversion()


# ----------------------------------------------------------------------------- fuzz findings
def test_a_loss_made_with_an_unknown_name_is_refused_where_it_is_made():
    # Loss("bogus") was accepted and failed later inside fit with KeyError: 'bogus'
    from fastinit import losses

    with pytest.raises(ValueError, match=r"^name: expected one of 'softmax_cross_entropy'"):
        losses.Loss("bogus")
    assert losses.get(losses.Loss("mse")).code == losses.Loss("mse").code


@pytest.mark.parametrize("path", [123, None, 1.5])
def test_load_names_a_path_that_is_no_file_name(path):
    with pytest.raises(TypeError, match=r"^path: expected a file name or a binary file object"):
        MLP.load(path)


def test_initializers_take_a_shape_given_as_an_integer_array():
    # MLP(sizes=np.array(...)) was accepted, init.he_normal(np.array([4, 3])) refused
    w = init.he_normal(np.array([4, 3]), seed=2)
    np.testing.assert_array_equal(w, init.he_normal((4, 3), seed=2))
    with pytest.raises(TypeError, match=r"^shape: "):
        init.he_normal(np.array([4.0, 3.0]))
    with pytest.raises(ValueError, match=r"^shape: "):
        init.he_normal(np.array([[4, 3]]))


def test_a_bytes_name_saved_without_suffix_loads_by_the_same_name(tmp_path):
    model = MLP([2, 3, 1], seed=1)
    model.save(os.fsencode(tmp_path / "m"))
    loaded = MLP.load(os.fsencode(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.weights[0], model.weights[0])


def test_shapes_given_as_arrays_follow_the_rules_of_ints_and_tuples():
    assert init.fan_in_and_fan_out(np.array(5)) == init.fan_in_and_fan_out(5)
    assert init.fan_in_and_fan_out(np.array([], int)) == init.fan_in_and_fan_out(())
    with pytest.raises(TypeError, match=r"^shape: "):
        init.he_normal(np.array([]))  # float64: no sizes


def test_a_masked_array_of_records_is_refused_naming_the_argument():
    x = np.ma.masked_array(np.zeros(2, dtype=[("a", "f4")]), mask=[(True,), (False,)])
    with pytest.raises(ValueError, match=r"^X: "):
        MLP([1, 2]).forward(x)


def test_a_bytes_name_that_cannot_be_read_is_named_in_the_error(tmp_path):
    missing = os.fsencode(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=r"missing\.npz: not a readable \.npz model file"):
        MLP.load(missing)


@pytest.mark.parametrize(
    "activation",
    [
        ("leaky_relu", {"negative_slope": 0.01}),
        ("elu", {"alpha": 0.3}),
        ("softplus", {"beta": 0.7}),
    ],
)
def test_a_float64_model_s_save_and_load_is_bit_exact_with_activation_parameters(activation):
    # the parameters were read back through float32 (0.01 as 0.009999999776): the loaded
    # float64 model's outputs differed by 4.4e-10 (mutation audit)
    m = MLP([3, 4, 2], activation=activation, dtype="float64", seed=1)
    f = io.BytesIO()
    m.save(f)
    f.seek(0)
    loaded = MLP.load(f)
    x = RNG.normal(size=(5, 3))
    assert np.array_equal(m.forward(x), loaded.forward(x))
