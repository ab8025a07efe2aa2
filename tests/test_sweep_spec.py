"""SPEC files as users save them, and results databases where users keep them."""

import dataclasses
import importlib
import math
import os
import sqlite3

import pytest

from fastinit import init as fastinit_init
from fastinit.cli import main
from fastinit.experiments._common import parse_init
from fastinit.sweep import spec as spec_module
from fastinit.sweep.runners import full_config
from fastinit.sweep.spec import SpecError, config_key, load_spec, parse_spec
from fastinit.sweep.store import SCHEMA_VERSION, Store


def test_a_spec_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Windows editors (Notepad before 2019, PowerShell 5's ``-Encoding utf8``) start UTF-8
    with a BOM; tomllib read it as part of the first key: "Invalid statement: experiment = ..."."""
    text = 'experiment = "depth"\n[grid]\nseed = [0, 1]\n'
    plain, marked = tmp_path / "plain.toml", tmp_path / "marked.toml"
    plain.write_text(text, encoding="utf-8")
    marked.write_text(text, encoding="utf-8-sig")
    assert marked.read_bytes().startswith(b"\xef\xbb\xbf")
    spec = load_spec(marked)
    assert spec.keyed_runs() == load_spec(plain).keyed_runs() and len(spec) == 2


def _meta_db(path, version):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    if version is not None:
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (version,))
    con.commit()
    con.close()


def _tables_and_mode(path):
    con = sqlite3.connect(path)
    tables = sorted(n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'"))
    mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    con.close()
    return tables, mode


@pytest.mark.parametrize(
    ("version", "words"),
    [
        # another program's database with a table named meta: fastinit's tables were added
        # to it, its journal mode switched to WAL, and schema_version 1 written into it
        (None, "not a fastinit results database (it holds the tables meta)"),
        # a database of another fastinit version: changed before its version was read
        (str(SCHEMA_VERSION + 1), f"version {SCHEMA_VERSION + 1}, expected {SCHEMA_VERSION}"),
        # not a number: "invalid literal for int() with base 10: 'abc'"
        ("abc", f"schema version abc, expected {SCHEMA_VERSION}"),
    ],
    ids=["no-version", "newer", "not-a-number"],
)
def test_a_database_not_of_this_schema_is_refused_before_anything_is_written(
    tmp_path, version, words
):
    db = tmp_path / "other.sqlite"
    _meta_db(db, version)
    for readonly in (False, True):
        with pytest.raises(ValueError) as e:
            Store(db, readonly=readonly)
        assert str(e.value).startswith(f"db: {db}") and words in str(e.value), str(e.value)
    assert _tables_and_mode(db) == (["meta"], "delete")


def test_a_read_only_store_writes_nothing(tmp_path):
    """``fastinit report`` and ``--dry-run`` open the database read-only (SQLite's
    ``mode=ro``): so they read a database in a directory this user cannot write
    (an archived or shared results folder), where a read-write connection to a
    WAL database failed "not a fastinit results database (attempt to write a
    readonly database)"."""
    db = tmp_path / "r.sqlite"
    Store(db).close()
    with Store(db, readonly=True) as store:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.conn.execute("CREATE TABLE x (a)")
    with Store(db, readonly=True) as store:
        assert store.statuses() == {} and store.claims() == {}
    assert _tables_and_mode(db)[0] == ["claims", "meta", "runs"]


def test_a_read_only_store_leaves_no_wal_files_behind(tmp_path):
    """A read in a writable folder leaves the folder as it found it: ``mode=ro`` left
    an empty ``-wal`` and a 32 KiB ``-shm`` owned by whoever ran the report, which
    another user's sweep could then not open for writing."""
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        store.record("k", {"experiment": "depth"}, {"status": "ok"})
    before = sorted(p.name for p in tmp_path.iterdir())
    with Store(db, readonly=True) as store:
        assert store.statuses() == {"k": "ok"}
    assert sorted(p.name for p in tmp_path.iterdir()) == before == ["r.sqlite"]


