"""The compiled training loop: learning, reproducibility, shared batches, divergence, Ctrl-C."""

from __future__ import annotations

import functools
import io
import itertools

import numpy as np
import pytest

from fastinit import optim, train
from fastinit._progress import ProgressBar
from fastinit.model import MLP
from fastinit.train import fit_many


def spiral(n_per_class: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals (a classic non-linearly separable 2-class set)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.25, 3 * np.pi, n_per_class)
    arms = [np.c_[t * np.cos(t + s), t * np.sin(t + s)] / 10 for s in (0, np.pi)]
    x = np.concatenate(arms) + rng.normal(scale=0.02, size=(2 * n_per_class, 2))
    return x.astype(np.float32), np.repeat([0, 1], n_per_class)


X, Y = spiral()


def test_learns_the_two_spirals():
    model = MLP([2, 32, 32, 2], activation="relu", init="glorot_uniform", seed=1)
    before = model.evaluate(X, Y)
    history = model.fit(
        X,
        Y,
        optimizer=optim.Adam(0.01),
        batch_size=32,
        iterations=3000,
        sampling="shuffle",
        progress=False,
    )
    after = model.evaluate(X, Y)
    assert history.status == "ok" and history.iterations == 3000 and len(history.loss) == 3000
    assert before["loss"] > 0.6 and before["accuracy"] < 0.75
    assert after["loss"] < 0.05 and after["accuracy"] > 0.99
    assert history.loss[-100:].mean() < 0.1 and history.wall_time > 0


def test_learns_xor_with_sigmoid_output_full_batch():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([0, 1, 1, 0])
    model = MLP([2, 8, 1], activation="tanh", init="glorot_uniform", seed=3, dtype="float64")
    history = model.fit(
        x,
        y,
        optimizer=optim.SGD(0.5),
        sampling="full",
        iterations=2000,
        loss="sigmoid_cross_entropy",
        progress=False,
    )
    assert history.loss[-1] < 0.02 and history.loss[-1] < history.loss[0] / 30
    np.testing.assert_array_equal(model.predict(x), y)


def _fresh(seed: int = 7, **kw) -> MLP:
    return MLP([2, 16, 2], seed=seed, **kw)


@pytest.mark.parametrize("sampling", ["replacement", "shuffle"])
def test_fit_many_equals_separate_fits_with_the_same_seed(sampling):
    together = [_fresh(1), _fresh(2, activation="tanh"), _fresh(3)]
    opts = [optim.SGD(0.1), optim.Momentum(0.05), optim.Adam(0.01)]
    hist = fit_many(
        together,
        X,
        Y,
        optimizer=opts,
        batch_size=24,
        iterations=40,
        sampling=sampling,
        seed=5,
        progress=False,
    )
    alone = [_fresh(1), _fresh(2, activation="tanh"), _fresh(3)]
    for model, opt, h in zip(
        alone, [optim.SGD(0.1), optim.Momentum(0.05), optim.Adam(0.01)], hist, strict=True
    ):
        h1 = model.fit(
            X,
            Y,
            optimizer=opt,
            batch_size=24,
            iterations=40,
            sampling=sampling,
            seed=5,
            progress=False,
        )
        np.testing.assert_array_equal(h1.loss, h.loss)
    for a, b in zip(together, alone, strict=True):
        for wa, wb in zip(a.weights, b.weights, strict=True):
            np.testing.assert_array_equal(wa, wb)


def test_fit_many_histories_do_not_share_their_settings():
    # labelling one run's settings (an init's name) must not relabel the others
    histories = fit_many([_fresh(1), _fresh(2)], X, Y, iterations=1, progress=False)
    histories[0].settings["init"] = "he"
    assert "init" not in histories[1].settings
    assert histories[1].settings == {"loss": "softmax_cross_entropy", "sampling": "replacement",
                                     "batch_size": 128, "seed": 0}  # fmt: skip


def _mixed(dtype: str) -> tuple[list[MLP], list]:
    """Feature-major and BLAS networks, one diverging at once, and their optimizers."""
    models = [
        MLP([2, 4, 2], activation="tanh", seed=1, dtype=dtype),  # feature-major (narrow)
        MLP([2, 40, 2], seed=2, dtype=dtype),  # BLAS
        MLP([2, 8, 5, 2], activation="gelu", seed=3, dtype=dtype),  # narrow, deeper
        MLP([2, 20, 2], seed=4, dtype=dtype),  # diverges on its first update
    ]
    huge = optim.SGD(1e30 if dtype == "float32" else 1e300)
    return models, [optim.SGD(0.1), optim.Adam(0.01), optim.Momentum(0.05), huge]


