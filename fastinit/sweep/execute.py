"""Running a sweep: executors (in-process, local process pool, Dask) and the driver loop.

The parent process (the one running ``fastinit sweep``) is the only one that
touches the database: workers receive a plain configuration dict, run
:func:`fastinit.sweep.runners.execute` and send a plain result dict back; the
parent commits each result as it arrives.

Executors
---------
``serial``
    Every run in the sweep process itself, one after the other.
``local`` (default)
    A :class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start
    method (never ``fork``: the parent may already run numba or BLAS threads),
    one worker per core or ``--workers`` (at most one per run to do, and no more than the
    memory available holds the SPEC's largest run at once: fewer, at least
    one, said on stderr; :func:`fastinit.sweep.spec.workers_in_memory`).  Each
    worker is started with ``NUMBA_NUM_THREADS`` = cores // workers and
    ``OPENBLAS_NUM_THREADS`` = ``OMP_NUM_THREADS`` =
    ``MKL_NUM_THREADS`` = 1 in its environment (set in the parent while the
    workers are spawned, so in force when a worker first imports NumPy, which
    unpickling its initializer does; the initializer sets them again and lowers
    numba's and BLAS's counts where already loaded), so the workers do not
    oversubscribe the cores.
    Workers live for the whole sweep and share numba's on-disk cache, so a
    kernel compiles (or loads from the cache) once per worker, not per run.
    Workers ignore SIGINT and SIGHUP (the parent handles them) and exit on their
    own when the parent dies, even by SIGKILL.
``dask``
    ``--dask ADDRESS`` submits each run as a task to an existing Dask
    distributed scheduler; ``--dask local`` starts a ``LocalCluster`` on the
    loopback interface (worker processes, one thread each, no dashboard; one
    per core unless ``--workers`` says, and, as a local pool, no more than the
    memory available holds of the SPEC's largest run at once; they ignore
    SIGINT and SIGHUP, as the pool's: :func:`dask_setup`).
    Tasks call the installed package's functions, so workers need fastinit
    installed, nothing else.

Failures
--------
A run that raises is recorded as ``failed`` with its traceback, and the sweep
goes on.  A pool worker that dies (segfault, ``os._exit``, the OOM killer)
breaks the whole :class:`ProcessPoolExecutor`; the driver then starts a fresh
pool and **re-queues the runs that were in flight once, each run alone**: a
run that breaks the pool again while it is the only one in flight is recorded
as ``failed`` ("worker process died ..."), the others complete normally.  With
Dask, the scheduler reschedules the task of a lost worker itself and gives up
after ``distributed.scheduler.allowed-failures`` attempts (KilledWorker),
which is recorded as ``failed``.

Interruption
------------
Every finished run is committed before the next result is handled.  A sweep
that stops (Ctrl-C; SIGTERM, which ``fastinit sweep`` and :func:`run_sweep` in the
main thread handle as a Ctrl-C; an error) first records every result that has
arrived: those the executor holds and those of the runs in flight that finished meanwhile (each
executor's ``arrived``), so it loses only the runs still in flight (SIGKILL
may also lose the few results not yet committed).  Rerunning the same command
runs exactly the missing ones.  A results file that can take no more rows (a
full disk) stops the sweep with an OSError naming it; the runs recorded
before are kept.

Concurrent sweeps
-----------------
Several sweeps may write one database at once (the same or overlapping SPECs,
from two terminals or from machines sharing the file system): they share the
work and compute no run twice.  Just before a run is handed to the executor
(a pool worker, or a Dask task submitted, up to ``8 x workers`` ahead) the
sweep claims it in the database's ``claims`` table
(:meth:`fastinit.sweep.store.Store.claim`, one ``BEGIN IMMEDIATE``
transaction): a run recorded ``ok`` or ``diverged`` meanwhile, or ``failed``
since the sweep listed it (``--retry-failed`` reruns a failure once, not once
per sweep), is not run (``taken`` in the summary), a run another live sweep
claimed is skipped.  A
thread renews the lease of the sweep's claims every 30 s
(:data:`fastinit.sweep.store.RENEW_SECONDS`); a claim is stale, and taken
over, when its sweep's process is gone (this host: its pid no longer runs) or
its lease is older than :data:`fastinit.sweep.store.LEASE_SECONDS` (300 s; any
host).  A claim with this host and this process's pid but made by another
sweep (an earlier process that had the pid: a container restarted with the
same host name runs its sweep as pid 1 again) is stale once its lease is older
than 150 s (``LEASE_SECONDS / 2``, five renewals missed; a renewal that finds
the database locked is retried within seconds): a live sweep with that host
and pid, of this process or of a container running at the same time, renews it.  After a pass
over its runs, the sweep offers the skipped ones again (a claim gone stale
meanwhile is taken over and run) until a pass claims nothing; those still held
are counted in the summary (``running_elsewhere``: the other sweep will record
them).  A claim is released in the transaction that records its run (ok,
diverged or failed), and every claim of the sweep when it stops (an error,
Ctrl-C; a SIGKILL leaves them to go stale).  A run that two sweeps computed
all the same (a stale claim taken over from a sweep that was still alive, an
executor that does not ask ``skip``) keeps the first row recorded: the other's
result, a failure included, does not replace it.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import signal
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import fastinit
from fastinit._files import deferred_interrupt, terminate_as_interrupt
from fastinit._progress import TimeLeft, count, head, is_terminal, redraw, times, write
from fastinit._system import available_cores
from fastinit._validate import check_bool, check_int

__all__ = [
    "DaskExecutor",
    "PoolExecutor",
    "SerialExecutor",
    "SweepProgress",
    "SweepSummary",
    "available_cores",
    "make_executor",
    "run_sweep",
]

BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
Item = tuple[str, dict[str, Any]]  # (key, configuration)


def thread_env(numba_threads: int) -> dict[str, str]:
    """Environment of a worker: numba threads, one BLAS/OpenMP thread, no compile helper.

    Parameters
    ----------
    numba_threads : int
        Value of ``NUMBA_NUM_THREADS`` (at least 1).

    Returns
    -------
    dict
        ``NUMBA_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``,
        ``MKL_NUM_THREADS`` (all "1"), and ``FASTINIT_COMPILE_HELPER=0``: the
        workers already fill the cores, a second compiling process each would
        only compete with them (:mod:`fastinit._compile_helper`).
    """
    env = {var: "1" for var in BLAS_VARS}
    env["NUMBA_NUM_THREADS"] = str(max(1, int(numba_threads)))
    env["FASTINIT_COMPILE_HELPER"] = "0"
    return env


def configure_threads(numba_threads: int) -> None:
    """Limit this process's threads; call before NumPy and numba are imported.

    Sets the variables of :func:`thread_env`.  If numba is already imported it
    lowers its thread count with ``numba.set_num_threads``; if NumPy is already
    imported and ``threadpoolctl`` is installed, it limits BLAS to one thread.

    Parameters
    ----------
    numba_threads : int
        Threads for numba's parallel kernels.
    """
    os.environ.update(thread_env(numba_threads))
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(max(1, min(int(numba_threads), numba.config.NUMBA_NUM_THREADS)))
    if "numpy" in sys.modules:
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=1, user_api="blas")


def _watch_parent() -> None:
    """Exit this worker process when the parent process dies (even by SIGKILL)."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is None:
        return
    parent_pid = os.getppid()

    def watch() -> None:
        parent.join()  # returns when the parent's end of the spawn pipe closes
        while os.getppid() == parent_pid:  # a closed pipe alone is not proof: poll
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="fastinit-parent-watch", daemon=True).start()


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (once a process) with SIGHUP blocked, a
    mask it keeps, before the sweep's worker processes (which ignore SIGHUP themselves:
    :func:`_init_worker`, :func:`dask_setup`).

    A closing terminal sends SIGHUP to its whole process group: the sweep handles
    it as a Ctrl-C (:func:`fastinit._files.terminate_as_interrupt`) and stops its
    workers, but the workers and the tracker died of it at once (the tracker
    relaunched, with a traceback per semaphore).  A SIGHUP to this process
    meanwhile is delivered once the tracker runs.  Not around the workers' start:
    a ``forkserver`` started there would keep the mask for every later process.
    """
    hup = getattr(signal, "SIGHUP", None)
    if hup is None or os.name != "posix" or not hasattr(signal, "pthread_sigmask"):
        return  # Windows: no SIGHUP, and no resource tracker
    from multiprocessing import resource_tracker

    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {hup})
    try:
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _init_worker(numba_threads: int) -> None:
    """Initializer of every pool worker (runs before any task)."""
    configure_threads(numba_threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):  # a closing terminal's: the sweep's to handle, as Ctrl-C
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _watch_parent()
    from fastinit.sweep import runners

    runners._IN_WORKER = True


def _warm() -> int:
    """A no-op task that makes a fresh worker import the runners; returns its pid."""
    from fastinit.sweep import runners  # noqa: F401

    return os.getpid()


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block (for spawning workers)."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def failed_result(reason: str) -> dict[str, Any]:
    """A result record for a run that produced no result of its own.

    Parameters
    ----------
    reason : str
        Why (stored in the ``error`` column).

    Returns
    -------
    dict
        Shaped like :func:`fastinit.sweep.runners.execute`'s result, status ``failed``.
    """
    now = time.time()
    return {
        "status": "failed",
        "metrics": {},
        "curves": {},
        "error": reason,
        "started": None,
        "finished": now,
        "wall_time": None,
        "worker": None,
        "version": fastinit.__version__,
    }


def _finished(future: Any) -> bool:
    """Whether a pool's future holds a result (it ended without an exception)."""
    return future.done() and not future.cancelled() and future.exception() is None


