"""Sweep throughput: runs per minute, local pool vs Dask LocalCluster vs sequential in-process.

Run: ``pytest bench/test_bench_sweep.py --benchmark-only -s`` (``-s`` shows the
summary table printed at the end; the Dask rows need ``pip install "dask[distributed]"``).

Each benchmark runs the same fixed sweep of ``RUNS`` runs of about 0.2 s into a
fresh database per round, so every round runs every configuration:

* ``planar``: the flower network trained for 5000 full-batch iterations
  (the compiled training loop; no BLAS at these sizes);
* ``depth``: a 100-layer, 128-wide plain network at init, 256 inputs
  (NumPy/OpenBLAS GEMMs);
* ``noop``: 200 runs that do nothing (``selftest``): the per-run overhead of
  the executor, database commit included.

The summary printed at the end takes each figure from the fastest of the
rounds (the one least disturbed by other processes on a shared machine) and
shows the mean-based rate too.  Executors are started and warmed up (one
untimed sweep: imports, numba cache loads) before the timed rounds, so the
figures are steady state; start-up is reported separately (``startup_s``:
starting the workers or the cluster; ``first_sweep_s``: the untimed warm-up
sweep, which pays the per-worker kernel loads).  The sequential baseline runs
in the benchmark process with the thread settings of one pool worker (1 BLAS
thread via threadpoolctl when installed, ``cores // workers`` numba threads),
so the ratios compare executors, not thread counts.  The ``ideal`` rows are
the same runs split over 2 bare spawned processes started together (no
executor, no database, best of 3): what the machine allows at that moment, to
tell executor overhead from a busy or throttled machine.  ``interleaved`` runs
the three executors one after the other within each round (order rotated) and
reports the median of the per-round throughput ratios, the figure least
sensitive to background load that comes and goes.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time

import pytest

from fastinit.sweep.execute import DaskExecutor, PoolExecutor, SerialExecutor, run_sweep
from fastinit.sweep.spec import parse_spec

RUNS = 12
WORKERS = 2
SPECS = {
    "planar": f"""
        experiment = "planar"
        [fixed]
        iterations = 5000
        [grid]
        init = ["randn", "xavier", "he"]
        seed = {{ start = 0, stop = {RUNS // 3} }}
        """,
    "depth": f"""
        experiment = "depth"
        [fixed]
        depth = 100
        width = 128
        samples = 256
        [grid]
        init = ["xavier", "he"]
        activation = ["tanh", "relu"]
        seed = {{ start = 0, stop = {RUNS // 4} }}
        """,
    "noop": """
        experiment = "selftest"
        [grid]
        seed = { start = 0, stop = 200 }
        """,
}
RESULTS: dict[tuple[str, str], dict[str, float]] = {}
RATIOS: dict[str, dict[str, float]] = {}  # test_interleaved_ratios
IDEAL: dict[str, float] = {}  # runs/min of WORKERS bare processes (see ideal_seconds)


def _spec(name: str, salt: int = 0):
    """The sweep; ``salt`` shifts the seeds (an untimed warm-up sweep of other configs)."""
    text = SPECS[name].replace("start = 0", f"start = {1000 * salt}")
    text = text.replace(f"stop = {RUNS // 3}", f"stop = {1000 * salt + RUNS // 3}")
    text = text.replace(f"stop = {RUNS // 4}", f"stop = {1000 * salt + RUNS // 4}")
    text = text.replace("stop = 200", f"stop = {1000 * salt + 200}")
    return parse_spec("\n".join(line.strip() for line in text.splitlines()), name)


@pytest.fixture(scope="module")
def executors(tmp_path_factory):
    """Started, warmed-up executors: pool, dask (if installed) and sequential."""
    d = tmp_path_factory.mktemp("warm")
    made = {}
    t0 = time.perf_counter()
    pool = PoolExecutor(WORKERS)
    pool.start()
    made["pool"] = (pool, time.perf_counter() - t0)
    try:
        import distributed  # noqa: F401

        t0 = time.perf_counter()
        dask = DaskExecutor("local", WORKERS)
        dask.start()
        made["dask"] = (dask, time.perf_counter() - t0)
    except ImportError:
        pass
    made["sequential"] = (SerialExecutor(), 0.0)
    out = {}
    for kind, (ex, startup) in made.items():
        first = {}
        with _single_worker_threads(kind):
            for name in SPECS:
                t0 = time.perf_counter()
                run_sweep(_spec(name, salt=1), d / f"{kind}-{name}.sqlite", executor=ex,
                          progress=False)  # fmt: skip
                first[name] = time.perf_counter() - t0
        out[kind] = (ex, startup, first)
    for name in ("planar", "depth"):
        IDEAL[name] = len(_spec(name)) / ideal_seconds(name) * 60
    yield out
    for ex, _, _ in out.values():
        ex.close()
    print(summary_table())


def _ideal_worker(configs, numba_threads, barrier, queue) -> None:
    """One of WORKERS bare processes: warm up, wait for the others, run a share, report."""
    from fastinit.sweep.execute import configure_threads

    configure_threads(numba_threads)
    from fastinit.sweep import runners

    runners.execute(configs[0])
    barrier.wait()
    t0 = time.perf_counter()
    for config in configs:
        runners.execute(config)
    queue.put(time.perf_counter() - t0)


def ideal_seconds(name: str, repeats: int = 3) -> float:
    """The machine's ceiling right now: the sweep's runs split over WORKERS bare spawned
    processes that start together (no executor, no database); best wall time of ``repeats``."""
    import multiprocessing

    from fastinit.sweep.execute import _environ, available_cores, thread_env

    configs = _spec(name).runs()
    threads = max(1, available_cores() // WORKERS)
    ctx = multiprocessing.get_context("spawn")
    best = float("inf")
    for _ in range(repeats):
        barrier, queue = ctx.Barrier(WORKERS), ctx.Queue()
        with _environ(thread_env(threads)):
            procs = [
                ctx.Process(
                    target=_ideal_worker, args=(configs[i::WORKERS], threads, barrier, queue)
                )
                for i in range(WORKERS)
            ]
            for p in procs:
                p.start()
        times = [queue.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
        best = min(best, max(times))
    return best


class _single_worker_threads:
    """In the benchmark process: the threads of one pool worker (sequential baseline only)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.undo = []

    def __enter__(self) -> None:
        if self.kind != "sequential":
            return
        import numba

        from fastinit.sweep.execute import available_cores

        old = numba.get_num_threads()
        numba.set_num_threads(max(1, min(available_cores() // WORKERS, old)))
        self.undo.append(lambda: numba.set_num_threads(old))
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return
        limits = threadpool_limits(limits=1, user_api="blas")
        self.undo.append(limits.restore_original_limits)

    def __exit__(self, *exc) -> None:
        for f in reversed(self.undo):
            f()


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("kind", ["sequential", "pool", "dask"])
def test_sweep_throughput(benchmark, executors, tmp_path, kind, name):
    if kind not in executors:
        pytest.skip("dask[distributed] is not installed")
    ex, startup, first = executors[kind]
    spec = _spec(name)
    n = len(spec)
    counter = itertools.count()
    benchmark.group = f"sweep-{name}"

    def setup():
        return (tmp_path / f"r{next(counter)}.sqlite",), {}

    def sweep(db):
        summary = run_sweep(spec, db, executor=ex, progress=False)
        assert summary.ran == n and summary.counts.get("failed", 0) == 0

    with _single_worker_threads(kind):
        benchmark.pedantic(sweep, setup=setup, rounds=3, iterations=1)
    best = benchmark.stats.stats.min  # the round least disturbed by other processes
    RESULTS[(kind, name)] = {
        "runs_per_minute": n / best * 60,
        "ms_per_run": best / n * 1e3,
        "runs_per_minute_mean": n / benchmark.stats.stats.mean * 60,
        "startup_s": startup,
        "first_sweep_s": first[name],
    }
    benchmark.extra_info.update(RESULTS[(kind, name)])


@pytest.mark.parametrize("name", ["planar", "depth"])
def test_interleaved_ratios(benchmark, executors, tmp_path, name):
    """The executors one after the other within each round (order rotated), so that a
    change of background load hits all of them: per-round ratios, then their median."""
    spec = _spec(name)
    n = len(spec)
    kinds = list(executors)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    rounds = itertools.count()
    benchmark.group = f"sweep-{name}-interleaved"

    def cycle():
        r = next(rounds)
        for kind in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
            ex = executors[kind][0]
            with _single_worker_threads(kind):
                t0 = time.perf_counter()
                summary = run_sweep(spec, tmp_path / f"{kind}-{r}.sqlite", executor=ex,
                                    progress=False)  # fmt: skip
                times[kind].append(time.perf_counter() - t0)
            assert summary.ran == n

    benchmark.pedantic(cycle, rounds=3, iterations=1)
    ratios = {}
    for kind in kinds:
        if kind != "sequential":
            per_round = [s / t for s, t in zip(times["sequential"], times[kind], strict=True)]
            ratios[f"{kind}_x_sequential"] = statistics.median(per_round)
    if "dask" in times:
        per_round = [p / d for p, d in zip(times["pool"], times["dask"], strict=True)]
        ratios["dask_x_pool"] = statistics.median(per_round)
    RATIOS[name] = ratios
    benchmark.extra_info.update(ratios)


def summary_table() -> str:
    """The figures of the benchmarks that ran, with ratios to sequential and to the pool."""
    lines = [
        "runs/min and ms/run from the best of the rounds; 'mean' from their mean",
        f"{'sweep':<8}{'executor':<12}{'runs/min':>10}{'mean':>8}{'ms/run':>9}{'x seq':>7}"
        f"{'/pool':>7}{'startup s':>11}{'1st sweep s':>13}",
    ]
    for (kind, name), r in sorted(RESULTS.items(), key=lambda x: (x[0][1], x[0][0])):
        seq = RESULTS.get(("sequential", name), {}).get("runs_per_minute")
        pool = RESULTS.get(("pool", name), {}).get("runs_per_minute")
        rel = f"{r['runs_per_minute'] / seq:.2f}" if seq else "-"
        vs_pool = f"{r['runs_per_minute'] / pool:.2f}" if pool else "-"
        lines.append(
            f"{name:<8}{kind:<12}{r['runs_per_minute']:>10.0f}{r['runs_per_minute_mean']:>8.0f}"
            f"{r['ms_per_run']:>9.1f}{rel:>7}{vs_pool:>7}{r['startup_s']:>11.2f}"
            f"{r['first_sweep_s']:>13.2f}"
        )
    for name, rpm in IDEAL.items():
        seq = RESULTS.get(("sequential", name), {}).get("runs_per_minute")
        pool = RESULTS.get(("pool", name), {}).get("runs_per_minute")
        x_seq = rpm / seq if seq else float("nan")
        x_pool = rpm / pool if pool else float("nan")
        lines.append(
            f"{name:<8}{'ideal':<12}{rpm:>10.0f}{'':>8}{60e3 / rpm:>9.1f}{x_seq:>7.2f}"
            f"{x_pool:>7.2f}   ({WORKERS} bare processes, no executor: the machine's ceiling)"
        )
    for name, ratios in RATIOS.items():
        text = ", ".join(f"{k.replace('_x_', ' / ')} {v:.2f}" for k, v in ratios.items())
        lines.append(f"{name:<8}interleaved, median of per-round throughput ratios: {text}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines.append(f"(load average at the end: {load:.2f})")
    return "\n" + "\n".join(lines)
