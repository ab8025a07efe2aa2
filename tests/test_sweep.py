"""fastinit sweep / report: SPEC parsing, executors, the database, resuming, reports."""

import csv
import dataclasses
import io
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from fastinit._system import available_memory
from fastinit.cli import main
from fastinit.sweep import runners
from fastinit.sweep import spec as spec_module
from fastinit.sweep.execute import SerialExecutor, SweepProgress, run_sweep
from fastinit.sweep.report import make_report
from fastinit.sweep.spec import SpecError, config_key, load_spec, parse_spec
from fastinit.sweep.store import SCHEMA_VERSION, Store
from tests.test_sweep_report import oracle as report_oracle

DEPTH_SPEC = """\
experiment = "depth"
name = "tiny-depth"

[fixed]
width = 16
samples = 32

[grid]
init = ["xavier", "he"]
activation = ["tanh", "relu"]
depth = [3, 5]
seed = { start = 0, stop = 3 }
"""


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def db_rows(db: Path, table: str = "runs") -> list[dict]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute(f"SELECT * FROM {table}")]
    con.close()
    return rows


def executors_made(monkeypatch) -> list[tuple]:
    """``(workers, dask)`` of each executor ``run_sweep`` makes from now on; none runs."""
    from fastinit.sweep import execute as execute_module

    made = []

    class Given(SerialExecutor):  # records nothing, runs nothing: no process is started
        def results(self, items, skip=None):
            yield from ()

    def factory(kind="local", *, workers=None, dask=None):
        made.append((workers, dask))
        return Given()

    monkeypatch.setattr(execute_module, "make_executor", factory)
    return made


@pytest.fixture(scope="module")
def depth_db(tmp_path_factory):
    """The tiny depth sweep, run once on the local process pool (2 workers)."""
    d = tmp_path_factory.mktemp("depth")
    spec = write(d, DEPTH_SPEC)
    summary = run_sweep(spec, d / "results.sqlite", workers=2, progress=False)
    return spec, d / "results.sqlite", summary


# ----------------------------------------------------------------------------- spec
def test_spec_grid_expansion_defaults_and_keys(tmp_path):
    spec = parse_spec(
        textwrap.dedent("""\
        experiment = "planar"
        [fixed]
        iterations = 50
        lr = 1
        [[grid]]
        init = ["zeros", "randn*0.01"]
        seed = {start = 2, stop = 8, step = 3}
        [[grid]]
        init = ["zeros"]
        seed = [2]
        activation = ["ReLU"]
        """),
        "x.toml",
    )
    runs = spec.runs()
    assert spec.name == "x" and len(runs) == 4 + 1
    assert [r["seed"] for r in runs[:4]] == [2, 5, 2, 5]
    assert runs[0] == {**runners.full_config("planar", {}), "iterations": 50, "lr": 1.0,
                       "init": "zeros", "seed": 2}  # fmt: skip
    assert isinstance(runs[0]["lr"], float)
    assert runs[-1]["activation"] == "relu"  # canonical activation names
    # the key hashes the full configuration, experiment included, independent of key order
    again = parse_spec('experiment = "planar"\n[grid]\nseed = [2]\ninit = ["zeros"]\n'
                       '[fixed]\nlr = 1.0\niterations = 50\n')  # fmt: skip
    assert again.keyed_runs()[0][0] == spec.keyed_runs()[0][0] == config_key(runs[0])
    assert len(set(dict(spec.keyed_runs()))) == 5
    other = dict(runs[0], experiment="mnist")
    assert config_key(other) != config_key(runs[0])


def test_duplicate_grid_points_are_one_run():
    spec = parse_spec('experiment = "depth"\n[[grid]]\nseed = [0, 1]\n[[grid]]\nseed = [1, 2]\n')
    assert [r["seed"] for r in spec.runs()] == [0, 1, 2]


def test_momentum_is_one_value_for_optimizers_without_momentum():
    spec = parse_spec(
        'experiment = "planar"\n[grid]\noptimizer = ["sgd", "momentum", "adam"]\n'
        "momentum = [0.5, 0.9]\n"
    )
    runs = [(r["optimizer"], r["momentum"]) for r in spec.runs()]
    assert runs == [("sgd", 0.9), ("momentum", 0.5), ("momentum", 0.9), ("adam", 0.9)]
    assert len(spec) == 4  # not 6: sgd and adam ignore momentum
    # the default momentum keeps the keys a database recorded before this rule
    old = runners.full_config("planar", {"optimizer": "sgd"})
    assert config_key(old) == spec.keyed_runs()[0][0]


def test_momentum_is_kept_for_momentum_and_nesterov_and_merged_for_the_rest():
    # merging Nesterov's momentum too made [0.5, 0.9] one run at 0.9 (mutation audit)
    for optimizer in ("momentum", "nesterov"):
        spec = parse_spec(f'experiment = "planar"\n[grid]\noptimizer = ["{optimizer}"]\n'
                          "momentum = [0.5, 0.9]\n")  # fmt: skip
        assert [r["momentum"] for r in spec.runs()] == [0.5, 0.9], optimizer
    for optimizer in ("sgd", "adagrad", "rmsprop", "adam"):
        config = runners.full_config("planar", {"optimizer": optimizer, "momentum": 0.5})
        assert "momentum" in runners.unused_params(config), optimizer


def test_config_key_is_the_sha256_of_the_sorted_compact_json():
    # the key must not depend on the order a configuration was built in: unsorted keys
    # gave every recorded sweep new keys (mutation audit)
    import hashlib

    text = b'{"experiment":"planar","lr":1.2,"seed":0}'
    want = hashlib.sha256(text).hexdigest()
    assert config_key({"seed": 0, "lr": 1.2, "experiment": "planar"}) == want
    assert config_key({"experiment": "planar", "seed": 0, "lr": 1.2}) == want


def test_rng_is_one_value_where_a_planar_run_draws_no_notebook_weights():
    # rng 'notebook' changes only randn*s / std=s on one hidden layer: elsewhere a grid
    # over rng made separate keys for identical runs (and a report of alike rows)
    spec = parse_spec(
        'experiment = "planar"\n[grid]\nrng = ["notebook", "fastinit"]\n'
        'init = ["randn*0.01", "xavier", "std=0.5"]\ndepth = [1, 2]\n'
    )
    runs = [(r["init"], r["depth"], r["rng"]) for r in spec.runs()]
    assert runs == [
        ("randn*0.01", 1, "notebook"), ("randn*0.01", 2, "notebook"), ("xavier", 1, "notebook"),
        ("xavier", 2, "notebook"), ("randn*0.5", 1, "notebook"), ("randn*0.5", 2, "notebook"),
        ("randn*0.01", 1, "fastinit"), ("randn*0.5", 1, "fastinit"),
    ], runs  # fmt: skip
    assert "rng" in runners.unused_params(runners.full_config("planar", {"init": "he"}))
    assert "rng" not in runners.unused_params(runners.full_config("planar", {"init": "randn"}))
    # a row recorded before planar had a depth: one hidden layer, where rng is read
    assert runners.unused_params({"init": "randn*0.01", "rng": "fastinit"}) == ()
    both = runners.full_config("planar", {"init": "he", "optimizer": "sgd", "momentum": 0.5})
    assert set(runners.unused_params(both)) == {"rng", "momentum"}


def test_init_names_are_stored_as_parse_init_reads_them():
    spec = parse_spec('experiment = "planar"\n[grid]\ninit = ["He", " Xavier"]\n')
    assert [r["init"] for r in spec.runs()] == ["he", "xavier"]
    with pytest.raises(SpecError, match="twice"):
        parse_spec('experiment = "planar"\n[grid]\ninit = ["xavier", "Xavier"]\n')


BAD_SPECS = [
    # (text, words the message must contain, line)
    ('experiment = "planar"\n[fixed]\nlr = 1.2.3\n', ["lr", "invalid TOML"], 3),
    # a list never closed: tomllib says "at end of document"; the line is where the value starts
    ('experiment = "planar"\n[grid]\ninit = ["he",\n\n', ["init", "the file ends inside it"], 3),
    ('experiment = "planar"\n[grid]\ninit = [\n  "he",\n  "xavier",\n', ["init", "ends inside"], 3),
    ('experiment = "planar"\n[fixed.sub]\nx = 1\n', ["fixed.sub", "unknown parameter"], 2),
    ('experiment = "planar"\n[fixed]\nlr = 1.0\n[fixed.sub]\nx = 1\n', ["fixed.sub"], 4),
    ('experiment = "plnar"\n', ["experiment", "did you mean 'planar'"], 1),
    ('name = "x"\n', ["experiment", "missing"], None),
    # the label stored with each run: a name of blanks labels nothing
    ('experiment = "depth"\nname = ""\n', ["name: expected a non-empty string, got ''"], 2),
    ('experiment = "depth"\n\nname = "  "\n', ["name: expected a non-empty string"], 3),
    ('experiment = "depth"\nname = 3\n', ["name: expected a non-empty string, got 3"], 2),
    ('experiment = "planar"\nseeds = 3\n', ["seeds", "unknown key"], 2),
    ('experiment = "planar"\n[grid]\ninit = ["he"]\nlrr = [0.1]\n', ["grid.lrr", "'lr'"], 4),
    ('experiment = "depth"\n\n[fixed]\nwidth = "wide"\n', ["fixed.width", "integer"], 4),
    ('experiment = "depth"\n[fixed]\nwidth = 0\n', ["fixed.width", ">= 1"], 3),
    # lr must be > 0: a negative one is told so (not ">= 0", which 0 then fails)
    ('experiment = "planar"\n[fixed]\nlr = -1\n', ["fixed.lr", "number > 0, got -1"], 3),
    ('experiment = "depth"\n[grid]\ninit = ["he"]\nseed = []\n', ["grid.seed", "non-empty"], 4),
    ('experiment = "depth"\n[grid]\ninit = "he"\n', ["grid.init", "list"], 3),
    ('experiment = "depth"\n[grid]\ninit = ["he", "bogus"]\n', ["grid.init", "bogus"], 3),
    ('experiment = "depth"\n[grid]\nactivation = ["relu", 3]\n', ["grid.activation", "3"], 3),
    ('experiment = "depth"\n[grid]\nseed = [1, 1]\n', ["grid.seed", "twice"], 3),
    (  # two spellings of one draw would run and report one init twice
        'experiment = "planar"\n[grid]\ninit = ["std=0.01", "randn*1e-2"]\n',
        ["grid.init", "'randn*1e-2' is the same init as 'std=0.01'"],
        3,
    ),
    (
        'experiment = "planar"\n[grid]\noptimizer = ["sgd", "adamw"]\n',
        ["grid.optimizer", "adam"],
        3,
    ),
    ('experiment = "depth"\n[fixed]\nseed = 1\n[grid]\nseed = [1, 2]\n', ["grid.seed", "both"], 5),
    (
        'experiment = "depth"\n[[grid]]\nseed = [1]\n\n[[grid]]\ninit = ["he"]\nseed = [-1]\n',
        ["grid[1].seed", ">= 0"],
        7,
    ),
    ('experiment = "depth"\n[grid]\nseed = {start = 0}\n', ["grid.seed", "stop"], 3),
    # a range of a string parameter was read as a list of integers: "got 1 in the list"
    (
        'experiment = "depth"\n[grid]\ninit = {start = 0, stop = 2}\n',
        ["grid.init: expected a list of values, got a range table", "only for numbers"],
        3,
    ),
    # an empty list of grids was one run of the defaults, silently; tables say what they got
    ('experiment = "depth"\ngrid = []\n', ["grid: expected a table [grid] or", "got []"], 2),
    ('experiment = "depth"\ngrid = [3]\n', ["grid: expected a table [grid] or", "got [3]"], 2),
    ('experiment = "depth"\nfixed = 3\n', ["fixed: expected a table ([fixed]), got 3"], 2),
    # counted, not built: a list of 10**10 seeds would exhaust the memory first
    (
        'experiment = "depth"\n[grid]\nseed = {start = 0, stop = 10000000000}\n',
        ["grid.seed", "range: 10000000000 values", "at most 1000000"],
        3,
    ),
    ('experiment = "depth"\n[grid]\ninit = ["he", "lsuv"]\n', ["grid.init", "data-dependent"], 3),
    # values every run would reject at run time (datasets.planar, the MNIST training set)
    ('experiment = "planar"\n[fixed]\nm = 401\n', ["fixed.m", "positive even integer", "401"], 3),
    (
        'experiment = "mnist"\n[grid]\ntrain_size = [100, 100000]\n',
        ["grid.train_size", "at most 60000", "got 100000"],
        3,
    ),
    # combinations every such run would reject: the notebook's RandomState takes 32-bit seeds
    (
        'experiment = "planar"\n[fixed]\nseed = 4294967296\n[grid]\ninit = ["he", "randn*3"]\n',
        ["fixed.seed", "[0, 2**32)", "'randn*3'"],
        3,
    ),
    (
        'experiment = "planar"\n[[grid]]\nseed = [0]\n[[grid]]\nseed = [1, 4294967297]\n',
        ["grid[1].seed", "4294967297", "'randn'", "rng = 'fastinit'"],
        5,
    ),
    # sizes and counts beyond the kernels' int64 (seeds: the generators' uint64)
    ('experiment = "depth"\n[fixed]\nwidth = 9223372036854775808\n', ["fixed.width", "< 2**63"], 3),
    ('experiment = "depth"\n[grid]\nseed = [18446744073709551616]\n', ["grid.seed", "< 2**64"], 3),
    # an integer beyond the float range is no finite number (not an OverflowError)
    ('experiment = "planar"\n[fixed]\nlr = 1' + "0" * 400 + "\n", ["fixed.lr", "finite"], 3),
    # a range of more values than len() can count; an empty range says why it is empty
    (
        'experiment = "depth"\n[grid]\nseed = {start = 0, stop = 18446744073709551615}\n',
        ["grid.seed", "range: 18446744073709551615 values", "at most 1000000"],
        3,
    ),
    (
        'experiment = "depth"\n[grid]\nseed = {start = 3, stop = 0}\n',
        ["grid.seed", "range: expected at least one value", "step of 1 needs stop > start"],
        3,
    ),
    # values fastinit.optim and fit refuse: every such run would fail
    (
        'experiment = "planar"\n[fixed]\noptimizer = "momentum"\nmomentum = 1.0\n',
        ["fixed.momentum", "expected a number in [0, 1), got 1.0"],
        4,
    ),
    (  # Nesterov without momentum is plain SGD: fastinit.optim refuses it, as torch does
        'experiment = "planar"\n[fixed]\noptimizer = "nesterov"\nmomentum = 0.0\n',
        ["fixed.momentum", "expected a number in (0, 1) with Nesterov (0 is plain SGD)"],
        4,
    ),
    (
        'experiment = "mnist"\n[grid]\noptimizer = ["sgd", "nesterov"]\nmomentum = [0.0, 0.9]\n',
        ["grid.momentum", "expected a number in (0, 1) with Nesterov (0 is plain SGD)"],
        4,
    ),
    (
        'experiment = "mnist"\n[fixed]\nlr = 1e-50\n[grid]\ndtype = ["float64", "float32"]\n',
        ["fixed.lr", "dtype 'float32'", "round 1e-50 to 0"],
        3,
    ),
    (
        'experiment = "planar"\n[grid]\ndtype = ["float32"]\nweight_decay = [0, 1e39]\n',
        ["grid.weight_decay", "expected 0 or a number in", "round 1e+39 to infinity"],
        4,
    ),
]


@pytest.mark.parametrize(
    "text",
    [
        'experiment = "planar"\n[fixed]\nseed = 4294967296\nrng = "fastinit"\n',
        'experiment = "planar"\n[fixed]\nseed = 4294967296\ninit = "he"\n',
        'experiment = "planar"\n[fixed]\nseed = 4294967296\ndepth = 2\n',
        'experiment = "planar"\n[[grid]]\nseed = [4294967296]\nrng = ["fastinit"]\n'
        '[[grid]]\nseed = [4294967297]\ninit = ["zeros"]\n',
    ],
)
def test_a_large_seed_is_accepted_where_the_notebook_generator_is_not_used(tmp_path, text):
    assert load_spec(write(tmp_path, text, "ok.toml")).keyed_runs()