@pytest.mark.parametrize("record_stats", [False, True], ids=["plain", "stats"])
@pytest.mark.parametrize("sampling", ["replacement", "shuffle", "full"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_many_equals_separate_fits_on_every_path(dtype, sampling, record_stats):
    kw = {"batch_size": 24, "iterations": 13, "sampling": sampling, "seed": 5,
          "progress": False, "record_stats": record_stats, "stats_every": 4}  # fmt: skip
    x, y = X[::4], Y[::4]  # 50 rows: "full" takes them all, "shuffle" two epochs
    together, opts = _mixed(dtype)
    histories = fit_many(together, x, y, optimizer=opts, **kw)
    assert [h.status for h in histories] == ["ok", "ok", "ok", "diverged"]
    for j, (model, opt) in enumerate(zip(*_mixed(dtype), strict=True)):
        alone, h = model.fit(x, y, optimizer=opt, **kw), histories[j]
        np.testing.assert_array_equal(alone.loss, h.loss)
        assert (alone.status, alone.iterations, alone.diverged_at) == (
            h.status, h.iterations, h.diverged_at)  # fmt: skip
        np.testing.assert_array_equal(model._params, together[j]._params)
        if record_stats:
            assert alone.stats.keys() == h.stats.keys()
            for name, values in alone.stats.items():
                np.testing.assert_array_equal(values, h.stats[name], err_msg=name)


def test_same_seed_same_run_other_seed_other_batches():
    runs = [
        _fresh().fit(X, Y, iterations=30, batch_size=16, seed=s, progress=False) for s in (4, 4, 5)
    ]
    np.testing.assert_array_equal(runs[0].loss, runs[1].loss)
    assert not np.array_equal(runs[0].loss, runs[2].loss)


def test_chunking_does_not_change_results(monkeypatch):
    a = _fresh()
    ha = a.fit(X, Y, iterations=25, batch_size=8, sampling="shuffle", progress=False)
    monkeypatch.setattr(train, "_CHUNK_SECONDS", 1e-9)  # one iteration per native call
    b = _fresh()
    hb = b.fit(X, Y, iterations=25, batch_size=8, sampling="shuffle", progress=False)
    np.testing.assert_array_equal(ha.loss, hb.loss)
    np.testing.assert_array_equal(a.weights[0], b.weights[0])


def test_run_key_is_the_first_words_of_the_seeds_sampling_stream():
    from fastinit import random as rng

    for seed in (0, 5, 2**40 + 7, 2**64 - 1):
        key = train.run_key(seed)
        want = rng.random_bits(2, seed=seed, stream=train.SAMPLING_STREAM)
        assert key.dtype == np.uint32 and key.tolist() == want.tolist()
    assert train.SAMPLING_STREAM > rng.TOP_GRADIENT_STREAM  # no layer's, nor the gradients'
    with pytest.raises(ValueError, match="seed"):
        train.run_key(-1)


def _fisher_yates(u: np.ndarray) -> np.ndarray:
    """The permutation :func:`train._draw_batch` makes from the uniforms ``u`` of its stream."""
    perm = np.arange(u.size)
    for i in range(u.size - 1, 0, -1):
        j = min(int(u[i] * (i + 1)), i)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


@pytest.mark.parametrize("seed", [0, 7, 2**40 + 3])
def test_minibatch_draws_are_independent_of_the_initial_weights_of_the_same_seed(seed):
    # sampling drew from streams 0 and 1 of the key `seed`, layer 0's weight and bias
    # streams: MLP(seed=s) fitted with seed=s (the MNIST experiment and the sweeps do)
    # picked its rows by layer 0's initial values (correlation 1 for uniform weights)
    from fastinit import random as rng

    n = 1000
    w = MLP([64, 64, 2], init="uniform", seed=seed, dtype="float64").weights[0].ravel()
    rows = np.concatenate([train.batch_rows(n, 128, t, seed=seed) for t in range(32)])
    assert abs(np.corrcoef(rows, w)[0, 1]) < 0.1  # 4096 pairs: 0.016 for independent ones
    perm = train.epoch_permutation(n, train.run_key(seed), 0)
    for stream in range(4):  # layers 0 and 1, weights and biases
        u = rng.fill_uniform(np.empty(n), seed=seed, stream=stream)
        assert np.mean(rows[:n] == (u * n).astype(np.int64)) < 0.01
        assert np.mean(perm == _fisher_yates(u)) < 0.01


@pytest.mark.parametrize("seed", [0, 2**40 + 3])
def test_replacement_batches_are_the_documented_draws(seed):
    # row r of iteration t is draw t * batch_size + r of stream 0 of the run key: a loop
    # taking iteration t + 1's batch at t passed every self-consistency test (mutation audit)
    from fastinit import random as rng

    n, b = 1000, 7
    k0, k1 = train.run_key(seed)
    zero = np.uint32(0)
    for t in (0, 1, 5):
        want = [rng.uniform_index(k0, k1, zero, zero, t * b + r, n) for r in range(b)]
        assert train.batch_rows(n, b, t, seed=seed).tolist() == want, t


def test_shuffle_permutations_are_the_documented_fisher_yates_and_uniform():
    # draw e * n + i of stream 1 swaps position i with one in [0, i]: a bound of [0, i)
    # still made a permutation every epoch, but only cyclic ones (2 of the 6 orders of 3)
    from fastinit import random as rng

    n, seed = 5, 3
    k0, k1 = train.run_key(seed)
    zero, one = np.uint32(0), np.uint32(1)
    for epoch in range(3):
        want = list(range(n))
        for i in range(n - 1, 0, -1):
            j = rng.uniform_index(k0, k1, one, zero, epoch * n + i, i + 1)
            want[i], want[j] = want[j], want[i]
        got = np.concatenate([train.batch_rows(n, 2, t, sampling="shuffle", seed=seed)
                              for t in range(epoch * 3, epoch * 3 + 3)])  # fmt: skip
        assert got.tolist() == want, epoch
    orders = [tuple(train.batch_rows(3, 3, e, sampling="shuffle", seed=seed)) for e in range(600)]
    counts = np.array([orders.count(p) for p in itertools.permutations(range(3))])
    assert counts.min() > 60, counts  # 100 each expected; a cyclic-only shuffle gives 0s


def test_epoch_permutation_is_the_order_shuffle_sampling_visits():
    n, seed, batch = 23, 5, 4
    key = train.run_key(seed)
    for epoch in range(3):
        perm = train.epoch_permutation(n, key, epoch)
        assert sorted(perm) == list(range(n))
        first = epoch * -(-n // batch)  # the epoch's first iteration
        rows = [train.batch_rows(n, batch, t, sampling="shuffle", seed=seed) for t in
                range(first, first + -(-n // batch))]  # fmt: skip
        np.testing.assert_array_equal(np.concatenate(rows), perm)
    first_two = [train.epoch_permutation(n, key, e) for e in (0, 1)]
    assert not np.array_equal(*first_two)


def test_shuffle_visits_every_row_once_per_epoch_and_replacement_draws_in_range():
    n, batch = 23, 5
    plan = train._plan(train.SHUFFLE, batch)
    key = np.array([9, 0], dtype=np.uint32)
    idx, perm = np.empty(batch, np.int64), np.empty(n, np.int64)
    epochs = []
    for epoch in range(2):
        seen = []
        for t in range(epoch * 5, epoch * 5 + 5):  # ceil(23 / 5) = 5 batches per epoch
            m = train._draw_batch(plan, key, t, n, idx, perm)
            seen.extend(idx[:m])
        assert sorted(seen) == list(range(n))
        epochs.append(seen)
    assert epochs[0] != epochs[1]
    plan[train.P_SAMPLING] = train.REPLACEMENT
    draws = np.concatenate(
        [idx[: train._draw_batch(plan, key, t, n, idx, perm)].copy() for t in range(200)]
    )
    assert draws.min() == 0 and draws.max() == n - 1
    assert np.abs(np.bincount(draws, minlength=n) / draws.size - 1 / n).max() < 0.02


def test_epochs_count_batches_per_epoch():
    h = _fresh().fit(X, Y, epochs=2, batch_size=64, progress=False)  # 200 rows: 4 batches
    assert h.iterations == 8
    h = _fresh().fit(X, Y, epochs=3, sampling="full", progress=False)
    assert h.iterations == 3


@pytest.mark.parametrize(
    ("sampling", "batch_size", "used"),
    [("replacement", 500, 500), ("shuffle", 500, 200), ("shuffle", 64, 64), ("full", 64, 200)],
)
def test_settings_record_the_batch_size_the_run_used(sampling, batch_size, used):
    # "shuffle" takes at most n rows, "full" all n whatever batch_size says: the
    # History records the rows per step (fit with these settings is the same run)
    settings = dict(sampling=sampling, batch_size=batch_size, seed=2)
    h = _fresh().fit(X, Y, iterations=4, progress=False, **settings)
    assert h.settings["batch_size"] == used
    again = _fresh().fit(X, Y, iterations=4, progress=False, **{**settings, "batch_size": used})
    np.testing.assert_array_equal(again.loss, h.loss)


@pytest.mark.parametrize("how", ["full", "replacement", "fit_many", "lsuv"])
def test_inputs_that_are_a_view_of_the_models_own_weights_are_copied_first(how):
    # X = model.weights[0] was used as is: the run overwrote its own input as it trained
    # (with "full" sampling the fused SGD update ran BLAS with its output over its input),
    # and lsuv's orthonormal redraw replaced X before measuring on it
    from fastinit.lsuv import lsuv

    y = np.arange(20) % 3

    def run(view: bool):
        models = [MLP([20, 20, 3], seed=0), MLP([20, 20, 3], seed=1)]
        x = models[-1].weights[0] if view else models[-1].weights[0].copy()
        kw = {"optimizer": optim.SGD(lr=0.5), "iterations": 3, "progress": False}
        if how == "lsuv":
            lsuv(models[-1], x)
            return [w.copy() for w in models[-1].weights]
        if how == "fit_many":
            return [h.loss for h in fit_many(models, x, y, batch_size=4, **kw)]
        return models[-1].fit(x, y, sampling=how, batch_size=4, **kw).loss

    for got, want in zip(run(True), run(False), strict=True):
        np.testing.assert_array_equal(got, want)


def test_huge_learning_rate_diverges_cleanly():
    model = _fresh(activation="relu")
    h = model.fit(
        X * 100, Y, optimizer=optim.SGD(1e30), iterations=50, batch_size=16, progress=False
    )
    assert h.status == "diverged"
    assert h.diverged_at == h.iterations < 50
    assert len(h.loss) == h.iterations + 1
    assert np.isfinite(h.loss[:-1]).all() and not np.isfinite(h.loss[-1])
    survivor = _fresh()
    hs = fit_many(
        [_fresh(activation="relu"), survivor],
        X * 100,
        Y,
        optimizer=[optim.SGD(1e30), optim.SGD(0.01)],
        iterations=50,
        batch_size=16,
        progress=False,
    )
    assert hs[0].status == "diverged" and hs[1].status == "ok" and hs[1].iterations == 50
    np.testing.assert_array_equal(hs[0].loss, h.loss)


def test_a_last_update_that_overflows_the_weights_is_a_divergence():
    # the loss is computed before each update: iteration 0's is finite, and its update
    # (lr 1e38) leaves infinite weights; the run diverged at iteration 1, not "ok"
    model = MLP([X.shape[1], 64, 3], activation="relu", seed=0)
    h = model.fit(X * 100, Y, optimizer=optim.SGD(1e38), iterations=1, sampling="full",
                  progress=False)  # fmt: skip
    assert not all(np.isfinite(w).all() for w in model.weights)  # the premise
    assert np.isfinite(h.loss).all() and len(h.loss) == h.iterations == 1
    assert h.status == "diverged" and h.diverged_at == 1
    ok = MLP([X.shape[1], 64, 3], activation="relu", seed=0)
    h = ok.fit(X, Y, optimizer=optim.SGD(0.01), iterations=1, sampling="full", progress=False)
    assert (h.status, h.diverged_at) == ("ok", None)


def test_overflowing_relu_network_diverges_instead_of_training_on_zeros():
    # std 1e30: the third layer's pre-activations are inf - inf = NaN; relu keeps NaN
    # (it once returned 0 there, and the run reported a finite loss of ln(classes))
    model = MLP([X.shape[1], 8, 8, 8, 3], activation="relu", init=("normal", {"std": 1e30}))
    h = model.fit(X, Y, iterations=5, progress=False)
    assert h.status == "diverged" and h.diverged_at == 0


def _interrupt_after_two_chunks(monkeypatch) -> None:
    """A Ctrl-C as fit's second chunk returns (chunks of 4, then 1 iteration)."""
    real, calls = train.train_chunk, []

    def interrupted_after_two_chunks(*args):
        real(*args)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train, "_CHUNK_SECONDS", 1e-9)
    monkeypatch.setattr(train, "train_chunk", interrupted_after_two_chunks)


def test_ctrl_c_returns_what_was_recorded_with_a_consistent_model(monkeypatch):
    real = train.train_chunk
    _interrupt_after_two_chunks(monkeypatch)
    model = _fresh()
    h = model.fit(X, Y, iterations=100, batch_size=8, progress=False)
    assert h.status == "interrupted" and h.iterations == len(h.loss) == 5  # chunks of 4, then 1
    monkeypatch.setattr(train, "train_chunk", real)
    reference = _fresh()
    hr = reference.fit(X, Y, iterations=5, batch_size=8, progress=False)
    np.testing.assert_array_equal(h.loss, hr.loss)
    np.testing.assert_array_equal(model.weights[0], reference.weights[0])


def test_the_bar_of_an_interrupted_fit_ends_where_the_history_does(monkeypatch):
    # a Ctrl-C lands as the chunk returns: the bar's last line said the chunk before
    # (781/100000 against a History of 1456 iterations)
    out = io.StringIO()
    _interrupt_after_two_chunks(monkeypatch)
    monkeypatch.setattr(train, "ProgressBar", functools.partial(ProgressBar, min_seconds=0.0,
                                                                stream=out))  # fmt: skip
    h = _fresh().fit(X, Y, iterations=100, batch_size=8)
    assert h.status == "interrupted" and h.iterations == 5
    assert out.getvalue().splitlines()[-1].split(" loss ")[0].endswith(" 5/100"), out.getvalue()


def test_ctrl_c_after_an_overflowing_update_is_still_a_ctrl_c(monkeypatch):
    # the chunk ran (its update left infinite weights after a finite loss), then Ctrl-C:
    # the History must still re-raise the interrupt, and say where the weights overflowed
    real = train.train_chunk

    def then_interrupted(*args):
        real(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "train_chunk", then_interrupted)
    model = MLP([X.shape[1], 64, 3], activation="relu", seed=0)
    h = model.fit(X * 100, Y, optimizer=optim.SGD(1e38), iterations=1, sampling="full",
                  progress=False)  # fmt: skip
    assert not all(np.isfinite(w).all() for w in model.weights)  # the premise
    assert (h.status, h.diverged_at) == ("interrupted", 1)
    with pytest.raises(KeyboardInterrupt):
        h.raise_if_interrupted()


def test_ctrl_c_in_the_chunk_where_the_loss_diverged_is_still_a_ctrl_c(monkeypatch):
    # the chunk ends at the non-finite loss, then the Ctrl-C arrives: fit caught it, so
    # raise_if_interrupted must raise it (a sweep would otherwise go on to its next run)
    real = train.train_chunk

    def interrupted_when_diverged(*args):
        real(*args)
        if (args[7][1][:, train.S_DIVERGED] >= 0).any():  # record = (losses, status, ...)
            raise KeyboardInterrupt

    alone = _fresh(activation="relu")
    expected = alone.fit(X * 100, Y, optimizer=optim.SGD(1e30), iterations=50, batch_size=16,
                         progress=False)  # fmt: skip
    assert expected.status == "diverged"  # the premise: a non-finite loss ends the run
    monkeypatch.setattr(train, "train_chunk", interrupted_when_diverged)
    model = _fresh(activation="relu")
    h = model.fit(X * 100, Y, optimizer=optim.SGD(1e30), iterations=50, batch_size=16,
                  progress=False)  # fmt: skip
    assert (h.status, h.diverged_at, h.iterations) == (
        "interrupted", expected.diverged_at, expected.iterations
    )  # fmt: skip
    np.testing.assert_array_equal(h.loss, expected.loss)
    with pytest.raises(KeyboardInterrupt):
        h.raise_if_interrupted()


def test_progress_bar():
    out = io.StringIO()
    bar = ProgressBar(10, min_seconds=0.0, stream=out)
    bar.update(5, 0.25)
    bar.close()
    text = out.getvalue()
    assert " 50% " in text and "5/10" in text and "loss 0.25" in text and text.endswith("\n")
    quiet = io.StringIO()
    bar = ProgressBar(10, min_seconds=60.0, stream=quiet)
    bar.update(5, 0.25)
    bar.close()
    assert quiet.getvalue() == ""


@pytest.mark.parametrize(("length", "value"), [("iterations", 10**15), ("epochs", 10**15)])
def test_a_run_too_long_to_allocate_names_its_length(length, value):
    # 8e15 bytes of loss history: beyond any address space, so it fails at once
    m = MLP([2, 3, 2])
    x, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int64)
    with pytest.raises(MemoryError, match=rf"^{length}, batch_size: .*fewer {length}"):
        m.fit(x, y, optimizer=optim.SGD(0.1), progress=False, **{length: value})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 2.0, "iterations": 1}, ValueError, "batch_size: expected an integer"),
        ({"iterations": 1.5}, ValueError, "iterations: expected an integer"),
        ({"epochs": 1.5}, ValueError, "epochs: expected an integer"),
        ({"seed": 1.0, "iterations": 1}, ValueError, "seed: expected an integer"),
        ({"iterations": 2**61}, MemoryError, "^iterations, batch_size: .*fewer iterations"),
        ({"epochs": 2**62}, MemoryError, "^epochs, batch_size: .*fewer epochs"),
        ({"batch_size": 2**62, "iterations": 1}, MemoryError, "smaller batch_size"),
        ({"batch_size": 2**63, "iterations": 1}, MemoryError, "smaller batch_size"),
        (
            {"iterations": 1, "record_stats": True, "stats_every": 2**64},
            ValueError,
            r"stats_every: expected an integer in \[1, ",
        ),
    ],
)
def test_fit_names_the_argument_of_any_mistake(kwargs, error, match):
    # ValueError for every kind of bad value (fit's rule), and sizes no array can
    # have refused as the MemoryError that names them, not as NumPy's errors
    m = MLP([2, 3, 2])
    x, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int64)
    with pytest.raises(error, match=match):
        m.fit(x, y, optimizer=optim.SGD(0.1), progress=False, **kwargs)


