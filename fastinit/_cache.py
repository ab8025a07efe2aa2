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

It also makes a damaged cache a cache miss rather than an error.  numba
unpickles the index and data files unguarded, so one truncated or garbled file
(a full disk, a crash or power loss before the file reached the disk, a
half-copied cache directory) made every later process that loads or saves that
function fail with ``UnpicklingError``/``EOFError``, until the file was deleted
by hand.  With :func:`load_index` and :func:`load` an index that cannot be
unpickled reads as empty and a data file that cannot be unpickled as missing:
the function is compiled again, and its save replaces the damaged file.

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

With a numba whose cache classes lack the methods used here, nothing is
replaced.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import warnings
from collections.abc import Iterator
from typing import Any

try:  # POSIX
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

__all__ = ["LOCK_NAME", "install", "load", "load_index", "locked_save"]

LOCK_NAME = "fastinit-save.lock"
_NEEDED = ("load", "_load_index", "_load_data", "_save_index", "_save_data", "_data_name")
_NUMBA: dict[str, Any] = {}  # numba's own methods that install() replaced
_WARNED: set[str] = set()  # the warnings given ("locator", "save"): once per process each


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
        overloads = self._load_index()
        name = overloads.get(key)
        if name is None:
            existing = set(overloads.values())
            name = next(n for n in map(self._data_name, itertools.count(1)) if n not in existing)
        self._save_data(name, data)
        if overloads.get(key) != name:
            overloads[key] = name
            self._save_index(overloads)


def load_index(self: Any) -> dict:
    """``IndexDataCacheFile._load_index``; an index that cannot be unpickled reads as empty.

    Parameters
    ----------
    self : numba.core.caching.IndexDataCacheFile
        One function's cache files.

    Returns
    -------
    dict
        Index key -> data file name; empty (as numba's own for an index of
        another numba version) where the file is truncated or garbled.  An
        error reading the file (``OSError``) still propagates.
    """
    try:
        return _NUMBA["_load_index"](self)
    except OSError:
        raise
    except Exception:  # UnpicklingError, EOFError, ValueError, ... from a damaged file
        return {}


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
        index lacks it or its data file is missing, truncated or garbled.
    """
    name = self._load_index().get(key)
    if name is None:
        return None
    try:
        return self._load_data(name)
    except Exception:  # removed meanwhile (numba's own case, OSError) or damaged
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


def _warn_once(kind: str, message: str) -> None:
    """A :class:`RuntimeWarning` pointing at the user's line, once per process and ``kind``."""
    if kind not in _WARNED:
        _WARNED.add(kind)
        warnings.warn(message, RuntimeWarning, stacklevel=_caller_level())


def install() -> bool:
    """Replace numba's cache save and load by :func:`locked_save`, :func:`load`
    and :func:`load_index`, its ``enable_caching`` by one that lets
    fastinit's functions go uncached where no cache directory is writable, and
    its ``save_overload`` by one that lets their saves fail (idempotent).

    Returns
    -------
    bool
        Whether numba's save is :func:`locked_save` now (False with a numba
        whose cache classes lack the methods it uses).
    """
    from numba.core import caching
    from numba.core.ccallback import CFunc
    from numba.core.dispatcher import Dispatcher

    for dispatcher, attribute in ((Dispatcher, "py_func"), (CFunc, "_pyfunc")):
        method = getattr(dispatcher, "enable_caching", None)
        if method is not None and not getattr(method, "fastinit", False):
            dispatcher.enable_caching = _cache_or_none(method, attribute)
    method = getattr(caching.Cache, "save_overload", None)
    if method is not None and not getattr(method, "fastinit", False):
        caching.Cache.save_overload = _save_or_warn(method)
    cls = caching.IndexDataCacheFile
    if cls.save is locked_save:
        return True
    if not all(hasattr(cls, name) for name in _NEEDED):
        return False
    _NUMBA["_load_index"] = cls._load_index
    cls.save, cls.load, cls._load_index = locked_save, load, load_index
    return True


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside fastinit, numba and the import
    machinery: the user's line that imported fastinit (or called it).

    ``warnings.warn`` does not count the import system's frames
    (``importlib._bootstrap``) in a ``stacklevel`` above 1; neither does this.
    """
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None:
        name = frame.f_code.co_filename
        internal = "importlib" in name and "_bootstrap" in name
        if not (internal or name.startswith(here) or f"{os.sep}numba{os.sep}" in name):
            return level
        frame = frame.f_back
        level += 0 if internal else 1
    return 1
