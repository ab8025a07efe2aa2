"""fastinit report: aggregates checked against oracles computed from the raw database rows.

The databases are written through :class:`fastinit.sweep.store.Store` with
made-up results (no numerics run), so each test controls every value; the
oracles read the rows back with ``sqlite3`` and ``json`` and aggregate them with
:mod:`statistics` (exact rational arithmetic), independently of the report code.
"""

import csv
import json
import math
import random
import re
import sqlite3
import statistics
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from fastinit.cli import main
from fastinit.experiments import _common
from fastinit.sweep import report as report_module
from fastinit.sweep import runners
from fastinit.sweep.report import make_report, mean_std
from fastinit.sweep.spec import config_key
from fastinit.sweep.store import LEASE_SECONDS, Claimant, Store


def record(
    store: Store,
    experiment: str,
    params: dict,
    metrics: dict | None = None,
    *,
    status: str = "ok",
    curves: dict | None = None,
    version: str = "9.9.9",
    sweep: str = "s",
    drop: tuple = (),
) -> None:
    """Record one made-up run; ``drop``: parameters left out (a row of an older version)."""
    config = runners.full_config(experiment, params)
    for name in drop:
        config.pop(name)
    result = {
        "status": status,
        "metrics": metrics or {},
        "curves": curves or {},
        "error": "Traceback ...\nValueError: boom" if status == "failed" else None,
        "started": 1.0,
        "finished": 2.0,
        "wall_time": 1.0,
        "worker": "host:1",
        "version": version,
    }
    store.record(config_key(config), config, result, sweep)


def oracle(db: Path) -> dict:
    """``{(experiment, params JSON): {"status": [...], "values": {metric: [...]}}}`` from SQL."""
    groups: dict = {}
    con = sqlite3.connect(db)
    for config, status, metrics in con.execute("SELECT config, status, metrics FROM runs"):
        c = json.loads(config)
        c.pop("seed")
        exp = c.pop("experiment")
        g = groups.setdefault((exp, json.dumps(c, sort_keys=True)), {"status": [], "values": {}})
        g["status"].append(status)
        for k, v in json.loads(metrics).items():
            values = g["values"].setdefault(k, [])
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if status != "failed" and number and math.isfinite(v):
                values.append(float(v))
    con.close()
    return groups