@pytest.mark.parametrize(
    ("other", "match"),
    [
        (MLP([2, 5, 2], dtype="float64"), r"models\[1\] has dtype float64, models\[0\] float32"),
        (MLP([3, 5, 2]), r"models\[1\] has 3 inputs, models\[0\] 2"),
        (MLP([2, 5, 3]), r"models\[1\] has 3 outputs, models\[0\] 2"),
        ("mlp", r"models\[1\]: expected an MLP, got str"),
    ],
)
def test_fit_many_names_the_model_that_does_not_fit_with_the_first(other, match):
    x, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match=match):
        fit_many([MLP([2, 3, 2]), other], x, y, iterations=1, progress=False)


def test_a_full_batch_run_too_large_names_x_not_batch_size(monkeypatch):
    from fastinit import train

    m = MLP([2, 3, 2])
    x, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int64)

    def no_memory(*args, **kwargs):  # the n-row work arrays of a huge X
        raise MemoryError

    monkeypatch.setattr(train, "_build_run", no_memory)
    with pytest.raises(MemoryError, match=r"^iterations, X: .*all 4 rows of X.*fewer rows$"):
        m.fit(x, y, sampling="full", iterations=1, batch_size=2**63, progress=False)


@pytest.mark.parametrize("sampling", ["replacement", "full"])
def test_a_run_beyond_the_memory_available_is_refused_before_allocating(monkeypatch, sampling):
    # where the kernel overcommits, NumPy's allocation of a huge buffer succeeds and the
    # run is killed when it touches it (a batch_size of 1e8: seen on a 128 GiB GPU host)
    from fastinit import _system, train

    def allocated(*args, **kwargs):
        raise AssertionError("the buffers were allocated")

    monkeypatch.setattr(_system, "available_memory", lambda **kw: 10**6)
    monkeypatch.setattr(train, "_CHECKED_ABOVE", 0)  # 64 MiB: smaller runs are not checked
    monkeypatch.setattr(train, "_build_run", allocated)
    m = MLP([784, 100, 10])
    x, y = np.zeros((5000, 784), np.float32), np.zeros(5000, np.int64)
    which = "X" if sampling == "full" else "batch_size"
    with pytest.raises(MemoryError, match=rf"^iterations, {which}: "):  # 2 MB of work > 1 MB
        m.fit(x, y, sampling=sampling, iterations=1, batch_size=5000, progress=False)


