"""Files written whole or not at all: a temporary file beside the target, renamed over it.

One mechanism for every file fastinit writes in place of another: the
experiments' JSON and CSV (:mod:`fastinit.experiments._common`), the cached MNIST
copies (:mod:`fastinit.datasets`) and model files (:meth:`fastinit.MLP.save`).
A reader sees the old file or the new one, never half of one, and a write that
fails or is interrupted (Ctrl-C included) leaves the old file as it was.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import glob
import hashlib
import os
import re
import secrets
import signal
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def host() -> str:
    """This machine's name as it may appear in a file name (temporary files carry it).

    Returns
    -------
    str
        The host name, characters other than letters, digits and dots as ``_``.
    """
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def abandoned(directory: Path, prefix: str, suffix: str = "") -> list[Path]:
    """Entries ``<prefix><pid>-<any><suffix>`` of ``directory`` whose process is gone.

    Parameters
    ----------
    directory : pathlib.Path
        Where to look.
    prefix, suffix : str
        What the names start (up to the process id) and end with; the prefix
        should carry :func:`host`, as process ids are only known on this machine.

    Returns
    -------
    list of pathlib.Path
        The entries whose process no longer runs (a live writer's stay).
    """
    found = []
    for p in directory.glob(f"{glob.escape(prefix)}*-*{suffix}"):
        pid = p.name.removeprefix(prefix).split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            found.append(p)
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (another user's counts).

    POSIX: ``os.kill(pid, 0)``.  Windows asks ``OpenProcess`` and
    ``WaitForSingleObject`` instead: there ``os.kill(pid, 0)`` would send the
    process a Ctrl-C (``signal.CTRL_C_EVENT`` is 0).

    Parameters
    ----------
    pid : int
        A process id.

    Returns
    -------
    bool
    """
    if os.name == "nt":
        return _windows_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: alive
        return True
    return True


_SYNCHRONIZE = 0x00100000  # access right: wait on the process handle
_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
_WAIT_OBJECT_0 = 0  # WaitForSingleObject: the handle is signaled, the process has ended
_ERROR_ACCESS_DENIED = 5


@functools.cache
def _kernel32() -> Any:
    """Windows' kernel32 with the signatures :func:`_windows_alive` calls (a HANDLE is 64-bit)."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
    kernel32.WaitForSingleObject.restype = wintypes.DWORD
    kernel32.WaitForSingleObject.argtypes = [wintypes.HANDLE, wintypes.DWORD]
    kernel32.CloseHandle.restype = wintypes.BOOL
    kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
    return kernel32


def _windows_alive(pid: int) -> bool:
    """Windows: whether the process's handle is not yet signaled (it ends signaled).

    Not ``GetExitCodeProcess``: its ``STILL_ACTIVE`` (259) is also a legal exit code.
    A wait that fails (``WAIT_FAILED``) counts as alive: a live claimant taken
    for dead would have its runs computed twice; a dead one taken for alive
    only waits for its lease to expire.
    """
    import ctypes

    kernel32 = _kernel32()
    access = _PROCESS_QUERY_LIMITED_INFORMATION | _SYNCHRONIZE
    handle = kernel32.OpenProcess(access, False, pid)
    if not handle:
        return ctypes.get_last_error() == _ERROR_ACCESS_DENIED  # type: ignore[attr-defined]
    try:
        return kernel32.WaitForSingleObject(handle, 0) != _WAIT_OBJECT_0
    finally:
        kernel32.CloseHandle(handle)


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str], *, keep_mode: bool = False) -> Iterator[IO[bytes]]:
    """A binary file to write that replaces ``path`` when the block ends without an exception.

    The temporary file, ``.<name>.<host>-<pid>-<random>.tmp`` beside the target
    (a name over 100 bytes cut, with a digest of the whole), is this
    call's own (two writers never share one); it is removed whatever stops the
    block, and one left by a killed process of this host is removed by the
    next write of ``path``.  Its data is flushed to the disk (``fsync``) before
    the rename, and the rename after it, so that a power loss or a crash of
    the system leaves the old file or the new one, not an empty one.  A
    symlink is written through (its target is replaced, the link stays).

    Parameters
    ----------
    path : str or os.PathLike
        The file to replace (or create).
    keep_mode : bool
        Give the new file an existing file's permissions; otherwise, as for any
        new file, ``0o666`` less the umask.

    Yields
    ------
    binary file object
        Open for writing; closed before the rename.

    Raises
    ------
    OSError
        Naming ``path`` (not the temporary file) when the file cannot be created
        (IsADirectoryError where ``path`` is a directory) or written (a full disk:
        ENOSPC, raised by a write in the block or at the end).
    """
    asked = os.fspath(path)
    target = Path(os.path.realpath(asked))
    if target.is_dir():  # refused before writing, naming the path, not the temporary file
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), asked)
    prefix = f".{_short(target.name)}.{host()}-"
    for old in abandoned(target.parent, prefix, ".tmp"):
        old.unlink(missing_ok=True)
    tmp = target.with_name(f"{prefix}{os.getpid()}-{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:  # the file made is removed on any way out, a Ctrl-C just after os.open included
        try:
            fd = os.open(tmp, flags, 0o666)
        except OSError as err:
            raise type(err)(err.errno, err.strerror, asked) from None
        with os.fdopen(fd, "wb") as f:
            if keep_mode:
                with contextlib.suppress(OSError):
                    os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
            yield f
            f.flush()
            _sync(f.fileno(), asked)  # the data on disk before a name points at it
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is None or os.fspath(err.filename) == os.fspath(tmp):  # a write's
            raise type(err)(err.errno, err.strerror, asked) from None  # (ENOSPC): named
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_directory(target.parent)


def _short(name: str) -> str:
    """``name`` as the temporary file's prefix carries it: names longer than 100 bytes
    (as the file system stores them) are cut to at most 91, at a character, and a
    digest of the whole, so that the temporary name stays within the 255 bytes a
    file system allows."""
    raw = os.fsencode(name)
    if len(raw) <= 100:
        return name
    kept, size = "", 0
    for char in name:
        size += len(os.fsencode(char))
        if size > 91:
            break
        kept += char
    return f"{kept}~{hashlib.sha256(raw).hexdigest()[:8]}"


def _sync(fd: int, name: str) -> None:
    """``os.fsync(fd)``, skipped where the file system cannot sync (EINVAL,
    ENOTSUP: some network and FUSE mounts); a failed write (EIO, ENOSPC) raises,
    naming ``name``."""
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise type(err)(err.errno, err.strerror, name) from None


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where a directory
    cannot be opened or synced, as on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike[str], data: Any) -> None:
    """Replace ``path`` with ``data`` through :func:`replacing`.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    data : bytes-like
        Its new contents.
    """
    with replacing(path) as f:
        f.write(data)


def read_npz(path: str | os.PathLike[str], problem: str, keys: Any = None) -> dict[str, Any]:
    """The arrays of an ``.npz`` archive, read without pickles.

    Parameters
    ----------
    path : str or os.PathLike
        The archive.
    problem : str
        The start of the error message, naming the argument (``"--weights F:
        expected ..."``); the reason follows in parentheses.
    keys : container of str, optional
        Only the members with these names are read (others are never
        decompressed); default every member.

    Returns
    -------
    dict of str to numpy.ndarray

    Raises
    ------
    ValueError
        ``problem (why)``: a missing or unreadable file, one that is not an
        ``.npz`` archive (a text file, a ``.npy`` array, pickled objects), or a
        damaged, encrypted or oversized member.
    """
    import zipfile
    import zlib

    import numpy as np

    # what zipfile and NumPy raise for damage beyond a bad archive: an unknown compression
    # method (NotImplementedError), an encrypted member (RuntimeError), a header claiming
    # more elements than memory holds (MemoryError)
    unreadable = (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
                  RuntimeError, MemoryError)  # fmt: skip
    try:
        data = np.load(path, allow_pickle=False)
    except unreadable as err:
        raise ValueError(f"{problem} ({err})") from None
    except ValueError:  # np.load's reading of a file that is no .npy/.npz: "pickled data"
        data = None
    if not isinstance(data, np.lib.npyio.NpzFile):  # also a .npy array
        raise ValueError(f"{problem} (not a NumPy .npz archive)")
    try:
        with data:
            return {key: data[key] for key in data.files if keys is None or key in keys}
    except (*unreadable, ValueError) as err:
        raise ValueError(f"{problem} ({err})") from None  # zlib: a damaged compressed member


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold a SIGINT (Ctrl-C) that arrives inside the block; raise it after the block.

    For steps that must not be split: moving a run's files into place together,
    committing a sweep's row.  The held Ctrl-C then does what the handler in force
    before the block does: Python's default raises KeyboardInterrupt, ``SIG_DFL``
    ends the process.  Outside the main thread (where Python delivers no signal),
    under ``SIG_IGN``, or under a handler installed outside Python (which could not
    be put back) the block runs as it is.  A signal handler that calls
    :func:`hold_in_block` (the command line's SIGTERM) is held too, whatever SIGINT's
    handler, and delivered again after the block.

    Yields
    ------
    None
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    hold_ctrl_c = previous is not None and previous != signal.SIG_IGN
    received: list[int] = []
    _HELD.append(received)
    if hold_ctrl_c:
        signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        if hold_ctrl_c:
            signal.signal(signal.SIGINT, previous)
        _HELD.pop()
    for signum in sorted(set(received) - {signal.SIGINT}):
        signal.raise_signal(signum)  # to its handler, outside the block now
    if signal.SIGINT not in received:
        return
    if callable(previous):
        previous(signal.SIGINT, None)  # the default handler raises KeyboardInterrupt
    else:
        signal.raise_signal(signal.SIGINT)  # SIG_DFL: the process ends, as it would have


_HELD: list[list[int]] = []  # the signals held by each deferred_interrupt block running


def hold_in_block(signum: int) -> bool:
    """From a signal handler: hold ``signum`` until the innermost :func:`deferred_interrupt`
    block running ends, which delivers it again (to the handler then in force).

    Parameters
    ----------
    signum : int
        The signal received.

    Returns
    -------
    bool
        Whether it is held (False outside every such block: handle it now).
    """
    if not _HELD:
        return False
    _HELD[-1].append(signum)
    return True


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[list[int]]:
    """While the block runs, SIGTERM and SIGHUP stop it as a Ctrl-C does.

    SIGTERM: ``kill``, ``timeout``, a batch system's stop; SIGHUP: the terminal
    closed, an ssh connection dropped (``nohup`` ignores it: then it stays
    ignored).  The handler raises KeyboardInterrupt (held, as a Ctrl-C is, inside
    a :func:`deferred_interrupt` block), so the work stopped cleans up as it does
    after a Ctrl-C: a sweep records the results that had arrived and releases
    its claims.  Only in the main thread and over a signal's default action (a
    caller's own handler, or ``SIG_IGN``, stays in force); the previous handlers
    are put back after the block.

    Yields
    ------
    list of int
        The signals received (:data:`STOP_SIGNALS`), for the caller to tell them
        from a Ctrl-C.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def stop(signum: int, frame: Any) -> None:
        if hold_in_block(signum):  # a commit, files moved into place: stopped after it
            return
        received.append(signum)
        raise KeyboardInterrupt  # whatever SIGINT's handler (ignored in a background job)

    ours = [s for s in STOP_SIGNALS if signal.getsignal(s) == signal.SIG_DFL]
    previous = {s: signal.signal(s, stop) for s in ours}
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


#: The signals :func:`terminate_as_interrupt` handles as a Ctrl-C (SIGHUP where it exists)
STOP_SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)
