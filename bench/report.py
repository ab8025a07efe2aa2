"""Markdown table of a saved pytest-benchmark run: per-step medians and same-run ratios.

Usage::

    pytest bench/test_bench_train.py --benchmark-only --benchmark-json=train.json
    python bench/report.py train.json                                  # print it
    python bench/report.py train.json --readme README.md --section train  # write it

With ``--readme``, the report replaces what lies between the lines
``<!-- bench:SECTION -->`` and ``<!-- /bench:SECTION -->`` of that file, so the
tables in README.md come from a run, never typed by hand.

Per-step time is the round median divided by the steps of a round
(``extra_info["steps"]``).  In each group the ratio column divides every time by
the group's reference (a row with ``extra_info["reference"]``, else fastinit: > 1
means slower than it).  GFLOP/s uses ``extra_info["flops"]``; the roofline column
divides by the same run's sgemm 2048 x 2048 rate in its best round (the host's load
moves the medians, and a slow median GEMM would flatter every row); GB/s columns
appear for the GPU fills (``extra_info["fill_gbps"]``, against a same-run device copy).

A benchmark that timed several implementations in alternating rounds
(``extra_info["paired"]``: each one's steps, FLOPs per step and seconds per round)
gives one row per implementation.  Its ratio column is the median of the per-round
ratios, with their range beside it, and its roofline column the median of each
round's share of the sgemm timed in that round (in a group that timed no sgemm,
``paired wide``, the share of the run's separate sgemm at its best round).  Within a
round the step and the sgemm met the same load, and the median over the rounds sets a
loaded round aside; against the best sgemm round of the group instead, the share
reads 1-3 points lower (55.9% against 57.0% at 06:10 on 2026-11-25).

With ``--targets``, the report is instead the training-backend issue's nine targets
across several saved runs (``python bench/report.py --targets
'bench/results/cpu-train-*.json' --readme README.md --section targets``): each
run's figure for each target, whether it was met, and over the runs that count the
range and how many met it.  The speed-ups and the roofline share come from the
alternating rounds (``paired mnist``, ``paired wide``) where a run has them (its
"timing" column says ``paired``); older runs timed each implementation separately.
A run counts unless its file name carries a reason after its date and time
(``cpu-train-2026-11-23-0829-loaded-host.json``): the host was loaded during it,
and its figures say more about the other tenant than about the code.  The sgemm's
best round and the NumPy notebook's planar step are shown beside each run, the two
figures that tell a loaded host.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median


def _rows(data: dict) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        group = bench.get("group") or "default"
        if "paired" in info:
            groups[group] += _paired_rows(info["paired"])
            continue
        steps = max(int(info.get("steps", 1)), 1)
        median, best = bench["stats"]["median"], bench["stats"]["min"]
        flops = info.get("flops")
        groups[group].append(
            {
                "impl": info.get("impl", bench["name"].removeprefix("test_")),
                "per_step": median / steps,
                "min_per_step": best / steps,
                "gflops": flops / median / 1e9 if flops else None,
                "best_gflops": flops / best / 1e9 if flops else None,
                "gbps": info.get("fill_gbps"),
                "copy_ratio": info.get("roofline_ratio"),
                "reference": bool(info.get("reference")),
                "rounds": bench["stats"]["rounds"],
                "steps": steps,
            }
        )
    return groups


def _paired_rows(paired: dict[str, dict]) -> list[dict]:
    """Rows of a benchmark that timed its implementations in turn, round by round.

    ``paired`` maps each implementation to its ``steps`` per round, ``flops`` per
    step and ``seconds`` (one whole run per round).  Each row keeps its per-step
    time in every round (``by_round``), which the ratios pair up round by round.
    """
    rows = []
    for impl, run in paired.items():
        steps = max(int(run["steps"]), 1)
        by_round = [s / steps for s in run["seconds"]]
        per_step, best = median(by_round), min(by_round)
        flops = run.get("flops")
        rows.append(
            {
                "impl": impl,
                "per_step": per_step,
                "min_per_step": best,
                "gflops": flops / per_step / 1e9 if flops else None,
                "best_gflops": flops / best / 1e9 if flops else None,
                "gbps": None,
                "copy_ratio": None,
                "reference": False,
                "rounds": len(by_round),
                "steps": steps,
                "by_round": by_round,
                "step_flops": flops,
            }
        )
    return rows


def _round_ratios(row: dict, ref: dict) -> list[float]:
    """``row``'s time over ``ref``'s in each round they shared (> 1: slower than ``ref``)."""
    return [mine / theirs for mine, theirs in zip(row["by_round"], ref["by_round"], strict=True)]


def _round_share(row: dict, roof_row: dict) -> float | None:
    """Median over the rounds of ``row``'s GFLOP/s as a share of the same round's sgemm."""
    if not row["step_flops"]:
        return None
    flops, roof_flops = row["step_flops"], roof_row["step_flops"]
    return median(
        (flops / mine) / (roof_flops / roof)
        for mine, roof in zip(row["by_round"], roof_row["by_round"], strict=True)
    )


def _time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.2f} us"


def _reference(rows: list[dict]) -> dict | None:
    """The row the ratios divide by: one marked ``reference``, else the first fastinit row."""
    marked = [r for r in rows if r["reference"]]
    return (marked or [r for r in rows if r["impl"].startswith("fastinit")] or [None])[0]


def _group_table(rows: list[dict], roof: float | None) -> list[str]:
    rows = sorted(rows, key=lambda r: r["per_step"])
    ref = _reference(rows)
    paired = all("by_round" in r for r in rows)
    roof_row = _paired_roof(rows) if paired else None
    per = "run" if all(r["steps"] == 1 for r in rows) else "step"  # coldstart, script: runs
    columns = ["implementation", f"median / {per}", f"min / {per}"]
    flops = any(r["gflops"] for r in rows)
    gbps = any(r["gbps"] for r in rows)
    columns += ["GFLOP/s", "% roofline"] if flops else []
    columns += ["GB/s written", "% of same-run copy"] if gbps else []
    columns += [f"vs {ref['impl']}"] if ref else []
    columns += ["rounds' ratios"] if ref and paired else []
    lines = ["| " + " | ".join(columns) + " |", "|---" + "|---:" * (len(columns) - 1) + "|"]
    for r in rows:
        cells = [r["impl"], _time(r["per_step"]), _time(r["min_per_step"])]
        if flops:
            share = _round_share(r, roof_row) if roof_row else None
            if share is None and r["gflops"] and roof and not roof_row:
                share = r["gflops"] / roof
            cells.append(f"{r['gflops']:.1f}" if r["gflops"] else "-")
            cells.append(f"{100 * share:.0f}%" if share else "-")
        if gbps:
            cells.append(f"{r['gbps']:.0f}" if r["gbps"] else "-")
            cells.append(f"{100 * r['copy_ratio']:.0f}%" if r["copy_ratio"] else "-")
        if ref and paired and r is roof_row:
            cells += ["-", "-"]  # the rounds' yardstick, not the group's workload
        elif ref and paired:
            ratios = _round_ratios(r, ref)
            cells += [f"{median(ratios):.2f}x", f"{min(ratios):.2f}x - {max(ratios):.2f}x"]
        elif ref:
            cells.append(f"{r['per_step'] / ref['per_step']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _paired_roof(rows: list[dict]) -> dict | None:
    """The sgemm timed in the same rounds as ``rows``, if one was."""
    return next((r for r in rows if r["impl"].startswith("sgemm") and r["gflops"]), None)


def table(data: dict, groups_shown: list[str] | None = None) -> str:
    """The Markdown report for one pytest-benchmark JSON document (all groups, or those named).

    One table per benchmark group, fastest first.  The last column divides each
    time by the group's reference (``extra_info["reference"]``, else fastinit):
    above 1.00x is slower than the reference.

    Raises
    ------
    ValueError
        If ``groups_shown`` names a group the run does not have.
    """
    groups = _rows(data)
    unknown = [g for g in groups_shown or [] if g not in groups]
    if unknown:
        raise ValueError(f"groups_shown: {unknown} not in the run (its groups: {sorted(groups)})")
    roof = _roof(groups)
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {})
    lines = [
        f"Machine: {cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} CPUs; "
        f"{data.get('datetime', '')}"
        + (f"; roofline {roof:.1f} GFLOP/s (best round of the sgemm)" if roof else "")
    ]
    for group, rows in sorted(groups.items()):
        if groups_shown is None or group in groups_shown:
            lines += ["", f"#### {group}", "", *_group_table(rows, roof)]
    return "\n".join(lines)


def _per_step(groups: dict[str, list[dict]], group: str, impl: str) -> float | None:
    """Median seconds per step (or per run) of ``impl`` in ``group``; None if not measured."""
    return next((r["per_step"] for r in groups.get(group, []) if r["impl"] == impl), None)


def _paired_row(groups: dict[str, list[dict]], group: str, impl: str) -> dict | None:
    """``impl``'s row in the alternating rounds of ``group`` ("paired mnist"), if it ran there."""
    return next((r for r in groups.get(f"paired {group}", []) if r["impl"] == impl), None)