@pytest.mark.parametrize("stream", [None, "closed"])
def test_an_unwritable_stderr_turns_the_bar_off_not_the_run(stream, monkeypatch):
    import io
    import sys

    if stream == "closed":
        stream = io.StringIO()
        stream.close()  # write raises ValueError, as a closed pipe raises OSError
    monkeypatch.setattr(sys, "stderr", stream)  # None: pythonw, a service
    bar = ProgressBar(10, min_seconds=0.0)
    bar.update(5, 0.25)  # would raise AttributeError / ValueError
    bar.close()
    assert not bar.enabled
    m = MLP([2, 3, 2])
    x, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int64)
    h = m.fit(x, y, optimizer=optim.SGD(0.1), iterations=3, progress=True)
    assert h.status == "ok" and h.iterations == 3


@pytest.mark.parametrize("flag", ["no", None, 0])
def test_progress_must_be_a_bool(flag):
    m = MLP([2, 3, 2])
    x, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="progress: expected True or False"):
        m.fit(x, y, optimizer=optim.SGD(0.1), iterations=1, progress=flag)
    with pytest.raises(ValueError, match="progress"):
        fit_many([m], x, y, optimizer=optim.SGD(0.1), iterations=1, progress=flag)


class _Terminal(io.StringIO):
    """A terminal of unknown width (no ``fileno``): the progress bar redraws in place."""

    def isatty(self) -> bool:
        return True


