"""The fastinit command line."""

import json

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
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(argv, word, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path), "--quiet"])
    assert e.value.code == 2
    assert word in capsys.readouterr().err


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