@pytest.mark.parametrize(
    ("path", "uri"),
    [
        (r"\\server\share\runs\r.sqlite", "file:////server/share/runs/r.sqlite?mode=ro"),
        (r"Z:\runs\r.sqlite", "file:///Z:/runs/r.sqlite?mode=ro"),
    ],
)
def test_a_windows_path_makes_a_uri_sqlite_opens(path, uri):
    """A network share (what ``resolve()`` makes of a mapped drive) was
    ``file://server/share/...``, whose authority SQLite refuses ("invalid uri
    authority: server")."""
    from pathlib import PureWindowsPath

    from fastinit.sweep.store import read_only_uri

    assert read_only_uri(PureWindowsPath(path)) == uri


def test_a_database_path_with_uri_characters_is_read(tmp_path):
    """The read-only connection is a URI: ``?``, ``#`` and ``%`` in the path stay the path's."""
    db = tmp_path / "a?b#c%20d" / "r.sqlite"
    with Store(db) as store:
        store.record("k", {"experiment": "depth"}, {"status": "ok"})
    with Store(db, readonly=True) as store:
        assert store.statuses() == {"k": "ok"}


def test_a_read_only_database_file_is_named_as_such(tmp_path, monkeypatch):
    """A sweep given a results file it cannot write said "not a fastinit results database
    (attempt to write a readonly database)".  (Emulated: root writes any file.)"""
    db = tmp_path / "r.sqlite"
    Store(db).close()
    os.chmod(db, 0o444)
    real = os.access

    def access(path, mode, **kwargs):  # as a user other than root finds it
        return not (mode & os.W_OK and os.path.samefile(path, db)) and real(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(ValueError) as e:
        Store(db)
    assert str(e.value).startswith(f"db: {db} cannot be written to") and "read-only" in str(e.value)
    with Store(db, readonly=True) as store:  # what fastinit report does: it reads it
        assert store.statuses() == {}
    os.chmod(db, 0o644)


def test_an_unwritable_db_directory_is_named_by_the_api_too(tmp_path, monkeypatch):
    """``run_sweep``/``Store`` given a file in an existing directory it cannot write said
    "not a fastinit results database (unable to open database file)"; the command line's
    check (``prepare_output``) applies to every directory.  (Emulated: root writes anywhere.)"""
    from fastinit.experiments import _common

    def probe(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_common.tempfile, "TemporaryFile", probe)
    with pytest.raises(ValueError, match=r"db directory .*: expected a directory that can be"):
        Store(tmp_path / "r.sqlite")
    assert not (tmp_path / "r.sqlite").exists()


def test_report_names_a_missing_database(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "rep")])
    assert e.value.code == 2
    assert f"DB: {tmp_path / 'none.sqlite'} does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------------------- init spellings
def _fixed_init(experiment, init):
    return parse_spec(f'experiment = "{experiment}"\n[fixed]\ninit = "{init}"\n', memory=math.inf)


@pytest.mark.parametrize(
    ("experiment", "spellings", "stored"),
    [
        ("depth", ["std=0.01", "randn*0.01", " STD = 0.010 ", "std=1e-2", "scale=.01"], "std=0.01"),
        ("planar", ["randn*0.01", "std=0.01", "Randn * 1e-2"], "randn*0.01"),
        ("planar", ["randn", "randn*1", "std=1.0"], "randn"),
        ("histogram", ["std=1", "randn", "randn*1.00"], "std=1"),
        ("mnist", ["kaiming_normal", "Kaiming-Normal", "msra", "kaiming"], "kaiming_normal"),
        ("mnist", ["he", "He", " HE"], "he"),
        ("depth", ["constant=0.5", "constant=.50", "CONSTANT=5e-1"], "constant=0.5"),
        ("depth", ["std=100", "randn*1e2", "std=100.0"], "std=100"),
    ],
)
def test_spellings_of_one_init_in_several_grids_are_one_run(experiment, spellings, stored):
    """``std=0.01`` in one ``[[grid]]`` table and ``randn*0.01`` in another draw the same
    weights; they were two keys, so a sweep ran that draw twice and its report showed two rows.
    Each init is stored in one spelling, the one the docs use for that experiment."""
    tables = "".join(f'[[grid]]\ninit = ["{s}"]\n' for s in spellings)
    spec = parse_spec(f'experiment = "{experiment}"\n{tables}', memory=math.inf)
    assert [config["init"] for config in spec.runs()] == [stored]
    keys = {_fixed_init(experiment, s).keyed_runs()[0][0] for s in spellings}  # across SPECs too
    assert keys == {spec.keyed_runs()[0][0]}


