"""The depth experiment: per-layer signal propagation at init, against plain NumPy."""

import csv
import json

import numpy as np
import pytest

from fastinit import datasets, init
from fastinit import random as frandom
from fastinit.cli import main
from fastinit.experiments.depth import (
    TOP_GRADIENT_STREAM,
    backward,
    forward,
    layer_statistics,
    run_depth,
)

WIDTH, SAMPLES = 16, 40


def _numpy_oracle(init_std, act, depth, seed, width=WIDTH, samples=SAMPLES):
    """Forward/backward in plain NumPy with fastinit's draws (streams of the docstring)."""
    x = datasets.gaussian(samples, width, seed=seed, dtype="float64")
    ws = [
        init.normal((width, width), std=init_std(width), seed=seed, stream=k + 1, dtype="float64")
        for k in range(depth)
    ]
    f = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0)}[act]
    df = {  # relu's slope at a NaN pre-activation (inf - inf) is unknown: NaN, as tanh's is
        "tanh": lambda z: 1 - np.tanh(z) ** 2,
        "relu": lambda z: np.where(np.isnan(z), np.nan, (z > 0).astype(float)),
    }[act]
    a, zs, acts = x, [], []
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing run's oracle
        for w in ws:
            z = a @ w
            zs.append(z)
            a = f(z)
            acts.append(a)
        g = frandom.fill_normal(np.empty((samples, width)), seed=seed, stream=TOP_GRADIENT_STREAM)
        grads = [None] * depth
        for k in range(depth - 1, -1, -1):
            gz = g * df(zs[k])
            grads[k] = gz
            g = gz @ ws[k].T
        return [a.std() for a in acts], [a.mean() for a in acts], [g.std() for g in grads]


def test_depth_matches_numpy_per_layer_and_seed():
    r = run_depth(("he", "xavier"), ("tanh", "relu"), depths=(3, 5), width=WIDTH, samples=SAMPLES,
                  seeds=2, seed=7, progress=False)  # fmt: skip
    stds = {"he": lambda n: np.sqrt(2 / n), "xavier": lambda n: np.sqrt(1 / n)}
    for init_name, std in stds.items():
        for act in ("tanh", "relu"):
            for depth in (3, 5):
                key = (init_name, act, depth)
                assert r.act_std[key].shape == (2, depth)
                for row, seed in enumerate((7, 8)):
                    a_std, a_mean, g_std = _numpy_oracle(std, act, depth, seed)
                    np.testing.assert_allclose(r.act_std[key][row], a_std, rtol=1e-9)
                    np.testing.assert_allclose(r.act_mean[key][row], a_mean, rtol=1e-9, atol=1e-12)
                    np.testing.assert_allclose(r.grad_std[key][row], g_std, rtol=1e-9)
    # a deeper network shares its first layers: same forward statistics
    np.testing.assert_array_equal(r.act_std[("he", "relu", 5)][:, :3], r.act_std[("he", "relu", 3)])


def test_layer_statistics_overflow_is_non_finite_not_an_error():
    x = datasets.gaussian(20, 16, seed=0, dtype="float64")
    ws = [init.normal((16, 16), std=1e3, seed=0, stream=k, dtype="float64") for k in range(100)]
    g = np.ones_like(x)
    stats = layer_statistics(x, ws, "identity", (100,), g)[100]
    assert not np.isfinite(stats["act_std"][-1])
    assert np.isfinite(stats["act_std"][0])