def test_progress_estimate_leaves_out_the_first_chunk(monkeypatch):
    # the first chunk of a first run is mostly compilation: 4 iterations in 5 s, then
    # 10 in 0.01 s: 86 left take about 0.09 s, not the 107 s that 5.01 s / 14 suggests
    clock = iter([0.0, 5.0, 5.01])
    monkeypatch.setattr("fastinit._progress.time.perf_counter", lambda: next(clock))
    out = _Terminal()  # redrawn at every update (a file gets a line per tenth)
    bar = ProgressBar(100, min_seconds=0.0, stream=out)
    bar.update(4, 2.3)
    bar.update(14, 2.2)
    first, second = out.getvalue().split("\r")[1:]
    assert first.endswith("[5.0s<?]") and second.endswith("[5.0s<0.1s]")


def test_short_runs_print_no_progress(capsys):
    _fresh().fit(X, Y, iterations=5, progress=True)
    assert capsys.readouterr().err == ""


RUN = """
import hashlib, numpy as np
from fastinit.model import MLP
from fastinit import optim, train
rng = np.random.default_rng(0)
x = rng.normal(size=(300, 64)).astype(np.float32)
y = rng.integers(0, 10, size=300)
model = MLP([64, 128, 128, 10], seed=3)
h = model.fit(x, y, optimizer=optim.Momentum(0.05), batch_size=96, iterations=20, progress=False)
digest = hashlib.sha256(h.loss.tobytes())
# both training paths (feature-major, BLAS) at once, statistics and shuffling
models = [MLP([6, 8, 10], activation="tanh", seed=1), MLP([6, 40, 10], seed=2)]
for h in train.fit_many(models, x[:, :6], y, optimizer=optim.Adam(0.01), batch_size=64,
                        iterations=9, sampling="shuffle", record_stats=True, stats_every=2,
                        progress=False):
    digest.update(h.loss.tobytes())
    for name in sorted(h.stats):
        digest.update(h.stats[name].tobytes())
big = MLP([1024, 1024, 2], init="lecun_uniform", seed=5)  # 2**20 weights: a parallel fill
for m in (model, *models, big):
    for w in (*m.weights, *m.biases):
        digest.update(np.ascontiguousarray(w).tobytes())
print(digest.hexdigest())
"""