def exact_mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof 1) in rational arithmetic, each rounded once to a float.

    The oracle of ``mean_std``, independent of :mod:`statistics`: exact sums of
    :class:`fractions.Fraction`, the square root of the exact variance to 80 bits
    (an integer square root), then rounded; inf past the float range.
    """
    if not values:
        return None, None
    q = [Fraction(v) for v in values]
    mean = sum(q) / len(q)
    if len(q) < 2:
        return float(mean), None
    var = sum((x - mean) ** 2 for x in q) / (len(q) - 1)
    bits = 80 - (var.numerator.bit_length() - var.denominator.bit_length()) // 2
    num, den = var.numerator, var.denominator
    if bits >= 0:
        root = Fraction(math.isqrt(num * 4**bits // den), 2**bits)
    else:  # a huge variance: fewer fractional bits than none
        root = Fraction(math.isqrt(num // (den * 4**-bits)) * 2**-bits)
    try:
        return float(mean), float(root)
    except OverflowError:
        return float(mean), math.inf


def summary_rows(out: Path, experiment: str) -> list[dict]:
    with (out / experiment / "summary.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def find(rows: list[dict], params: dict) -> dict:
    def cell(v):
        return "" if v is None else json.dumps(v) if isinstance(v, list) else str(v)

    match = [r for r in rows if all(r.get(k) == cell(v) for k, v in params.items())]
    assert len(match) == 1, (params, rows)
    return match[0]


def md_cells(md: str, column: str) -> list[str]:
    """The cells of one column of the (single) Markdown table in ``md``."""
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    i = head.index(column)
    return [[c.strip() for c in ln.strip("|").split("|")][i] for ln in lines[2:]]


# ----------------------------------------------------------------------------- aggregates
VALUES = {  # value per seed of metric x; each list one group (selftest's `value` parameter)
    0.0: [0.1, 0.1, 0.1],  # identical seeds: std exactly 0, mean exactly 0.1
    1.0: [1e160, 2e160, 4e160],  # exploding signals: squares overflow a float
    2.0: [1e308, 1.5e308],  # a sum that overflows a float
    3.0: [1.0, 1.0 + 2**-52],  # a spread of one ulp
    4.0: [0.3],  # n = 1: no std
    5.0: [2.5, -7.25, 1e-300, 3.0],
}


def test_mean_and_std_are_exact_over_the_db_rows(tmp_path):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for value, xs in VALUES.items():
            for seed, x in enumerate(xs):
                record(store, "selftest", {"value": value, "seed": seed}, {"x": x, "y": seed})
        # failed (no metrics) and diverged (a non-finite metric is stored null) runs
        record(store, "selftest", {"value": 0.0, "seed": 7}, status="failed")
        record(store, "selftest", {"value": 5.0, "seed": 8}, {"x": math.inf, "y": 8},
               status="diverged")  # fmt: skip
        record(store, "selftest", {"value": 5.0, "seed": 9}, {"x": math.nan, "y": 9})
        # a failed run whose result carried metrics all the same (Store.record keeps them), and
        # a metric that is a bool, not a number: neither is counted (mutation audit)
        record(store, "selftest", {"value": 1.0, "seed": 6}, {"x": 1e300, "y": 6},
               status="failed")  # fmt: skip
        record(store, "selftest", {"value": 4.0, "seed": 5}, {"x": True, "y": 5})
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    rows = summary_rows(out, "selftest")
    summary = json.loads((out / "summary.json").read_text())["experiments"]["selftest"]
    expected = oracle(db)
    assert len(rows) == len(expected) == len(VALUES) == len(summary["groups"])
    for (_, params), g in expected.items():
        p = json.loads(params)
        row = find(rows, {"value": p["value"]})
        (js,) = [x for x in summary["groups"] if x["params"]["value"] == p["value"]]
        assert int(row["runs"]) == len(g["status"])
        for s in ("ok", "diverged", "failed"):
            assert int(row[s]) == g["status"].count(s) == js["status"][s]
        for metric, values in g["values"].items():
            mean, std = exact_mean_std(values)
            assert int(row[f"{metric}_count"]) == len(values) == js["stats"][metric]["count"]
            # exact, and the CSV and the JSON round-trip to the same float
            assert float(row[f"{metric}_mean"]) == mean == js["stats"][metric]["mean"]
            if std is None:
                assert row[f"{metric}_std"] == "" and js["stats"][metric]["std"] is None
            else:
                assert float(row[f"{metric}_std"]) == std == js["stats"][metric]["std"]
    x = {json.loads(p)["value"]: g["values"]["x"] for (_, p), g in expected.items()}
    assert x[5.0] == [2.5, -7.25, 1e-300, 3.0]  # the diverged run's inf and the NaN left out
    assert float(find(rows, {"value": 0.0})["x_std"]) == 0.0
    assert x[1.0] == VALUES[1.0] and x[4.0] == VALUES[4.0]  # the failed run's, the bool left out


def test_mean_std_matches_exact_arithmetic():
    rng = random.Random(0)
    cases = [list(v) for v in VALUES.values()]
    for _ in range(300):
        n = rng.randint(1, 12)
        scale = 10.0 ** rng.randint(-300, 300)
        center = rng.choice([0.0, 1.0, -3.0, 1e6])
        cases.append([(center + rng.gauss(0, 1) * rng.choice([1.0, 1e-12])) * scale
                      for _ in range(n)])  # fmt: skip
    for values in cases:
        assert mean_std(values) == exact_mean_std(values), values
    assert mean_std([]) == (None, None)
    assert mean_std([1.7e308, -1.7e308]) == (0.0, math.inf)  # a std beyond the float range


# ----------------------------------------------------------------------------- markdown
def test_markdown_prints_different_means_differently(tmp_path):
    db = tmp_path / "r.sqlite"
    means = {"a": [0.123456, 0.123456], "b": [0.123459, 0.123459], "c": [0.5], "d": [2.0, 4.0]}
    with Store(db) as store:
        for init, xs in means.items():
            for seed, x in enumerate(xs):
                record(store, "selftest", {"init": init, "seed": seed}, {"x": x})
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    md = (out / "selftest" / "summary.md").read_text()
    cells = dict(zip(md_cells(md, "init"), md_cells(md, "x"), strict=True))
    printed = {init: re.match(r"(\S+)", c).group(1) for init, c in cells.items()}
    assert printed["a"] != printed["b"], cells
    for init, xs in means.items():  # each printed mean is the mean rounded, not another value
        digits = len(re.sub(r"e.*|^-|\.", "", printed[init]).lstrip("0"))
        assert printed[init] == f"{statistics.mean(xs):.{max(digits, 1)}g}", cells
    assert printed["c"] == "0.5" and cells["c"] == "0.5 (1)"
    assert cells["d"] == f"3 ± {statistics.stdev([2.0, 4.0]):.4g} (2)"


def test_a_value_with_a_line_break_stays_in_its_markdown_row(tmp_path):
    # "|" was escaped but a newline was written raw, splitting the row over two lines
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for init in ("line1\nline2", "a|b", "c\r\nd"):
            record(store, "selftest", {"init": init, "seed": 0}, {"x": 1.0})
        record(store, "selftest", {"init": "e", "seed": 0, "value": "v\nw"}, {"x": 1.0})
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    md = (out / "selftest" / "summary.md").read_text()
    table = md[md.index("| init") :].split("\n\n")[0].splitlines()
    assert len(table) == 2 + 4 and all(ln[0] == ln[-1] == "|" for ln in table), table
    for cell in ("| line1\\nline2 |", "| a\\|b |", "| c\\r\\nd |", "| v\\nw |"):
        assert cell in md, (cell, table)  # the escapes, as Python writes them


def test_markdown_prints_stds_with_four_digits_whatever_the_means_need(tmp_path):
    # stds differing only in their last bits printed with 15 digits (0.0297771594308387)
    db = tmp_path / "r.sqlite"
    base = [0.6, 0.7, 0.8]
    with Store(db) as store:
        for init, scale in (("a", 1.0), ("b", 1.0 + 2e-15)):
            for seed, x in enumerate(base):
                record(store, "selftest", {"init": init, "seed": seed}, {"x": x * scale})
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    md = (out / "selftest" / "summary.md").read_text()
    cells = md_cells(md, "x")
    assert len(cells) == 2 and len({c.split(" ± ")[0] for c in cells}) == 2, cells  # means apart
    for c in cells:
        std = re.search(r"± (\S+) \(3\)", c).group(1)
        assert std == f"{statistics.stdev(base):.4g}", cells  # the same to 4 digits


def test_markdown_prints_large_means_in_full_not_in_exponent_form(tmp_path):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for init, xs in (("a", [20000.0, 20000.0]), ("b", [23456.5, 23456.5]),
                         ("c", [123456.75, 123456.85]), ("d", [5e20, 5e20])):  # fmt: skip
            for seed, x in enumerate(xs):
                record(store, "selftest", {"init": init, "seed": seed}, {"x": x})
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    cells = md_cells((out / "selftest" / "summary.md").read_text(), "x")
    means = sorted(c.split(" ")[0] for c in cells)
    assert means == ["123457", "20000", "23456", "5e+20"], cells  # was 2e+04, 2.346e+04


def test_means_that_round_up_to_a_longer_integer_print_in_full(tmp_path):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for init, x in (("a", 9999.7), ("b", 99999.7), ("c", 0.5)):
            record(store, "selftest", {"init": init, "seed": 0}, {"x": x})
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    cells = md_cells((out / "selftest" / "summary.md").read_text(), "x")
    assert cells == ["10000 (1)", "100000 (1)", "0.5 (1)"], cells  # was 1e+04 (1)


def test_markdown_says_what_the_numbers_are(tmp_path):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for seed in range(3):
            record(store, "selftest", {"seed": seed}, {"x": seed})
    out = tmp_path / "out"
    result = make_report(db, out, figures=False)
    md = (out / "selftest" / "summary.md").read_text()
    for words in ("mean ± sample standard deviation (ddof 1)", "n:", "Failed runs",
                  "diverged", "NaN"):  # fmt: skip
        assert words in md, md
    assert md in result.markdown


def test_pooling_runs_of_several_versions_is_said(tmp_path):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for seed in range(3):
            record(store, "selftest", {"seed": seed}, {"x": seed}, version="0.1.0")
        record(store, "selftest", {"seed": 3}, {"x": 3}, version="0.2.0")
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    md = (out / "selftest" / "summary.md").read_text()
    assert "fastinit 0.1.0 (3 runs), 0.2.0 (1 run)" in md, md
    summary = json.loads((out / "summary.json").read_text())
    assert summary["experiments"]["selftest"]["run_versions"] == {"0.1.0": 3, "0.2.0": 1}
    (group,) = summary["experiments"]["selftest"]["groups"]
    assert group["versions"] == {"0.1.0": 3, "0.2.0": 1}


# ----------------------------------------------------------------------------- grouping
def test_only_seeds_are_pooled(tmp_path):
    """Runs that differ in anything but the seed are separate groups, whatever the value."""
    db = tmp_path / "r.sqlite"
    variants = [
        {},
        {"lr": 0.5},
        {"dtype": "float32"},
        {"width": 8},
        {"optimizer": "momentum", "momentum": 0.9},  # sgd's momentum is recorded as 0.9 too
        {"optimizer": "momentum", "momentum": 0.5},
        {"weight_decay": 1e-4},
    ]
    with Store(db) as store:
        for i, v in enumerate(variants):
            for seed in range(2):
                record(store, "planar", {**v, "seed": seed}, {"final_loss": i + seed / 10})
    out = tmp_path / "out"
    result = make_report(db, out, figures=False)
    rows = summary_rows(out, "planar")
    assert len(rows) == len(result.groups["planar"]) == len(variants)
    for i, v in enumerate(variants):
        config = runners.full_config("planar", v)
        row = find(rows, {k: val for k, val in config.items() if k not in ("experiment", "seed")})
        assert row["runs"] == "2" and float(row["final_loss_mean"]) == i + 0.05


def test_a_parameter_missing_from_older_rows_keeps_its_column(tmp_path):
    """Rows of an older version without a parameter: every column is still there."""
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for seed in range(2):  # recorded first, as an older version would have
            record(store, "planar", {"seed": seed}, {"final_loss": 1.0 + seed}, drop=("rng",))
        for rng_name, loss in (("notebook", 2.0), ("fastinit", 3.0)):
            for seed in range(2):
                record(store, "planar", {"seed": seed, "rng": rng_name}, {"final_loss": loss})
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    rows = summary_rows(out, "planar")
    assert [r["rng"] for r in rows] == ["", "fastinit", "notebook"], rows
    assert [float(r["final_loss_mean"]) for r in rows] == [1.5, 3.0, 2.0]
    md = (out / "planar" / "summary.md").read_text()
    assert md_cells(md, "rng") == ["", "fastinit", "notebook"], md
    with (out / "planar" / "runs.csv").open(newline="") as f:
        runs = list(csv.DictReader(f))
    assert [r["rng"] for r in runs] == ["", "", "fastinit", "fastinit", "notebook", "notebook"]


# ----------------------------------------------------------------------------- bad input
def test_a_db_that_cannot_be_read_is_an_error_naming_it(tmp_path, capsys):
    meta_only = tmp_path / "meta.sqlite"  # another program's `meta` table, no `runs`
    con = sqlite3.connect(meta_only)
    con.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.commit()
    con.close()
    directory = tmp_path / "adir.sqlite"
    directory.mkdir()
    bad_json = tmp_path / "bad.sqlite"  # a damaged row
    with Store(bad_json) as store:
        record(store, "selftest", {"seed": 0}, {"x": 1.0})
    con = sqlite3.connect(bad_json)
    con.execute("UPDATE runs SET metrics = '{\"x\": 1.0'")
    con.commit()
    con.close()
    cases = [
        (meta_only, "cannot read its runs (no such table: runs)"),
        (directory, "is a directory"),
        (bad_json, "its metrics are not JSON"),
    ]
    for db, words in cases:
        with pytest.raises(SystemExit) as e:
            main(["report", str(db), "--out", str(tmp_path / "out"), "--no-figures"])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert f"DB: {db}" in err and words in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("config", "result", "words"),
    [
        ({"experiment": "selftest"}, {"status": "ok", "curves": {"x": [[1, 2]]}},
         "its curve 'x' is not a list of numbers"),
        ({"experiment": "selftest"}, {"status": "ok", "metrics": [1.0]},
         "its metrics are not a JSON object"),
        ({"experiment": 3}, {"status": "ok"}, "its config names no experiment"),
    ],
)  # fmt: skip
def test_a_run_that_rows_would_refuse_is_not_recorded(config, result, words, tmp_path):
    # record wrote a curve of pairs that rows() then refused, and the whole database with it
    with Store(tmp_path / "r.sqlite") as store:
        with pytest.raises(ValueError, match=rf"^run 'k': {re.escape(words)}"):
            store.record("k", config, result)
        store.record("ok", {"experiment": "selftest"}, {"status": "ok", "curves": {"x": [1.0]}})
        assert [r["key"] for r in store.rows()] == ["ok"]


@pytest.mark.parametrize(
    ("column", "stored", "words"),
    [
        ("config", "3", "its config is not a JSON object"),
        ("config", '{"seed": 1}', "its config names no experiment"),
        ("metrics", "[1, 2]", "its metrics are not a JSON object"),
        ("curves", "[1]", "its curves are not a JSON object"),
        ("curves", '{"x": 5}', "its curve 'x' is not a list of numbers"),
        ("curves", '{"x": ["a", 2]}', "its curve 'x' is not a list of numbers"),
        ("metrics", '{"x": 1.0', "its metrics are not JSON (Expecting"),
    ],
)
@pytest.mark.parametrize("figures", [False, True])
def test_a_run_stored_in_another_shape_is_an_error_naming_it(
    column, stored, words, figures, tmp_path, capsys
):
    # a row edited or written by another program: the report stopped with a traceback
    # ("'list' object has no attribute 'get'", exit 1) or a message naming neither the
    # database nor the run ("'int' object is not subscriptable")
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        record(store, "selftest", {"seed": 0}, {"x": 1.0})
        record(store, "selftest", {"seed": 1}, {"x": 2.0})
        key = store.rows()[1]["key"]
    con = sqlite3.connect(db)
    con.execute(f"UPDATE runs SET {column} = ? WHERE key = ?", (stored, key))
    con.commit()
    con.close()
    with pytest.raises(ValueError) as e:
        Store(db, readonly=True).rows()
    assert str(e.value).startswith(f"db: {db}: run {key!r}: {words}"), str(e.value)
    argv = ["report", str(db), "--out", str(tmp_path / "out")] + (
        [] if figures else ["--no-figures"]
    )
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastinit report: error: DB: {db}: run {key!r}: {words}"), err
    assert not (tmp_path / "out").exists()


def test_filters_matching_nothing_say_what_the_db_holds(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        record(store, "selftest", {"seed": 0}, {"x": 1}, sweep="first")
        record(store, "planar", {"seed": 0}, {"final_loss": 1}, sweep="second")
    cases = [
        (["--sweep", "nope"], "no runs of --sweep 'nope'; its sweeps: 'first', 'second'"),
        (["--experiment", "depht"],
         "no runs of --experiment 'depht'; its experiments: 'planar', 'selftest'"),
        (["--experiment", "planar", "--sweep", "first"],
         "no runs of --experiment 'planar' and --sweep 'first'; its experiments: 'planar', "
         "'selftest'; its sweeps: 'first', 'second'"),
    ]  # fmt: skip
    for args, words in cases:
        with pytest.raises(SystemExit) as e:
            main(["report", str(db), "--out", str(tmp_path / "out"), "--no-figures", *args])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert words in err and str(db) in err and "Traceback" not in err, err
    empty = tmp_path / "empty.sqlite"
    Store(empty).close()  # a sweep killed before its first run finished
    with pytest.raises(ValueError, match="holds no runs; no run of a sweep has finished yet"):
        make_report(empty, tmp_path / "out")


# ----------------------------------------------------------------------------- interruption
def _two_experiments(db: Path, seeds: range) -> None:
    with Store(db) as store:
        for seed in seeds:
            record(store, "planar", {"seed": seed}, {"final_loss": 1.0 + seed})
            record(store, "selftest", {"seed": seed}, {"x": 2.0 * seed})


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}  # fmt: skip


def test_an_interrupted_report_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    db = tmp_path / "r.sqlite"
    _two_experiments(db, range(2))
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    before = _files(out)
    _two_experiments(db, range(2, 4))  # every table changes
    markdown = report_module.markdown

    def interrupted(groups, title):
        if title == "selftest":  # the second experiment, after planar's files are written
            raise KeyboardInterrupt
        return markdown(groups, title)

    monkeypatch.setattr(report_module, "markdown", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_report(db, out, figures=False)
    assert _files(out) == before  # no directory replaced, no staging directory left
    assert not [p for p in out.rglob(".writing-*")]
    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        make_report(db, fresh, figures=False)
    assert not fresh.exists() or not any(fresh.iterdir()), list(fresh.rglob("*"))
    monkeypatch.setattr(report_module, "markdown", markdown)
    make_report(db, out, figures=False)
    assert len(summary_rows(out, "planar")) == 1 and _files(out) != before


def test_a_report_of_fewer_experiments_removes_the_previous_reports_other_directories(
    tmp_path, monkeypatch
):
    """Filtered to planar: selftest/ of the last report goes, what it did not write stays."""
    db = tmp_path / "r.sqlite"
    _two_experiments(db, range(2))
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    (out / "mine.txt").write_text("keep")  # the user's file and directories beside the report
    (out / "depth").mkdir()  # named like an experiment, not written by a report
    (out / "depth" / "summary.md").write_text("keep")
    markdown = report_module.markdown

    def interrupted(groups, title):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module, "markdown", interrupted)
    before = _files(out)
    with pytest.raises(KeyboardInterrupt):  # an interrupted report removes nothing either
        make_report(db, out, experiment="planar", figures=False)
    assert _files(out) == before
    monkeypatch.setattr(report_module, "markdown", markdown)
    make_report(db, out, experiment="planar", figures=False)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "depth", "mine.txt", "planar", "summary.json", "summary.md"
    ]  # fmt: skip
    assert (out / "depth" / "summary.md").read_text() == "keep"
    assert (out / "mine.txt").read_text() == "keep"
    make_report(db, out, figures=False)  # both again; the user's file in selftest/ stays
    (out / "selftest" / "notes.txt").write_text("keep")
    make_report(db, out, experiment="planar", figures=False)
    assert [p.name for p in (out / "selftest").iterdir()] == ["notes.txt"]
    assert set(json.loads((out / "summary.json").read_text())["experiments"]) == {"planar"}


def test_a_report_lists_the_files_it_wrote_in_each_directory(tmp_path):
    """The listing file (``_common.LISTING``) names the files the report wrote there."""
    db = tmp_path / "r.sqlite"
    _two_experiments(db, range(2))
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    for directory in (out, out / "planar", out / "selftest"):
        listed = json.loads((directory / _common.LISTING.format("report")).read_text())
        written = sorted(p.name for p in directory.iterdir()
                         if p.is_file() and not p.name.startswith("."))  # fmt: skip
        assert sorted(listed) == written and written, directory


@pytest.mark.parametrize("refused", ["planar", "selftest"])
def test_a_refused_directory_leaves_every_directory_as_it_was(tmp_path, refused):
    """Another command's file in one experiment's directory: nothing is replaced anywhere."""
    db = tmp_path / "r.sqlite"
    _two_experiments(db, range(2))
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    (out / refused / _common.LISTING.format("planar")).write_text('["summary.md"]')
    before = _files(out)
    _two_experiments(db, range(2, 4))
    with pytest.raises(ValueError, match="output of `fastinit planar`"):
        make_report(db, out, figures=False)
    assert _files(out) == before


# ----------------------------------------------------------------------------- figures
def _captured_figures(monkeypatch) -> dict:
    from matplotlib.collections import PolyCollection

    figures: dict = {}
    figure = _common.Output.figure

    def capture(self, name, fig):
        figure(self, name, fig)  # drawn first: the colorbars' offset texts are set at draw time
        figures[name] = {
            "suptitle": fig._suptitle.get_text() if fig._suptitle else "",
            "axes": [(ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes],
            "texts": [[t.get_text() for t in ax.texts] for ax in fig.axes],
            "legends": [
                [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else []
                for ax in fig.axes
            ],
            "ylims": [ax.get_ylim() for ax in fig.axes],
            "norms": [[(im.norm.vmin, im.norm.vmax) for im in ax.images] for ax in fig.axes],
            "offsets": [ax.yaxis.get_offset_text().get_text() for ax in fig.axes],
            "bands": [
                [_band_edges(c) for c in ax.collections if isinstance(c, PolyCollection)]
                for ax in fig.axes
            ],
        }

    monkeypatch.setattr(_common.Output, "figure", capture)
    return figures


def _band_edges(collection) -> tuple[float, float]:
    """The lowest and highest y of a filled band (``fill_between``), its finite vertices."""
    ys = [y for path in collection.get_paths() for _, y in path.vertices if math.isfinite(y)]
    return min(ys), max(ys)


def test_heatmap_axes_and_colorbars_are_labelled(tmp_path, monkeypatch):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for i, init in enumerate(("a", "b")):
            for j, act in enumerate(("x", "y")):
                for seed in range(2):
                    value = 0.12345 + 0.00001 * (2 * i + j)  # alike to 3 significant digits
                    record(store, "selftest", {"init": init, "activation": act, "seed": seed},
                           {"value": value, "final_loss": 0.25})  # fmt: skip
    figures = _captured_figures(monkeypatch)
    make_report(db, tmp_path / "out")
    heat = figures["heatmap_value.png"]
    (panel, colorbar) = heat["axes"]
    assert panel[1:] == ("activation", "init"), heat
    assert "value" in colorbar[2] and "mean over seeds" in colorbar[2], heat
    means = [t.split("\n")[0] for t in heat["texts"][0]]  # row by row: a/x, a/y, b/x, b/y
    assert len(set(means)) == 4, means
    expected = [0.12345 + 0.00001 * k for k in range(4)]
    assert [float(m) for m in means] == pytest.approx(expected, abs=0.6e-5), means


def test_signal_figures_name_their_panel(tmp_path, monkeypatch):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for width in (16, 32):
            for init in ("he", "xavier"):
                for depth in (2, 3):
                    for seed in range(2):
                        act = [1.0 + seed] * depth
                        record(
                            store, "depth",
                            {"width": width, "init": init, "depth": depth, "seed": seed},
                            {"act_std_last": act[-1], "grad_std_first": 0.5},
                            curves={"act_std": act, "grad_std": [0.5] * depth,
                                    "act_mean": [0.0] * depth},
                        )  # fmt: skip
    figures = _captured_figures(monkeypatch)
    make_report(db, tmp_path / "out")
    for width in (16, 32):
        title = figures[f"signal_vs_depth_width={width}.png"]["suptitle"]
        assert f"width={width}" in title and "depth" in title and "mean over seeds" in title


def test_figure_panels_show_a_parameter_the_optimizer_does_not_read_as_in_the_table(
    tmp_path, monkeypatch
):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for opt, momentum in (("sgd", 0.9), ("momentum", 0.5), ("momentum", 0.9)):
            for seed in range(2):
                params = {"optimizer": opt, "momentum": momentum, "seed": seed}
                record(store, "planar", params, {"final_loss": 0.1 + seed},
                       curves={"loss": [1.0, 0.5]})  # fmt: skip
    figures = _captured_figures(monkeypatch)
    make_report(db, tmp_path / "out")
    for name in ("curves_loss.png", "heatmap_final_loss.png"):
        titles = sorted(t for t, _, _ in figures[name]["axes"] if t.startswith("optimizer"))
        assert titles == ["optimizer=momentum, momentum=0.5", "optimizer=momentum, momentum=0.9",
                          "optimizer=sgd, momentum=-"], (name, titles)  # fmt: skip


def test_heatmap_cells_say_how_many_runs_their_mean_leaves_out(tmp_path, monkeypatch):
    """A configuration whose seeds mostly diverged must not look like one that trained."""
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for init, losses in (("a", [0.25, 0.75, None]), ("b", [0.5, 0.5, 0.5]), ("c", [0.5])):
            for seed, loss in enumerate(losses):
                status = "ok" if loss is not None else "diverged"
                record(store, "selftest", {"init": init, "seed": seed},
                       {"final_loss": loss, "value": 1.0}, status=status)  # fmt: skip
        record(store, "selftest", {"init": "c", "seed": 1}, status="failed")
    figures = _captured_figures(monkeypatch)
    make_report(db, tmp_path / "out")
    heat = figures["heatmap_final_loss.png"]
    cells = [t.split("\n") for t in heat["texts"][0]]  # rows a, b, c; one activation
    assert cells == [["0.5 (2/3)", "±0.35", "1 of 3 seeds diverged"], ["0.5", "±0"],
                     ["0.5 (1/2)"]], cells  # fmt: skip
    assert "(k/n): k of n runs" in heat["suptitle"], heat["suptitle"]
    assert [t.split("\n")[0] for t in figures["heatmap_value.png"]["texts"][0]] == [
        "1", "1", "1 (1/2)"]  # fmt: skip


def test_heatmap_cells_tell_a_configuration_never_run_from_one_whose_runs_all_failed(
    tmp_path, monkeypatch
):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for init, act in (("a", "x"), ("a", "y"), ("b", "x")):  # b/y never run
            for seed in range(2):
                if init == "b":
                    record(store, "selftest", {"init": init, "activation": act, "seed": seed},
                           status="failed")  # fmt: skip
                else:
                    record(store, "selftest", {"init": init, "activation": act, "seed": seed},
                           {"value": 1.0, "final_loss": 0.25})  # fmt: skip
    figures = _captured_figures(monkeypatch)
    make_report(db, tmp_path / "out")
    cells = figures["heatmap_value.png"]["texts"][0]  # row by row: a/x, a/y, b/x, b/y
    assert cells[3] == "not run", cells
    assert "2 of 2 failed" in cells[2] and cells[2] != cells[3], cells


def _two_cells(db: Path, values: tuple[float, float]) -> None:
    with Store(db) as store:
        for init, value in zip(("a", "b"), values, strict=True):
            for seed in range(2):
                record(store, "selftest", {"init": init, "seed": seed},
                       {"value": value, "final_loss": value})  # fmt: skip


def test_heatmap_colours_do_not_blow_rounding_noise_up_to_the_whole_colour_range(
    tmp_path, monkeypatch
):
    """2.4712737018722 against 2.4712737018721 filled viridis from purple to yellow."""
    figures = _captured_figures(monkeypatch)
    _two_cells(tmp_path / "noise.sqlite", (2.4712737018722, 2.4712737018721))
    make_report(tmp_path / "noise.sqlite", tmp_path / "noise")
    heat = figures["heatmap_value.png"]
    ((vmin, vmax),) = heat["norms"][0]
    assert vmax - vmin > 1e6 * 1e-13, (vmin, vmax)  # the two cells a millionth of it apart
    assert vmin <= 2.4712737018721 and 2.4712737018722 <= vmax, (vmin, vmax)
    # the colorbar's ticks carry the values: no offset text ("1e-14+2.471273702") over the title
    assert heat["offsets"] == ["", ""], heat["offsets"]
    # a real difference still spans the colour range
    _two_cells(tmp_path / "real.sqlite", (0.6, 0.692))
    make_report(tmp_path / "real.sqlite", tmp_path / "real")
    ((vmin, vmax),) = figures["heatmap_value.png"]["norms"][0]
    assert (vmin, vmax) == pytest.approx((0.6, 0.692)), (vmin, vmax)


def test_a_report_is_refused_while_an_experiment_runs_in_one_of_its_directories(tmp_path):
    # the report claimed its top directory only: an experiment running in <out>/<exp>
    # was refused at the end, or refused the report as it committed, after the figures
    fcntl = pytest.importorskip("fcntl")
    import os

    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        record(store, "selftest", {"init": "a", "seed": 0}, {"final_loss": 1.0})
    (tmp_path / "out" / "selftest").mkdir(parents=True)
    claim = os.open(tmp_path / "out" / "selftest" / ".fastinit-planar-running",
                    os.O_RDWR | os.O_CREAT)  # fmt: skip
    fcntl.flock(claim, fcntl.LOCK_SH)  # as `fastinit planar --out out/selftest` holds it
    try:
        with pytest.raises(ValueError, match=r"`fastinit planar` is writing there now"):
            make_report(db, tmp_path / "out")
        assert not (tmp_path / "out" / "summary.md").exists()
    finally:
        os.close(claim)
    make_report(db, tmp_path / "out")
    assert (tmp_path / "out" / "summary.md").exists()
    assert not list((tmp_path / "out").rglob("*-running"))


def test_a_curve_diverging_to_the_float_limit_leaves_the_panel_readable(tmp_path, monkeypatch):
    """A float64 run climbs to 1e304 before its NaN: the log axis fell back to 1-10."""
    import warnings

    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for seed in range(2):
            climb = [10.0 ** (8 * k) for k in range(39)] + [1e304, None, None]
            record(store, "selftest", {"init": "a", "seed": seed}, {"final_loss": None},
                   curves={"loss": climb}, status="diverged")  # fmt: skip
            healthy = [20.0 + seed - 0.01 * k for k in range(len(climb))]
            record(store, "selftest", {"init": "b", "seed": seed}, {"final_loss": healthy[-1]},
                   curves={"loss": healthy})  # fmt: skip
    figures = _captured_figures(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "overflow encountered in exp"
        make_report(db, tmp_path / "out")
    low, high = figures["curves_loss.png"]["ylims"][0]
    assert low <= 19.6 and 21 <= high < 1e300, (low, high)


def test_a_diverged_loss_curve_leaves_the_top_of_the_panel_the_others_stay_readable(
    tmp_path, monkeypatch
):
    """A lr sweep's diverged run climbs 30 decades before its NaN; the log axis spanned them
    all, and the runs that trained (losses 0.1 to 2.3) were a flat line on its floor."""
    import numpy as np

    from fastinit.experiments._common import DIVERGED_HEADROOM

    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for seed in range(2):
            climb = [2.3 * 10.0 ** (k / 2) for k in range(60)] + [None, None]
            record(store, "selftest", {"init": "a", "seed": seed}, {"final_loss": None},
                   curves={"loss": climb}, status="diverged")  # fmt: skip
            trained = list(np.geomspace(2.3, 0.1 + 0.01 * seed, len(climb)))
            record(store, "selftest", {"init": "b", "seed": seed}, {"final_loss": trained[-1]},
                   curves={"loss": trained})  # fmt: skip
            record(store, "selftest", {"init": "c", "seed": seed}, {"final_loss": 1.0},
                   curves={"loss": [1.0] * len(climb)})  # fmt: skip
    figures = _captured_figures(monkeypatch)
    make_report(db, tmp_path / "out")
    curves = figures["curves_loss.png"]
    low, high = curves["ylims"][0]
    assert low <= 0.1 and 2.3 <= high <= 2.3 * DIVERGED_HEADROOM, (low, high)
    assert "diverged" in curves["suptitle"] and "above" in curves["suptitle"], curves["suptitle"]
    # a panel whose every line diverged keeps every value it draws
    db2 = tmp_path / "all.sqlite"
    with Store(db2) as store:
        for seed in range(2):
            record(store, "selftest", {"init": "a", "seed": seed}, {"final_loss": None},
                   curves={"loss": climb}, status="diverged")  # fmt: skip
    make_report(db2, tmp_path / "out2")
    low, high = figures["curves_loss.png"]["ylims"][0]
    assert high >= max(climb[:-2]), (low, high)
    assert "above" not in figures["curves_loss.png"]["suptitle"]


def test_the_band_of_a_curve_stays_within_the_values_its_seeds_reached(tmp_path, monkeypatch):
    """A std larger than the mean put the band's lower edge at or below 0 (the axis bottom)."""
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for seed, losses in enumerate(([1.0, 0.01, 0.01], [1.0, 10.0, 2.0])):
            record(store, "selftest", {"init": "a", "seed": seed}, {"final_loss": losses[-1]},
                   curves={"loss": losses})  # fmt: skip
    figures = _captured_figures(monkeypatch)
    make_report(db, tmp_path / "out")
    curves = figures["curves_loss.png"]
    ((low, high),) = curves["bands"][0]
    assert 0.01 <= low and high <= 10.0, (low, high)
    assert curves["ylims"][0][0] >= 0.001, curves["ylims"]
    assert "band" in curves["suptitle"] and "min" in curves["suptitle"], curves["suptitle"]