def test_gradient_through_an_overflowed_relu_layer_is_nan_not_zero():
    # std=1e307 ReLU: from layer 2 on the pre-activations are inf - inf = NaN, and relu's
    # f'(NaN) was 0: it silenced the top gradient, and every layer's grad std was a
    # confident 0.0 (the sweep stored grad_std_first 0.0 for the report to average in)
    from fastinit.sweep.runners import full_config, run

    r = run_depth(("std=1e307",), ("relu",), depths=(4,), width=4, samples=4, progress=False)
    a_std, _, g_std = _numpy_oracle(lambda n: 1e307, "relu", 4, 0, width=4, samples=4)
    key = ("std=1e307", "relu", 4)
    assert np.isfinite(r.act_std[key][0, 0]) and np.isnan(r.act_std[key][0, 1:]).all()
    assert np.isnan(a_std[1:]).all()  # the signal itself overflowed (not only its squares)
    np.testing.assert_allclose(r.grad_std[key][0], g_std, rtol=1e-12)  # NaN where NaN
    assert np.isnan(r.grad_std[key][0]).all()
    summary = r.summary()["results"][0]
    assert summary["grad_std_first"] is None and summary["grad_std_last"] is None
    assert "overflow" in r.table().splitlines()[2].split("relu")[1]
    cfg = full_config("depth", {"init": "std=1e307", "depth": 4, "width": 4, "samples": 4})
    result = run(cfg)
    assert result["status"] == "diverged"
    assert result["metrics"]["grad_std_first"] is None


def test_he_keeps_relu_signal_xavier_halves_it():
    # the picture the experiment is for: with ReLU the second moment is multiplied by
    # 2 * var(w) * n per layer: 1 for He, 1/2 for Xavier (std=sqrt(1/n))
    r = run_depth(("he", "xavier"), ("relu",), depths=(20,), width=128, samples=128, seeds=3,
                  progress=False)  # fmt: skip
    he = r.act_std[("he", "relu", 20)]
    xavier = r.act_std[("xavier", "relu", 20)]
    he_ratio = np.exp(np.mean(np.log(he[:, -1] / he[:, 0])))
    xavier_ratio = np.exp(np.mean(np.log(xavier[:, -1] / xavier[:, 0])))
    assert 0.4 < he_ratio < 2.5
    assert xavier_ratio == pytest.approx(2 ** (-19 / 2), rel=0.6)
    g_he, g_x = r.grad_std[("he", "relu", 20)], r.grad_std[("xavier", "relu", 20)]
    assert np.all(g_x[:, 0] < 0.01 * g_x[:, -1])  # Xavier's gradient vanishes going down
    assert np.all(g_he[:, 0] > 0.2 * g_he[:, -1])