@pytest.mark.parametrize(("text", "words", "line"), BAD_SPECS)
def test_malformed_spec_names_key_and_line(tmp_path, monkeypatch, text, words, line):
    monkeypatch.delenv("FASTINIT_MNIST_DIR", raising=False)  # the shipped MNIST: 60000 images
    p = write(tmp_path, text, "bad.toml")
    with pytest.raises(SpecError) as e:
        load_spec(p)
    message = str(e.value)
    for w in words:
        assert w in message, message
    if line is not None:
        assert e.value.line == line
        assert f"bad.toml:{line}:" in message


def test_malformed_spec_on_the_command_line(tmp_path, capsys):
    p = write(tmp_path, 'experiment = "depth"\n[grid]\nwidht = [4]\n', "bad.toml")
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(p), "--db", str(tmp_path / "r.sqlite")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "bad.toml:3: grid.widht: unknown parameter" in err and "'width'" in err
    assert not (tmp_path / "r.sqlite").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('experiment = "planar"\n[grid]\nm = [400, 401]\n', "grid.m: expected a positive even"),
        ('experiment = "mnist"\n[fixed]\ntrain_size = 100000\n', "fixed.train_size: expected at"),
    ],
    ids=["planar-m", "mnist-train_size"],
)
def test_values_the_runs_would_reject_fail_the_dry_run(tmp_path, monkeypatch, capsys, text,
                                                       message):  # fmt: skip
    monkeypatch.delenv("FASTINIT_MNIST_DIR", raising=False)
    p = write(tmp_path, text, "bad.toml")
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(p), "--db", str(tmp_path / "r.sqlite"), "--dry-run"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"bad.toml:3: {message}" in err and "Traceback" not in err, err
    assert not (tmp_path / "r.sqlite").exists()
    # the limits themselves are accepted
    ok = parse_spec('experiment = "mnist"\n[grid]\ntrain_size = [1, 60000]\n'
                    '[fixed]\niterations = 1\n')  # fmt: skip
    assert [r["train_size"] for r in ok.runs()] == [1, 60000]
    assert parse_spec('experiment = "planar"\n[grid]\nm = [2, 402]\n').grids[0]["m"] == [2, 402]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('experiment = "depth"\n[fixed]\nwidth = 4\nwidth = 5', 4),  # a key set twice
        ('experiment = "depth"\n[fixed]\nwidth = 4\nwidth', 4),  # no '='
    ],
    ids=["key-set-twice", "no-value"],
)
def test_an_error_on_a_last_line_without_newline_is_placed_on_it(text, line):
    """tomllib says "at end of document" there: it is no value the file ends inside."""
    with pytest.raises(SpecError) as e:
        parse_spec(text, "bad.toml")
    assert e.value.line == line and f"bad.toml:{line}:" in str(e.value)
    assert "ends inside" not in str(e.value), str(e.value)
    assert parse_spec(text.rsplit("\n", 1)[0]).fixed == {"width": 4}


def test_negative_zero_is_zero():
    """-0.0 == 0.0: one run, one key, not a second run of the same configuration."""
    zero = parse_spec('experiment = "planar"\n[fixed]\nweight_decay = 0.0\n').keyed_runs()
    minus = parse_spec('experiment = "planar"\n[fixed]\nweight_decay = -0.0\n').keyed_runs()
    assert minus == zero
    assert math.copysign(1.0, minus[0][1]["weight_decay"]) == 1.0
    with pytest.raises(SpecError, match=r"grid\.weight_decay: value -0\.0 appears twice"):
        parse_spec('experiment = "planar"\n[grid]\nweight_decay = [0.0, -0.0]\n')


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lr_and_weight_decay_are_refused_exactly_where_fit_refuses_them(dtype):
    import numpy as np

    from fastinit import optim, train

    finfo = np.finfo(dtype)
    tiny, top = float(finfo.smallest_subnormal), float(finfo.max)
    for value in (tiny, tiny * 1.5, tiny / 1.5, top, top / 2, top * 1.5):
        if not 0 < value < math.inf:  # not a SPEC value (a float64 bound halved or doubled)
            continue
        try:
            train._check_in_range(optim.SGD(value, weight_decay=value), np.dtype(dtype))
            fit_accepts = True
        except ValueError:
            fit_accepts = False
        text = f'experiment = "planar"\n[fixed]\ndtype = "{dtype}"\nlr = {value!r}\n'
        for key in ("lr", "weight_decay"):
            try:
                parse_spec(text.replace("lr =", f"{key} ="))
                spec_accepts = True
            except SpecError as e:
                assert f"fixed.{key}: expected" in str(e) and dtype in str(e)
                spec_accepts = False
            assert spec_accepts == fit_accepts, (key, value, dtype)


# ----------------------------------------------------------------------------- sizes
@pytest.fixture
def memory(monkeypatch):
    """The memory this machine has available, as the SPEC check sees it: 1 GiB."""
    monkeypatch.setattr(spec_module, "available_memory", lambda **kw: 2**30)
    return 2**30


@pytest.mark.parametrize(
    ("text", "words", "line"),
    [
        (  # the largest network of the grid: its weights alone are 80 GB
            'experiment = "planar"\n[fixed]\ndepth = 3\n[grid]\nwidth = [4, 100000]\n',
            ["grid.width", "got 100000", "the largest run of the grid", "parameters and gr"],
            5,
        ),
        (
            'experiment = "depth"\n[[grid]]\ndepth = [10]\n\n[[grid]]\nwidth = [64]\n'
            "depth = [10, 1000000]\n",
            ["grid[1].depth", "got 1000000", "activations"],
            7,
        ),
        (
            'experiment = "histogram"\n[fixed]\nwidth = 1000\n[grid]\nsamples = [100, 10000000]\n',
            ["grid.samples", "got 10000000", "activations"],
            5,
        ),
        ('experiment = "planar"\n[fixed]\nm = 10000000000\n', ["fixed.m", "data"], 3),
        (  # one float64 loss per step, and History's copy
            'experiment = "mnist"\n[fixed]\niterations = 100000000000\n',
            ["fixed.iterations", "loss curve " + spec_module._bytes(runners.CURVE_BYTES * 10**11)],
            3,
        ),
        (
            'experiment = "mnist"\n[fixed]\nbatch_size = 1000000000\n',
            ["fixed.batch_size", "got 1000000000", "activations"],
            3,
        ),
    ],
)
def test_a_grid_whose_largest_run_does_not_fit_in_memory_is_refused(memory, text, words, line):
    with pytest.raises(SpecError) as e:
        parse_spec(text, "big.toml")
    message = str(e.value)
    for w in [*words, "fit in memory", f"more than the {spec_module._bytes(memory)} of memory"]:
        assert w in message, message
    assert e.value.line == line and f"big.toml:{line}:" in message


def test_a_shuffled_batch_is_at_most_the_training_set(memory, monkeypatch):
    """``sampling = "shuffle"`` gathers min(batch_size, images) rows: that run fits."""
    monkeypatch.delenv("FASTINIT_MNIST_DIR", raising=False)  # the shipped MNIST
    text = 'experiment = "mnist"\n[fixed]\nbatch_size = 1000000000\nsampling = "shuffle"\n'
    assert len(parse_spec(text)) == 1
    with pytest.raises(SpecError, match=r"<spec>:3: fixed\.batch_size: .* got 1000000000"):
        parse_spec(text.replace("shuffle", "replacement"))


def test_the_memory_bound_is_the_largest_runs_footprint(memory):
    """The largest run (widest, float64, with optimizer state) fits exactly, not a byte more."""
    text = (
        'experiment = "planar"\n[fixed]\ndepth = 2\n[grid]\nwidth = [4, 512]\n'
        'dtype = ["float32", "float64"]\noptimizer = ["sgd", "adam"]\n'
    )
    largest = runners.full_config(
        "planar", {"depth": 2, "width": 512, "dtype": "float64", "optimizer": "adam"}
    )
    need = sum(runners.EXPERIMENTS["planar"].footprint(largest).values())
    assert len(parse_spec(text, memory=need)) == 8
    with pytest.raises(SpecError, match=r"<spec>:5: grid.width: .* got 512: .*optimizer state"):
        parse_spec(text, memory=need - 1)
    assert need < memory  # the machine's memory (the fixture's) holds it
    assert len(parse_spec(text)) == 8


def test_beyond_what_any_process_can_allocate_is_refused_everywhere(tmp_path, capsys):
    """Even for other machines' memory (a Dask cluster): 10**22 weights fit nowhere."""
    text = 'experiment = "depth"\n[fixed]\nwidth = 100000000000\n'
    with pytest.raises(SpecError, match=r"<spec>:3: fixed.width: .*any process can allocate"):
        parse_spec(text, memory=math.inf)
    p = write(tmp_path, text, "big.toml")
    for dask in ([], ["--dask", "tcp://127.0.0.1:9"]):
        with pytest.raises(SystemExit) as e:
            main(["sweep", str(p), "--db", str(tmp_path / "r.sqlite"), "--dry-run", *dask])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "big.toml:3: fixed.width: expected a value small enough" in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "r.sqlite").exists()


def test_runs_on_a_dask_cluster_are_not_bounded_by_this_machines_memory(memory, tmp_path,
                                                                         capsys):  # fmt: skip
    p = write(tmp_path, 'experiment = "depth"\n[fixed]\nwidth = 100000\n', "wide.toml")
    with pytest.raises(SystemExit):  # 10 layers of 10**10 float64 weights: 745 GiB here
        main(["sweep", str(p), "--db", str(tmp_path / "r.sqlite"), "--dry-run"])
    assert "wide.toml:3: fixed.width:" in capsys.readouterr().err
    assert main(["sweep", str(p), "--db", str(tmp_path / "r.sqlite"), "--dry-run",
                 "--dask", "tcp://127.0.0.1:9"]) == 0  # fmt: skip
    assert "1 run in the SPEC" in capsys.readouterr().out
    assert len(parse_spec(p.read_text(), memory=math.inf)) == 1

    class Given(SerialExecutor):  # records what the cluster would run, runs nothing
        def results(self, items, skip=None):
            given.extend(config["width"] for _, config in items)
            yield from ()

    given = []
    with pytest.raises(SpecError, match=r"fixed\.width"):
        run_sweep(p, tmp_path / "r.sqlite", executor=Given(), progress=False)
    run_sweep(p, tmp_path / "r.sqlite", executor=Given(), dask="tcp://127.0.0.1:9",
              progress=False)  # fmt: skip
    assert given == [100000]