def _died_twice(why: str) -> dict[str, Any]:
    """The failed record of a run that broke the pool twice, the second time alone."""
    return failed_result(
        f"worker process died while running this configuration, twice, the second time "
        f"alone ({why})"
    )


def _hand_over(held: collections.deque[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, Any]]:
    """Yield the ``(key, result)`` pairs of ``held`` in order, each dropped from it only when
    the consumer asks for the next: a consumer stopped meanwhile (Ctrl-C while it records
    one) finds that one and those after it still there (the executors' ``arrived``)."""
    while held:
        yield held[0]
        held.popleft()


# ----------------------------------------------------------------------------- executors
class SerialExecutor:
    """Runs every configuration in this process, one after the other."""

    name = "serial"

    def __init__(self) -> None:
        self.workers = 1
        self.startup_seconds = 0.0
        self.restarts = 0
        self.requeued = 0
        self._held: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()

    def start(self) -> None:
        """Nothing to start."""

    def results(
        self, items: Sequence[Item], skip: Callable[[str], bool] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(key, result)`` for each item, in order.

        Parameters
        ----------
        items : sequence of (str, dict)
            ``(key, configuration)`` pairs.
        skip : callable, optional
            Asked with each key just before its run starts; True drops the run
            (another sweep of the database recorded or claimed it meanwhile).

        Yields
        ------
        (str, dict)
            The key and :func:`fastinit.sweep.runners.execute`'s result.
        """
        from fastinit.sweep import runners

        self._held.clear()
        for key, config in items:
            if skip is None or not skip(key):
                self._held.append((key, runners.execute(config)))
                yield from _hand_over(self._held)

    def arrived(self) -> list[tuple[str, dict[str, Any]]]:
        """The result that ``results`` yielded last, while its consumer has not asked for
        the next (it may not be recorded yet: the driver records what it has not).

        Returns
        -------
        list of (str, dict)
        """
        return list(self._held)

    def abort(self) -> None:
        """Nothing to stop."""

    def close(self) -> None:
        """Nothing to release."""

    def describe(self) -> str:
        """One line for the sweep summary.

        Returns
        -------
        str
            ``"in-process, sequential"``.
        """
        return "in-process, sequential"


class PoolExecutor:
    """A local pool of ``spawn`` worker processes (see the module docstring).

    Parameters
    ----------
    workers : int, optional
        Worker processes (default: one per core).
    numba_threads : int, optional
        numba threads per worker (default: cores // workers, at least 1).
    start_method : {'spawn', 'forkserver'}
        How workers are started.
    """

    name = "local"

    def __init__(
        self,
        workers: int | None = None,
        numba_threads: int | None = None,
        start_method: str = "spawn",
    ) -> None:
        cores = available_cores()
        self.workers = max(1, int(workers or cores))
        self.numba_threads = max(1, int(numba_threads or cores // self.workers))
        if start_method not in ("spawn", "forkserver"):
            raise ValueError(
                f"start_method: expected 'spawn' or 'forkserver', got {start_method!r}"
            )
        self.start_method = start_method
        self.startup_seconds = 0.0
        self.restarts = 0
        self.requeued = 0
        self._pool: Any = None
        self._in_flight: dict[Any, tuple[Item, bool]] = {}  # future -> (item, ran alone)
        self._held: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()

    def start(self) -> None:
        """Start the workers and wait until each has imported the runners."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        if self._pool is not None:
            return
        t0 = time.perf_counter()
        _start_resource_tracker()
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context(self.start_method),
            initializer=_init_worker,
            initargs=(self.numba_threads,),
        )
        try:
            with _environ(thread_env(self.numba_threads)):
                warm = [pool.submit(_warm) for _ in range(self.workers)]
            for f in warm:
                f.result()
        except BrokenProcessPool as e:
            pool.shutdown(wait=False, cancel_futures=True)
            raise RuntimeError(f"the worker processes failed to start: {e}") from e
        except BaseException:
            self._kill(pool)
            raise
        self._pool = pool
        self.startup_seconds += time.perf_counter() - t0

    def results(
        self, items: Sequence[Item], skip: Callable[[str], bool] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(key, result)`` as runs finish (in completion order).

        At most ``workers`` runs are in flight.  When a worker dies, the runs in
        flight are re-queued once to run alone on a fresh pool; one that kills
        its worker again is yielded as failed.

        Parameters
        ----------
        items : sequence of (str, dict)
            ``(key, configuration)`` pairs.
        skip : callable, optional
            Asked with each key just before it is submitted; True drops the run.

        Yields
        ------
        (str, dict)
            The key and :func:`fastinit.sweep.runners.execute`'s result.
        """
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        from fastinit.sweep.runners import execute

        pending = collections.deque(items)
        suspects: collections.deque[Item] = collections.deque()
        in_flight, held = self._in_flight, self._held
        in_flight.clear()
        held.clear()
        self.start()
        while pending or suspects or in_flight:
            broken = False
            try:
                while suspects and not in_flight:  # a suspect runs alone
                    item = suspects[0]
                    in_flight[self._pool.submit(execute, item[1])] = (item, True)
                    suspects.popleft()
                while not suspects and pending and len(in_flight) < self.workers:
                    item = pending[0]
                    if skip is not None and skip(item[0]):
                        pending.popleft()
                        continue
                    in_flight[self._pool.submit(execute, item[1])] = (item, False)
                    pending.popleft()
            except BrokenProcessPool:
                broken = True  # the pool broke since the last wait; the item stays queued
            if not broken:  # every result arrived is held before the first is yielded
                done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                for future in done:
                    item, alone = in_flight[future]
                    try:
                        held.append((item[0], future.result()))
                    except BrokenProcessPool as e:
                        broken = True
                        if alone:
                            held.append((item[0], _died_twice(f"BrokenProcessPool: {e}")))
                        else:
                            suspects.append(item)
                            self.requeued += 1
                    del in_flight[future]
                yield from _hand_over(held)
            if broken:
                # the other runs in flight fail with BrokenProcessPool too, unless their
                # result arrived first
                wait(list(in_flight), timeout=30)
                for future, (item, alone) in list(in_flight.items()):
                    if _finished(future):
                        held.append((item[0], future.result()))
                    elif alone:
                        held.append((item[0], _died_twice("BrokenProcessPool")))
                    else:
                        suspects.append(item)
                        self.requeued += 1
                    del in_flight[future]
                yield from _hand_over(held)
                self._restart()

    def arrived(self) -> list[tuple[str, dict[str, Any]]]:
        """The results in hand that ``results`` has not handed over (or whose consumer
        stopped before asking for the next: it may not have recorded it), and those of
        the runs in flight that have finished since.

        Returns
        -------
        list of (str, dict)
            ``(key, result)`` pairs, one per key.
        """
        found = dict(self._held)
        for future, ((key, _), _alone) in list(self._in_flight.items()):
            if _finished(future):
                found.setdefault(key, future.result())
        return list(found.items())

    def _restart(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            self._kill(pool)
        self.restarts += 1
        self.start()

    @staticmethod
    def _kill(pool: Any) -> None:
        for p in list(getattr(pool, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                p.terminate()
        pool.shutdown(wait=False, cancel_futures=True)

    def abort(self) -> None:
        """Stop at once: terminate the workers, drop queued runs."""
        if self._pool is not None:
            self._kill(self._pool)
            self._pool = None

    def close(self) -> None:
        """Let the workers exit and wait for them."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def describe(self) -> str:
        """One line for the sweep summary.

        Returns
        -------
        str
            The worker count, the start method and the numba threads per worker.
        """
        return (
            f"local pool: {count(self.workers, self.start_method + ' worker')} x "
            f"{self.numba_threads} numba thread(s)"
        )


_CONFIGURED: list[int] = []


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, run as each worker of a ``--dask local`` cluster starts.

    A Ctrl-C in the terminal reaches every process of the sweep's process group,
    the cluster's workers included, which printed a KeyboardInterrupt traceback
    each: as the pool's workers, they ignore SIGINT (the sweep process handles
    it: it cancels the tasks and closes the cluster).

    Parameters
    ----------
    worker : distributed.Worker
        The worker starting (unused).
    """
    if threading.current_thread() is threading.main_thread():  # only there may it be set
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if hasattr(signal, "SIGHUP"):  # a closing terminal's, as the pool's workers
            signal.signal(signal.SIGHUP, signal.SIG_IGN)


def local_preloads(preload: Any, argv: Any) -> tuple[list[str], list[list[str]]]:
    """The preloads of a ``--dask local`` cluster's workers: the user's, then this module.

    Parameters
    ----------
    preload : str, list of str or None
        ``distributed.worker.preload`` as configured (Dask takes a string for one).
    argv : list of str, list of lists of str or None
        ``distributed.worker.preload-argv``: one list for every preload, or a list
        per preload.

    Returns
    -------
    names, argv : list of str, list of list of str
        The preloads with this module (:func:`dask_setup`) last, and their argument
        lists, one per preload (or empty, as configured: each gets none).
    """
    own = [] if not preload else [preload] if isinstance(preload, str) else list(preload)
    if not argv:
        return [*own, __name__], []
    per = [list(argv)] * len(own) if isinstance(argv[0], str) else [list(a) for a in argv]
    return [*own, __name__], [*per, []]


def _dask_task(config: dict[str, Any], numba_threads: int) -> dict[str, Any]:
    """The Dask task: configure this worker process once, then run the configuration."""
    from fastinit.sweep import runners

    if not _CONFIGURED:
        configure_threads(numba_threads)
        runners._IN_WORKER = True
        _CONFIGURED.append(numba_threads)
    return runners.execute(config)


class DaskExecutor:
    """Runs every configuration as a task on a Dask distributed cluster.

    Parameters
    ----------
    address : str
        A scheduler address (``tcp://host:8786``), or ``"local"`` to start a
        ``LocalCluster`` on 127.0.0.1 (worker processes, one thread each).
    workers : int, optional
        Workers of a local cluster (default: one per core).
    numba_threads : int, optional
        numba threads per worker (default: cores // workers for a local
        cluster, 1 for a remote one).
    """

    name = "dask"

    def __init__(
        self, address: str, workers: int | None = None, numba_threads: int | None = None
    ) -> None:
        if not isinstance(address, str) or not address:
            raise ValueError(f"dask: expected a scheduler address or 'local', got {address!r}")
        self.address = address
        cores = available_cores()
        self.workers = max(1, int(workers or cores))
        local = address == "local"
        self.numba_threads = max(1, int(numba_threads or (cores // self.workers if local else 1)))
        self.startup_seconds = 0.0
        self.restarts = 0
        self.requeued = 0
        self.client: Any = None
        self.cluster: Any = None
        self._futures: dict[Any, Item] = {}
        self._held: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()

    def start(self) -> None:
        """Connect (or start the local cluster) and wait for the workers."""
        if self.client is not None:
            return
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ValueError(
                "--dask needs the 'distributed' package: pip install 'fastinit[dask]'"
            ) from None
        t0 = time.perf_counter()
        if self.address == "local":
            import dask

            # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which turns
            # off glibc's dynamic mmap threshold: every NumPy temporary above 128 KiB is
            # then mmap-ed and page-faulted afresh (the depth runs took 1.8x longer);
            # each worker preloads this module: its dask_setup ignores SIGINT
            preload, argv = local_preloads(
                dask.config.get("distributed.worker.preload", None),
                dask.config.get("distributed.worker.preload-argv", None),
            )
            with dask.config.set(
                {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                 "distributed.worker.preload": preload,
                 "distributed.worker.preload-argv": argv}
            ):  # fmt: skip
                _start_resource_tracker()
                self.cluster = LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=None,
                    env=thread_env(self.numba_threads), silence_logs=50,
                )  # fmt: skip
            self.client = Client(self.cluster)
        else:
            try:
                self.client = Client(self.address, timeout=30)
            except (OSError, ValueError) as e:  # ValueError: a malformed address
                raise ValueError(
                    f"dask: cannot reach the scheduler at {self.address!r} ({e}); expected "
                    "a scheduler address such as tcp://host:8786, or 'local'"
                ) from e
        self.client.wait_for_workers(1, timeout=120)
        if self.cluster is not None:
            self.client.wait_for_workers(self.workers, timeout=120)
        self.workers = max(1, sum(self.client.nthreads().values()))
        self.client.run(_warm)
        self.startup_seconds += time.perf_counter() - t0

    def results(
        self, items: Sequence[Item], skip: Callable[[str], bool] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(key, result)`` as tasks finish.

        Up to ``8 x workers`` tasks are submitted ahead (the scheduler queues
        them); the results of the tasks finished since the last look are
        gathered in one call.

        Parameters
        ----------
        items : sequence of (str, dict)
            ``(key, configuration)`` pairs.
        skip : callable, optional
            Asked with each key just before it is submitted; True drops the run.

        Yields
        ------
        (str, dict)
            The key and the task's result (a failed record if the task was lost).
        """
        from distributed import as_completed

        self.start()
        self._held.clear()
        pending = collections.deque(items)
        window = max(8 * self.workers, 16)
        token = uuid.uuid4().hex[:8]
        ac = as_completed()

        def fill() -> None:
            while pending and len(self._futures) < window:
                key, config = pending.popleft()
                if skip is not None and skip(key):
                    continue
                future = self.client.submit(
                    _dask_task, config, self.numba_threads, key=f"fastinit-{key[:16]}-{token}",
                    pure=False,
                )  # fmt: skip
                self._futures[future] = (key, config)
                ac.add(future)

        fill()
        for batch in ac.batches():
            finished = [f for f in batch if f.status == "finished"]
            try:
                values = dict(zip(finished, self.client.gather(finished), strict=True))
            except Exception:  # a result lost with its worker: take them one by one
                values = {}
            for future in batch:  # every result of the batch is held before the first is yielded
                key, _ = self._futures[future]
                result = values.get(future)
                if result is None:
                    try:
                        result = future.result()
                    except Exception as e:  # KilledWorker, CommClosedError, ...
                        result = failed_result(f"dask: {type(e).__name__}: {e}")
                self._held.append((key, result))
                del self._futures[future]
                future.release()
            yield from _hand_over(self._held)
            fill()

    def arrived(self, timeout: float = 10.0) -> list[tuple[str, dict[str, Any]]]:
        """The results in hand that ``results`` has not handed over (or whose consumer
        stopped before asking for the next: it may not have recorded it), and those of
        the tasks submitted that have finished since (fetched within ``timeout`` s).

        Parameters
        ----------
        timeout : float
            Seconds to spend fetching the finished tasks' results, all together (a
            scheduler gone meanwhile gives none).

        Returns
        -------
        list of (str, dict)
            ``(key, result)`` pairs, one per key.
        """
        found = dict(self._held)
        deadline = time.monotonic() + timeout
        for future, (key, _) in list(self._futures.items()):
            left = deadline - time.monotonic()
            if future.status == "finished" and left > 0 and key not in found:
                with contextlib.suppress(Exception):
                    found[key] = future.result(timeout=left)
        return list(found.items())

    def abort(self) -> None:
        """Cancel the tasks in flight and disconnect (a local cluster is shut down)."""
        if self.client is not None and self._futures:
            with contextlib.suppress(Exception):
                self.client.cancel(list(self._futures))
        self._futures.clear()
        self.close()

    def close(self) -> None:
        """Disconnect; shut the local cluster down."""
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()
        self.client = self.cluster = None

    def describe(self) -> str:
        """One line for the sweep summary.

        Returns
        -------
        str
            The scheduler address (or the local cluster) and the worker count.
        """
        where = "LocalCluster on 127.0.0.1" if self.address == "local" else self.address
        return f"dask: {where}, {self.workers} worker thread(s)"


def make_executor(
    kind: str = "local", *, workers: int | None = None, dask: str | None = None
) -> SerialExecutor | PoolExecutor | DaskExecutor:
    """Build an executor (not started).

    Parameters
    ----------
    kind : {'local', 'serial', 'dask'}
        ``'dask'`` needs ``dask`` (an address or ``'local'``).
    workers : int, optional
        Worker processes (default: one per core); 0 runs in this process, so
        it is refused with ``dask``.
    dask : str, optional
        Scheduler address or ``'local'``; implies ``kind='dask'``.

    Returns
    -------
    SerialExecutor, PoolExecutor or DaskExecutor

    Raises
    ------
    TypeError
        ``workers`` is not an integer, ``kind`` no str, ``dask`` no str or None.
    ValueError
        ``workers`` is negative, or 0 with ``dask``; ``kind='dask'`` without
        ``dask``; an unknown ``kind``.
    """
    kind, workers, dask = _executor_arguments(kind, workers, dask, "kind")
    if dask is not None:
        return DaskExecutor(dask, workers)
    if kind == "serial" or workers == 0:
        return SerialExecutor()
    return PoolExecutor(workers or None)


def _executor_arguments(
    kind: Any, workers: Any, dask: Any, name: str
) -> tuple[str, int | None, str | None]:
    """:func:`make_executor`'s arguments checked (``name``: what the caller calls ``kind``)."""
    kind = _check_kind(kind, name)
    dask = _check_dask(dask)
    if workers is not None:
        workers = check_int(workers, "workers", low=0)
    if kind == "dask" and dask is None:
        raise ValueError(
            f"dask: expected a scheduler address or 'local' with {name}='dask', got None"
        )
    if dask is not None and workers == 0:  # 0 means in this process, which no Dask cluster is
        raise ValueError("workers: expected at least 1 with dask (0 runs in-process), got 0")
    return kind, workers, dask


def _check_kind(kind: Any, name: str) -> str:
    """``kind`` if it names an executor; else an error naming ``name`` (kind or executor)."""
    if not isinstance(kind, str):
        raise TypeError(f"{name}: expected 'local', 'serial' or 'dask', got {type(kind).__name__}")
    if kind not in ("local", "serial", "dask"):
        raise ValueError(f"{name}: expected 'local', 'serial' or 'dask', got {kind!r}")
    return kind


def _check_dask(dask: Any) -> str | None:
    """``dask`` if it is None or an address; else TypeError naming it."""
    if dask is not None and not isinstance(dask, str):
        raise TypeError(
            f"dask: expected a scheduler address (str) or 'local', got {type(dask).__name__}"
        )
    return dask


# ----------------------------------------------------------------------------- progress
class SweepProgress:
    """``sweep  42% |#####       | 21/50 ok 19 diverged 1 failed 1 [1:02<1:25]`` on stderr.

    Redrawn in place on a terminal, cut to its width; elsewhere (a pipe, a log
    file) a line at most every ``interval`` seconds and a last one at the end.
    The bar, the times and the estimate of the time left follow the rules of
    the fit's bar (:mod:`fastinit._progress`: :class:`~fastinit._progress.TimeLeft`,
    :func:`~fastinit._progress.duration`); the estimate starts once every worker
    has finished its first run (:meth:`restart_clock`).  Unlike the fit's bar it
    is drawn however short the sweep, and off a terminal it writes lines by time,
    not by tenths of the run: a sweep's runs differ in length, and a tenth of a
    long sweep could leave a log silent, its failures unseen, for an hour.

    Parameters
    ----------
    total : int
        Runs to do in this sweep.
    enabled : bool
        False draws nothing.
    stream : file, optional
        Default ``sys.stderr``.
    interval : float
        Seconds between lines when not on a terminal.
    width : int
        Characters of the bar between the ``|``.
    """

    def __init__(
        self,
        total: int,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        interval: float = 10.0,
        width: int = 24,
    ) -> None:
        self.total = max(int(total), 0)
        self.enabled = enabled and self.total > 0
        self.stream = stream
        self.interval = interval
        self.width = width
        self.counts = {"ok": 0, "diverged": 0, "failed": 0}
        self.start = time.perf_counter()
        self.left = TimeLeft()
        self._last = -math.inf
        self._logged = -1  # runs done at the last line off a terminal
        self._drawn = False
        self._shown = 0  # length of the line on screen

    @property
    def done(self) -> int:
        """Runs finished so far."""
        return sum(self.counts.values())

    def restart_clock(self, workers: int = 1) -> None:
        """Start the clock now (after the workers have started).

        Parameters
        ----------
        workers : int
            Runs that finish before the time left is estimated: each worker's
            first run, which compiles numba's kernels on an empty cache.
        """
        self.start = time.perf_counter()
        self.left = TimeLeft(warmup=workers)

    def update(self, status: str) -> None:
        """Count a finished run and redraw.

        Parameters
        ----------
        status : str
            The run's status: ``"ok"``, ``"diverged"`` or ``"failed"`` (another
            one gets a count of its own).
        """
        self.counts[status] = self.counts.get(status, 0) + 1
        self.left.update(time.perf_counter() - self.start, self.done)
        self.draw()

    def line(self) -> str:
        """The current progress line.

        Returns
        -------
        str
            Percentage, bar, runs done of the total, the count per status, and
            elapsed time and estimated time left (``?`` until every worker has
            finished a run and one more run has finished).
        """
        elapsed = time.perf_counter() - self.start
        left = self.left.seconds(elapsed, self.done, self.total)
        counts = " ".join(f"{k} {v}" for k, v in self.counts.items())
        return f"{head('sweep', self.done, self.total, self.width)} {counts} {times(elapsed, left)}"

    def draw(self, force: bool = False) -> None:
        """Redraw (rate-limited off a terminal).

        Parameters
        ----------
        force : bool
            Off a terminal, write a line even if the last one is less than
            ``interval`` seconds old.
        """
        if not self.enabled:
            return
        now = time.perf_counter()
        if is_terminal(self.stream):
            text, self._shown = redraw(self.line(), self._shown, self.stream)
            self._write(text)
            self._drawn = True
        elif force or now - self._last >= self.interval or self.done == self.total:
            self._write(self.line() + "\n")
            self._last = now
            self._logged = self.done

    def close(self) -> None:
        """End the line; off a terminal, log the runs done if the last line is behind
        (a sweep that stops early: Ctrl-C, an error)."""
        if self.enabled and self._drawn:
            self._write("\n")
        elif self.enabled and 0 <= self._logged < self.done:
            self.draw(force=True)
        self._drawn = False

    def _write(self, text: str) -> None:
        """Draw ``text``; a stream that cannot be written turns the bar off (the sweep goes on)."""
        if not write(self.stream, text):
            self.enabled = False


# ----------------------------------------------------------------------------- driver
@dataclass
class SweepSummary:
    """What a sweep did.

    Attributes
    ----------
    name : str
        The SPEC name.
    db : pathlib.Path
        The results database.
    total : int
        Runs in the SPEC.
    skipped : int
        Runs already recorded (not run again).
    counts : dict
        Runs done by this invocation, per status.
    requeued : int
        Runs re-queued after a worker died.
    concurrent : int
        Runs done by this invocation that another sweep writing the same
        database had recorded (ok or diverged) in the meantime; its row was kept.
    taken : int
        Runs that another sweep writing the same database recorded (ok or
        diverged, or failed since this one listed them) after this one started
        and before their turn came: not run.
    running_elsewhere : int
        Runs not run because another live sweep of the same database claimed
        them (it is running them and will record them).
    claimants : list of str
        ``host:pid`` of the sweeps holding those runs at the end.
    failed_before : int
        Of the skipped runs, those recorded as failed (run again only with
        ``retry_failed``).
    seconds : float
        Wall time of this invocation, start-up included.
    startup_seconds : float
        Of which starting the workers (or the cluster).
    executor : str
        Which executor ran the runs.
    footer : str
        Text printed after the table (the command line sets where the results are).
    """

    name: str
    db: Path
    total: int
    skipped: int
    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "diverged": 0, "failed": 0})
    requeued: int = 0
    concurrent: int = 0
    taken: int = 0
    running_elsewhere: int = 0
    claimants: list[str] = field(default_factory=list)
    failed_before: int = 0
    seconds: float = 0.0
    startup_seconds: float = 0.0
    executor: str = ""
    footer: str = ""

    @property
    def ran(self) -> int:
        """Runs finished by this invocation."""
        return sum(self.counts.values())

    @property
    def runs_per_minute(self) -> float:
        """Throughput after start-up (NaN when nothing ran)."""
        busy = self.seconds - self.startup_seconds
        return self.ran / busy * 60 if self.ran and busy > 0 else float("nan")

    def table(self) -> str:
        """A few lines for the terminal.

        Returns
        -------
        str
            The runs in the SPEC, skipped and run now; the counts per status; if
            any ran, the times, throughput and executor; if any failed, now or
            before (and skipped), a hint.
        """
        c = self.counts
        lines = [
            f"sweep {self.name!r}: {count(self.total, 'run')} in the SPEC, {self.skipped} "
            f"already in {self.db}, {self.ran} run now",
            f"  ok {c.get('ok', 0)}, diverged {c.get('diverged', 0)}, failed {c.get('failed', 0)}"
            + (f" ({self.requeued} re-queued after a worker died)" if self.requeued else ""),
        ]
        if self.taken:
            lines.append(
                f"  {self.taken} more recorded meanwhile by another sweep of {self.db} "
                "(not run again)"
            )
        if self.running_elsewhere:
            by = f" ({', '.join(self.claimants)})" if self.claimants else ""
            lines.append(
                f"  {self.running_elsewhere} more being run by another sweep of {self.db}{by}: "
                f"not run here, it will record {'it' if self.running_elsewhere == 1 else 'them'} "
                "(run this command again to check)"
            )
        if self.concurrent:
            lines.append(
                f"  {self.concurrent} of them recorded meanwhile by another sweep of {self.db} "
                "(its results kept)"
            )
        if self.ran:
            lines.append(
                f"  {self.seconds:.1f} s ({self.startup_seconds:.1f} s starting workers), "
                f"{self.runs_per_minute:.1f} runs/min; {self.executor}"
            )
        if self.failed_before:
            lines.append(
                f"  {self.failed_before} of the runs already in {self.db} had failed: "
                "not run again (add --retry-failed to rerun them)"
            )
        if c.get("failed") or self.failed_before:
            lines.append(f"  failed runs: fastinit report {self.db} (error texts in runs.csv)")
        return "\n".join(lines)


