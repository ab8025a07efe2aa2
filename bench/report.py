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
moves the medians, and a slow median GEMM would flatter every row); GB/s columns appear for the GPU
fills (``extra_info["fill_gbps"]``, against a same-run device copy).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def _rows(data: dict) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        steps = max(int(info.get("steps", 1)), 1)
        median, best = bench["stats"]["median"], bench["stats"]["min"]
        flops = info.get("flops")
        groups[bench.get("group") or "default"].append(
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
    per = "run" if all(r["steps"] == 1 for r in rows) else "step"  # coldstart, script: runs
    columns = ["implementation", f"median / {per}", f"min / {per}"]
    flops = any(r["gflops"] for r in rows)
    gbps = any(r["gbps"] for r in rows)
    columns += ["GFLOP/s", "% roofline"] if flops else []
    columns += ["GB/s written", "% of same-run copy"] if gbps else []
    columns += [f"vs {ref['impl']}"] if ref else []
    lines = ["| " + " | ".join(columns) + " |", "|---" + "|---:" * (len(columns) - 1) + "|"]
    for r in rows:
        cells = [r["impl"], _time(r["per_step"]), _time(r["min_per_step"])]
        if flops:
            cells.append(f"{r['gflops']:.1f}" if r["gflops"] else "-")
            cells.append(f"{100 * r['gflops'] / roof:.0f}%" if r["gflops"] and roof else "-")
        if gbps:
            cells.append(f"{r['gbps']:.0f}" if r["gbps"] else "-")
            cells.append(f"{100 * r['copy_ratio']:.0f}%" if r["copy_ratio"] else "-")
        if ref:
            cells.append(f"{r['per_step'] / ref['per_step']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def table(data: dict, groups_shown: list[str] | None = None) -> str:
    """The Markdown report for one pytest-benchmark JSON document (all groups, or those named).

    One table per benchmark group, fastest first.  The last column divides each
    time by the group's reference (``extra_info["reference"]``, else fastinit):
    above 1.00x is slower than the reference.
    """
    groups = _rows(data)
    # the roofline is the GEMM's best round: a peak the machine showed in this run (its
    # median moves with the host's load and would flatter every "% roofline")
    roof = next((r["best_gflops"] for r in groups.get("roofline", []) if r["gflops"]), None)
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
    """Print the report of a ``--benchmark-json`` file, or write it into a README section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="file written by pytest --benchmark-json")
    parser.add_argument("--readme", type=Path, help="Markdown file to write the report into")
    parser.add_argument("--section", help="the NAME of its <!-- bench:NAME --> markers")
    parser.add_argument("--groups", help="comma-separated benchmark groups to show (default: all)")
    args = parser.parse_args(argv)
    if (args.readme is None) != (args.section is None):
        parser.error("--readme and --section go together")
    shown = args.groups.split(",") if args.groups else None
    report = table(json.loads(args.json.read_text()), shown)
    if args.readme is None:
        print(report)
        return
    command = f"python bench/report.py {args.json} --readme {args.readme} --section {args.section}"
    command += f" --groups {args.groups}" if args.groups else ""
    report = f"Generated by `{command}`.\n\n{report}"
    args.readme.write_text(splice(args.readme.read_text(), args.section, report))


if __name__ == "__main__":
    main()