def _speedup(group: str, peer: str, ref: str = "fastinit") -> Callable[[dict], float | None]:
    """How many times slower ``peer`` ran than ``ref`` in ``group``.

    The median of the per-round ratios where the run timed both in alternating
    rounds (``paired GROUP``), else the ratio of their separate medians.
    """

    def measure(groups: dict[str, list[dict]]) -> float | None:
        mine, theirs = _paired_row(groups, group, ref), _paired_row(groups, group, peer)
        if mine and theirs:
            return median(_round_ratios(theirs, mine))
        mine, theirs = _per_step(groups, group, ref), _per_step(groups, group, peer)
        return theirs / mine if mine and theirs else None

    return measure


def _slowest(group: str, *impls: str) -> Callable[[dict], float | None]:
    def measure(groups: dict[str, list[dict]]) -> float | None:
        times = [_per_step(groups, group, impl) for impl in impls]
        return None if None in times else max(times)

    return measure


def _roofline_share(groups: dict[str, list[dict]]) -> float | None:
    """fastinit's MNIST GFLOP/s in % of the sgemm's: round by round where they alternated."""
    step = _paired_row(groups, "mnist", "fastinit")
    roof_row = _paired_row(groups, "mnist", "sgemm_2048")
    if step and roof_row:
        return 100 * _round_share(step, roof_row)
    step = next((r for r in groups.get("mnist", []) if r["impl"] == "fastinit"), None)
    roof = _roof(groups)
    return 100 * step["gflops"] / roof if step and step["gflops"] and roof else None