def _workers_in_memory(spec: Any, workers: Any) -> Any:
    """``workers`` pool workers, or as many as fit in memory at once (said on stderr)."""
    from fastinit.sweep.spec import workers_in_memory

    if isinstance(workers, bool) or not isinstance(workers, int):
        return workers  # make_executor refuses what is not a count
    fit, note = workers_in_memory(spec, workers)
    if note:
        print(note, file=sys.stderr)
    return fit


def _own_executor(spec: Any, kind: str | None, workers: Any, dask: str | None, todo: int) -> Any:
    """The executor ``run_sweep`` makes: workers on this machine capped by the runs to do
    and by its memory."""
    kind = kind or "local"
    n = workers
    if n is None and dask is None and kind == "local":
        n = min(available_cores(), max(todo, 1))
    if n is None and dask == "local":  # a LocalCluster: one worker per core unless told
        n = available_cores()
    if todo and (dask == "local" or (dask is None and kind == "local")):
        if isinstance(n, int) and not isinstance(n, bool) and n > todo:
            n = todo  # a worker more than the runs to do would have nothing to run
        n = _workers_in_memory(spec, n)
    return make_executor(kind, workers=n, dask=dask)


def _db_error(store: Any, what: str, error: Exception) -> OSError:
    """The OSError for a database that failed mid-sweep, saying what is kept."""
    return OSError(
        f"db: {what} in {store.path} ({error}); the runs recorded before it are kept: once "
        "the file can be written, run the same command again to run the rest"
    )


