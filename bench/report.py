"""Markdown table of a saved pytest-benchmark run: per-step medians and same-run ratios.

Usage::

    pytest bench/test_bench_train.py --benchmark-only --benchmark-json=train.json
    python bench/report.py train.json

Per-step time is the round median divided by the steps of a round
(``extra_info["steps"]``).  In each group the ratio column compares every
implementation with fastinit (``baseline / fastinit``: > 1 means fastinit is
faster).  GFLOP/s uses ``extra_info["flops"]``; the roofline column divides by
the same run's sgemm 2048 x 2048 rate.
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
        median = bench["stats"]["median"]
        groups[bench.get("group") or "default"].append(
            {
                "impl": info.get("impl", bench["name"]),
                "per_step": median / steps,
                "min_per_step": bench["stats"]["min"] / steps,
                "gflops": info.get("flops", 0) / median / 1e9 if info.get("flops") else None,
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


def table(data: dict) -> str:
    """The Markdown report for one pytest-benchmark JSON document."""
    groups = _rows(data)
    roof = next((r["gflops"] for r in groups.get("roofline", []) if r["gflops"]), None)
    lines = []
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw", "?")
    lines.append(
        f"Machine: {cpu}, {machine.get('cpu', {}).get('count', '?')} CPUs; "
        f"{data.get('datetime', '')}"
    )
    for group, rows in sorted(groups.items()):
        rows.sort(key=lambda r: r["per_step"])
        ref = next((r for r in rows if r["impl"].startswith("fastinit")), None)
        lines += ["", f"### {group}", ""]
        head = (
            "| implementation | median / step | min / step | GFLOP/s | % roofline | vs fastinit |"
        )
        lines += [head, "|---|---:|---:|---:|---:|---:|"]
        for r in rows:
            gf = f"{r['gflops']:.1f}" if r["gflops"] else "-"
            pct = f"{100 * r['gflops'] / roof:.0f}%" if r["gflops"] and roof else "-"
            ratio = f"{r['per_step'] / ref['per_step']:.2f}x" if ref else "-"
            lines.append(
                f"| {r['impl']} | {_time(r['per_step'])} | {_time(r['min_per_step'])} "
                f"| {gf} | {pct} | {ratio} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the report of a ``--benchmark-json`` file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="file written by pytest --benchmark-json")
    args = parser.parse_args(argv)
    print(table(json.loads(args.json.read_text())))


if __name__ == "__main__":
    main()