def test_results_do_not_depend_on_numbas_thread_count(python_subprocess):
    one = python_subprocess(RUN, NUMBA_NUM_THREADS="1")
    two = python_subprocess(RUN, NUMBA_NUM_THREADS="2")
    assert one.strip() == two.strip() and len(one.strip()) == 64


@pytest.mark.parametrize(
    ("sizes", "act", "loss", "opt"),
    [
        ([2, 4, 1], "tanh", "sigmoid_cross_entropy", optim.SGD(0.5)),
        ([5, 7, 6, 3], ["relu", "gelu"], "softmax_cross_entropy", optim.Adam(0.01)),
        ([3, 16, 2], "sigmoid", "mse", optim.Momentum(0.1, weight_decay=0.01)),
        ([1, 3, 1, 2], "tanh", "softmax_cross_entropy", optim.SGD(0.1)),  # 1-wide sums
    ],
)
def test_tiny_networks_take_the_feature_major_path_with_the_same_results(sizes, act, loss, opt):
    # widths <= NARROW_MAX train with fastinit.narrow; recording statistics every
    # iteration forces the row-major BLAS path: both must agree to rounding
    from fastinit import narrow

    assert narrow.is_narrow(tuple(sizes)) and not narrow.is_narrow((2, narrow.NARROW_MAX + 1))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((37, sizes[0]))
    y = rng.integers(0, sizes[-1], 37) if loss == "softmax_cross_entropy" else None
    if y is None:
        y = (rng.random((37, sizes[-1])) > 0.5).astype(float)
        y = y[:, 0] if sizes[-1] == 1 else y
    runs = []
    for record in (False, True):
        model = MLP(sizes, activation=act, seed=1, dtype="float64")
        opt.reset()
        h = model.fit(x, y, optimizer=opt, batch_size=8, iterations=25, loss=loss, seed=2,
                      progress=False, record_stats=record, stats_every=1)  # fmt: skip
        runs.append((h.loss, model.weights, model.biases))
    (la, wa, ba), (lb, wb, bb) = runs
    np.testing.assert_allclose(la, lb, rtol=1e-12)
    for a, b in zip([*wa, *ba], [*wb, *bb], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-12), ("float32", 2e-5)])
