"""The process that compiles the dense kernels beside a first fit (fastinit._compile_helper)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastinit import MLP, _compile_helper
from fastinit import train as _train
from fastinit._system import available_cores

ROOT = Path(__file__).resolve().parents[1]

FIT = """
import json
import numpy as np
from fastinit import MLP, dense
x = np.random.default_rng(0).random((64, 5), dtype=np.float32)
y = (x[:, 0] > 0.5).astype(int)
h = MLP([5, 8, 2], seed=3).fit(x, y, iterations=12, progress=False)
stats = dense.backward_net.dispatcher.stats
print(json.dumps({"loss": h.loss.tolist(), "hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values())}))
"""


def _data():
    x = np.random.default_rng(0).random((64, 5), dtype=np.float32)
    return x, (x[:, 0] > 0.5).astype(int)


def test_empty_cache_fit_loads_the_dense_kernels_the_helper_compiled(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    env.pop(_compile_helper.ENV, None)
    out = subprocess.run(
        [sys.executable, "-c", FIT], env=env, cwd=ROOT, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    x, y = _data()
    want = MLP([5, 8, 2], seed=3).fit(x, y, iterations=12, progress=False).loss
    assert got["loss"] == want.tolist()  # the same bits as compiled in one process
    if available_cores() >= 2:
        # backward_net came from the cache: the helper compiled it meanwhile
        assert (got["hits"], got["misses"]) == (1, 0)
    else:
        assert (got["hits"], got["misses"]) == (0, 1)


def test_no_helper_when_disabled_or_the_kernels_are_cached(monkeypatch):
    x, y = _data()
    MLP([5, 8, 2]).fit(x, y, iterations=2, progress=False)  # the kernels are in the cache
    monkeypatch.setattr(_compile_helper, "_CHECKED", set())
    assert _compile_helper.start("float32") is None
    monkeypatch.setattr(_compile_helper, "_CHECKED", set())
    monkeypatch.setenv(_compile_helper.ENV, "0")
    monkeypatch.setattr(_compile_helper, "_in_cache", lambda *a: pytest.fail("looked"))
    assert _compile_helper.start("float32") is None


def test_a_failed_helper_leaves_its_share_to_this_process(monkeypatch):
    helper = _compile_helper.Helper(subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]))
    monkeypatch.setattr(_compile_helper, "start", lambda dtype_name: helper)
    x, y = _data()
    a = MLP([5, 8, 2], seed=1)
    b = MLP([5, 8, 2], seed=1)
    h = a.fit(x, y, iterations=5, progress=False)
    assert helper.process.returncode == 3
    monkeypatch.undo()
    assert h.loss.tolist() == b.fit(x, y, iterations=5, progress=False).loss.tolist()
    assert h.status == "ok"


def test_an_interrupted_fit_kills_its_helper(monkeypatch):
    helper = _compile_helper.Helper(
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    )
    monkeypatch.setattr(_compile_helper, "start", lambda dtype_name: helper)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_train, "_allocate_run", interrupted)
    x, y = _data()
    with pytest.raises(KeyboardInterrupt):
        MLP([5, 8, 2]).fit(x, y, iterations=5, progress=False)
    assert helper.process.returncode is not None  # killed and reaped, not left running


def test_a_helper_past_its_timeout_is_killed(monkeypatch):
    monkeypatch.setattr(_compile_helper, "_TIMEOUT", 0.2)
    helper = _compile_helper.Helper(
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    )
    assert helper.wait() is False
    assert helper.process.returncode is not None


def test_an_orphaned_helper_ends_itself_past_its_timeout():
    # its parent, killed, cannot kill it: a hung compilation must not live on
    code = (
        "import time; from fastinit import _compile_helper as h\n"
        "h.exit_after(0.3)\n"
        "time.sleep(60)  # stands for a compilation that hangs\n"
    )
    env = _compile_helper.helper_env()
    done = subprocess.run([sys.executable, "-c", code], env=env, timeout=50)
    assert done.returncode == 3


def test_the_helper_arms_its_own_timeout_before_compiling(monkeypatch):
    armed = []
    monkeypatch.setattr(_compile_helper, "exit_after", lambda s: armed.append(s))
    from fastinit import dense

    monkeypatch.setattr(dense, "ops_table", lambda name: armed.append(name))
    assert _compile_helper.main(["float64"]) == 0
    assert armed == [_compile_helper._TIMEOUT, "float64"]
    assert _compile_helper.main(["float32"], timeout=None) == 0  # another caller: no timer
    assert armed == [_compile_helper._TIMEOUT, "float64", "float32"]


def test_helper_env_puts_this_fastinit_first_unless_it_is_installed(monkeypatch, tmp_path):
    import site

    monkeypatch.setenv("PYTHONPATH", "/user/path")
    root = str(ROOT)
    env = _compile_helper.helper_env()
    assert env["PYTHONPATH"] == os.pathsep.join([root, "/user/path"])
    assert env[_compile_helper.ENV] == "0"
    monkeypatch.setattr(site, "getsitepackages", lambda: [root])
    assert _compile_helper.helper_env()["PYTHONPATH"] == "/user/path"


@pytest.mark.parametrize("value", ["0", "false", "False", "no", "OFF", " off "])
def test_the_switch_reads_the_usual_spellings_of_off(monkeypatch, value):
    monkeypatch.setenv(_compile_helper.ENV, value)
    assert not _compile_helper.enabled()
    monkeypatch.setattr(_compile_helper, "_CHECKED", set())
    monkeypatch.setattr(_compile_helper, "_in_cache", lambda *a: pytest.fail("looked"))
    assert _compile_helper.start("float32") is None


@pytest.mark.parametrize("value", [None, "", "1", "true", "yes", "on"])
def test_the_switch_is_on_unless_turned_off(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(_compile_helper.ENV, raising=False)
    else:
        monkeypatch.setenv(_compile_helper.ENV, value)
    assert _compile_helper.enabled()


def test_no_helper_in_a_frozen_application(monkeypatch):
    # its sys.executable runs the application, which would start again in the background
    monkeypatch.delenv(_compile_helper.ENV, raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(_compile_helper, "_CHECKED", set())
    monkeypatch.setattr(_compile_helper, "_in_cache", lambda *a: pytest.fail("looked"))
    assert _compile_helper.start("float32") is None


# fastinit._progress (the fit's progress bar) has no test file of its own to hold these


def _screen(text: str) -> str:
    """What a terminal shows after ``text``: each ``\\r`` returns to column 0 and
    overwrites only the characters it writes."""
    row: list[str] = []
    for part in text.split("\r"):
        row[: len(part)] = part
    return "".join(row)


def test_a_shorter_redraw_of_the_progress_bar_leaves_no_tail(monkeypatch):
    import io

    from fastinit import _progress

    clock = iter([0.0, 1.0, 11.0, 12.0])
    monkeypatch.setattr(_progress.time, "perf_counter", lambda: next(clock))

    class Unsized(io.StringIO):  # a terminal of unknown width: padded, not cut
        def isatty(self):
            return True

    out = Unsized()  # (a stream that is not a terminal gets whole lines, no padding)
    bar = _progress.ProgressBar(2000, min_seconds=0.0, stream=out)
    bar.update(100, 0.3127)
    bar.update(200, 0.3127)  # [11.0s<3:00]
    bar.update(1900, 0.25)  # [12.0s<0.6s]: 5 characters shorter
    assert _screen(out.getvalue()).rstrip().endswith("1900/2000 loss 0.25 [12.0s<0.6s]")


def test_the_progress_bar_fits_a_narrow_terminal(monkeypatch):
    import io

    from fastinit import _progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

        def fileno(self):
            return 2

    columns = [40]
    monkeypatch.setattr(
        _progress.os, "get_terminal_size", lambda fd: os.terminal_size((columns[0], 24))
    )
    out = Terminal()
    bar = _progress.ProgressBar(2000, min_seconds=0.0, stream=out)
    bar.update(100, 0.3127)
    bar.update(200, 0.3127)
    columns[0] = 30  # the terminal narrowed
    bar.update(300, 0.3127)
    draws = out.getvalue().split("\r")[1:]
    assert [len(d) for d in draws] == [39, 39, 29]
    assert draws[0].startswith("fit   5% |#")


# fastinit._system (the cores the helper and the sweep count on) has no test file of its own


def _cgroups(monkeypatch, tmp_path, membership: str, files: dict[str, str]) -> None:
    """This process in a made-up cgroup tree, on a host of 8 cores."""
    from fastinit import _system

    for name, text in files.items():
        path = tmp_path / "sys" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "cgroup").write_text(membership)
    monkeypatch.setattr(_system, "_PROC_CGROUP", tmp_path / "cgroup")
    monkeypatch.setattr(_system, "_CGROUP_ROOT", tmp_path / "sys")
    monkeypatch.setattr(_system, "_affinity_cores", lambda: 8)


@pytest.mark.parametrize(
    ("membership", "files", "cores"),
    [
        # docker --cpus=2.5 / a Kubernetes CPU limit, on the parent group (v2)
        ("0::/pod/ctr\n", {"pod/ctr/cpu.max": "max 100000\n", "pod/cpu.max": "250000 100000\n"}, 3),
        ("0::/\n", {"cpu.max": "50000 100000\n"}, 1),  # half a core: still one
        ("4:cpu,cpuacct:/x\n1:memory:/x\n",  # v1
         {"cpu/x/cpu.cfs_quota_us": "200000\n", "cpu/x/cpu.cfs_period_us": "100000\n"}, 2),
        ("4:cpu,cpuacct:/x\n",
         {"cpu/x/cpu.cfs_quota_us": "-1\n", "cpu/x/cpu.cfs_period_us": "100000\n"}, 8),
        ("0::/a\n", {"a/cpu.max": "max 100000\n"}, 8),  # no quota
        ("0::/a\n", {}, 8),  # no cpu controller files
    ],
)  # fmt: skip
def test_available_cores_counts_a_cgroup_cpu_quota(monkeypatch, tmp_path, membership, files, cores):
    _cgroups(monkeypatch, tmp_path, membership, files)
    assert _compile_helper.available_cores() == cores


def test_no_helper_under_a_one_cpu_quota(monkeypatch, tmp_path):
    # the helper would only take CPU time from the fit it is meant to speed up
    _cgroups(monkeypatch, tmp_path, "0::/\n", {"cpu.max": "100000 100000\n"})
    monkeypatch.delenv(_compile_helper.ENV, raising=False)
    monkeypatch.setattr(_compile_helper, "_CHECKED", set())
    monkeypatch.setattr(_compile_helper, "_in_cache", lambda *a: pytest.fail("looked"))
    assert _compile_helper.start("float32") is None


@pytest.mark.parametrize(
    ("files", "headroom"),
    [
        ({"a/memory.max": "1000\n", "a/memory.current": "300\n",
          "a/memory.stat": "anon 1\ninactive_file 100\n"}, [800]),
        ({"a/memory.max": "1000\n", "a/memory.current": "300\n"}, [700]),  # no memory.stat
        ({"a/memory.max": "max\n", "a/memory.current": "300\n"}, []),  # no limit
    ],
)  # fmt: skip
def test_memory_headroom_of_a_cgroup(monkeypatch, tmp_path, files, headroom):
    from fastinit import _system

    _cgroups(monkeypatch, tmp_path, "0::/a\n", files)
    assert _system._cgroup_headroom() == headroom  # a limit is kept without memory.stat
