"""The fastinit command line."""

import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from fastinit.cli import build_parser, main
from fastinit.experiments.planar import notebook_weights


@pytest.mark.parametrize("command", ["histogram", "mnist", "planar", "symmetry", "depth"])
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--out", "--inits", "--add", "--seed", "--dtype", "--quiet"):
        assert option in text
    assert "('" not in text  # list defaults read as the option takes them: a,b,c


def _help(command: str, capsys) -> str:
    """The output of ``fastinit <command> --help``."""
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def _help_of(text: str, option: str) -> str:
    """The help of ``option`` in a ``--help`` output ``text``, on one line."""
    lines = text.splitlines()
    (k,) = [i for i, line in enumerate(lines) if re.match(rf"  {re.escape(option)}\b", line)]
    block = [lines[k]]
    for line in lines[k + 1 :]:
        if not line.startswith("    ") or line.lstrip().startswith("-"):
            break
        block.append(line)
    return " ".join(" ".join(block).split())


def _shown(default) -> str:
    """A default as the option takes it: a list comma-separated."""
    return ",".join(map(str, default)) if isinstance(default, tuple) else str(default)


@pytest.mark.parametrize(
    ("command", "option", "function", "parameter"),
    [
        ("histogram", "--seed", "histogram.run_histogram", "seed"),
        ("histogram", "--dtype", "histogram.run_histogram", "dtype"),
        ("histogram", "--bins", "histogram.run_histogram", "bins"),
        ("histogram", "--inits", "histogram.run_histogram", "inits"),
        ("mnist", "--dtype", "mnist.run_mnist", "dtype"),
        ("mnist", "--hidden", "mnist.run_mnist", "hidden"),
        ("mnist", "--lr", "mnist.run_mnist", "lr"),
        ("mnist", "--device", "mnist.run_mnist", "device"),
        ("planar", "--seed", "planar.run_planar", "seed"),
        ("planar", "--rng", "planar.run_planar", "rng"),
        ("symmetry", "--every", "symmetry.run_symmetry", "every"),
        ("symmetry", "--hidden", "symmetry.run_symmetry", "hidden"),
        ("depth", "--depths", "depth.run_depth", "depths"),
        ("depth", "--width", "depth.run_depth", "width"),
        ("depth", "--dtype", "depth.run_depth", "dtype"),
    ],
)  # fmt: skip
def test_help_states_the_default_the_experiment_runs_with(command, option, function, parameter,
                                                          capsys):  # fmt: skip
    # `fastinit histogram --help` did not say that --seed is 0, nor any --dtype its default
    import importlib
    import inspect

    module, name = function.split(".")
    run = getattr(importlib.import_module(f"fastinit.experiments.{module}"), name)
    default = inspect.signature(run).parameters[parameter].default
    assert f"(default: {_shown(default)})" in _help_of(_help(command, capsys), option)
    parsed = getattr(build_parser().parse_args([command]), option.lstrip("-").replace("-", "_"))
    assert parsed == default


@pytest.mark.parametrize(
    ("command", "option", "stated"),
    [
        ("histogram", "--seed", "--seed SEED seed of inputs and weights (default: 0)"),
        ("histogram", "--dtype", "(default: float64)"),
        ("mnist", "--dtype", "(default: float32)"),
        ("mnist", "--train-size", "(default: all 60000)"),
        ("depth", "--out", "(default: fastinit-results/depth)"),
        ("sweep", "--db", "(default: results.sqlite)"),
        ("sweep", "--workers", "(default: one per core;"),
        ("report", "--out", "(default: fastinit-results/report)"),
    ],
)
def test_help_shows_concrete_defaults(command, option, stated, capsys):
    assert stated in _help_of(_help(command, capsys), option)


@pytest.mark.parametrize(
    "command", ["histogram", "mnist", "planar", "symmetry", "depth", "sweep", "report"]
)
def test_help_states_no_empty_default(command, capsys):
    # None, off and nothing repeated are no defaults to state; each default is stated once
    text = _help(command, capsys)
    for empty in ("(default: None)", "(default: False)", "(default: [])", "==SUPPRESS=="):
        assert empty not in text
    options = re.findall(r"^  (--[a-z-]+)", text, flags=re.MULTILINE)
    assert len(options) >= 3
    for option in options:
        assert _help_of(text, option).count("default") <= 1, option


@pytest.mark.parametrize(
    ("command", "module"),
    [("histogram", "histogram"), ("mnist", "mnist"), ("planar", "planar"),
     ("symmetry", "symmetry"), ("depth", "depth")],
)  # fmt: skip
def test_default_lists_parse_to_the_experiments_defaults(command, module):
    import importlib

    defaults = importlib.import_module(f"fastinit.experiments.{module}")
    a = build_parser().parse_args([command])
    assert a.inits == tuple(defaults.DEFAULT_INITS)
    if hasattr(a, "activations"):
        assert a.activations == tuple(defaults.DEFAULT_ACTIVATIONS)