def test_a_local_pool_runs_only_as_many_workers_as_fit_in_memory(tmp_path, monkeypatch,
                                                                  capsys):  # fmt: skip
    """4 workers asked, memory for 2.5 of the largest run: 2 run at once, and it is said."""
    text = 'experiment = "selftest"\n[grid]\niterations = [10, 1000]\nseed = [0, 1]\n'
    p = write(tmp_path, text, "pool.toml")
    need = runners.LIST_CURVE_BYTES * 1000  # the largest run's footprint: its loss curve
    available = [need * 5 // 2]
    monkeypatch.setattr(spec_module, "available_memory", lambda **kw: available[0])
    assert main(["sweep", str(p), "--db", str(tmp_path / "r.sqlite"), "--workers", "4",
                 "--quiet"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "4 run now" in captured.out and "local pool: 2 spawn workers" in captured.out
    notes = [line for line in captured.err.splitlines() if "workers" in line]
    assert notes == [
        f"fastinit sweep: running 2 workers, not the 4 requested: each run may need "
        f"{spec_module._bytes(need)} (the largest run of the SPEC), and 4 at once more than "
        f"the {spec_module._bytes(need * 5 // 2)} of memory available"
    ], captured.err
    spec = load_spec(p)
    for memory, workers in [(4 * need, 4), (4 * need - 1, 3), (need, 1), (need // 2, 1)]:
        available[0] = memory  # less than one run: it shrank since the SPEC was read
        fit, note = spec_module.workers_in_memory(spec, 4)
        assert fit == workers and bool(note) == (workers < 4), (memory, fit, note)
    available[0] = None  # the system does not tell: as asked
    assert spec_module.workers_in_memory(spec, 4) == (4, "")


def test_a_local_dask_cluster_runs_only_as_many_workers_as_fit_in_memory(tmp_path, monkeypatch,
                                                                          capsys):  # fmt: skip
    """--dask local runs its workers on this machine: the local pool's memory cap applies."""
    from fastinit.sweep import execute as execute_module

    text = 'experiment = "selftest"\n[grid]\niterations = [10, 1000]\nseed = [0, 1]\n'
    p = write(tmp_path, text, "dask.toml")
    need = runners.LIST_CURVE_BYTES * 1000
    monkeypatch.setattr(spec_module, "available_memory", lambda **kw: need * 5 // 2)
    monkeypatch.setattr(execute_module, "available_cores", lambda: 4)
    made = executors_made(monkeypatch)
    for i, (workers, dask, expected) in enumerate([
        (4, "local", 2),  # asked for 4, 2 fit
        (None, "local", 2),  # one per core (4), 2 fit
        (1, "local", 1),
        (None, "tcp://127.0.0.1:9", None),  # a remote cluster's workers have their own memory
    ]):  # fmt: skip
        made.clear()
        run_sweep(p, tmp_path / f"r{i}.sqlite", dask=dask, workers=workers, progress=False)
        assert made == [(expected, dask)], (workers, dask)
        err = capsys.readouterr().err
        asked = workers or 4
        assert (f"running 2 workers, not the {asked} requested" in err) == (expected == 2), err


def test_workers_share_the_machines_memory_not_each_processes_address_space(monkeypatch):
    """``ulimit -v`` bounds one run (each worker has its own), not the pool's N runs at once."""
    from fastinit import _system

    need = runners.LIST_CURVE_BYTES * 1000  # the largest run's footprint: its loss curve
    sources = {"_kernel_available": 64 * need, "_address_space_limit": 4 * need}
    for name, size in sources.items():
        monkeypatch.setattr(_system, name, lambda size=size: size)
    monkeypatch.setattr(_system, "_cgroup_headroom", lambda: [48 * need])
    assert _system.available_memory() == 4 * need
    assert _system.available_memory(per_process=False) == 48 * need
    text = 'experiment = "selftest"\n[grid]\niterations = [10, 1000]\nseed = [0, 1]\n'
    spec = parse_spec(text)
    assert spec_module.workers_in_memory(spec, 8) == (8, "")  # 8 x need: within 48 x need
    monkeypatch.setattr(_system, "_cgroup_headroom", lambda: [6 * need])
    assert spec_module.workers_in_memory(spec, 8)[0] == 6  # the cgroup is shared: it caps
    with pytest.raises(SpecError, match="of memory available on this machine"):
        parse_spec(text.replace("1000]", "5000]"))  # one run beyond ulimit -v: refused


def test_the_pools_memory_check_uses_the_footprint_found_when_the_spec_was_read(monkeypatch):
    text = 'experiment = "selftest"\n[grid]\niterations = [10, 1000]\nseed = [0, 1]\n'
    spec = parse_spec(text)
    need = runners.LIST_CURVE_BYTES * 1000
    assert spec.largest_run_bytes == need
    largest_run = spec_module._largest_run
    monkeypatch.setattr(spec_module, "_largest_run", lambda *a: pytest.fail("computed again"))
    monkeypatch.setattr(spec_module, "available_memory", lambda **kw: 2 * need)
    assert spec_module.workers_in_memory(spec, 4)[0] == 2
    # a Spec made by hand (no footprint recorded) has its largest run found when asked
    monkeypatch.setattr(spec_module, "_largest_run", largest_run)
    by_hand = dataclasses.replace(spec, largest_run_bytes=None)
    assert spec_module.workers_in_memory(by_hand, 4)[0] == 2


def test_the_available_memory_is_what_this_machine_has():
    available = available_memory()
    if available is None:
        pytest.skip("this system does not tell")
    assert 0 < available <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize(
    ("experiment", "params"),
    [
        ("depth", {"width": 128, "depth": 20, "samples": 256}),
        ("histogram", {"width": 128, "depth": 8, "samples": 256, "dtype": "float32"}),
        ("planar", {"width": 64, "depth": 3, "iterations": 300, "m": 800, "optimizer": "adam"}),
        (
            "mnist",
            {"width": 256, "depth": 2, "iterations": 20, "batch_size": 512, "train_size": 2000},
        ),
    ],
)
def test_a_footprint_is_a_lower_bound_of_what_the_run_allocates(experiment, params):
    """Never above the run's peak (the check refuses no run that fits), nor far below."""
    import tracemalloc  # NumPy reports its arrays to it

    config = runners.full_config(experiment, params)
    runners.run({**config, "iterations": 1} if "iterations" in config else config)  # compiled
    runners._planar_data.cache_clear()  # the data set is part of a planar run's footprint
    tracemalloc.start()
    try:
        runners.run(config)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    parts = runners.EXPERIMENTS[experiment].footprint(config)
    assert peak / 2 < sum(parts.values()) <= peak, (peak, parts)


@pytest.mark.parametrize("optimizer", runners.OPTIMIZERS)
def test_a_footprints_optimizer_state_is_the_optimizers_slots(optimizer):
    # one slot was counted where the optimizer keeps two (2, n_params) arrays: the memory
    # check let more workers start than the machine holds
    from fastinit.model import MLP

    config = runners.full_config(
        "planar", {"optimizer": optimizer, "width": 6, "depth": 2, "dtype": "float32"}
    )
    model = MLP([2, 6, 6, 1], activation="tanh", dtype="float32")
    opt = runners._optimizer(config)
    x = np.random.default_rng(0).normal(size=(8, 2))
    model.fit(x, np.arange(8) % 2, optimizer=opt, batch_size=8, iterations=1,
              loss="sigmoid_cross_entropy", progress=False)  # fmt: skip
    state = opt.state_for(model, model._params.size, model.dtype)  # the state fit kept
    assert state.step == 1
    slots = state.slots  # (2, parameters with each layer's alignment padding), or (2, 0)
    # per slot the footprint counts the parameters, not the padding: a lower bound
    want = slots.shape[0] * model.n_params * slots.itemsize if slots.size else 0
    footprint = runners.EXPERIMENTS["planar"].footprint(config)
    assert footprint["optimizer state"] == want <= slots.nbytes


# ----------------------------------------------------------------------------- running
def test_local_pool_sweep_of_the_depth_experiment(depth_db):
    spec, db, summary = depth_db
    assert summary.total == 24 and summary.ran == 24 and summary.counts["ok"] == 24
    rows = db_rows(db)
    assert len(rows) == 24
    assert {r["key"] for r in rows} == {k for k, _ in load_spec(spec).keyed_runs()}
    workers = {r["worker"] for r in rows}
    assert 1 <= len(workers) <= 2 and all(not w.endswith(f":{os.getpid()}") for w in workers)
    import fastinit

    for r in rows:
        assert r["status"] == "ok" and r["version"] == fastinit.__version__
        assert r["started"] <= r["finished"] and r["wall_time"] > 0
        config = json.loads(r["config"])
        assert config_key(config) == r["key"]
        curves = json.loads(r["curves"])
        assert len(curves["act_std"]) == config["depth"]
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    # the same runs in this process give the same numbers
    row = rows[5]
    mine = runners.run(json.loads(row["config"]))
    assert mine["metrics"] == json.loads(row["metrics"])
    # resuming: nothing left to do
    again = run_sweep(spec, db, workers=2, progress=False)
    assert again.skipped == 24 and again.ran == 0


def test_a_signal_run_whose_gradients_overflow_is_diverged():
    # a tanh net in its chaotic phase: the activations stay within [-1, 1] while the
    # gradients grow about 1.5x a layer and overflow float32; the run was recorded "ok"
    params = {"init": "std=0.5", "activation": "tanh", "depth": 300, "width": 64,
              "samples": 64, "dtype": "float32"}  # fmt: skip
    config = runners.full_config("depth", params)
    result = runners.execute(config)
    curves = result["curves"]
    assert all(v is not None for v in curves["act_std"])
    assert any(v is None for v in curves["grad_std"])
    assert result["status"] == "diverged"


@pytest.mark.parametrize("experiment", ["depth", "histogram"])
def test_a_signal_runs_first_and_last_metrics_are_its_curves_ends(experiment):
    # act_mean_last held the first layer's mean
    config = runners.full_config(experiment, {"init": "he", "activation": "relu", "depth": 6,
                                              "width": 32, "samples": 64})  # fmt: skip
    result = runners.execute(config)
    metrics, curves = result["metrics"], result["curves"]
    names = [
        m for m in metrics if m.endswith(("_first", "_last")) and m.rsplit("_", 1)[0] in curves
    ]
    assert {"act_std_first", "act_std_last", "grad_std_first", "grad_std_last",
            "act_mean_last"} <= set(names)  # fmt: skip
    for name in names:
        curve, end = name.rsplit("_", 1)
        values = curves[curve]
        assert len(values) == 6 and values[0] != values[-1], name
        assert metrics[name] == values[0 if end == "first" else -1], name


def test_a_diverged_planar_run_has_no_accuracy():
    # as the mnist runner: the predictions of non-finite weights are not an accuracy
    params = {"init": "he", "activation": "relu", "lr": 1e6, "iterations": 300, "rng": "fastinit"}
    result = runners.run(runners.full_config("planar", params))
    assert result["status"] == "diverged" and result["metrics"]["iterations_done"] < 300
    assert result["metrics"]["train_accuracy"] is None
    assert result["metrics"]["test_accuracy"] is None


def test_planar_sweep_with_a_run_that_fails(tmp_path, monkeypatch):
    spec = write(tmp_path, """\
        experiment = "planar"
        [fixed]
        iterations = 50
        [[grid]]
        init = ["zeros", "randn", "xavier"]
        seed = [2, 3]
        [[grid]]
        init = ["randn"]
        m = [6]              # its data raises inside the runner (below)
        """)  # fmt: skip
    db = tmp_path / "r.sqlite"
    planar_data = runners._planar_data

    def failing_planar_data(m):
        if m == 6:
            raise ValueError("planar data: failing on request")
        return planar_data(m)

    # in this process (workers=0), so that the runner sees the patched data
    monkeypatch.setattr(runners, "_planar_data", failing_planar_data)
    summary = run_sweep(spec, db, workers=0, progress=False)
    assert summary.counts == {"ok": 6, "diverged": 0, "failed": 1}
    rows = {json.dumps(json.loads(r["config"]), sort_keys=True): r for r in db_rows(db)}
    failed = [r for r in rows.values() if r["status"] == "failed"]
    assert len(failed) == 1 and "planar data: failing on request" in failed[0]["error"]
    assert "Traceback" in failed[0]["error"]
    # the stored curve is exactly the planar experiment's
    from fastinit.experiments.planar import run_planar

    ref = run_planar(("randn",), iterations=50, progress=False)
    config = runners.full_config("planar", {"init": "randn", "iterations": 50})
    stored = next(r for r in db_rows(db) if r["key"] == config_key(config))
    assert json.loads(stored["curves"])["loss"] == pytest.approx(
        list(ref.costs["randn"]), rel=1e-12
    )
    metrics = json.loads(stored["metrics"])
    assert metrics["test_accuracy"] == ref.test_accuracy["randn"]
    assert metrics["iterations_done"] == 50 and "iterations" not in metrics
    # runs.csv: the parameter and the completed iterations are two columns with two names
    make_report(db, tmp_path / "report", figures=False)
    with (tmp_path / "report" / "planar" / "runs.csv").open() as f:
        header = next(csv.reader(f))
        f.seek(0)
        by_key = {r["key"]: r for r in csv.DictReader(f)}
    assert len(header) == len(set(header))
    assert by_key[stored["key"]]["iterations"] == by_key[stored["key"]]["iterations_done"] == "50"
    # without --retry-failed the failed run is skipped, and the summary says so
    plain = run_sweep(spec, db, workers=0, progress=False)
    assert (plain.skipped, plain.ran, plain.failed_before) == (7, 0, 1)
    assert "1 of the runs already in" in plain.table() and "--retry-failed" in plain.table()
    # --retry-failed runs only the failed configuration again
    again = run_sweep(spec, db, workers=0, retry_failed=True, progress=False)
    assert again.failed_before == 0 and "--retry-failed" not in again.table()
    assert again.skipped == 6 and again.counts["failed"] == 1
    attempts = {r["key"]: r["attempts"] for r in db_rows(db)}
    assert sorted(attempts.values()) == [1] * 6 + [2]


def test_failing_and_dying_workers_do_not_stop_the_sweep(tmp_path):
    spec = write(tmp_path, """\
        experiment = "selftest"
        [[grid]]
        seed = { start = 0, stop = 6 }
        [[grid]]
        seed = [10]
        fail = [true]
        [[grid]]
        seed = [11]
        crash = [true]       # os._exit in the worker: BrokenProcessPool
        [[grid]]
        seed = [12]
        diverge = [true]
        """)  # fmt: skip
    db = tmp_path / "r.sqlite"
    summary = run_sweep(spec, db, workers=2, progress=False)
    assert summary.counts == {"ok": 6, "diverged": 1, "failed": 2}
    assert summary.requeued >= 1
    by_seed = {json.loads(r["config"])["seed"]: r for r in db_rows(db)}
    assert len(by_seed) == 9
    assert "failing on request" in by_seed[10]["error"]
    assert "worker process died" in by_seed[11]["error"]
    assert by_seed[12]["status"] == "diverged"
    assert json.loads(by_seed[12]["curves"])["loss"][-1] is None  # inf stored as null
    assert all(by_seed[s]["status"] == "ok" for s in range(6))


def test_serial_executor_refuses_to_crash_itself(tmp_path):
    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\ncrash = [true]\n')
    summary = run_sweep(spec, tmp_path / "r.sqlite", executor=SerialExecutor(), progress=False)
    assert summary.counts["failed"] == 1
    assert "refused outside a worker" in db_rows(tmp_path / "r.sqlite")[0]["error"]


def _count(db: Path) -> int:
    try:
        con = sqlite3.connect(db, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


def sleeping_sweep(
    tmp_path: Path, *, sleep: float, runs: int, workers: int, fail: bool = False
) -> tuple:
    """``(spec, db, cmd)`` of a `fastinit sweep` of ``runs`` selftest runs of ``sleep`` s
    (that fail, with ``fail``)."""
    spec = write(tmp_path, f"""\
        experiment = "selftest"
        [fixed]
        sleep = {sleep}
        fail = {str(fail).lower()}
        [grid]
        seed = {{ start = 0, stop = {runs} }}
        """)  # fmt: skip
    db = tmp_path / "r.sqlite"
    cmd = [sys.executable, "-m", "fastinit", "sweep", str(spec), "--db", str(db),
           "--workers", str(workers), "--quiet"]  # fmt: skip
    return spec, db, cmd


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_killed_mid_sweep_then_resume_runs_each_config_once(tmp_path, sig, sigint_default):
    spec, db, cmd = sleeping_sweep(tmp_path, sleep=0.25, runs=20, workers=2)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _count(db) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the sweep wrote no rows"
            time.sleep(0.05)
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    if sig == signal.SIGINT:  # the parent stops the workers and exits cleanly
        assert code == 130 and "interrupted" in err, err
    else:
        assert code == -signal.SIGKILL
    at_kill = db_rows(db)
    assert 3 <= len(at_kill) < 20
    # the orphaned workers notice their parent is gone and exit
    if sys.platform.startswith("linux"):
        pids = {int(r["worker"].rsplit(":", 1)[1]) for r in at_kill}
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids)
    summary = run_sweep(spec, db, workers=2, progress=False)
    assert summary.skipped == len(at_kill) and summary.ran == 20 - len(at_kill)
    rows = db_rows(db)
    assert len(rows) == 20
    assert {r["key"] for r in rows} == {k for k, _ in load_spec(spec).keyed_runs()}
    assert all(r["attempts"] == 1 and r["status"] == "ok" for r in rows)
    before = {r["key"]: r["finished"] for r in at_kill}
    assert all(r["finished"] == before[r["key"]] for r in rows if r["key"] in before)


def _signal_the_group(cmd: list[str], db: Path, signum: int) -> tuple[int, str]:
    """Start the sweep ``cmd`` in a session of its own, send ``signum`` to its whole
    process group (as a terminal does) once ``db`` holds two rows; its exit status
    and standard error."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while _count(db) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the sweep wrote no rows"
            time.sleep(0.05)
        os.killpg(proc.pid, signum)
        code = proc.wait(timeout=60)
        return code, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


def test_a_terminal_ctrl_c_stops_a_local_dask_sweep_without_worker_tracebacks(
    tmp_path, sigint_default
):
    # a terminal's Ctrl-C reaches every process of its group: the LocalCluster's worker
    # processes too, which printed a KeyboardInterrupt traceback each
    pytest.importorskip("distributed")
    spec, db, cmd = sleeping_sweep(tmp_path, sleep=0.2, runs=12, workers=2)
    code, err = _signal_the_group([*cmd, "--dask", "local"], db, signal.SIGINT)  # a Ctrl-C
    assert code == 130 and "interrupted" in err and "Traceback" not in err, err
    assert 2 <= len(db_rows(db)) < 12 and not db_rows(db, "claims")
    summary = run_sweep(spec, db, workers=0, progress=False)
    assert summary.ran == 12 - summary.skipped and len(db_rows(db)) == 12


def test_a_ctrl_c_after_every_run_was_recorded_says_nothing_is_left(tmp_path, monkeypatch, capsys):
    # a Ctrl-C while the pool shut down, every run recorded, said "run the same command
    # again to run the rest": the rerun ran nothing
    from fastinit.sweep import execute

    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1, 2]\n')
    db = tmp_path / "r.sqlite"
    run = execute.run_sweep

    def ctrl_c_at_the_end(*args, **kwargs):
        run(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(execute, "run_sweep", ctrl_c_at_the_end)
    argv = ["sweep", str(spec), "--db", str(db), "--workers", "0", "--quiet"]
    assert main(argv) == 130
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == f"fastinit sweep: interrupted; every run of the SPEC is in {str(db)!r}", err
    with sqlite3.connect(db) as con:  # one run lost: the message says to run the rest
        con.execute("DELETE FROM runs WHERE rowid = (SELECT MIN(rowid) FROM runs)")

    def ctrl_c_at_once(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(execute, "run_sweep", ctrl_c_at_once)
    assert main(argv) == 130
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.endswith("run the same command again to run the rest (1 of 3)"), err


def test_a_ctrl_c_as_the_sweep_makes_its_executor_closes_the_database(tmp_path, monkeypatch):
    # the database stayed open (its -wal and -shm files with it) while the traceback
    # lived, as a notebook keeps it
    from fastinit.sweep import execute

    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1]\n')
    db = tmp_path / "r.sqlite"

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(execute, "_own_executor", ctrl_c)
    with pytest.raises(KeyboardInterrupt) as e:
        run_sweep(spec, db, workers=0, progress=False)
    assert e.value is not None  # the traceback, and its frames, still alive
    assert not (tmp_path / "r.sqlite-wal").exists(), sorted(p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_a_terminal_hangup_stops_a_sweep_as_a_ctrl_c_does(tmp_path, executor, sighup_default):
    # the terminal closed (an ssh connection dropped): SIGHUP reached the sweep and its
    # workers, and ended both at once (exit -1, no message, the results that had
    # arrived and were not yet committed lost)
    if executor == "dask":
        pytest.importorskip("distributed")
    spec, db, cmd = sleeping_sweep(tmp_path, sleep=0.2, runs=12, workers=2)
    extra = ["--dask", "local"] if executor == "dask" else []
    code, err = _signal_the_group([*cmd, *extra], db, signal.SIGHUP)  # a closing terminal's
    assert code == 129 and "fastinit sweep: hung up; " in err and "Traceback" not in err, err
    rows = db_rows(db)
    assert 2 <= len(rows) < 12 and all(r["status"] == "ok" for r in rows), rows
    assert not db_rows(db, "claims")
    summary = run_sweep(spec, db, workers=0, progress=False)
    assert summary.ran == 12 - summary.skipped and len(db_rows(db)) == 12


# Store.record sends the signal on its first call, then waits while the other runs in
# flight finish (their results arrive), then records: as a Ctrl-C during that commit
INTERRUPTED_SWEEP = """\
import signal, sys, time
from fastinit.cli import main
from fastinit.sweep.store import Store

record = Store.record

def first(self, *args, **kwargs):
    Store.record = record
    signal.raise_signal(getattr(signal, sys.argv[1]))
    time.sleep(2.0)
    return record(self, *args, **kwargs)

if __name__ == "__main__":  # not in the spawned workers, which import this file
    Store.record = first
    sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(
    ("sig", "executor", "code", "word", "recorded"),
    [("SIGINT", "local", 130, "interrupted", 2), ("SIGTERM", "local", 143, "terminated", 2),
     ("SIGINT", "dask", 130, "interrupted", 3),
     # the terminal closed, an ssh connection dropped: it ended the sweep as SIGKILL does
     ("SIGHUP", "local", 129, "hung up", 2)],
)  # fmt: skip
def test_an_interrupted_sweep_records_every_result_that_had_arrived(
    tmp_path, sigint_default, sighup_default, sig, executor, code, word, recorded
):
    """A Ctrl-C while the first of the results that had arrived was committed lost the
    others (run again on resume); a SIGTERM (a Ctrl-C to the command) lost every one and
    left the runs claimed.  Two workers: the first two runs finish; the third is not
    started (a pool) or finishes too (Dask submits it ahead)."""
    if executor == "dask":
        pytest.importorskip("distributed")
    _, db, cmd = sleeping_sweep(tmp_path, sleep=0.3, runs=3, workers=2)
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED_SWEEP)
    extra = ["--dask", "local"] if executor == "dask" else []
    argv = [sys.executable, str(script), sig, *cmd[3:], *extra]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == code, done.stderr
    rows = db_rows(db)
    assert len(rows) == recorded and all(r["status"] == "ok" for r in rows), done.stderr
    assert db_rows(db, "claims") == []  # released, not left to go stale
    assert f"fastinit sweep: {word}; " in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


# the same, from Python: run_sweep called by a user's script (a batch job's SIGTERM)
TERMINATED_RUN_SWEEP = """\
import signal, sys, time
from fastinit.sweep import run_sweep
from fastinit.sweep.store import Store

record = Store.record

def first(self, *args, **kwargs):
    Store.record = record
    signal.raise_signal(signal.SIGTERM)
    time.sleep(2.0)
    return record(self, *args, **kwargs)

if __name__ == "__main__":  # not in the spawned workers, which import this file
    Store.record = first
    run_sweep(sys.argv[1], sys.argv[2], workers=2, progress=False)
    print("run_sweep returned")
"""


def test_a_sigterm_to_run_sweep_from_python_records_what_had_arrived_then_ends_the_process(
    tmp_path,
):
    """From Python (no command line, so no handler of fastinit's) a SIGTERM ended the
    process at once: the results that had arrived were lost and the runs stayed claimed.
    Now it stops the sweep as a Ctrl-C does, then ends the process by SIGTERM as before."""
    spec, db, _ = sleeping_sweep(tmp_path, sleep=0.3, runs=3, workers=2)
    script = tmp_path / "terminated.py"
    script.write_text(TERMINATED_RUN_SWEEP)
    argv = [sys.executable, str(script), str(spec), str(db)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert "run_sweep returned" not in done.stdout
    rows = db_rows(db)
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows), done.stderr
    assert db_rows(db, "claims") == []  # released, not left to go stale
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"workers": 1.5}, TypeError, "workers: expected an integer, got 1.5"),
        ({"workers": "2"}, TypeError, "workers: expected an integer, got '2'"),
        ({"workers": -1}, ValueError, "workers: expected an integer in [0, inf], got -1"),
        ({"kind": "dask"}, ValueError, "dask: expected a scheduler address or 'local'"),
        ({"workers": 0, "dask": "local"}, ValueError, "workers: expected at least 1 with dask"),
        # make_executor's argument is kind (run_sweep's is executor); arrays are no names
        ({"kind": "pool"}, ValueError, "kind: expected 'local', 'serial' or 'dask', got 'pool'"),
        ({"kind": np.array(["local", "dask"])}, TypeError, "kind: expected 'local', 'serial'"),
        ({"dask": np.array(["local"])}, TypeError, "dask: expected a scheduler address (str)"),
        ({"dask": 8786}, TypeError, "dask: expected a scheduler address (str) or 'local', "),
    ],
)
def test_make_executor_names_the_argument_it_refuses(kwargs, error, words):
    from fastinit.sweep.execute import make_executor

    with pytest.raises(error) as e:
        make_executor(**kwargs)
    assert words in str(e.value)


def test_workers_0_with_dask_local_is_refused_before_the_db_is_made(depth_db, tmp_path, capsys):
    # it was refused only after the --db folder and an empty database were made
    spec, _, _ = depth_db
    db = tmp_path / "new" / "r.sqlite"
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(spec), "--db", str(db), "--dask", "local", "--workers", "0"])
    assert e.value.code == 2
    assert "--workers: expected at least 1 with --dask" in capsys.readouterr().err
    assert not db.parent.exists()


