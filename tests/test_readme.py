"""README.md tells the truth: its Python blocks run, and its figures are what the code gives.

Every ``python`` block runs as written (the CUDA one only where a GPU is present:
the simulator would take hours over its 4096 x 4096 fill); a block followed by a
plain block showing its output prints that output.  The tables and figures of
"What they show" are compared with the default runs they come from.  The options it
gives each ``fastinit`` command, the repository paths it names, the sweep's run count,
the initializer names and aliases, the reserved streams and the MNIST feature-std ratio
are checked against the code, and each error message it quotes (```--batch-size: ...```)
against what its command line says.
"""

from __future__ import annotations

import argparse
import ctypes.util
import math
import os
import re
import subprocess
import sys

import pytest

from fastinit import init as fi_init
from fastinit.cli import build_parser
from fastinit.experiments.mnist import run_mnist
from fastinit.experiments.planar import run_planar
from fastinit.experiments.symmetry import run_symmetry
from fastinit.sweep.spec import load_spec
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
    # float32 BLAS products over 2000 steps: another CPU's kernels change the last bits (an
    # AMD EPYC's AVX-512 ones gave 7.2364 for the 7.237 printed, which an abs=5e-4 refused)
    spread = result["randn*0.5"]
    assert spread["max_incoming_spread"] == pytest.approx(incoming, rel=1e-3, abs=5e-4)
    assert spread["max_outgoing_spread"] == pytest.approx(outgoing, rel=1e-3, abs=5e-4)


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


_COMMAND = re.compile(r"fastinit (histogram|mnist|planar|symmetry|depth|sweep|report)\b")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _options_named() -> list[tuple[str, str, str]]:
    """``(command, option, README line)`` for every ``--option`` the README gives a command:
    in a code span or shell line starting ``fastinit COMMAND``, or in that command's table row."""
    found = []
    for line in README.splitlines():
        row = re.match(r"\| `fastinit ([a-z]+)` \|", line)
        if row:  # the experiments table: every option in the row is the command's
            found += [(row[1], o, line) for o in re.findall(r"--[a-z][a-z-]*", line)]
            continue
        for text in [*re.findall(r"`([^`]+)`", line), line]:
            cmd = _COMMAND.match(text.strip())
            if cmd:
                rest = text.strip().split("#")[0]
                found += [(cmd[1], o, line) for o in re.findall(r"(?<!\S)--[a-z][a-z-]*", rest)]
    return found


def test_every_option_the_readme_gives_a_command_is_one_of_its_options() -> None:
    parsers = _subparsers()
    named = _options_named()
    assert len(named) >= 6  # fastinit mnist --device cuda, sweep --db, report --out, --seeds ...
    wrong = [(c, o, ln) for c, o, ln in named if o not in parsers[c]._option_string_actions]
    assert not wrong, wrong
    # the Sweeps section's own options (`--dask ADDRESS`, `--retry-failed`, `--sweep NAME`)
    section = README[README.index("## Sweeps") : README.index("`fastinit depth` (also")]
    spans = set(re.findall(r"`(--[a-z][a-z-]*)", section))
    sweep_or_report = {
        *parsers["sweep"]._option_string_actions,
        *parsers["report"]._option_string_actions,
    }
    assert len(spans) >= 4 and spans <= sweep_or_report, spans - sweep_or_report


def test_the_experiments_share_the_options_the_readme_describes_for_each() -> None:
    # "Each writes ... to `--out DIR` (default `fastinit-results/<experiment>`); `--help`
    # explains every option and its default; `--add NAME` adds an init"
    for name, parser in _subparsers().items():
        if name in ("sweep", "report"):
            continue
        for option in ("--out", "--add", "--help", "--inits", "--quiet"):
            assert option in parser._option_string_actions, (name, option)
        out = parser._option_string_actions["--out"].default
        assert str(out) == f"fastinit-results/{name}", (name, out)


#: The command line that gives each error message the README quotes, by the options it names.
_ERRORS = {
    "--batch-size": "mnist --batch-size 0",
    "--inits": "mnist --inits std=nan",
    "--layers, --width, --samples": "histogram --layers 10000 --width 10000 --samples 100000",
    "--depths": "depth --depths 5,5",
    "--add": "histogram --add std=1e-50 --dtype float32",
}


def _quoted_errors() -> dict[str, str]:
    """``{options: message}`` for every error the README quotes (```--opt: ...``` spans)."""
    spans = re.findall(r"`(--[a-z][a-z-]*(?:, --[a-z][a-z-]*)*: [^`]+)`", README)
    return {s.split(": ")[0]: " ".join(s.split()) for s in spans}


def _message_pattern(quoted: str) -> str:
    """The quoted error as a regex: ``(...)`` stands for anything, and the memory available
    (``the 22.9 GiB available``) is the reader's machine's."""
    quoted = re.sub(r"the [\d.]+ \w+ available", "the MEMORY available", quoted)
    pattern = re.escape(quoted).replace(r"\(\.\.\.\)", r"\(.*?\)")
    return pattern.replace("MEMORY", r"[\d.]+ \w+")


