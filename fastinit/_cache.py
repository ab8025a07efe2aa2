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
(``fcntl.flock``; ``msvcrt.locking`` on Windows) from reading the index to
writing it, and writes the data file *before* the index entry that names it.
It applies to every numba CPU function of the process (a save takes
milliseconds; nothing else changes); numba-cuda's ``@cuda.jit(cache=True)``
kernels save through numba-cuda's own cache class, which is not replaced (each
of fastinit's is compiled for one signature, so no two saves of one kernel
race for the same index).  Where the lock file cannot be opened, the save goes
on unlocked, as numba's own does.  With a numba whose cache classes lack
the methods used here, nothing is replaced.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from typing import Any

try:  # POSIX
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

__all__ = ["LOCK_NAME", "install", "locked_save"]

LOCK_NAME = "fastinit-save.lock"
_NEEDED = ("_load_index", "_save_index", "_save_data", "_data_name")


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
    try:
        if fd is not None:
            with contextlib.suppress(OSError):  # e.g. msvcrt gives up after 10 s
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                else:
                    msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


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


def install() -> bool:
    """Replace numba's cache save by :func:`locked_save` (idempotent).

    Returns
    -------
    bool
        Whether numba's save is :func:`locked_save` now (False with a numba
        whose cache classes lack the methods it uses).
    """
    from numba.core import caching

    cls = caching.IndexDataCacheFile
    if cls.save is locked_save:
        return True
    if not all(hasattr(cls, name) for name in _NEEDED):
        return False
    cls.save = locked_save
    return True