@pytest.mark.parametrize("dry_run", [False, True])
def test_an_empty_dask_address_is_refused_before_the_db_is_made(depth_db, tmp_path, capsys,
                                                                  dry_run):  # fmt: skip
    # refused by the executor only after --db's folder and an empty database were made;
    # a dry run accepted it
    spec, _, _ = depth_db
    db = tmp_path / "new" / "r.sqlite"
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(spec), "--db", str(db), "--dask", "", *(["--dry-run"] * dry_run)])
    assert e.value.code == 2
    assert "--dask: expected a scheduler address or 'local', got ''" in capsys.readouterr().err
    assert not db.parent.exists()


@pytest.mark.parametrize(
    ("preload", "argv"),
    [
        (None, None),
        ("mymod", None),  # a string, as DASK_DISTRIBUTED__WORKER__PRELOAD=mymod gives
        (["mymod"], [["--flag"]]),  # an argument list per preload
    ],
)
def test_the_local_clusters_preload_keeps_the_users_own(preload, argv):
    # a string preload was split into letters (modules 'm', 'y', ... the workers
    # could not import: the cluster did not start)
    from fastinit.sweep.execute import local_preloads

    names, args = local_preloads(preload, argv)
    own = [] if preload is None else [preload] if isinstance(preload, str) else preload
    assert names == [*own, "fastinit.sweep.execute"]
    assert len(args) == len(names) or (args == [] and argv is None)
    if argv is not None:
        assert args == [*argv, []]


def test_a_malformed_dask_address_names_the_option(depth_db, tmp_path, capsys):
    pytest.importorskip("distributed")
    spec, _, _ = depth_db
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(spec), "--db", str(tmp_path / "d.sqlite"), "--dask", "bogus"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "dask: cannot reach the scheduler at 'bogus'" in err and "tcp://host:8786" in err


def test_an_unreachable_dask_scheduler_is_refused_before_the_db_is_made(depth_db, tmp_path,
                                                                         capsys):  # fmt: skip
    # refused only once the sweep started its executor, after --db's folder (said on
    # stderr) and an empty database had been made
    pytest.importorskip("distributed")
    spec, _, _ = depth_db
    db = tmp_path / "new" / "r.sqlite"
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(spec), "--db", str(db), "--dask", "bogus"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "dask: cannot reach the scheduler at 'bogus'" in err and "created" not in err
    assert not db.parent.exists()


def test_run_sweep_reaches_a_remote_scheduler_before_it_makes_the_database(depth_db, tmp_path):
    # run_sweep opened (and so created) the database before starting its executor
    pytest.importorskip("distributed")
    spec, _, _ = depth_db
    db = tmp_path / "r.sqlite"
    with pytest.raises(ValueError, match="dask: cannot reach the scheduler at 'bogus'"):
        run_sweep(spec, db, dask="bogus", progress=False)
    assert not db.exists()


def test_dask_local_cluster_gives_the_pool_results(depth_db, tmp_path):
    pytest.importorskip("distributed")
    spec, pool_db, _ = depth_db
    db = tmp_path / "dask.sqlite"
    code = main(["sweep", str(spec), "--db", str(db), "--dask", "local", "--workers", "2",
                 "--quiet"])  # fmt: skip
    assert code == 0
    pool = {r["key"]: (r["status"], r["metrics"], r["curves"]) for r in db_rows(pool_db)}
    dask = {r["key"]: (r["status"], r["metrics"], r["curves"]) for r in db_rows(db)}
    assert dask == pool
    assert all(r["worker"] for r in db_rows(db))


# ----------------------------------------------------------------------------- report
def _check_report_csv(out: Path, db: Path) -> None:
    expected = report_oracle(db)  # statuses and finite values per group, from SQL + JSON
    checked = 0
    for (exp, params), g in expected.items():
        with (out / exp / "summary.csv").open() as f:
            rows = list(csv.DictReader(f))
        p = json.loads(params)
        match = [r for r in rows if all(r[k] == (str(v) if not isinstance(v, list) else
                                                 json.dumps(v)) for k, v in p.items())]  # fmt: skip
        assert len(match) == 1, (p, rows[:2])
        row = match[0]
        assert int(row["runs"]) == len(g["status"])
        for s in ("ok", "diverged", "failed"):
            assert int(row[s]) == g["status"].count(s)
        for metric, values in g["values"].items():
            assert int(row[f"{metric}_count"]) == len(values)
            if not values:
                continue
            assert float(row[f"{metric}_mean"]) == pytest.approx(
                statistics.fmean(values), rel=1e-12
            )
            if len(values) > 1:
                assert float(row[f"{metric}_std"]) == pytest.approx(
                    statistics.stdev(values), rel=1e-9, abs=1e-300
                )
            else:
                assert row[f"{metric}_std"] == ""
            checked += 1
    assert checked > 0


def test_report_tables_and_figures_match_the_db(depth_db, tmp_path):
    _, db, _ = depth_db
    out = tmp_path / "report"
    code = main(["report", str(db), "--out", str(out)])
    assert code == 0
    _check_report_csv(out, db)
    for name in ("heatmap_act_std_last.png", "heatmap_grad_std_first.png", "signal_relu.png",
                 "signal_tanh.png", "signal_vs_depth.png", "summary.md", "runs.csv"):  # fmt: skip
        assert (out / "depth" / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    groups = summary["experiments"]["depth"]["groups"]
    assert len(groups) == 8 and all(g["seeds"] == [0, 1, 2] for g in groups)
    assert summary["experiments"]["depth"]["varying"] == ["init", "activation", "depth"]
    md = (out / "depth" / "summary.md").read_text()
    g = next(x for x in groups if x["params"]["init"] == "he" and x["params"]["depth"] == 5
             and x["params"]["activation"] == "relu")  # fmt: skip
    s = g["stats"]["act_std_last"]
    assert f"{s['mean']:.4g} ± {s['std']:.4g} (3)" in md
    with (out / "depth" / "runs.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 24


def test_a_new_report_removes_the_old_ones_files_only(depth_db, tmp_path):
    _, db, _ = depth_db
    out = tmp_path / "report"
    make_report(db, out)
    mine = out / "depth" / "notes.txt"  # the user's own file in the report directory
    mine.write_text("keep")
    assert (out / "depth" / "signal_relu.png").exists()
    make_report(db, out, figures=False)
    left = sorted(p.name for p in (out / "depth").iterdir() if not p.name.startswith("."))
    assert left == ["notes.txt", "runs.csv", "summary.csv", "summary.md"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "depth", "summary.json", "summary.md"
    ]  # fmt: skip


def test_report_of_a_training_sweep_with_failures(tmp_path):
    spec = write(tmp_path, """\
        experiment = "selftest"
        [[grid]]
        init = ["a", "b"]
        activation = ["x", "y"]
        value = [0.5, 1.5]
        seed = [0, 1, 2]
        [[grid]]
        init = ["a"]
        activation = ["x"]
        value = [0.5]
        seed = [3]
        fail = [true]
        [[grid]]
        init = ["b"]
        activation = ["y"]
        value = [1.5]
        seed = [4]
        diverge = [true]
        """)  # fmt: skip
    db = tmp_path / "r.sqlite"
    run_sweep(spec, db, workers=0, progress=False)
    out = tmp_path / "out"
    result = make_report(db, out)
    _check_report_csv(out, db)
    names = {p.name for p in result.written}
    assert {"heatmap_value.png", "heatmap_final_loss.png", "curves_loss.png"} <= names
    assert "selftest" in result.table()
    figures = [p for p in result.written if p.suffix == ".png"]
    assert f"runs.csv; {len(figures)} PNG figures)" in result.footer
    with pytest.raises(ValueError, match="no runs"):
        make_report(db, tmp_path / "none", experiment="mnist")
    with pytest.raises(ValueError, match="does not exist"):
        make_report(tmp_path / "missing.sqlite", tmp_path / "none")


def test_report_columns_are_unique_for_older_databases(tmp_path):
    """Older versions stored the completed iterations as the metric ``iterations``."""
    db = tmp_path / "old.sqlite"
    config = runners.full_config("planar", {"iterations": 60})
    result = runners.execute(runners.full_config("selftest", {}))
    result.update(status="diverged", metrics={"final_loss": None, "iterations": 5, "lr": 0.5})
    with Store(db) as store:
        store.record(config_key(config), config, result, "old")
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    with (out / "planar" / "runs.csv").open() as f:
        header = next(csv.reader(f))
        f.seek(0)
        (row,) = csv.DictReader(f)
    assert len(header) == len(set(header)), header
    assert row["iterations"] == "60" and row["iterations_done"] == "5"
    assert row["lr"] == "1.2" and row["lr_metric"] == "0.5"  # a metric named like a parameter
    with (out / "planar" / "summary.csv").open() as f:
        (summary,) = csv.DictReader(f)
    assert summary["iterations"] == "60" and summary["iterations_done_mean"] == "5.0"
    md = (out / "planar" / "summary.md").read_text()
    assert "| runs | ok/div/fail | final_loss | iterations_done | lr_metric |" in md


def test_report_without_figures_says_so(tmp_path, capsys):
    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1]\n')
    db = tmp_path / "r.sqlite"
    run_sweep(spec, db, workers=0, progress=False)
    out = tmp_path / "out"
    assert main(["report", str(db), "--out", str(out), "--no-figures"]) == 0
    text = capsys.readouterr().out
    assert "no figures (--no-figures)" in text and "CSV and figures" not in text, text
    assert "summary.csv, summary.md, runs.csv" in text
    assert not list(out.rglob("*.png"))


# ----------------------------------------------------------------------------- pieces
def test_an_interrupted_fit_interrupts_the_run(monkeypatch):
    """A Ctrl-C that fit caught is raised again (History.raise_if_interrupted), not recorded."""
    import numpy as np

    from fastinit.model import MLP
    from fastinit.train import History

    calls = []
    raise_if_interrupted = History.raise_if_interrupted

    def spy(self):
        calls.append(self.status)
        return raise_if_interrupted(self)

    def fit(self, *args, **kwargs):
        return History(np.zeros(0), 0, 0.0, status="interrupted")

    monkeypatch.setattr(History, "raise_if_interrupted", spy)
    monkeypatch.setattr(MLP, "fit", fit)
    config = runners.full_config("planar", {"iterations": 3, "m": 8})
    with pytest.raises(KeyboardInterrupt):
        runners.execute(config)
    assert calls == ["interrupted"]


def test_store_upsert_and_retry_semantics(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        cfg = runners.full_config("selftest", {"seed": 1})
        key = config_key(cfg)
        store.record(key, cfg, runners.execute(dict(cfg, fail=True)), "t")
        assert store.done([key]) == {key}
        assert store.done([key], retry_failed=True) == set()
        store.record(key, cfg, runners.execute(cfg), "t")
        (row,) = store.rows()
        assert row["status"] == "ok" and row["attempts"] == 2 and row["error"] is None
        assert row["config"] == cfg and row["sweep"] == "t"
    (tmp_path / "junk.sqlite").write_text("not a database")
    with pytest.raises(ValueError, match="not a fastinit results database"):
        Store(tmp_path / "junk.sqlite")


def test_a_concurrent_sweeps_result_does_not_replace_a_recorded_run(tmp_path):
    """Two sweeps of one database: a run the other one recorded meanwhile keeps its row."""
    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1, 2]\n')
    db = tmp_path / "r.sqlite"

    class Racing(SerialExecutor):
        def results(self, items, skip=None):
            for key, config in items:
                with Store(db) as other:  # the other sweep records this run first (ok) ...
                    other.record(key, config, runners.execute(config), "other")
                yield key, runners.execute(dict(config, fail=True))  # ... this one fails it

    summary = run_sweep(spec, db, executor=Racing(), progress=False)
    assert summary.counts["failed"] == 3 and summary.concurrent == 3
    assert "3 of them recorded meanwhile by another sweep" in summary.table()
    rows = db_rows(db)
    assert len(rows) == 3
    assert all(r["status"] == "ok" and r["attempts"] == 1 and r["sweep"] == "other" for r in rows)
    # a failed row is still replaced (--retry-failed), and counted as a second attempt
    with Store(db) as store:
        cfg = runners.full_config("selftest", {"seed": 9})
        key = config_key(cfg)
        assert store.record(key, cfg, runners.execute(dict(cfg, fail=True)), keep_done=True)
        assert store.record(key, cfg, runners.execute(cfg), keep_done=True)
        assert not store.record(key, cfg, runners.execute(cfg), keep_done=True)
        (row,) = [r for r in store.rows() if r["key"] == key]
        assert row["status"] == "ok" and row["attempts"] == 2


def _damaged_runs_table(db):
    """Overwrite the header of ``db``'s ``runs`` root page with garbage, as a torn write
    or a bad disk leaves it (the file's own header stays readable)."""
    con = sqlite3.connect(db)
    (root,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()
    (size,) = con.execute("PRAGMA page_size").fetchone()
    con.execute("PRAGMA journal_mode=DELETE")  # the WAL folded back into the file
    con.close()
    with open(db, "r+b") as f:
        f.seek((root - 1) * size)
        f.write(b"\xff" * 64)  # no page type


@pytest.mark.parametrize("damage", ["torn-page", "wrong-columns"])
def test_a_damaged_database_is_a_one_line_error_naming_db(tmp_path, capsys, damage):
    # sweep and --dry-run stopped with sqlite3's traceback ("database disk image is
    # malformed", "no such column: attempts"), where fastinit report said what was wrong
    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1, 2]\n')
    db = tmp_path / "r.sqlite"
    if damage == "torn-page":
        run_sweep(spec, db, workers=0, progress=False)
        _damaged_runs_table(db)
    else:
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        con.execute("CREATE TABLE runs (key TEXT PRIMARY KEY, status TEXT)")
        con.commit()
        con.close()
    before = db.read_bytes()
    for argv in (["--dry-run"], ["--workers", "0", "--quiet"]):
        with pytest.raises(SystemExit) as e:
            main(["sweep", str(spec), "--db", str(db), *argv])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"fastinit sweep: error: --db: {db}"), err
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    with pytest.raises(ValueError, match=f"^db: {re.escape(str(db))}"):
        run_sweep(spec, db, workers=0, progress=False)
    if damage == "wrong-columns":  # found before anything is written (the torn page, later)
        assert db.read_bytes() == before


