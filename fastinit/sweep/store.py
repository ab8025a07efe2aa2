"""The results database: SQLite in WAL mode, one row per run, written by the sweep process only.

Table ``runs`` (one row per configuration key)::

    key        TEXT PRIMARY KEY  sha256 of the canonical JSON of config
    experiment TEXT              experiment name
    sweep      TEXT              the SPEC name that last ran it
    config     TEXT              canonical JSON of the full configuration
    status     TEXT              'ok' | 'diverged' | 'failed'
    metrics    TEXT              JSON object of numbers (null for NaN/inf)
    curves     TEXT              JSON object of named lists (loss per iteration, ...)
    error      TEXT              traceback or reason of a failed run, else NULL
    started    REAL              Unix time the run started (worker clock)
    finished   REAL              Unix time it ended
    wall_time  REAL              seconds inside the worker
    worker     TEXT              host:pid that ran it
    version    TEXT              fastinit.__version__ of the worker
    attempts   INTEGER           times the run was recorded (a --retry-failed rerun adds one)
    recorded   REAL              Unix time the row was written

Every finished run is committed on its own as it arrives (``INSERT ... ON
CONFLICT(key) DO UPDATE``, one transaction), so a killed sweep loses no
finished run, and a rerun skips every key already present.  WAL mode lets
``fastinit report`` read while a sweep writes; ``synchronous=NORMAL`` keeps
every committed transaction across a crash of the process (only a power loss
may drop the last ones).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "Store", "json_safe"]

SCHEMA_VERSION = 1
DONE = ("ok", "diverged", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key        TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    sweep      TEXT,
    config     TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('ok', 'diverged', 'failed')),
    metrics    TEXT NOT NULL DEFAULT '{}',
    curves     TEXT NOT NULL DEFAULT '{}',
    error      TEXT,
    started    REAL,
    finished   REAL,
    wall_time  REAL,
    worker     TEXT,
    version    TEXT,
    attempts   INTEGER NOT NULL DEFAULT 1,
    recorded   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs (experiment, status);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_COLUMNS = (
    "key", "experiment", "sweep", "config", "status", "metrics", "curves", "error", "started",
    "finished", "wall_time", "worker", "version", "attempts", "recorded",
)  # fmt: skip


_UPSERT = (
    f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
    " ON CONFLICT(key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("key", "attempts"))
    + ", attempts = runs.attempts + 1"
)
# the same, but an ok or diverged row stays as it is (a concurrent sweep recorded it first)
_UPSERT_KEEP_DONE = _UPSERT + " WHERE runs.status = 'failed'"


def json_safe(value: Any) -> Any:
    """A JSON-safe copy of ``value``: NaN and infinities become None (``null``).

    JSON has no NaN or infinity; every JSON fastinit writes (the results
    database, the experiments' and the report's ``summary.json``) goes through
    this.  Imports no NumPy, but takes its scalars and arrays.

    Parameters
    ----------
    value : object
        Dicts, lists, tuples, numbers (NumPy scalars and arrays included),
        strings, None.

    Returns
    -------
    object
        The same structure with tuples and arrays as lists, NumPy scalars as
        Python numbers, dict keys as strings.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if callable(getattr(value, "tolist", None)):  # NumPy scalars and arrays
        return json_safe(value.tolist())
    return value


def _dumps(value: Any) -> str:
    return json.dumps(json_safe(value), separators=(",", ":"), allow_nan=False)