def _roof(groups: dict[str, list[dict]]) -> float | None:
    """The sgemm's best round in GFLOP/s: a peak the machine showed in this run.

    Its median moves with the host's load, and a slow median would flatter every
    "% roofline".
    """
    return next((r["best_gflops"] for r in groups.get("roofline", []) if r["gflops"]), None)


@dataclass(frozen=True)
class Target:
    """One target of the training-backend issue.

    Attributes
    ----------
    label : str
        What is measured, as the summary's row names it.
    short : str
        Its column heading in the table of runs.
    goal : float
        The value to reach.
    unit : str
        ``"x"`` (a speed-up), ``"%"`` or ``"s"``.
    at_least : bool
        True if the value must be at least ``goal``, False if under it.
    measure : Callable[[dict], float | None]
        The value in one run's groups (None if the run lacks a benchmark it needs).
    pairs : tuple of str, optional
        ``(group, peer, reference)`` for a figure taken from the alternating rounds
        of ``paired GROUP`` where a run has both there.
    """

    label: str
    short: str
    goal: float
    unit: str
    at_least: bool
    measure: Callable[[dict], float | None]
    pairs: tuple[str, str, str] | None = None

    def met(self, value: float) -> bool:
        """Whether ``value`` reaches the goal.

        Parameters
        ----------
        value : float
            The target's value in one run.

        Returns
        -------
        bool
            True if it reaches the goal.
        """
        return value >= self.goal if self.at_least else value < self.goal  # "under", "faster"

    def show(self, value: float | None) -> str:
        """``value`` formatted in the target's unit ("-" for a run without it).

        Parameters
        ----------
        value : float or None
            The target's value in one run.

        Returns
        -------
        str
            The value with its unit.
        """
        if value is None:
            return "-"
        return {"x": f"{value:.2f}x", "%": f"{value:.1f}%", "s": f"{value:.2f} s"}[self.unit]


def _speed_target(label: str, short: str, goal: float, group: str, peer: str) -> Target:
    """A target on how many times slower ``peer`` runs than fastinit in ``group``."""
    return Target(label, short, goal, "x", True, _speedup(group, peer), (group, peer, "fastinit"))


