"""The classic experiments end to end, on reduced sizes, against independent oracles."""

import csv
import errno
import itertools
import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from fastinit import MLP, datasets, init
from fastinit import random as frandom
from fastinit.experiments._common import (
    FIGURE_DPI,
    Output,
    parse_init,
    parse_init_options,
    parse_inits,
    prepare_output,
    pyplot,
    smooth_curve,
)
from fastinit.experiments.depth import TOP_GRADIENT_STREAM, run_depth
from fastinit.experiments.histogram import HistogramResult, LayerStats, run_histogram
from fastinit.experiments.mnist import MnistResult, run_mnist
from fastinit.experiments.planar import notebook_weights, run_planar
from fastinit.experiments.symmetry import SymmetryResult, checkpoints, run_symmetry, unit_spread
from tests import notebook_planar


def test_parse_init_specs():
    assert parse_init("std=0.01").std == 0.01
    assert parse_init("randn*100").std == 100
    assert parse_init("randn").std == 1
    assert parse_init("xavier").fan_scale == 1 and parse_init("He").fan_scale == 2
    assert parse_init("constant=0.5").value == 0.5
    assert parse_init("glorot_uniform").initializer == "glorot_uniform"
    for bad in ("std=-1", "std=inf", "constant=x", "nonsense", ""):
        with pytest.raises(ValueError, match="init"):
            parse_init(bad)