def test_exploding_signals_of_a_real_depth_sweep_are_aggregated(tmp_path):
    """std=10 ReLU over 100 layers: activations near 1e175 (squares beyond the float range)."""
    from fastinit.sweep.execute import run_sweep

    spec = tmp_path / "spec.toml"
    spec.write_text(
        'experiment = "depth"\n[fixed]\nwidth = 64\nsamples = 8\nactivation = "relu"\n'
        'depth = 100\n[grid]\ninit = ["std=10"]\nseed = [0, 1, 2]\n'
    )
    db = tmp_path / "r.sqlite"
    run_sweep(spec, db, workers=0, progress=False)
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    (g,) = oracle(db).values()
    (row,) = summary_rows(out, "depth")
    big = [m for m, v in g["values"].items() if len(v) > 1 and max(map(abs, v)) > 1e160]
    assert big, g["values"]  # the case this test is about
    for metric, values in g["values"].items():
        assert int(row[f"{metric}_count"]) == len(values)
        mean, std = exact_mean_std(values)
        if values:
            assert float(row[f"{metric}_mean"]) == mean
        if len(values) > 1:
            assert float(row[f"{metric}_std"]) == std


def test_a_parameter_the_optimizer_does_not_read_is_not_shown_as_a_value(tmp_path):
    # sgd runs record momentum at its default (one run key); the table must not read as
    # if they used momentum 0.9
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for opt, momentum in (("sgd", 0.9), ("momentum", 0.5), ("momentum", 0.9)):
            params = {"optimizer": opt, "momentum": momentum, "seed": 0}
            record(store, "planar", params, {"final_loss": 0.1})
        record(store, "mnist", {"optimizer": "sgd", "seed": 0}, {"final_loss": 0.2})
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    md = (out / "planar" / "summary.md").read_text()
    cells = list(zip(md_cells(md, "optimizer"), md_cells(md, "momentum"), strict=True))
    assert sorted(cells) == [("momentum", "0.5"), ("momentum", "0.9"), ("sgd", "-")], md
    fixed = (out / "mnist" / "summary.md").read_text().split("\n|")[0]
    assert "momentum" not in fixed and "`optimizer=sgd`" in fixed, fixed


