"""numba's on-disk cache, made safe for processes that compile at the same time.

numba keeps one index file per function (``<function>.nbi``: key -> data file)
and numbers the data files (``<function>.<n>.nbc``).  Its save reads the
index, takes the first free number, writes the index, then the data, with no
lock (numba issue #4807, open).  Two processes saving different keys of one
function at once (say, two sweep workers compiling the tanh and the ReLU
kernel, closures of the same function, on a fresh install) can both take
number 1; when the index of one and the data of the other land last, the
index maps one key to the other's machine code, and every later process that
loads it runs the wrong kernel, silently (reproduced in
``tests/test_cache.py``).  A reader can also find a new index entry before its
data file is written, and load a stale file of that number left by an older
version of the source.

:func:`install` (run when :mod:`fastinit._native` or :mod:`fastinit._fastmath`
is imported, before anything compiles) replaces ``IndexDataCacheFile.save`` with one that
holds an exclusive lock on ``fastinit-save.lock`` in the cache directory
(``fcntl.flock``, released by the system when the process ends however it
ends, so no stale lock outlives a crash; ``msvcrt.locking`` on Windows,
unlocked before the file is closed) from reading the index to
writing it, and writes the data file *before* the index entry that names it.
It applies to every numba CPU function of the process (a save takes
milliseconds; nothing else changes); numba-cuda's ``@cuda.jit(cache=True)``
kernels save through numba-cuda's own cache class, which is not replaced (each
of fastinit's is compiled for one signature, so no two saves of one kernel
race for the same index).  Where the lock file cannot be opened, the save goes
on unlocked, as numba's own does.

It also makes a damaged cache a cache miss rather than an error or wrong code.
numba unpickles the index and data files unguarded, so one truncated or garbled
file (a full disk, a crash or power loss before the file reached the disk, a
half-copied cache directory, a bad disk block) made every later process that
loads or saves that function fail with ``UnpicklingError``/``EOFError``, or,
where the damaged file still unpickled, fail in LLVM (``Invalid record``) or
load other machine code and run it (one changed constant in a data file: the
function returned 5.0 instead of 3.0), until the file was deleted by hand.
:func:`save_index` and :func:`save_data` end each file with the SHA-256 digest
of its pickle, a data file's taken with the ``repr`` of its index key (``_SEAL``;
numba's own reader stops at the end of the pickle, so a process without fastinit
still reads them; two data files swapped, or one copied in from another cache
where its number held another key, passed a digest of the pickle alone, and a
ReLU model ran the tanh kernel), and :func:`load_index` and
:func:`load` read an index that cannot be unpickled or does not match its
digest as empty and such a data file as missing: the function is compiled
again, and its save replaces the damaged file.  A file with no digest (cut
short, or saved by an older fastinit) is read so too.  Only fastinit's own
functions are sealed (:data:`SEALED_PACKAGES`, marked when their dispatcher
enables caching): a user's ``cache=True`` functions keep numba's format, which
processes without fastinit share (sealed, their index read as empty here, and
rewritten by a plain numba process, would be compiled again by each in turn);
their damaged files are still a cache miss where they cannot be unpickled.  An index of
fastinit's own functions that cannot be read at all (``OSError``: another
user's file in a shared cache, a bad disk block) is a cache miss too, with one
:class:`RuntimeWarning` per process (:func:`load`).

numba writes each file as ``<file>.tmp.<16 hex digits>`` and renames it into
place, removing the temporary file when the write fails with an exception; a
writer killed in between (SIGKILL: :mod:`fastinit._compile_helper` kills the
helper of an interrupted fit) or interrupted (KeyboardInterrupt is not an
``Exception``) leaves it, and numba never removes it: harmless, but they
accumulate.  The first save into a directory in a process, under the lock,
removes those of numba's temporary files there that are older than
``STALE_SECONDS`` (an hour: a write takes milliseconds, and a clock that is off
between the hosts sharing a network cache must not make a file being written
look abandoned).

And where numba finds no writable cache directory at all (``NUMBA_CACHE_DIR``,
the source tree and the user's cache directory all read-only, as on a
read-only container or AWS Lambda), numba's ``cache=True`` raises
``RuntimeError: cannot cache function ...: no locator available`` when the
function is defined, which made ``import fastinit.train`` fail; fastinit's own
functions (not others) are then compiled without a cache instead, with one
:class:`RuntimeWarning` per process.  Likewise a save of one of fastinit's
functions that fails with ``OSError`` (a full disk, a disk quota: numba
raised it from the call that compiled the function, which failed the fit) is
skipped with one :class:`RuntimeWarning` per process: the function was
compiled and runs; nothing half-written is left (the data file goes first,
and numba removes its temporary file), so the next process compiles it again.

And a Ctrl-C is not lost in LLVM's object-cache callbacks.  numba's code
reaches the cache through two Python functions that LLVM calls through ctypes
while it compiles a module (``finalize_object``): one receives the object code
(to be saved), the other hands cached object code back (when loading).  A
KeyboardInterrupt raised inside one of them is printed by ctypes as "Exception
ignored" and dropped, so a Ctrl-C at that moment, during a first fit's
compilation, became ``RuntimeError: no compiled object yet`` from numba's save
(the object code never arrived), or, while loading from a warm cache, a crash
(SIGSEGV: the function was compiled from an empty module and called at address
0), or was ignored.  :func:`ctrl_c_kept` runs each ``finalize_object`` with a
``sys.unraisablehook`` that notes such a KeyboardInterrupt and raises it when
LLVM returns, before anything uses or saves the module: the fit stops with a
KeyboardInterrupt, as at any other moment of its compilation, and nothing is
saved.  Python drops a KeyboardInterrupt raised in a weakref callback the same
way (numba's ``WeakValueDictionary`` caches: 1 of 13 Ctrl-C, at 1 s intervals
through a first fit, was ignored and the fit ran to the end), so each
compilation (``Dispatcher.compile``, ``CFunc.compile``) runs in it too, and
raises such a Ctrl-C when it ends.  Other dropped exceptions still go to the
previous hook.  Only the main thread (where Python raises a Ctrl-C) swaps the
hook.

With a numba whose cache classes lack the methods used here, nothing is
replaced.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import os
import pickle
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

try:  # POSIX
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

__all__ = [
    "LOCK_NAME",
    "STALE_SECONDS",
    "ctrl_c_kept",
    "install",
    "load",
    "load_data",
    "load_index",
    "locked_save",
    "save_data",
    "save_index",
]

LOCK_NAME = "fastinit-save.lock"
STALE_SECONDS = 3600.0  # a temporary file of numba's this old was left by a killed writer
_TEMPORARY = re.compile(r"\.nb[ci]\.tmp\.[0-9a-f]{16}$")  # numba's _open_for_write
_SWEPT: set[str] = set()  # directories whose stale temporary files this process removed
_NEEDED = (  # of IndexDataCacheFile (a probe instance: some are set by its __init__)
    "load", "_load_index", "_load_data", "_save_index", "_save_data", "_data_name", "_dump",
    "_open_for_write", "_data_path", "_cache_path", "_index_path", "_source_stamp", "_version",
)  # fmt: skip
_SEAL = b"\0fastinit sha256\0"  # after a file's pickle: this, then the pickle's SHA-256 digest
_NUMBA: dict[str, Any] = {}  # numba's own methods that install() replaced
# top-level packages whose functions' cache files are sealed (others keep numba's format)
SEALED_PACKAGES: set[str] = {"fastinit"}
_WARNED: set[str] = set()  # the warnings given ("locator", "save", "load"): once per process each


@contextlib.contextmanager
def _exclusive(directory: str) -> Iterator[None]:
    """Hold an exclusive lock on ``directory/LOCK_NAME``; unlocked if that fails.

    The file is made writable by everyone who can write the directory (the
    umask would leave another user's saves, in a shared cache, unable to open
    it); ``flock`` also locks a descriptor opened read-only, the fallback.
    """
    path = os.path.join(directory, LOCK_NAME)
    fd = None
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
        try:
            fd = os.open(path, flags, 0o666)
        except OSError:
            continue
        if flags & os.O_CREAT and hasattr(os, "fchmod"):
            with contextlib.suppress(OSError):  # not the owner: the owner's save did it
                os.fchmod(fd, 0o666)
        break
    windows_lock = False
    try:
        if fd is not None:
            with contextlib.suppress(OSError):  # e.g. msvcrt gives up after 10 s
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                else:
                    msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                    windows_lock = True
        yield
    finally:
        if windows_lock:  # Windows frees a lock left at close only "eventually": unlock now
            with contextlib.suppress(OSError):
                os.lseek(fd, 0, os.SEEK_SET)  # the byte locked, at the start
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        if fd is not None:
            os.close(fd)  # releases flock's lock


def locked_save(self: Any, key: Any, data: Any) -> None:
    """``IndexDataCacheFile.save``, under the directory's lock, data before index.

    Parameters
    ----------
    self : numba.core.caching.IndexDataCacheFile
        One function's cache files.
    key : tuple
        The overload's index key.
    data : object
        What numba stores for it.
    """
    with _exclusive(self._cache_path):
        _remove_stale_temporaries(self._cache_path)
        overloads = self._load_index()
        name = overloads.get(key)
        if name is None:
            existing = set(overloads.values())
            name = next(n for n in map(self._data_name, itertools.count(1)) if n not in existing)
        self._save_data(name, data, key)  # save_data: sealed with its key
        if overloads.get(key) != name:
            overloads[key] = name
            self._save_index(overloads)


def _remove_stale_temporaries(directory: str) -> None:
    """Remove numba's temporary files older than ``STALE_SECONDS`` from ``directory``
    (once per process and directory; a file that cannot be removed stays)."""
    if directory in _SWEPT:
        return
    _SWEPT.add(directory)
    cutoff = time.time() - STALE_SECONDS
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if _TEMPORARY.search(entry.name):
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)


def _sealed(payload: bytes, key: Any = None) -> bytes:
    """``payload`` followed by ``_SEAL`` and the SHA-256 digest of ``key`` (a data
    file's index key, by its ``repr``; None for an index) and ``payload``."""
    return payload + _SEAL + _digest(payload, key)


def _unsealed(raw: bytes, key: Any = None) -> bytes | None:
    """The pickle in a file's bytes ``raw``; None where they do not end with the seal
    (:func:`_sealed`) or it is not the digest of ``key`` and the pickle (a data file
    saved for another key: two files swapped, or one copied in from another cache)."""
    end = len(raw) - len(_SEAL) - hashlib.sha256().digest_size
    if end < 0 or raw[end : end + len(_SEAL)] != _SEAL:
        return None
    payload = raw[:end]
    return payload if _digest(payload, key) == raw[end + len(_SEAL) :] else None


def _digest(payload: bytes, key: Any) -> bytes:
    """SHA-256 of ``key``'s ``repr`` (numba's index key: types, target, bytecode hashes,
    the same text in every process) and ``payload``; of ``payload`` alone for None."""
    salt = b"" if key is None else repr(key).encode() + b"\0"
    return hashlib.sha256(salt + payload).digest()


def _sealed_files(files: Any) -> bool:
    """Whether ``files`` (an ``IndexDataCacheFile``) are a sealed function's
    (:data:`SEALED_PACKAGES`; marked so when its dispatcher enables caching)."""
    return getattr(files, "fastinit_sealed", False)


def _seal_if_ours(cache: Any, function: Any) -> None:
    """Mark the cache files of ``function`` (its dispatcher's ``_cache``) sealed if its
    package is in :data:`SEALED_PACKAGES`."""
    module = str(getattr(function, "__module__", None) or "")
    files = getattr(cache, "_cache_file", None)
    if files is not None and module.split(".")[0] in SEALED_PACKAGES:
        files.fastinit_sealed = True


def save_index(self: Any, overloads: dict) -> None:
    """``IndexDataCacheFile._save_index``, the file sealed with its digest (:func:`_sealed`).

    Parameters
    ----------
    self : numba.core.caching.IndexDataCacheFile
        One function's cache files.
    overloads : dict
        Index key -> data file name.
    """
    if not _sealed_files(self):
        return _NUMBA["_save_index"](self, overloads)
    payload = self._dump((self._source_stamp, overloads))
    with self._open_for_write(self._index_path) as f:
        pickle.dump(self._version, f, protocol=-1)
        f.write(_sealed(payload))


def save_data(self: Any, name: str, data: Any, key: Any = None) -> None:
    """``IndexDataCacheFile._save_data``, the file sealed with its digest (:func:`_sealed`).

    Parameters
    ----------
    self : numba.core.caching.IndexDataCacheFile
        One function's cache files.
    name : str
        The data file's name.
    data : object
        What numba stores.
    key : tuple, optional
        The index key it is stored for (:func:`locked_save`), sealed with it.
    """
    if not _sealed_files(self):
        return _NUMBA["_save_data"](self, name, data)
    with self._open_for_write(self._data_path(name)) as f:
        f.write(_sealed(self._dump(data), key))


def load_data(self: Any, name: str, key: Any = None) -> Any:
    """``IndexDataCacheFile._load_data``; a file that does not match its digest raises.

    Parameters
    ----------
    self : numba.core.caching.IndexDataCacheFile
        One function's cache files.
    name : str
        The data file's name.
    key : tuple, optional
        The index key it is loaded for (:func:`load`): a file sealed for another
        key does not match.

    Returns
    -------
    object
        What numba stored.

    Raises
    ------
    pickle.UnpicklingError
        Where the file has no digest or does not match it (or cannot be unpickled).
    """
    if not _sealed_files(self):
        return _NUMBA["_load_data"](self, name)
    with open(self._data_path(name), "rb") as f:
        payload = _unsealed(f.read(), key)
    if payload is None:
        raise pickle.UnpicklingError(f"{name}: no digest, or not the one of its contents")
    return pickle.loads(payload)


def load_index(self: Any) -> dict:
    """``IndexDataCacheFile._load_index``; a damaged index reads as empty.

    Parameters
    ----------
    self : numba.core.caching.IndexDataCacheFile
        One function's cache files.

    Returns
    -------
    dict
        Index key -> data file name; empty (as numba's own for a missing
        index, one of another numba version or of an older source) where the
        file is truncated, garbled, or has no digest or not its own.  An error
        reading the file (``OSError``) still propagates.
    """
    try:
        if not _sealed_files(self):
            return _NUMBA["_load_index"](self)
        with open(self._index_path, "rb") as f:
            version = pickle.load(f)
            payload = _unsealed(f.read())
        if version != self._version or payload is None:
            return {}
        stamp, overloads = pickle.loads(payload)
    except FileNotFoundError:
        return {}
    except OSError:
        raise
    except Exception:  # UnpicklingError, EOFError, ValueError, ... from a damaged file
        return {}
    return overloads if stamp == self._source_stamp else {}


def load(self: Any, key: Any) -> Any:
    """``IndexDataCacheFile.load``; a data file that cannot be unpickled is a cache miss.

    Parameters
    ----------
    self : numba.core.caching.IndexDataCacheFile
        One function's cache files.
    key : tuple
        The overload's index key.

    Returns
    -------
    object or None
        What numba stored for ``key``; None (compile it again) where the
        index lacks it or its data file is missing, truncated, garbled, or
        has no digest or not its own; also, for fastinit's own (sealed)
        functions, where the index cannot be read (``OSError``: another
        user's file in a shared cache, a bad disk block), with one
        :class:`RuntimeWarning` per process.  A save still fails on such an
        index rather than replace it.
    """
    try:
        name = self._load_index().get(key)
    except OSError as error:
        if not _sealed_files(self):
            raise
        _warn_once(
            "load",
            f"fastinit: numba could not read its cache index {self._index_path} ({error}); "
            "the process compiles its functions again instead of loading them.",
        )
        return None
    if name is None:
        return None
    try:
        return self._load_data(name, key) if _sealed_files(self) else self._load_data(name)
    except Exception:  # removed meanwhile (numba's own case, OSError), damaged or another key's
        return None


def _fastinits(function: Any) -> bool:
    """Whether ``function`` (a Python function) is defined in fastinit."""
    return str(getattr(function, "__module__", None) or "").split(".")[0] == "fastinit"


def _cache_or_none(enable_caching: Any, attribute: str) -> Any:
    """``enable_caching`` of a numba dispatcher class that leaves fastinit's own
    functions uncached, with a warning, where numba finds no cache directory."""

    def enable(self: Any) -> None:
        try:
            enable_caching(self)
            _seal_if_ours(getattr(self, "_cache", None), getattr(self, attribute, None))
        except RuntimeError as error:
            if "no locator available" not in str(error) or not _fastinits(getattr(self, attribute)):
                raise
            from numba.core.caching import NullCache

            self._cache = NullCache()
            _warn_once(
                "locator",
                f"fastinit: numba found no writable cache directory ({error}); "
                "compiling without a cache, so every process compiles again. "
                "Set NUMBA_CACHE_DIR to a writable directory to cache.",
            )

    enable.fastinit = True  # type: ignore[attr-defined]
    return enable


def _save_or_warn(save_overload: Any) -> Any:
    """``Cache.save_overload`` of numba that lets a save of fastinit's own functions
    fail (a full disk, a quota) with a warning: the function was compiled and runs."""

    def save(self: Any, sig: Any, data: Any) -> None:
        try:
            save_overload(self, sig, data)
        except OSError as error:
            if not _fastinits(getattr(self, "_py_func", None)):
                raise
            _warn_once(
                "save",
                f"fastinit: numba could not save compiled code to its cache ({error}); "
                "it runs, but the next process compiles it again.",
            )

    save.fastinit = True  # type: ignore[attr-defined]
    return save


@contextlib.contextmanager
def ctrl_c_kept() -> Iterator[None]:
    """Raise, when the block ends, a KeyboardInterrupt that Python dropped within it.

    Python cannot raise an exception out of a ctypes callback, a weakref
    callback or ``__del__``: it passes it to ``sys.unraisablehook`` (which
    prints "Exception ignored ...") and goes on.  Here a KeyboardInterrupt
    dropped so in this thread is kept and raised at the end of the block, also
    in place of another exception the block raises after it (numba's "no
    compiled object yet" follows a Ctrl-C dropped in LLVM's callback); any
    other goes to the hook that was in place, as does everything once the
    block ended (if something else replaced the hook meanwhile, this one stays
    in its chain).  Only in the main thread, where Python raises a Ctrl-C (so
    no two threads swap the hook at once); elsewhere the block just runs.

    Yields
    ------
    None

    Raises
    ------
    KeyboardInterrupt
        The first one dropped within the block.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    dropped: list[BaseException] = []
    open_ = [True]  # False once the block ended: a hook left in a chain passes all on
    previous = sys.unraisablehook
    thread = threading.get_ident()

    def keep(unraisable: Any) -> None:
        ours = open_[0] and threading.get_ident() == thread
        if ours and isinstance(unraisable.exc_value, KeyboardInterrupt):
            dropped.append(unraisable.exc_value)
        else:
            previous(unraisable)

    sys.unraisablehook = keep
    try:
        yield
    except BaseException as error:  # a Ctrl-C dropped first caused it ("no compiled object")
        if dropped and not isinstance(error, KeyboardInterrupt):
            raise dropped[0] from error
        raise
    finally:
        open_[0] = False
        if sys.unraisablehook is keep:
            sys.unraisablehook = previous
    if dropped:
        raise dropped[0]


def _keeping_ctrl_c(method: Any) -> Any:
    """``method`` (of numba) run in :func:`ctrl_c_kept`."""

    @functools.wraps(method)
    def kept(self: Any, *args: Any, **kwargs: Any) -> Any:
        with ctrl_c_kept():
            return method(self, *args, **kwargs)

    kept.fastinit = True  # type: ignore[attr-defined]
    return kept


def _warn_once(kind: str, message: str) -> None:
    """A :class:`RuntimeWarning` pointing at the user's line, once per process and ``kind``."""
    if kind not in _WARNED:
        _WARNED.add(kind)
        warnings.warn(message, RuntimeWarning, stacklevel=_caller_level())


def install() -> bool:
    """Patch numba's CPU cache and code generation (idempotent).

    ``IndexDataCacheFile``'s save and load become :func:`locked_save` and
    :func:`load`, its file reads and writes :func:`load_index`,
    :func:`load_data`, :func:`save_index` and :func:`save_data` (files sealed
    with their digest); ``enable_caching`` lets fastinit's functions go
    uncached where no cache directory is writable, ``save_overload`` lets
    their saves fail; LLVM's compilation of a module, and each function's
    compilation (``Dispatcher.compile``, ``CFunc.compile``), run in
    :func:`ctrl_c_kept`.

    Returns
    -------
    bool
        Whether numba's save is :func:`locked_save` now (False with a numba
        whose cache classes lack the methods it uses).
    """
    from numba.core import caching, codegen
    from numba.core.ccallback import CFunc
    from numba.core.dispatcher import Dispatcher

    for dispatcher, attribute in ((Dispatcher, "py_func"), (CFunc, "_pyfunc")):
        method = getattr(dispatcher, "enable_caching", None)
        if method is not None and not getattr(method, "fastinit", False):
            dispatcher.enable_caching = _cache_or_none(method, attribute)
    method = getattr(caching.Cache, "save_overload", None)
    if method is not None and not getattr(method, "fastinit", False):
        caching.Cache.save_overload = _save_or_warn(method)
    # LLVM's compilation of a module (its object-cache callbacks), and each compilation
    for owner, name in ((codegen.JITCodeLibrary, "_finalize_specific"), (Dispatcher, "compile"),
                        (CFunc, "compile")):  # fmt: skip
        method = getattr(owner, name, None)
        if method is not None and not getattr(method, "fastinit", False):
            setattr(owner, name, _keeping_ctrl_c(method))
    cls = caching.IndexDataCacheFile
    if cls.save is locked_save:
        return True
    try:  # its __init__ sets paths and the stamp only; no file is touched
        probe = cls(os.curdir, "probe", None)
    except TypeError:
        return False
    if not all(hasattr(probe, name) for name in _NEEDED):
        return False
    _NUMBA.update(_load_index=cls._load_index, _load_data=cls._load_data,
                  _save_index=cls._save_index, _save_data=cls._save_data)  # fmt: skip
    cls.save, cls.load, cls._load_index, cls._load_data = locked_save, load, load_index, load_data
    cls._save_index, cls._save_data = save_index, save_data
    return True


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside fastinit, numba and the import
    machinery: the user's line that imported fastinit (or called it).

    ``warnings.warn`` does not count the import system's frames
    (``importlib._bootstrap``) in a ``stacklevel`` above 1; neither does this.
    ``importlib.import_module`` (fastinit's lazy attributes import through it) is
    counted, and passed over.
    """
    import sys

    here = os.path.dirname(os.path.abspath(__file__)) + os.sep  # not <here>_notes/ beside it
    import_module = os.path.join("importlib", "__init__.py")  # by its end: co_filename is
    frame, level = sys._getframe(1), 1  # the path the .pyc was compiled at
    while frame is not None:
        name = frame.f_code.co_filename
        internal = "importlib" in name and "_bootstrap" in name
        machinery = internal or name.endswith(import_module)
        if not (machinery or name.startswith(here) or f"{os.sep}numba{os.sep}" in name):
            return level
        frame = frame.f_back
        level += 0 if internal else 1
    return 1