@pytest.mark.parametrize("experiment", ["planar", "mnist", "histogram", "depth"])
def test_the_documented_init_spellings_keep_their_keys(experiment):
    """Results databases keyed before inits had one spelling are resumed, not re-run: the
    spellings the docs and the experiments' defaults use are stored as they are written."""
    module = importlib.import_module(f"fastinit.experiments.{experiment}")
    inits = [*module.DEFAULT_INITS, "xavier", "he", "zeros", "orthogonal", "glorot_uniform"]
    inits += ["std=0.01", "std=1"] if experiment != "planar" else ["randn*0.001", "randn*100"]
    for init in inits:
        spec = _fixed_init(experiment, init)
        config = full_config(experiment, {"init": init})
        assert spec.keyed_runs() == [(config_key(config), config)], init


@pytest.mark.parametrize("experiment", ["planar", "mnist"])
def test_an_init_is_stored_in_a_spelling_that_draws_exactly_what_it_draws(experiment):
    """The stored spelling never merges two different draws: ``normal`` (fastinit's
    generator) stays apart from ``randn`` (the notebook's in planar), ``he`` (N(0, 2/n))
    from ``he_normal`` (truncated), ``std=0`` from ``zeros``."""
    names = [*fastinit_init.names(), "std=0", "std=0.5", "constant=2", "lsuv"]
    stored = {}
    for name in names:
        canonical = _fixed_init(experiment, name).fixed["init"]
        assert _drawn(canonical) == _drawn(name), (name, canonical)
        stored.setdefault(canonical, set()).add(_drawn(name))
    assert all(len(draws) == 1 for draws in stored.values())
    assert len(stored) == len({_drawn(name) for name in names})


def _drawn(init):
    """What an init spec draws, its spelling aside: its fields but the name, and the
    initializer a fastinit.init name or alias stands for."""
    spec = parse_init(init)
    drawer = fastinit_init.get(spec.initializer) if spec.initializer else None
    return dataclasses.replace(spec, name="", initializer=None), drawer


# ----------------------------------------------------------------------------- grid size
def test_a_grid_too_large_is_refused_before_its_values_are_checked(monkeypatch):
    """A grid of 10**12 points took 9-13 s to be refused: every value of every axis was
    checked first.  Its size is a product of lengths, known before any value is read."""
    checked = []
    real = spec_module._Checker._value

    def value(self, v, params, experiment, table, *args, **kwargs):
        checked.append((table, v))
        return real(self, v, params, experiment, table, *args, **kwargs)

    monkeypatch.setattr(spec_module._Checker, "_value", value)
    text = (
        'experiment = "depth"\n[fixed]\nwidth = 4\n[grid]\n'
        "seed = {start = 0, stop = 1000000}\nsamples = {start = 1, stop = 1000001}\n"
    )
    with pytest.raises(SpecError, match=r":4: grid: the grid has 1000000000000 points; at most"):
        parse_spec(text, memory=math.inf)
    assert [table for table, _ in checked] == ["fixed"]


