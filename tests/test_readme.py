"""README.md tells the truth: its Python blocks run, and its figures are what the code gives.

Every ``python`` block runs as written (the CUDA one only where a GPU is present:
the simulator would take hours over its 4096 x 4096 fill); a block followed by a
plain block showing its output prints that output.  The tables and figures of
"What they show" are compared with the default runs they come from.
"""

from __future__ import annotations

import ctypes.util
import math
import os
import re

import pytest

from fastinit.experiments.mnist import run_mnist
from fastinit.experiments.planar import run_planar
from fastinit.experiments.symmetry import run_symmetry
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)


def _blocks() -> list[tuple[str, str, str | None]]:
    """``(name, code, shown output)`` for every python block (output: a bare block right after)."""
    found, fences = [], list(_FENCE.finditer(README))
    for i, fence in enumerate(fences):
        if fence.group(1) != "python":
            continue
        after = fences[i + 1] if i + 1 < len(fences) else None
        shown = None
        if (
            after is not None
            and after.group(1) == ""
            and not README[fence.end() : after.start()].strip()
        ):
            shown = after.group(2)
        line = README.count("\n", 0, fence.start()) + 1
        found.append((f"README.md:{line}", fence.group(2), shown))
    return found


def _gpu() -> bool:
    simulated = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
    return not simulated and ctypes.util.find_library("cuda") is not None


def _table(heading: str) -> dict[str, list[str]]:
    """The rows of the first Markdown table after the paragraph starting with ``heading``."""
    start = README.index(heading)
    rows = {}
    for line in README[start:].splitlines():
        if line.startswith("|---"):
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
        elif rows:
            break
    return rows


BLOCKS = _blocks()


def test_the_readme_has_its_python_blocks() -> None:
    assert len(BLOCKS) == 5 and sum(shown is not None for *_, shown in BLOCKS) == 1


@pytest.mark.parametrize(("name", "code", "shown"), BLOCKS, ids=[b[0] for b in BLOCKS])
def test_python_block_runs_and_prints_what_is_shown(
    name, code, shown, tmp_path, monkeypatch, capsys
):
    if 'device="cuda"' in code and not _gpu():
        pytest.skip("the CUDA example needs a GPU (its API is tested under the simulator)")
    monkeypatch.chdir(tmp_path)  # blocks may write files (run_mnist's out="mnist-out")
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, name, "exec"), namespace)
    printed = capsys.readouterr().out
    if shown is not None:  # every shown line, in order ("..." stands for lines left out)
        expected = [ln.rstrip() for ln in shown.splitlines() if ln.strip() != "..."]
        lines = iter(ln.rstrip() for ln in printed.splitlines())
        missing = [ln for ln in expected if not any(ln == got for got in lines)]
        assert not missing, f"{name} printed:\n{printed}\nnot the README's:\n{missing}"
    if "philox4x32_10((0, 0, 0, 0), (0, 0))" in code:  # the comment gives the first word
        claimed = re.search(r"philox4x32_10\(\(0, 0, 0, 0\), \(0, 0\)\)\s*#\s*(0x[0-9a-f]+)", code)
        assert namespace["random"].philox4x32_10((0, 0, 0, 0), (0, 0))[0] == int(claimed[1], 16)


def test_planar_table_and_costs_are_the_default_run() -> None:
    result = run_planar(progress=False).summary()["results"]
    rows = _table("`fastinit planar` (10000 iterations")
    assert set(rows) == {"init", *result}
    for init, (cost, train, test) in rows.items():
        if init == "init":
            continue
        got = result[init]
        assert got["final_cost"] == pytest.approx(float(cost), abs=1e-4), init
        assert got["train_accuracy"] == pytest.approx(float(train), abs=1.01 / 400), init
        assert got["test_accuracy"] == pytest.approx(float(test), abs=1.01 / 400), init
    published = re.search(r"through\niteration 7000 \(([\d., \n]+)\)", README)
    costs = [float(c) for c in published[1].replace("\n", " ").split(",")]
    assert len(costs) == 8
    assert result["randn*0.01"]["cost_every_1000"][:8] == pytest.approx(costs, abs=5e-7)


def test_symmetry_figures_are_the_default_run() -> None:
    result = run_symmetry(progress=False).summary()["results"]
    text = re.search(r"`fastinit symmetry`: after 2000 steps.*?figure show both\)", README, re.S)[0]
    incoming, outgoing = (float(v) for v in re.findall(r"(\d+\.\d+) between", text))
    assert (
        result["zeros"]["symmetric_throughout"] and result["constant=0.5"]["symmetric_throughout"]
    )
    assert not result["randn*0.5"]["symmetric_throughout"]
    assert result["randn*0.5"]["max_incoming_spread"] == pytest.approx(incoming, abs=5e-4)
    assert result["randn*0.5"]["max_outgoing_spread"] == pytest.approx(outgoing, abs=5e-4)


def test_mnist_table_is_the_default_run() -> None:
    result = run_mnist(progress=False).summary()["results"]
    rows = _table("`fastinit mnist` (2000 iterations")
    assert set(rows) == {"init", *result}
    for init, (loss, accuracy) in rows.items():
        if init == "init":
            continue
        # float32 BLAS products: another CPU's kernels may change the last bits of 2000 steps
        assert result[init]["final_loss"] == pytest.approx(float(loss), rel=2e-3), init
        assert result[init]["test_accuracy"] == pytest.approx(float(accuracy), abs=2e-3), init
        assert math.isfinite(result[init]["final_loss"])