def test_a_database_of_another_program_is_left_alone(tmp_path, capsys):
    db = tmp_path / "other.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE people (name TEXT)")
    con.commit()
    con.close()
    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1]\n')
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(spec), "--db", str(db), "--dry-run"])
    assert e.value.code == 2
    assert "not a fastinit results database (it holds the tables people)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a fastinit results database"):
        run_sweep(spec, db, workers=0, progress=False)
    con = sqlite3.connect(db)
    tables = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    con.close()
    assert tables == ["people"] and mode == "delete"
    # an empty file is an empty database: a dry run counts, a sweep fills it
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    assert main(["sweep", str(spec), "--db", str(empty), "--dry-run"]) == 0
    assert "2 runs in the SPEC, 0 in" in capsys.readouterr().out
    assert run_sweep(spec, empty, workers=0, progress=False).counts["ok"] == 2


def test_progress_bar_counts_and_estimates_time_left():
    stream = io.StringIO()
    bar = SweepProgress(4, stream=stream, interval=0.0)
    bar.update("ok")
    bar.update("failed")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("sweep  50% |") and "2/4 ok 1 diverged 0 failed 1" in lines[-1]
    assert "<" in lines[-1] and "?" not in lines[-1]


def test_sweep_command_list_and_dry_run(depth_db, capsys):
    spec, db, _ = depth_db
    assert main(["sweep", "--list"]) == 0
    text = capsys.readouterr().out
    for word in ("planar", "mnist", "histogram", "depth", "optimizer", "train_size"):
        assert word in text
    assert "selftest" not in text
    rows = [ln for ln in text.splitlines() if ln.startswith("  ") and "default " in ln]
    assert len({ln.index("default ") for ln in rows}) == 1, rows  # one aligned column
    assert main(["sweep", str(spec), "--db", str(db), "--dry-run"]) == 0
    assert "24 runs in the SPEC, 24 in" in capsys.readouterr().out
    fresh = db.parent / "not-yet.sqlite"
    assert main(["sweep", str(spec), "--db", str(fresh), "--dry-run"]) == 0
    assert "24 runs in the SPEC, 0 in" in capsys.readouterr().out
    assert not fresh.exists()  # a dry run writes nothing


def test_example_spec_is_valid():
    example = Path(__file__).resolve().parents[1] / "examples" / "sweep_small.toml"
    spec = load_spec(example)
    assert spec.experiment == "depth" and 8 <= len(spec) <= 400


@pytest.mark.parametrize("flag", ["progress", "retry_failed"])
def test_run_sweep_flags_must_be_bools(tmp_path, flag):
    spec = write(tmp_path, 'experiment = "planar"\n[fixed]\niterations = 1\n', "s.toml")
    with pytest.raises(TypeError, match=f"{flag}: expected True or False"):
        run_sweep(spec, tmp_path / "r.sqlite", workers=0, **{flag: "no"})
    assert not (tmp_path / "r.sqlite").exists()  # refused before the store is opened


def test_concurrent_sweeps_share_the_work(tmp_path, monkeypatch):
    """A run another sweep finished after this one started is not run again here."""
    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1, 2]\n')
    db = tmp_path / "r.sqlite"
    execute, ran = runners.execute, []

    def racing(config):
        ran.append(config["seed"])
        if len(ran) == 1:  # meanwhile, another sweep of the database finishes seeds 1 and 2
            with Store(db) as other:
                for seed in (1, 2):
                    cfg = runners.full_config("selftest", {"seed": seed})
                    other.record(config_key(cfg), cfg, execute(cfg), "other")
        return execute(config)

    monkeypatch.setattr(runners, "execute", racing)
    summary = run_sweep(spec, db, workers=0, progress=False)
    assert ran == [0] and summary.ran == 1 and summary.taken == 2
    assert "2 more recorded meanwhile by another sweep" in summary.table()
    rows = db_rows(db)
    assert len(rows) == 3 and all(r["attempts"] == 1 and r["status"] == "ok" for r in rows)
    assert sorted(r["sweep"] for r in rows) == sorted(["other", "other", load_spec(spec).name])


def test_the_process_pool_asks_before_each_submission(tmp_path):
    from fastinit.sweep.execute import make_executor

    items = [(f"k{s}", runners.full_config("selftest", {"seed": s})) for s in range(4)]
    asked = []

    def skip(key):
        asked.append(key)
        return key in ("k1", "k2")

    executor = make_executor("local", workers=1)
    try:
        got = sorted(key for key, _ in executor.results(items, skip=skip))
    finally:
        executor.close()
    assert got == ["k0", "k3"] and sorted(asked) == ["k0", "k1", "k2", "k3"]


@pytest.mark.parametrize("experiment", ["histogram", "depth"])
def test_a_sweeps_signal_run_draws_no_progress_bar(monkeypatch, experiment):
    # a sweep worker's stderr is not a terminal the user watches: no bar in it
    import importlib

    module = importlib.import_module(f"fastinit.experiments.{experiment}")
    name = f"run_{experiment}"
    seen = {}
    real = getattr(module, name)

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    cfg = runners.full_config(experiment, {"depth": 2, "width": 8, "samples": 16})
    assert runners.run(cfg)["status"] == "ok"
    assert seen["progress"] is False


# ----------------------------------------------------------------------------- claims
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


def _claims(db: Path) -> list[dict]:
    return db_rows(db, "claims")


def test_two_sweeps_of_one_database_never_run_a_claimed_run_twice(tmp_path, monkeypatch):
    """A second sweep started while the first runs seed 0 skips seed 0, says so, runs the rest."""
    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1, 2]\n')
    db = tmp_path / "r.sqlite"
    execute, ran, other = runners.execute, [], []

    def racing(config):
        ran.append(config["seed"])
        if not other:  # while the first sweep runs its first run, a second sweep starts
            other.append(None)
            claims = _claims(db)
            assert len(claims) == 1 and claims[0]["pid"] == os.getpid(), claims
            assert claims[0]["started"] <= claims[0]["lease"] <= time.time()
            other[0] = run_sweep(spec, db, workers=0, progress=False)
        return execute(config)

    monkeypatch.setattr(runners, "execute", racing)
    first = run_sweep(spec, db, workers=0, progress=False)
    second = other[0]
    assert sorted(ran) == [0, 1, 2]  # each run computed once, by one sweep or the other
    assert second.ran == 2 and second.running_elsewhere == 1 and second.taken == 0
    assert "1 more being run by another sweep" in second.table()
    assert "it will record it" in second.table()
    assert first.ran == 1 and first.taken == 2 and first.running_elsewhere == 0
    assert "being run by another sweep" not in first.table()
    rows = db_rows(db)
    assert len(rows) == 3 and all(r["attempts"] == 1 and r["status"] == "ok" for r in rows)
    assert _claims(db) == []  # every claim released as its run was recorded


def test_claims_of_live_and_stale_claimants(tmp_path):
    """A live claim is refused; a dead pid's (this host) or an expired lease's is taken over."""
    from fastinit.sweep.store import LEASE_SECONDS, Claimant, renew

    cfg = runners.full_config("selftest", {"seed": 0})
    key = config_key(cfg)
    with Store(tmp_path / "r.sqlite") as a, Store(tmp_path / "r.sqlite") as b:
        me, other = Claimant(), Claimant()
        assert a.claim(key, other) == "claimed"
        assert b.claim(key, me) == "busy"  # this process, another sweep: alive
        assert a.claim(key, other) == "claimed"  # its own claim again
        a.release(other)
        assert a.claims() == {}
        for holder, live in [
            (Claimant(pid=_dead_pid()), False),  # this host, its process is gone
            (Claimant(host="elsewhere.example", pid=_dead_pid()), True),  # a pid of another host
        ]:  # fmt: skip
            assert a.claim(key, holder) == "claimed"
            assert b.claim(key, me) == ("busy" if live else "claimed"), holder
            if live:  # another host's claim goes stale when its lease is not renewed
                renew(a.conn, holder)
                b.conn.execute("UPDATE claims SET lease = lease - ?", (LEASE_SECONDS + 1,))
                b.conn.commit()
                assert b.claim(key, me) == "claimed"
            (claim,) = a.claims().values()
            assert (claim["host"], claim["pid"], claim["token"]) == (me.host, me.pid, me.token)
            b.release(me)
        # recording a run releases its claimant's claim in the same transaction, no other
        assert b.claim(key, me) == "claimed"
        a.record(key, cfg, runners.execute(cfg), "t", claimant=other)
        assert list(a.claims()) == [key]
        a.record(key, cfg, runners.execute(cfg), "t", claimant=me)
        assert a.claims() == {}
        assert b.claim(key, me) == "recorded"  # nothing to run


def test_a_workers_environment_turns_the_compile_helper_off(monkeypatch):
    # pool workers got FASTINIT_COMPILE_HELPER=1: each started a second compiling process
    # competing with the workers for the cores (thread_env's docstring)
    from fastinit import _compile_helper
    from fastinit.sweep.execute import thread_env

    env = thread_env(3)
    assert env == {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   "NUMBA_NUM_THREADS": "3", "FASTINIT_COMPILE_HELPER": "0"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert not _compile_helper.enabled()


def test_a_sweep_of_one_run_and_one_worker_is_worded_in_the_singular(tmp_path, capsys):
    # "1 runs in the SPEC" (summary and --dry-run) and "1 spawn workers"
    from fastinit.sweep.execute import PoolExecutor, SweepSummary

    assert PoolExecutor(workers=1).describe().startswith("local pool: 1 spawn worker x ")
    assert "local pool: 2 spawn workers x " in PoolExecutor(workers=2).describe()
    summary = SweepSummary("one", tmp_path / "r.sqlite", 1, 0)
    assert summary.table().startswith("sweep 'one': 1 run in the SPEC, 0 already in ")
    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0]\n')
    main(["sweep", str(spec), "--db", str(tmp_path / "r.sqlite"), "--dry-run"])
    assert "(selftest): 1 run in the SPEC, " in capsys.readouterr().out


def test_a_run_recorded_failed_since_the_sweep_listed_it_is_not_claimed(tmp_path):
    """A failed run is claimed only as the sweep saw it when it listed its runs (``seen``:
    its attempts then, 0 if unrecorded): recorded again since, another sweep ran it."""
    from fastinit.sweep.store import Claimant

    cfg = runners.full_config("selftest", {"seed": 0, "fail": True})
    key = config_key(cfg)
    with Store(tmp_path / "r.sqlite") as a, Store(tmp_path / "r.sqlite") as b:
        me, other = Claimant(), Claimant()
        assert a.claim(key, other) == "claimed"
        a.record(key, cfg, runners.execute(cfg), "t", claimant=other)
        assert b.claim(key, me) == "recorded"  # listed unrecorded: the other sweep ran it
        assert b.claim(key, me, seen=1) == "claimed"  # --retry-failed, listed as failed once
        b.release(me)
        a.record(key, cfg, runners.execute(cfg), "t")  # another --retry-failed sweep's rerun
        assert b.claim(key, me, seen=1) == "recorded"
        assert b.claim(key, me, seen=2) == "claimed"


def test_a_claim_of_an_earlier_process_with_this_pid_is_stale(tmp_path):
    """Another claimant with this host and pid: busy while its lease is renewed, then stale.

    A container restarted with the same host name runs the sweep as pid 1 again (the
    earlier one's claims go stale after LEASE_SECONDS / 2, five renewals missed); two
    such containers running at once each renew their own claims: neither takes them.
    """
    from fastinit.sweep.store import LEASE_SECONDS, Claimant

    key = config_key(runners.full_config("selftest", {"seed": 0}))
    with Store(tmp_path / "r.sqlite") as store:
        me = Claimant()
        for age, state in [(0, "busy"), (2 * 30 + 1, "busy"), (LEASE_SECONDS / 2 + 1, "claimed")]:
            with store.conn:  # the claim of another process that has (or had) this pid
                store.conn.execute(
                    "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?)",
                    (key, me.host, me.pid, "0" * 32, time.time() - age, time.time() - age),
                )
            assert store.claim(key, me) == state, age
            token = me.token if state == "claimed" else "0" * 32
            assert store.claims()[key]["token"] == token