def test_a_planar_grid_runs_the_notebooks_randn_beside_fastinits_normal():
    # planar's 'randn' is the notebook's RandomState draw (rng = 'notebook', one hidden
    # layer), 'normal' fastinit's: refused as "the same init" before
    text = '[grid]\ninit = ["randn", "normal"]\n'
    spec = parse_spec('experiment = "planar"\n' + text, memory=math.inf)
    assert sorted(c["init"] for c in spec.runs()) == ["normal", "randn"]
    with pytest.raises(SpecError, match="same init as 'randn'"):
        parse_spec('experiment = "depth"\n' + text, memory=math.inf)


@pytest.mark.parametrize(
    ("text", "words"),
    [('[fixed]\ndtype = "float32"\n[grid]\ninit = ["he", "std=1e300"]\n',
      ("grid.init", "'std=1e+300' cannot be drawn in float32")),
     ('[grid]\ndtype = ["float64", "float32"]\ninit = ["constant=1e-50"]\n',
      ("grid.init", "'constant=1e-50' cannot be drawn in float32", "rounds to 0"))],
)  # fmt: skip
def test_an_init_its_dtype_cannot_draw_is_refused_before_any_run(text, words):
    # accepted: every such run then failed at run time (std=1e300) or drew zeros (1e-50)
    with pytest.raises(SpecError) as e:
        parse_spec('experiment = "histogram"\n' + text, memory=math.inf)
    assert all(w in str(e.value) for w in words), e.value


def test_the_sweep_parameters_defaults_are_the_experiment_functions():
    # a third copy of each experiment's defaults (the sweep's parameters, one init per
    # run and width x depth for a hidden tuple): a SPEC that leaves one out runs what the
    # command runs; nothing checked that they agree with the run_* functions
    import inspect

    from fastinit.experiments import depth, histogram, mnist, planar
    from fastinit.sweep.runners import EXPERIMENTS

    def defaults(run):
        return {k: p.default for k, p in inspect.signature(run).parameters.items()}

    runs = {"planar": planar.run_planar, "mnist": mnist.run_mnist,
            "histogram": histogram.run_histogram, "depth": depth.run_depth}  # fmt: skip
    renamed = {("histogram", "depth"): "layers"}  # sweep name -> the function's keyword
    layered = {"planar": 1, "mnist": None}  # width x depth: the function's hidden (or int)
    not_keywords = {"init", "activation", "optimizer", "momentum", "weight_decay", "sampling"}
    compared = 0
    for name, run in runs.items():
        fn = defaults(run)
        sweep = {k: p.default for k, p in EXPERIMENTS[name].params.items()}
        for key, value in sweep.items():
            if key in not_keywords or (name in layered and key in ("width", "depth")):
                continue
            if (name, key) == ("depth", "depth"):  # one depth per run: the command's first
                assert value == fn["depths"][0], value
                continue
            keyword = renamed.get((name, key), key)
            assert keyword in fn, (name, key)
            assert value == fn[keyword] and type(value) is type(fn[keyword]), (name, key, value)
            compared += 1
        if name in layered:
            hidden = fn["hidden"]
            widths = (hidden,) if isinstance(hidden, int) else hidden
            assert widths == (sweep["width"],) * sweep["depth"], (name, hidden)
    assert compared >= 15
    # the single-init experiments' defaults are among the commands' inits
    assert EXPERIMENTS["mnist"].params["init"].default in defaults(mnist.run_mnist)["inits"]
    assert EXPERIMENTS["planar"].params["init"].default in defaults(planar.run_planar)["inits"]


