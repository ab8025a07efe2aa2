"""The classic experiments end to end, on reduced sizes, against independent oracles."""

import csv
import json
import math

import numpy as np
import pytest

from fastinit import datasets, init
from fastinit.experiments._common import parse_init, smooth_curve
from fastinit.experiments.histogram import run_histogram
from fastinit.experiments.mnist import run_mnist
from fastinit.experiments.planar import notebook_weights, run_planar
from fastinit.experiments.symmetry import run_symmetry, unit_spread
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


def test_smooth_curve_is_the_books_kaiser_window():
    x = np.random.default_rng(0).random(300)
    y = smooth_curve(x)
    assert y.shape == x.shape
    w = np.kaiser(11, 2) / np.kaiser(11, 2).sum()
    np.testing.assert_allclose(y[100], np.dot(w, x[95:106]))


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
