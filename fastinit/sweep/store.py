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

Table ``claims`` (one row per run a sweep is running now)::

    key        TEXT PRIMARY KEY  the run's configuration key
    host       TEXT              host name of the claimant (the sweep process)
    pid        INTEGER           its process id
    token      TEXT              random id of the claimant (two sweeps of one process differ)
    started    REAL              Unix time of the claim
    lease      REAL              Unix time the claimant last renewed the claim

Several sweeps may write one database at once (two terminals, or machines
sharing a file system).  Before a run starts, its sweep claims it
(:meth:`Store.claim`): one ``BEGIN IMMEDIATE`` transaction (SQLite's write
lock is the only lock) that reads the run's row and claim and writes the claim
only if the run is not recorded ok or diverged and no other *live* claimant
holds it.  A claim is stale, and taken over, when its claimant's process is
gone (same host: the pid no longer runs) or its lease is more than
:data:`LEASE_SECONDS` old (any host: a live sweep renews the lease of all its
claims every :data:`RENEW_SECONDS`, :func:`keep_alive`; hosts' clocks must
agree to well within that; SQLite documents that WAL mode does not work over
a network file system, so sweeps on several machines are better one sweep on a
Dask cluster).  A claim with this process's host and pid but another
claimant's token is stale once its lease is more than ``LEASE_SECONDS / 2``
old (five renewals missed; a renewal that finds the database locked is retried
within seconds): an earlier process that had this pid (a container restarted
with the same host name runs its sweep as pid 1 again) renews it no more,
while another live sweep of this process, or of a container running at the
same time with the same host name and the same pid, does.  Containers that
share a host name but not their pids are told apart only by their leases
(their pids are not this host's to check).  :meth:`Store.record`
releases the claim in the transaction that writes the run's row, so another
sweep sees the run either claimed or recorded, never neither;
:meth:`Store.release` drops every claim of a sweep that stops (an error,
Ctrl-C).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from fastinit._files import alive
from fastinit._files import host as _host
from fastinit._validate import check_bool, check_path

__all__ = [
    "LEASE_SECONDS", "RENEW_SECONDS", "SCHEMA_VERSION", "Claimant", "Store", "done_keys",
    "json_safe", "keep_alive", "renew",
]  # fmt: skip

SCHEMA_VERSION = 1
DONE = ("ok", "diverged", "failed")
#: Seconds after its last renewal that a claim of a run is stale, whatever its host.
LEASE_SECONDS = 300.0
#: Seconds between two renewals of a live sweep's claims (:func:`keep_alive`).
RENEW_SECONDS = LEASE_SECONDS / 10
# Seconds a renewal waits for the database's write lock (a missed one waits for the next).
_RENEW_BUSY_SECONDS = 1.0
_RETRY_SECONDS = 2.0  # after a renewal that found the database locked

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
CREATE TABLE IF NOT EXISTS claims (
    key     TEXT PRIMARY KEY,
    host    TEXT NOT NULL,
    pid     INTEGER NOT NULL,
    token   TEXT NOT NULL,
    started REAL NOT NULL,
    lease   REAL NOT NULL
);
"""
_CLAIM_COLUMNS = ("host", "pid", "token", "started", "lease")
# one run's status and claim (NULLs where none), two lookups by primary key in one statement
_CLAIM_STATE = (
    f"SELECT r.status, r.attempts, {', '.join(f'c.{name}' for name in _CLAIM_COLUMNS)}"
    " FROM (SELECT ? AS key) AS k LEFT JOIN runs AS r ON r.key = k.key"
    " LEFT JOIN claims AS c ON c.key = k.key"
)

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


def done_keys(statuses: dict[str, str], *, retry_failed: bool = False) -> set[str]:
    """The recorded runs that need no run, given their statuses (:meth:`Store.statuses`).

    Parameters
    ----------
    statuses : dict
        ``{key: status}`` of recorded runs.
    retry_failed : bool
        Whether failed runs are to run again (then they are not done).

    Returns
    -------
    set of str
        Keys recorded ok or diverged, and failed unless ``retry_failed``.
    """
    skip = ("ok", "diverged") if retry_failed else DONE
    return {k for k, s in statuses.items() if s in skip}


_WHAT = {"config": "config is", "metrics": "metrics are", "curves": "curves are"}


def _decode(row: dict[str, Any]) -> None:
    """Decode ``row``'s JSON columns in place and check their shape (:func:`_check_shape`):
    a row another program wrote or edited otherwise is a ValueError saying which column
    and how."""
    for name, what in _WHAT.items():
        try:
            row[name] = json.loads(row[name])
        except json.JSONDecodeError as e:
            raise ValueError(f"its {what} not JSON ({e})") from None
    _check_shape(row["config"], row["metrics"], row["curves"])


def _check_shape(config: Any, metrics: Any, curves: Any) -> None:
    """The shape :meth:`Store.record` writes and :meth:`Store.rows` reads: a config object
    naming its experiment, a metrics object, and curves, each a list of numbers or nulls
    (NaN and infinities); else ValueError saying which part and how."""
    for name, value in (("config", config), ("metrics", metrics), ("curves", curves)):
        if not isinstance(value, dict):
            raise ValueError(f"its {_WHAT[name]} not a JSON object: {value!r:.60}")
    if not isinstance(config.get("experiment"), str):
        raise ValueError("its config names no experiment")
    for curve, points in curves.items():
        if not isinstance(points, list) or not all(_is_point(v) for v in points):
            raise ValueError(f"its curve {curve!r} is not a list of numbers: {points!r:.60}")


def _is_point(value: Any) -> bool:
    """Whether ``value`` is a curve's point: a number (not a bool), or None (NaN, inf)."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _dumps(value: Any) -> str:
    return _dumps_safe(json_safe(value))


def _dumps_safe(value: Any) -> str:
    """Compact JSON of a value already JSON-safe (:func:`json_safe`)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class Claimant:
    """Who claims runs in the ``claims`` table: one sweep (by default this process, anew).

    Attributes
    ----------
    host : str
        Host name (:func:`fastinit._files.host`).
    pid : int
        Process id on that host.
    token : str
        Random id: two sweeps of one process (two
        :func:`fastinit.sweep.execute.run_sweep` calls) differ.
    """

    host: str = field(default_factory=_host)
    pid: int = field(default_factory=os.getpid)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"


def _stale(claim: dict[str, Any], now: float) -> bool:
    """Whether another claimant's claim is gone: its lease expired, or its process on this host.

    A claim with this process's host and pid (and another token) is
    another sweep of this process, of an earlier process that had this pid, or
    of a container running at the same time with the same host name: stale once
    not renewed for ``LEASE_SECONDS / 2`` (module docstring), five renewals
    missed.
    """
    age = now - claim["lease"]
    if age > LEASE_SECONDS:
        return True
    if claim["host"] != _host():
        return False
    if claim["pid"] == os.getpid():
        return age > LEASE_SECONDS / 2
    return not alive(claim["pid"])


@contextlib.contextmanager
def keep_alive(
    path: str | os.PathLike[str], claimant: Claimant, interval: float = RENEW_SECONDS
) -> Iterator[None]:
    """Renew the lease of ``claimant``'s claims every ``interval`` seconds during the block.

    A daemon thread with its own connection to the database; a renewal that
    finds the database locked for about a second (another sweep writes), or
    fails otherwise, waits for the next one.  The block ends as promptly (the
    renewal under way, if any, gives up within that second).

    Parameters
    ----------
    path : path-like
        The results database.
    claimant : Claimant
        Whose claims.
    interval : float
        Seconds between renewals (default :data:`RENEW_SECONDS`; well under
        :data:`LEASE_SECONDS`).

    Yields
    ------
    None
    """
    stop = threading.Event()

    def beat() -> None:
        conn = None
        try:
            wait = interval
            while not stop.wait(wait):
                wait = min(interval, _RETRY_SECONDS)  # a missed renewal is retried soon
                with contextlib.suppress(sqlite3.Error):
                    conn = conn or sqlite3.connect(path, timeout=_RENEW_BUSY_SECONDS)
                    renew(conn, claimant)
                    wait = interval
        finally:
            if conn is not None:
                conn.close()

    thread = threading.Thread(target=beat, name="fastinit-sweep-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def renew(conn: sqlite3.Connection, claimant: Claimant) -> None:
    """Renew the lease of every claim of ``claimant`` (now), and commit (:func:`keep_alive`).

    Parameters
    ----------
    conn : sqlite3.Connection
        A connection to the results database (no transaction open).
    claimant : Claimant
        Whose claims.
    """
    with conn:
        conn.execute("UPDATE claims SET lease = ? WHERE token = ?", (time.time(), claimant.token))


def _check_keys(keys: Any) -> None:
    """Refuse keys given as one string (or bytes): its characters are no keys."""
    if isinstance(keys, (str, bytes)):
        raise TypeError(f"keys: expected an iterable of keys (str), got the string {keys!r}")


class Store:
    """A results database (created if missing, and its missing directories).

    Parameters
    ----------
    path : path-like
        The SQLite file.
    readonly : bool
        Open an existing database without creating anything (``fastinit report``).

    Raises
    ------
    ValueError
        If the file is not a fastinit results database (a directory, another
        program's database or an empty file with ``readonly`` included), is
        of another schema version (refused before anything is written),
        (``readonly``) does not exist or is a WAL database SQLite cannot read
        where it is (a ``-wal`` file, no ``-shm`` file, a folder this user cannot
        write: the message says what to do), or (not ``readonly``) is read-only or
        its directory cannot be created or written to.  A ``readonly`` store
        changes no run (``PRAGMA query_only``, or SQLite's ``mode=ro`` where
        this user cannot write: it reads a database in such a directory).
    TypeError
        Naming ``db`` or ``readonly``, for a path that is no file name or a
        flag that is no bool.
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(check_path(path, "db"))
        readonly = check_bool(readonly, "readonly")
        try:
            is_dir, is_file = self.path.is_dir(), self.path.is_file()
        except OSError as e:  # a name too long (ENAMETOOLONG), a folder that cannot be read
            reason = e.strerror or type(e).__name__
            message = f"db: {self.path}: expected a results database file ({reason})"
            raise ValueError(message) from None
        if is_dir:
            raise ValueError(f"db: {self.path} is a directory, not a results database file")
        if readonly and not is_file:
            raise ValueError(f"db: {self.path} does not exist")
        if not readonly:
            from fastinit.experiments._common import prepare_output

            prepare_output(self.path.parent, "db directory")  # the rule of every output folder
            if self.path.exists() and not os.access(self.path, os.W_OK):
                raise ValueError(
                    f"db: {self.path} cannot be written to (the file is read-only); expected "
                    "a results database this user can write (fastinit report only reads one)"
                )
        try:
            self.conn = _connect(self.path, readonly)
            self._check_existing(readonly)  # before anything is written, WAL mode included
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
            # a read-only store of a database made before sweeps claimed runs has none
            found = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'claims'"
            self._has_claims = self.conn.execute(found).fetchone() is not None
        except sqlite3.DatabaseError as e:
            with contextlib.suppress(AttributeError):  # connect itself may have failed
                self.conn.close()
            raise ValueError(f"db: {self.path} is not a fastinit results database ({e})") from None

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Reads of the runs in the block: sqlite3's error for a damaged file ("database
        disk image is malformed") becomes a ValueError naming the database.

        Yields
        ------
        None

        Raises
        ------
        ValueError
            ``db: <path>: cannot read its runs (<sqlite3's message>)``.
        """
        try:
            yield
        except sqlite3.DatabaseError as e:
            raise ValueError(f"db: {self.path}: cannot read its runs ({e})") from None

    def _check_columns(self, tables: set[str]) -> None:
        """Raise sqlite3's error for a ``runs`` or ``claims`` table (of ``tables``) without
        a column of this schema (another program's tables of those names, an edited file)."""
        if "runs" in tables:
            self.conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM runs LIMIT 0")
        if "claims" in tables:
            self.conn.execute(f"SELECT key, {', '.join(_CLAIM_COLUMNS)} FROM claims LIMIT 0")

    def _check_existing(self, readonly: bool) -> None:
        """Refuse (and close) a database of another program or of another schema version.

        Another program's database holds tables but no fastinit ``schema_version``
        (a table named ``meta`` included); a new database (an empty file) holds
        no tables, and is filled unless ``readonly``.
        """
        tables = {
            name
            for (name,) in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        version = None
        if "meta" in tables:
            query = "SELECT value FROM meta WHERE name = 'schema_version'"
            version = self.conn.execute(query).fetchone()
        if version is not None and str(version[0]) == str(SCHEMA_VERSION):
            self._check_columns(tables)
            return
        if not tables and not readonly:
            return
        self.conn.close()
        if version is not None:
            raise ValueError(
                f"db: {self.path} has schema version {version[0]}, expected {SCHEMA_VERSION}"
            )
        if not tables:  # read-only: nothing to fill it with
            raise ValueError(f"db: {self.path} is not a fastinit results database (it is empty)")
        raise ValueError(  # another program's database: leave it alone
            f"db: {self.path} is not a fastinit results database (it holds the tables "
            f"{', '.join(sorted(tables))}); choose another file"
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
        """``{key: status}`` of recorded runs: :meth:`recorded` without the attempts.

        Parameters
        ----------
        keys : iterable of str, optional
            As for :meth:`recorded`.

        Returns
        -------
        dict
        """
        return {key: status for key, (status, _) in self.recorded(keys).items()}

    def recorded(self, keys: Iterable[str] | None = None) -> dict[str, tuple[str, int]]:
        """The status and attempts of recorded runs, in one read.

        Parameters
        ----------
        keys : iterable of str, optional
            Only these keys (default: every run).

        Returns
        -------
        dict
            ``{key: (status, attempts)}`` (``attempts``: times the run was recorded).

        Raises
        ------
        ValueError
            Naming the database, when its runs cannot be read (a damaged file).
        """
        _check_keys(keys)
        with self.reading():
            rows = self.conn.execute("SELECT key, status, attempts FROM runs").fetchall()
        found = {key: (status, attempts) for key, status, attempts in rows}
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
        retry_failed = check_bool(retry_failed, "retry_failed")
        return done_keys(self.statuses(keys), retry_failed=retry_failed)

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

        Raises
        ------
        ValueError
            A run stored in another shape than :meth:`record` writes (another
            program's row, an edited one): naming the database, the run's key and
            the column.
        """
        for name, value in (("experiment", experiment), ("sweep", sweep)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name}: expected a str or None, got {type(value).__name__}")
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
            try:
                _decode(row)
            except ValueError as e:
                raise ValueError(f"db: {self.path}: run {row['key']!r}: {e}") from None
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

    def claims(
        self, keys: Iterable[str] | None = None, *, live: bool = False
    ) -> dict[str, dict[str, Any]]:
        """The runs claimed now (by live sweeps, or stale claims not yet taken over).

        Parameters
        ----------
        keys : iterable of str, optional
            Only these keys (default: every claim).
        live : bool
            Only the claims of live claimants (leave out the stale ones, which
            the next sweep takes over).

        Returns
        -------
        dict
            ``{key: {"host", "pid", "token", "started", "lease"}}``; empty for a
            database made before the table existed, opened read-only.
        """
        live = check_bool(live, "live")
        _check_keys(keys)
        if not self._has_claims:
            return {}
        if live:
            now = time.time()
            found = self.claims(keys)
            return {k: c for k, c in found.items() if not _stale(c, now)}
        query = f"SELECT key, {', '.join(_CLAIM_COLUMNS)} FROM claims"
        if keys is None:
            rows = self.conn.execute(query).fetchall()
        else:  # one lookup by primary key each: the table may hold many claims
            query += " WHERE key = ?"
            rows = [row for key in keys for row in self.conn.execute(query, (key,))]
        return {key: dict(zip(_CLAIM_COLUMNS, rest, strict=True)) for key, *rest in rows}

    # ------------------------------------------------------------------------- writing
    def claim(self, key: str, claimant: Claimant, seen: int = 0) -> str:
        """Claim a run before it starts, unless it is recorded or another live sweep holds it.

        One ``BEGIN IMMEDIATE`` transaction: of two sweeps claiming one run at
        once, one claims it, the other finds it claimed.

        Parameters
        ----------
        key : str
            The configuration key.
        claimant : Claimant
            This sweep.
        seen : int
            The run's ``attempts`` when this sweep listed its runs (:meth:`recorded`;
            0: unrecorded then).  A run recorded failed since (more attempts) was
            run by another sweep meanwhile, and counts as recorded; a failed run as
            it was seen is claimed (``--retry-failed`` lists those).

        Returns
        -------
        str
            ``"claimed"`` (now ``claimant``'s: unclaimed, claimed by ``claimant``
            already, or a stale claim taken over), ``"recorded"`` (recorded ok or
            diverged, or failed since it was seen: nothing to run) or ``"busy"``
            (another live claimant's).
        """
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            state = self._claim(key, claimant, seen)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()  # never left holding the write lock
            raise
        return state

    def _claim(self, key: str, claimant: Claimant, seen: int) -> str:
        status, attempts, *claim = self.conn.execute(_CLAIM_STATE, (key,)).fetchone()
        if status in ("ok", "diverged") or (status == "failed" and attempts != seen):
            return "recorded"
        now = time.time()
        held = dict(zip(_CLAIM_COLUMNS, claim, strict=True)) if claim[0] is not None else None
        if held is not None and held["token"] != claimant.token and not _stale(held, now):
            return "busy"
        self.conn.execute(
            "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?)",
            (key, claimant.host, claimant.pid, claimant.token, now, now),
        )
        return "claimed"

    def release(self, claimant: Claimant) -> None:
        """Drop every claim of ``claimant`` (a sweep that stops), and commit.

        Parameters
        ----------
        claimant : Claimant
            Whose claims.
        """
        with self.conn:
            self.conn.execute("DELETE FROM claims WHERE token = ?", (claimant.token,))

    def record(
        self,
        key: str,
        config: dict[str, Any],
        result: dict[str, Any],
        sweep: str | None = None,
        *,
        keep_done: bool = False,
        claimant: Claimant | None = None,
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
        claimant : Claimant, optional
            Release this claimant's claim of the run in the same transaction
            (another claimant's claim stays).

        Returns
        -------
        bool
            Whether the row was written (False: ``keep_done`` kept the row there).
        """
        if not isinstance(key, str):
            raise TypeError(f"key: expected a str (a configuration key), got {type(key).__name__}")
        keep_done = check_bool(keep_done, "keep_done")
        metrics = json_safe(result.get("metrics") or {})
        curves = json_safe(result.get("curves") or {})
        try:  # as rows() reads it back: a run it would refuse is not written
            _check_shape(config, metrics, curves)
        except ValueError as e:
            raise ValueError(f"run {key!r}: {e}") from None
        values = (
            key,
            config["experiment"],
            sweep,
            _dumps_config(config),
            result["status"],
            _dumps_safe(metrics),
            _dumps_safe(curves),
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
            written = cursor.rowcount > 0
            if claimant is not None:
                self.conn.execute(
                    "DELETE FROM claims WHERE key = ? AND token = ?", (key, claimant.token)
                )
        return written


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    """A connection to the database; ``readonly``: one that changes no run.

    Where this user can write the file and its directory, a read-only store is an
    ordinary connection with ``PRAGMA query_only``: closing it checkpoints and
    removes the ``-wal`` and ``-shm`` files as a sweep's does (SQLite's ``mode=ro``
    left them, owned by whoever read).  Elsewhere it is ``mode=ro``, which SQLite
    reads a WAL database with only where its ``-wal`` and ``-shm`` files are there,
    or as immutable: a database closed cleanly (no ``-wal`` file) holds every run
    in the file itself, and no sweep of this user can write it there.  A ``-wal``
    file without its ``-shm`` there is a ValueError that says what to do.
    """
    writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    if not readonly or writable:
        conn = sqlite3.connect(path, timeout=30)
        if readonly:
            conn.execute("PRAGMA query_only = ON")
        return conn
    uri = read_only_uri(path.absolute())
    conn = sqlite3.connect(uri, uri=True, timeout=30)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        conn.close()
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        if not os.access(path.parent, os.W_OK) and wal.exists() and not shm.exists():
            raise ValueError(  # SQLite's own words: "unable to open database file"
                f"db: {path} cannot be read here: a sweep left runs in {wal.name} (WAL mode) "
                f"and there is no {shm.name} beside it, which SQLite must create to read them, "
                f"in {path.parent}, which this user cannot write; make that folder writable, "
                f"or copy {path.name} and {wal.name} together into a writable folder and read "
                "the copy"
            ) from None
        if os.access(path.parent, os.W_OK) or wal.exists():
            raise
        conn = sqlite3.connect(f"{uri}&immutable=1", uri=True, timeout=30)
    return conn


def read_only_uri(path: PurePath) -> str:
    """SQLite's read-only URI of an absolute ``path`` (``?``, ``#``, ``%`` quoted).

    Parameters
    ----------
    path : pathlib.PurePath
        An absolute path (POSIX or Windows: a drive, or a ``\\\\server\\share`` share).

    Returns
    -------
    str
        ``file:///...?mode=ro``; a network share's host goes into the path
        (``file:////server/share/...``): SQLite refuses a URI authority.
    """
    uri = path.as_uri()
    if uri.startswith("file://") and not uri.startswith("file:///"):
        uri = "file:////" + uri[len("file://") :]
    return f"{uri}?mode=ro"


def _dumps_config(config: dict[str, Any]) -> str:
    from fastinit.sweep.spec import canonical_json

    return canonical_json(config)
