"""The scripts in examples/ run as documented and show what their docstrings claim."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_python


def _run_example(name: str, *args: str) -> str:
    argv = [name, *args]
    return run_python(
        f"import runpy, sys; sys.argv = {argv!r}; "
        f"runpy.run_path({str(ROOT / 'examples' / name)!r}, run_name='__main__')"
    )


def test_train_mnist_like_separates_the_three_inits() -> None:
    out = _run_example("train_mnist_like.py", "--iterations", "300")
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) == 5 and cells[0] in ("std=0.01", "Xavier", "He"):
            rows[cells[0]] = (float(cells[1]), float(cells[2]), float(cells[3]), cells[4])
    assert set(rows) == {"std=0.01", "Xavier", "He"}, out
    assert all(status == "ok" for *_, status in rows.values())
    # the classic result: N(0, 0.01) barely moves from ln(10) in 5 layers, He and Xavier learn
    first, last, accuracy, _ = rows["std=0.01"]
    assert abs(first - 2.302585) < 1e-3 and abs(last - 2.302585) < 1e-2 and accuracy < 0.2
    for name in ("Xavier", "He"):
        first, last, accuracy, _ = rows[name]
        assert last < 0.5 * first and accuracy > 0.9, (name, rows[name])
    assert rows["He"][1] < rows["Xavier"][1]
    assert re.search(r"^900 network-steps in [\d.]+ s", out, re.M), out
    assert "identical predictions: True" in out


@pytest.mark.parametrize("iterations", ["0", "-5"])
def test_train_mnist_like_refuses_a_run_of_no_iterations(iterations) -> None:
    # 0 trained nothing and failed with an IndexError on the empty loss curve, -5 with a
    # traceback from fit_many: a usage error, as argparse gives for any bad option
    script = str(ROOT / "examples" / "train_mnist_like.py")
    done = subprocess.run([sys.executable, script, "--iterations", iterations],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"--iterations: expected an integer in [1, inf], got {iterations}" in done.stderr


def test_layer_stats_shows_the_glorot_and_he_spreads() -> None:
    out = _run_example("layer_stats.py")
    tables, current = {}, None
    for line in out.splitlines():
        if line.endswith("std of each layer's activations"):
            current = tables.setdefault(line.split(":")[0], {})
        elif current is not None and line and not line.startswith("init"):
            name, values = line[:18].strip(), [float(v) for v in line[18:].split()]
            current[name] = values
    assert set(tables) == {"tanh", "relu"}
    for table in tables.values():
        assert len(table) == 5 and all(len(v) == 5 for v in table.values())
    relu, tanh = tables["relu"], tables["tanh"]
    # He's sqrt(2/n) keeps a ReLU network's spread of order 1 at every layer ...
    assert all(0.5 < s < 2.0 for s in relu["he sqrt(2/n)"]), relu
    # ... std=1 explodes it (about sqrt(n/2) = 7x per layer) and std=0.01 makes it vanish
    big, small = relu["normal std=1"], relu["normal std=0.01"]
    assert all(b2 / b1 > 5 for b1, b2 in itertools.pairwise(big)), big
    assert all(s2 / s1 < 0.2 for s1, s2 in itertools.pairwise(small)), small
    # tanh saturates near 1 with std=1 and shrinks layer by layer with Xavier (Glorot 2010)
    assert all(0.8 < s <= 1.0 for s in tanh["normal std=1"]), tanh
    xavier = tanh["xavier sqrt(1/n)"]
    assert all(s2 < s1 for s1, s2 in itertools.pairwise(xavier)), xavier


def test_sweep_small_header_counts_its_runs(tmp_path, capsys) -> None:
    from fastinit.cli import main

    spec = ROOT / "examples" / "sweep_small.toml"
    claim = re.search(r"= (\d+) runs", spec.read_text())
    assert claim, "the header states the number of runs"
    db = tmp_path / "depth.sqlite"
    assert main(["sweep", str(spec), "--db", str(db), "--dry-run"]) == 0
    assert f"{claim.group(1)} runs in the SPEC, 0 in" in capsys.readouterr().out
