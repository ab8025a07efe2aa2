"""``fastinit report``: aggregate a results database over seeds; tables and figures.

For each experiment in the database the runs are grouped by their full
configuration except ``seed``.  Per group and metric: ``mean``, ``std``
(sample standard deviation, ddof 1; empty for fewer than two values; ``inf``
for finite values spread beyond the float range, which ``summary.json`` writes
as null like every non-finite number, its ``count`` telling the two apart) and
``count`` over the seeds whose value is a finite number (runs with status
``ok`` or ``diverged``; a failed run has no metrics; NaN and infinities are
left out), plus the number of runs per status.  Mean and std are computed in
exact arithmetic and rounded once.  Runs recorded by different fastinit
versions are pooled like seeds (the Markdown says so).  ``--sweep NAME``
selects runs by the SPEC that recorded them: a grid point that another SPEC
had already recorded is not run again and keeps that SPEC's name (it is left
out of ``--sweep NAME``'s report).

A report of a sweep still running, or stopped, says so: runs that a sweep had
claimed when the report read the database (the ``claims`` table, judged live or
stale as ``fastinit sweep`` judges them) are counted in ``summary.json``
(``claims``: ``live`` and ``stale``) and, where there are any, in a line under
the title of ``summary.md`` and at the end of the command's output; a stale
claim's sweep is gone, and the next ``fastinit sweep`` resumes its run.

Files written to ``OUT/`` (``<exp>`` is the experiment name), all replaced
together once the report is complete (an interrupted or refused report leaves
the previous one as it was).  A report of fewer experiments than the previous
one in ``OUT`` (``--experiment``, ``--sweep``, another database) removes, in
that same step, the files the previous report wrote in the other experiments'
directories (those its ``summary.json`` lists), then each such directory if
nothing else is left in it; nothing a report did not write is removed:

* ``summary.json``: every aggregate, per experiment, with the fastinit
  versions that recorded the runs and the versions the report ran with;
* ``summary.md``: the Markdown tables of every experiment;
* ``<exp>/summary.csv`` and ``<exp>/summary.md``: one row per group (the CSV
  has every parameter, the Markdown only those that vary; cells of the
  Markdown are ``mean ± std (count)``, each rounded to at least 4 significant
  digits, more where two values of a column would print alike, and written as
  ``%g`` writes them, trailing zeros dropped: 0.8300319 is ``0.83``);
* ``<exp>/runs.csv``: one row per run, by configuration then seed whatever
  order the runs were recorded in (parameters in the order of ``summary.csv``,
  status, metrics, ``wall_time`` in seconds, ``started`` in Unix time, the
  last line of the error of a failed run); every column name is unique:
  parameters keep their names, metrics are named as the runner reports them
  (``final_loss``, ``iterations_done``, ...; a metric named like another column
  gets the suffix ``_metric``), and ``summary.csv`` has ``<metric>_mean``,
  ``<metric>_std`` and ``<metric>_count``;
* ``<exp>/heatmap_<metric>.png``: mean over seeds, init x activation, one
  panel per combination of the other varying parameters (a cell whose mean
  leaves runs out, failed or non-finite, says ``(k/n)``: k of its n runs;
  ``n/a``, a cell whose runs have no value, ``not run``, one the database
  lacks); a name from the data in a file name keeps its letters, digits and
  ``=.+-``, other runs of characters becoming ``_`` (``loss/val``:
  ``heatmap_loss_val.png``);
* ``<exp>/curves_loss.png`` (training experiments): the loss curve per init,
  mean over seeds with a band from the least to the largest value of a seed,
  one panel per combination of the other varying parameters;
* ``<exp>/signal_<activation>.png`` and ``<exp>/signal_vs_depth.png`` (the
  ``depth`` and ``histogram`` experiments): per-layer activation and gradient
  standard deviation for each init and network depth, and the spread at the
  ends of the network versus depth (see :mod:`fastinit.experiments.depth`).

In every figure, a configuration some of whose seeds diverged says ``k of n
seeds diverged`` (its heatmap cell, its legend entry), as ok/div/fail does in
the tables.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastinit.sweep.runners import EXPERIMENTS, unused_params

if TYPE_CHECKING:  # imported where used: a report without figures does without it
    import numpy as np

__all__ = ["Group", "ReportResult", "aggregate", "make_report", "mean_std"]

AXES = ("init", "activation")
PANELS_PER_FIGURE = 12

#: Metrics stored under another name by older versions: old name -> current name.
#: (``iterations``, the completed iterations, shared its name with the parameter.)
RENAMED_METRICS = {"iterations": "iterations_done"}


# ----------------------------------------------------------------------------- aggregation
@dataclass
class Group:
    """The runs of one configuration over its seeds.

    Attributes
    ----------
    experiment : str
        Experiment name.
    params : dict
        The configuration without ``experiment`` and ``seed``.
    seeds : list
        Seeds of the runs, sorted.
    status : dict
        Runs per status (``ok``, ``diverged``, ``failed``).
    stats : dict
        ``{metric: {"mean": float | None, "std": float | None, "count": int}}``.
    runs : list of dict
        The database rows of the group, in the order of their seeds (whatever
        order they were recorded in).
    versions : dict
        Runs per fastinit version that recorded them (``{version: runs}``).
    """

    experiment: str
    params: dict[str, Any]
    seeds: list[Any] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list, repr=False)
    versions: dict[str, int] = field(default_factory=dict)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1) over seeds, as every report shows them.

    Both are computed in exact rational arithmetic and rounded once (the results
    of :func:`statistics.mean` and, from Python 3.11, :func:`statistics.stdev`;
    3.10's stdev rounds the variance to a float first, inf past about 1e154):
    identical values have a std of exactly 0 and their own value as mean, and
    values near the float range's ends (exploding signals) neither overflow nor
    lose their spread.

    Parameters
    ----------
    values : sequence of float
        Finite values.

    Returns
    -------
    (float or None, float or None)
        ``(None, None)`` for no values; the std is None for fewer than two
        (infinity only if it exceeds the largest float, as for values of both
        signs near it).
    """
    xs = [Fraction(float(v)) for v in values]  # exact
    if not xs:
        return None, None
    mean = sum(xs, Fraction(0)) / len(xs)
    if len(xs) < 2:
        return float(mean), None
    var = sum(((x - mean) ** 2 for x in xs), Fraction(0)) / (len(xs) - 1)
    try:
        return float(mean), _sqrt_of_fraction(var.numerator, var.denominator)
    except OverflowError:
        return float(mean), math.inf