def test_a_claim_reads_its_run_and_claim_by_key(tmp_path):
    """Claiming one run looks up its row and its claim by key, in one statement: no scan."""
    from fastinit.sweep.store import Claimant

    other = Claimant(host="elsewhere.example")
    with Store(tmp_path / "r.sqlite") as store:
        for i in range(50):
            assert store.claim(f"held{i}", other) == "claimed"
        seen: list[str] = []
        store.conn.set_trace_callback(seen.append)
        assert store.claim("k", Claimant()) == "claimed"
        assert list(store.claims(["k", "held3", "none"])) == ["k", "held3"]
        store.conn.set_trace_callback(None)
        selects = [q for q in seen if q.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 1 + 3, seen  # the claim's, then one per key asked
        for query in selects:
            plan = " ".join(r[-1] for r in store.conn.execute(f"EXPLAIN QUERY PLAN {query}"))
            assert "SCAN claims" not in plan and "SCAN runs" not in plan, (query, plan)


def test_a_sweep_takes_over_the_claims_of_a_dead_sweep(tmp_path):
    from fastinit.sweep.store import Claimant

    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1, 2]\n')
    db = tmp_path / "r.sqlite"
    dead = Claimant(pid=_dead_pid())
    with Store(db) as store:
        for key, _ in load_spec(spec).keyed_runs():
            assert store.claim(key, dead) == "claimed"
    summary = run_sweep(spec, db, workers=0, progress=False)
    assert summary.ran == 3 and summary.running_elsewhere == 0
    assert _claims(db) == [] and len(db_rows(db)) == 3


def test_a_live_claim_is_skipped_until_it_goes_stale(tmp_path):
    """A run another live sweep holds is reported, not run; once that sweep is gone it runs."""
    from fastinit.sweep.store import Claimant

    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1, 2]\n')
    db = tmp_path / "r.sqlite"
    (key, _), *_ = load_spec(spec).keyed_runs()
    holder = Claimant()  # another sweep of this process: alive
    with Store(db) as store:
        assert store.claim(key, holder) == "claimed"
    summary = run_sweep(spec, db, workers=0, progress=False)
    assert summary.ran == 2 and summary.running_elsewhere == 1
    table = summary.table()
    assert (
        f"1 more being run by another sweep of {db} ({holder.host}:{holder.pid}): not run "
        "here, it will record it (run"
    ) in table
    assert [c["token"] for c in _claims(db)] == [holder.token]  # its claim stays
    assert key not in {r["key"] for r in db_rows(db)}
    with Store(db) as store:  # the other sweep is interrupted: its claim is released
        store.release(holder)
    summary = run_sweep(spec, db, workers=0, progress=False)
    assert summary.ran == 1 and summary.skipped == 2 and summary.running_elsewhere == 0


def test_a_claim_taken_over_during_the_sweep_is_run_at_its_end(tmp_path, monkeypatch):
    """The other sweep dies while this one runs: its run is picked up in the same sweep."""
    from fastinit.sweep.store import Claimant

    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1, 2]\n')
    db = tmp_path / "r.sqlite"
    keyed = load_spec(spec).keyed_runs()
    holder = Claimant()
    with Store(db) as store:
        assert store.claim(keyed[0][0], holder) == "claimed"
    execute, ran = runners.execute, []

    def dying(config):  # the other sweep's process is gone once this one ran a run
        ran.append(config["seed"])
        with Store(db) as store:
            store.release(holder)
        return execute(config)

    monkeypatch.setattr(runners, "execute", dying)
    summary = run_sweep(spec, db, workers=0, progress=False)
    assert sorted(ran) == [0, 1, 2] and ran[-1] == keyed[0][1]["seed"]  # the last: once free
    assert summary.ran == 3 and summary.running_elsewhere == 0


@pytest.mark.parametrize("how", ["failed", "KeyboardInterrupt", "executor error"])
def test_claims_are_released_when_a_run_fails_or_the_sweep_stops(tmp_path, monkeypatch, how):
    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1, 2]\n')
    db = tmp_path / "r.sqlite"
    execute, held = runners.execute, []

    def run(config):
        held.append(len(_claims(db)))  # this run is claimed while it runs
        if how == "KeyboardInterrupt" and len(held) == 2:
            raise KeyboardInterrupt
        return execute(dict(config, fail=True))

    class Broken(SerialExecutor):  # the executor itself fails after two runs
        def results(self, items, skip=None):
            for n, item in enumerate(super().results(items, skip)):
                yield item
                if n == 1:
                    raise RuntimeError("the cluster went away")

    monkeypatch.setattr(runners, "execute", run)
    if how == "failed":
        summary = run_sweep(spec, db, workers=0, progress=False)
        assert summary.counts["failed"] == 3
    else:
        error = KeyboardInterrupt if how == "KeyboardInterrupt" else RuntimeError
        executor = Broken() if how == "executor error" else None
        with pytest.raises(error):
            run_sweep(spec, db, workers=0, executor=executor, progress=False)
    assert held and all(n == 1 for n in held), held
    assert _claims(db) == []


def test_the_lease_of_a_sweeps_claims_is_renewed_while_it_runs(tmp_path):
    from fastinit.sweep.store import Claimant, keep_alive

    db = tmp_path / "r.sqlite"
    me = Claimant()
    with Store(db) as store:
        assert store.claim("k", me) == "claimed"
        store.conn.execute("UPDATE claims SET lease = 0")
        store.conn.commit()
        with keep_alive(db, me, interval=0.01):
            deadline = time.monotonic() + 10
            while store.claims()["k"]["lease"] == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert time.time() - store.claims()["k"]["lease"] < 10


def test_leaving_keep_alive_is_prompt_while_the_write_lock_is_held(tmp_path, monkeypatch):
    """A renewal waiting for the database's write lock gives up after the busy timeout
    (its connection's, not the interval), and leaving the block starts no other renewal
    and waits no interval: the beat's connections and waits are recorded, not timed."""
    import threading

    from fastinit.sweep import store as store_module
    from fastinit.sweep.store import Claimant, keep_alive

    monkeypatch.setattr(store_module, "_RENEW_BUSY_SECONDS", 0.05)
    beat = "fastinit-sweep-lease"
    events: list = []  # ("connect", timeout), ("renewal", error text), ("wait", seconds, set)
    locked = threading.Event()

    class Recorded(threading.Event):  # threading's own Events too: only the beat's record
        def wait(self, timeout=None):
            if threading.current_thread().name != beat:
                return super().wait(timeout)
            done = super().wait(min(timeout, 0.01))  # the sequence, not the real interval
            events.append(("wait", timeout, done))
            return done

    connect, renew = sqlite3.connect, store_module.renew

    def recorded_connect(*args, **kwargs):
        if threading.current_thread().name == beat:
            events.append(("connect", kwargs.get("timeout")))
        return connect(*args, **kwargs)

    def recorded_renew(*args):
        try:
            renew(*args)
        except sqlite3.OperationalError as e:
            events.append(("renewal", str(e)))
            locked.set()
            raise
        events.append(("renewal", "ok"))

    monkeypatch.setattr(store_module.threading, "Event", Recorded)
    monkeypatch.setattr(store_module.sqlite3, "connect", recorded_connect)
    monkeypatch.setattr(store_module, "renew", recorded_renew)
    db = tmp_path / "r.sqlite"
    me = Claimant()
    with Store(db) as store, Store(db) as other:
        assert store.claim("k", me) == "claimed"
        other.conn.execute("BEGIN IMMEDIATE")  # another sweep writes (and holds the lock)
        with keep_alive(db, me, interval=4.0):
            assert locked.wait(20), events
        other.conn.rollback()
    assert events[0] == ("wait", 4.0, False), events
    assert ("connect", 0.05) in events and all(e[1] == 0.05 for e in events if e[0] == "connect")
    assert all(e == ("renewal", "database is locked") for e in events if e[0] == "renewal")
    assert events[-1][0] == "wait" and events[-1][2], events  # the stop, seen at once
    assert all(not e[2] for e in events[:-1] if e[0] == "wait"), events


@pytest.mark.parametrize("fail", [False, True], ids=["ok", "failed"])
def test_two_sweep_processes_run_each_config_once(tmp_path, fail):
    """Two `fastinit sweep` commands on one database at once: every run computed once,
    failed runs too (each sweep ran every run the other had recorded failed meanwhile).

    The first is stopped (SIGSTOP) once it has claimed a run, until the second has claimed
    one: else a first sweep that ends before the second has started (seen on a host busy
    with 15 test processes) leaves the second nothing to run."""
    _, db, cmd = sleeping_sweep(tmp_path, sleep=0.4, runs=16, workers=1, fail=fail)

    def claimants():
        try:
            return {c["pid"] for c in _claims(db)}
        except sqlite3.OperationalError:  # the sweep has not made its tables yet
            return set()

    def wait_for_a_claim(proc):
        deadline = time.monotonic() + 120
        while proc.pid not in claimants():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the sweep claimed no run"
            time.sleep(0.02)

    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    first = subprocess.Popen(cmd, **pipes)
    second = None
    try:
        wait_for_a_claim(first)  # the first is under way (a run in flight) before the second
        os.kill(first.pid, signal.SIGSTOP)
        try:
            second = subprocess.Popen(cmd, **pipes)
            wait_for_a_claim(second)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        second_out, second_err = second.communicate(timeout=120)
        out, err = first.communicate(timeout=120)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
    second = subprocess.CompletedProcess(cmd, second.returncode, second_out, second_err)
    assert first.returncode == 0 and second.returncode == 0, (err, second.stderr)
    ran = [int(o.split(" run now")[0].rsplit(", ", 1)[1]) for o in (out, second.stdout)]
    assert sum(ran) == 16, (out, second.stdout)
    # each computed some: the two ran at once (a second sweep started after the first
    # ended would find every run recorded, and this test would test nothing)
    assert min(ran) > 0, (out, second.stdout)
    assert "(its results kept)" not in out + second.stdout  # nothing computed twice
    rows = db_rows(db)
    status = "failed" if fail else "ok"
    assert len(rows) == 16 and all(r["attempts"] == 1 and r["status"] == status for r in rows)
    assert _claims(db) == []