def test_depth_outputs_table_and_summary(tmp_path):
    # depths are run sorted
    r = run_depth(("std=0.01", "he"), ("tanh",), depths=(4, 2), width=8, samples=10, seeds=2,
                  out=tmp_path, progress=False)  # fmt: skip
    for name in ("summary.json", "layer_stats.csv", "depth_tanh.png", "depth_summary.png"):
        assert (tmp_path / name).stat().st_size > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["depths"] == [2, 4]
    he4 = next(x for x in summary["results"] if x["init"] == "he" and x["depth"] == 4)
    assert he4["act_std_last"] == pytest.approx(r.act_std[("he", "tanh", 4)][:, -1].mean())
    with (tmp_path / "layer_stats.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * (2 + 4)  # inits x seeds x layers of both depths
    assert "he" in r.table() and "std=0.01" in r.table()


def test_depth_argument_errors():
    with pytest.raises(ValueError, match="init"):
        run_depth(("nonsense",), progress=False)
    with pytest.raises(ValueError, match="activations"):
        run_depth(("he",), ("nope",), progress=False)
    with pytest.raises(ValueError, match="depths"):
        run_depth(("he",), depths=(0,), progress=False)
    with pytest.raises(TypeError, match="depths"):
        run_depth(("he",), depths="10", progress=False)
    with pytest.raises(ValueError, match="width"):
        run_depth(("he",), width=0, progress=False)


def test_depth_command(tmp_path, capsys):
    code = main(["depth", "--inits", "he", "--add", "xavier", "--activations", "relu",
                 "--depths", "3,6", "--width", "8", "--samples", "12", "--seeds", "2",
                 "--out", str(tmp_path), "--quiet"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "xavier" in printed and "grad std" in printed
    assert (tmp_path / "depth_relu.png").exists()
    with pytest.raises(SystemExit) as e:
        main(["depth", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--out", "--inits", "--add", "--seed", "--dtype", "--quiet", "--depths"):
        assert option in text


def test_depth_table_columns_never_run_together():
    r = run_depth(("glorot_uniform",), ("leaky_relu",), depths=(2,), width=4, samples=4)
    row = r.table().splitlines()[2].split()
    assert row[:3] == ["glorot_uniform", "leaky_relu", "2"] and len(row) == 7


# ----------------------------------------------------------------------------- audit 5 fixes
def test_a_depth_given_twice_is_refused_naming_it():
    # (4, 2, 4) measured depth 4 once, silently; repeated inits and activations are refused
    with pytest.raises(ValueError, match=r"^depths: 4 is given twice; give each depth once$"):
        run_depth(("he",), ("relu",), depths=(4, 2, 4), width=4, samples=4, progress=False)


def test_depth_table_over_seeds_shows_mean_and_sample_std_as_mnist():
    from fastinit.experiments.depth import DepthResult

    stds = np.array([[1.0, 2.0], [3.0, 6.0]])  # seeds x layers
    grads = np.array([[1.0, np.inf], [1.0, 1.0]])
    key = ("he", "relu", 2)
    r = DepthResult({"seeds": 2, "seed": 5}, act_mean={key: np.zeros((2, 2))},
                    act_std={key: stds}, grad_std={key: grads})  # fmt: skip
    lines = r.table().splitlines()
    assert lines[2].split() == ["he", "relu", "2", "2", "±", "1.414", "4", "±", "2.828",
                                "1", "±", "0", "overflow"]  # fmt: skip
    assert "mean ± sample std over 2 seeds (5 to 6)" in lines
    (row,) = r.summary()["results"]
    assert row["act_std_first_std"] == pytest.approx(2**0.5) and row["grad_std_last_std"] is None
    one = run_depth(("he",), ("relu",), depths=(2,), width=4, samples=4, progress=False)
    assert "±" not in one.table() and "seeds" not in one.table()
    assert one.summary()["results"][0]["act_std_last_std"] is None


def test_depth_command_over_seeds_prints_the_spread(tmp_path, capsys):
    code = main(["depth", "--inits", "he", "--activations", "relu", "--depths", "3",
                 "--width", "8", "--samples", "12", "--seeds", "3", "--seed", "4",
                 "--out", str(tmp_path), "--quiet"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "±" in printed and "mean ± sample std over 3 seeds (4 to 6)" in printed


def test_depth_summary_of_huge_finite_values_has_a_finite_mean_beside_its_std():
    from fastinit.experiments.depth import DepthResult

    # np.mean overflowed to inf: the table showed 'inf ± 1.414e+307', summary.json a null
    # mean beside a finite std; both are now exact (fastinit report's mean_std)
    huge = np.array([[1.5e308, 1.0], [1.7e308, 1.0]])  # seeds x layers
    key = ("he", "relu", 2)
    r = DepthResult({"seeds": 2, "seed": 0}, act_mean={key: np.zeros((2, 2))},
                    act_std={key: huge}, grad_std={key: huge})  # fmt: skip
    (row,) = r.summary()["results"]
    assert row["act_std_first"] == pytest.approx(1.6e308)
    assert row["act_std_first_std"] == pytest.approx(1.414e307, rel=1e-3)
    assert row["act_std_per_layer"] == pytest.approx([1.6e308, 1.0]) == row["grad_std_per_layer"]
    assert r.table().splitlines()[2].split()[3:6] == ["1.6e+308", "±", "1.414e+307"]
    json.dumps(r.summary(), allow_nan=False)  # no inf: summary.json stays valid JSON


# ----------------------------------------------------------------------------- audit 6 fixes
def _scaled_std_mean(a, scale):
    """The oracle: NumPy's std and mean of ``a / scale``, times ``scale`` (float64)."""
    b = np.asarray(a, dtype=np.float64) / scale
    return b.std() * scale, b.mean() * scale


def test_finite_signals_whose_squares_overflow_have_a_finite_spread():
    # identity layers of std 1e3 (width 16): the signal grows ~4e3 per layer, 1e200 at layer 56;
    # numpy's a.std() squared it past the float range: inf (the run 'diverged', the table
    # said 'overflow') though every activation and gradient was finite
    x = datasets.gaussian(8, 16, seed=0, dtype="float64")
    ws = [init.normal((16, 16), std=1e3, seed=0, stream=k, dtype="float64") for k in range(56)]
    g = np.ones_like(x)
    stats = layer_statistics(x, ws, "identity", (56,), g)[56]
    acts, derivs = forward(x, ws, "identity")
    grads = backward(g, ws, derivs)
    assert np.isfinite(acts[-1]).all() and np.abs(acts[-1]).max() > 1e190
    assert np.isfinite(grads[0]).all() and np.abs(grads[0]).max() > 1e190
    for k in range(56):
        scale = float(np.abs(acts[k]).max())
        a_std, a_mean = _scaled_std_mean(acts[k], scale)
        g_std, _ = _scaled_std_mean(grads[k], float(np.abs(grads[k]).max()))
        np.testing.assert_allclose(stats["act_std"][k], a_std, rtol=1e-12)
        np.testing.assert_allclose(stats["act_mean"][k], a_mean, rtol=1e-12, atol=1e-12 * scale)
        np.testing.assert_allclose(stats["grad_std"][k], g_std, rtol=1e-12)


def test_float32_signals_beyond_1e19_have_a_finite_spread_and_the_run_is_ok():
    # std=1 ReLU in float32: activations pass 1e19 by layer 30, their squares overflow float32
    from fastinit.sweep.runners import full_config, run

    r = run_depth(("std=1",), ("relu",), depths=(30,), width=64, samples=8, dtype="float32",
                  progress=False)  # fmt: skip
    key = ("std=1", "relu", 30)
    x = datasets.gaussian(8, 64, seed=0, dtype="float32")
    ws = [init.normal((64, 64), std=1.0, seed=0, stream=k + 1, dtype="float32") for k in range(30)]
    acts, _ = forward(x, ws, "relu")
    assert acts[-1].dtype == np.float32 and np.abs(acts[-1]).max() > 1e20
    oracle = [a.astype(np.float64).std() for a in acts]
    np.testing.assert_allclose(r.act_std[key][0], oracle, rtol=1e-5)
    assert "overflow" not in r.table()
    cfg = full_config("depth", {"init": "std=1", "depth": 30, "width": 64, "samples": 8,
                                "dtype": "float32"})  # fmt: skip
    result = run(cfg)
    assert result["status"] == "ok", result["metrics"]
    assert result["metrics"]["act_std_last"] == pytest.approx(oracle[-1], rel=1e-5)


def test_the_numbers_the_docstring_and_readme_quote_are_the_default_run():
    # the module docstring said He "drives [tanh] units toward saturation" and keeps ReLU
    # "flat over 100 layers", where the default run's tanh units hardly saturate while its
    # gradients grow 100-fold, and seed 0's ReLU std falls 20-fold (a finite-width wander)
    import fastinit.experiments.depth as depth
    from tests.conftest import ROOT

    r = run_depth(("xavier", "he"), ("relu", "tanh"), depths=(100,), progress=False)
    he_relu, he_tanh = r.act_std[("he", "relu", 100)][0], r.grad_std[("he", "tanh", 100)][0]
    xavier_tanh = r.act_std[("xavier", "tanh", 100)][0]
    assert (round(he_relu[0], 2), round(he_relu[-1], 3)) == (0.82, 0.036)
    assert (round(he_tanh[-1], 2), round(he_tanh[0])) == (0.74, 84)
    assert (round(xavier_tanh[0], 2), round(xavier_tanh[-1], 2)) == (0.63, 0.07)
    doc = " ".join(depth.__doc__.split())
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "from 0.82 at layer 1 to 0.036 at layer 100" in doc
    assert "from 0.74 at the top to about 84 at layer 1 of 100" in doc
    assert "(std 0.63 at layer 1, 0.07 at layer 100)" in doc
    assert "ends at layer 100 with 0.036 of layer 1's 0.82 activation std" in readme
    assert "about 84 at layer 1 of 100" in readme


def test_a_log_axis_clipped_to_its_decades_keeps_most_curves_in_view():
    # the window was counted down from the top: one exploding curve (std=10 relu at depth
    # 30, about 1e42) pushed every well-behaved curve off the figure
    from fastinit.experiments._common import pyplot
    from fastinit.experiments.depth import DECADES, _clip_decades

    plt = pyplot()
    layers = np.arange(1, 31)
    for curves, seen in (
        ([np.ones(30), np.full(30, 0.5), 10.0 ** (1.4 * layers)], (0.5, 1.0)),  # explodes
        ([np.ones(30), np.full(30, 2.0), 10.0 ** (-4.0 * layers)], (1.0, 2.0)),  # collapses
    ):
        fig, ax = plt.subplots()
        for y in curves:
            ax.plot(layers, y)
        ax.set_yscale("log")
        _clip_decades(ax, DECADES)
        low, high = ax.get_ylim()
        assert low <= seen[0] and seen[1] <= high, (low, high)
        assert np.log10(high / low) <= DECADES + 1e-9
        plt.close(fig)


def test_the_signal_vs_depth_figure_labels_its_rows_not_with_an_init():
    # the loop over inits reused the row's variable: both rows read "he" (the last init)
    from fastinit.experiments._common import pyplot
    from fastinit.experiments.depth import plot_signal_vs_depth

    plt = pyplot()
    ends = {(i, "relu", d): (0.5, 0.25) for i in ("xavier", "he") for d in (10, 20)}
    fig = plot_signal_vs_depth(plt, ends, ["xavier", "he"], ["relu"], [10, 20])
    try:
        rows = [ax.get_ylabel() for ax in fig.axes]
        assert rows == ["activation std, last layer", "gradient std, first layer"], rows
    finally:
        plt.close(fig)


def test_the_per_layer_figure_labels_its_rows_not_with_an_init():
    # the same slip in plot_signal (since 09f660e): both rows read "xavier", the last init
    from fastinit.experiments._common import pyplot
    from fastinit.experiments.depth import plot_signal

    plt = pyplot()
    curves = {(i, d): (np.ones((2, d)), np.ones((2, d))) for i in ("he", "xavier") for d in (3, 5)}
    fig = plot_signal(plt, curves, ["he", "xavier"], [3, 5], "relu", notes={("he", 3): "1 NaN"})
    try:
        rows = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
        assert rows == ["activation std", "gradient std (dL/dz)"], rows
    finally:
        plt.close(fig)


def test_the_experiment_s_figures_say_which_runs_overflowed(tmp_path, monkeypatch):
    # the table said "overflow" while the figures dropped the run without a word (the
    # gradient panel showed only he, the summary a single point); the report said it
    from fastinit.experiments import depth

    seen = {}

    def recording(name, plot):
        def draw(*args, **kwargs):
            seen[name] = kwargs.get("notes", args[5] if len(args) > 5 else None)
            return plot(*args, **kwargs)

        return draw

    monkeypatch.setattr(depth, "plot_signal", recording("signal", depth.plot_signal))
    monkeypatch.setattr(
        depth, "plot_signal_vs_depth", recording("ends", depth.plot_signal_vs_depth)
    )
    r = depth.run_depth(("std=1", "he"), ("relu",), depths=(3, 60), width=64, samples=16,
                        seeds=2, dtype="float32", out=tmp_path, progress=False)  # fmt: skip
    assert not np.isfinite(r.act_std[("std=1", "relu", 60)]).all()  # the case in question
    assert seen["signal"] == {("std=1", 60): "2 of 2 seeds overflowed"}, seen
    assert seen["ends"] == {("std=1", "relu"): "depth 60: 2 of 2 seeds overflowed"}, seen


def test_signal_vs_depth_of_one_depth_has_whole_depth_ticks():
    # one depth gave ticks 3.8 ... 4.2 "layers"
    from fastinit.experiments._common import pyplot
    from fastinit.experiments.depth import plot_signal_vs_depth

    plt = pyplot()
    fig = plot_signal_vs_depth(plt, {("he", "relu", 4): (0.5, 0.25)}, ["he"], ["relu"], [4])
    try:
        fig.canvas.draw()
        ticks = [
            t
            for ax in fig.axes
            for t in ax.get_xticks()
            if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]
        ]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    finally:
        plt.close(fig)


def test_a_depth_figure_with_nothing_to_draw_makes_no_empty_legend():
    # every std 0 or missing (a width-1 network of one sample): matplotlib warned "No artists
    # with labels found to put in legend" from both figures
    import warnings

    from fastinit.experiments._common import pyplot
    from fastinit.experiments.depth import plot_signal, plot_signal_vs_depth

    plt = pyplot()
    ends = {("he", "relu", 1): (0.0, None)}
    curves = {("he", 1): (np.zeros(1), np.full(1, np.nan))}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figs = [plot_signal_vs_depth(plt, ends, ["he"], ["relu"], [1]),
                plot_signal(plt, curves, ["he"], [1], "relu")]  # fmt: skip
    for fig in figs:
        plt.close(fig)


def test_summary_per_layer_lists_are_the_seed_means_of_the_result():
    # grad_std_per_layer holding the activation stds passed every test (mutation audit)
    r = run_depth(("xavier", "he"), ("tanh",), depths=(4,), width=32, samples=64, seeds=2,
                  progress=False)  # fmt: skip
    for row in r.summary()["results"]:
        key = (row["init"], row["activation"], row["depth"])
        assert row["grad_std_per_layer"] == pytest.approx(r.grad_std[key].mean(axis=0), rel=1e-12)
        assert row["act_std_per_layer"] == pytest.approx(r.act_std[key].mean(axis=0), rel=1e-12)


# ----------------------------------------------------------------------------- mutation audit 6
def test_a_seed_whose_gradient_alone_overflowed_is_said_to_have_overflowed():
    # a finite signal with a gradient spread of inf (the figures leave that layer out) was
    # not counted when the check read the activations only, and every test passed
    from fastinit.experiments.depth import _overflowed

    act = np.ones((3, 4))
    grad = np.ones((3, 4))
    grad[1, 2] = np.inf
    assert _overflowed(act, grad) == "1 of 3 seeds overflowed"
    assert _overflowed(act, np.ones((3, 4))) == ""


def test_the_per_layer_figure_draws_the_geometric_mean_over_seeds():
    # an arithmetic mean passed every test (mutation audit); the band spans min to max
    from fastinit.experiments._common import pyplot
    from fastinit.experiments.depth import plot_signal

    plt = pyplot()
    act = np.array([[1.0, 4.0, 9.0], [4.0, 1.0, 1.0]])
    grad = np.array([[2.0, 8.0, 1e-3], [8.0, 2.0, 1e3]])
    fig = plot_signal(plt, {("he", 3): (act, grad)}, ["he"], [3], "relu")
    try:
        for ax, values in zip(fig.axes, (act, grad), strict=True):
            (line,) = ax.get_lines()
            expected = np.exp(np.log(values).mean(axis=0))
            np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-12)
    finally:
        plt.close(fig)


def test_the_last_seed_of_a_run_must_be_below_2_to_the_64():
    # seed + seeds - 1 = 2**64 passed the check (> for >=) (mutation audit)
    from fastinit.experiments._common import check_seed_range

    assert check_seed_range(2**64 - 2, 2) == (2**64 - 2, 2)
    with pytest.raises(ValueError, match="seed, seeds"):
        check_seed_range(2**64 - 1, 2)
    with pytest.raises(ValueError, match="seed, seeds"):
        run_depth(("he",), ("relu",), depths=(1,), width=2, samples=2, seed=2**64 - 1, seeds=2,
                  progress=False)  # fmt: skip