def _sqrt_of_fraction(n: int, m: int) -> float:
    """``sqrt(n / m)`` correctly rounded to a float (CPython 3.11's ``statistics`` method:
    an integer square root with round-to-odd, then one division)."""
    q = (n.bit_length() - m.bit_length() - 2 * sys.float_info.mant_dig - 3) // 2
    if q >= 0:
        return (_isqrt_round_to_odd(n, m << 2 * q) << q) / 1
    return _isqrt_round_to_odd(n << -2 * q, m) / (1 << -q)


def _isqrt_round_to_odd(n: int, m: int) -> int:
    root = math.isqrt(n // m)
    return root | (root * root * m != n)


def _sort_key(value: Any) -> tuple:
    if value is None:
        return (0, 0, "")
    if isinstance(value, bool):
        return (1, int(value), "")
    if isinstance(value, (int, float)):
        return (1, value, "")
    return (2, 0, json.dumps(value, sort_keys=True))


def _renamed(row: dict[str, Any]) -> dict[str, Any]:
    """The row with the metrics of :data:`RENAMED_METRICS` under their current names."""
    metrics = row["metrics"]
    if not any(m in metrics for m in RENAMED_METRICS):
        return row
    new = {}
    for m, v in metrics.items():
        name = RENAMED_METRICS.get(m, m)
        if name == m or name not in metrics:  # both stored: keep the current one
            new[name] = v
    return {**row, "metrics": new}


def _param_order(experiment: str, name: str) -> tuple[int, str]:
    """Parameters in the order the experiment declares them (unknown ones last, by name)."""
    spec = EXPERIMENTS.get(experiment)
    names = list(spec.params) if spec is not None else []
    return (names.index(name) if name in names else len(names), name)


def aggregate(rows: Sequence[dict[str, Any]]) -> dict[str, list[Group]]:
    """Group runs by configuration without the seed; mean, std and count per metric.

    Parameters
    ----------
    rows : sequence of dict
        Database rows (:meth:`fastinit.sweep.store.Store.rows`); metrics stored
        under an old name (:data:`RENAMED_METRICS`) are renamed.

    Returns
    -------
    dict
        ``{experiment: [Group, ...]}``, groups sorted by their parameters.
    """
    by_exp: dict[str, dict[str, Group]] = {}
    for row in map(_renamed, rows):
        config = row["config"]
        exp = config["experiment"]
        params = {k: v for k, v in config.items() if k not in ("experiment", "seed")}
        params = {k: params[k] for k in sorted(params, key=lambda k: _param_order(exp, k))}
        tag = json.dumps(params, sort_keys=True)
        groups = by_exp.setdefault(exp, {})
        g = groups.get(tag)
        if g is None:
            g = groups[tag] = Group(exp, params, status={"ok": 0, "diverged": 0, "failed": 0})
        g.runs.append(row)
        g.seeds.append(config.get("seed"))
        g.status[row["status"]] = g.status.get(row["status"], 0) + 1
        version = str(row.get("version") or "unknown")
        g.versions[version] = g.versions.get(version, 0) + 1
    out: dict[str, list[Group]] = {}
    for exp, groups in sorted(by_exp.items()):
        for g in groups.values():
            g.seeds.sort(key=_sort_key)
            # the order of the runs (runs.csv's rows, the metrics' columns) is the seeds', not
            # the order a sweep happened to record them in: the same runs, the same files
            g.runs.sort(key=lambda r: (_sort_key(r["config"].get("seed")), r["key"]))
            g.versions = {v: g.versions[v] for v in sorted(g.versions, key=_version_key)}
            names: list[str] = []
            for r in g.runs:
                names += [m for m in r["metrics"] if m not in names]
            for m in names:
                values = [
                    float(r["metrics"][m])
                    for r in g.runs
                    if r["status"] != "failed" and _is_number(r["metrics"].get(m))
                ]
                mean, std = mean_std(values)
                g.stats[m] = {"mean": mean, "std": std, "count": len(values)}
        # rows of an older version may lack a parameter: every group is sorted by every name
        # (then by its parameters' JSON: values that compare equal, as 1 and 1.0, stay apart)
        params = _param_names(list(groups.values()))
        out[exp] = sorted(
            groups.values(),
            key=lambda g: (
                [_sort_key(g.params.get(p)) for p in params],
                json.dumps(g.params, sort_keys=True),
            ),
        )
    return out


def _param_names(groups: Sequence[Group]) -> list[str]:
    """Every parameter of any group, in the experiment's order (not only the first group's)."""
    names: list[str] = []
    for g in groups:
        names += [n for n in g.params if n not in names]
    exp = groups[0].experiment if groups else ""
    return sorted(names, key=lambda n: _param_order(exp, n))


def _version_key(version: str) -> list:
    """``0.9.0`` before ``0.10.0``: digit runs compare as numbers."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", version)]


def varying(groups: Sequence[Group]) -> list[str]:
    """Parameters (besides the seed) that take more than one value among the groups.

    Parameters
    ----------
    groups : sequence of Group
        Groups of one experiment.

    Returns
    -------
    list of str
        In the experiment's parameter order.
    """

    def value(g: Group, name: str) -> str | None:  # a parameter a row lacks: a value of its own
        return json.dumps(g.params[name], sort_keys=True) if name in g.params else None

    return [n for n in _param_names(groups) if len({value(g, n) for g in groups}) > 1]


def _metric_names(groups: Sequence[Group]) -> list[str]:
    names: list[str] = []
    for g in groups:
        names += [m for m in g.stats if m not in names]
    return names


# ----------------------------------------------------------------------------- tables
def _cell(value: Any) -> Any:
    """A CSV or Markdown cell: empty for None and NaN (a database written with JSON's
    ``NaN``, which fastinit stores as null, reads back as a float NaN), JSON for a list."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


def _md(text: str) -> str:
    """``text`` kept within one Markdown table row: ``|`` escaped, line breaks written as
    Python writes them (``\\n``, ``\\r``)."""
    return _one_line(text.replace("|", "\\|"))


def _one_line(text: str) -> str:
    """``text`` with its line breaks written as Python writes them (``\\n``, ``\\r``)."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _fmt(value: float | None, digits: int = 4) -> str:
    """``digits`` significant digits; an integer part longer than that in full (20000, not
    ``2e+04``; 9999.7 to 4 digits: 10000, not ``1e+04``), up to 1e15."""
    if value is None:
        return "-"
    text = f"{value:.{digits}g}"
    if 10**digits <= abs(float(text)) < 1e15:  # rounded: 9999.7 has 5 integer digits
        return f"{value:.0f}"
    return text


STD_DIGITS = 4  # significant digits of a printed std


def _digits(values: Sequence[float | None], least: int = 4) -> int:
    """Significant digits, at least ``least``, that print different values differently."""
    distinct = {v for v in values if v is not None and math.isfinite(v)}
    for digits in range(least, 17):
        if len({_fmt(v, digits) for v in distinct}) == len(distinct):
            return digits
    return 17  # every float prints differently with 17


def table_rows(groups: Sequence[Group]) -> tuple[list[str], list[list[Any]]]:
    """The CSV table: every parameter, status counts, mean/std/count per metric.

    Parameters
    ----------
    groups : sequence of Group
        Groups of one experiment.

    Returns
    -------
    header : list of str
    rows : list of list
        One per group; empty cells for missing values.
    """
    params = _param_names(groups)
    metrics = _metric_names(groups)
    header = [*params, "runs", "ok", "diverged", "failed"]
    suffixes = ("_mean", "_std", "_count")
    for m in _metric_columns(metrics, header, suffixes):
        header += [m + suffix for suffix in suffixes]
    rows = []
    for g in groups:
        row = [_cell(g.params.get(p)) for p in params]
        row += [len(g.runs), g.status.get("ok", 0), g.status.get("diverged", 0)]
        row += [g.status.get("failed", 0)]
        for m in metrics:
            s = g.stats.get(m, {"mean": None, "std": None, "count": 0})
            row += [_cell(s["mean"]), _cell(s["std"]), s["count"]]
        rows.append(row)
    return header, rows


def markdown(groups: Sequence[Group], title: str) -> str:
    """A Markdown table: varying parameters, runs per status, mean ± std (n) per metric.

    A line under the table says what the cells are; another, when the runs were
    recorded by more than one fastinit version, which ones (they are pooled).
    Means are rounded to at least 4 significant digits, more in a column where two
    different means would otherwise print alike; stds to 4 (``STD_DIGITS``);
    trailing zeros are dropped, as ``%g`` drops them.

    Parameters
    ----------
    groups : sequence of Group
        Groups of one experiment.
    title : str
        Heading.

    Returns
    -------
    str
    """
    if not groups:
        return f"## {title}\n\nno runs\n"
    vary = varying(groups)
    metrics = _metric_names(groups)
    params = _param_names(groups)
    unused = [set(unused_params(g.params)) for g in groups]
    unused_by_all = set.intersection(*unused) if unused else set()
    fixed = {k: groups[0].params[k] for k in params if k not in vary and k not in unused_by_all}
    head = [*vary, "runs", "ok/div/fail"]
    head += _metric_columns(metrics, [*head, *params])
    empty = {"mean": None, "std": None, "count": 0}
    digits = {m: _digits([g.stats.get(m, empty)["mean"] for g in groups]) for m in metrics}
    lines = [f"## {title}", ""]
    if fixed:
        pairs = (_one_line(f"{k}={_cell(v)}") for k, v in fixed.items())
        lines += ["Fixed: " + ", ".join(map(_code, pairs)), ""]
    lines += ["| " + " | ".join(map(_md, head)) + " |", "|" + "---|" * len(head)]
    shown = _shown_params(groups, vary)
    for g, cells in zip(groups, shown, strict=True):
        cells = [*cells, str(len(g.runs)), "/".join(str(g.status.get(s, 0)) for s in _STATUSES)]
        for m in metrics:
            s = g.stats.get(m, empty)
            text = _fmt(s["mean"], digits[m])
            if s["std"] is not None:  # a spread: 4 significant digits say all it can
                text += f" ± {_fmt(s['std'], STD_DIGITS)}"
            cells.append(f"{text} ({s['count']})")
        lines.append("| " + " | ".join(map(_md, cells)) + " |")
    lines += ["", _LEGEND]
    versions = _count_versions(groups)
    if len(versions) > 1:
        runs = ", ".join(f"{v} ({n} run{'' if n == 1 else 's'})" for v, n in versions.items())
        lines += ["", f"Runs recorded by fastinit {runs}: pooled like seeds (runs.csv: version)."]
    return "\n".join(lines) + "\n"


def _shown_params(groups: Sequence[Group], names: Sequence[str]) -> list[list[str]]:
    """Each group's cells for the parameters ``names``: ``-`` for one its runs do not read.

    Groups whose values differ, recorded before such parameters were recorded at
    their default (``sgd`` beside momentum 0.5 and 0.9), would then print alike:
    their cells say the value too (``- (0.5)``).  The table's rows and the figures'
    panels (:func:`_panels`) are labelled by this one rule.
    """
    values = [[str(_cell(g.params.get(p))) for p in names] for g in groups]
    unused = [unused_params(g.params) for g in groups]
    dashed = [["-" if p in u else v for p, v in zip(names, vs, strict=True)]
              for vs, u in zip(values, unused, strict=True)]  # fmt: skip
    if len({tuple(d) for d in dashed}) == len({tuple(v) for v in values}):
        return dashed
    return [[f"- ({v})" if p in u else v for p, v in zip(names, vs, strict=True)]
            for vs, u in zip(values, unused, strict=True)]  # fmt: skip


def _code(text: str) -> str:
    """``text`` as a Markdown code span: fenced by one backtick more than its longest run."""
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_LEGEND = (
    "Cells: mean ± sample standard deviation (ddof 1) over seeds (n: the runs with a "
    "finite value of that metric; no ± for n = 1, `-` for n = 0). Failed runs have no "
    "metrics: they count in ok/div/fail only. A diverged run counts in each metric it "
    "reported as a finite number; NaN and infinite values (stored as null) are left out."
)


def _count_versions(groups: Sequence[Group]) -> dict[str, int]:
    """Runs per fastinit version over ``groups``, versions in order."""
    counts: dict[str, int] = {}
    for g in groups:
        for v, n in g.versions.items():
            counts[v] = counts.get(v, 0) + n
    return {v: counts[v] for v in sorted(counts, key=_version_key)}


_STATUSES = ("ok", "diverged", "failed")


def _metric_columns(
    metrics: Sequence[str], taken: Sequence[str], suffixes: Sequence[str] = ("",)
) -> list[str]:
    """Column names of metrics: their own, with ``_metric`` appended while one is taken.

    A metric's columns are its name followed by each of ``suffixes``
    (``summary.csv``: ``_mean``, ``_std``, ``_count``); ``_metric`` is appended
    until none of them is ``taken`` or another metric's.
    """
    used = set(taken)
    names = []
    for m in metrics:
        while any(m + s in used for s in suffixes):
            m += "_metric"
        used.update(m + s for s in suffixes)
        names.append(m)
    return names


_RUN_COLUMNS = ("key", "status", "wall_time", "started", "worker", "version", "error")


def _runs_table(groups: Sequence[Group]) -> tuple[list[str], list[list[Any]]]:
    runs = [r for g in groups for r in g.runs]
    params: list[str] = []  # every run's parameters (an older version's rows may lack one)
    for r in runs:
        params += [k for k in r["config"] if k != "experiment" and k not in params]
    exp = groups[0].experiment if groups else ""
    params.sort(key=lambda n: _param_order(exp, n))  # as summary.csv: the declared order
    metrics: list[str] = []
    for r in runs:
        metrics += [m for m in r["metrics"] if m not in metrics]
    columns = _metric_columns(metrics, [*_RUN_COLUMNS, *params])
    header = ["key", "status", *params, *columns, "wall_time", "started", "worker", "version"]
    header.append("error")
    rows = []
    for r in runs:
        error = (r.get("error") or "").strip().splitlines()
        rows.append(
            [r["key"], r["status"]]
            + [_cell(r["config"].get(p)) for p in params]
            + [_cell(r["metrics"].get(m)) for m in metrics]
            + [_cell(r.get("wall_time")), _cell(r.get("started")), _cell(r.get("worker"))]
            + [_cell(r.get("version")), error[-1] if error else ""]
        )
    return header, rows


# ----------------------------------------------------------------------------- figures
def _slug(label: str) -> str:
    """A file-name-safe version of a panel label or of a name from the data (a metric's)."""
    return re.sub(r"[^A-Za-z0-9=.+-]+", "_", label).strip("_") or "all"


def _slugs(names: Sequence[str]) -> dict[str, str]:
    """:func:`_slug` of each name, ``_2``, ``_3``, ... added where two would be one file name."""
    taken: set[str] = set()
    slugs = {}
    for name in names:
        base = slug = _slug(name)
        k = 1
        while slug in taken:
            k += 1
            slug = f"{base}_{k}"
        taken.add(slug)
        slugs[name] = slug
    return slugs


def _panels(groups: Sequence[Group], exclude: Sequence[str]) -> dict[str, list[Group]]:
    """Groups split by the varying parameters not in ``exclude`` (one panel each).

    Labelled ``name=value``, ``name=-`` for a parameter the runs do not read, as
    the table's cells are (:func:`_shown_params`).
    """
    keys = [p for p in varying(groups) if p not in exclude]
    panels: dict[str, list[Group]] = {}
    for g, cells in zip(groups, _shown_params(groups, keys), strict=True):
        label = ", ".join(f"{k}={cell}" for k, cell in zip(keys, cells, strict=True))
        panels.setdefault(label, []).append(g)
    return panels


def _grid(plt: Any, n: int, size: tuple[float, float]) -> tuple[Any, Any]:
    cols = min(n, 4)
    rows = -(-n // cols)
    from fastinit.experiments._common import subplots

    fig, axes = subplots(plt, rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()


def _chunks(items: list, n: int) -> list[list]:
    return [items[i : i + n] for i in range(0, len(items), n)] or [[]]


COLOUR_SPAN = 1e-4  # a heatmap panel's least colour span, relative to its largest |value|


def _heatmaps(plt: Any, exp: str, groups: Sequence[Group], output: Any) -> None:
    """Figures of each metric's mean over seeds, init x activation, a panel per other configuration.

    A cell reads ``not run`` where the sweep holds no run of that configuration,
    ``n/a`` where its runs have no finite value (and then how many diverged or
    failed).  Each panel has its own colour scale, logarithmic over more than a
    factor 100, spanning at least :data:`COLOUR_SPAN` times its largest magnitude:
    a difference of rounding noise (2.4712737018722 against 2.4712737018721)
    filled the whole colour range, and now shows as one colour, while a
    difference in the fourth significant digit, as the tables print, still spans
    it.  The colorbars' ticks carry the values, with no offset text (it was drawn
    over the panel's title).
    """
    import numpy as np

    spec = EXPERIMENTS.get(exp)
    present = _metric_names(groups)
    metrics = [m for m in (spec.metrics if spec else ()) if m in present] or present[:2]
    panels = list(_panels(groups, ("init", "activation")).items())
    slugs = _slugs(metrics)
    for metric in metrics:
        for part, chunk in enumerate(_chunks(panels, PANELS_PER_FIGURE)):
            if not chunk:
                continue
            inits = sorted({str(g.params.get("init")) for _, gs in chunk for g in gs})
            acts = sorted({str(g.params.get("activation")) for _, gs in chunk for g in gs})
            fig, axes = _grid(plt, len(chunk), (1.3 * len(acts) + 2.6, 0.5 * len(inits) + 1.6))
            partial = False  # a mean over fewer than its group's runs (failed, diverged)
            for ax, (label, gs) in zip(axes, chunk, strict=False):
                cells: dict[tuple[int, int], Group] = {
                    (inits.index(str(g.params.get("init"))),
                     acts.index(str(g.params.get("activation")))): g
                    for g in gs
                }  # fmt: skip
                grid = np.full((len(inits), len(acts)), np.nan)
                for (i, j), g in cells.items():
                    s = g.stats.get(metric)
                    if s is not None and s["mean"] is not None:
                        grid[i, j] = s["mean"]
                        partial |= s["count"] < len(g.runs)
                cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
                norm = _colour_norm(grid[np.isfinite(grid)])
                im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
                digits = _digits(grid[np.isfinite(grid)].tolist(), least=3)
                for i in range(len(inits)):
                    for j in range(len(acts)):
                        g = cells.get((i, j))
                        text = _heatmap_cell(g, metric, digits) if g else "not run"
                        color = "black"
                        if np.isfinite(grid[i, j]):
                            r, g_, b, _ = cmap(im.norm(grid[i, j]))
                            color = "black" if 0.299 * r + 0.587 * g_ + 0.114 * b > 0.5 else "white"
                        ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
                ax.set_xticks(range(len(acts)), acts, rotation=30, ha="right")
                ax.set_yticks(range(len(inits)), inits)
                ax.set_xlabel("activation")
                ax.set_ylabel("init")
                ax.set_title(label or metric, fontsize=9)
                cbar = fig.colorbar(im, ax=ax, shrink=0.8, label=f"{metric}, mean over seeds")
                if hasattr(cbar.formatter, "set_useOffset"):  # not a log scale's formatter
                    cbar.formatter.set_useOffset(False)
            suffix = f"_{part + 1}" if len(panels) > PANELS_PER_FIGURE else ""
            note = "; (k/n): k of n runs have a finite value" if partial else ""
            fig.suptitle(f"{exp}: {metric}, mean over seeds (init x activation){note}")
            fig.tight_layout()
            output.figure(f"heatmap_{slugs[metric]}{suffix}.png", fig)
            plt.close(fig)


def _colour_norm(values: np.ndarray) -> Any:
    """The colour scale of a heatmap panel whose finite values are ``values``.

    Logarithmic over more than a factor 100; else linear, widened about the
    values to at least :data:`COLOUR_SPAN` times their largest magnitude.  None
    (matplotlib's own) with no value.
    """
    from matplotlib.colors import LogNorm, Normalize

    if not values.size:
        return None
    low, high = float(values.min()), float(values.max())
    if low > 0 and high / low > 100:
        return LogNorm(vmin=low, vmax=high)
    pad = max(COLOUR_SPAN * max(abs(low), abs(high)) - (high - low), 0.0) / 2
    return Normalize(vmin=low - pad, vmax=high + pad)


def _heatmap_cell(g: Group, metric: str, digits: int) -> str:
    """The text of a heatmap cell: ``metric``'s mean over the runs of ``g`` to ``digits``
    significant digits, ``(k/n)`` when k of its n runs have a value, ``±std``, how many
    seeds diverged; ``n/a`` with no value, then also how many runs failed."""
    s = g.stats.get(metric)
    if s is None or s["mean"] is None:
        failed = g.status.get("failed", 0)
        said = f"\n{failed} of {len(g.runs)} failed" if failed else ""
        return "n/a" + (f"\n{_diverged(g)}" if _diverged(g) else "") + said
    text = _fmt(s["mean"], digits)
    if s["count"] < len(g.runs):
        text += f" ({s['count']}/{len(g.runs)})"
    if s["std"] is not None and math.isfinite(s["std"]):  # inf: beyond the largest float
        text += f"\n±{s['std']:.2g}"
    return text + (f"\n{_diverged(g)}" if _diverged(g) else "")  # as ok/div/fail in the tables


def _curves(plt: Any, exp: str, groups: Sequence[Group], output: Any, curve: str) -> None:
    """Figures of ``curve`` per iteration: a line per init, a panel per other configuration.

    The line is the mean over seeds (past where a seed diverged, the mean of the
    others); the band spans the smallest to the largest value a seed reached at
    that iteration, not mean ± std: on a log axis a std larger than the mean put
    the lower edge at or below 0, the band falling to the axis bottom, at losses
    no seed had.  A panel whose values are all positive has a log y axis, its
    limits set from the finite values drawn (:func:`fastinit.experiments._common.log_axis`):
    a run diverging towards the float64 limit made matplotlib's padding overflow.  Its
    top is at most ``DIVERGED_HEADROOM`` times the largest value of the lines no seed
    diverged in, if it has any: a diverged loss leaves the panel, the suptitle says so.
    """

    from fastinit.experiments._common import DIVERGED_HEADROOM, finite_values, log_axis

    panels = list(_panels(groups, ("init",)).items())
    if not any(r["curves"].get(curve) for g in groups for r in g.runs):
        return
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    inits = sorted({str(g.params.get("init")) for g in groups})
    for part, chunk in enumerate(_chunks(panels, PANELS_PER_FIGURE)):
        fig, axes = _grid(plt, len(chunk), (5.0, 3.6))
        diverged = above = False
        for ax, (label, gs) in zip(axes, chunk, strict=False):
            drawn, healthy = [], []  # every value on the axis; those of groups none diverged in
            for g in gs:
                a = _seed_curves(g, curve)
                if a is None:
                    continue
                color = colors[inits.index(str(g.params.get("init"))) % len(colors)]
                said = f"; {_diverged(g)}" if _diverged(g) else ""
                lines = _mean_and_band(ax, a, color, f"{g.params.get('init')} ({len(a)}{said})")
                drawn += lines
                healthy += [] if said else lines
                diverged |= bool(said)
            finite = finite_values(drawn)
            if finite.size == 0 or finite.min() > 0:
                above |= log_axis(ax, drawn, healthy)
            ax.set_xlabel("iteration")
            ax.set_ylabel(curve)
            ax.set_title(label or exp, fontsize=9)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize="x-small")
        suffix = f"_{part + 1}" if len(panels) > PANELS_PER_FIGURE else ""
        note = "; past where a seed diverged, the mean of the others" if diverged else ""
        if above:
            note += f"\ndiverged runs leave the axis above {DIVERGED_HEADROOM:g}x the others' loss"
        fig.suptitle(f"{exp}: {curve} per init, mean over seeds (runs), band min to max{note}")
        fig.tight_layout()
        output.figure(f"curves_{_slug(curve)}{suffix}.png", fig)
        plt.close(fig)


def _seed_curves(g: Group, curve: str) -> np.ndarray | None:
    """``curve`` of each run of ``g`` as rows padded with NaN, None for a group without it."""
    import numpy as np

    curves = [r["curves"].get(curve) for r in g.runs if r["curves"].get(curve)]
    if not curves:
        return None
    a = np.full((len(curves), max(len(c) for c in curves)), np.nan)
    for k, c in enumerate(curves):
        a[k, : len(c)] = [np.nan if v is None else v for v in c]
    return a


def _mean_and_band(ax: Any, a: np.ndarray, color: str, label: str) -> list[np.ndarray]:
    """Draw the mean of the rows of ``a`` and, for several, their min-max band; what was drawn."""
    import numpy as np

    x = np.arange(a.shape[1])
    with np.errstate(invalid="ignore", over="ignore"), _quiet():  # all-NaN iterations: NaN
        mean = np.nanmean(a, axis=0)
        low, high = np.nanmin(a, axis=0), np.nanmax(a, axis=0)
    ax.plot(x, mean, color=color, label=label)
    if len(a) == 1:
        return [mean]
    ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
    return [mean, low, high]


class _quiet:
    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._w.__exit__(*exc)


def _signal(plt: Any, exp: str, groups: Sequence[Group], output: Any) -> None:
    import numpy as np

    from fastinit.experiments.depth import plot_signal, plot_signal_vs_depth

    if not any(r["curves"].get("act_std") for g in groups for r in g.runs):
        return
    panels = _panels(groups, ("init", "activation", "depth"))
    labels = _slugs(list(panels))
    for label, gs in panels.items():
        suffix = "" if not label else "_" + labels[label]
        inits = sorted({str(g.params["init"]) for g in gs})
        acts = sorted({str(g.params["activation"]) for g in gs})
        act_slugs = _slugs(acts)
        depths = sorted({int(g.params["depth"]) for g in gs})
        for act in acts:
            curves = {}
            for g in gs:
                if g.params["activation"] != act:
                    continue
                rows = [r for r in g.runs if r["curves"].get("act_std")]
                if not rows:
                    continue
                a = np.array([[np.nan if v is None else v for v in r["curves"]["act_std"]]
                              for r in rows], dtype=np.float64)  # fmt: skip
                d = np.array([[np.nan if v is None else v for v in r["curves"]["grad_std"]]
                              for r in rows], dtype=np.float64)  # fmt: skip
                curves[(str(g.params["init"]), int(g.params["depth"]))] = (a, d)
            title = f"{exp}, {act}" + (f", {label}" if label else "") + ": spread per layer"
            notes = {
                (str(g.params["init"]), int(g.params["depth"])): _diverged(g)
                for g in gs
                if g.params["activation"] == act
            }
            fig = plot_signal(plt, curves, inits, depths, title, notes)
            output.figure(f"signal_{act_slugs[act]}{suffix}.png", fig)
            plt.close(fig)
        ends = {
            (str(g.params["init"]), str(g.params["activation"]), int(g.params["depth"])): (
                g.stats.get("act_std_last", {}).get("mean"),
                g.stats.get("grad_std_first", {}).get("mean"),
            )
            for g in gs
        }
        notes = {
            (init, act): "; ".join(
                f"depth {int(g.params['depth'])}: {_diverged(g)}"
                for g in gs
                if str(g.params["init"]) == init and g.params["activation"] == act
                and _diverged(g)
            )
            for init in inits
            for act in acts
        }  # fmt: skip
        fig = plot_signal_vs_depth(plt, ends, inits, acts, depths, notes)
        where = f"{exp}, {label}" if label else exp  # one figure per panel: say which
        fig.suptitle(f"{where}: signal propagation at initialization, mean over seeds")
        output.figure(f"signal_vs_depth{suffix}.png", fig)
        plt.close(fig)


def _diverged(g: Group) -> str:
    """``k of n seeds diverged`` (n: the group's runs, as in the tables), empty for none."""
    k = g.status.get("diverged", 0)
    return f"{k} of {len(g.runs)} seed{'' if len(g.runs) == 1 else 's'} diverged" if k else ""


# ----------------------------------------------------------------------------- report
@dataclass
class ReportResult:
    """What ``fastinit report`` wrote.

    Attributes
    ----------
    out : pathlib.Path
        The output directory.
    groups : dict
        ``{experiment: [Group, ...]}``.
    written : list of pathlib.Path
        Every file written.
    markdown : str
        The Markdown tables of every experiment (``summary.md``).
    figures : bool
        Whether figures were asked for (``figures=`` of :func:`make_report`).
    claims : dict
        Runs a sweep was running when the report read the database, not in the
        report: ``{"live": int, "stale": int}`` (:meth:`fastinit.sweep.store.Store.claims`;
        stale: of a sweep that is gone, which the next ``fastinit sweep`` resumes).
    """

    out: Path
    groups: dict[str, list[Group]]
    written: list[Path] = field(default_factory=list)
    markdown: str = ""
    figures: bool = True
    claims: dict[str, int] = field(default_factory=lambda: {"live": 0, "stale": 0})

    @property
    def footer(self) -> str:
        """The closing line for the command line: what was written."""
        n = sum(p.suffix == ".png" for p in self.written)
        if not self.figures:
            drawn = "no figures (--no-figures)"
        else:
            drawn = f"{n} PNG figure{'' if n == 1 else 's'}" if n else "no figures"
        text = (
            f"\nwrote {self.out}/ (summary.md, summary.json; per experiment summary.csv, "
            f"summary.md, runs.csv; {drawn})"
        )
        partial = _in_progress(self.claims["live"], self.claims["stale"])
        return f"{text}\n{partial}" if partial else text  # last: the table scrolls away

    def table(self) -> str:
        """The Markdown tables (what ``summary.md`` holds).

        Returns
        -------
        str
            ``markdown`` without its trailing whitespace.
        """
        return self.markdown.rstrip()


def make_report(
    db: Any,
    out: str | os.PathLike[str],
    *,
    experiment: str | None = None,
    sweep: str | None = None,
    figures: bool = True,
) -> ReportResult:
    """Aggregate a results database over seeds; write tables and figures.

    Parameters
    ----------
    db : path-like or Store
        The results database written by ``fastinit sweep``.
    out : path-like
        Output directory (created).
    experiment : str, optional
        Only this experiment.
    sweep : str, optional
        Only the runs recorded by the SPEC of this name.
    figures : bool
        Draw the PNG figures (the tables are always written).

    Returns
    -------
    ReportResult

    Raises
    ------
    ValueError
        Naming ``db`` when it is missing, a directory, not a fastinit results
        database, unreadable, or holds no runs (of ``experiment`` / ``sweep``:
        the message lists the names it does hold); naming the directory when
        it cannot be created or written to, or when another command's files
        there would be replaced (then no file of this report is written).
    """
    from fastinit._files import deferred_interrupt
    from fastinit._validate import check_bool
    from fastinit.experiments._common import (
        Output,
        claimed,
        commit_all,
        prepare_output,
        provenance,
        pyplot,
    )
    from fastinit.sweep.store import Store

    figures = check_bool(figures, "figures")
    store = db if isinstance(db, Store) else Store(db, readonly=True)
    try:
        db_path = store.path
        # another program's `meta` table, a damaged file: a ValueError naming the database
        with store.reading(), _snapshot(store.conn):  # a run recorded or claimed, not both
            rows = store.rows(experiment=experiment, sweep=sweep)
            if not rows:
                raise ValueError(_no_runs(store, experiment, sweep))
            # the sweep's own judgement of a claim, live or stale (Store.claims)
            live = len(store.claims(live=True))
            claims = {"live": live, "stale": len(store.claims()) - live}
    finally:
        if store is not db:
            store.close()
    groups = aggregate(rows)
    result = ReportResult(Path(out), groups, figures=figures, claims=claims)
    summary: dict[str, Any] = {"db": str(db_path), "claims": claims, "experiments": {}}
    texts = [f"# Sweep report: {db_path}", ""]
    partial = _in_progress(claims["live"], claims["stale"])
    if partial:
        filtered = experiment is not None or sweep is not None
        where = " (in the whole database: a claim does not name its experiment or SPEC)"
        texts += [partial + (where if filtered else ""), ""]
    plt = pyplot() if figures else None
    root = Path(out)
    made = prepare_output(root, "out", owner="report")  # deepest first
    # Every file is staged first and the directories are all renamed into place at the
    # end, summary.md/json last, with a Ctrl-C held until they all are: an interrupted
    # or failing report leaves the last one whole, never one directory new and one old.
    # A previous report's files not written again (figures of groups now gone, or every
    # figure after --no-figures, or every file of an experiment now left out) are then
    # removed, in the same step.
    stale = sorted(_previous_experiments(root) - set(groups))
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(claimed(root, "report"))  # refuses an experiment running there
            top = stack.enter_context(Output(root, "report"))
            outputs = []
            for exp in groups:  # every directory claimed before any figure is drawn
                made[:0] = prepare_output(root / exp, "out")
                stack.enter_context(claimed(root / exp, "report"))  # as the top directory
                outputs.append(stack.enter_context(Output(root / exp, "report")))
            for (exp, gs), output in zip(groups.items(), outputs, strict=True):
                texts.append(_experiment_report(plt, exp, gs, output, summary))
            result.markdown = "\n".join(texts)
            top.text("summary.md", result.markdown)
            top.json("summary.json", {**summary, **_versions(provenance)})
            emptied = [stack.enter_context(Output(root / exp, "report")) for exp in stale]
            with deferred_interrupt():  # the experiments, those left out emptied, the top
                commit_all([*reversed(outputs), *emptied, top])
                _remove_emptied(emptied)
    except BaseException:
        for d in made:  # deepest first: the directories this call made, if left empty
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    for output in outputs:
        result.written += output.written
    result.written += top.written
    return result


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction over the block (unless one is open): its queries see one state
    of the database, whatever a sweep commits meanwhile (WAL mode)."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.rollback()  # it only read


def _in_progress(live: int, stale: int) -> str:
    """What a report says of the runs that sweeps had claimed: none, an empty string."""
    said = []
    if live:
        said.append(
            f"{live} run{' was' if live == 1 else 's were'} in progress when this report was "
            f"written (claimed by {'a live worker' if live == 1 else 'live workers'})"
        )
    if stale:
        said.append(
            f"{stale} claim{' is' if stale == 1 else 's are'} stale "
            f"({'its worker is' if stale == 1 else 'their workers are'} gone: "
            f"`fastinit sweep` resumes {'it' if stale == 1 else 'them'})"
        )
    if not said:
        return ""
    return f"Partial sweep: {'; '.join(said)}. Their results are not in this report."


def _previous_experiments(root: Path) -> set[str]:
    """The experiment directories of ``root`` that the report last written there recorded.

    The experiments of its ``summary.json``, if the report's list of the files it
    wrote in ``root`` names that file (a summary.json of the user's or of another
    command names nothing to remove), each a directory (not a link) of ``root``.
    """
    from fastinit.experiments._common import LISTING

    try:
        listed = json.loads((root / LISTING.format("report")).read_text())
        if not isinstance(listed, list) or "summary.json" not in listed:
            return set()
        experiments = json.loads((root / "summary.json").read_text()).get("experiments")
    except (OSError, ValueError, AttributeError):  # AttributeError: JSON other than an object
        return set()
    return {
        exp
        for exp in (experiments if isinstance(experiments, dict) else ())
        if exp and exp == Path(exp).name and not exp.startswith(".")
        and (root / exp).is_dir() and not (root / exp).is_symlink()
    }  # fmt: skip


def _remove_emptied(outputs: Sequence[Any]) -> None:
    """Remove the directories of committed ``Output``s that wrote nothing, if nothing is left.

    Their commit removed the files the previous report listed there; the list
    (now empty) goes too, then the directory unless the user's files are in it.
    """
    from fastinit.experiments._common import LISTING

    for output in outputs:
        listing = output.directory / LISTING.format("report")
        with contextlib.suppress(OSError, ValueError):
            if json.loads(listing.read_text()) == []:
                listing.unlink()
            output.directory.rmdir()


def _no_runs(store: Any, experiment: str | None, sweep: str | None) -> str:
    """The error for a database, or a selection of it, without runs: what it does hold."""
    if experiment is None and sweep is None:
        return f"db: {store.path} holds no runs; no run of a sweep has finished yet"
    held = store.conn.execute("SELECT DISTINCT experiment, sweep FROM runs").fetchall()
    asked = [
        (f"--{k}", v) for k, v in (("experiment", experiment), ("sweep", sweep)) if v is not None
    ]
    text = f"db: {store.path} holds no runs of " + " and ".join(f"{k} {v!r}" for k, v in asked)
    for option, i in (("--experiment", 0), ("--sweep", 1)):
        if option in dict(asked):
            names = sorted({row[i] for row in held if row[i] is not None})
            what = option.removeprefix("--")
            text += f"; its {what}s: " + (", ".join(map(repr, names)) or "none")
    return text


def _experiment_report(plt: Any, exp: str, gs: list, output: Any, summary: dict) -> str:
    """Write one experiment's tables (and figures, if ``plt``); return its markdown."""
    header, table = table_rows(gs)
    output.csv("summary.csv", header, table)
    output.csv("runs.csv", *_runs_table(gs))
    text = markdown(gs, exp)
    output.text("summary.md", text)
    summary["experiments"][exp] = {
        "varying": varying(gs),
        "run_versions": _count_versions(gs),
        "groups": [
            {
                "params": g.params,
                "seeds": g.seeds,
                "status": g.status,
                "stats": g.stats,
                "versions": g.versions,
            }
            for g in gs
        ],
    }
    if plt is not None:
        _heatmaps(plt, exp, gs, output)
        spec = EXPERIMENTS.get(exp)
        if spec is not None and spec.curve == "loss":
            _curves(plt, exp, gs, output, "loss")
        if any("depth" in g.params for g in gs):
            _signal(plt, exp, gs, output)
    return text


def _versions(provenance: Any) -> dict[str, Any]:
    p = provenance({})
    p.pop("config", None)
    return p