def test_a_process_is_alive_until_it_exits_and_windows_is_never_sent_a_signal(monkeypatch):
    from fastinit import _files

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _files.alive(child.pid) and _files.alive(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert not _files.alive(child.pid)
    # on Windows os.kill(pid, 0) is a Ctrl-C (signal.CTRL_C_EVENT == 0) to the claimant
    monkeypatch.setattr(_files.os, "name", "nt")
    monkeypatch.setattr(_files.os, "kill", lambda *a: pytest.fail(f"os.kill{a} on Windows"))
    asked = []
    monkeypatch.setattr(_files, "_windows_alive", lambda pid: asked.append(pid) or False)
    assert not _files.alive(1234) and asked == [1234]


def test_windows_asks_whether_the_process_handle_is_signaled(monkeypatch):
    """Windows: OpenProcess with a HANDLE result, WaitForSingleObject(handle, 0), CloseHandle.

    An exit code of 259 (STILL_ACTIVE) is a legal one: it is not asked.
    """
    import ctypes
    from ctypes import wintypes

    from fastinit import _files

    class Function:
        def __init__(self, name, calls, result):
            self.name, self.calls, self.result = name, calls, result
            self.restype = ctypes.c_int  # ctypes' default: a C int (a 64-bit HANDLE truncated)
            self.argtypes = None

        def __call__(self, *args):
            self.calls.append((self.name, *args))
            return self.result

    class Kernel32:
        def __init__(self, handle, wait):
            self.calls = []
            self.OpenProcess = Function("OpenProcess", self.calls, handle)
            self.WaitForSingleObject = Function("WaitForSingleObject", self.calls, wait)
            self.CloseHandle = Function("CloseHandle", self.calls, 1)
            self.GetExitCodeProcess = Function("GetExitCodeProcess", self.calls, 1)

    handle = 2**40 + 8  # a handle beyond 32 bits
    for kernel32, last_error, expected in [
        (Kernel32(handle, 0x102), 0, True),  # WAIT_TIMEOUT: running
        (Kernel32(handle, 0), 0, False),  # WAIT_OBJECT_0: exited
        (Kernel32(handle, 0xFFFFFFFF), 0, True),  # WAIT_FAILED: alive, its lease decides
        (Kernel32(None, 0), 5, True),  # ERROR_ACCESS_DENIED: another user's, running
        (Kernel32(None, 0), 87, False),  # ERROR_INVALID_PARAMETER: no such process
    ]:  # fmt: skip
        loaded = []

        def win_dll(name, kernel32=kernel32, loaded=loaded, **kw):
            loaded.append((name, kw))
            return kernel32

        monkeypatch.setattr(ctypes, "WinDLL", win_dll, raising=False)
        _files._kernel32.cache_clear()  # loaded once per process
        monkeypatch.setattr(ctypes, "get_last_error", lambda e=last_error: e, raising=False)
        assert _files._windows_alive(1234) is expected, kernel32.calls
        assert loaded == [("kernel32", {"use_last_error": True})]
        assert kernel32.OpenProcess.restype is wintypes.HANDLE
        assert kernel32.OpenProcess.argtypes == [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
        assert kernel32.WaitForSingleObject.argtypes == [wintypes.HANDLE, wintypes.DWORD]
        assert kernel32.WaitForSingleObject.restype is wintypes.DWORD
        assert kernel32.CloseHandle.argtypes == [wintypes.HANDLE]
        opened = ("OpenProcess", 0x1000 | 0x00100000, False, 1234)  # QUERY_LIMITED | SYNCHRONIZE
        if kernel32.OpenProcess.result is None:
            assert kernel32.calls == [opened]
        else:
            assert kernel32.calls == [
                opened, ("WaitForSingleObject", handle, 0), ("CloseHandle", handle)
            ]  # fmt: skip
    _files._kernel32.cache_clear()  # no fake left behind


def test_a_dry_run_counts_the_runs_another_sweep_is_running(tmp_path, capsys):
    from fastinit.sweep.store import Claimant

    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1, 2]\n')
    db = tmp_path / "r.sqlite"
    keys = [k for k, _ in load_spec(spec).keyed_runs()]
    other = Claimant(host="elsewhere.example", pid=4321)
    with Store(db) as store:
        assert store.claim(keys[1], other) == "claimed"
        assert store.claim(keys[2], Claimant(pid=_dead_pid())) == "claimed"  # stale: not counted
    assert main(["sweep", str(spec), "--db", str(db), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 runs in the SPEC, 0 in" in out and "3 to run" in out
    assert "; 1 of them being run by another sweep: elsewhere.example:4321" in out, out
    # a failed run another sweep retries is counted with --retry-failed
    with Store(db) as store:
        store.record(keys[1], runners.full_config("selftest", {"seed": 1}),
                     {"status": "failed", "error": "x"}, "t", claimant=Claimant())  # fmt: skip
        store.conn.execute("UPDATE claims SET lease = ? WHERE key = ?", (time.time(), keys[1]))
        store.conn.commit()
    assert main(["sweep", str(spec), "--db", str(db), "--dry-run", "--retry-failed"]) == 0
    assert "3 to run; 1 of them being run" in capsys.readouterr().out
    with sqlite3.connect(db) as con:  # a database made before sweeps claimed their runs
        con.execute("DROP TABLE claims")
    assert main(["sweep", str(spec), "--db", str(db), "--dry-run"]) == 0
    assert "1 failed), 2 to run\n" in capsys.readouterr().out


def test_a_sweep_progress_bar_that_cannot_write_turns_itself_off(tmp_path, monkeypatch):
    # `fastinit sweep ... 2>&1 | head` closes the pipe: the sweep must go on, not die
    class Broken(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    class Closed(io.StringIO):
        def isatty(self):
            raise ValueError("I/O operation on closed file")

    for stream in (Broken(), Closed()):
        bar = SweepProgress(3, stream=stream, interval=0.0)
        bar.update("ok")
        bar.update("failed")
        bar.close()
    monkeypatch.setattr(sys, "stderr", None)  # pythonw
    bar = SweepProgress(3, interval=0.0)
    bar.update("ok")
    bar.close()
    assert not bar.enabled
    # and a whole sweep with its bar on a broken stream records every run
    spec = load_spec(write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1, 2]\n'))
    summary = run_sweep(spec, tmp_path / "r.sqlite", executor="serial", stream=Broken())
    assert summary.counts["ok"] == 3
    with Store(tmp_path / "r.sqlite") as store:
        assert store.count() == {"ok": 3}


def test_a_renewal_that_found_the_database_locked_is_retried_soon(tmp_path, monkeypatch):
    """A missed renewal is retried after _RETRY_SECONDS, not a whole interval later (a live
    claim must not age towards stale while another sweep holds the write lock); a renewal
    that succeeds waits the interval again."""
    import threading

    from fastinit.sweep import store as store_module
    from fastinit.sweep.store import Claimant, keep_alive

    monkeypatch.setattr(store_module, "_RENEW_BUSY_SECONDS", 0.05)
    monkeypatch.setattr(store_module, "_RETRY_SECONDS", 0.01)
    events: list = []  # ("wait", seconds) and ("renewal", ok), in the beat's order
    two_locked, renewed = threading.Event(), threading.Event()

    class Recorded(threading.Event):  # threading's own Events too: only the beat's record
        def wait(self, timeout=None):
            if threading.current_thread().name != "fastinit-sweep-lease":
                return super().wait(timeout)
            events.append(("wait", timeout))
            return super().wait(min(timeout, 0.01))  # the sequence, not the real interval

    renew = store_module.renew

    def recorded_renew(*args):
        try:
            renew(*args)
        except sqlite3.OperationalError:
            events.append(("renewal", False))
            if events.count(("renewal", False)) >= 2:
                two_locked.set()
            raise
        events.append(("renewal", True))
        renewed.set()

    monkeypatch.setattr(store_module.threading, "Event", Recorded)
    monkeypatch.setattr(store_module, "renew", recorded_renew)
    db = tmp_path / "r.sqlite"
    me = Claimant()
    with Store(db) as store, Store(db) as other:
        assert store.claim("k", me) == "claimed"
        other.conn.execute("BEGIN IMMEDIATE")  # another sweep holds the write lock
        with keep_alive(db, me, interval=30.0):
            assert two_locked.wait(20), events
            other.conn.rollback()
            assert renewed.wait(20), events
        tries = [i for i, e in enumerate(events) if e[0] == "renewal"]
        assert events[0] == ("wait", 30.0)
        for i in tries[:-1]:  # each renewal's outcome chose the wait after it
            assert events[i + 1] == ("wait", 30.0 if events[i][1] else 0.01), events
        assert events[tries[0]] == events[tries[1]] == ("renewal", False)
        assert ("renewal", True) in events


def test_a_local_pool_starts_no_more_workers_than_runs_to_do(tmp_path, monkeypatch):
    """--workers 1000 for 2 runs started 1000 processes (25 s), 998 of them with nothing to do."""
    p = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1]\n', "two.toml")
    made = executors_made(monkeypatch)
    for i, (workers, dask, expected) in enumerate([
        (1000, None, 2), (1000, "local", 2), (1, None, 1), (0, None, 0),
        (3, None, 2), (3, "local", 2),  # one more than the runs: an idle worker was started
        (None, "tcp://127.0.0.1:9", None),  # a remote cluster's workers are not started here
    ]):  # fmt: skip
        made.clear()
        run_sweep(p, tmp_path / f"r{i}.sqlite", dask=dask, workers=workers, progress=False)
        assert made == [(expected, dask)], (workers, dask)


@pytest.mark.parametrize("retry_failed", [False, True])
def test_a_sweep_reads_the_statuses_of_its_runs_once(tmp_path, retry_failed):
    """What is done and how many of those failed came from two reads of the runs table."""
    spec = load_spec(write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1, 2]\n'))
    (k0, c0), (k1, c1), _ = spec.keyed_runs()
    with Store(tmp_path / "r.sqlite") as store:
        store.record(k0, c0, runners.execute(c0), "t")
        store.record(k1, c1, runners.execute(dict(c1, fail=True)), "t")
        statements = []
        store.conn.set_trace_callback(statements.append)
        summary = run_sweep(spec, store, workers=0, progress=False, retry_failed=retry_failed)
    scans = [s for s in statements if s.lstrip().upper().startswith("SELECT") and
             " FROM runs" in s]  # fmt: skip
    assert len(scans) == 1, scans
    assert (summary.skipped, summary.failed_before, summary.ran) == (
        (1, 0, 2) if retry_failed else (2, 1, 1)
    )


def test_a_db_in_missing_directories_creates_them_and_says_so(tmp_path, capsys):
    """--db a/b/r.sqlite made a/b without a word; an unusable one named 'db', not --db."""
    spec = str(write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1]\n'))
    db = tmp_path / "a" / "b" / "r.sqlite"
    assert main(["sweep", spec, "--db", str(db), "--dry-run"]) == 0
    assert not (tmp_path / "a").exists()  # a dry run writes nothing
    capsys.readouterr()
    assert main(["sweep", spec, "--db", str(db), "--workers", "0", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err == f"fastinit sweep: created the directory {str(db.parent)!r} for --db\n", err
    assert db_rows(db)[0]["status"] == "ok"
    assert main(["sweep", spec, "--db", str(db), "--workers", "0", "--quiet"]) == 0
    assert capsys.readouterr().err == ""  # nothing created: nothing said
    (tmp_path / "file").touch()
    for argv, where in [
        (["--db", str(tmp_path / "file" / "r.sqlite")], "--db directory"),  # the command
        (None, "db directory"),  # run_sweep
    ]:  # fmt: skip
        expected = (
            f"{where} {str(tmp_path / 'file')!r}: expected a directory that can be created and "
            "written to (it exists and is not a directory)"
        )
        if argv is None:
            with pytest.raises(ValueError) as e:
                run_sweep(spec, tmp_path / "file" / "r.sqlite", workers=0, progress=False)
            assert str(e.value) == expected
            continue
        with pytest.raises(SystemExit) as e:
            main(["sweep", spec, *argv, "--workers", "0", "--quiet"])
        assert e.value.code == 2
        assert capsys.readouterr().err == f"fastinit sweep: error: {expected}\n"


def test_a_db_that_is_a_directory_is_refused_by_the_dry_run_too(tmp_path, capsys):
    """--db DIR: the dry run counted DIR as an empty database ('0 in DIR, 2 to run'), and the
    sweep said "DIR is not a fastinit results database (unable to open database file)"."""
    spec = str(write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1]\n'))
    folder = tmp_path / "results"
    folder.mkdir()
    expected = f"db: {folder} is a directory, not a results database file"
    for extra in (["--dry-run"], ["--workers", "0"]):
        with pytest.raises(SystemExit) as e:
            main(["sweep", spec, "--db", str(folder), *extra])
        assert e.value.code == 2
        err = capsys.readouterr().err  # "db:" or, naming the option, "--db:"
        assert err.startswith("fastinit sweep: error: ") and err.endswith(f"{expected}\n"), err
    for readonly in (False, True):
        with pytest.raises(ValueError) as e:
            Store(folder, readonly=readonly)
        assert str(e.value) == expected
    assert list(folder.iterdir()) == []


def test_the_dry_run_checks_the_db_directory_as_the_sweep_would_and_makes_nothing(tmp_path, capsys):
    """--db FILE/x.db: the dry run said '2 to run', and only the sweep itself failed."""
    spec = str(write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1]\n'))
    (tmp_path / "afile").write_text("")
    for extra in (["--dry-run"], ["--workers", "0"]):
        with pytest.raises(SystemExit) as e:
            main(["sweep", spec, "--db", str(tmp_path / "afile" / "x.db"), *extra])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "--db directory" in err and "it exists and is not a directory" in err, err
    main(["sweep", spec, "--db", str(tmp_path / "new" / "deeper" / "x.db"), "--dry-run"])
    assert "2 to run" in capsys.readouterr().out
    assert not (tmp_path / "new").exists()  # checked, and nothing left made


def test_a_db_that_fills_up_is_an_error_that_says_what_was_kept(tmp_path, monkeypatch, capsys):
    """A results file that could take no more rows (a full disk; emulated with SQLite's
    max_page_count) stopped the sweep with a traceback ending
    "sqlite3.OperationalError: database or disk is full"."""
    from fastinit.sweep import store as store_module

    spec = str(
        write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = { start = 0, stop = 200 }\n')
    )
    db = tmp_path / "r.sqlite"
    Store(db).close()
    real = store_module._connect

    def connect(path, readonly):  # a file that grows by a few pages more, no further
        conn = real(path, readonly)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 3}")
        return conn

    monkeypatch.setattr(store_module, "_connect", connect)
    with pytest.raises(SystemExit) as e:
        main(["sweep", spec, "--db", str(db), "--workers", "0", "--quiet"])
    assert e.value.code == 2
    kept = len(db_rows(db))
    assert 0 < kept < 200
    err = capsys.readouterr().err
    assert err.startswith(f"fastinit sweep: error: --db: a finished run could not be recorded "
                          f"in {db} (database or disk is full)"), err  # fmt: skip
    assert "the runs recorded before it are kept" in err and "the same command again" in err, err


def test_a_db_that_fails_as_a_run_is_claimed_is_the_same_error(tmp_path, monkeypatch, capsys):
    # the claim's commit met the full disk first: a traceback, exit 1
    import sqlite3

    spec = str(write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = { start = 0, stop = 9 }\n'))
    db = tmp_path / "r.sqlite"
    real = Store.claim
    calls = []

    def claim(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Store, "claim", claim)
    with pytest.raises(SystemExit) as e:
        main(["sweep", spec, "--db", str(db), "--workers", "0", "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastinit sweep: error: --db: a run could not be claimed in {db} "
                          "(database or disk is full)"), err  # fmt: skip
    assert "the runs recorded before it are kept" in err
    assert len(db_rows(db)) == 3


def test_a_db_name_too_long_is_refused_naming_it_and_leaves_no_folder(tmp_path, capsys):
    # a raw "[Errno 36] File name too long", and the folder made for --db stayed
    spec = str(write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0]\n'))
    db = tmp_path / "new" / ("x" * 300 + ".sqlite")
    for argv, option in ((["sweep", spec, "--db", str(db), "--quiet"], "--db"),
                         (["report", str(db), "--out", str(tmp_path / "r")], "DB")):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert f"error: {option}: " in err, err
        assert "File name too long" in err or "does not exist" in err, err  # report's: no new/
        assert not (tmp_path / "new").exists() and not (tmp_path / "r").exists()


def _wal_left(tmp_path: Path) -> Path:
    """A results database whose run is still in its ``-wal`` file, no ``-shm`` beside it
    (a running sweep's files copied, an archive made without the ``-shm``)."""
    folder = tmp_path / "archive"
    folder.mkdir()
    with Store(tmp_path / "live.sqlite") as live:
        live.conn.execute("PRAGMA wal_autocheckpoint = 0")  # the run stays in the -wal file
        live.record("k", {"experiment": "selftest"}, {"status": "ok"})
        for suffix in ("", "-wal"):
            shutil.copyfile(f"{live.path}{suffix}", folder / f"r.sqlite{suffix}")
    return folder / "r.sqlite"


def _says_what_to_do_with_the_wal(db: Path, tmp_path: Path, capsys) -> None:
    """Store (readonly) and `fastinit report` name the -wal file, the folder and a way out."""
    with pytest.raises(ValueError) as e:
        Store(db, readonly=True)
    message = str(e.value)
    assert message.startswith(f"db: {db} cannot be read here") and "not a fastinit" not in message
    for words in ("r.sqlite-wal", "no r.sqlite-shm", str(db.parent), "writable", "copy"):
        assert words in message, message
    with pytest.raises(SystemExit) as e:
        main(["report", str(db), "--out", str(tmp_path / "report"), "--no-figures"])
    assert e.value.code == 2
    assert capsys.readouterr().err == f"fastinit report: error: DB{message[2:]}\n"  # the usage's


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="needs a folder this user cannot write"
)
def test_a_wal_database_in_an_unwritable_folder_says_what_to_do(tmp_path, capsys):
    """SQLite cannot read a WAL database whose -shm file it cannot create: the report said
    "not a fastinit results database (unable to open database file)"."""
    db = _wal_left(tmp_path)
    db.parent.chmod(0o555)
    try:
        _says_what_to_do_with_the_wal(db, tmp_path, capsys)
    finally:
        db.parent.chmod(0o755)


class _NoShm(sqlite3.Connection):
    """A connection whose first statement fails as SQLite's ``mode=ro`` one does where it
    cannot create a WAL database's ``-shm`` file."""

    def execute(self, *args, **kwargs):
        raise sqlite3.OperationalError("unable to open database file")


def test_a_wal_database_in_an_unwritable_folder_says_what_to_do_emulated(
    tmp_path, monkeypatch, capsys
):
    """The test above wherever it runs (root writes any folder): the folder reads as
    unwritable, and SQLite's read-only connection fails as it does there."""
    db = _wal_left(tmp_path)
    real_access, real_connect = os.access, sqlite3.connect

    def access(path, mode, **kwargs):  # as a user who cannot write the folder finds it
        ours = os.path.samefile(path, db) or os.path.samefile(path, db.parent)
        return not (mode & os.W_OK and ours) and real_access(path, mode, **kwargs)

    def connect(database, *args, **kwargs):
        if str(database).endswith("?mode=ro"):  # not the immutable one
            return real_connect(":memory:", factory=_NoShm)
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(sqlite3, "connect", connect)
    _says_what_to_do_with_the_wal(db, tmp_path, capsys)


def test_a_progress_log_ends_with_the_runs_done_when_the_sweep_stops_early():
    """Off a terminal the last line came only at 100%: an interrupted sweep's log said 1/4
    done when 3 were."""
    stream = io.StringIO()
    bar = SweepProgress(4, stream=stream, interval=3600.0)
    bar.draw(force=True)
    for status in ("ok", "ok", "failed"):
        bar.update(status)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("sweep  75% |") and "3/4 ok 2 diverged 0 failed 1" in lines[-1]
    assert len(lines) == 2  # the first and the last
    stream = io.StringIO()
    bar = SweepProgress(2, stream=stream, interval=3600.0)
    bar.update("ok")
    bar.update("ok")  # 100%: drawn at once
    bar.close()
    assert len(stream.getvalue().splitlines()) == 2  # not drawn twice


def test_a_depth_repeated_in_a_grid_is_refused_as_fastinit_depth_refuses_it():
    # `fastinit depth --depths 5,5` is an error naming --depths and 5; the SPEC's the same
    with pytest.raises(SpecError, match=r"grid\.depth: value 5 appears twice"):
        parse_spec('experiment = "depth"\n[grid]\ndepth = [5, 10, 5]\n')


@pytest.mark.parametrize(
    "config",
    [{"experiment": "planar", "iterations": 2, "m": 20},
     {"experiment": "mnist", "iterations": 2, "width": 4, "depth": 1, "train_size": 50},
     {"experiment": "histogram", "depth": 2, "width": 4, "samples": 5},
     {"experiment": "depth", "depth": 2, "width": 4, "samples": 5}],
    ids=lambda c: c["experiment"],
)  # fmt: skip
def test_sweep_list_names_every_metric_a_run_records(config, capsys):
    # --list showed the headline metrics only: not iterations_done, which the report shows
    experiment = runners.EXPERIMENTS[config["experiment"]]
    params = {k: v for k, v in config.items() if k != "experiment"}
    result = runners.execute(runners.full_config(config["experiment"], params))
    assert result["status"] == "ok", result
    recorded = result["metrics"]
    assert set(recorded) == {*experiment.metrics, *experiment.recorded}
    assert main(["sweep", "--list"]) == 0
    listing = ("\n" + capsys.readouterr().out).split(f"\n{config['experiment']}: ")[1]
    metrics_line = listing.splitlines()[1]
    assert all(m in metrics_line for m in recorded), metrics_line


# ----------------------------------------------------------------------------- reproducibility
# sizes at which OpenBLAS splits the products over its threads (m * n * k >= 2**18)
BLAS_SIZED = {
    "mnist": """\
        experiment = "mnist"
        [fixed]
        width = 32
        depth = 1
        iterations = 3
        train_size = 256
        [grid]
        init = ["he", "xavier"]
        seed = [0, 1]
        """,
    "depth": """\
        experiment = "depth"
        [fixed]
        width = 64
        samples = 256
        depth = 2
        [grid]
        init = ["he", "xavier"]
        seed = [0, 1]
        """,
}


def _recorded(db: Path) -> dict[str, tuple]:
    """Per run key: status, metrics and curves, as the database holds them."""
    return {r["key"]: (r["status"], r["metrics"], r["curves"]) for r in db_rows(db)}


@pytest.mark.parametrize("experiment", sorted(BLAS_SIZED))
def test_a_sweep_interrupted_then_resumed_elsewhere_records_the_uninterrupted_results(
    tmp_path, monkeypatch, experiment
):
    # runs in the sweep process (--workers 0) used OpenBLAS's threads, a pool's workers
    # one: a sweep resumed with other --workers recorded other last bits for its runs
    spec = write(tmp_path, BLAS_SIZED[experiment])
    whole = run_sweep(spec, tmp_path / "whole.sqlite", workers=0, progress=False)
    assert whole.ran == 4
    execute = runners.execute
    done = []

    def stopping(config):  # a Ctrl-C as the third run starts
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(config)
        return execute(config)

    with monkeypatch.context() as m:
        m.setattr(runners, "execute", stopping)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(spec, tmp_path / "resumed.sqlite", workers=0, progress=False)
    assert len(db_rows(tmp_path / "resumed.sqlite")) == 2
    resumed = run_sweep(spec, tmp_path / "resumed.sqlite", workers=1, progress=False)
    assert resumed.ran == 2 and resumed.skipped == 2
    assert _recorded(tmp_path / "resumed.sqlite") == _recorded(tmp_path / "whole.sqlite")


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _command_curves(experiment: str, out: Path) -> dict[tuple, dict[str, list[float]]]:
    """The curves a `fastinit <experiment>` command wrote, keyed as :func:`_sweep_curves`."""
    if experiment in ("mnist", "planar"):
        name = "loss_curves.csv" if experiment == "mnist" else "cost_curves.csv"
        rows = _csv_rows(out / name)
        curves = {}
        for column in rows[0]:
            if column != "iteration":  # mnist: "he[seed=0]"; planar: "xavier" (seed 2)
                init, _, seed = column.rstrip("]").partition("[seed=")
                curves[(init, int(seed or 2))] = {"loss": [float(r[column]) for r in rows]}
        return curves
    curves: dict[tuple, dict[str, list[float]]] = {}
    for r in _csv_rows(out / "layer_stats.csv"):
        key = tuple(int(r[k]) if k in ("depth", "seed") else r[k]
                    for k in ("init", "activation", "depth", "seed") if k in r)  # fmt: skip
        slot = curves.setdefault(key, {"act_mean": [], "act_std": [], "grad_std": []})
        for name, values in slot.items():
            values.append(float(r[name]))
    return curves


def _sweep_curves(experiment: str, db: Path) -> dict[tuple, dict[str, list[float]]]:
    keys = {"mnist": ("init", "seed"), "planar": ("init", "seed"),
            "histogram": ("init", "activation"),
            "depth": ("init", "activation", "depth", "seed")}[experiment]  # fmt: skip
    out = {}
    for r in db_rows(db):
        config = json.loads(r["config"])
        out[tuple(config[k] for k in keys)] = json.loads(r["curves"])
    return out


EQUIVALENT = {  # a SPEC and the `fastinit <experiment>` options of the same runs
    "mnist": (
        """\
        [fixed]
        width = 8
        depth = 2
        iterations = 120
        batch_size = 16
        train_size = 100
        [grid]
        init = ["he", "lsuv"]
        seed = [3, 4]
        """,
        "--inits he,lsuv --hidden 8,8 --iterations 120 --batch-size 16 --train-size 100 "
        "--seeds 2 --seed 3",
    ),
    "planar": (
        """\
        [fixed]
        iterations = 20
        [grid]
        init = ["randn*0.01", "xavier", "lsuv"]
        """,
        "--inits randn*0.01,xavier,lsuv --iterations 20",
    ),
    "histogram": (
        """\
        [fixed]
        depth = 3
        width = 8
        samples = 10
        seed = 4
        [grid]
        init = ["he", "std=1"]
        activation = ["tanh", "relu"]
        """,
        "--inits he,std=1 --activations tanh,relu --layers 3 --width 8 --samples 10 --seed 4",
    ),
    "depth": (
        """\
        [fixed]
        width = 8
        samples = 10
        [grid]
        init = ["he", "xavier"]
        activation = ["tanh", "relu"]
        depth = [2, 3]
        seed = [1, 2]
        """,
        "--inits he,xavier --activations tanh,relu --depths 2,3 --width 8 --samples 10 "
        "--seeds 2 --seed 1",
    ),
}


@pytest.mark.parametrize("experiment", sorted(EQUIVALENT))
def test_a_sweeps_runs_equal_the_experiment_commands_runs(tmp_path, experiment):
    from fastinit.dense import one_blas_thread

    text, options = EQUIVALENT[experiment]
    spec = write(tmp_path, f'experiment = "{experiment}"\n' + textwrap.dedent(text))
    run_sweep(spec, tmp_path / "r.sqlite", workers=0, progress=False)
    out = tmp_path / "out"
    with one_blas_thread():  # as a sweep runs them (fastinit.sweep.runners)
        assert main([experiment, *options.split(), "--out", str(out), "--quiet"]) == 0
    swept, direct = (
        _sweep_curves(experiment, tmp_path / "r.sqlite"),
        _command_curves(experiment, out),
    )
    assert swept == direct and len(swept) == len(db_rows(tmp_path / "r.sqlite")) > 1
    summary = json.loads((out / "summary.json").read_text())["results"]
    for r in db_rows(tmp_path / "r.sqlite"):  # the training experiments' metrics too
        config, metrics = json.loads(r["config"]), json.loads(r["metrics"])
        if experiment == "mnist":
            seeds = summary[config["init"]]["per_seed"]
            i = config["seed"] - 3
            # over more than 100 iterations: the mean of the last 100 losses (the last 10
            # were taken once, and 5 iterations could not tell)
            assert metrics["final_loss"] == seeds["final_loss"][i]
            loss = json.loads(r["curves"])["loss"]
            assert len(loss) == 120
            assert metrics["final_loss"] == pytest.approx(np.mean(loss[-100:]), rel=1e-12)
            assert metrics["test_accuracy"] == seeds["test_accuracy"][i]
        elif experiment == "planar":
            s = summary[config["init"]]
            assert metrics["final_loss"] == s["final_cost"]
            assert metrics["train_accuracy"] == s["train_accuracy"]
            assert metrics["test_accuracy"] == s["test_accuracy"]
        elif experiment == "histogram":
            last = [row for row in summary if (row["init"], row["activation"], row["layer"])
                    == (config["init"], config["activation"], config["depth"])]  # fmt: skip
            assert (metrics["saturated_last"], metrics["dead_last"]) == (
                last[0]["saturated"], last[0]["dead"])  # fmt: skip


def test_an_interrupted_sweep_records_only_the_arrived_results_of_runs_it_claimed(tmp_path):
    """An executor's arrived() may hold a result this sweep never claimed (the executor
    reused from an earlier sweep, stopped before asking for it): recording it raised
    KeyError in place of the real error, or recorded a run without its claim."""
    spec = write(tmp_path, 'experiment = "selftest"\n[grid]\nseed = [0, 1]\n')
    db = tmp_path / "r.sqlite"

    class Stale(SerialExecutor):
        def results(self, items, skip=None):
            (key, config), (other, _) = items
            assert skip(key) is False  # claimed, run, arrived: recorded on the way out
            self._held.append((key, runners.execute(config)))
            self._held.append((other, runners.execute(config)))  # never claimed here
            self._held.append(("f" * 64, runners.execute(config)))  # not of this sweep
            raise KeyboardInterrupt
            yield

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, db, executor=Stale(), progress=False)
    rows = db_rows(db)
    assert len(rows) == 1 and rows[0]["status"] == "ok"
    assert _claims(db) == []


# ----------------------------------------------------------------------------- fuzz findings
def test_the_sweep_api_names_arguments_of_the_wrong_type(tmp_path):
    # AttributeErrors from tomllib and the executor, pathlib's "expected str, bytes or
    # os.PathLike object", and flags read by their truthiness (readonly="no" read-only)
    from fastinit.sweep.report import make_report
    from fastinit.sweep.spec import load_spec, parse_spec

    with pytest.raises(TypeError, match=r"^text: expected the text of a SPEC file"):
        parse_spec(None)
    with pytest.raises(TypeError, match=r"^path: expected a file name"):
        load_spec(123)
    with pytest.raises(TypeError, match=r"^db: expected a file name"):
        Store(123)
    with pytest.raises(TypeError, match=r"^readonly: "):
        Store(tmp_path / "r.sqlite", readonly="no")
    assert not (tmp_path / "r.sqlite").exists()
    spec = parse_spec('experiment = "selftest"\n[grid]\nseed = [0]\n')
    with pytest.raises(TypeError, match=r"^executor: expected"):
        run_sweep(spec, tmp_path / "r.sqlite", executor=True, progress=False)
    with Store(tmp_path / "r.sqlite") as store:
        with pytest.raises(TypeError, match=r"^key: expected a str"):
            store.record(None, {}, {"status": "ok"})
        assert store.rows() == []
    run_sweep(spec, tmp_path / "r.sqlite", progress=False)
    with pytest.raises(TypeError, match=r"^figures: "):
        make_report(tmp_path / "r.sqlite", tmp_path / "out", figures="no")


def test_store_queries_name_arguments_of_the_wrong_type(tmp_path):
    # statuses(keys="abc") looked up the characters, rows(experiment=True) found nothing
    with Store(tmp_path / "r.sqlite") as store:
        for call in (lambda: store.statuses("abc"), lambda: store.recorded("abc"),
                     lambda: store.done("abc")):  # fmt: skip
            with pytest.raises(TypeError, match=r"^keys: expected an iterable of keys"):
                call()
        with pytest.raises(TypeError, match=r"^experiment: expected a str or None"):
            store.rows(experiment=True)
        with pytest.raises(TypeError, match=r"^sweep: expected a str or None"):
            store.rows(sweep=1)
        with pytest.raises(TypeError, match=r"^retry_failed: "):
            store.done([], retry_failed="no")
        # claims' keys and flag as the other queries' (an array flag was NumPy's ambiguity)
        with pytest.raises(TypeError, match=r"^keys: expected an iterable of keys"):
            store.claims("abc")
        with pytest.raises(TypeError, match=r"^live: expected True or False"):
            store.claims(live=np.array([True, False]))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"workers": -1}, ValueError), ({"workers": "2"}, TypeError),
     ({"workers": 0, "dask": "local"}, ValueError), ({"executor": "dask"}, ValueError)],
)  # fmt: skip
def test_run_sweep_refuses_bad_executor_arguments_before_it_makes_the_database(
    tmp_path, kwargs, error
):
    # each was refused by make_executor after the database had been made, left behind
    spec = parse_spec('experiment = "selftest"\n[grid]\nseed = [0]\n')
    with pytest.raises(error, match=r"^(workers|dask): "):
        run_sweep(spec, tmp_path / "r.sqlite", progress=False, **kwargs)
    assert not (tmp_path / "r.sqlite").exists()