def test_planar_command_writes_its_files(tmp_path, capsys):
    w = dict(zip(("W1", "b1", "W2", "b2"), notebook_weights(0.3), strict=True))
    np.savez(tmp_path / "mine.npz", **w)
    out = tmp_path / "out"
    code = main(
        ["planar", "--iterations", "200", "--inits", "zeros,randn*0.01", "--add", "xavier",
         "--weights", str(tmp_path / "mine.npz"), "--out", str(out), "--quiet"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "randn*0.01" in printed and "mine" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["results"]) == {"zeros", "randn*0.01", "xavier", "mine"}
    assert summary["config"]["iterations"] == 200
    assert (out / "planar_boundaries.png").exists()


def test_a_warning_is_printed_as_the_commands_own_notice(tmp_path, capsys, monkeypatch):
    # a library warning printed as Python's: ".../fastinit/experiments/_common.py:1482:
    # RuntimeWarning: a run killed ..." and then the library's source line
    from fastinit.experiments import _common

    settled = []

    def settle(directory, ours=None):  # the first look settles it (kept: not seen again)
        if not settled:
            warnings.warn(f"a run killed while it moved its files into {directory} ...",
                          RuntimeWarning, stacklevel=2)  # fmt: skip
        settled.append(directory)

    monkeypatch.setattr(_common, "_settle_abandoned", settle)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        code = main(["planar", "--iterations", "3", "--inits", "zeros", "--out", str(out),
                     "--quiet"])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    expected = f"a run killed while it moved its files into {out} ..."
    assert err == f"fastinit planar: warning: {expected}\n", err
    settled.clear()
    with pytest.warns(RuntimeWarning, match="a run killed"):  # Python callers: a warning
        _common._settle_abandoned(out)


def test_histogram_command(tmp_path):
    code = main(
        ["histogram", "--layers", "2", "--width", "10", "--samples", "30",
         "--activations", "tanh", "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    assert (tmp_path / "activations_tanh.png").exists()


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["planar", "--inits", "nonsense", "--iterations", "5"], "init"),
        (["planar", "--lr", "-1", "--iterations", "5"], "lr"),
        (["mnist", "--iterations", "0"], "iterations"),
        (["histogram", "--activations", "relux"], "activation"),
        # too large for the memory: refused up front, one line, like the other bad values
        (["planar", "--inits", "zeros", "--iterations", str(10**14)], "error: --iterations: "),
        (["mnist", "--batch-size", str(10**8), "--iterations", "1"], "--batch-size: too large"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(argv, word, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(out), "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert word in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # created for the run, removed again


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["symmetry", "--hidden", "8,,8"], "--hidden"),
        (["mnist", "--hidden", "8,"], "--hidden"),
        (["planar", "--inits", "zeros,,he"], "--inits"),
        (["histogram", "--activations", "relu, ,tanh"], "--activations"),
    ],
)
def test_an_empty_list_entry_is_refused_not_dropped(argv, option, tmp_path, capsys):
    # 8,,8 ran a two-layer net: an empty entry is a typo, not a shorter list
    size = ["--iterations", "5"] if argv[0] != "histogram" else ["--samples", "8"]
    with pytest.raises(SystemExit) as e:
        main([*argv, *size, "--out", str(tmp_path / "out"), "--quiet"])
    assert e.value.code == 2
    assert f"error: {option}: empty entry in " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["planar", "--iterations", "5", "--out", ""], "--out"),
        (["histogram", "--samples", "8", "--out", ""], "--out"),
        (["report", "", "--out", "x"], "DB"),
        (["sweep", "spec.toml", "--db", "", "--dry-run"], "--db"),
    ],
)
def test_an_empty_path_is_refused_naming_its_option(argv, option, tmp_path, monkeypatch, capsys):
    # --out '' was Path('.'): the experiment wrote its figures into the working directory
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert f"error: {option}: expected a path, got ''" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_single_name_option_is_stripped_like_the_lists(tmp_path):
    # --activations ' relu' was stripped, --activation ' relu' refused as unknown
    args = build_parser().parse_args(["mnist", "--activation", " relu "])
    assert args.activation == "relu"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["mnist", "--activation", " "])


def test_mnist_seed_range_is_checked_before_training(tmp_path, capsys, monkeypatch):
    from fastinit.experiments import mnist

    def fit_many(*args, **kwargs):
        raise AssertionError("trained although the last seed is out of range")

    monkeypatch.setattr(mnist, "fit_many", fit_many)
    with pytest.raises(SystemExit) as e:
        main(["mnist", "--seed", str(2**64 - 1), "--seeds", "2", "--out", str(tmp_path), "--quiet"])
    assert e.value.code == 2
    assert "--seed, --seeds: seed + seeds - 1 must be < 2**64" in capsys.readouterr().err


_RUNS = {
    "histogram": "histogram.run_histogram",
    "mnist": "mnist.run_mnist",
    "planar": "planar.run_planar",
    "symmetry": "symmetry.run_symmetry",
    "depth": "depth.run_depth",
}
# parser defaults that deliberately differ from the function's: the command line writes its
# files to a directory of its own (the function writes none), and planar's --weights collects
# .npz paths where the function takes the arrays, as a dict
_CLI_OWN_DEFAULTS = {
    **{(command, "out"): Path("fastinit-results", command) for command in _RUNS},
    ("planar", "weights"): [],
}
# keywords that no option sets: --quiet sets progress; planar's m is its data set's size
_NO_OPTION = {"progress", "m"}


@pytest.mark.parametrize("command", list(_RUNS))
def test_every_default_is_the_experiment_functions_default(command):
    # the CLI restated each default (--layers 5, --lr 0.01, ...): two sources that could drift
    import importlib
    import inspect

    module, name = _RUNS[command].split(".")
    run = getattr(importlib.import_module(f"fastinit.experiments.{module}"), name)
    parameters = inspect.signature(run).parameters
    parsed = vars(build_parser().parse_args([command]))
    assert set(parameters) - set(parsed) <= _NO_OPTION, "a keyword without its option"
    for key in parameters.keys() & parsed.keys():
        value, default = parsed[key], parameters[key].default
        if (command, key) in _CLI_OWN_DEFAULTS:
            assert value == _CLI_OWN_DEFAULTS[command, key] and value != default, key
            continue
        assert value == default, f"--{key.replace('_', '-')}: {value!r} != {default!r}"
        assert type(value) is type(default), key  # a tuple stays a tuple, a float a float


def test_parser_rejects_malformed_lists():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["mnist", "--hidden", "100,x"])


def test_import_compiles_nothing(python_subprocess):
    out = python_subprocess(
        "import sys, fastinit\n"
        "print('numba' in sys.modules, 'fastinit.random' in sys.modules)\n"
        "import fastinit.init, fastinit.model, fastinit.train, fastinit.experiments.mnist\n"
        "from numba.core.registry import CPUDispatcher\n"
        "mods = [m for n, m in sys.modules.items() if n.startswith('fastinit')]\n"
        "compiled = [n for m in mods for n, f in vars(m).items()\n"
        "            if isinstance(f, CPUDispatcher) and f.signatures]\n"
        "print(compiled)\n"
    )
    first, second = out.splitlines()
    assert first == "False False"  # the package itself imports no numba at all
    assert second == "[]"  # and importing the kernel modules compiles nothing


# ----------------------------------------------------------------------------- audit fixes
def _interrupted(*args, **kwargs):
    from fastinit.train import History

    return History(np.array([0.69]), 1, 0.0, status="interrupted")


@pytest.mark.parametrize(
    "argv",
    [
        ["mnist", "--hidden", "8", "--train-size", "200", "--iterations", "5"],
        ["planar", "--iterations", "5"],
        ["symmetry", "--iterations", "10", "--every", "5"],
    ],
)
def test_ctrl_c_during_training_exits_130_writing_nothing(argv, tmp_path, monkeypatch, capsys):
    # fit catches Ctrl-C and returns an "interrupted" History; the command must stop there
    import fastinit.experiments.mnist as mnist_module
    from fastinit.model import MLP

    calls = []

    def fit(self, *args, **kwargs):
        calls.append(self)
        return _interrupted()

    monkeypatch.setattr(MLP, "fit", fit)
    monkeypatch.setattr(
        mnist_module, "fit_many", lambda models, *a, **k: [_interrupted() for _ in models]
    )
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out), "--quiet"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not out.exists()  # no result files, and the directory made for them is gone
    assert len(calls) <= 1  # planar and symmetry train nothing after the interrupted fit


