"""The ``fastinit sweep``, ``fastinit report`` and ``fastinit depth`` subcommands.

Each ``add_*`` function adds one subparser to the ``fastinit`` command's
subparsers (``fastinit.cli.subcommands()``) and sets ``run`` (called with the
parsed arguments, returns an object with ``.table()``) and ``out``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastinit._progress import count
from fastinit.cli import HelpFormatter, _common, _default, _dtype, _int, _ints, _names, _path

__all__ = ["add_depth", "add_report", "add_sweep"]

SWEEP_HELP = """\
Run every grid point of SPEC.toml that --db does not hold yet; each finished run
is committed at once, so an interrupted sweep resumes where it stopped.

A SPEC names an experiment and a grid of its parameters:

    experiment = "planar"              # planar, mnist, histogram or depth
    [fixed]
    iterations = 2000
    [grid]
    init = ["zeros", "randn*0.01", "xavier", "he"]
    activation = ["tanh", "relu"]
    seed = { start = 0, stop = 5 }

``fastinit sweep --list`` shows every experiment's parameters and defaults.
"""


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return n


# ----------------------------------------------------------------------------- sweep
def add_sweep(sub: Any) -> None:
    """Add the ``sweep`` subcommand.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The ``fastinit`` command's subparsers.
    """
    p = sub.add_parser(
        "sweep",
        help="run a SPEC.toml grid of runs in parallel into a SQLite database (resumable)",
        description=SWEEP_HELP,
        formatter_class=HelpFormatter,
    )
    p.add_argument("spec", nargs="?", type=_path, metavar="SPEC.toml", help="the sweep to run")
    p.add_argument("--db", type=_path, default=Path("results.sqlite"),
                   help="results database, created if missing (its missing directories "
                   "too, said on stderr)")  # fmt: skip
    p.add_argument("--workers", type=_workers, default=None, metavar="N",
                   help="worker processes (default: one per core; never more than the runs to do, "
                   "fewer when the memory cannot hold that many runs at once; 0: run in this "
                   "process); "
                   "with --dask local, the number of Dask workers (at least 1)")  # fmt: skip
    p.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="run on a Dask scheduler (tcp://host:8786), or 'local' to start a "
                   "LocalCluster on 127.0.0.1 (needs fastinit[dask])")  # fmt: skip
    p.add_argument("--retry-failed", action="store_true",
                   help="run the configurations recorded as failed again")  # fmt: skip
    p.add_argument("--dry-run", action="store_true",
                   help="only count the runs: in the SPEC, already in --db, to do, and "
                   "claimed by another sweep")  # fmt: skip
    p.add_argument("--list", action="store_true",
                   help="list the experiments and their parameters, then exit")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_sweep, out=None)


@dataclass
class _Text:
    """A command result that is only text."""

    text: str
    footer: str = ""

    def table(self) -> str:
        return self.text


def _list_experiments() -> _Text:
    from fastinit.sweep.runners import EXPERIMENTS

    shown = {name: e for name, e in EXPERIMENTS.items() if not e.hidden}
    rows = {
        name: [
            (key, p.kind + (f" in {{{', '.join(p.choices)}}}" if p.choices else ""),
             "default " + ("unset" if p.default is None else repr(p.default)), p.help)
            for key, p in e.params.items()
        ]
        for name, e in shown.items()
    }  # fmt: skip
    # every experiment's columns as wide as the widest cell of any (one aligned listing)
    widths = [max(len(r[i]) for rs in rows.values() for r in rs) for i in range(3)]
    lines = []
    for name, e in shown.items():
        others = f"; also {', '.join(e.recorded)}" if e.recorded else ""
        lines += [f"{name}: {e.doc}", f"  metrics: {', '.join(e.metrics)} (heatmaps){others}"]
        for row in rows[name]:
            cells = [f"{c:<{w}}" for c, w in zip(row, widths, strict=False)]
            lines.append("  " + "  ".join([*cells, row[3]]))
        lines.append("")
    return _Text("\n".join(lines).rstrip())


def _run_sweep(a: argparse.Namespace) -> Any:
    from fastinit.sweep.execute import run_sweep
    from fastinit.sweep.spec import load_spec, run_memory

    if a.list:
        return _list_experiments()
    if a.spec is None:
        raise ValueError("SPEC.toml: expected the sweep file to run (or --list)")
    if a.dask is not None and not a.dask.strip():
        raise ValueError(f"--dask: expected a scheduler address or 'local', got {a.dask!r}")
    memory = run_memory(a.dask)  # not None: a remote cluster, runs on other machines' memory
    spec = load_spec(a.spec, memory=memory)
    if a.workers is not None and memory is not None:
        raise ValueError("--workers: only with a local pool or --dask local")
    if a.workers == 0 and a.dask is not None:
        raise ValueError("--workers: expected at least 1 with --dask (0 runs in this process)")
    if a.dry_run:
        from fastinit.experiments._common import remove_empty
        from fastinit.sweep.store import Store, done_keys

        remove_empty(_prepare_db(a.db, say=False))  # usable, as the sweep checks; none left

        runs = spec.keyed_runs()
        statuses: dict[str, str] = {}
        done: set[str] = set()
        claims: dict[str, dict] = {}
        empty = Path(a.db).is_file() and not Path(a.db).stat().st_size
        if Path(a.db).exists() and not empty:  # a dry run writes nothing: no new database
            with Store(a.db, readonly=True) as store:
                statuses = store.statuses(k for k, _ in runs)
                done = done_keys(statuses, retry_failed=a.retry_failed)
                todo = [k for k, _ in runs if k not in done]
                claims = store.claims(todo, live=True)  # not the stale ones: taken over
        failed = sum(s == "failed" for s in statuses.values())
        text = (
            f"sweep {spec.name!r} ({spec.experiment}): {count(len(runs), 'run')} in the SPEC, "
            f"{len(statuses)} in {a.db} ({failed} failed), {len(runs) - len(done)} to run"
        )
        if claims:
            holders = ", ".join(sorted({f"{c['host']}:{c['pid']}" for c in claims.values()}))
            text += f"; {len(claims)} of them being run by another sweep: {holders}"
        return _Text(text)
    executor, connecting = None, 0.0
    if memory is not None:  # a remote scheduler: reached (or refused) before --db is made
        from fastinit.sweep.execute import make_executor

        executor = make_executor("dask", dask=a.dask)
        executor.start()
        connecting = executor.startup_seconds
    created: list[Path] = []
    try:
        created = _prepare_db(a.db)
        summary = run_sweep(
            spec, a.db, executor=executor, workers=a.workers, dask=a.dask,
            retry_failed=a.retry_failed, progress=not a.quiet,
        )  # fmt: skip
    except BaseException:
        from fastinit.experiments._common import remove_empty

        remove_empty(created)  # the folders made for --db, if the sweep left them empty
        raise
    finally:
        if executor is not None:
            executor.close()
    summary.seconds += connecting  # the summary's start-up includes reaching the scheduler
    summary.startup_seconds += connecting
    summary.footer = f"\nresults in {a.db}; tables and figures: fastinit report {a.db} --out DIR"
    return summary


def _prepare_db(db: Path, say: bool = True) -> list[Path]:
    """Create the missing directories of ``--db`` (``say``: in one line on stderr), or refuse
    one that cannot be written to, naming ``--db`` (the rule of the experiments' ``--out``);
    the directories created, deepest first."""
    from fastinit.experiments._common import prepare_output

    created = prepare_output(db.parent, "--db directory")  # deepest first
    if created and say:
        made = str(created[0])
        print(f"fastinit sweep: created the directory {made!r} for --db", file=sys.stderr)
    return created


# ----------------------------------------------------------------------------- report
def add_report(sub: Any) -> None:
    """Add the ``report`` subcommand.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The ``fastinit`` command's subparsers.
    """
    from fastinit.sweep import report

    p = sub.add_parser(
        "report",
        help="aggregate a sweep database over seeds: CSV/Markdown tables and figures",
        description=report.__doc__,
        formatter_class=HelpFormatter,
    )
    p.add_argument("db", type=_path, metavar="DB", help="results database of fastinit sweep")
    p.add_argument("--out", type=_path, default=Path("fastinit-results") / "report",
                   help="output directory")  # fmt: skip
    p.add_argument("--experiment", default=None, help="only this experiment's runs")
    p.add_argument("--sweep", default=None, metavar="NAME",
                   help="only the runs recorded by the SPEC of this name")  # fmt: skip
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.set_defaults(run=_run_report)


def _run_report(a: argparse.Namespace) -> Any:
    from fastinit.sweep.report import make_report

    return make_report(
        a.db, a.out, experiment=a.experiment, sweep=a.sweep, figures=not a.no_figures
    )


# ----------------------------------------------------------------------------- depth
def add_depth(sub: Any) -> None:
    """Add the ``depth`` subcommand (:func:`fastinit.experiments.depth.run_depth`).

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The ``fastinit`` command's subparsers.
    """
    from fastinit.experiments import depth as d

    p = sub.add_parser(
        "depth",
        help="activation and gradient spread per layer of 10- to 100-layer networks at init",
        description=d.__doc__,
        formatter_class=HelpFormatter,
    )
    run = d.run_depth
    p.add_argument("--inits", type=_names, default=_default(run, "inits"),
                   help="comma-separated init specs")  # fmt: skip
    p.add_argument("--activations", type=_names, default=_default(run, "activations"),
                   help="comma-separated activations")  # fmt: skip
    p.add_argument("--depths", type=_ints, default=_default(run, "depths"),
                   help="comma-separated network depths, each given once (run in increasing "
                   "order)")  # fmt: skip
    p.add_argument("--width", type=_int, default=_default(run, "width"), help="units per layer")
    p.add_argument("--samples", type=_int, default=_default(run, "samples"),
                   help="Gaussian inputs")  # fmt: skip
    p.add_argument("--seeds", type=_int, default=_default(run, "seeds"),
                   help="repetitions; the figures show their spread")  # fmt: skip
    p.add_argument("--seed", type=_int, default=_default(run, "seed"), help="first seed")
    _dtype(p, _default(run, "dtype"))
    _common(p, "depth")  # --out, --add, --quiet as in the other experiments
    p.set_defaults(run=_run_depth, sizes=("--depths", "--width", "--samples"))


def _run_depth(a: argparse.Namespace) -> Any:
    from fastinit.experiments._common import parse_init_options
    from fastinit.experiments.depth import run_depth

    options = {"--inits": a.inits, "--add": a.add}  # errors name the option
    inits = parse_init_options(options, data_dependent=False, dtype=a.dtype)
    return run_depth(
        inits, a.activations, depths=a.depths, width=a.width, samples=a.samples,
        seeds=a.seeds, seed=a.seed, dtype=a.dtype, out=a.out, progress=not a.quiet,
    )  # fmt: skip