class Store:
    """A results database (created if missing).

    Parameters
    ----------
    path : path-like
        The SQLite file.
    readonly : bool
        Open an existing database without creating anything (``fastinit report``).

    Raises
    ------
    ValueError
        If the file is not a fastinit results database, or (``readonly``) does
        not exist.
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly and not self.path.is_file():
            raise ValueError(f"db: {self.path} does not exist")
        if not readonly:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ValueError(f"db: cannot create {self.path.parent} ({e.strerror})") from e
        try:
            self.conn = sqlite3.connect(self.path, timeout=30)
            self._check_foreign()  # before anything is written, WAL mode included
            if not readonly:
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                # one transaction: a sweep starting beside this one sees no half-made schema
                self.conn.execute("BEGIN IMMEDIATE")
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self.conn.execute(statement)
                self.conn.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                self.conn.commit()
            version = self.conn.execute(
                "SELECT value FROM meta WHERE name = 'schema_version'"
            ).fetchone()
        except sqlite3.DatabaseError as e:
            raise ValueError(f"db: {self.path} is not a fastinit results database ({e})") from None
        if version is None or int(version[0]) != SCHEMA_VERSION:
            raise ValueError(
                f"db: {self.path} has schema version {version and version[0]}, "
                f"expected {SCHEMA_VERSION}"
            )

    def _check_foreign(self) -> None:
        """Refuse (and close) a database that holds tables but not fastinit's ``meta``."""
        tables = {
            name
            for (name,) in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if tables and "meta" not in tables:  # another program's database: leave it alone
            self.conn.close()
            raise ValueError(
                f"db: {self.path} is not a fastinit results database (it holds the "
                f"tables {', '.join(sorted(tables))}); choose another file"
            )

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (everything is already committed)."""
        self.conn.close()

    # ------------------------------------------------------------------------- reading
    def statuses(self, keys: Iterable[str] | None = None) -> dict[str, str]:
        """The status of recorded runs.

        Parameters
        ----------
        keys : iterable of str, optional
            Only these keys (default: every run).

        Returns
        -------
        dict
            ``{key: status}``.
        """
        rows = self.conn.execute("SELECT key, status FROM runs").fetchall()
        found = dict(rows)
        if keys is None:
            return found
        return {k: found[k] for k in keys if k in found}

    def status(self, key: str) -> str | None:
        """The status recorded for one run (one indexed lookup), or None.

        Parameters
        ----------
        key : str
            Configuration key.

        Returns
        -------
        str or None
            ``"ok"``, ``"diverged"``, ``"failed"``, or None if the run has no row.
        """
        row = self.conn.execute("SELECT status FROM runs WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def done(self, keys: Iterable[str], *, retry_failed: bool = False) -> set[str]:
        """The keys among ``keys`` that need no run.

        Parameters
        ----------
        keys : iterable of str
            Configuration keys.
        retry_failed : bool
            Whether failed runs are to run again (then they are not done).

        Returns
        -------
        set of str
            Keys recorded ok or diverged, and failed unless ``retry_failed``.
        """
        statuses = self.statuses(keys)
        skip = ("ok", "diverged") if retry_failed else DONE
        return {k for k, s in statuses.items() if s in skip}

    def rows(self, experiment: str | None = None, sweep: str | None = None) -> list[dict[str, Any]]:
        """Every recorded run as a dict, JSON columns decoded (``config``, ``metrics``, ``curves``).

        Parameters
        ----------
        experiment : str, optional
            Only this experiment's runs.
        sweep : str, optional
            Only the runs last recorded by the SPEC of this name.

        Returns
        -------
        list of dict
            In the order they were recorded.
        """
        query = f"SELECT {', '.join(_COLUMNS)} FROM runs"
        where, args = [], []
        if experiment is not None:
            where.append("experiment = ?")
            args.append(experiment)
        if sweep is not None:
            where.append("sweep = ?")
            args.append(sweep)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY recorded, rowid"
        out = []
        for values in self.conn.execute(query, args):
            row = dict(zip(_COLUMNS, values, strict=True))
            for name in ("config", "metrics", "curves"):
                row[name] = json.loads(row[name])
            out.append(row)
        return out

    def count(self) -> dict[str, int]:
        """Number of runs per status.

        Returns
        -------
        dict of str to int
            ``{status: runs}`` for each status recorded at least once (a status
            with no run is absent).
        """
        return dict(self.conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status"))

    # ------------------------------------------------------------------------- writing
    def record(
        self,
        key: str,
        config: dict[str, Any],
        result: dict[str, Any],
        sweep: str | None = None,
        *,
        keep_done: bool = False,
    ) -> bool:
        """Write one finished run and commit.

        Parameters
        ----------
        key : str
            The configuration key (:func:`fastinit.sweep.spec.config_key`).
        config : dict
            The full configuration.
        result : dict
            What :func:`fastinit.sweep.runners.execute` returned.
        sweep : str, optional
            The SPEC name.
        keep_done : bool
            Leave a row already recorded ``ok`` or ``diverged`` as it is (what
            ``fastinit sweep`` does: a sweep writing the same database at the
            same time may have recorded this run since this one started; its
            result is not replaced, by a failure least of all, nor counted
            twice in ``attempts``).  A ``failed`` row is always replaced.

        Returns
        -------
        bool
            Whether the row was written (False: ``keep_done`` kept the row there).
        """
        values = (
            key,
            config["experiment"],
            sweep,
            _dumps_config(config),
            result["status"],
            _dumps(result.get("metrics") or {}),
            _dumps(result.get("curves") or {}),
            result.get("error"),
            result.get("started"),
            result.get("finished"),
            result.get("wall_time"),
            result.get("worker"),
            result.get("version"),
            1,
            time.time(),
        )
        with self.conn:
            cursor = self.conn.execute(_UPSERT_KEEP_DONE if keep_done else _UPSERT, values)
        return cursor.rowcount > 0


def _dumps_config(config: dict[str, Any]) -> str:
    from fastinit.sweep.spec import canonical_json

    return canonical_json(config)