def test_an_empty_table_among_grid_tables_is_refused_naming_it():
    # a [[grid]] header whose keys were commented out added one run of the defaults
    # (planar seed 2 beside the seeds asked for), where `grid = []` is refused as a slip
    text = 'experiment = "planar"\n[[grid]]\nseed = [5]\n[[grid]]\n'
    with pytest.raises(SpecError, match=r"^spec.toml:4: grid\[1\]: an empty table") as e:
        parse_spec(text, "spec.toml")
    assert "give it keys or remove it" in str(e.value)
    one = parse_spec('experiment = "planar"\n[[grid]]\n', "spec.toml")  # the only table:
    assert len(one.keyed_runs()) == 1  # no grid, one run of the defaults, as before


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ("{start = 0, stop = 3, foo = 1}", "unknown key 'foo'; expected start, stop, step"),
        ("{start = 0, stp = 3}", "unknown key 'stp'; expected start, stop, step (did you mean"),
        ("{start = 0}", "stop required"),
    ],
)
def test_a_range_table_names_the_key_that_is_wrong(table, words):
    # "(stop required), got keys ['foo', 'start', 'stop']": stop was there, foo not named
    with pytest.raises(SpecError) as e:
        parse_spec(f'experiment = "planar"\n[grid]\nseed = {table}\n', "spec.toml")
    assert str(e.value).startswith("spec.toml:3: grid.seed: range: "), str(e.value)
    assert words in str(e.value), str(e.value)


def test_an_error_in_a_later_grid_tables_range_names_its_line():
    # the sub-table header [grid.seed] was looked up from the top: the first table's line
    text = ('experiment = "depth"\n[[grid]]\ndepth = [3]\n[grid.seed]\nstart = 0\nstop = 2\n'
            '[[grid]]\ndepth = [4]\n[grid.seed]\nstart = 0\nstop = -1\n')  # fmt: skip
    with pytest.raises(SpecError, match=r"^spec.toml:9: grid\[1\]\.seed: range: ") as e:
        parse_spec(text, "spec.toml")
    assert e.value.line == 9


# ----------------------------------------------------------------------------- mutation audit 6
def test_a_range_keeps_a_last_value_its_step_does_not_reach_stop_from():
    # the range's values were counted as (stop - start) // step: {0, 1, step 2} read as empty
    for start, stop, step in ((0, 1, 2), (0, 5, 2), (3, 0, -2), (5, 4, -3)):
        seed = f"{{start = {start}, stop = {stop}, step = {step}}}"
        text = f'experiment = "depth"\n[grid]\nseed = {seed}\n'
        spec = parse_spec(text, memory=math.inf)
        assert [r["seed"] for r in spec.runs()] == list(range(start, stop, step)), text


def test_a_grid_or_range_of_exactly_max_runs_points_is_allowed(monkeypatch):
    monkeypatch.setattr(spec_module, "MAX_RUNS", 4)
    grid = 'experiment = "depth"\n[grid]\nseed = {start = 0, stop = %d}\n'
    assert len(parse_spec(grid % 4, memory=math.inf)) == 4
    with pytest.raises(SpecError, match=r"range: 5 values; a grid has at most 4 points"):
        parse_spec(grid % 5, memory=math.inf)
    with pytest.raises(SpecError, match=r"range: 5 values"):  # counted, not stop // step
        parse_spec('experiment = "depth"\n[grid]\nseed = {start = 0, stop = 9, step = 2}\n',
                   memory=math.inf)  # fmt: skip
    two = 'experiment = "depth"\n[grid]\nseed = [0, 1]\nwidth = [%s]\n'
    assert len(parse_spec(two % "1, 2", memory=math.inf)) == 4
    with pytest.raises(SpecError, match=r"the grid has 6 points; at most 4"):
        parse_spec(two % "1, 2, 3", memory=math.inf)


def test_a_learning_rate_of_zero_is_refused():
    with pytest.raises(SpecError, match=r"fixed\.lr: expected a number > 0, got 0"):
        parse_spec('experiment = "planar"\n[fixed]\nlr = 0\n', memory=math.inf)


def test_the_largest_seed_is_allowed_and_one_more_refused():
    text = 'experiment = "depth"\n[fixed]\nseed = %d\n'
    assert parse_spec(text % (2**64 - 1), memory=math.inf).runs()[0]["seed"] == 2**64 - 1
    with pytest.raises(SpecError, match=r"expected an integer < 2\*\*64"):
        parse_spec(text % 2**64, memory=math.inf)