def test_feature_major_and_blas_paths_agree_for_every_activation_and_loss(monkeypatch, dtype, rtol):
    # the same tiny network trained on both paths (train.is_narrow patched off for the
    # second); shuffled batches of 7 out of 31 rows, so the last one of each epoch has 3
    from fastinit.activations import NAMES as ACTIVATIONS

    rng = np.random.default_rng(8)
    x = rng.standard_normal((31, 3))
    targets = {"softmax_cross_entropy": ([3, 5, 3], rng.integers(0, 3, 31)),
               "sigmoid_cross_entropy": ([3, 5, 1], rng.random(31) > 0.5),
               "mse": ([3, 5, 2], rng.standard_normal((31, 2)))}  # fmt: skip
    real = train.is_narrow
    for act in ACTIVATIONS:
        for loss, (sizes, y) in targets.items():
            runs = []
            for narrow in (real, lambda sizes: False):
                monkeypatch.setattr(train, "is_narrow", narrow)
                model = MLP(sizes, activation=act, seed=1, dtype=dtype)
                h = model.fit(x, y, loss=loss, optimizer=optim.Adam(0.02), batch_size=7,
                              iterations=12, sampling="shuffle", progress=False)  # fmt: skip
                runs.append((h.loss, model._params))
            (la, pa), (lb, pb) = runs
            np.testing.assert_allclose(la, lb, rtol=rtol, err_msg=f"{act} {loss}")
            np.testing.assert_allclose(pa, pb, rtol=rtol, atol=rtol, err_msg=f"{act} {loss}")


def test_layer_kernels_are_resolved_per_run_and_required():
    from fastinit import dense

    m = MLP([6, 5, 4, 3], activation=["tanh", "relu"], init="glorot_uniform")
    assert (m._layers[:, dense.KERNEL] == 0).all()  # the model keeps no addresses
    t32 = dense.with_kernels(m._layers, np.float32)
    t64 = dense.with_kernels(m._layers, np.float64)
    assert (t32[:, : dense.KERNEL] == m._layers[:, : dense.KERNEL]).all()
    assert len(set(t32[:, dense.KERNEL])) == 3  # tanh, relu, identity: one kernel each
    assert not set(t32[:, dense.KERNEL]) & set(t64[:, dense.KERNEL])  # per dtype
    x = np.ones((2, 6), np.float32)
    out, work = np.empty((2, 3), np.float32), np.empty(100, np.float32)
    with pytest.raises(ValueError, match="no activation kernel"):
        dense.forward_rows(dense.ops_table(m.dtype), (m._params, m._layers, m._act_params), 0, 3,
                           x, out, x.copy(), work)  # fmt: skip
    dense.forward_rows(dense.ops_table(m.dtype), (m._params, t32, m._act_params), 0, 3,
                       x, out, x.copy(), work)  # fmt: skip
    np.testing.assert_array_equal(out, m.forward(x))


