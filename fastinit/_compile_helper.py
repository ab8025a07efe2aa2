"""A second process that fills numba's cache while the first fit compiles.

numba compiles one function at a time per process (one global lock), so a
first :func:`fastinit.train.fit_many` on an empty cache keeps one core busy for
seconds while the other idles.  Everything a run calls is compiled separately
and called by address (:mod:`fastinit._native`), so the work splits cleanly:
when the cache lacks the dense kernels of the run's dtype, :func:`start`
spawns ``python -m fastinit._compile_helper DTYPE``, which compiles
:func:`fastinit.dense.ops_table` (matrix product, forward and backward passes)
and saves it to the cache; this process meanwhile compiles the activation,
loss and optimizer kernels, the training loop and the minibatch sampler, then
waits for the helper and loads its share from the cache.  Empty cache, a ReLU
network with SGD on a loaded 2-core host: the first ``fit`` took 4.1-5.0 s
instead of 6.1-7.6 s.  The helper starts up in ~0.7 s, then compiles the
dense kernels; the sampler (~0.8 s) is compiled here: in the helper, this
process waited 0.5-2.2 s for it after compiling the training loop.

The compiled code is the same either way (the cache holds what a single process
would have compiled; two processes saving at once are made safe by
:mod:`fastinit._cache`), so results do not depend on whether a helper ran.  A
helper that fails, is killed or is missing leaves its share uncompiled, and
this process compiles it as before; an interrupted fit kills its helper; a
helper whose parent was killed finishes its few seconds of compilation and
exits, and one that outlives ``_TIMEOUT`` (a compilation that hangs, with no
parent left to kill it) ends itself (:func:`exit_after`).  No helper is started when the cache
already holds the dense kernels, with fewer than two usable cores, when numba
has no usable cache, in a frozen application (its executable would run the
application again, not the helper), from a sweep's pool workers (they already fill every
core), or with ``FASTINIT_COMPILE_HELPER`` set to ``0``, ``false``, ``no`` or
``off`` (any case) in the environment; unset or empty, it is on.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import threading
from typing import Any

import fastinit
from fastinit._system import available_cores

__all__ = ["ENV", "Helper", "enabled", "exit_after", "helper_env", "main", "start"]

ENV = "FASTINIT_COMPILE_HELPER"
_TIMEOUT = 300.0  # seconds; past this the helper is killed and its share compiled here
_CHECKED: set[str] = set()  # dtypes whose cache this process has looked at
_OFF = frozenset({"0", "false", "no", "off"})


def enabled() -> bool:
    """Whether ``FASTINIT_COMPILE_HELPER`` allows a helper.

    Returns
    -------
    bool
        False for ``0``, ``false``, ``no`` or ``off`` (any case, surrounding
        blanks ignored); True when unset, empty or anything else.
    """
    return os.environ.get(ENV, "").strip().lower() not in _OFF


class Helper:
    """A running helper process (:func:`start`).

    Attributes
    ----------
    process : subprocess.Popen
    """

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    def wait(self) -> bool:
        """Wait for the helper to finish (killing it past a timeout).

        Returns
        -------
        bool
            Whether it compiled its share (exit status 0).
        """
        try:
            return self.process.wait(timeout=_TIMEOUT) == 0
        except subprocess.TimeoutExpired:
            self.close()
            return False

    def close(self) -> None:
        """Kill the helper if it still runs (an interrupted fit); reap it."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _in_cache(function: Any, sig: Any) -> bool:
    """Whether numba's cache holds ``function`` compiled for ``sig`` (True: no cache to fill)."""
    dispatcher = function.dispatcher
    try:
        index = dispatcher._cache._cache_file._load_index()
        magic = dispatcher.targetctx.codegen().magic_tuple()
    except Exception:  # no usable cache (NullCache), or a numba without these internals
        return True
    return any(key[0] == sig and key[1] == magic for key in index)


def helper_env() -> dict[str, str]:
    """The helper's environment: this one, no helper of its own, and this fastinit.

    The directory holding the imported ``fastinit`` goes first on ``PYTHONPATH``
    (a source checkout imported from a script's ``sys.path``), unless it is a
    site-packages directory, which the same interpreter searches anyway: put
    first, it would shadow the user's own ``PYTHONPATH`` for every package.

    Returns
    -------
    dict of str
    """
    env = dict(os.environ, **{ENV: "0"})
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastinit.__file__)))
    try:
        dirs = [*site.getsitepackages(), site.getusersitepackages()]
    except AttributeError:  # an old virtualenv's site module
        dirs = []
    sites = {os.path.abspath(p) for p in dirs}
    if root not in sites:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def start(dtype_name: str) -> Helper | None:
    """Start a helper for a run of ``dtype_name`` if the cache lacks its dense kernels.

    Parameters
    ----------
    dtype_name : str
        ``"float32"`` or ``"float64"``.

    Returns
    -------
    Helper or None
        None where a helper would not help (see the module docstring).
    """
    from fastinit import dense

    if dtype_name in _CHECKED:  # once per process and dtype: later fits find the kernels
        return None
    _CHECKED.add(dtype_name)
    # a frozen application's executable (PyInstaller and the like) runs the application
    # itself, not ``-m fastinit._compile_helper``
    if (
        not enabled()
        or not sys.executable
        or getattr(sys, "frozen", False)
        or available_cores() < 2
    ):
        return None
    if _in_cache(dense.backward_net, dense.backward_signature(dtype_name)):
        return None
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "fastinit._compile_helper", dtype_name],
            env=helper_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        return None
    return Helper(process)


def exit_after(seconds: float, status: int = 3) -> threading.Timer:
    """End this process with ``status`` after ``seconds``, whatever it is doing.

    The helper's own timeout: its parent kills it past ``_TIMEOUT``, but a
    parent that was killed first cannot.  A cache file it was writing is then
    left incomplete, which :mod:`fastinit._cache` reads as a cache miss.

    Parameters
    ----------
    seconds : float
        Time from now.
    status : int, default 3
        The exit status.

    Returns
    -------
    threading.Timer
        The started daemon timer (``cancel()`` stops it).
    """
    timer = threading.Timer(seconds, os._exit, args=(status,))
    timer.daemon = True
    timer.start()
    return timer


def main(argv: list[str], timeout: float | None = _TIMEOUT) -> int:
    """The helper: compile (or load) the dense kernels of a dtype into the cache.

    Parameters
    ----------
    argv : list of str
        ``[dtype_name]``.
    timeout : float or None
        Seconds after which this process ends itself (:func:`exit_after`, armed
        first); None arms nothing (a caller that is not the helper process).

    Returns
    -------
    int
        Exit status (0: done).
    """
    (dtype_name,) = argv
    if timeout is not None:
        exit_after(timeout)
    from fastinit import dense

    dense.ops_table(dtype_name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
