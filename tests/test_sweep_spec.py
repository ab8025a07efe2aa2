"""SPEC files as users save them, and results databases where users keep them."""

import os
import sqlite3

import pytest

from fastinit.cli import main
from fastinit.sweep.spec import load_spec
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
    assert f"db: {tmp_path / 'none.sqlite'} does not exist" in capsys.readouterr().err