TARGETS = (
    _speed_target("MNIST step vs torch eager", "torch", 2.5, "mnist", "torch_eager"),
    _speed_target("MNIST step vs JAX scan", "JAX scan", 1.7, "mnist", "jax_scan"),
    _speed_target("MNIST step vs NumPy float64", "NumPy f64", 4.0, "mnist", "numpy_f64"),
    Target(
        "MNIST step, % of sgemm roofline",
        "roofline",
        60.0,
        "%",
        True,
        _roofline_share,
        ("mnist", "sgemm_2048", "fastinit"),
    ),
    _speed_target("wide step vs JAX scan", "wide", 1.0, "wide", "jax_scan"),
    Target(
        "planar vs NumPy notebook",
        "planar",
        10.0,
        "x",
        True,
        _speedup("planar", "numpy_notebook", "fastinit_float32"),
    ),
    Target(
        "start, warm cache (slower of two)",
        "warm start",
        1.5,
        "s",
        False,
        _slowest("coldstart", "warm_cache", "warm_cache_explicit_init"),
    ),
    Target(
        "start, empty cache (slower of two)",
        "empty cache",
        8.0,
        "s",
        False,
        _slowest("coldstart", "empty_cache", "empty_cache_explicit_init"),
    ),
    Target(
        "MNIST script, fresh process", "script", 2.9, "s", False, _slowest("script", "fastinit")
    ),
)

_RUN_NAME = re.compile(r"-(\d{4}-\d{2}-\d{2})-(\d{4})(?:-(.+))?$")


def left_out_reason(path: Path) -> str | None:
    """Why a saved run is left out of the ranges (its file name's tail), or None if it counts.

    Parameters
    ----------
    path : Path
        A saved run, named ``...-YYYY-MM-DD-HHMM[-reason].json``.

    Returns
    -------
    str or None
        The reason with dashes as spaces (``"loaded host"``), or None.

    Raises
    ------
    ValueError
        If the name does not end with a date and a time.
    """
    match = _RUN_NAME.search(path.stem)
    if match is None:
        raise ValueError(f"run {str(path)!r}: expected a name ending -YYYY-MM-DD-HHMM[-reason]")
    return match.group(3).replace("-", " ") if match.group(3) else None


def _range(values: list[float], target: Target) -> str:
    return f"{target.show(min(values))} - {target.show(max(values))}" if values else "-"


def targets_table(runs: dict[str, dict]) -> str:
    """The issue's targets over several saved runs: a summary and one row per run.

    Parameters
    ----------
    runs : dict[str, dict]
        pytest-benchmark JSON documents by file path, in time order.

    Returns
    -------
    str
        Markdown: per target its goal, the range and the count of runs that met it
        over the runs that count, and its figure in the last run that counts; then
        each run's figures, missed ones marked, with its processor, its sgemm best
        round and the NumPy notebook's planar step (a loaded host shows in both).
    """
    counted = {path: data for path, data in runs.items() if left_out_reason(Path(path)) is None}
    values = {path: [t.measure(_rows(data)) for t in TARGETS] for path, data in runs.items()}
    last = list(counted)[-1] if counted else None
    lines = [
        f"Over {len(counted)} runs that count, of {len(runs)} saved.",
        "",
        "| target | goal | range | met in | last counted run |",
        "|---|---:|---:|---:|---:|",
    ]
    for i, target in enumerate(TARGETS):
        seen = [values[path][i] for path in counted if values[path][i] is not None]
        goal = ("≥ " if target.at_least else "< ") + target.show(target.goal)
        met = sum(target.met(v) for v in seen)
        latest = target.show(values[last][i]) if last else "-"
        lines.append(
            f"| {target.label} | {goal} | {_range(seen, target)} | {met} of {len(seen)} "
            f"| {latest} |"
        )
    lines += ["", "Each run (✗: missed):", ""]
    heads = ["run (UTC)", "commit", "CPU", "sgemm best", "notebook", "counted", "timing"]
    heads += [t.short for t in TARGETS]
    rule = "|---|---|---|---:|---:|---|---" + "|---:" * len(TARGETS) + "|"
    lines += ["| " + " | ".join(heads) + " |", rule]
    for path, data in runs.items():
        groups = _rows(data)
        commit = data.get("commit_info", {})
        roof, notebook = _roof(groups), _per_step(groups, "planar", "numpy_notebook")
        cells = [
            data.get("datetime", "?")[:16].replace("T", " "),
            commit.get("id", "?")[:7] + (" (dirty)" if commit.get("dirty") else ""),
            _processor(data),
            f"{roof:.1f}" if roof else "-",
            _time(notebook) if notebook else "-",
            left_out_reason(Path(path)) or "yes",
            _timing(groups),
        ]
        for target, value in zip(TARGETS, values[path], strict=True):
            missed = value is not None and not target.met(value)
            cells.append(target.show(value) + (" ✗" if missed else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _timing(groups: dict[str, list[dict]]) -> str:
    """``paired`` if every target that can come from alternating rounds did, ``separate``
    if none did, else ``partly paired`` (a run of some paired groups only)."""
    used = [
        all(_paired_row(groups, t.pairs[0], impl) for impl in t.pairs[1:])
        for t in TARGETS
        if t.pairs
    ]
    return "paired" if all(used) else "partly paired" if any(used) else "separate"


def _processor(data: dict) -> str:
    """A run's CPU as ``family/model``, with ``AVX-512`` where it has it (``?``: not recorded).

    Hosts sold under one name differ: the EPYC of the runs up to 2026-11-24 16:02
    was family 25 model 1 (Zen 3), the next one's model 17 (Zen 4, AVX-512), where
    the NumPy notebook's planar step took 44 us instead of 80-95.
    """
    cpu = data.get("machine_info", {}).get("cpu", {})
    if "family" not in cpu or "model" not in cpu:
        return "?"
    wide = " AVX-512" if "avx512f" in cpu.get("flags", []) else ""
    return f"{cpu['family']}/{cpu['model']}{wide}"


def read_run(path: str | Path) -> dict:
    """A run saved by ``pytest --benchmark-json``.

    Raises
    ------
    ValueError
        Naming the file, if it is not JSON or holds no benchmarks (a truncated file,
        or a run whose benchmarks were all deselected).
    """
    try:
        run = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err})") from None
    if not isinstance(run, dict) or not run.get("benchmarks"):
        raise ValueError(f"{path}: no benchmarks (not a pytest-benchmark run, or an empty one)")
    return run