# ----------------------------------------------------------------------------- partial sweeps
def _claim(db: Path, seed: int, *, stale: bool) -> None:
    """Claim the selftest run of ``seed`` as a sweep on another host would; ``stale``: its lease
    expired (the judgement of :meth:`Store.claims`, ``live=True``, not the test's)."""
    key = config_key(runners.full_config("selftest", {"seed": seed}))
    with Store(db) as store:
        assert store.claim(key, Claimant(host="elsewhere.example", pid=4321)) == "claimed"
        if stale:
            with store.conn:
                store.conn.execute(
                    "UPDATE claims SET lease = lease - ? WHERE key = ?", (2 * LEASE_SECONDS, key)
                )


def test_a_report_of_a_sweep_in_progress_says_so(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for seed in range(2):
            record(store, "selftest", {"seed": seed}, {"x": float(seed)})
    for seed, stale in ((2, False), (3, False), (4, True)):
        _claim(db, seed, stale=stale)
    out = tmp_path / "out"
    assert main(["report", str(db), "--out", str(out), "--no-figures"]) in (0, None)
    printed = capsys.readouterr().out
    live = "2 runs were in progress when this report was written (claimed by live workers)"
    stale = "1 claim is stale (its worker is gone: `fastinit sweep` resumes it)"
    md = (out / "summary.md").read_text()
    top = md.split("\n## ")[0]  # under the title, before the first experiment's table
    for text in (top, printed):
        assert live in text and stale in text, text
    assert json.loads((out / "summary.json").read_text())["claims"] == {"live": 2, "stale": 1}
    # the claims gone (the runs recorded): no such line
    with Store(db) as store:
        store.conn.execute("DELETE FROM claims")
        store.conn.commit()
    assert main(["report", str(db), "--out", str(out), "--no-figures"]) in (0, None)
    printed = capsys.readouterr().out
    md = (out / "summary.md").read_text()
    for text in (md, printed):
        assert "in progress" not in text and "stale" not in text, text
    assert json.loads((out / "summary.json").read_text())["claims"] == {"live": 0, "stale": 0}


def test_one_stale_claim_alone_is_said(tmp_path):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        record(store, "selftest", {"seed": 0}, {"x": 1.0})
    _claim(db, 1, stale=True)
    result = make_report(db, tmp_path / "out", figures=False)
    assert "1 claim is stale (its worker is gone: `fastinit sweep` resumes it)" in result.markdown
    assert "in progress" not in result.markdown
    assert "1 claim is stale" in result.footer


# ----------------------------------------------------------------------------- diverged seeds
def test_figures_say_how_many_seeds_of_a_group_diverged(tmp_path, monkeypatch):
    """As the tables' ok/div/fail: a curve or a cell over fewer seeds than were run says so."""
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for init, diverged in (("a", (False, True, False)), ("b", (False, False))):
            for seed, div in enumerate(diverged):
                loss = [1.0, 0.5, None if div else 0.25]
                record(store, "selftest", {"init": init, "seed": seed},
                       {"final_loss": loss[-1], "value": 1.0}, curves={"loss": loss},
                       status="diverged" if div else "ok")  # fmt: skip
        for init in ("he", "xavier"):
            for depth in (2, 3):
                for seed in range(2):
                    div = init == "he" and depth == 3 and seed == 1
                    act = [1.0] * (depth - 1) + [None if div else 1.0]
                    record(store, "depth", {"init": init, "depth": depth, "seed": seed},
                           {"act_std_last": act[-1], "grad_std_first": 0.5},
                           curves={"act_std": act, "grad_std": [0.5] * depth},
                           status="diverged" if div else "ok")  # fmt: skip
    figures = _captured_figures(monkeypatch)
    make_report(db, tmp_path / "out")
    (legend,) = [x for x in figures["curves_loss.png"]["legends"] if x]
    assert len(legend) == 2 and "1 of 3 seeds diverged" in legend[0], legend
    assert "diverged" not in legend[1], legend
    for metric in ("final_loss", "value"):  # a diverged seed's finite metric counts too
        cells = figures[f"heatmap_{metric}.png"]["texts"][0]
        assert "1 of 3 seeds diverged" in cells[0] and "diverged" not in cells[1], cells
    # one column per depth: he diverged at depth 3 only
    signal = figures["signal_relu.png"]["legends"]
    assert ["he", "xavier"] in signal, signal
    assert ["he (1 of 2 seeds diverged)", "xavier"] in signal, signal
    vs_depth = [x for x in figures["signal_vs_depth.png"]["legends"] if x]
    assert vs_depth == [["he (depth 3: 1 of 2 seeds diverged)", "xavier"]], vs_depth


# ----------------------------------------------------------------------------- determinism
def test_runs_csv_is_the_same_whatever_order_the_runs_were_recorded_in(tmp_path):
    runs = []
    for init in ("b", "a"):
        for seed in range(3):
            metrics = {"x": seed + 0.5, "y": 1.0}
            if init == "a" and seed == 2:
                metrics["z"] = 3.0  # a metric only one run reported: a column of its own
            runs.append(({"init": init, "seed": seed}, metrics))
    files = []
    for name, order in (("one", runs), ("two", [runs[i] for i in (5, 1, 3, 0, 4, 2)])):
        db = tmp_path / f"{name}.sqlite"
        with Store(db) as store:
            for params, metrics in order:
                record(store, "selftest", params, metrics)
        make_report(db, tmp_path / name, figures=False)
        files.append(_files(tmp_path / name / "selftest"))
    assert files[0] == files[1]
    for name in ("one", "two"):  # summary.json's seeds too, in order (mutation audit)
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        groups = summary["experiments"]["selftest"]["groups"]
        assert [g["seeds"] for g in groups] == [[0, 1, 2], [0, 1, 2]], name
    with (tmp_path / "one" / "selftest" / "runs.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["init"], r["seed"]) for r in rows] == [(i, str(s)) for i in "ab" for s in range(3)]


# ----------------------------------------------------------------------------- missing values
def test_a_statistic_of_one_seed_or_of_no_finite_value_is_empty_never_nan(tmp_path):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        record(store, "selftest", {"init": "one", "seed": 0}, {"x": 0.5})
        for seed, x in enumerate((math.nan, math.inf)):
            record(store, "selftest", {"init": "none", "seed": seed}, {"x": x}, status="diverged")
        record(store, "selftest", {"init": "old", "seed": 0}, {"x": 1.0})
    con = sqlite3.connect(db)  # a NaN written as JSON's NaN literal (not fastinit's null)
    con.execute("UPDATE runs SET metrics = '{\"x\": NaN}' WHERE config LIKE '%\"old\"%'")
    con.commit()
    con.close()
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    rows = {r["init"]: r for r in summary_rows(out, "selftest")}
    assert (rows["one"]["x_mean"], rows["one"]["x_std"], rows["one"]["x_count"]) == ("0.5", "", "1")
    for init in ("none", "old"):
        assert (rows[init]["x_mean"], rows[init]["x_std"], rows[init]["x_count"]) == ("", "", "0")
    for name in ("summary.csv", "runs.csv"):
        with (out / "selftest" / name).open(newline="") as f:
            cells = [c.lower() for row in csv.reader(f) for c in row]
        assert not {"nan", "-nan", "+nan"} & set(cells), (name, cells)

    def refuse(constant):
        raise AssertionError(f"{constant} in summary.json")

    summary = json.loads((out / "summary.json").read_text(), parse_constant=refuse)
    stats = {
        g["params"]["init"]: g["stats"]["x"] for g in summary["experiments"]["selftest"]["groups"]
    }
    assert stats["one"] == {"mean": 0.5, "std": None, "count": 1}
    assert stats["none"] == stats["old"] == {"mean": None, "std": None, "count": 0}
    md = (out / "selftest" / "summary.md").read_text()
    cells = dict(zip(md_cells(md, "init"), md_cells(md, "x"), strict=True))
    assert cells == {"none": "- (0)", "old": "- (0)", "one": "0.5 (1)"}, cells


def test_runs_csv_lists_the_parameters_in_the_order_summary_csv_does(tmp_path):
    # summary.csv keeps the experiment's declared order; runs.csv had the stored config's
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for seed in range(2):
            record(store, "planar", {"seed": seed, "init": "xavier"}, {"final_loss": 1.0})
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    with (out / "planar" / "summary.csv").open(newline="") as f:
        summary = next(csv.reader(f))
    with (out / "planar" / "runs.csv").open(newline="") as f:
        runs = next(csv.reader(f))
    declared = list(report_module.EXPERIMENTS["planar"].params)
    params = runs[2 : 2 + len(declared)]
    assert params == declared, runs
    assert [p for p in params if p in summary] == summary[: summary.index("runs")]


# ----------------------------------------------------------------------------- names from the data
def test_rows_that_differ_only_in_a_parameter_they_do_not_read_are_told_apart(tmp_path):
    # rows of a database made before such parameters were recorded at their default: sgd
    # with momentum 0.5 and with 0.9 printed as two rows "sgd | -" with different means
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for momentum in (0.5, 0.9):
            for opt in ("sgd", "momentum"):
                config = runners.full_config("planar", {"optimizer": opt, "momentum": momentum,
                                                        "seed": 0})  # fmt: skip
                result = {"status": "ok", "metrics": {"final_loss": momentum}, "curves": {}}
                store.record(config_key(config), config, result, "s")  # not canonical: old
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    md = (out / "planar" / "summary.md").read_text()
    cells = list(zip(md_cells(md, "optimizer"), md_cells(md, "momentum"), strict=True))
    assert sorted(cells) == [("momentum", "0.5"), ("momentum", "0.9"), ("sgd", "- (0.5)"),
                             ("sgd", "- (0.9)")], md  # fmt: skip


def test_odd_names_stay_in_their_markdown_row_and_code_span(tmp_path):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for seed in range(2):
            config = runners.full_config("planar", {"init": "he", "seed": seed})
            config["tick`name"] = "a`b|c"  # a parameter of another version's rows
            result = {"status": "ok", "metrics": {"x|y\nz": 1.0}, "curves": {}}
            store.record(config_key(config), config, result, "s")
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    md = (out / "planar" / "summary.md").read_text()
    (head,) = [line for line in md.splitlines() if line.startswith("| runs")]
    assert head.endswith("| x\\|y\\nz |"), md
    fixed = next(line for line in md.splitlines() if line.startswith("Fixed: "))
    # a code span fenced by more backticks than it holds in a row; no table row here, so
    # the | as it is (CommonMark shows a backslash in a code span as it is)
    assert "``tick`name=a`b|c``" in fixed, fixed


def _future_db(db: Path, metrics) -> Path:
    """Rows of an experiment this version does not know (heatmaps of their first metrics,
    whose names are the data's); ``metrics(seed)``: a run's metrics."""
    with Store(db) as store:
        for seed in range(2):
            for init in ("he", "xavier"):
                config = {"experiment": "future", "init": init, "activation": "relu",
                          "seed": seed}  # fmt: skip
                result = {"status": "ok", "metrics": metrics(seed), "curves": {}}
                store.record(config_key(config), config, result, "s")
    return db


def _figures_written(db: Path, out: Path) -> list[str]:
    return sorted(p.name for p in make_report(db, out).written if p.suffix == ".png")


def test_a_metric_named_with_a_slash_gets_a_heatmap_file(tmp_path):
    # "loss/val" stopped the report with FileNotFoundError
    db = _future_db(tmp_path / "r.sqlite", lambda seed: {"loss/val": 0.1 * seed})
    assert _figures_written(db, tmp_path / "out") == ["heatmap_loss_val.png"]


def test_two_names_made_the_same_file_name_get_two_files(tmp_path):
    # "loss/val" and "loss_val" both became heatmap_loss_val.png: one figure silently lost
    metrics = lambda seed: {"loss/val": 0.1 * seed, "loss_val": 0.2}  # noqa: E731
    db = _future_db(tmp_path / "r.sqlite", metrics)
    names = _figures_written(db, tmp_path / "out")
    assert names == ["heatmap_loss_val.png", "heatmap_loss_val_2.png"], names


def test_every_column_name_is_unique_whatever_the_metrics_are_named(tmp_path):
    # metrics "seed" and "seed_metric" gave runs.csv two "seed_metric" columns; a metric
    # whose summary columns took a parameter's name likewise
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        config = runners.full_config("planar", {"seed": 0})
        config["lr_mean"] = 1  # a parameter of another version's rows
        metrics = {"seed": 1.0, "seed_metric": 2.0, "lr": 3.0}
        store.record(config_key(config), config, {"status": "ok", "metrics": metrics}, "s")
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    for name in ("runs.csv", "summary.csv"):
        with open(out / "planar" / name, newline="") as f:
            head = next(csv.reader(f))
        assert len(head) == len(set(head)), (name, head)
    with open(out / "planar" / "runs.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    assert (row["seed"], row["seed_metric"], row["seed_metric_metric"]) == ("0", "1.0", "2.0")


# ----------------------------------------------------------------------------- mutation audit 6
def test_the_curve_of_a_group_is_the_mean_over_its_seeds():
    # a median over the seeds passed every test (mutation audit)
    plt = _common.pyplot()
    fig, ax = plt.subplots()
    a = np.array([[1.0, 2.0, np.nan], [2.0, 4.0, 5.0], [9.0, 6.0, 7.0]])
    drawn = report_module._mean_and_band(ax, a, "C0", "he")
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), [4.0, 4.0, 6.0])
    np.testing.assert_allclose(drawn[1:], [[1.0, 2.0, 5.0], [9.0, 6.0, 7.0]])
    plt.close(fig)


def test_versions_are_listed_in_numeric_order(tmp_path):
    # 0.10.0 before 0.9.0 when the versions' parts compare as text (mutation audit)
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        record(store, "selftest", {"seed": 0}, {"x": 0}, version="0.10.0")
        record(store, "selftest", {"seed": 1}, {"x": 1}, version="0.9.0")
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    md = (out / "selftest" / "summary.md").read_text()
    assert "fastinit 0.9.0 (1 run), 0.10.0 (1 run)" in md, md
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["experiments"]["selftest"]["run_versions"]) == ["0.9.0", "0.10.0"]