def test_kernel_addresses_are_cached_per_code_and_dtype():
    from fastinit import activations, losses
    from fastinit import optim as O

    for factory, code in (
        (activations.activation_kernel, activations.TANH),
        (losses.loss_kernel, losses.MSE),
        (O.optimizer_kernel, O.ADAM),
    ):
        a = factory(code, np.float32)
        assert a != 0
        assert factory(code, "float32") == factory(np.int64(code), np.dtype("float32")) == a
        assert factory(code, np.float64) != a
    assert O.optimizer_kernel(O.NONE, np.float32) == 0


@pytest.mark.parametrize(
    ("opt", "name"),
    [
        (optim.SGD(1e-50), "lr"),  # rounds to 0 in float32: nothing would train
        (optim.Adam(0.01, eps=1e-50), "eps"),  # 0 / 0 where a gradient is 0
        (optim.SGD(0.01, weight_decay=1e39), "weight_decay"),  # float32 infinity
    ],
)
def test_a_hyperparameter_outside_the_model_dtype_is_refused(opt, name):
    X = np.random.default_rng(0).normal(size=(8, 3))
    y = np.arange(8) % 2
    model = MLP([3, 4, 2], seed=0, dtype="float32")
    before = model._params.copy()
    expected = rf"^optimizer\.{name}: expected (0 or )?a number in .* with dtype 'float32' \(it"
    with pytest.raises(ValueError, match=expected):
        model.fit(X, y, optimizer=opt, iterations=2, progress=False)
    np.testing.assert_array_equal(model._params, before)
    wide = MLP([3, 4, 2], seed=0, dtype="float64")  # representable there: trains
    wide.fit(X, y, optimizer=opt, iterations=2, progress=False)


def test_a_subnormal_hyperparameter_is_held_by_the_dtype_and_accepted():
    # float32 holds down to its smallest subnormal, 2**-149 = 1.4e-45, without rounding to 0:
    # the range the error names, and an lr of 1e-44 is taken as it is
    X = np.random.default_rng(0).normal(size=(8, 3))
    y = np.arange(8) % 2
    tiny = float(np.finfo(np.float32).smallest_subnormal)
    with pytest.raises(ValueError, match=rf"a number in \[{tiny:.3g}, "):
        MLP([3, 4, 2], seed=0, dtype="float32").fit(X, y, optimizer=optim.SGD(1e-50),
                                                     iterations=1, progress=False)  # fmt: skip
    model = MLP([3, 4, 2], seed=0, dtype="float32")
    h = model.fit(X, y, optimizer=optim.SGD(1e-44), iterations=2, progress=False)
    assert h.status == "ok"


def test_batch_rows_refuses_sizes_no_array_can_hold_naming_them():
    # 2**62 rows: NumPy's "array is too big", 2**63: OverflowError, neither naming an argument
    with pytest.raises(ValueError, match=r"^batch_size: "):
        train.batch_rows(10, 2**62, 0)
    with pytest.raises(ValueError, match=r"^(n|batch_size): "):
        train.batch_rows(2**63, 4, 0, sampling="shuffle")


def test_an_optimizer_given_as_a_name_and_hyperparameters_is_named_where_it_fails():
    # ("adam", {"lr": 0.1}) was read as a list of two optimizers: "expected 1 optimizers, got 2"
    model = MLP([2, 3, 2], seed=0)
    X, y = np.ones((4, 2), np.float32), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"^optimizer\[1\]: expected an Optimizer or one of"):
        model.fit(X, y, optimizer=("adam", {"lr": 0.1}), iterations=1, progress=False)


def test_the_bar_of_several_networks_shows_the_range_of_their_losses(monkeypatch):
    # it showed the first network's loss: fastinit mnist's bar read 2.30 throughout
    # (std=0.01, which never learns) while He's was down near 0.2
    from fastinit import train as train_module

    seen = []
    real = train_module.ProgressBar.update

    def record(self, done, loss=None):
        seen.append(loss)
        return real(self, done, loss)

    monkeypatch.setattr(train_module.ProgressBar, "update", record)
    X = np.random.default_rng(0).standard_normal((32, 3)).astype(np.float32)
    y = np.arange(32) % 2
    models = [MLP([3, 4, 2], seed=s) for s in (1, 2)]
    histories = fit_many(models, X, y, iterations=8, progress=False)
    done = len(seen) and 8
    low, high = seen[-1]
    last = sorted(float(h.loss[done - 1]) for h in histories)
    assert (low, high) == (last[0], last[1])
    bar = ProgressBar(10, min_seconds=0.0, stream=io.StringIO())
    bar.update(5, (0.2163, 2.302))
    assert "loss 0.2163-2.302" in bar.stream.getvalue()