def _expand(patterns: list[str]) -> list[str]:
    """Paths matching the glob patterns, sorted (a pattern matching nothing is an error)."""
    paths = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if not found:
            raise SystemExit(f"report.py: no file matches {pattern!r}")
        paths += found
    for path in paths:
        left_out_reason(Path(path))  # a name without its date and time: ValueError, named
    # the path breaks ties: runs of the same minute in one order, not the set's
    return sorted(set(paths), key=lambda p: (*_RUN_NAME.search(Path(p).stem).groups()[:2], p))


def splice(text: str, section: str, report: str) -> str:
    """``text`` with the lines between the ``bench:section`` markers replaced by ``report``.

    Raises
    ------
    ValueError
        If the opening or closing marker is missing, repeated or out of order.
    """
    opening, closing = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
    lines = text.split("\n")
    found = [[i for i, line in enumerate(lines) if line.strip() == m] for m in (opening, closing)]
    if [len(f) for f in found] != [1, 1] or found[0][0] > found[1][0]:
        raise ValueError(
            f"section {section!r}: expected one line {opening!r} followed by one line "
            f"{closing!r}, found them on lines {[i + 1 for i in found[0]]} and "
            f"{[i + 1 for i in found[1]]}"
        )
    start, stop = found[0][0], found[1][0]
    return "\n".join([*lines[: start + 1], report, *lines[stop:]])


def main(argv: list[str] | None = None) -> None:
    """Print the report of ``--benchmark-json`` files, or write it into a README section.

    Parameters
    ----------
    argv : list[str] or None
        Command-line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", help="file(s) written by pytest --benchmark-json")
    parser.add_argument("--readme", type=Path, help="Markdown file to write the report into")
    parser.add_argument("--section", help="the NAME of its <!-- bench:NAME --> markers")
    parser.add_argument("--groups", help="comma-separated benchmark groups to show (default: all)")
    parser.add_argument(
        "--targets", action="store_true", help="the issue's targets over runs (globs allowed)"
    )
    args = parser.parse_args(argv)
    if (args.readme is None) != (args.section is None):
        parser.error("--readme and --section go together")
    if args.targets:
        try:
            report = targets_table({p: read_run(p) for p in _expand(args.json)})
        except ValueError as err:
            parser.error(str(err))
    elif len(args.json) == 1:
        shown = args.groups.split(",") if args.groups else None
        try:
            report = table(read_run(args.json[0]), shown)
        except ValueError as err:
            parser.error(str(err))
    else:
        parser.error("one run at a time, or several with --targets")
    if args.readme is None:
        print(report)
        return
    command = "python bench/report.py " + " ".join(
        f"'{j}'" if any(c in j for c in "*?[") else j for j in args.json
    )
    command += f" --readme {args.readme} --section {args.section}"
    command += f" --groups {args.groups}" if args.groups else ""
    command += " --targets" if args.targets else ""
    report = f"Generated by `{command}`.\n\n{report}"
    args.readme.write_text(splice(args.readme.read_text(), args.section, report))


if __name__ == "__main__":
    main()