@pytest.mark.parametrize(
    "argv",
    [
        ["planar", "--iterations", "5"],
        ["symmetry", "--iterations", "10", "--every", "5"],
        ["histogram", "--layers", "1", "--width", "4", "--samples", "5"],
        ["depth", "--depths", "2", "--width", "4", "--samples", "5"],
        ["report", "no-such.sqlite"],
    ],
)
def test_unwritable_out_is_a_clear_error_before_any_work(argv, tmp_path, monkeypatch, capsys):
    from fastinit.model import MLP

    def fit(*args, **kwargs):
        raise AssertionError("trained although --out is unusable")

    monkeypatch.setattr(MLP, "fit", fit)
    taken = tmp_path / "a-file"
    taken.write_text("not a directory")
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(taken)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--out" in err and str(taken) in err and "directory" in err
    assert "Traceback" not in err
    assert taken.read_text() == "not a directory"


def test_two_experiments_given_one_out_is_a_clear_error(tmp_path, capsys):
    main(["symmetry", "--iterations", "2", "--every", "1", "--out", str(tmp_path), "--quiet"])
    summary = (tmp_path / "summary.json").read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["planar", "--iterations", "2", "--out", str(tmp_path), "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastinit planar: error: --out {str(tmp_path)!r}: summary.json")
    assert "`fastinit symmetry`" in err and len(err.splitlines()) == 1
    assert (tmp_path / "summary.json").read_bytes() == summary


def test_a_reader_that_left_is_no_traceback(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    read_end, write_end = os.pipe()
    os.close(read_end)  # `fastinit ... | head` after head has exited: every write fails
    cmd = [sys.executable, "-m", "fastinit", "symmetry", "--iterations", "2", "--every", "1",
           "--out", str(tmp_path), "--quiet"]  # fmt: skip
    try:
        done = subprocess.run(cmd, stdout=write_end, stderr=subprocess.PIPE, cwd=ROOT,
                              timeout=600, text=True)  # fmt: skip
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 1
    assert (tmp_path / "summary.json").exists()  # the run's files are written all the same


def test_out_under_a_file_is_a_clear_error(tmp_path, capsys):
    taken = tmp_path / "a-file"
    taken.write_text("")
    with pytest.raises(SystemExit) as e:
        main(["symmetry", "--iterations", "10", "--every", "5", "--out", str(taken / "sub")])
    assert e.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch, tmp_path, capsys):
    import fastinit._cuda

    def no_gpu():
        raise RuntimeError("device='cuda' needs an NVIDIA GPU with its driver, and none was found")

    monkeypatch.setattr(fastinit._cuda, "cuda_module", no_gpu)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["mnist", "--device", "cuda", "--iterations", "5", "--out", str(out), "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--device" in err and "NVIDIA GPU" in err
    assert not out.exists()


def test_cuda_without_a_gpu_speaks_in_the_commands_options(monkeypatch, tmp_path, capsys):
    # the message said "Use device='cpu'", the Python argument, to a command-line user
    import fastinit._cuda

    def no_gpu():  # cuda_module's message, as it reads
        raise RuntimeError("device='cuda' needs an NVIDIA GPU with its driver, and none was "
                           "found. Use device='cpu', or set NUMBA_ENABLE_CUDASIM=1")  # fmt: skip

    monkeypatch.setattr(fastinit._cuda, "cuda_module", no_gpu)
    with pytest.raises(SystemExit):
        main(["mnist", "--device", "cuda", "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert "--device cuda needs an NVIDIA GPU" in err and "Use --device cpu, or" in err
    assert "device='" not in err


def _refused(argv, tmp_path, capsys):
    """Run ``fastinit *argv`` into ``tmp_path/out``, quiet; check it exits 2; its stderr."""
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path / "out"), "--quiet"])
    assert e.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["mnist", "--iterations", "20", "--add", "he"], "--add"),
        (["mnist", "--inits", "he,xavier,HE"], "--inits"),
        (["planar", "--add", "zeros"], "--add"),
        (["symmetry", "--add", "randn*0.5"], "--add"),
        (["histogram", "--inits", "he", "--add", "xavier", "--add", "xavier"], "--add"),
    ],
)
def test_duplicate_inits_are_refused_naming_the_option(argv, option, tmp_path, capsys):
    err = _refused(argv, tmp_path, capsys)
    assert option in err and "once" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mnist", "--inits", "std=0.01", "--add", "randn*0.01"],
         "--add: 'randn*0.01' draws the same weights as 'std=0.01' of --inits"),
        (["histogram", "--inits", "he", "--add", "std=1e-2", "--add", "std=0.01"],
         "--add: 'std=0.01' draws the same weights as 'std=1e-2' of --add"),
        (["planar", "--add", "std=0"],
         "--add: 'std=0' draws the same weights as 'zeros' of --inits"),
        (["symmetry", "--inits", "zeros,constant=0"],
         "--inits: 'constant=0' draws the same weights as 'zeros' of --inits"),
        (["planar", "--inits", "zeros", "--add", "ZEROS"], "--add: 'ZEROS' is already in --inits"),
        (["planar", "--add", "nonsense"], "--add: unknown init 'nonsense'"),
        (["histogram", "--inits", "zeros", "--add", "lsuv"], "--add: 'lsuv' is data-dependent"),
        (["depth", "--add", "LSUV"], "--add: 'LSUV' is data-dependent"),
        (["depth", "--inits", "he", "--add", "HE"], "--add: 'HE' is already in --inits"),
    ],
)  # fmt: skip
def test_a_repeated_or_unknown_added_init_is_an_error_naming_its_option(argv, message, tmp_path,
                                                                        capsys):  # fmt: skip
    # --add randn*0.01 beside --inits std=0.01 was reported as "inits: ... is given twice"
    err = _refused(argv, tmp_path, capsys)
    assert err.startswith(f"fastinit {argv[0]}: error: {message}"), err
    assert "once" in err or "unknown" in err or "data-dependent" in err
    assert not (tmp_path / "out").exists()