def test_a_metric_stored_under_both_names_is_read_under_its_current_one(tmp_path):
    # iterations (the old name) and iterations_done both in a row: the current one's value
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        record(store, "selftest", {"seed": 0}, {"iterations_done": 7, "iterations": 5})
        record(store, "selftest", {"seed": 1}, {"iterations": 3})
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    (row,) = summary_rows(out, "selftest")
    assert row["iterations_done_mean"] == "5.0" and row["iterations_done_count"] == "2", row
    assert "iterations_mean" not in row


def test_runs_csv_gives_the_last_line_of_a_failed_runs_error(tmp_path):
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        record(store, "selftest", {"seed": 0}, status="failed")  # "Traceback ...\nValueError: boom"
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    with (out / "selftest" / "runs.csv").open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["error"] == "ValueError: boom", row


def test_markdown_prints_the_fewest_digits_that_tell_the_means_apart(tmp_path):
    # means apart in their 5th digit printed with 17 (0.70001000000000002) when the search
    # for the digits stopped at 4 and fell back to 17, and every test passed (mutation audit)
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        for init, x in (("a", 0.70001), ("b", 0.70002)):
            record(store, "selftest", {"init": init, "seed": 0}, {"x": x})
    out = tmp_path / "out"
    make_report(db, out, figures=False)
    cells = md_cells((out / "selftest" / "summary.md").read_text(), "x")
    assert cells == [f"{0.70001:.5g} (1)", f"{0.70002:.5g} (1)"], cells