@pytest.mark.parametrize(("name", "scale"), [("xavier", 1.0), ("he", 2.0), ("HE", 2.0)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_books_xavier_and_he_are_variance_scalings_untruncated_normal(name, scale, dtype):
    # README: the experiments' xavier and he draw what MLP(init=("variance_scaling",
    # {"scale": 1 or 2, "mode": "fan_in", "distribution": "untruncated_normal"})) draws
    # (init.get's "xavier" and "he" are other inits: xavier_uniform and he_normal)
    for shape in [(784, 100), (100, 10)]:
        book = parse_init(name).draw(shape, 5, 3, dtype)
        general = init.variance_scaling(shape, scale=scale, mode="fan_in",
                                        distribution="untruncated_normal", seed=5, stream=3,
                                        dtype=dtype)  # fmt: skip
        np.testing.assert_array_equal(book, general)
        assert book.std() == pytest.approx(np.sqrt(scale / shape[0]), rel=0.1)


def test_smooth_curve_is_the_books_kaiser_window():
    x = np.random.default_rng(0).random(300)
    y = smooth_curve(x)
    assert y.shape == x.shape
    w = np.kaiser(11, 2) / np.kaiser(11, 2).sum()
    np.testing.assert_allclose(y[100], np.dot(w, x[95:106]))


def test_histogram_stats_of_finite_float32_signals_past_1e19_are_finite():
    # std=1e4 ReLU: layer 5's activations reach about 1e22, finite in float32, but their
    # squares overflow it: a.std() gave inf (shown as overflow) for a finite signal
    r = run_histogram(("std=1e4",), ("relu",), layers=5, width=16, samples=8, dtype="float32",
                      progress=False)  # fmt: skip
    x = datasets.gaussian(8, 16, seed=0, dtype="float32")
    a = x
    for k, s in enumerate(r.stats):
        w = init.normal((16, 16), std=1e4, seed=0, stream=k + 1, dtype="float32")
        a = np.maximum(a @ w, np.float32(0))
        assert a.dtype == np.float32 and np.isfinite(a).all()
        wide = a.astype(np.float64)
        assert s.act_std == pytest.approx(wide.std(), rel=1e-5)
        assert s.act_mean == pytest.approx(wide.mean(), rel=1e-5)
        assert math.isfinite(s.grad_std)
    assert np.abs(a).max() > 1e20


def test_histogram_experiment(tmp_path):
    r = run_histogram(layers=3, width=40, samples=200, bins=10, out=tmp_path)
    for f in ("summary.json", "layer_stats.csv", "histograms.csv"):
        assert (tmp_path / f).exists()
    for act in ("sigmoid", "tanh", "relu"):
        assert (tmp_path / f"activations_{act}.png").stat().st_size > 1000
        assert (tmp_path / f"gradients_{act}.png").exists()
    stats = {(s.init, s.activation, s.layer): s for s in r.stats}
    # an independent forward pass gives the same numbers
    x = datasets.gaussian(200, 40, seed=0, dtype="float64")
    a = x
    for k in range(3):
        w = init.normal((40, 40), std=1.0, seed=0, stream=k + 1, dtype="float64")
        a = 1 / (1 + np.exp(-(a @ w)))
        assert stats[("std=1", "sigmoid", k + 1)].act_std == pytest.approx(a.std(), rel=1e-9)
    assert r.act_counts[("std=1", "sigmoid")].sum(axis=1).tolist() == [200 * 40] * 3
    # the classic picture: std=1 saturates sigmoid, std=0.01 collapses it at 0.5
    assert stats[("std=1", "sigmoid", 3)].saturated > 0.2
    assert stats[("xavier", "sigmoid", 3)].saturated < 0.02
    assert stats[("std=0.01", "sigmoid", 3)].act_std < 0.05
    # He keeps ReLU layers' spread; std=0.01 makes it vanish
    he = [stats[("he", "relu", k)].act_std for k in (1, 2, 3)]
    assert max(he) / min(he) < 1.5
    assert stats[("std=0.01", "relu", 3)].act_std < 1e-4
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["layers"] == 3
    assert summary["results"][0]["act_std"] == r.stats[0].act_std


def test_mnist_experiment(tmp_path):
    r = run_mnist(
        ("std=0.01", "he", "glorot_uniform"), hidden=(32, 32), iterations=300, train_size=3000,
        seeds=2, out=tmp_path, progress=False,
    )  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    res = summary["results"]
    assert set(res) == {"std=0.01", "he", "glorot_uniform"}
    assert summary["iterations_per_second"] > 0
    assert summary["config"]["sizes"] == [784, 32, 32, 10]
    with (tmp_path / "loss_curves.csv").open() as f:
        rows = list(csv.reader(f))
    assert len(rows) == 301
    col = rows[0].index("he[seed=0]")
    last100 = [float(row[col]) for row in rows[-100:]]
    assert res["he"]["per_seed"]["final_loss"][0] == pytest.approx(np.mean(last100))
    assert res["he"]["final_loss"] == pytest.approx(np.mean(r.final_loss("he")))
    # the classic result: std=0.01 barely learns, He does
    assert res["std=0.01"]["final_loss"] > 2.0
    assert res["he"]["final_loss"] < 1.0
    assert res["he"]["test_accuracy"] > 0.7
    assert (tmp_path / "mnist_loss.png").exists()


def test_planar_reproduces_the_notebook():
    iterations = 1500
    x, y = datasets.planar(1)
    for scale in (1.0, 0.01):
        r = run_planar((f"randn*{scale}",), iterations=iterations, progress=False)
        p, costs = notebook_planar.nn_model(x.T, y[None, :], 4, iterations, 1.2, scale)
        np.testing.assert_allclose(r.costs[f"randn*{scale}"], costs, rtol=1e-8)
        xt, yt = datasets.planar(2)
        acc = float(np.mean(notebook_planar.predict(p, xt.T)[0] == yt))
        assert r.test_accuracy[f"randn*{scale}"] == pytest.approx(acc)


def test_planar_prints_the_notebooks_published_costs():
    # "Cost after iteration i" as printed by the classic notebook (n_h = 4, lr 1.2)
    published = {0: 0.693048, 1000: 0.288083, 2000: 0.254385, 3000: 0.233864}
    r = run_planar(("randn*0.01",), iterations=3001, progress=False)
    for i, cost in published.items():
        assert round(float(r.costs["randn*0.01"][i]), 6) == cost


def test_planar_inits_and_files(tmp_path):
    w = notebook_weights(0.5)
    r = run_planar(
        ("zeros", "randn*100", "he_normal"), weights={"mine": w}, iterations=300, out=tmp_path,
        progress=False,
    )  # fmt: skip
    zeros = r.costs["zeros"]
    # zero weights never move: W2 = 0 blocks every hidden gradient, tanh(0) = 0 blocks W2's
    assert all(np.all(w == 0) for w in r.models["zeros"].weights)
    assert np.ptp(zeros) < 1e-12 and zeros[0] == pytest.approx(math.log(2))
    assert r.costs["mine"][-1] < r.costs["mine"][0]
    assert np.isfinite(r.costs["randn*100"]).all()
    for f in ("summary.json", "cost_curves.csv", "planar_cost.png", "planar_boundaries.png"):
        assert (tmp_path / f).exists()
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["results"]["mine"]["final_cost"] == pytest.approx(float(r.costs["mine"][-1]))


def test_symmetry_experiment(tmp_path):
    r = run_symmetry(iterations=200, every=50, out=tmp_path, progress=False)
    assert r.symmetric("zeros") and r.symmetric("constant=0.5")
    assert not r.symmetric("randn*0.5")
    assert r.incoming["randn*0.5"].min() > 0
    assert (tmp_path / "symmetry.png").exists()
    assert unit_spread(np.array([[1.0, 1.0], [2.0, 5.0]])) == 3.0


def test_units_equal_but_for_blas_rounding_count_as_symmetric(tmp_path):
    # OpenBLAS computes a product's edge columns with other micro-kernels than the rest, so
    # the equal units of some widths differ in their last bits (float32 2-37-53 on AVX-512:
    # 7.7e-7 after 2000 steps): they were reported "symmetric False"
    inits = ("constant=0.5", "randn*0.5")
    r = run_symmetry(inits, hidden=(37, 53), iterations=100, every=50, dtype="float32",
                     out=tmp_path, progress=False)  # fmt: skip
    assert r.symmetric("constant=0.5") and not r.symmetric("randn*0.5")
    spreads = (r.incoming["constant=0.5"], r.outgoing["constant=0.5"])
    exact = all(bool(np.all(s == 0)) for s in spreads)
    assert not r.exactly_symmetric("randn*0.5")
    results = json.loads((tmp_path / "summary.json").read_text())["results"]
    assert results["constant=0.5"]["symmetric_throughout"] is True
    assert results["constant=0.5"]["exactly_symmetric"] is exact
    (row,) = [line for line in r.table().splitlines() if line.startswith("constant=0.5")]
    assert row.split()[1] == ("exactly" if exact else "to-rounding"), row


@pytest.mark.parametrize(
    ("dtype", "spread", "symmetric"),
    [("float32", 1e-6, True), ("float32", 1e-3, False), ("float64", 1e-10, True),
     ("float64", 1e-6, False), ("float64", 0.0, True)],
)  # fmt: skip
def test_symmetric_means_equal_to_half_the_digits_of_the_weights(dtype, spread, symmetric):
    # units equal to sqrt(eps) of the largest weight: rounding, not a broken symmetry
    r = SymmetryResult({"dtype": dtype}, [0, 10])
    zeros = np.zeros((2, 1))
    r.incoming["a"], r.outgoing["a"] = np.array([[0.0], [spread]]), zeros
    r.incoming_scale["a"], r.outgoing_scale["a"] = np.full((2, 1), 0.5), np.full((2, 1), 0.5)
    assert r.symmetric("a") is symmetric
    assert r.exactly_symmetric("a") is (spread == 0)
    # a result made without the weights' scales (by other code) judges exactly
    bare = SymmetryResult({"dtype": dtype}, [0, 10])
    bare.incoming["a"], bare.outgoing["a"] = r.incoming["a"], r.outgoing["a"]
    assert bare.symmetric("a") is (spread == 0)


# ----------------------------------------------------------------------------- audit fixes
def test_symmetry_trains_every_iteration_when_every_does_not_divide_them():
    r = run_symmetry(("randn*0.5",), iterations=30, every=20, progress=False)
    assert r.checkpoints == [0, 20, 30]
    assert checkpoints(30, 10) == [0, 10, 20, 30] and checkpoints(5, 5) == [0, 5]
    finer = run_symmetry(("randn*0.5",), iterations=30, every=10, progress=False)
    # the same 30 full-batch steps, checkpointed differently
    assert r.loss["randn*0.5"][-1] == pytest.approx(finer.loss["randn*0.5"][-1], rel=1e-12)
    assert r.summary()["config"]["iterations"] == 30


def test_symmetry_table_and_files_show_the_same_spreads(tmp_path):
    r = run_symmetry(("zeros", "randn*0.5"), iterations=20, every=10, out=tmp_path, progress=False)
    res = r.summary()["results"]["randn*0.5"]
    line = next(x for x in r.table().splitlines() if x.startswith("randn*0.5"))
    assert line.split()[2:4] == [
        f"{res['max_incoming_spread']:.4g}",
        f"{res['max_outgoing_spread']:.4g}",
    ]
    with (tmp_path / "spread.csv").open() as f:
        rows = list(csv.DictReader(f))
    for kind in ("incoming", "outgoing"):
        cols = [c for c in rows[0] if c.startswith(f"randn*0.5:{kind}:")]
        assert len(cols) == 2
        assert max(float(row[c]) for row in rows for c in cols) == res[f"max_{kind}_spread"]


def test_histogram_summary_and_layer_csv_say_what_share_lies_outside_each_histogram(tmp_path):
    # the figures said "23.8% > 1 not shown"; summary.json and layer_stats.csv, which a
    # user analyses, gave the histograms without the values they leave out
    r = run_histogram(("he", "std=0.01"), ("relu", "tanh"), layers=2, width=20, samples=50,
                      bins=10, out=tmp_path, progress=False)  # fmt: skip
    x = datasets.gaussian(50, 20, seed=0, dtype="float64")
    summary = json.loads((tmp_path / "summary.json").read_text())["results"]
    with (tmp_path / "layer_stats.csv").open() as f:
        rows = list(csv.DictReader(f))
    for init_name, std in (("he", math.sqrt(2 / 20)), ("std=0.01", 0.01)):
        a = x
        for k in range(2):
            w = init.normal((20, 20), std=std, seed=0, stream=k + 1, dtype="float64")
            a = np.maximum(a @ w, 0.0)
            i = next(i for i, s in enumerate(r.stats)
                     if (s.init, s.activation, s.layer) == (init_name, "relu", k + 1))  # fmt: skip
            above = np.count_nonzero(a > 1.0) / a.size
            assert r.stats[i].below_range == 0.0
            assert r.stats[i].above_range == pytest.approx(above, abs=1 / a.size)
            assert summary[i]["above_range"] == r.stats[i].above_range
            assert float(rows[i]["above_range"]) == pytest.approx(r.stats[i].above_range)
            assert float(rows[i]["below_range"]) == 0.0
    he = [s.above_range for s in r.stats if (s.init, s.activation) == ("he", "relu")]
    assert min(he) > 0.05  # He's ReLU layers spill past the book's (0, 1)
    counted = r.act_counts[("he", "relu")].sum(axis=1) / (20 * 50)
    np.testing.assert_allclose(np.array(he) + counted, 1.0)  # what no bin counts
    assert all(s.below_range + s.above_range == 0 for s in r.stats if s.activation == "tanh"
               and s.init == "std=0.01")  # fmt: skip


def test_histogram_table_columns_never_run_together():
    big = LayerStats("variance_scaling", "sigmoid", 12, 9123.456, 12654.5679, 0.5, None, 1e30, 0, 0)
    he = LayerStats("he", "tanh", 1, -0.5, 0.25, None, 0.0, 0.1, 0.0, 0.0)
    r = HistogramResult({}, stats=[big, he])
    lines = r.table().splitlines()
    assert lines[2].split() == [
        "variance_scaling", "sigmoid", "12", "9123.4560", "12654.5679", "0.500", "-", "1e+30",
    ]  # fmt: skip
    assert lines[3].split() == ["he", "tanh", "1", "-0.5000", "0.2500", "-", "0.000", "0.1"]
    assert len({len(x) for x in lines[:2]}) == 1  # the rule is as wide as the header


def _mnist_result(curves, accuracy, status):
    r = MnistResult({"experiment": "mnist"})
    for name, c in curves.items():
        r.curves[name] = np.array(c, dtype=np.float64)
        r.test_accuracy[name] = np.array(accuracy[name], dtype=np.float64)
        r.status[name] = status[name]
    return r


def test_mnist_says_what_its_rate_counts_and_counts_seeds_in_the_singular():
    # "1350 training iterations/s" was 600 network-updates (2 networks x 300) in 0.44 s,
    # compilation included, and one diverged seed read "1 of 1 seeds diverged"
    curves, accuracy = (
        {"he": [[1.0, np.nan]], "xavier": [[1.0, 0.5]]},
        {"he": [np.nan], "xavier": [0.5]},
    )
    r = _mnist_result(curves, accuracy, {"he": ["diverged"], "xavier": ["ok"]})
    r.iterations_per_second = 1350.0
    text = r.table()
    assert "he: 1 of 1 seed diverged (left out)" in text
    assert "1350 network-iterations/s (2 networks side by side; compilation included)" in text


def test_mnist_std_over_seeds_is_the_reports_sample_std():
    r = _mnist_result(
        {"one": [[3.0, 1.0]], "two": [[3.0, 1.0], [3.0, 2.0]]},
        {"one": [0.5], "two": [0.5, 0.7]},
        {"one": ["ok"], "two": ["ok", "ok"]},
    )
    res = r.summary()["results"]
    assert res["one"]["final_loss"] == 2.0
    assert res["one"]["final_loss_std"] is None and res["one"]["test_accuracy_std"] is None
    assert res["two"]["final_loss_std"] == pytest.approx(np.std([2.0, 2.5], ddof=1))
    assert res["two"]["test_accuracy_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))


def test_mnist_final_loss_ignores_nan_padding_of_diverged_runs():
    nan = float("nan")
    r = _mnist_result(
        {"he": [[2.0, 1.0, 1.0], [2.0, float("inf"), nan], [2.0, 1.0, float("inf")]],
         "x": [[2.0, nan, nan]]},
        {"he": [0.9, nan, nan], "x": [nan]},
        {"he": ["ok", "diverged", "diverged"], "x": ["diverged"]},
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Mean of empty slice"
        # a seed whose loss became inf at its last iteration has no final loss either: a
        # check of "some value finite" gave it inf (mutation audit)
        np.testing.assert_array_equal(r.final_loss("he"), [4 / 3, nan, nan])
        res = r.summary()["results"]
        r.table()
    assert res["he"]["final_loss"] == pytest.approx(4 / 3)  # the finite seed only
    assert res["he"]["final_loss_count"] == 1
    assert res["x"]["final_loss"] is None and res["x"]["test_accuracy"] is None


def test_summary_json_writes_null_for_non_finite_numbers(tmp_path):
    Output(tmp_path).json("s.json", {"a": float("nan"), "b": [np.float32(np.inf), 1.5], "c": 2})
    text = (tmp_path / "s.json").read_text()
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": 2}
    assert "NaN" not in text and "Infinity" not in text


def test_repeated_inits_are_refused():
    with pytest.raises(ValueError, match="inits: 'zeros' is given twice"):
        run_symmetry(("zeros", "ZEROS"), iterations=2, every=1, progress=False)
    with pytest.raises(ValueError, match="inits"):
        run_histogram(("he", "xavier", "he"), layers=1, width=4, samples=4)
    # one draw under two spellings: trained twice, reported as two inits
    with pytest.raises(ValueError, match=r"'std=0.01' is given twice \(also as 'randn\*1e-2'\)"):
        run_planar(("std=0.01", "randn*1e-2"), iterations=2, progress=False)
    with pytest.raises(ValueError, match=r"'randn' is given twice \(also as 'std=1'\)"):
        run_depth(("randn", "std=1"), depths=(2,), width=4, samples=4)
    with pytest.raises(ValueError, match="weights"):
        run_planar(("zeros",), weights={"zeros": notebook_weights(1.0)}, iterations=2)


def test_planar_compares_the_notebooks_randn_with_fastinits_normal():
    # rng='notebook' draws randn*s with the notebook's RandomState and 'normal' with
    # fastinit's generator: two draws, refused as "the same init" before
    result = run_planar(("randn", "normal", "std=0"), iterations=2, progress=False)
    first = [result.costs[name][0] for name in ("randn", "normal")]
    assert first[0] != first[1]
    with pytest.raises(ValueError, match=r"'normal' is given twice \(also as 'randn'\)"):
        run_planar(("normal", "randn"), rng="fastinit", iterations=2, progress=False)
    with pytest.raises(ValueError, match=r"'zeros' is given twice \(also as 'std=0'\)"):
        run_planar(("zeros", "std=0"), iterations=2, progress=False)  # randn*0 is zeros


@pytest.mark.parametrize("spec", ["std=1e-50", "randn*1e-46", "constant=-1e-50"])
def test_an_init_value_float32_rounds_to_zero_is_refused(spec):
    # drew all-zero weights silently: a run of 'zeros' under another name
    with pytest.raises(ValueError, match=rf"'{re.escape(spec)}' cannot be drawn in float32: "
                                         r".*rounds to 0"):  # fmt: skip
        parse_inits([spec], dtype="float32")
    assert parse_inits([spec], dtype="float64")[0].name == spec


@pytest.mark.parametrize("spec", ["std=1e-400", "randn*1e-400", "constant=-1e-400"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_init_value_that_no_float_holds_is_refused(spec, dtype):
    # float("1e-400") is 0.0: all-zero weights under another name, accepted silently
    with pytest.raises(ValueError, match=r"rounds to 0"):
        parse_inits([spec], dtype=dtype)


def test_a_constant_spec_may_be_spaced_as_a_std_spec():
    # 'std = 0.5' was accepted, 'constant = 0.5' an unknown init
    assert parse_init("constant = 0.5").value == parse_init("std = 0.5").std == 0.5


def test_unwritable_out_fails_before_training(tmp_path, monkeypatch):
    from fastinit.model import MLP

    def fit(*args, **kwargs):
        raise AssertionError("trained although out is unusable")

    monkeypatch.setattr(MLP, "fit", fit)
    taken = tmp_path / "file"
    taken.write_text("")
    with pytest.raises(ValueError, match=r"out .*expected a directory"):
        run_planar(("zeros",), iterations=5, out=taken, progress=False)
    assert prepare_output(None) == []
    made = prepare_output(tmp_path / "a" / "b")
    assert made == [tmp_path / "a" / "b", tmp_path / "a"]
    assert prepare_output(tmp_path / "a" / "b") == []


def _left_by_a_killed_writer(directory, body: str) -> list[str]:
    """Run ``body`` (it SIGKILLs itself) in a fresh process; the names left in ``directory``."""
    import subprocess
    import sys

    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from fastinit.experiments._common import Output\n"
        "out = Path(sys.argv[1])\n"
    ) + body
    run = subprocess.run([sys.executable, "-c", code, str(directory)], check=False)
    assert run.returncode == -9
    return [p.name for p in directory.iterdir()]


def test_staging_left_by_a_killed_writer_is_removed_by_the_next(tmp_path):
    from fastinit.experiments._common import _host

    left = _left_by_a_killed_writer(tmp_path, (
        "with Output(out) as output:\n"
        "    output.json('summary.json', {'a': 1})\n"
        "    os.kill(os.getpid(), signal.SIGKILL)  # no __exit__: the staging stays\n"
    ))  # fmt: skip
    assert len(left) == 1 and left[0].startswith(".writing-")
    live = tmp_path / f".writing-{_host()}-{os.getpid()}-live"  # a writer still running
    other = tmp_path / ".writing-otherhost-1-x"  # another machine's, on a shared disk
    live.mkdir()
    other.mkdir()
    with Output(tmp_path) as output:
        output.json("summary.json", {"a": 2})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["summary.json", live.name, other.name])


def test_a_writer_killed_while_moving_its_files_in_is_finished_by_the_next_run(tmp_path):
    # SIGKILL (an OOM kill) between two renames left a.csv new and b.csv, c.csv old, and
    # the next run deleted the staging folder, with the files it had not moved in yet
    with Output(tmp_path, "planar") as output:
        for name in ("a.csv", "b.csv", "c.csv", "old.csv"):
            output.text(name, "earlier")
    left = _left_by_a_killed_writer(tmp_path, (
        "from fastinit.experiments import _common\n"
        "real, moved_in = os.replace, []\n"
        "def replace(a, b):\n"
        "    if '.writing-' in str(a) and '.writing-' not in str(b):  # staged -> final\n"
        "        if len(moved_in) == 2:  # c.csv moved aside, not yet replaced\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "        moved_in.append(b)\n"
        "    real(a, b)\n"
        "_common.os.replace = replace\n"
        "with Output(out, 'planar') as output:\n"
        "    for name in ('a.csv', 'b.csv', 'c.csv'):\n"
        "        output.text(name, 'killed run')\n"
    ))  # fmt: skip
    texts = {n: (tmp_path / n).read_text() for n in ("a.csv", "b.csv", "c.csv", "old.csv")
             if (tmp_path / n).exists()}  # fmt: skip
    assert sorted(set(texts.values())) == ["earlier", "killed run"], texts  # the case
    assert any(n.startswith(".writing-") for n in left)
    with Output(tmp_path):  # the next write there (no owner: its own files left alone)
        pass
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".fastinit-planar-files.json", "a.csv", "b.csv", "c.csv"], names
    assert {n: (tmp_path / n).read_text() for n in names[1:]} == dict.fromkeys(
        names[1:], "killed run"
    )
    listed = json.loads((tmp_path / ".fastinit-planar-files.json").read_text())
    assert listed == ["a.csv", "b.csv", "c.csv"]


# a planar run writing a.csv and b.csv, killed once a.csv is in and b.csv moved aside
_KILLED_AFTER_ONE_RENAME = (
    "real, moved_in = os.replace, []\n"
    "def replace(a, b):\n"
    "    if '.writing-' in str(a) and '.writing-' not in str(b):  # staged -> final\n"
    "        if len(moved_in) == 1:  # a.csv in, b.csv moved aside\n"
    "            os.kill(os.getpid(), signal.SIGKILL)\n"
    "        moved_in.append(b)\n"
    "    real(a, b)\n"
    "os.replace = replace\n"
    "with Output(out, 'planar') as output:\n"
    "    for name in ('a.csv', 'b.csv'):\n"
    "        output.text(name, 'killed run')\n"
)


def test_a_killed_writers_moves_that_cannot_be_finished_are_kept_and_named(tmp_path):
    # its list of renames unreadable: the folder holding the files it had not moved in
    # was renamed .fastinit-kept-... without a word, leaving a mix in --out silently
    with Output(tmp_path, "planar") as output:
        for name in ("a.csv", "b.csv"):
            output.text(name, "earlier")
    _left_by_a_killed_writer(tmp_path, _KILLED_AFTER_ONE_RENAME)
    from fastinit.experiments import _common

    (staging,) = [p for p in tmp_path.iterdir() if p.name.startswith(".writing-")]
    (staging / _common._JOURNAL).write_text("{damaged")
    with pytest.warns(RuntimeWarning, match="killed") as caught, Output(tmp_path):
        pass
    (kept,) = [p for p in tmp_path.iterdir() if p.name.startswith(".fastinit-kept-")]
    message = str(caught[0].message)
    assert str(tmp_path) in message and kept.name in message, message
    assert any(p.name.startswith(".earlier-") for p in kept.iterdir())  # b.csv's earlier


def test_a_killed_writers_moves_are_not_finished_over_a_newer_commit(tmp_path):
    # two runs of one command in one --out: the first killed between its renames, the
    # second committed whole; the next write finished the first's renames over it
    with Output(tmp_path, "planar") as output:
        for name in ("a.csv", "b.csv"):
            output.text(name, "earlier")
    second = Output(tmp_path, "planar").__enter__()  # started before the kill
    _left_by_a_killed_writer(tmp_path, _KILLED_AFTER_ONE_RENAME)
    for name in ("a.csv", "b.csv"):
        second.text(name, "second run")
    second.__exit__(None, None, None)
    with Output(tmp_path):  # the next write there
        pass
    texts = {n: (tmp_path / n).read_text() for n in ("a.csv", "b.csv")}
    assert texts == {"a.csv": "second run", "b.csv": "second run"}, texts
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".writing-")]


def test_a_commit_of_two_directories_killed_before_its_first_rename_is_not_finished(tmp_path):
    # killed after one directory's list of renames was written, before the other's: the
    # next writes finished the first directory's commit only, one directory new, one old
    first, second = tmp_path / "a", tmp_path / "b"
    for d in (first, second):
        with Output(d, "report") as output:
            output.text("f.txt", "earlier")
    _left_by_a_killed_writer(tmp_path, (
        "from fastinit.experiments import _common\n"
        "real, lists = _common.write_bytes, []\n"
        "def write_bytes(path, data):\n"
        "    if Path(path).name == _common._JOURNAL:\n"
        "        lists.append(path)\n"
        "        if len(lists) == 2:\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(path, data)\n"
        "_common.write_bytes = write_bytes\n"
        "with Output(out / 'a', 'report') as a, Output(out / 'b', 'report') as b:\n"
        "    a.text('f.txt', 'killed run')\n"
        "    b.text('f.txt', 'killed run')\n"
        "    _common.commit_all([a, b])\n"
    ))  # fmt: skip
    for d in (first, second):
        with Output(d):  # the next write into each
            pass
    assert [(d / "f.txt").read_text() for d in (first, second)] == ["earlier", "earlier"]


def test_a_full_disk_as_the_renames_are_listed_says_the_files_are_as_they_were(
    tmp_path, monkeypatch
):
    # the raw "[Errno 28] ... .writing-.../.moves.json", naming a hidden file since removed
    from fastinit.experiments import _common

    with Output(tmp_path, "planar") as output:
        output.text("a.csv", "earlier")
    real = _common.write_bytes

    def full(path, data):
        if Path(path).name == _common._JOURNAL:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(_common, "write_bytes", full)
    with pytest.raises(OSError) as e, Output(tmp_path, "planar") as output:
        output.text("a.csv", "new")
    assert str(e.value) == (
        f"{str(tmp_path)!r}: could not put this run's files in place (No space left on "
        "device); the files there are as they were before the run"
    ), e.value
    assert (tmp_path / "a.csv").read_text() == "earlier"


def test_unstaged_writes_leave_no_temporary_files(tmp_path, monkeypatch):
    import io

    from fastinit import _files
    from fastinit.experiments import _common

    left = _left_by_a_killed_writer(tmp_path, (
        "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # before the rename\n"
        "Output(out).json('report.json', {'a': 1})\n"
    ))  # fmt: skip
    assert len(left) == 1 and left[0].startswith(".report.json.") and left[0].endswith(".tmp")
    live = tmp_path / f".report.json.{_common._host()}-{os.getpid()}-live.tmp"  # a live writer's
    live.write_text("")
    output = Output(tmp_path)  # no ``with``: each file is written and renamed at once
    output.json("report.json", {"a": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["report.json", live.name])
    assert json.loads((tmp_path / "report.json").read_text()) == {"a": 2}
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o666 & ~_umask()
    live.unlink()

    class FullDisk(io.BytesIO):  # the temporary file is created, then the disk fills
        def __init__(self, fd, mode):
            super().__init__()
            os.close(fd)

        def write(self, data):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(_files.os, "fdopen", FullDisk)
    with pytest.raises(OSError, match="No space left"):
        output.csv("curves.csv", ["x"], [[1]])
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_init_names_are_recorded_as_parsed(tmp_path):
    # results are keyed by the parsed name; the raw " lecun_normal" failed at the figures
    kw = {"layers": 1, "width": 4, "samples": 8, "out": tmp_path / "h", "progress": False}
    h = run_histogram(("he", " lecun_normal"), ("relu",), **kw)
    assert h.config["inits"] == ["he", "lecun_normal"]
    assert (tmp_path / "h" / "activations_relu.png").exists()
    p = run_planar((" zeros",), iterations=2, out=tmp_path / "p", progress=False)
    assert p.config["inits"] == ["zeros"] and list(p.costs) == ["zeros"]


def test_a_diverged_planar_init_has_no_accuracy(tmp_path, monkeypatch):
    from fastinit.model import MLP

    fit = MLP.fit

    def diverging_fit(self, *args, **kwargs):  # the loss of the tanh network stays finite
        history = fit(self, *args, **kwargs)
        history.status = "diverged"
        return history

    monkeypatch.setattr(MLP, "fit", diverging_fit)
    r = run_planar(("he",), iterations=5, out=tmp_path, progress=False)
    assert math.isnan(r.train_accuracy["he"]) and math.isnan(r.test_accuracy["he"])
    assert r.table().splitlines()[-1].split()[-2:] == ["n/a", "n/a"]
    summary = json.loads((tmp_path / "summary.json").read_text())["results"]["he"]
    assert summary["train_accuracy"] is None and summary["status"] == "diverged"


def test_symmetry_losses_are_those_of_the_checkpoints_weights():
    from fastinit import optim

    r = run_symmetry(("randn*0.5",), iterations=3, every=1, progress=False)
    model = parse_init("randn*0.5").build_model(
        [2, 8, 8, 1], activation="tanh", seed=0, dtype="float64", x_batch=None
    )
    x, y = datasets.planar(1, 400)
    h = model.fit(x, y, optimizer=optim.SGD(0.5), batch_size=400, iterations=3,
                  sampling="full", loss="sigmoid_cross_entropy", progress=False)  # fmt: skip
    final = model.evaluate(x, y, loss="sigmoid_cross_entropy")["loss"]
    # the loss before each update, then after the last: one value per checkpoint 0..3
    np.testing.assert_allclose(r.loss["randn*0.5"], [*h.loss, final], rtol=1e-12)


def test_a_rerun_removes_its_own_stale_files_and_nothing_else(tmp_path):
    kw = {"layers": 1, "width": 4, "samples": 8, "out": tmp_path, "progress": False}
    run_histogram(("he",), ("relu", "tanh"), **kw)
    with Output(tmp_path, "planar") as output:  # another command's files, no summary.json
        for name in ("planar_cost.png", "planar_boundaries.png", "cost_curves.csv"):
            output.text(name, "planar's")
    planar_files = {"planar_cost.png", "planar_boundaries.png", "cost_curves.csv"}
    (tmp_path / "mine.txt").write_text("the user's")
    assert (tmp_path / "activations_tanh.png").exists()
    run_histogram(("he",), ("relu",), **kw)  # tanh's figures are from the old run: removed
    names = {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")}
    assert "activations_tanh.png" not in names and "gradients_tanh.png" not in names
    assert {"activations_relu.png", "gradients_relu.png", "mine.txt"} <= names
    assert planar_files <= names  # planar's own files are not histogram's to remove


def test_a_second_experiment_in_the_same_directory_is_refused_before_it_runs(tmp_path, monkeypatch):
    run_symmetry(("zeros",), iterations=2, every=1, out=tmp_path, progress=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def fit(*args, **kwargs):
        raise AssertionError("trained although its summary.json would replace symmetry's")

    monkeypatch.setattr(MLP, "fit", fit)
    with pytest.raises(ValueError) as e:
        run_planar(("zeros",), iterations=2, out=tmp_path, progress=False)
    assert str(e.value).startswith(f"out {str(tmp_path)!r}: summary.json there is the output ")
    assert "`fastinit symmetry`" in str(e.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    monkeypatch.undo()
    run_symmetry(("zeros",), iterations=3, every=1, out=tmp_path, progress=False)  # its own: ok
    assert (tmp_path / "summary.json").read_bytes() != before["summary.json"]


def test_an_experiment_is_refused_while_another_runs_in_its_directory(tmp_path, monkeypatch):
    # another command's claim, held as a running one holds it (a shared flock on its file)
    fcntl = pytest.importorskip("fcntl")

    claim = os.open(tmp_path / ".fastinit-planar-running", os.O_RDWR | os.O_CREAT)
    fcntl.flock(claim, fcntl.LOCK_SH)

    def fit(*args, **kwargs):
        raise AssertionError("trained although a running planar will write its summary.json")

    monkeypatch.setattr(MLP, "fit", fit)
    try:
        with pytest.raises(ValueError) as e:
            run_symmetry(("zeros",), iterations=2, every=1, out=tmp_path, progress=False)
        assert str(e.value).startswith(
            f"out {str(tmp_path)!r}: `fastinit planar` is writing there now, and this "
            "symmetry run would replace its summary.json"
        ), e.value
        assert not (tmp_path / "summary.json").exists()
    finally:
        os.close(claim)  # as its process ends, killed or not
    monkeypatch.undo()
    run_symmetry(("zeros",), iterations=2, every=1, out=tmp_path, progress=False)
    # the same command twice at once is not refused (the last to end leaves its files)
    claim = os.open(tmp_path / ".fastinit-symmetry-running", os.O_RDWR | os.O_CREAT)
    fcntl.flock(claim, fcntl.LOCK_SH)
    try:
        run_symmetry(("zeros",), iterations=3, every=1, out=tmp_path, progress=False)
    finally:
        os.close(claim)
    assert not (tmp_path / ".fastinit-planar-running").exists()  # a dead claim, removed


def test_a_file_system_without_flock_is_left_no_claim_file(tmp_path, monkeypatch):
    # where flock fails (ENOLCK: some network mounts) the claim was never taken, and its
    # file was left behind by every run
    fcntl = pytest.importorskip("fcntl")
    real = fcntl.flock

    def flock(fd, operation):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).endswith("-running"):
            raise OSError(errno.ENOLCK, "No locks available")
        return real(fd, operation)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to tell the claim's descriptor")
    monkeypatch.setattr(fcntl, "flock", flock)
    run_symmetry(("zeros",), iterations=2, every=1, out=tmp_path, progress=False)
    assert (tmp_path / "summary.json").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith("-running")]


def test_output_never_replaces_a_file_another_owner_wrote(tmp_path):
    with Output(tmp_path, "a") as output:
        output.text("shared.csv", "a's")
    with pytest.raises(ValueError, match=r"shared.csv there is the output of `fastinit a`"):
        with Output(tmp_path, "b") as output:
            output.text("b.csv", "b's")
            output.text("shared.csv", "b's")
    assert (tmp_path / "shared.csv").read_text() == "a's"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fastinit-a-files.json", "shared.csv"]
    (tmp_path / "shared.csv").unlink()  # removed by the user: b may write it now
    with Output(tmp_path, "b") as output:
        output.text("shared.csv", "b's")
    assert (tmp_path / "shared.csv").read_text() == "b's"


def test_planar_and_symmetry_apply_lsuv():
    kw = {"iterations": 20, "progress": False}
    r = run_planar(("lsuv", "orthogonal"), **kw)
    assert not np.array_equal(r.costs["lsuv"], r.costs["orthogonal"])
    s = run_symmetry(("lsuv", "orthogonal"), every=10, **kw)
    assert s.summary()["results"]["lsuv"] != s.summary()["results"]["orthogonal"]


def test_output_writes_all_files_or_none(tmp_path):
    (tmp_path / "old.csv").write_text("kept")
    with pytest.raises(KeyboardInterrupt), Output(tmp_path) as output:
        output.json("summary.json", {"a": 1})
        output.csv("new.csv", ["x"], [[1]])
        raise KeyboardInterrupt  # Ctrl-C while writing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv"]
    with Output(tmp_path) as output:
        output.json("summary.json", {"a": 1})
        output.csv("old.csv", ["x"], [[1]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv", "summary.json"]
    assert (tmp_path / "old.csv").read_text().splitlines() == ["x", "1"]


def test_histogram_and_depth_use_canonical_activation_names():
    kw = {"layers": 2, "width": 8, "samples": 16, "bins": 10}
    typed = run_histogram(("std=1",), activations=("Sigmoid",), **kw)
    canonical = run_histogram(("std=1",), activations=("sigmoid",), **kw)
    assert typed.config["activations"] == ["sigmoid"]
    edges = typed.act_edges[("std=1", "sigmoid")]
    np.testing.assert_array_equal(edges, canonical.act_edges[("std=1", "sigmoid")])
    assert (edges[0], edges[-1]) == (0.0, 1.0)  # the book's range for sigmoid
    for repeated in (("relu", "relu"), ("relu", "ReLU")):
        words = f"activations: {repeated[1]!r} is given twice"  # as typed the second time
        with pytest.raises(ValueError, match=words):
            run_histogram(("he",), activations=repeated, **kw)
        with pytest.raises(ValueError, match=words):
            run_depth(("he",), activations=repeated, depths=(2,), width=4, samples=4)


@pytest.mark.parametrize(
    "run",
    [
        lambda: run_histogram(("he",), layers=1, width=2, samples=2, progress="no"),
        lambda: run_mnist(("he",), hidden=(2,), iterations=1, train_size=8, progress="no"),
        lambda: run_planar(("zeros",), iterations=1, progress="no"),
        lambda: run_symmetry(("zeros",), iterations=1, progress="no"),
        lambda: run_depth(("he",), depths=(2,), width=2, samples=2, progress="no"),
    ],
)
def test_experiments_refuse_a_progress_that_is_not_a_bool(run, tmp_path):
    with pytest.raises(TypeError, match="progress: expected True or False"):
        run()


def test_symmetry_default_every_fits_a_short_run():
    r = run_symmetry(("zeros",), iterations=50, progress=False)  # every defaults to 100
    assert r.checkpoints[-1] == 50


def test_planar_notebook_seed_must_fit_numpys_legacy_generator():
    with pytest.raises(ValueError, match="seed: rng 'notebook'"):
        run_planar(("randn*0.01",), iterations=1, seed=2**32, progress=False)
    r = run_planar(("randn*0.01",), iterations=1, seed=2**32, rng="fastinit", progress=False)
    assert np.isfinite(r.costs["randn*0.01"]).all()


# ----------------------------------------------------------------------------- audit 3 fixes
_NOT_A_BOOL = [
    lambda: run_histogram(("he",), layers=1, width=2, samples=2, progress=1),
    lambda: run_mnist(("he",), hidden=(2,), iterations=1, train_size=8, progress=1),
    lambda: run_planar(("zeros",), iterations=1, progress=1),
    lambda: run_symmetry(("zeros",), iterations=1, progress=1),
    lambda: run_depth(("he",), depths=(2,), width=2, samples=2, progress=1),
]


def _fit_error(**kwargs) -> Exception:
    """The exception MLP.fit raises for one bad argument (the oracle of the experiments')."""
    model = MLP([2, 2, 1], activation="tanh", seed=0)
    x, y = datasets.planar(1, 8)
    args = {"iterations": 1, "batch_size": 8, "loss": "sigmoid_cross_entropy", "progress": False}
    with pytest.raises(Exception) as e:
        model.fit(x, y, **{**args, **kwargs})
    return e.value


@pytest.mark.parametrize("run", _NOT_A_BOOL)
def test_a_non_bool_progress_raises_what_fit_raises_for_it(run):
    fit_error = _fit_error(progress=1)
    with pytest.raises(Exception) as e:
        run()
    assert isinstance(e.value, type(fit_error)), (type(e.value), type(fit_error))
    assert isinstance(e.value, TypeError)  # and what fastinit raises for a wrong type
    assert str(e.value).startswith("progress: ")


@pytest.mark.parametrize(
    ("argument", "value", "run"),
    [
        ("iterations", 2.5, lambda: run_planar(("zeros",), iterations=2.5, progress=False)),
        ("seed", 1.0, lambda: run_planar(("zeros",), iterations=1, seed=1.0, progress=False)),
        (
            "batch_size",
            2.5,
            lambda: run_mnist(
                ("he",), hidden=(2,), iterations=1, train_size=8, batch_size=2.5, progress=False
            ),
        ),
    ],
)
def test_a_mistyped_argument_passed_on_to_fit_raises_what_fit_raises(argument, value, run):
    fit_error = _fit_error(**{argument: value})
    with pytest.raises(Exception) as e:
        run()
    assert isinstance(e.value, type(fit_error)) and isinstance(e.value, TypeError)
    assert str(e.value).startswith(f"{argument}: ")


@pytest.mark.parametrize(
    "run",
    [
        lambda: run_histogram((), ("relu",), layers=1, width=2, samples=2, progress=False),
        lambda: run_mnist((), hidden=(2,), iterations=1, train_size=8, progress=False),
        lambda: run_planar((), iterations=1, progress=False),
        lambda: run_symmetry((), iterations=1, progress=False),
        lambda: run_depth((), depths=(2,), width=2, samples=2, progress=False),
    ],
)
def test_no_init_at_all_is_refused_naming_inits(run):
    # it ran nothing and reported an empty table, or failed later (an IndexError, "models")
    with pytest.raises(ValueError, match="inits: expected at least one init"):
        run()


def test_planar_runs_explicit_weights_alone():
    r = run_planar((), weights={"mine": notebook_weights(0.5)}, iterations=3, progress=False)
    assert list(r.costs) == ["mine"]


def test_hidden_widths_are_checked_naming_hidden():
    with pytest.raises(ValueError, match=r"hidden: expected at least 1 hidden layer"):
        run_symmetry(("zeros",), hidden=(), iterations=1, progress=False)  # nothing to compare
    with pytest.raises(TypeError, match="hidden: expected a sequence"):
        run_symmetry(("zeros",), hidden=8, iterations=1, progress=False)
    with pytest.raises(ValueError, match=r"hidden: expected an integer in \[1, inf\], got 0"):
        run_mnist(("he",), hidden=(0,), iterations=1, train_size=8, progress=False)
    with pytest.raises(TypeError, match="hidden: expected an integer, got True"):
        run_mnist(("he",), hidden=(True,), iterations=1, train_size=8, progress=False)
    r = run_symmetry(("zeros",), hidden=np.array([3, 2]), iterations=1, progress=False)
    assert r.config["sizes"] == [2, 3, 2, 1]
    # one unit has no other to differ from: randn*0.5 was reported symmetric "exactly"
    for hidden, layer in (((1,), 0), ((8, 1), 1)):
        with pytest.raises(ValueError, match=rf"^hidden: .*least 2 units.*got 1 in layer {layer}"):
            run_symmetry(("randn*0.5",), hidden=hidden, iterations=1, progress=False)
    run_mnist(("he",), hidden=(1,), iterations=1, train_size=8, progress=False)  # no units compared


def test_a_dtype_given_as_a_numpy_type_is_recorded_by_name(tmp_path):
    # the config held the class numpy.float32, which summary.json could not hold
    h = run_histogram(("he",), ("relu",), layers=1, width=4, samples=8, dtype=np.float32,
                      out=tmp_path / "h", progress=False)  # fmt: skip
    assert h.config["dtype"] == "float32"
    assert json.loads((tmp_path / "h" / "summary.json").read_text())["config"]["dtype"] == "float32"
    s = run_symmetry(("zeros",), iterations=2, every=1, dtype=np.float64, out=tmp_path / "s",
                     progress=False)  # fmt: skip
    assert s.config["dtype"] == "float64"


@pytest.mark.parametrize(
    "run",
    [
        lambda: run_histogram(("he",), ("relu",), layers=1, width=2, samples=2, dtype="x"),
        lambda: run_planar(("zeros",), iterations=1, dtype="x", progress=False),
        lambda: run_symmetry(("zeros",), iterations=1, dtype="x", progress=False),
        lambda: run_depth(("he",), depths=(2,), width=2, samples=2, dtype="x", progress=False),
    ],
)
def test_a_bad_dtype_raises_the_same_in_every_experiment(run):
    # planar raised ValueError, the others TypeError
    with pytest.raises(TypeError, match="dtype: expected 'float32' or 'float64', got 'x'"):
        run()


def test_planar_explicit_weights_are_checked_naming_the_run():
    good = notebook_weights(0.5)
    with pytest.raises(TypeError, match="weights: expected run names"):
        run_planar(("zeros",), weights={1: good}, iterations=1, progress=False)
    wide = [np.zeros((2, 5)), np.zeros(5), np.zeros((5, 1)), np.zeros(1)]
    with pytest.raises(ValueError, match=r"weights\['mine'\]: W1: expected shape \(2, 4\)"):
        run_planar(("zeros",), weights={"mine": wide}, iterations=1, progress=False)
    bad = [good[0], good[1], np.full((4, 1), np.nan), good[3]]
    with pytest.raises(ValueError, match=r"weights\['mine'\]: W2: expected finite values"):
        run_planar(("zeros",), weights={"mine": bad}, iterations=1, progress=False)
    r = run_planar((), weights={"mine": wide}, hidden=5, iterations=2, progress=False)
    assert r.config["sizes"] == [2, 5, 1]


def test_planar_cost_figure_is_titled_with_the_runs_network_and_lr(tmp_path, monkeypatch):
    titles = {}

    def figure(self, name, fig):
        titles[name] = fig.axes[0].get_title()

    monkeypatch.setattr(Output, "figure", figure)
    r = run_planar(("zeros",), hidden=3, lr=0.5, iterations=2, out=tmp_path, progress=False)
    sizes = "-".join(map(str, r.config["sizes"]))
    assert sizes == "2-3-1"
    assert f"planar {sizes} " in titles["planar_cost.png"]
    assert f"lr {r.config['optimizer']['lr']:g}," in titles["planar_cost.png"]  # not 2-4-1, 1.2


def test_histogram_of_an_overflowing_signal_reports_overflow(tmp_path):
    # std=1e300 overflows at the first layer; elu's range came from the inf values:
    # "supplied range of [nan, nan] is not finite", after a page of NumPy warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = run_histogram(("std=1e300", "he"), ("elu", "relu"), layers=3, width=4, samples=8,
                          bins=5, out=tmp_path, progress=False)  # fmt: skip
    stats = {(s.init, s.activation, s.layer): s for s in r.stats}
    assert not math.isfinite(stats[("std=1e300", "elu", 3)].act_std)
    lines = [x for x in r.table().splitlines() if x.startswith("std=1e300")]
    assert lines and all("overflow" in x for x in lines if x.split()[2] != "1")
    # layer 1's values (about 1e300) are finite: so are their mean and std
    assert math.isfinite(stats[("std=1e300", "relu", 1)].act_std)
    assert all(len(x.split()) == 8 for x in r.table().splitlines()[2:])  # columns kept
    # the histograms count the finite values, in a range taken from them
    x = datasets.gaussian(8, 4, seed=0, dtype="float64")
    w = init.normal((4, 4), std=1e300, seed=0, stream=1, dtype="float64")
    with np.errstate(over="ignore", invalid="ignore"):
        z = x @ w
        a = np.where(z > 0, z, np.expm1(np.minimum(z, 0)))  # elu
    finite = np.abs(a[np.isfinite(a)])
    top = float(np.percentile(finite, 99.9)) if finite.size else 1.0
    edges = r.act_edges[("std=1e300", "elu")]
    assert edges[-1] >= top * (1 - 1e-12)  # deeper layers may only widen it
    he = [stats[("he", "relu", k)] for k in (1, 2, 3)]
    assert all(math.isfinite(s.act_std) for s in he)  # the other init is untouched
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["inits"] == ["std=1e300", "he"]


def _relu_oracle(std, layers, width, samples):
    """float64 NumPy: activations, dead fractions (NaN for a layer that is not all finite)
    and gradient stds of the histogram experiment's ReLU network; relu's slope at a NaN
    pre-activation (inf - inf) is unknown: NaN."""
    x = datasets.gaussian(samples, width, seed=0, dtype="float64")
    ws = [init.normal((width, width), std=std, seed=0, stream=k + 1, dtype="float64")
          for k in range(layers)]  # fmt: skip
    acts, slopes, dead = [], [], []
    a = x
    with np.errstate(over="ignore", invalid="ignore"):
        for w in ws:
            z = a @ w
            a = np.maximum(z, 0.0)
            acts.append(a)
            slopes.append(np.where(np.isnan(z), np.nan, (z > 0).astype(float)))
            dead.append(float(np.mean((z <= 0).all(axis=0))) if np.isfinite(a).all() else math.nan)
        g = frandom.fill_normal(np.empty((samples, width)), seed=0, stream=TOP_GRADIENT_STREAM)
        grad_std = [math.nan] * layers
        for k in range(layers - 1, -1, -1):
            gz = g * slopes[k]
            grad_std[k] = float(gz.std())
            g = gz @ ws[k].T
    return acts, dead, grad_std


def test_histogram_fractions_and_gradients_of_an_overflowed_layer_are_nan():
    # std=1e307 ReLU: from layer 2 on the pre-activations are inf - inf = NaN; NaN counted
    # as inactive made the last layer's dead fraction 1.0 ("all units dead"), and relu's
    # f'(NaN) = 0 gave every layer a grad std of 0.0; the sweep stored both as numbers
    from fastinit.sweep.runners import full_config, run

    r = run_histogram(("std=1e307",), ("relu",), layers=4, width=4, samples=4, bins=5,
                      progress=False)  # fmt: skip
    acts, dead, grad_std = _relu_oracle(1e307, 4, 4, 4)
    assert np.isfinite(acts[0]).all() and not np.isfinite(acts[-1]).all()
    np.testing.assert_allclose([s.dead for s in r.stats], dead, rtol=0)  # NaN where NaN
    np.testing.assert_allclose([s.grad_std for s in r.stats], grad_std, rtol=1e-12)
    assert math.isnan(r.stats[-1].dead) and math.isnan(r.stats[0].grad_std)
    last = r.table().splitlines()[-1].split()
    assert last[-2:] == ["overflow", "overflow"]  # dead, grad std: not 1.000 and 0
    result = run(full_config("histogram", {"init": "std=1e307", "depth": 4, "width": 4,
                                           "samples": 4}))  # fmt: skip
    assert result["status"] == "diverged"
    assert result["metrics"]["dead_last"] is None
    assert result["metrics"]["grad_std_first"] is None


def test_histogram_saturation_of_an_overflowed_float32_layer_is_nan(monkeypatch):
    # float32 std=3.7e37 tanh: z = a @ W overflows, to NaN where BLAS adds partial sums that
    # overflowed both ways (inf - inf: OpenBLAS's Haswell kernels), else to +-inf, which tanh
    # saturates (its AVX-512 kernels, seen on an AMD EPYC and on an H100's host). NaN must not
    # count as saturated (the fractions read 0.99 and 0.49 for layers of NaN activations): the
    # NaN is put in here, so that the check holds whatever the BLAS.
    import fastinit.experiments.histogram as histogram

    propagate = histogram.propagate

    def overflowed(*args, **kwargs):
        acts, derivs, grads = propagate(*args, **kwargs)
        for values in (acts, derivs, grads):
            for v in values:
                v[0] = np.nan  # the first sample's signal overflowed in every layer
        return acts, derivs, grads

    monkeypatch.setattr(histogram, "propagate", overflowed)
    r = run_histogram(("std=3.7e37",), ("tanh", "sigmoid"), layers=2, width=64, samples=4,
                      bins=5, dtype="float32", progress=False)  # fmt: skip
    for s in r.stats:
        assert math.isnan(s.act_std), s  # the signal itself overflowed
        assert math.isnan(s.saturated) and math.isnan(s.grad_std), s
    assert all(line.split()[5] == "overflow" for line in r.table().splitlines()[2:])
    monkeypatch.setattr(histogram, "propagate", propagate)  # whatever the BLAS gives: consistent
    for s in run_histogram(("std=3.7e37",), ("tanh", "sigmoid"), layers=2, width=64, samples=4,
                           bins=5, dtype="float32", progress=False).stats:  # fmt: skip
        assert math.isnan(s.act_std) == math.isnan(s.saturated), s
        assert math.isnan(s.saturated) or 0.9 <= s.saturated <= 1.0, s  # tanh(+-inf), sigmoid


class _Bar:
    """A progress bar that records whether its line was ended."""

    made: ClassVar[list["_Bar"]] = []

    def __init__(self, *args, **kwargs):
        self.closed = False
        _Bar.made.append(self)

    def update(self, *args, **kwargs):
        pass

    def close(self):
        self.closed = True


def test_an_interrupted_histogram_or_symmetry_ends_its_progress_line(monkeypatch):
    # "fastinit histogram: interrupted" was printed on the bar's unfinished line
    from fastinit.experiments import histogram, symmetry
    from fastinit.train import History

    monkeypatch.setattr(histogram, "ProgressBar", _Bar)
    monkeypatch.setattr(symmetry, "ProgressBar", _Bar)

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(histogram, "propagate", ctrl_c)
    _Bar.made.clear()
    with pytest.raises(KeyboardInterrupt):
        run_histogram(("he",), ("relu",), layers=1, width=2, samples=2)
    assert [b.closed for b in _Bar.made] == [True]
    monkeypatch.setattr(
        MLP, "fit", lambda *a, **k: History(np.array([0.7]), 1, 0.0, status="interrupted")
    )
    _Bar.made.clear()
    with pytest.raises(KeyboardInterrupt):
        run_symmetry(("zeros",), iterations=4, every=2)
    assert [b.closed for b in _Bar.made] == [True]


def test_ctrl_c_while_files_are_renamed_into_place_never_mixes_two_runs(
    tmp_path, monkeypatch, sigint_default
):
    import signal
    from pathlib import Path

    with Output(tmp_path, "a") as output:
        output.text("summary.json", "old")
        output.text("curves.csv", "old")
    replace = os.replace
    calls = []

    def replace_then_ctrl_c(src, dst, *args, **kwargs):
        if ".writing-" in str(src) and ".writing-" not in str(dst):  # moved into place
            calls.append(Path(dst).name)
            if len(calls) == 2:  # the first file is in place: a real SIGINT arrives
                signal.raise_signal(signal.SIGINT)
        return replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt), Output(tmp_path, "a") as output:
        output.text("summary.json", "new")
        output.text("curves.csv", "new")
    monkeypatch.undo()
    assert calls == ["summary.json", "curves.csv", ".fastinit-a-files.json"]
    texts = {n: (tmp_path / n).read_text() for n in ("summary.json", "curves.csv")}
    assert texts == {"summary.json": "new", "curves.csv": "new"}  # not one new, one old
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".writing-")]


# ----------------------------------------------------------------------------- failed runs
_FAILING = [  # (what the run calls after prepare_output, the run into ``out``)
    ("fastinit.experiments.histogram.propagate",
     lambda out: run_histogram(("he",), ("relu",), layers=1, width=2, samples=2, out=out,
                               progress=False)),
    ("fastinit.experiments.depth.layer_statistics",
     lambda out: run_depth(("he",), ("relu",), depths=(2,), width=2, samples=2, out=out,
                           progress=False)),
    ("fastinit.experiments.mnist.fit_many",
     lambda out: run_mnist(("he",), hidden=(2,), iterations=1, train_size=8, out=out,
                           progress=False)),
    ("fastinit.model.MLP.fit",
     lambda out: run_planar(("zeros",), iterations=1, out=out, progress=False)),
    ("fastinit.model.MLP.fit",
     lambda out: run_symmetry(("zeros",), iterations=1, out=out, progress=False)),
]  # fmt: skip


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
@pytest.mark.parametrize(("target", "run"), _FAILING)
def test_a_failed_run_removes_the_directories_it_made(target, run, error, tmp_path, monkeypatch):
    # from Python (the CLI already did), a run that failed after creating ``out``
    # left the empty directories behind
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(target, fail)
    (tmp_path / "kept").mkdir()  # existed before: stays, although empty
    with pytest.raises(type(error)):
        run(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()
    with pytest.raises(type(error)):
        run(tmp_path / "kept" / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert list((tmp_path / "kept").iterdir()) == []


def test_a_failed_run_never_removes_a_directory_holding_anything(tmp_path, monkeypatch):
    out = tmp_path / "a" / "b"

    def drop_a_file_then_fail(*args, **kwargs):
        (out / "notes.txt").write_text("the user's")
        raise RuntimeError("boom")

    monkeypatch.setattr("fastinit.model.MLP.fit", drop_a_file_then_fail)
    with pytest.raises(RuntimeError, match="boom"):
        run_planar(("zeros",), iterations=1, out=out, progress=False)
    assert (out / "notes.txt").read_text() == "the user's"


# ----------------------------------------------------------------------- one draw, two spellings
@pytest.mark.parametrize(
    ("first", "second"),
    [("constant", "zeros"), ("normal", "std=1"), ("gaussian", "randn"), ("normal", "randn*1"),
     ("variance_scaling", "lecun_normal"), ("ones", "constant=1"), ("orthogonal_", "orthogonal"),
     ("constant", "std=0"), ("zeros", "std=0"), ("zero", "randn*0"), ("constant=0", "std=0.0"),
     ("ZEROS", "constant=-0"), ("gaussian", "normal")],
)  # fmt: skip
def test_spellings_of_one_draw_are_one_init(first, second):
    # 'constant' and 'zeros', 'zeros' and 'std=0', 'normal' and 'std=1', 'gaussian' and
    # 'randn' draw the same weights, but were two inits (run twice, reported as two)
    for a, b in ((first, second), (second, first)):
        with pytest.raises(
            ValueError, match=re.escape(f"inits: {a!r} is given twice (also as {b!r})")
        ):
            parse_inits((a, b))
    for shape, dtype in (((4, 7), "float32"), ((9, 2), "float64")):
        w1, w2 = (parse_init(s).draw(shape, 3, 5, dtype) for s in (first, second))
        assert w1.tobytes() == (w2 + 0).tobytes()  # + 0: -0.0 is 0.0


@pytest.mark.parametrize(
    ("first", "second"),
    [("glorot_normal", "xavier_normal"),  # Keras' truncated normal, PyTorch's untruncated one
     ("he_normal", "kaiming_normal"), ("he", "he_normal"), ("xavier", "xavier_normal"),
     # the book's N(0, 2 / fan_in) and kaiming_normal's: one variance, std rounded differently
     ("he", "kaiming_normal"),
     ("std=0.01", "std=0.0100001"), ("kaiming_normal", "kaiming_uniform"),
     # martens keeps min(15, fan_in) rows per column: dense N(0, 1) below 16 inputs
     ("normal", "martens"),
     # one bound, rounded differently (equal on small square-ish shapes, not on 100 x 50)
     ("he_uniform", "kaiming_uniform"),
     ("lsuv", "orthogonal")],  # the same pre-init, then rescaled on data
)  # fmt: skip
def test_different_draws_are_different_inits(first, second):
    specs = parse_inits((first, second))
    assert [s.name for s in specs] == [first, second]
    assert specs[0].meaning != specs[1].meaning


def test_parse_init_options_names_the_option_and_the_earlier_entry():
    specs = parse_init_options({"--inits": ("he", "std=0.01"), "--add": ("zeros",)})
    assert [s.name for s in specs] == ["he", "std=0.01", "zeros"]
    assert parse_inits(specs) == specs  # parsed specs pass through: parsed once
    for options, message in [
        ({"--inits": ("zeros",), "--add": ("constant",)},
         "--add: 'constant' draws the same weights as 'zeros' of --inits; give each init once"),
        ({"--inits": ("he", "std=1e-2"), "--add": ("HE",)}, "--add: 'HE' is already in --inits"),
        ({"--inits": ("normal", "randn")}, "--inits: 'randn' draws the same weights as 'normal'"),
        ({"--inits": ("he",), "--add": ("nonsense",)}, "--add: unknown init 'nonsense'"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_init_options(options)
    # lsuv parsed for a training experiment is still refused by one that does not train
    with pytest.raises(ValueError, match="'lsuv' is data-dependent"):
        run_depth(parse_init_options({"--inits": ("lsuv",)}), depths=(2,), width=4, samples=4)


def test_every_figure_is_made_at_figure_dpi(tmp_path, monkeypatch):
    # planar's and the report's figures were made at matplotlib's 100 dpi, then set to
    # FIGURE_DPI when saved: their text laid out twice
    from fastinit.sweep import report

    dpis = {}
    figure = Output.figure

    def record(self, name, fig):
        dpis[name] = fig.dpi
        return figure(self, name, fig)

    monkeypatch.setattr(Output, "figure", record)
    run_planar(("zeros", "he"), iterations=5, out=tmp_path / "p", progress=False)
    run_symmetry(("zeros",), hidden=(3,), iterations=4, every=2, out=tmp_path / "s",
                 progress=False)  # fmt: skip
    run_histogram(("he",), ("tanh",), layers=2, width=4, samples=8, out=tmp_path / "h")
    run_depth(("he",), ("tanh",), depths=(2,), width=4, samples=4, out=tmp_path / "d")
    assert {"planar_cost.png", "planar_boundaries.png", "symmetry.png"} <= set(dpis)
    assert len(dpis) >= 6 and set(dpis.values()) == {FIGURE_DPI}, dpis
    fig, _ = report._grid(pyplot(), 2, (3.0, 2.0))
    assert fig.dpi == FIGURE_DPI
    pyplot().close(fig)


def test_symmetry_is_measured_on_the_weights_whatever_the_inits_name():
    # std=0 and constant=v are recognised as symmetric by their weights, like "zeros"
    kwargs = {"hidden": (3,), "iterations": 20, "every": 10, "progress": False}
    r = run_symmetry(("std=0", "constant=0.3", "randn*0.5"), **kwargs)
    zeros = run_symmetry(("zeros",), **kwargs)
    assert r.symmetric("std=0") and r.symmetric("constant=0.3")
    assert not r.symmetric("randn*0.5")
    np.testing.assert_array_equal(r.incoming["std=0"], zeros.incoming["zeros"])
    np.testing.assert_array_equal(r.loss["std=0"], zeros.loss["zeros"])
    assert r.summary()["results"]["std=0"]["symmetric_throughout"] is True


def _figure_panels(monkeypatch):
    """Record, as each figure is saved, its file name and every panel's plotted histogram."""
    from matplotlib.figure import Figure

    saved = {}
    savefig = Figure.savefig

    def record(fig, path, *args, **kwargs):
        panels = {}
        for ax in fig.axes:
            row, col = ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start
            panels[(row, col)] = [
                (p.get_data().values.copy(), p.get_data().edges.copy(), p.get_facecolor())
                for p in ax.patches
            ] + [ax.get_title(), ax.get_ylabel()]
        # Figure.get_suptitle is new in matplotlib 3.8
        suptitle = fig.get_suptitle() if hasattr(fig, "get_suptitle") else fig._suptitle.get_text()
        saved[os.path.basename(path)] = (suptitle, panels)
        return savefig(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return saved


def test_histogram_figures_plot_the_counts_of_the_csv(tmp_path, monkeypatch):
    from matplotlib import colors, rcParams

    saved = _figure_panels(monkeypatch)
    inits, acts, layers = ("std=1", "xavier", "he"), ("sigmoid", "relu"), 3
    run_histogram(inits, acts, layers=layers, width=20, samples=50, bins=7, out=tmp_path,
                  progress=False)  # fmt: skip
    names = {f"{kind}_{act}.png" for kind in ("activations", "gradients") for act in acts}
    assert set(saved) == names
    assert names <= {p.name for p in tmp_path.iterdir()}
    with open(tmp_path / "histograms.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    first = colors.to_rgba(rcParams["axes.prop_cycle"].by_key()["color"][0])
    for act in acts:
        for kind, csv_kind in (("activations", "activation"), ("gradients", "gradient")):
            suptitle, panels = saved[f"{kind}_{act}.png"]
            assert suptitle == f"{act}: {kind} per layer"
            assert len(panels) == len(inits) * layers
            for r, name in enumerate(inits):
                for k in range(layers):
                    mine = [
                        row for row in rows
                        if (row["kind"], row["init"], row["activation"], row["layer"])
                        == (csv_kind, name, act, str(k + 1))
                    ]  # fmt: skip
                    (values, edges, color), title, ylabel = panels[(r, k)]  # one histogram
                    assert values.tolist() == [int(row["count"]) for row in mine]
                    np.testing.assert_allclose(edges[:-1], [float(row["lo"]) for row in mine])
                    np.testing.assert_allclose(edges[1:], [float(row["hi"]) for row in mine])
                    assert color[:3] == pytest.approx(first[:3])  # every panel the first colour
                    assert title == (f"{k + 1}-layer" if r == 0 else "")
                    assert ylabel == (name if k == 0 else "")


def test_histogram_of_float32_values_past_half_the_float32_range_counts_them():
    # float32 std=3.7e37 ReLU: finite gradients of about 3e38; np.histogram took the bins'
    # width in float32, hi - lo overflowed, and the run failed with an IndexError
    from fastinit.experiments.depth import propagate

    r = run_histogram(("std=3.7e37",), ("relu",), layers=2, width=8, samples=6, bins=5,
                      dtype="float32", progress=False)  # fmt: skip
    x = datasets.gaussian(6, 8, seed=0, dtype="float32")
    ws = [init.normal((8, 8), std=3.7e37, seed=0, stream=k + 1, dtype="float32") for k in (0, 1)]
    with np.errstate(over="ignore", invalid="ignore"):
        _, _, grads = propagate(x, ws, "relu", grad_seed=0, grad_stream=TOP_GRADIENT_STREAM)
    edges = r.grad_edges[("std=3.7e37", "relu")]
    assert edges[-1] > 1.7e38  # past half the float32 range
    for g, counts in zip(grads, r.grad_counts[("std=3.7e37", "relu")], strict=True):
        wide = g.astype(np.float64)
        wide = wide[np.isfinite(wide)]
        oracle = [((wide >= lo) & ((wide < hi) | (hi == edges[-1]) & (wide == hi))).sum()
                  for lo, hi in itertools.pairwise(edges)]  # fmt: skip
        assert counts.tolist() == oracle


def test_histogram_panels_of_an_overflowed_layer_say_overflow(tmp_path, monkeypatch):
    # the counts leave inf and NaN out: std=1e307 ReLU's layer 2 (every value inf, NaN or
    # 0) drew a spike of zeros, the picture of dead units, and nothing said it overflowed
    from matplotlib.figure import Figure

    texts, savefig = {}, Figure.savefig

    def record(fig, path, *args, **kwargs):
        spec = [(ax.get_subplotspec(), [t.get_text() for t in ax.texts]) for ax in fig.axes]
        texts[os.path.basename(path)] = {
            (sp.rowspan.start, sp.colspan.start): words for sp, words in spec
        }
        return savefig(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    r = run_histogram(("std=1e307", "he"), ("relu", "tanh"), layers=2, width=4, samples=4,
                      bins=5, out=tmp_path, progress=False)  # fmt: skip
    stats = {(s.init, s.activation, s.layer): s for s in r.stats}
    for act in ("relu", "tanh"):
        for kind, field in (("activations", "act_std"), ("gradients", "grad_std")):
            for row, init_name in enumerate(("std=1e307", "he")):
                for k in range(2):
                    words = texts[f"{kind}_{act}.png"][(row, k)]
                    overflowed = not math.isfinite(getattr(stats[(init_name, act, k + 1)], field))
                    assert any("overflow" in w for w in words) == overflowed, (kind, act, row, k)
    assert any("overflow" in w for w in texts["activations_relu.png"][(0, 1)])
    assert not any(texts["activations_tanh.png"].values())  # the relu figure's text removed


def test_histogram_figures_share_one_grid_and_are_drawn_once(tmp_path, monkeypatch):
    # the figures took 7 of the command's 11 s: a new grid of axes per figure, and
    # savefig drew each twice (to lay it out, then to render it) at another dpi
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    calls = {"draw": 0, "axes": 0, "dpi": set()}
    draw, axes_init = Figure.draw, Axes.__init__

    def counted_draw(fig, renderer):
        calls["draw"] += 1
        calls["dpi"].add(fig.dpi)
        return draw(fig, renderer)

    def counted_axes(ax, *args, **kwargs):
        calls["axes"] += 1
        return axes_init(ax, *args, **kwargs)

    monkeypatch.setattr(Figure, "draw", counted_draw)
    monkeypatch.setattr(Axes, "__init__", counted_axes)
    run_histogram(("std=1", "he"), ("sigmoid", "tanh", "relu"), layers=3, width=10,
                  samples=20, bins=5, out=tmp_path, progress=False)  # fmt: skip
    assert calls["draw"] == 6  # one per figure
    assert calls["axes"] == 2 * 3  # one grid of inits x layers for all six
    assert len(calls["dpi"]) == 1  # drawn at the dpi it was laid out at


@pytest.mark.parametrize("data_dependent", [True, False])
def test_an_unknown_init_lists_every_accepted_form_once(data_dependent):
    from fastinit import init
    from fastinit.experiments._common import parse_init

    with pytest.raises(ValueError, match="unknown init 'bogus'") as e:
        parse_init("bogus", data_dependent=data_dependent)
    message = str(e.value)
    listed = [
        w.strip(" '") for w in message.split("; use ")[1].replace(" or one of: ", ", ").split(",")
    ]
    assert len(listed) == len(set(listed)), listed  # 'xavier' and 'he' were listed twice
    assert {"constant=<v>", "std=<s>", "xavier", "he"} <= set(listed)
    assert ("lsuv" in listed) == data_dependent  # accepted by the training experiments only
    assert set(init.names()) - {"randn"} <= set(listed)
    for name in listed:  # every form listed is accepted
        if "<" not in name and (name != "lsuv" or data_dependent):
            parse_init(name, data_dependent=data_dependent)


def test_histogram_runs_with_a_single_bin(tmp_path):
    """``--bins 1``: the ReLU figure's y-limit skipped the spike bin of an empty remainder."""
    r = run_histogram(("he",), ("relu", "tanh"), layers=2, width=8, samples=20, bins=1,
                      out=tmp_path, progress=False)  # fmt: skip
    assert r.act_counts[("he", "relu")].shape == (2, 1)
    assert (tmp_path / "activations_relu.png").exists()


def test_planar_boundaries_paint_each_class_as_its_points(tmp_path, monkeypatch):
    """A run predicting one class everywhere (zeros) fills its panel with that class's colour."""
    import matplotlib

    panels = {}

    def figure(self, name, fig):
        if name == "planar_boundaries.png":
            panels.update({ax.get_title().split(":")[0]: ax for ax in fig.axes if ax.get_title()})

    monkeypatch.setattr(Output, "figure", figure)
    r = run_planar(("zeros", "randn"), iterations=300, out=tmp_path, progress=False)
    spectral = matplotlib.colormaps["Spectral"]
    for name in ("zeros", "randn"):
        x = datasets.planar(1)[0]
        classes = np.unique(r.models[name].predict(x))
        # the contourf set, drawn before the points (matplotlib < 3.8: one collection a band)
        fills = panels[name].collections[:-1]
        colours = {tuple(np.round(c[:3], 6)) for f in fills for c in f.get_facecolor()}
        expected = {tuple(np.round(spectral(float(k))[:3], 6)) for k in classes}
        assert expected <= colours <= {tuple(np.round(spectral(k)[:3], 6)) for k in (0.0, 1.0)}


def test_planar_boundary_panels_say_which_points_they_draw(tmp_path, monkeypatch):
    # the panels draw the training points and were titled with the test accuracy alone
    drawn = {}

    def figure(self, name, fig):
        if name == "planar_boundaries.png":
            drawn["titles"] = [ax.get_title() for ax in fig.axes if ax.get_title()]
            drawn["suptitle"] = fig._suptitle.get_text() if fig._suptitle else ""

    monkeypatch.setattr(Output, "figure", figure)
    r = run_planar(("randn",), iterations=30, out=tmp_path, progress=False)
    train, test = r.train_accuracy["randn"], r.test_accuracy["randn"]
    assert drawn["titles"] == [f"randn: train acc {train:.2f}, test {test:.2f}"]
    assert "training points" in drawn["suptitle"]


def _planar_figures(monkeypatch, tmp_path, **kwargs):
    """run_planar's result and its two figures' axes (cost: lines' labels and y limits)."""
    seen = {}

    def figure(self, name, fig):
        seen[name] = fig.axes
        if name == "planar_cost.png":
            seen["labels"] = [ln.get_label() for ln in fig.axes[0].get_lines()]
            seen["ylim"] = fig.axes[0].get_ylim()

    monkeypatch.setattr(Output, "figure", figure)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "overflow encountered in exp"
        r = run_planar(("randn", "zeros"), iterations=30, out=tmp_path, progress=False, **kwargs)
    return r, seen


def test_planar_figures_say_which_runs_diverged_and_draw_no_boundary_for_them(
    tmp_path, monkeypatch
):
    # a diverged run (weights ~1e37) was drawn as a clean boundary under "randn: diverged",
    # and its cost line simply stopped, the legend saying nothing
    r, seen = _planar_figures(monkeypatch, tmp_path, lr=3e38, dtype="float32")
    assert r.status == {"randn": "diverged", "zeros": "ok"}
    k = r.diverged_at["randn"]  # History's: where the loss, or an update, went non-finite
    assert k is not None and r.diverged_at["zeros"] is None
    assert seen["labels"] == [f"randn (diverged at iteration {k})", "zeros"], seen["labels"]
    panels = {ax.get_title().split(":")[0]: ax for ax in seen["planar_boundaries.png"]}
    assert panels["randn"].get_title() == "randn: diverged, no boundary"
    assert len(panels["randn"].collections) == 1  # the points only
    assert len(panels["zeros"].collections) > 1  # its boundary and the points


def test_planar_legend_gives_the_iteration_whose_update_diverged(tmp_path, monkeypatch):
    # a finite cost, then an update leaving inf weights: the legend said iteration 0 (the
    # costs' last index) where History.diverged_at is 1
    labels = []

    def figure(self, name, fig):
        if name == "planar_cost.png":
            labels.extend(ln.get_label() for ln in fig.axes[0].get_lines())

    monkeypatch.setattr(Output, "figure", figure)
    w = [np.full((2, 4), 1e-3), np.zeros(4), np.full((4, 1), 1e200), np.zeros(1)]
    r = run_planar((), weights={"big": w}, iterations=1, lr=1e200, out=tmp_path, progress=False)
    assert np.isfinite(r.costs["big"]).all() and r.diverged_at["big"] == 1
    assert labels == ["big (diverged at iteration 1)"], labels


def test_planar_cost_axis_spans_costs_near_the_float64_limit(tmp_path, monkeypatch):
    # lr 1e306 drove the float64 costs to 2.6e305: the log axis fell back to 1-10, every
    # line gone
    r, seen = _planar_figures(monkeypatch, tmp_path, lr=1e306)
    assert max(max(c) for c in r.costs.values()) > 1e305
    low, high = seen["ylim"]
    assert low < min(min(c) for c in r.costs.values()) and high >= 1e100, seen["ylim"]


def _symmetry_axis(monkeypatch, tmp_path, inits, **kwargs):
    """run_symmetry's result and its figure's lines (label -> y) and y limits."""
    seen = {}

    def figure(self, name, fig):
        ax = fig.axes[0]
        seen.update(lines={ln.get_label(): ln.get_ydata() for ln in ax.get_lines()},
                    ylim=ax.get_ylim())  # fmt: skip

    monkeypatch.setattr(Output, "figure", figure)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "overflow encountered in exp"
        r = run_symmetry(inits, iterations=20, every=5, out=tmp_path, progress=False, **kwargs)
    return r, seen


def test_symmetry_figure_says_which_lines_are_zero_throughout(tmp_path, monkeypatch):
    # zeros' lines lay exactly under constant=0.5's (both 0), listed in the legend but
    # nowhere to be seen; the axis spent its lower half on negative spreads
    _, seen = _symmetry_axis(monkeypatch, tmp_path, ("zeros", "constant=0.5", "randn*0.5"))
    zero = [k for k, y in seen["lines"].items() if not np.any(y)]
    assert sorted(zero) == sorted(f"{n}, {kind} (0 throughout)" for n in ("zeros", "constant=0.5")
                                  for kind in ("incoming", "outgoing")), seen["lines"]  # fmt: skip
    assert "randn*0.5, incoming" in seen["lines"]
    assert seen["ylim"][0] == 0.0


def test_symmetry_axis_spans_spreads_near_the_float64_limit(tmp_path, monkeypatch):
    # lr 1e300 gave spreads of 8e299: the randn lines vanished on a +-1e-3 axis
    r, seen = _symmetry_axis(monkeypatch, tmp_path, ("zeros", "randn*0.5"), lr=1e300,
                             activation="relu")  # fmt: skip
    top = max(np.nanmax(np.where(np.isfinite(v), v, np.nan)) for v in r.incoming.values())
    assert top > 1e250
    assert seen["ylim"][0] == 0.0 and seen["ylim"][1] >= 1e100, seen["ylim"]


def test_experiment_tables_print_a_huge_finite_number_in_a_few_digits(tmp_path):
    """A finite cost of 1e299 (lr 1e300) is one short cell, not 300 digits."""
    r = run_planar(("randn",), iterations=3, lr=1e300, progress=False)
    assert math.isfinite(r.costs["randn"][-1]) and r.costs["randn"][-1] > 1e100
    assert max(map(len, r.table().splitlines())) < 60, r.table()
    s = run_symmetry(("randn*1e200",), iterations=3, lr=1.0, progress=False)
    assert max(map(len, s.table().splitlines())) < 100, s.table()


# ----------------------------------------------------------------------------- audit 4 fixes
def test_mnist_table_over_seeds_shows_the_spread_it_averages():
    from fastinit.experiments.mnist import MnistResult

    curves = {"he": np.array([[1.0] * 100, [3.0] * 100])}
    accuracy = {"he": np.array([0.5, 0.7])}
    r = MnistResult({"seeds": 2, "seed": 5}, curves=curves, test_accuracy=accuracy,
                    status={"he": ["ok", "ok"]})  # fmt: skip
    lines = r.table().splitlines()
    assert lines[2].split() == ["he", "2.0000", "±", "1.4142", "0.6000", "±", "0.1414"]
    assert "mean ± sample std over 2 seeds (5 to 6)" in lines
    one = MnistResult({"seeds": 1, "seed": 0}, curves={"he": np.array([[1.0] * 100])},
                      test_accuracy={"he": np.array([0.5])}, status={"he": ["ok"]})  # fmt: skip
    assert one.table().splitlines()[2].split() == ["he", "1.0000", "0.5000"]
    assert "±" not in one.table()


# ----------------------------------------------------------------------------- audit 5 fixes
@pytest.mark.parametrize(
    ("spec", "message"),
    [("std=nan", "std must be a finite number >= 0, got nan (in 'std=nan')"),
     ("randn*nan", "std must be a finite number >= 0, got nan (in 'randn*nan')"),
     ("std=inf", "std must be a finite number >= 0, got inf (in 'std=inf')"),
     ("randn * -inf", "std must be a finite number >= 0, got -inf (in 'randn * -inf')"),
     ("std=-1", "std must be a finite number >= 0, got -1 (in 'std=-1')"),
     ("std=1e999", "std must be a finite number >= 0, got 1e999 (in 'std=1e999')"),
     ("std=abc", "std must be a number, got abc (in 'std=abc')"),
     ("constant=nan", "constant must be a finite number, got nan (in 'constant=nan')"),
     ("constant=x", "constant must be a number, got x (in 'constant=x')")],
)  # fmt: skip
def test_a_bad_init_value_says_what_is_wrong_with_it(spec, message):
    # std=nan and std=inf were "unknown init 'std=nan'; use 'std=<s>', ...", as if misspelt
    with pytest.raises(ValueError, match=re.escape(f"init: {message}")):
        parse_init(spec)
    with pytest.raises(ValueError, match=re.escape(f"--add: {message}")):
        parse_init_options({"--inits": ("he",), "--add": (spec,)})
    assert parse_init("std=0").std == 0.0 and parse_init("std0.5").std == 0.5  # as before


def _tiny_memory(monkeypatch, size=999):
    """This machine's available memory, as the experiments read it, set to ``size`` bytes."""
    import fastinit._system

    monkeypatch.setattr(fastinit._system, "available_memory", lambda **_: size)


@pytest.mark.parametrize(
    ("run", "names"),
    [(lambda out: run_histogram(("he",), ("relu",), out=out), "layers, width, samples:"),
     (lambda out: run_depth(("he",), ("relu",), out=out), "depths, width, samples:"),
     (lambda out: run_mnist(("he",), out=out), ": too large"),
     (lambda out: run_planar(("randn",), out=out), ": too large"),
     (lambda out: run_symmetry(("randn*0.5",), out=out), ": too large")],
    ids=["histogram", "depth", "mnist", "planar", "symmetry"],
)  # fmt: skip
def test_a_run_too_large_for_the_memory_is_refused_before_it_starts(run, names, tmp_path,
                                                                   monkeypatch):  # fmt: skip
    # histogram --layers 100000000 ran until the memory ran out
    _tiny_memory(monkeypatch)
    with pytest.raises(MemoryError, match="too large for this machine's memory") as e:
        run(tmp_path / "out")
    assert names in str(e.value) and "more than the 999 B available" in str(e.value)
    assert not (tmp_path / "out").exists()  # refused before its directory was made


def test_the_memory_estimate_names_only_the_sizes_that_would_shrink_the_run(monkeypatch):
    _tiny_memory(monkeypatch, 10**9)
    with pytest.raises(MemoryError) as e:  # the histograms' counts: layers x bins
        run_histogram(("he",), ("relu",), layers=4, width=2, samples=2, bins=10**9)
    assert str(e.value).startswith("layers, bins: too large"), str(e.value)
    with pytest.raises(MemoryError) as e:  # every checkpoint's spreads, kept
        run_symmetry(("zeros",), iterations=10**12, every=10, progress=False)
    assert str(e.value).startswith("iterations: too large"), str(e.value)
    with pytest.raises(MemoryError) as e:  # every seed's loss curves, kept
        run_mnist(("he",), iterations=1000, seeds=10**6, progress=False)
    assert str(e.value).startswith("iterations, seeds: too large"), str(e.value)
    with pytest.raises(MemoryError) as e:  # every network is built before the first trains
        run_planar(("randn", "zeros"), hidden=10**8, progress=False)
    assert str(e.value).startswith("hidden, m: too large"), str(e.value)  # m x hidden
    run_histogram(("he",), ("relu",), layers=2, width=2, samples=2, bins=10)  # within memory


def test_check_memory_without_a_known_limit_refuses_only_what_no_process_can_hold(monkeypatch):
    from fastinit.experiments._common import check_memory

    _tiny_memory(monkeypatch, None)

    def footprint(sizes):
        return {"weights": sizes["n"] * 8}

    check_memory(footprint, {"n": 10**15})
    with pytest.raises(MemoryError, match=r"^n: .*more than any process can allocate"):
        check_memory(footprint, {"n": 2**62})


def test_planar_checks_its_weights_before_the_memory(monkeypatch):
    # a bad weights with a huge hidden was refused with MemoryError, not its shape error
    _tiny_memory(monkeypatch)
    wide = [np.zeros((2, 5)), np.zeros(5), np.zeros((5, 1)), np.zeros(1)]
    with pytest.raises(ValueError, match=r"weights\['mine'\]: W1: expected shape \(2, 10{12}\)"):
        run_planar((), weights={"mine": wide}, hidden=10**12, iterations=1, progress=False)
    with pytest.raises(MemoryError, match=r"^hidden, m: too large"):  # good weights: memory
        run_planar(("zeros",), hidden=10**8, iterations=1, progress=False)


def test_check_memory_never_names_a_size_whose_smallest_value_would_grow_the_run(monkeypatch):
    from fastinit.experiments._common import check_memory

    _tiny_memory(monkeypatch, 10**6)

    def footprint(sizes):  # symmetry's: fewer checkpoints the larger "every" is
        parts = {"weights": sizes["n"] * 8, "checkpoints": sizes["n"] * 8 // sizes["every"]}
        return parts | {"other": 10**6}  # no size halves the total

    with pytest.raises(MemoryError) as e:  # every at 1 grows the checkpoints: not named
        check_memory(footprint, {"n": 10**4, "every": 2})
    assert str(e.value).startswith("n: too large"), str(e.value)


def test_symmetry_every_above_the_iterations_measures_the_start_and_the_end():
    r = run_symmetry(("zeros",), iterations=3, every=10, progress=False)
    assert r.checkpoints == [0, 3]
    assert r.config["every"] == 3  # recorded as iterations, as documented


# ----------------------------------------------------------------------------- audit 6 fixes
def test_mnist_table_prints_the_loss_every_100_iterations():
    # as the book prints it during training: iterations 0, 100, ...; the mean over the seeds
    # whose loss is finite there, n/a where none is
    he = np.arange(250.0)[None, :] / 100 + np.array([[1.0], [3.0]])
    diverged = np.full((2, 250), np.nan)
    diverged[:, :150] = 7.0
    r = MnistResult({"seeds": 2, "seed": 0, "iterations": 250},
                    curves={"he": he, "bad": diverged},
                    test_accuracy={"he": np.array([0.5, 0.7]), "bad": np.full(2, np.nan)},
                    status={"he": ["ok", "ok"], "bad": ["diverged", "diverged"]})  # fmt: skip
    lines = r.table().splitlines()
    start = next(i for i, s in enumerate(lines) if s.split()[:3] == ["iteration", "he", "bad"])
    assert [s.split() for s in lines[start + 2 : start + 5]] == [
        ["0", "2.0000", "7.0000"],
        ["100", "3.0000", "7.0000"],
        ["200", "4.0000", "n/a"],
    ]
    assert len(lines) == start + 5 or not lines[start + 5].split()[0].isdigit()


def test_an_init_value_or_lr_beyond_the_dtype_range_names_the_argument():
    # "mean, std: |mean| + 9 std: ..." named no init, "optimizer: lr=..." no lr of run_planar
    from fastinit.experiments.planar import run_planar

    with pytest.raises(ValueError, match=r"^inits\[0\]: 'std=1e300' cannot be drawn in float32"):
        run_planar(("std=1e300",), iterations=2, dtype="float32", progress=False)
    with pytest.raises(ValueError, match=r"^lr: .*float32.*1e\+300"):
        run_planar(("zeros",), iterations=2, lr=1e300, dtype="float32", progress=False)


# ----------------------------------------------------------------------------- audit 7 fixes
def test_mnist_figure_over_seeds_leaves_a_diverged_seed_out_as_the_table_does(
    tmp_path, monkeypatch
):
    # one seed of three diverged at iteration 20: the plotted mean and band went NaN from
    # there on for the init (its curve and band ended), while the table and summary.json
    # average the seeds still finite
    from matplotlib.figure import Figure

    from fastinit.experiments import mnist

    lines = {}
    savefig = Figure.savefig

    def record(fig, path, *args, **kwargs):
        lines.update({ln.get_label(): ln.get_ydata() for ln in fig.axes[0].get_lines()})
        return savefig(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    he = np.linspace(2.0, 1.0, 40)[None, :] + np.array([[0.0], [0.2], [0.4]])
    he[0, 20], he[0, 21:] = np.inf, np.nan
    r = MnistResult({"seeds": 3, "seed": 0, "iterations": 40, "sizes": [784, 10],
                     "activation": "relu"}, curves={"he": he},
                    test_accuracy={"he": np.array([np.nan, 0.8, 0.9])},
                    status={"he": ["diverged", "ok", "ok"]})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Mean of empty slice", "Degrees of freedom"
        with Output(tmp_path, "mnist") as output:
            mnist._write(r, output)
    (label,) = lines
    assert label == "he (1 of 3 seeds diverged)"
    expected = np.mean([smooth_curve(c) for c in he[1:]], axis=0)
    np.testing.assert_allclose(lines[label][25:], expected[25:])
    np.testing.assert_allclose(lines[label][:10], np.mean([smooth_curve(c) for c in he[:, :21]],
                                                          axis=0)[:10])  # fmt: skip


def test_mnist_figure_says_its_curves_are_smoothed_and_which_leave_the_axis(tmp_path, monkeypatch):
    # the book's 0-2.5 axis cut std=1's losses of 2.9e4 without a word, and the markers
    # (smoothed) disagreed with the printed table (raw) under a plain "loss" label
    from matplotlib.figure import Figure

    from fastinit.experiments import mnist

    seen = {}
    savefig = Figure.savefig

    def record(fig, path, *args, **kwargs):
        ax = fig.axes[0]
        seen.update(labels=[ln.get_label() for ln in ax.get_lines()], ylabel=ax.get_ylabel(),
                    ylim=ax.get_ylim())  # fmt: skip
        return savefig(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    big = np.concatenate([np.full(10, 28861.0), np.linspace(2.3, 2.2, 30)])[None, :]
    r = MnistResult({"seeds": 1, "seed": 0, "iterations": 40, "sizes": [784, 10],
                     "activation": "relu"},
                    curves={"he": np.linspace(2.0, 1.0, 40)[None, :], "std=1": big},
                    test_accuracy={"he": np.array([0.9]), "std=1": np.array([0.1])},
                    status={"he": ["ok"], "std=1": ["ok"]})  # fmt: skip
    with Output(tmp_path, "mnist") as output:
        mnist._write(r, output)
    assert seen["ylim"] == (0.0, 2.5)  # the book's view, kept
    assert "smoothed" in seen["ylabel"] and "11" in seen["ylabel"], seen["ylabel"]
    he, std1 = seen["labels"]
    assert he == "he" and std1.startswith("std=1 (above the axis to "), std1
    peak = float(std1.split("above the axis to ")[1].rstrip(")"))
    assert peak == pytest.approx(smooth_curve(big[0]).max(), rel=5e-3)  # 3 digits
    short = MnistResult({**r.config, "iterations": 10}, curves={"he": r.curves["he"][:, :10]},
                        test_accuracy={"he": np.array([0.9])}, status={"he": ["ok"]})  # fmt: skip
    with Output(tmp_path / "short", "mnist") as output:
        mnist._write(short, output)  # fewer iterations than the window: drawn raw
    assert seen["ylabel"] == "minibatch loss", seen["ylabel"]


@pytest.mark.parametrize(
    ("run", "kw"),
    [(run_depth, {"depths": (2,), "width": 4, "samples": 4}),
     (run_histogram, {"layers": 1, "width": 4, "samples": 4}),
     (run_symmetry, {"iterations": 2, "every": 1, "progress": False}),
     (run_planar, {"iterations": 2, "progress": False}),
     (run_mnist, {"iterations": 1, "progress": False})],
)  # fmt: skip
def test_a_bad_entry_of_inits_is_named_by_its_position(run, kw):
    # the Python API said "init: unknown init 'bogus'", a name no argument has
    with pytest.raises(ValueError, match=r"^inits\[1\]: unknown init 'bogus'; use "):
        run(("he", "bogus"), **kw)
    with pytest.raises(ValueError, match=r"^inits\[0\]: std must be a finite number >= 0"):
        run(("std=nan",), **kw)
    with pytest.raises(ValueError, match=r"^inits\[0\]: expected an init name such as 'he'"):
        run((3,), **kw)


# ----------------------------------------------------------------------------- audit 8 fixes
def _files_of(directory):
    return {p.name: p.read_text() for p in sorted(directory.iterdir()) if p.is_file()}


def test_a_file_that_cannot_be_moved_in_leaves_every_earlier_file(tmp_path, monkeypatch):
    # a rename failing halfway (an immutable file) left the new summary beside the old figure
    out = tmp_path / "o"
    with Output(out, "t") as output:
        for name in ("a.csv", "b.csv", "c.csv"):
            output.text(name, f"old {name}")
    before = _files_of(out)
    real = os.replace

    def refuse(src, dst, *args, **kwargs):
        if Path(src).name == "b.csv" and ".writing-" not in str(dst):  # moved into place
            raise PermissionError(1, "Operation not permitted", str(src), None, str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match=r"b\.csv.*Operation not permitted.*as they were"):
        with Output(out, "t") as output:
            for name in ("a.csv", "b.csv", "d.csv"):  # c.csv would be removed as stale
                output.text(name, f"new {name}")
    assert _files_of(out) == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".writing-")] == []


def test_a_directory_in_the_place_of_a_file_is_refused_before_anything_moves(tmp_path):
    out = tmp_path / "o"
    with Output(out, "t") as output:
        output.text("a.csv", "old")
    (out / "b.csv").mkdir()
    with pytest.raises(ValueError, match=r"b\.csv.*is a directory"):
        with Output(out, "t") as output:
            output.text("a.csv", "new")
            output.text("b.csv", "new")
    assert (out / "a.csv").read_text() == "old" and (out / "b.csv").is_dir()


def test_a_second_ctrl_c_while_a_run_is_discarded_waits_for_the_cleanup(
    tmp_path, monkeypatch, sigint_default
):
    # the second Ctrl-C of a double press stopped the rmtree: a staging folder was left
    import shutil
    import signal

    out = tmp_path / "o"
    rmtree = shutil.rmtree

    def rmtree_interrupted(path, *args, **kwargs):
        signal.raise_signal(signal.SIGINT)  # a second Ctrl-C as the cleanup starts
        return rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree_interrupted)
    with pytest.raises(KeyboardInterrupt), Output(out, "t") as output:
        output.text("a.csv", "new")
        raise KeyboardInterrupt  # the first
    assert list(out.iterdir()) == []


def test_a_name_too_long_for_out_is_refused_naming_it_and_leaves_no_folder(tmp_path):
    # [Errno 36] escaped raw from path.exists(), and the new parent folder stayed
    out = tmp_path / "new" / ("x" * 300)
    with pytest.raises(ValueError, match=r"^--out '.*': expected a directory .*File name too long"):
        prepare_output(out, "--out")
    assert not (tmp_path / "new").exists()


def test_a_full_disk_while_an_output_is_written_names_its_place_not_the_staging(
    tmp_path, monkeypatch
):
    # "[Errno 28] No space left on device" named no file, then the hidden .writing-* one
    import errno

    from fastinit import _files

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_files.os, "fsync", full)
    out = tmp_path / "o"
    with pytest.raises(OSError) as e, Output(out, "t") as output:
        output.text("summary.json", "{}")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(out / "summary.json")
    assert list(out.iterdir()) == []


def test_a_planar_run_too_large_for_its_points_names_m():
    # "hidden, iterations: too large ..." named the sizes that did not make it large
    with pytest.raises(MemoryError, match=r"^m: too large"):
        run_planar(("zeros",), m=2**40, hidden=1, iterations=1, progress=False)


def test_outputs_are_put_in_place_under_a_lock_on_their_directory(tmp_path):
    # two runs into one --out checked and renamed their files at once: the directory
    # ended up with one run's summary.json beside the other's curves
    import fcntl
    import threading

    out = tmp_path / "o"
    out.mkdir()
    held = os.open(out, os.O_RDONLY)  # another process's commit, holding the directory
    fcntl.flock(held, fcntl.LOCK_EX)
    errors = []

    def run():
        try:
            with Output(out, "t") as output:
                output.text("a.csv", "new")
        except BaseException as e:  # reported below
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(0.5)
    try:
        assert thread.is_alive() and not (out / "a.csv").exists()  # waits for the lock
    finally:
        os.close(held)  # released
        thread.join()
    assert errors == [] and (out / "a.csv").read_text() == "new"


@pytest.mark.parametrize("value", [None, 3, 2.5])
def test_inits_that_are_no_sequence_are_refused_naming_them(value):
    # "'NoneType' object is not iterable"
    with pytest.raises(TypeError, match=r"^inits: expected a sequence of init specs"):
        run_depth(value, depths=(2,), width=4, samples=4)


def test_out_that_is_no_path_is_refused_naming_it():
    with pytest.raises(TypeError, match=r"^out: expected a directory name"):
        prepare_output(123)


def test_depths_given_as_an_integer_array_are_taken():
    a = run_depth(("he",), ("tanh",), depths=np.array([2, 3]), width=4, samples=4)
    b = run_depth(("he",), ("tanh",), depths=(2, 3), width=4, samples=4)
    assert a.config["depths"] == b.config["depths"] == [2, 3]


def test_summary_records_the_blas_that_computed_it():
    # summary.json promised an exact re-run but left out what sets the last bits besides the
    # versions: OpenBLAS's kernels (chosen by the CPU) and its thread count
    from fastinit.dense import _openblas_thread_functions
    from fastinit.experiments._common import provenance

    blas = provenance({})["blas"]
    if _openblas_thread_functions() is None:  # another BLAS: said so, nothing more
        assert blas == {"library": "not OpenBLAS"}
        return
    get, _ = _openblas_thread_functions()
    assert blas["threads"] == get() and blas["library"].startswith("OpenBLAS")
    assert isinstance(blas["core"], str) and blas["core"]


def test_summary_records_the_cpu_numba_compiled_for():
    # planar's float64 kernels are numba's, compiled for the host's vector instructions: its
    # last digits moved between hosts whatever OPENBLAS_CORETYPE said, and nothing recorded it
    import platform

    import llvmlite.binding as llvm
    from numba.core import config

    from fastinit.experiments._common import provenance

    cpu = provenance({})["cpu"]
    assert cpu == {"llvm": config.CPU_NAME or llvm.get_host_cpu_name(),
                   "machine": platform.machine()}  # fmt: skip
    assert cpu["llvm"]


def test_an_earlier_file_that_cannot_be_put_back_survives_the_next_run(tmp_path, monkeypatch):
    # the kept staging folder carried the dead pid: the next run removed it as abandoned
    out = tmp_path / "o"
    with Output(out, "t") as output:
        output.text("a.csv", "old a")
        output.text("b.csv", "old b")
    real = os.replace

    def stuck(src, dst, *args, **kwargs):
        if Path(src).name == "b.csv" and ".writing-" not in str(dst):  # b cannot move in
            raise PermissionError(1, "Operation not permitted")
        if ".earlier-" in str(src):  # and no earlier file can be put back
            raise PermissionError(1, "Operation not permitted")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", stuck)
    with pytest.raises(OSError, match=r"earlier files that could not be put back are in"):
        with Output(out, "t") as output:
            output.text("a.csv", "new a")
            output.text("b.csv", "new b")
    monkeypatch.undo()
    from fastinit import _files

    monkeypatch.setattr(_files, "alive", lambda pid: False)  # that process has ended
    with Output(out, "t") as output:  # the user runs the command again
        output.text("a.csv", "again")
    kept = [p for p in out.rglob("*") if p.is_file() and p.read_text() == "old a"]
    assert len(kept) == 1, sorted(map(str, out.rglob("*")))


def test_a_file_whose_name_is_near_the_longest_can_be_replaced(tmp_path):
    # the earlier file was moved aside as .earlier-<name>: 9 bytes too long for 247-255
    out = tmp_path / "o"
    name = "x" * 251 + ".png"
    with Output(out, "t") as output:
        output.text(name, "old")
    with Output(out, "t") as output:
        output.text(name, "new")
    assert (out / name).read_text() == "new"


def test_inits_given_as_a_generator_are_taken():
    a = run_depth((i for i in ("he",)), ("tanh",), depths=(2,), width=4, samples=4)
    assert list(a.config["inits"]) == ["he"]


def test_a_notebook_seed_out_of_range_is_refused_before_the_output_is_prepared(monkeypatch):
    # the command said it would replace the earlier files in --out, then refused --seed
    from fastinit.experiments import planar

    def reached(*args, **kwargs):
        raise AssertionError("the output was prepared before the seed was checked")

    monkeypatch.setattr(planar, "prepared_output", reached)
    with pytest.raises(ValueError, match=r"^seed: rng 'notebook' takes seeds in \[0, 2\*\*32\)"):
        planar.run_planar(("randn",), seed=2**32, iterations=2, out="unused", progress=False)


def test_an_activation_given_twice_under_two_names_says_both():
    # "relu,linear,identity" said "'identity' is given twice", naming neither spelling typed
    from fastinit.experiments._common import parse_activations

    with pytest.raises(ValueError, match=r"'identity' is given twice \(also as 'linear'\)"):
        parse_activations(["relu", "linear", "identity"])
    with pytest.raises(ValueError, match=r"'relu' is given twice; give each"):
        parse_activations(["relu", "relu"])


# ----------------------------------------------------------------------------- mutation audit 3
def _propagated(init: str, activation: str) -> tuple:
    """The default histogram run's layers, propagated independently in float64."""
    from fastinit.experiments._common import parse_init
    from fastinit.experiments.depth import propagate

    x = datasets.gaussian(1000, 100, seed=0, dtype="float64")
    w = [parse_init(init).draw((100, 100), 0, k + 1, "float64") for k in range(5)]
    return propagate(x, w, activation, grad_seed=0, grad_stream=TOP_GRADIENT_STREAM)


def test_histogram_dead_fraction_is_each_layer_s_own():
    # every layer reported layer 1's dead fraction and every test passed (mutation audit)
    r = run_histogram(("he",), ("relu",), layers=5, width=100, samples=1000, progress=False)
    acts = _propagated("he", "relu")[0]
    dead = [float(np.mean((a == 0).all(axis=0))) for a in acts]  # units 0 on every row
    assert len(set(dead)) > 1  # the case tells the layers apart
    assert [s.dead for s in r.stats] == pytest.approx(dead)


def test_histogram_grad_std_is_each_layer_s_own():
    # the gradient stds listed in reverse layer order passed every test (mutation audit)
    r = run_histogram(("xavier",), ("tanh",), layers=5, width=100, samples=1000, progress=False)
    grads = _propagated("xavier", "tanh")[2]
    assert [s.grad_std for s in r.stats] == pytest.approx([np.std(g) for g in grads], rel=1e-9)


# ----------------------------------------------------------------------------- mutation audit 6
def test_histogram_outside_shares_are_of_every_value_measured():
    # the shares were taken of the finite values only and every test passed (mutation audit):
    # an overflowed layer's inf and NaN count in the whole, as the docstring says
    from fastinit.experiments.histogram import _outside

    v = np.array([np.inf, np.nan, -2.0, 0.5, 3.0, 4.0, -np.inf, 0.0, 1.0, -0.5])
    finite = v[np.isfinite(v)]
    below, above = _outside(v, 0.0, 1.0)
    assert below == np.count_nonzero(finite < 0.0) / v.size
    assert above == np.count_nonzero(finite > 1.0) / v.size


def test_histogram_gradient_bins_count_every_finite_gradient():
    # the gradients' range spans every finite value: a range of the 99.9th percentile (as the
    # activations' of relu) left values out of every bin and every test passed (mutation audit)
    r = run_histogram(("xavier", "std=1"), ("tanh", "relu"), layers=3, width=20, samples=60,
                      progress=False)  # fmt: skip
    for key, counts in r.grad_counts.items():
        assert counts.sum(axis=1).tolist() == [60 * 20] * 3, key


def test_planar_summary_lists_the_cost_of_iterations_0_1000_2000():
    r = run_planar(("randn",), iterations=2500, progress=False)
    costs = r.costs["randn"]
    listed = r.summary()["results"]["randn"]["cost_every_1000"]
    assert listed == [float(costs[0]), float(costs[1000]), float(costs[2000])]


def test_planar_notebook_draw_is_only_for_one_hidden_layer():
    # a randn*s net of two hidden layers was given the notebook's one-layer weights
    from fastinit.experiments.planar import draws_notebook_weights, initial_model

    spec = parse_init("randn*0.5")
    assert draws_notebook_weights(spec, 1) and not draws_notebook_weights(spec, 2)
    x = datasets.planar(1, 40)[0]
    nets = [initial_model(spec, [2, 4, 4, 1], rng=rng, x=x) for rng in ("notebook", "fastinit")]
    for a, b in zip(nets[0].weights, nets[1].weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_planar_weights_named_as_an_init_in_another_case_are_refused():
    with pytest.raises(ValueError, match=r"'ZEROS' is also the name of an init"):
        run_planar(("zeros",), weights={"ZEROS": notebook_weights(1.0)}, iterations=2,
                   progress=False)  # fmt: skip


def test_symmetry_summary_and_scales_are_of_their_checkpoint_and_matrices():
    # final_incoming_spread of the first checkpoint, and the outgoing scales measured on the
    # incoming matrices, passed every test (mutation audit)
    r = run_symmetry(("randn*0.5",), hidden=(8, 8), iterations=20, every=10, progress=False)
    inc = r.incoming["randn*0.5"]
    assert not np.array_equal(inc[0], inc[-1])  # the case tells the checkpoints apart
    s = r.summary()["results"]["randn*0.5"]
    assert s["final_incoming_spread"] == inc[-1].tolist()
    model = parse_init("randn*0.5").build_model([2, 8, 8, 1], activation="tanh", seed=0,
                                                dtype="float64", x_batch=None)  # fmt: skip
    w = model.weights  # checkpoint 0: the initial weights
    assert r.incoming_scale["randn*0.5"][0].tolist() == [np.abs(a).max() for a in w[:-1]]
    assert r.outgoing_scale["randn*0.5"][0].tolist() == [np.abs(a).max() for a in w[1:]]


def test_mnist_loss_table_is_the_mean_over_the_seeds_not_another_average():
    # two seeds have one mean and median: the median passed every test (mutation audit)
    curves = np.array([[1.0] * 120, [2.0] * 120, [6.0] * 120])
    r = MnistResult({"seeds": 3, "seed": 0, "iterations": 120}, curves={"he": curves},
                    test_accuracy={"he": np.array([0.5, 0.6, 0.7])},
                    status={"he": ["ok"] * 3})  # fmt: skip
    lines = r.table().splitlines()
    start = next(i for i, s in enumerate(lines) if s.split()[:2] == ["iteration", "he"])
    assert [s.split() for s in lines[start + 2 : start + 4]] == [["0", "3.0000"], ["100", "3.0000"]]


def test_mnist_figure_band_is_the_sample_std_of_the_smoothed_seeds():
    from fastinit.experiments.mnist import _seed_mean_std

    curves = np.random.default_rng(1).random((3, 40))
    mean, sd = _seed_mean_std(curves)
    smooth = np.array([smooth_curve(c) for c in curves])
    np.testing.assert_allclose(mean, smooth.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sd, smooth.std(axis=0, ddof=1), rtol=1e-12)


def test_mnist_seed_r_of_a_run_is_the_run_of_that_seed(tmp_path, monkeypatch):
    # every seed trained on seed 0's batches (or weights, or LSUV batch) and every test
    # passed (mutation audit): the second seed of a run from seed 3 is the run of seed 4
    from fastinit.experiments import mnist

    histories = []

    def fit_many(*args, **kwargs):
        hs = real(*args, **kwargs)
        histories.append(hs)
        return hs

    real = mnist.fit_many
    monkeypatch.setattr(mnist, "fit_many", fit_many)
    kwargs = {"hidden": (16,), "iterations": 30, "batch_size": 32, "train_size": 500,
              "progress": False}  # fmt: skip
    two = run_mnist(("he", "lsuv"), seeds=2, seed=3, out=tmp_path, **kwargs)
    one = run_mnist(("he", "lsuv"), seeds=1, seed=4, **kwargs)
    for name in ("he", "lsuv"):
        np.testing.assert_array_equal(two.curves[name][1], one.curves[name][0])
        assert not np.array_equal(two.curves[name][0], two.curves[name][1])
    with (tmp_path / "loss_curves.csv").open() as f:
        header = next(csv.reader(f))
    assert header == ["iteration", "he[seed=3]", "he[seed=4]", "lsuv[seed=3]", "lsuv[seed=4]"]
    # the rate counts the updates of every network (2 per iteration here) over the fits' time
    done = sum(h.iterations for hs in histories[:2] for h in hs)
    assert done == 2 * 2 * 30
    wall = sum(hs[0].wall_time for hs in histories[:2])
    assert two.iterations_per_second == pytest.approx(done / wall)


def test_smooth_curve_mirrors_the_edges_as_the_book_does():
    # the book's smooth_curve: x[window-1:0:-1] before (the edge left out), x[-1:-window:-1]
    # after (the edge kept); only an interior point was checked and a shifted mirror, or a
    # curve of exactly 11 points returned raw, passed (mutation audit)
    w = np.kaiser(11, 2) / np.kaiser(11, 2).sum()
    for n in (11, 12, 40):
        x = np.random.default_rng(n).random(n)
        before = np.pad(x, (10, 0), mode="reflect")[:10]
        after = np.pad(x, (0, 10), mode="symmetric")[-10:]
        s = np.concatenate([before, x, after])
        expected = [np.dot(w, s[i + 5 : i + 16]) for i in range(n)]
        np.testing.assert_allclose(smooth_curve(x), expected, rtol=1e-12)
    short = np.random.default_rng(0).random(10)
    np.testing.assert_array_equal(smooth_curve(short), short)