def _start_or_close(executor: Any) -> None:
    """Start ``executor``; if that fails or is interrupted, close it before the error goes on."""
    try:
        executor.start()
    except BaseException:
        executor.abort()
        executor.close()
        raise


def _run_claimed(
    executor: Any,
    todo: list[Item],
    store: Any,
    name: str,
    summary: SweepSummary,
    bar: SweepProgress,
    seen: dict[str, int],
) -> None:
    """Run ``todo`` on ``executor``, claiming each run first (module docstring: Concurrent sweeps).

    ``seen``: the attempts of each run recorded when the sweep listed them (a
    failed one, with ``--retry-failed``), so that a run recorded since counts as
    taken (:meth:`fastinit.sweep.store.Store.claim`).
    Runs another live sweep holds are skipped, then offered again after each
    pass that claimed something (a claim gone stale is taken over, a run recorded
    meanwhile counts as taken); those still held at the end are counted in
    ``summary.running_elsewhere``.  A sweep that stops (Ctrl-C, SIGTERM, an error)
    first records the results that had arrived (the executor's ``arrived``), and
    every claim left is released on the way out.
    """
    from fastinit.sweep.store import Claimant, keep_alive

    configs = dict(todo)
    claimant = Claimant()
    busy: set[str] = set()
    claimed = [0]
    mine: set[str] = set()  # the runs this call claimed
    recorded: set[str] = set()

    def record(key: str, result: dict[str, Any]) -> None:
        with deferred_interrupt():  # a Ctrl-C never splits a commit from its count
            try:
                written = store.record(
                    key, configs[key], result, name, keep_done=True, claimant=claimant
                )
            except sqlite3.Error as e:  # a full disk, a file locked too long, an I/O error
                raise _db_error(store, "a finished run could not be recorded", e) from e
            recorded.add(key)
            if not written:  # a concurrent sweep recorded this run first: its row stays
                summary.concurrent += 1
            summary.counts[result["status"]] = summary.counts.get(result["status"], 0) + 1
            bar.update(result["status"])

    def skip(key: str) -> bool:  # asked by the executor just before the run starts
        try:
            state = store.claim(key, claimant, seen.get(key, 0))
        except sqlite3.Error as e:  # as in record: a full disk, a file locked too long
            raise _db_error(store, "a run could not be claimed", e) from e
        busy.discard(key)
        if state == "claimed":
            claimed[0] += 1
            mine.add(key)
            return False
        if state == "busy":
            busy.add(key)
        else:  # another sweep of the database recorded it meanwhile
            summary.taken += 1
            bar.update("elsewhere")
        return True

    items = todo
    try:
        with keep_alive(store.path, claimant):
            while items:
                before = claimed[0]
                for key, result in executor.results(items, skip=skip):
                    record(key, result)
                items = [(k, c) for k, c in todo if k in busy] if claimed[0] > before else []
    except BaseException:
        arrived = getattr(executor, "arrived", None)  # an executor of the caller's may lack it
        # a second Ctrl-C waits for these few commits; a store that fails stops them
        with deferred_interrupt(), contextlib.suppress(OSError):
            for key, result in arrived() if arrived is not None else ():
                if key in mine and key not in recorded:  # not another sweep's, or unclaimed
                    record(key, result)
        raise
    finally:
        with deferred_interrupt(), contextlib.suppress(sqlite3.Error):
            store.release(claimant)  # as far as possible: a claim left behind goes stale
    summary.running_elsewhere = len(busy)
    holders = store.claims(busy).values()
    summary.claimants = sorted({f"{c['host']}:{c['pid']}" for c in holders})
    for _ in busy:
        bar.update("elsewhere")


