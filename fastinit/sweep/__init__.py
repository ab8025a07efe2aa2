"""Parameter sweeps: a SPEC.toml grid of runs, executed in parallel, stored in SQLite.

``fastinit sweep SPEC.toml --db results.sqlite`` runs every grid point of the
SPEC that the database does not hold yet, on a local process pool (default),
in-process (``--workers 0``) or on a Dask cluster (``--dask ADDRESS|local``);
``fastinit report results.sqlite --out DIR`` aggregates over seeds and writes
tables and figures.

=================  =======================================================================
module             what
=================  =======================================================================
``spec``           SPEC.toml parsing, checking (errors name key and line), grid expansion,
                   configuration keys (SHA-256 of canonical JSON)
``runners``        one runner per experiment: flat config dict -> metrics and curves
``store``          the SQLite results database (WAL; one row per run, committed on arrival)
                   and the claims of the runs sweeps are running now
``execute``        executors (in-process, local spawn pool, Dask) and :func:`run_sweep`
``report``         aggregation over seeds, CSV/Markdown tables, figures
``cli``            the ``sweep``, ``report`` and ``depth`` subcommands
=================  =======================================================================

Importing this package imports neither NumPy nor numba (worker processes set
their thread counts before they do).
"""

from __future__ import annotations

import importlib
from typing import Any

_ATTRS = {
    "Spec": "spec",
    "SpecError": "spec",
    "load_spec": "spec",
    "parse_spec": "spec",
    "config_key": "spec",
    "Store": "store",
    "run_sweep": "execute",
    "make_executor": "execute",
    "SweepSummary": "execute",
    "make_report": "report",
    "aggregate": "report",
    "EXPERIMENTS": "runners",
}

__all__ = sorted(_ATTRS)


def __getattr__(name: str) -> Any:
    if name in _ATTRS:
        return getattr(importlib.import_module(f"fastinit.sweep.{_ATTRS[name]}"), name)
    raise AttributeError(f"module 'fastinit.sweep' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