def test_run_sweep_names_an_unknown_executor_kind_as_executor(tmp_path):
    spec = parse_spec('experiment = "selftest"\n[grid]\nseed = [0]\n')
    for kind in ("pool", ""):  # an empty name is no 'local'
        with pytest.raises(ValueError, match=r"^executor: expected 'local', 'serial' or 'dask'"):
            run_sweep(spec, tmp_path / "r.sqlite", executor=kind, progress=False)
    assert not (tmp_path / "r.sqlite").exists()  # refused before the database is made


@pytest.mark.parametrize("memory", [float("nan"), -1, 0, True, "1e9"])
def test_a_memory_that_is_no_positive_number_is_refused_naming_it(memory):
    # nan made every run too large, blaming fixed.width
    with pytest.raises(ValueError, match=r"^memory: expected a number of bytes > 0"):
        parse_spec('experiment = "selftest"\n[grid]\nseed = [0]\n', memory=memory)


_OK_DIVERGED_FAILED = """\
    experiment = "selftest"
    [[grid]]
    seed = [0, 1]
    [[grid]]
    seed = [12]
    diverge = [true]
    [[grid]]
    seed = [10]
    fail = [true]
    """


def test_a_rerun_counts_failed_runs_only_and_retry_failed_reruns_only_them(tmp_path):
    # a diverged run is done: counted as failed, the summary suggested --retry-failed for
    # it; queued again by --retry-failed, the summary said another sweep had recorded it
    # "meanwhile" (mutation audit)
    spec, db = write(tmp_path, _OK_DIVERGED_FAILED), tmp_path / "r.sqlite"
    run_sweep(spec, db, workers=0, progress=False)
    plain = run_sweep(spec, db, workers=0, progress=False)
    assert (plain.skipped, plain.failed_before) == (4, 1)
    assert "1 of the runs already in" in plain.table()
    again = run_sweep(spec, db, workers=0, retry_failed=True, progress=False)
    assert (again.skipped, again.ran, again.taken) == (3, 1, 0)
    assert "meanwhile" not in again.table()


def test_a_dry_run_counts_only_failed_runs_as_failed(tmp_path, capsys):
    # the dry run said "(2 failed)" for one failed and one diverged run, where the sweep
    # itself counts (and --retry-failed reruns) only the failed one
    spec, db = write(tmp_path, _OK_DIVERGED_FAILED), tmp_path / "r.sqlite"
    summary = run_sweep(spec, db, workers=0, progress=False)
    assert summary.counts == {"ok": 2, "diverged": 1, "failed": 1}
    statuses = [r["status"] for r in db_rows(db)]
    failed = statuses.count("failed")
    assert main(["sweep", str(spec), "--db", str(db), "--dry-run"]) == 0
    assert f"4 in {db} ({failed} failed), 0 to run" in capsys.readouterr().out
    assert main(["sweep", str(spec), "--db", str(db), "--dry-run", "--retry-failed"]) == 0
    assert f"4 in {db} ({failed} failed), {failed} to run" in capsys.readouterr().out


@pytest.mark.parametrize("first", ["ok", "diverged", "failed"])
def test_keep_done_keeps_ok_and_diverged_rows_and_replaces_failed_ones(first, tmp_path):
    # keep_done overwrote a diverged row (status ok, attempts 2) (mutation audit)
    cfg = runners.full_config("selftest", {"seed": 1})
    key = config_key(cfg)
    how = {"ok": {}, "diverged": {"diverge": True}, "failed": {"fail": True}}[first]
    with Store(tmp_path / "r.sqlite") as store:
        store.record(key, cfg, runners.execute({**cfg, **how}), "t")
        wrote = store.record(key, cfg, runners.execute(cfg), "t", keep_done=True)
        (row,) = store.rows()
    kept = first != "failed"
    assert wrote is not kept
    assert (row["status"], row["attempts"]) == ((first, 1) if kept else ("ok", 2))