def run_sweep(
    spec: Any,
    db: Any,
    *,
    executor: Any = None,
    workers: int | None = None,
    dask: str | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    stream: TextIO | None = None,
) -> SweepSummary:
    """Run every grid point of a SPEC that the database does not hold yet.

    Parameters
    ----------
    spec : Spec or path-like
        A parsed SPEC or a SPEC.toml file.
    db : Store or path-like
        The results database (created if missing).
    executor : executor or str, optional
        A started or unstarted executor (then it is left open for reuse; its
        ``results(items, skip=...)`` calls ``skip(key)`` before each run, which
        claims the run, or says to drop it: another sweep recorded or claimed
        it meanwhile), or ``'local'``, ``'serial'``; default ``'local'``
        (``'dask'`` when ``dask`` is given).
    workers : int, optional
        Worker processes (default: one per core; 0 runs in-process).  A local
        pool or ``dask='local'`` starts no more than the runs to do, and fewer
        (at least one, said on stderr) when that many of the SPEC's largest run
        would not fit in the memory available at once.
    dask : str, optional
        Dask scheduler address, or ``'local'`` for a LocalCluster.  A scheduler
        address is reached before ``db`` is opened: one that cannot be reached
        leaves no new database behind.
    retry_failed : bool
        Run the configurations recorded as failed again.
    progress : bool
        Show the sweep's progress bar on stderr.
    stream : file, optional
        Where the progress bar goes (default ``sys.stderr``).

    Returns
    -------
    SweepSummary

    Raises
    ------
    OSError
        The database could not record a finished run (a full disk: the runs
        recorded before are kept; the results that had arrived are recorded
        before a Ctrl-C or another error stops the sweep, where they can be).

    Notes
    -----
    A SIGTERM (a batch system's stop, ``kill``) or a SIGHUP (the terminal closed)
    stops the sweep as a Ctrl-C does: the results that had arrived are recorded
    and the claims released, then the process ends by that signal as it would
    have.  That holds in the main thread under the signal's default action; a
    handler of the caller's stays in force.
    """
    with terminate_as_interrupt() as terminated:
        try:
            return _run_sweep(spec, db, executor, workers, dask, retry_failed, progress, stream)
        except KeyboardInterrupt:
            if not terminated:
                raise
    signal.raise_signal(terminated[0])  # its default action is back: the process ends
    raise KeyboardInterrupt  # only if that signal's action changed meanwhile