def test_planar_runs_the_notebooks_randn_beside_fastinits_normal(tmp_path, capsys):
    # two generators, two draws: refused as "'normal' draws the same weights as 'randn'"
    argv = ["planar", "--inits", "randn,normal", "--iterations", "2", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    assert "normal" in capsys.readouterr().out
    err = _refused([*argv[:-1], "--rng", "fastinit"], tmp_path, capsys)
    assert "--inits: 'normal' draws the same weights as 'randn' of --inits" in err


def test_planar_weights_named_like_an_init_are_refused(tmp_path, capsys):
    w = dict(zip(("W1", "b1", "W2", "b2"), notebook_weights(0.3), strict=True))
    np.savez(tmp_path / "zeros.npz", **w)
    with pytest.raises(SystemExit) as e:
        main(["planar", "--weights", str(tmp_path / "zeros.npz"), "--iterations", "5",
              "--out", str(tmp_path / "out"), "--quiet"])  # fmt: skip
    assert e.value.code == 2
    assert "--weights" in capsys.readouterr().err


def test_two_weights_files_with_one_name_are_refused(tmp_path, capsys):
    # a/mine.npz and b/mine.npz ran as one run 'mine', b's weights silently replacing a's
    for sub, scale in (("a", 0.3), ("b", 0.7)):
        (tmp_path / sub).mkdir()
        w = dict(zip(("W1", "b1", "W2", "b2"), notebook_weights(scale), strict=True))
        np.savez(tmp_path / sub / "mine.npz", **w)
    with pytest.raises(SystemExit) as e:
        main(["planar", "--inits", "he", "--weights", str(tmp_path / "a" / "mine.npz"),
              "--weights", str(tmp_path / "b" / "mine.npz"), "--iterations", "2",
              "--out", str(tmp_path / "out"), "--quiet"])  # fmt: skip
    assert e.value.code == 2
    assert "--weights: two files are named 'mine'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_mnist_diverged_runs_write_valid_json_without_warnings(tmp_path, capsys):
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. numpy's "Mean of empty slice"
        code = main(
            ["mnist", "--inits", "he,xavier", "--hidden", "32,32", "--lr", "1000",
             "--iterations", "50", "--train-size", "300", "--out", str(out), "--quiet"]
        )  # fmt: skip
    assert code == 0
    assert "nan" not in capsys.readouterr().out.lower()

    def bad_constant(name):
        raise ValueError(f"summary.json holds {name}, which is not JSON")

    summary = json.loads((out / "summary.json").read_text(), parse_constant=bad_constant)
    results = summary["results"]
    # at lr 1000 one of the two diverges (xavier, with these batches) and the other does not
    status = {name: results[name]["per_seed"]["status"] for name in ("he", "xavier")}
    assert sorted(status.values()) == [["diverged"], ["ok"]], status
    diverged = next(results[n] for n, s in status.items() if s == ["diverged"])
    finished = next(results[n] for n, s in status.items() if s == ["ok"])
    assert diverged["final_loss"] is None and diverged["per_seed"]["final_loss"] == [None]
    assert diverged["final_loss_std"] is None and diverged["final_loss_count"] == 0
    assert finished["final_loss"] > 0
    assert summary["iterations_per_second"] > 0


@pytest.mark.parametrize("content", [b"", b"not a zip archive", b"W1 = 1, 2\n", b"\x93NUMPY"])
def test_unreadable_weights_file_is_a_one_line_error(tmp_path, capsys, content):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    with pytest.raises(SystemExit) as e:
        main(["planar", "--weights", str(bad), "--iterations", "5",
              "--out", str(tmp_path / "out"), "--quiet"])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--weights" in err
    assert "pickle" not in err  # np.load's advice to unpickle a text file, not the problem


def test_weights_file_missing_an_array_names_it(tmp_path, capsys):
    path = tmp_path / "w.npz"
    np.savez(path, W1=np.zeros((4, 2)), b1=np.zeros((4, 1)), W2=np.zeros((1, 4)))
    with pytest.raises(SystemExit) as e:
        main(["planar", "--weights", str(path), "--iterations", "5",
              "--out", str(tmp_path / "out"), "--quiet"])  # fmt: skip
    assert e.value.code == 2
    assert "b2 missing" in capsys.readouterr().err


def test_missing_mnist_directory_from_the_environment_is_a_one_line_error(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("FASTINIT_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit) as e:
        main(["mnist", "--iterations", "5", "--out", str(tmp_path / "out"), "--quiet"])
    assert e.value.code == 2
    assert "FASTINIT_MNIST_DIR" in capsys.readouterr().err


def test_sweep_db_under_a_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    spec = tmp_path / "spec.toml"
    spec.write_text('experiment = "planar"\n[fixed]\niterations = 5\n')
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(spec), "--db", str(tmp_path / "afile" / "x.sqlite")])
    assert e.value.code == 2
    assert "db" in capsys.readouterr().err


# ----------------------------------------------------------------------------- audit 3 fixes
def _ctrl_c_in_fit(monkeypatch):
    from fastinit.model import MLP

    monkeypatch.setattr(MLP, "fit", _interrupted)


def test_ctrl_c_says_that_nothing_was_written_and_the_new_directory_is_gone(
    tmp_path, monkeypatch, capsys
):
    _ctrl_c_in_fit(monkeypatch)
    out = tmp_path / "new" / "out"
    assert main(["planar", "--iterations", "5", "--out", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("fastinit planar: interrupted; nothing written")
    assert f"{str(out)!r}" in err and "removed" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_more_ctrl_c_while_the_command_stops_change_nothing(
    tmp_path, monkeypatch, capsys, sigint_default
):
    # a third press while the directories made for the run were removed was a traceback
    import signal

    from fastinit.experiments import _common

    _ctrl_c_in_fit(monkeypatch)
    remove_empty = _common.remove_empty

    def pressed_again(directories):
        signal.raise_signal(signal.SIGINT)
        remove_empty(directories)

    monkeypatch.setattr(_common, "remove_empty", pressed_again)
    out = tmp_path / "new" / "out"
    assert main(["planar", "--iterations", "5", "--out", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("fastinit planar: interrupted; nothing written") and "removed" in err
    assert not (tmp_path / "new").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_ctrl_c_keeps_an_earlier_runs_files_and_says_so(tmp_path, monkeypatch, capsys):
    assert main(["planar", "--iterations", "3", "--out", str(tmp_path), "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    capsys.readouterr()
    _ctrl_c_in_fit(monkeypatch)
    assert main(["planar", "--iterations", "5", "--out", str(tmp_path), "--quiet"]) == 130
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("fastinit planar: interrupted; nothing written")
    assert f"{str(tmp_path)!r} keeps the earlier `fastinit planar` run's files" in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_ctrl_c_while_the_files_are_renamed_writes_them_all_and_says_so(
    tmp_path, monkeypatch, capsys, sigint_default
):
    import signal
    from pathlib import Path

    assert main(["symmetry", "--iterations", "2", "--every", "1", "--out", str(tmp_path),
                 "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    replace = os.replace
    calls = []

    def replace_then_ctrl_c(src, dst, *args, **kwargs):
        if ".writing-" in str(src) and ".writing-" not in str(dst):  # moved into place
            calls.append(Path(dst).name)
            if len(calls) == 2:
                signal.raise_signal(signal.SIGINT)
        return replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace_then_ctrl_c)
    code = main(["symmetry", "--iterations", "3", "--every", "1", "--out", str(tmp_path),
                 "--quiet"])  # fmt: skip
    monkeypatch.undo()
    assert code == 130 and len(calls) >= 3
    err = capsys.readouterr().err.splitlines()[-1]
    written = f"its files were written to {str(tmp_path)!r} all the same"
    assert err == f"fastinit symmetry: interrupted; {written}"
    assert json.loads((tmp_path / "summary.json").read_text())["config"]["iterations"] == 3
    with (tmp_path / "spread.csv").open() as f:
        assert f.read().splitlines()[-1].startswith("3,")  # the new run's, like summary.json


def test_ctrl_c_in_a_sweep_says_where_the_finished_runs_are(tmp_path, monkeypatch, capsys):
    import fastinit.sweep.execute

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fastinit.sweep.execute, "run_sweep", ctrl_c)
    spec = tmp_path / "spec.toml"
    spec.write_text('experiment = "planar"\n[fixed]\niterations = 5\n')
    db = tmp_path / "runs.sqlite"
    assert main(["sweep", str(spec), "--db", str(db), "--workers", "0", "--quiet"]) == 130
    err = capsys.readouterr().err
    assert f"the runs finished so far are in {str(db)!r}" in err and "again" in err


def test_a_rerun_into_the_same_out_says_it_replaces_the_earlier_files(tmp_path, capsys):
    argv = ["symmetry", "--iterations", "2", "--every", "1", "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""  # a new directory: nothing to say
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"{str(tmp_path)!r} holds an earlier run's files" in err
    assert "Ctrl-C before then keeps them" in err


def test_planar_weights_for_another_hidden_size_name_the_file_and_the_array(tmp_path, capsys):
    wide = {"W1": np.zeros((2, 5)), "b1": np.zeros(5), "W2": np.zeros((5, 1)), "b2": np.zeros(1)}
    np.savez(tmp_path / "wide.npz", **wide)
    argv = ["planar", "--weights", str(tmp_path / "wide.npz"), "--iterations", "2", "--quiet"]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path / "out")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"--weights {tmp_path / 'wide.npz'}: W1: expected shape (2, 4)" in err
    assert "(--hidden is 4)" in err and len(err.splitlines()) == 1
    assert main([*argv, "--hidden", "5", "--out", str(tmp_path / "out")]) == 0


def test_planar_weights_with_nan_say_so_without_blaming_hidden(tmp_path, capsys):
    bad = {"W1": np.full((2, 4), np.nan), "b1": np.zeros(4), "W2": np.zeros((4, 1)),
           "b2": np.zeros(1)}  # fmt: skip
    np.savez(tmp_path / "nan.npz", **bad)
    argv = ["planar", "--weights", str(tmp_path / "nan.npz"), "--iterations", "2", "--quiet"]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path / "out")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "W1: expected finite values" in err and "--hidden" not in err


@pytest.mark.parametrize(
    ("command", "module", "function", "sizes"),
    [("histogram", "histogram", "run_histogram", "--layers, --width, --samples or --bins"),
     ("depth", "depth", "run_depth", "--depths, --width or --samples"),
     ("mnist", "mnist", "run_mnist", "--hidden, --batch-size, --train-size or --iterations")],
)  # fmt: skip
def test_an_allocation_that_fails_names_the_options_that_size_the_run(
    tmp_path, capsys, monkeypatch, command, module, function, sizes
):
    import functools
    import importlib

    experiment = importlib.import_module(f"fastinit.experiments.{module}")

    @functools.wraps(getattr(experiment, function))  # its signature: the parser's defaults
    def too_large(*args, **kwargs):  # NumPy's words: no option named
        raise MemoryError("Unable to allocate 74.5 GiB for an array with shape (100000, 100000)")

    monkeypatch.setattr(experiment, function, too_large)
    with pytest.raises(SystemExit) as e:
        main([command, "--out", str(tmp_path / "out"), "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Unable to allocate 74.5 GiB" in err and f"reduce {sizes}" in err, err
    assert not (tmp_path / "out").exists()


def test_fits_own_memory_error_gets_no_second_advice(tmp_path, capsys, monkeypatch):
    import fastinit.experiments.mnist

    # the estimate up front would refuse it first (its own test above): fit's error here
    monkeypatch.setattr(fastinit.experiments.mnist, "check_memory", lambda *a, **k: None)
    with pytest.raises(SystemExit) as e:  # fit's own MemoryError names what to reduce
        main(["mnist", "--batch-size", "100000000", "--iterations", "2", "--train-size", "300",
              "--out", str(tmp_path / "out"), "--quiet"])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "batch_size" in err and "reduce --" not in err, err


# ----------------------------------------------------------------------------- audit 4 fixes
def test_ctrl_c_while_the_command_line_loads_is_no_traceback(monkeypatch, capsys):
    # the console script imported fastinit.cli (argparse, secrets, ...) outside any guard
    import builtins
    import sys

    from fastinit.__main__ import run

    real = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "fastinit.cli":
            raise KeyboardInterrupt
        return real(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "fastinit.cli")
    monkeypatch.setattr(builtins, "__import__", interrupted)
    with pytest.raises(SystemExit) as e:
        run()
    assert e.value.code == 130
    assert capsys.readouterr().err == "fastinit: interrupted; nothing written\n"


@pytest.mark.parametrize("status", [0, 2])
def test_a_ctrl_c_after_the_command_returned_cannot_change_its_status(monkeypatch, status):
    # a Ctrl-C during Python's shutdown, after a run had written its files and said so,
    # killed the process by SIGINT: a script checking $? saw a finished run fail
    import signal

    import fastinit.cli
    from fastinit.__main__ import run

    monkeypatch.setattr(fastinit.cli, "main", lambda: status)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as e:
            run()
        assert e.value.code == status
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_ctrl_c_while_the_command_starts_is_no_traceback(monkeypatch, capsys):
    import fastinit.cli

    def ctrl_c():  # the imports and the parser take a second on a busy host
        raise KeyboardInterrupt

    monkeypatch.setattr(fastinit.cli, "build_parser", ctrl_c)
    assert main(["mnist"]) == 130
    assert capsys.readouterr().err == "fastinit: interrupted; nothing written\n"


def test_ctrl_c_while_the_table_is_printed_says_the_files_were_written(
    tmp_path, monkeypatch, capsys
):
    from fastinit.experiments.symmetry import SymmetryResult

    def ctrl_c(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(SymmetryResult, "table", ctrl_c)
    argv = ["symmetry", "--iterations", "2", "--every", "1", "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err == (
        f"fastinit symmetry: interrupted; its files were written to {str(tmp_path)!r} "
        "all the same\n"
    )
    assert (tmp_path / "summary.json").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["symmetry", "--lr", "0"],
        ["depth", "--width", "0"],
        ["mnist", "--add", "he"],
        ["histogram", "--bins", "0"],
        ["planar", "--seed", "-1"],
    ],
)
def test_bad_arguments_into_an_earlier_runs_out_say_nothing_of_replacing(argv, tmp_path, capsys):
    from fastinit.experiments._common import LISTING

    (tmp_path / LISTING.format(argv[0])).write_text('["summary.json"]\n')  # an earlier run
    (tmp_path / "summary.json").write_text("{}\n")
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path), "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "replaces them" not in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize(
    ("argv", "start"),
    [
        (["mnist", "--batch-size", "0"], "--batch-size: expected an integer in [1, inf], got 0"),
        (["mnist", "--train-size", "70000"], "--train-size: expected an integer in [1, 60000]"),
        (["mnist", "--activation", "foo"], "--activation: expected one of"),
        (
            ["histogram", "--activations", "relu,ReLU"],
            "--activations: 'ReLU' is given twice (also as 'relu')",
        ),
        (["histogram", "--layers", "0"], "--layers: expected an integer in [1, inf], got 0"),
        (["planar", "--lr", "nan"], "--lr: expected a finite number, got nan"),
        (["symmetry", "--every", "0"], "--every: expected an integer"),
        (["depth", "--samples", "0"], "--samples: expected an integer"),
        (["mnist", "--seed", str(2**64 - 1), "--seeds", "2"], "--seed, --seeds: seed + seeds - 1"),
    ],
)
def test_a_bad_value_is_named_by_its_option(argv, start, tmp_path, capsys):
    err = _refused(argv, tmp_path, capsys)
    assert err.startswith(f"fastinit {argv[0]}: error: {start}"), err


def test_the_parsed_arguments_map_parameters_to_their_options_as_plain_data():
    # each Namespace held the subcommand parser's bound format_usage (not picklable), and
    # names were matched against its usage text by a regex
    import pickle

    from fastinit.cli import build_parser

    args = pickle.loads(pickle.dumps(build_parser().parse_args(["mnist"])))
    assert args.option_of["batch_size"] == "--batch-size" and "help" not in args.option_of
    assert build_parser().parse_args(["planar"]).option_of["weights"] == "--weights"
    assert "batch_size" not in build_parser().parse_args(["planar"]).option_of


@pytest.mark.parametrize(("command", "lsuv"), [("mnist", True), ("planar", True),
                                               ("symmetry", True), ("histogram", False),
                                               ("depth", False)])  # fmt: skip
def test_the_add_help_names_lsuv_where_the_command_takes_it(command, lsuv, capsys):
    assert ("'lsuv'" in _help_of(_help(command, capsys), "--add")) == lsuv


def test_an_lsuv_refusal_names_every_experiment_that_takes_it(capsys):
    # depth's refusal sent users to "the mnist and planar experiments": symmetry takes it too
    taking = [c for c in ("mnist", "planar", "symmetry", "histogram", "depth")
              if "'lsuv'" in _help_of(_help(c, capsys), "--add")]  # fmt: skip
    with pytest.raises(SystemExit):
        main(["depth", "--add", "lsuv", "--quiet"])
    err = capsys.readouterr().err
    named = re.search(r"experiments that train \(([^)]*)\)", err)
    assert named is not None, err
    assert named.group(1).split(", ") == taking


# ----------------------------------------------------------------------------- audit 5 fixes
@pytest.mark.parametrize(
    ("argv", "start"),
    [(["histogram", "--layers", "100000000"], "--layers, --width, --samples: too large"),
     (["histogram", "--bins", "10000000000"], "--layers, --bins: too large"),
     (["depth", "--depths", "100000000"], "--depths, --width, --samples: too large"),
     (["depth", "--width", "10000000"], "--depths, --width: too large"),
     (["depth", "--seeds", "1000000000000"], "--depths, --seeds: too large"),
     (["symmetry", "--hidden", "100000000"], "--hidden: too large"),
     (["symmetry", "--iterations", "1000000000000"], "--iterations: too large"),
     (["planar", "--hidden", "10000000000"], "--hidden: too large"),
     (["mnist", "--seeds", "1000000000000"], "--iterations, --seeds: too large")],
)  # fmt: skip
def test_a_run_too_large_for_the_memory_is_refused_up_front_naming_its_options(
    argv, start, tmp_path, capsys
):
    # these ran until the memory ran out (or for ever), or failed after their work
    err = _refused(argv, tmp_path, capsys)
    assert err.startswith(f"fastinit {argv[0]}: error: {start} for this machine's memory"), err
    assert "needs about" in err and "reduce --" not in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["depth", "--depths", "5,5"], "--depths: 5 is given twice; give each depth once"),
     (["depth", "--depths", "10,3,10"], "--depths: 10 is given twice; give each depth once"),
     (["histogram", "--inits", "std=nan"],
      "--inits: std must be a finite number >= 0, got nan (in 'std=nan')"),
     (["planar", "--add", "randn*nan"],
      "--add: std must be a finite number >= 0, got nan (in 'randn*nan')"),
     (["depth", "--inits", "he,std=inf"],
      "--inits: std must be a finite number >= 0, got inf (in 'std=inf')"),
     (["mnist", "--inits", "std=-1"],
      "--inits: std must be a finite number >= 0, got -1 (in 'std=-1')"),
     (["symmetry", "--inits", "constant=nan"],
      "--inits: constant must be a finite number, got nan (in 'constant=nan')"),
     (["symmetry", "--hidden", "8,1"],
      "--hidden: expected at least 2 units in each hidden layer (the experiment compares "
      "a layer's units with each other), got 1 in layer 1")],
)  # fmt: skip
def test_a_repeated_depth_or_a_bad_init_value_is_an_error_naming_its_option(
    argv, message, tmp_path, capsys
):
    # --depths 5,5 measured depth 5 once, silently; std=nan was an "unknown init"
    err = _refused(argv, tmp_path, capsys)
    assert err == f"fastinit {argv[0]}: error: {message}\n", err
    assert not (tmp_path / "out").exists()


def test_symmetry_help_says_what_an_every_above_the_iterations_does(capsys):
    text = _help_of(_help("symmetry", capsys), "--every")
    assert "--iterations" in text and "start and the end" in text, text


def _ascii_stdout(monkeypatch, errors: str):
    """Standard output in ASCII (``PYTHONIOENCODING=ascii``: ``strict``; the C locale without
    UTF-8 mode: ``surrogateescape``): its bytes, and the stream."""
    import io
    import sys

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", errors=errors)
    monkeypatch.setattr(sys, "stdout", stream)
    return raw, stream


@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])
def test_an_ascii_stdout_gets_the_table_with_plus_minus(errors, tmp_path, monkeypatch):
    # the tables over seeds (mnist --seeds 2, report) show mean ± std: an ASCII stdout
    # raised UnicodeEncodeError after the files were written, a traceback and exit status 1
    from fastinit.experiments.symmetry import SymmetryResult

    monkeypatch.setattr(SymmetryResult, "table", lambda self: "loss\n0.5 ± 0.1")
    raw, stream = _ascii_stdout(monkeypatch, errors)
    out = tmp_path / "r\udce9"  # the byte 0xe9 of a name the C locale cannot decode
    argv = ["symmetry", "--iterations", "2", "--every", "1", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    stream.flush()
    assert raw.getvalue().startswith(b"loss\n0.5 +- 0.1\n") and b"r\xe9/" in raw.getvalue()
    assert stream.errors == errors and (out / "summary.json").exists()


def test_an_ascii_stdout_gets_every_help(monkeypatch):
    # `fastinit report --help` (its description speaks of mean ± std) was a traceback
    raw, stream = _ascii_stdout(monkeypatch, "strict")
    with pytest.raises(SystemExit) as e:
        main(["report", "--help"])
    assert e.value.code == 0
    stream.flush()
    assert b"+-" in raw.getvalue() and stream.errors == "strict"


# ----------------------------------------------------------------------------- audit (cli)
@pytest.mark.parametrize(
    ("argv", "start", "words"),
    [(["mnist", "--lr", "1e300", "--dtype", "float32", "--train-size", "200"], "--lr: ",
      ("1e+300", "float32", "infinity")),
     (["planar", "--lr", "1e-50", "--dtype", "float32"], "--lr: ", ("1e-50", "float32", "0")),
     (["symmetry", "--lr", "1e39", "--dtype", "float32"], "--lr: ", ("1e+39", "float32")),
     (["planar", "--inits", "std=1e300", "--dtype", "float32"], "--inits: 'std=1e300'",
      ("float32",)),
     (["histogram", "--add", "constant=1e39", "--dtype", "float32"], "--add: 'constant=1e39'",
      ("float32", "1e+39")),
     (["mnist", "--inits", "he", "--add", "randn*1e308", "--train-size", "200"],
      "--add: 'randn*1e308'", ("float32",)),
     (["depth", "--add", "std=1e300", "--dtype", "float32", "--depths", "2"],
      "--add: 'std=1e300'", ("float32",))],
)  # fmt: skip
def test_a_value_beyond_the_dtype_range_is_named_by_its_option(argv, start, words, tmp_path,
                                                               capsys):  # fmt: skip
    # `--lr 1e300 --dtype float32` was refused as "optimizer: lr=1e+300 ...", std=1e300 as
    # "mean, std: |mean| + 9 std: ...": neither named the option, nor the init
    size = {"histogram": ["--samples", "8", "--layers", "2"], "depth": ["--samples", "8"]}.get(
        argv[0], ["--iterations", "2"]
    )
    err = _refused([*argv, *size], tmp_path, capsys)
    assert err.startswith(f"fastinit {argv[0]}: error: {start}"), err
    assert all(word in err for word in words) and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_planar_weights_beyond_float32_name_the_file(tmp_path, capsys):
    # named "weights['big']: W1: ..." (the run's internal name), not the option and file
    big = {"W1": np.full((2, 4), 1e300), "b1": np.zeros(4), "W2": np.zeros((4, 1)),
           "b2": np.zeros(1)}  # fmt: skip
    np.savez(tmp_path / "big.npz", **big)
    argv = ["planar", "--weights", str(tmp_path / "big.npz"), "--dtype", "float32"]
    err = _refused([*argv, "--iterations", "2"], tmp_path, capsys)
    expected = f"--weights {tmp_path / 'big.npz'}: W1: expected values within the float32 range"
    assert err.startswith(f"fastinit planar: error: {expected}"), err
    assert "--hidden" not in err and not (tmp_path / "out").exists()


def test_sigterm_is_handled_as_ctrl_c_exiting_143(tmp_path):
    # `timeout` / `kill` ended the process at once: the --out made for the run stayed
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    out = tmp_path / "new" / "out"
    cmd = [sys.executable, "-m", "fastinit", "planar", "--inits", "zeros", "--iterations",
           str(10**6), "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not out.is_dir() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert out.is_dir(), "no --out made"
        # then the first progress line (10%, about a second): training, past numba's
        # compilation, which a signal can crash in llvmlite (a Ctrl-C as well)
        first = proc.stderr.readline()
        assert first.startswith("fit ") and proc.poll() is None, first
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    last = err.splitlines()[-1]
    assert last.startswith("fastinit planar: terminated; nothing written") and "removed" in last
    assert "Traceback" not in err and not (tmp_path / "new").exists()


def test_an_experiment_started_beside_another_running_in_its_out_is_refused_before_computing(
    tmp_path, monkeypatch, capsys
):
    # both passed the early check (neither had written yet): the second computed its whole
    # run, then was refused as it committed ("... summary.json there is the output of")
    import subprocess
    import sys
    import time

    from fastinit.model import MLP
    from tests.conftest import ROOT

    out = tmp_path / "shared"
    cmd = [sys.executable, "-m", "fastinit", "planar", "--inits", "zeros", "--iterations",
           str(10**8), "--out", str(out), "--quiet"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(".fastinit-planar-*")) and time.monotonic() < deadline:
            assert proc.poll() is None, "planar ended"
            time.sleep(0.01)

        def fit(*args, **kwargs):
            raise AssertionError("computed beside a running planar, to be refused at the end")

        monkeypatch.setattr(MLP, "fit", fit)
        with pytest.raises(SystemExit) as e:
            main(["symmetry", "--iterations", "2", "--out", str(out), "--quiet"])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(
            f"fastinit symmetry: error: --out {str(out)!r}: `fastinit planar` is writing there now"
        ), err
        assert not (out / "summary.json").exists()
    finally:
        proc.kill()
        proc.wait()
    monkeypatch.undo()  # planar killed (SIGKILL): its claim went with it
    argv = ["symmetry", "--iterations", "2", "--every", "1", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    assert (out / "summary.json").exists()
    assert not [p.name for p in out.iterdir() if "running" in p.name]


def test_a_run_refused_as_it_commits_names_out_as_the_option_and_says_nothing_was_written(
    tmp_path, monkeypatch, capsys
):
    # where no claim can be held (no flock), another command's summary.json may appear
    # while this one computes: it is refused at the end, and said "out '...'" as if
    # --out were no option, and not that its results were not written
    from fastinit.experiments import _common

    out = tmp_path / "out"
    real = _common.commit_all

    def another_command_wrote_meanwhile(outputs):
        if outputs[0].owner == "symmetry":
            with _common.Output(out, "planar") as other:
                other.text("summary.json", "{}")
        real(outputs)

    monkeypatch.setattr(_common, "commit_all", another_command_wrote_meanwhile)
    with pytest.raises(SystemExit) as e:
        main(["symmetry", "--iterations", "2", "--every", "1", "--out", str(out), "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastinit symmetry: error: --out {str(out)!r}: summary.json there "), err
    assert "this run's files were not written" in err, err


def test_a_full_disk_says_what_out_still_holds(tmp_path, monkeypatch, capsys):
    # "[Errno 28] No space left on device: '.../planar_boundaries.png'" and nothing more:
    # the earlier run's files were kept, as after a Ctrl-C, but the message did not say so
    from fastinit.experiments._common import Output

    out = tmp_path / "out"
    argv = ["planar", "--inits", "zeros", "--iterations", "2", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(self, name, fig):
        raise OSError(28, "No space left on device", str(self.path(name)))

    monkeypatch.setattr(Output, "figure", full)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("fastinit planar: error: [Errno 28] No space left on device"), err
    assert err.endswith(
        f"nothing written: the results computed so far are discarded; {str(out)!r} keeps the "
        "earlier `fastinit planar` run's files"
    ), err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_ctrl_c_as_out_is_made_removes_it(tmp_path, monkeypatch, capsys, ctrl_c_after):
    # a Ctrl-C (or SIGTERM) right after --out was made, before the command knew it had
    # made it, left it behind ("... is as it was")
    from fastinit.experiments import _common

    monkeypatch.setattr(_common, "prepare_output", ctrl_c_after(_common.prepare_output))
    out = tmp_path / "new" / "out"
    assert main(["planar", "--iterations", "2", "--out", str(out), "--quiet"]) == 130
    assert "is removed again" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_the_sigterm_handler_is_set_only_while_main_runs(tmp_path, monkeypatch):
    import signal
    import threading

    from fastinit.model import MLP

    before = signal.getsignal(signal.SIGTERM)
    during = []

    def fit(self, *args, **kwargs):
        during.append(signal.getsignal(signal.SIGTERM))
        return _interrupted()

    monkeypatch.setattr(MLP, "fit", fit)
    argv = ["planar", "--inits", "zeros", "--iterations", "2", "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 130  # a Ctrl-C keeps its status
    assert during and during[0] is not before and signal.getsignal(signal.SIGTERM) is before
    codes = []  # outside the main thread no handler can be set: the command runs as it is
    worker = threading.Thread(target=lambda: codes.append(main(argv)))
    worker.start()
    worker.join()
    assert codes == [130] and signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("on_ctrl_c", ["ignored", "python", "own"])
def test_a_sigterm_inside_a_held_block_stops_the_command_after_the_block(on_ctrl_c):
    # with SIGINT ignored (`fastinit sweep ... &` in a script) a SIGTERM raised
    # KeyboardInterrupt inside the block (a commit, files moved into place) and an
    # embedding program's own SIGINT handler swallowed it: the command went on
    import signal

    from fastinit._files import deferred_interrupt, terminate_as_interrupt

    caught = []
    handler = {"ignored": signal.SIG_IGN, "python": signal.default_int_handler,
               "own": lambda signum, frame: caught.append(signum)}[on_ctrl_c]  # fmt: skip
    previous = signal.signal(signal.SIGINT, handler)
    steps = []
    try:
        with terminate_as_interrupt() as terminated, pytest.raises(KeyboardInterrupt):
            with deferred_interrupt():
                signal.raise_signal(signal.SIGTERM)
                steps.append("the block ran to its end")
            steps.append("went on after the block")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert steps == ["the block ran to its end"] and terminated == [signal.SIGTERM]
    assert caught == []  # a SIGTERM is not the program's Ctrl-C


@pytest.mark.parametrize("value", ["0", "-2"])
def test_a_numba_thread_count_below_one_is_an_error_naming_it(value, tmp_path, monkeypatch,
                                                              capsys):  # fmt: skip
    # numba's import raised "ValueError: Number of threads specified must be > 0." with a
    # traceback through fastinit's imports
    monkeypatch.setenv("NUMBA_NUM_THREADS", value)
    argv = ["planar", "--inits", "zeros", "--iterations", "2", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"fastinit: error: NUMBA_NUM_THREADS: expected an integer in [1, inf], got {value}\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["histogram", "mnist", "planar", "symmetry", "depth",
                                     "sweep", "report"])  # fmt: skip
def test_help_shows_no_docstring_markup(command, capsys):
    # the descriptions are module docstrings: ":func:`fastinit.train.fit_many`", "``x``"
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert not re.search(r":(func|mod|class|meth|data|attr):`|``", text), text
    if command == "mnist":
        assert "fastinit.train.fit_many" in text and "summary.json" in text  # kept, plain


def test_an_option_the_command_lacks_is_refused_by_that_command(capsys):
    # the top-level parser said "fastinit: error: unrecognized arguments", naming neither the
    # command nor its options
    with pytest.raises(SystemExit) as e:
        main(["planar", "--train-size", "500"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "fastinit planar: error: unrecognized arguments: --train-size 500" in err, err
    assert "usage: fastinit planar" in err, err


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["planar", "--iterations", "abc"],
            "fastinit planar: error: --iterations: expected an integer, got 'abc'",
        ),
        (["mnist", "--lr", "fast"], "fastinit mnist: error: --lr: expected a number, got 'fast'"),
        (
            ["mnist", "--seed", "1.5"],
            "fastinit mnist: error: --seed: expected an integer, got '1.5'",
        ),
        (
            ["mnist", "--hidden", "0"],
            "fastinit mnist: error: --hidden: expected positive integers, got '0'",
        ),
        (
            ["sweep", "--workers", "-1"],
            "fastinit sweep: error: --workers: expected an integer >= 0, got '-1'",
        ),
        (["depth", "--width", "x"], "fastinit depth: error: --width: expected an integer, got 'x'"),
        (
            ["histogram", "--dtype", "float16"],
            "fastinit histogram: error: --dtype: invalid choice: 'float16'",
        ),
        (["planar", "--iterations"], "fastinit planar: error: --iterations: expected one argument"),
        (["nonsense"], "fastinit: error: COMMAND: invalid choice: 'nonsense'"),
    ],
)
def test_a_bad_option_value_is_one_line_as_the_experiments_checks_are(argv, line, capsys):
    # argparse printed its usage (5-7 lines) and "argument --iterations: invalid int value:
    # 'abc'", where fastinit's own checks print "fastinit depth: error: --width: expected an
    # integer in [1, inf], got 0": one line, the option first
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1, err


def test_a_missing_or_unknown_argument_still_shows_the_usage(capsys):
    # what the command takes is the help here: no option's value is at fault
    with pytest.raises(SystemExit) as e:
        main(["report"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: fastinit report") and "required: DB" in err, err


def test_the_report_names_its_database_as_the_usage_does(tmp_path, capsys):
    # it said "db: ... does not exist" where the usage says DB and sweep's errors say --db
    missing = tmp_path / "none.sqlite"
    with pytest.raises(SystemExit) as e:
        main(["report", str(missing), "--out", str(tmp_path / "out")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastinit report: error: DB: {missing} does not exist"), err