def test_every_error_the_readme_quotes_is_what_its_command_says(
    tmp_path, monkeypatch, capsys
) -> None:
    from fastinit.cli import main

    quoted = _quoted_errors()
    assert set(quoted) == set(_ERRORS), "give each quoted error its command line in _ERRORS"
    monkeypatch.chdir(tmp_path)  # the default --out is made, then removed again
    for options, message in quoted.items():
        with pytest.raises(SystemExit) as exited:
            main(_ERRORS[options].split())
        said = capsys.readouterr().err
        assert exited.value.code == 2, (options, said)
        assert re.search(_message_pattern(message), said), (message, said)
    assert not list(tmp_path.iterdir())


def test_every_repository_path_the_readme_names_exists() -> None:
    named = re.findall(r"\]\(([^)\s]+)\)", README)  # figures and links
    named += re.findall(r"`((?:fastinit|tests|bench|scripts|examples|docs|\.ci)/[^`\s]*)`", README)
    assert len(named) >= 30
    made = [p for p in named if "__pycache__" in p]  # numba's cache: made by a run, not shipped
    assert made, "the README names numba's default cache place"
    missing = [p for p in named if p not in made and not list(ROOT.glob(p.rstrip("/")))]
    assert not missing, missing


def test_every_public_name_the_readme_spells_resolves_after_import_fastinit() -> None:
    # `fastinit.train.fit_many` raised AttributeError after a bare `import fastinit`
    # (the lazy loader knew only some submodules): it worked only once another import
    # (fastinit.MLP) had loaded fastinit.train
    spelled = set(re.findall(r"\bfastinit(?:\.[a-z][A-Za-z_]*)+", README))
    spelled = {s for s in spelled if "_cuda" not in s}  # the CUDA twins: imported with a GPU
    assert {"fastinit.train.fit_many", "fastinit.lsuv.lsuv"} <= spelled, sorted(spelled)
    code = (  # each name after a fresh import: one may import the module of another
        "import functools, importlib, sys\n"
        f"for name in {sorted(spelled)!r}:\n"
        "    for module in [m for m in sys.modules if m.split('.')[0] == 'fastinit']:\n"
        "        del sys.modules[module]\n"
        "    functools.reduce(getattr, name.split('.')[1:], importlib.import_module('fastinit'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_star_import_binds_the_package_s_exports_only() -> None:
    # loading every module lazily must not widen `from fastinit import *`: it loaded the
    # command line and the sweeps and bound `train`, `model`, `cli` in the caller
    code = (
        "import sys\nfrom fastinit import *\n"
        "names = ('train', 'model', 'cli', 'sweep', 'init', 'MLP')\n"
        "print(sorted(k for k in names if k in globals()),"
        " 'fastinit.cli' in sys.modules, 'fastinit.sweep' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["['MLP',", "'init']", "False", "False"], result


def test_the_initializers_that_need_a_matrix_are_the_readme_s() -> None:
    # it said every name gave a vector Keras's fans; four refuse it
    named = re.search(r"fan-based name, where PyTorch and JAX refuse them\n\((.*?) need a", README)
    claimed = set(re.findall(r"`(\w+)`", named[1].replace("\n", " ")))
    refused = set()
    for name in fi_init.names():
        for shape in ((5,), ()):
            try:
                fi_init.get(name)(shape, dtype="float64")
            except ValueError as e:
                assert "expected at least 2 dimensions" in str(e), (name, e)
                refused.add(fi_init.get(name).__name__)
    assert refused == claimed, (refused, claimed)


def test_the_small_sweep_has_the_runs_the_readme_counts() -> None:
    claimed = re.search(r"fastinit sweep examples/sweep_small\.toml .*# (\d+) runs", README)
    assert len(load_spec(ROOT / "examples" / "sweep_small.toml", memory=2.0**40)) == int(claimed[1])


def test_the_variance_scaling_distributions_of_the_table_are_accepted() -> None:
    row = next(ln for ln in README.splitlines() if ln.startswith("| `variance_scaling("))
    names = re.findall(r"`([a-z_]+)`", row.split("|")[2])
    assert len(names) == 3
    for distribution in names:
        fi_init.variance_scaling((4, 3), distribution=distribution)


def test_the_aliases_the_readme_gives_name_initializers() -> None:
    text = re.search(r"`init\.get\(name\)` takes a name or alias.*?\.\.\.\)", README, re.S)[0]
    aliases = [*re.findall(r'"([a-z_]+)"', text), "msra", "he"]  # "alias `msra`", "alias `he`"
    assert len(aliases) >= 6
    for alias in aliases:
        assert callable(fi_init.get(alias.upper())), alias
    assert fi_init.get("he") is fi_init.he_normal
    assert fi_init.get("msra") is fi_init.kaiming_normal


def test_the_reserved_streams_are_the_readme_s() -> None:
    from fastinit import random, train

    named = re.findall(r"`(random|train)\.(\w+_STREAM)`, 2\*\*32( \+ 1)?", README)
    assert len(named) == 2  # the top gradients' and the minibatch draws'
    for module, name, plus_one in named:
        value = getattr({"random": random, "train": train}[module], name)
        assert value == 2**32 + bool(plus_one), name


def test_the_feature_std_ratio_on_all_of_mnist_is_the_readme_s() -> None:
    import fastinit
    from fastinit import datasets

    claimed = re.search(r"\((\d+) on all 60000\)", README)
    (x, t), _ = datasets.load_mnist()
    ratio = fastinit.diagnose(fastinit.MLP([784, 10]), x, t).feature_std_ratio
    assert round(ratio) == int(claimed[1])