def _run_sweep(
    spec: Any,
    db: Any,
    executor: Any,
    workers: int | None,
    dask: str | None,
    retry_failed: bool,
    progress: bool,
    stream: TextIO | None,
) -> SweepSummary:
    """:func:`run_sweep`, with SIGTERM's handling left to it."""
    from fastinit.sweep.spec import Spec, load_spec, run_memory
    from fastinit.sweep.store import Store, done_keys

    t0 = time.perf_counter()
    progress = check_bool(progress, "progress")
    retry_failed = check_bool(retry_failed, "retry_failed")
    dask = _check_dask(dask)
    if not isinstance(spec, Spec):  # a remote cluster's runs need its memory, not this one's
        spec = load_spec(spec, memory=run_memory(dask))
    runs = spec.keyed_runs()
    own_executor = executor is None or isinstance(executor, str)
    if own_executor:  # refused before anything is made
        _executor_arguments("local" if executor is None else executor, workers, dask, "executor")
    if not own_executor and not hasattr(executor, "results"):
        raise TypeError(
            "executor: expected an executor (make_executor), 'local', 'serial' or None, "
            f"got {type(executor).__name__}"
        )
    startup0 = 0.0 if own_executor else executor.startup_seconds
    if own_executor and run_memory(dask) is not None:  # remote: reached before db is made
        executor = _own_executor(spec, executor, workers, dask, 0)
        _start_or_close(executor)
    store = None
    try:
        store = db if isinstance(db, Store) else Store(db)
        recorded = store.recorded(k for k, _ in runs)  # one read: what is done, what failed
    except BaseException:  # nothing of the sweep's is left open
        if store is not None and store is not db:
            store.close()
        if own_executor and not isinstance(executor, (str, type(None))):
            executor.close()
        raise
    own_store = store is not db
    statuses = {key: status for key, (status, _) in recorded.items()}
    done = done_keys(statuses, retry_failed=retry_failed)
    todo = [(k, c) for k, c in runs if k not in done]
    summary = SweepSummary(spec.name, store.path, len(runs), len(done))
    summary.failed_before = sum(statuses[k] == "failed" for k in done)
    try:  # a Ctrl-C (or an error) as the executor is made leaves the database closed
        if isinstance(executor, (str, type(None))):
            executor = _own_executor(spec, executor, workers, dask, len(todo))
    except BaseException:
        if own_store:
            store.close()
        raise
    summary.executor = executor.describe()
    bar = SweepProgress(len(todo), enabled=progress, stream=stream)
    requeued0 = executor.requeued
    try:
        if todo:
            executor.start()
            summary.startup_seconds = executor.startup_seconds - startup0
            bar.restart_clock(workers=getattr(executor, "workers", 1))
            bar.draw(force=True)
            seen = {key: attempts for key, (_, attempts) in recorded.items()}
            _run_claimed(executor, todo, store, spec.name, summary, bar, seen)
    except BaseException:
        executor.abort()
        raise
    finally:
        bar.close()
        summary.startup_seconds = executor.startup_seconds - startup0
        summary.requeued = executor.requeued - requeued0
        if own_executor:
            executor.close()
        if own_store:
            store.close()
        summary.seconds = time.perf_counter() - t0
    return summary
