"""numba's cache saved by two processes at once (fastinit._cache)."""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numba.core.caching as caching
import pytest

from fastinit import _cache

ROOT = Path(__file__).resolve().parents[1]

# two closures of one function share an index file, as fastinit's per-code kernels do
MODULE = """
from numba import njit

def make(k):
    def f(x):
        return x * k
    return njit(cache=True)(f)
"""

# Saves ``make(k)`` into the cache; the window between reading the index and writing
# the data is widened and aligned with the other process (a barrier, 1 s at most),
# in the order that made numba's own save map the second key to the first one's code.
RACER = """
import json, os, sys, time
import fastinit._native  # installs fastinit._cache
import numba.core.caching as c
fastinit._cache.SEALED_PACKAGES.add("racemod")  # its files sealed, as fastinit's own

role, k, barrier = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
cls = c.IndexDataCacheFile
save, load_index, save_index, save_data = (cls.save, cls._load_index, cls._save_index,
                                           cls._save_data)
span, saving = [], []  # the save's first read of the index, its last write


def wait_for_other():
    open(f"{barrier}.{role}", "w").close()
    t0 = time.time()
    while not os.path.exists(f"{barrier}.{1 - role}") and time.time() - t0 < 1:
        time.sleep(0.005)


def flagged_save(self, key, data):
    saving.append(True)
    save(self, key, data)


def timed_load_index(self):
    if saving:
        span.append(time.time())
    return load_index(self)


def slow_save_index(self, overloads):
    wait_for_other()
    time.sleep(0.1 * role)
    save_index(self, overloads)
    span.append(time.time())


def slow_save_data(self, name, data, *key):  # fastinit's save_data also takes the key
    time.sleep(0.3 * (1 - role))
    save_data(self, name, data, *key)
    span.append(time.time())


cls.save, cls._load_index = flagged_save, timed_load_index
cls._save_index, cls._save_data = slow_save_index, slow_save_data
import racemod
print(json.dumps({"value": racemod.make(k)(1.0), "span": [min(span), max(span)]}))
"""

CHECK = """
import json
import fastinit._native
fastinit._cache.SEALED_PACKAGES.add("racemod")  # its files sealed, as fastinit's own
import racemod
a, b = racemod.make(2.0), racemod.make(3.0)
print(json.dumps([a(1.0), b(1.0), sum(a.stats.cache_hits.values()),
                  sum(b.stats.cache_hits.values())]))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    return env


def test_concurrent_saves_of_one_function_keep_each_key_with_its_code(tmp_path):
    (tmp_path / "racemod.py").write_text(MODULE)
    env = _env(tmp_path)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(role), str(k), str(tmp_path / "barrier")],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            text=True,
        )
        for role, k in ((0, 2.0), (1, 3.0))
    ]
    outs = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in racers]
    assert [o["value"] for o in outs] == [2.0, 3.0]
    (a0, a1), (b0, b1) = (o["span"] for o in outs)
    assert a1 <= b0 or b1 <= a0, "the two saves overlapped: no lock"
    check = subprocess.run(
        [sys.executable, "-c", CHECK], env=env, cwd=tmp_path, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    # each key loads from the cache, and loads its own code
    assert json.loads(check.stdout.strip().splitlines()[-1]) == [2.0, 3.0, 1, 1]


def test_install_is_idempotent_and_replaces_numbas_save():
    assert _cache.install() and _cache.install()
    assert caching.IndexDataCacheFile.save is _cache.locked_save


def test_save_goes_on_without_a_lock_file(tmp_path, monkeypatch):
    # an unwritable lock file (here: a directory in its place) does not stop the save
    (tmp_path / _cache.LOCK_NAME).mkdir()
    files = caching.IndexDataCacheFile(str(tmp_path), "f-1.py311", ("stamp", 1))
    files.save(("key", 1), {"code": 1})
    files.save(("key", 2), {"code": 2})
    assert files.load(("key", 1)) == {"code": 1}
    assert files.load(("key", 2)) == {"code": 2}
    assert sorted(p.name for p in tmp_path.glob("*.nbc")) == ["f-1.py311.1.nbc", "f-1.py311.2.nbc"]


def test_the_lock_serves_every_user_of_a_shared_cache(tmp_path, monkeypatch):
    with _cache._exclusive(str(tmp_path)):
        pass
    lock = tmp_path / _cache.LOCK_NAME
    assert lock.stat().st_mode & 0o777 == 0o666  # not the umask's 0o644: others open it too
    # a user who cannot open it for writing still locks it, through a read-only descriptor
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(_cache.os, "open", read_only)
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while another holds it\n"
    )
    with _cache._exclusive(str(tmp_path)):
        held = subprocess.run([sys.executable, "-c", probe, str(lock)], capture_output=True)
    assert held.returncode != 0 and b"BlockingIOError" in held.stderr
    free = subprocess.run([sys.executable, "-c", probe, str(lock)], capture_output=True)
    assert free.returncode == 0


def _saved(tmp_path: Path, sealed: bool = True) -> caching.IndexDataCacheFile:
    _cache.install()
    files = caching.IndexDataCacheFile(str(tmp_path), "f-1.py311", ("stamp", 1))
    files.fastinit_sealed = sealed  # a fastinit function's files, or a user's
    files.save(("key", 1), {"code": 1})
    files.save(("key", 2), {"code": 2})
    return files


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("sealed", [True, False])
def test_a_damaged_index_reads_as_empty_and_the_next_save_repairs_it(tmp_path, sealed):
    files = _saved(tmp_path, sealed)
    _truncate(tmp_path / "f-1.py311.nbi")  # numba: UnpicklingError on every load and save
    assert files.load(("key", 1)) is None  # a cache miss: numba compiles it again
    files.save(("key", 1), {"code": 1})
    assert files.load(("key", 1)) == {"code": 1}
    (tmp_path / "f-1.py311.nbi").write_bytes(b"")  # EOFError for numba
    assert files.load(("key", 2)) is None


@pytest.mark.parametrize("sealed", [True, False])
def test_an_unreadable_index_of_fastinits_function_is_a_cache_miss(tmp_path, sealed, monkeypatch):
    files = _saved(tmp_path, sealed)
    index = tmp_path / "f-1.py311.nbi"
    index.unlink()
    index.mkdir()  # IsADirectoryError on open, as EACCES or EIO would be, even for root
    monkeypatch.setattr(_cache, "_WARNED", set())
    if not sealed:  # a user's function: numba's behaviour, the error propagates
        with pytest.raises(IsADirectoryError):
            files.load(("key", 1))
        return
    expected = r"could not read .*f-1\.py311\.nbi.*compiles its functions again"
    with pytest.warns(RuntimeWarning, match=expected):
        assert files.load(("key", 1)) is None  # compiled again, not a failed call
    with pytest.raises(IsADirectoryError):  # a save does not replace an index it cannot read
        files.save(("key", 1), {"code": 1})


@pytest.mark.parametrize("sealed", [True, False])
def test_a_damaged_data_file_is_a_cache_miss_and_the_next_save_repairs_it(tmp_path, sealed):
    files = _saved(tmp_path, sealed)
    _truncate(tmp_path / "f-1.py311.1.nbc")
    assert files.load(("key", 1)) is None
    assert files.load(("key", 2)) == {"code": 2}
    files.save(("key", 1), {"code": 1})
    assert files.load(("key", 1)) == {"code": 1}
    assert sorted(p.name for p in tmp_path.glob("*.nbc")) == ["f-1.py311.1.nbc", "f-1.py311.2.nbc"]


def test_a_data_file_garbled_into_other_data_is_a_cache_miss(tmp_path):
    # it unpickles, to other values (in a real cache: other machine code, or bitcode
    # that LLVM refuses, "Invalid record", in every later process)
    files = _saved(tmp_path)
    files.save(("key", 3), {"code": 12345.5})
    path = tmp_path / "f-1.py311.3.nbc"
    path.write_bytes(path.read_bytes().replace(struct.pack(">d", 12345.5), struct.pack(">d", 5.5)))
    assert files.load(("key", 3)) is None
    files.save(("key", 3), {"code": 12345.5})
    assert files.load(("key", 3)) == {"code": 12345.5}


def test_an_index_garbled_into_naming_another_data_file_reads_as_empty(tmp_path):
    files = _saved(tmp_path)
    index = tmp_path / "f-1.py311.nbi"
    index.write_bytes(index.read_bytes().replace(b"f-1.py311.1.nbc", b"f-1.py311.2.nbc", 1))
    assert files.load(("key", 1)) is None  # not key 2's {"code": 2}
    files.save(("key", 1), {"code": 1})
    assert files.load(("key", 1)) == {"code": 1}


def test_an_intact_data_file_of_another_key_is_a_cache_miss(tmp_path):
    # each data file was sealed against its own contents only: two swapped (or one copied
    # in from another cache, where that number held another key's code) passed, and a
    # ReLU model ran the tanh kernel, silently
    files = _saved(tmp_path)
    one, two = tmp_path / "f-1.py311.1.nbc", tmp_path / "f-1.py311.2.nbc"
    first, second = one.read_bytes(), two.read_bytes()
    one.write_bytes(second)
    two.write_bytes(first)
    assert files.load(("key", 1)) is None and files.load(("key", 2)) is None
    files.save(("key", 1), {"code": 1})
    assert files.load(("key", 1)) == {"code": 1}
    (tmp_path / "other").mkdir()
    other = _saved(tmp_path / "other")  # the same numbers, other keys
    other.save(("key", 3), {"code": 3})
    files.save(("key", 4), {"code": 4})  # number 3 in this index
    copied = (tmp_path / "other" / "f-1.py311.3.nbc").read_bytes()  # a half-copied cache
    (tmp_path / "f-1.py311.3.nbc").write_bytes(copied)
    assert files.load(("key", 4)) is None


def test_a_process_without_fastinit_reads_the_sealed_cache_files(tmp_path):
    # numba's own reader stops at the end of the pickle; the files it writes have no
    # digest and are compiled again once (a damaged file is never trusted)
    files = _saved(tmp_path)
    assert _cache._NUMBA["_load_data"](files, "f-1.py311.2.nbc") == {"code": 2}
    assert _cache._NUMBA["_load_index"](files) == {("key", 1): "f-1.py311.1.nbc",
                                                   ("key", 2): "f-1.py311.2.nbc"}  # fmt: skip
    (tmp_path / "f-1.py311.2.nbc").write_bytes(files._dump({"code": 22}))  # numba's format
    assert files.load(("key", 2)) is None
    assert files.load(("key", 1)) == {"code": 1}


USER_MODULE = """
from numba import njit

@njit(cache=True)
def f(x):
    return x + 1
"""

# a user's function, by a process with fastinit or without: its cache hits
USE = """
import json, sys
if sys.argv[1] == "fastinit":
    import fastinit._native
import usermod
usermod.f(1), usermod.f(1.0)
print(json.dumps(sum(usermod.f.stats.cache_hits.values())))
"""


def test_a_users_cached_functions_keep_numbas_format_shared_with_plain_numba(tmp_path):
    # sealed by fastinit's process, a user's index was read as empty there and as only
    # the signature compiled last elsewhere: each process compiled the other's again
    (tmp_path / "usermod.py").write_text(USER_MODULE)
    env = _env(tmp_path)

    def hits(who):
        out = subprocess.run([sys.executable, "-c", USE, who], env=env, cwd=tmp_path,
                             capture_output=True, text=True)  # fmt: skip
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert hits("numba") == 0  # compiles both signatures and saves them
    assert hits("fastinit") == 2
    assert hits("numba") == 2
    assert hits("fastinit") == 2


def test_ctrl_c_kept_raises_a_dropped_ctrl_c_in_place_of_the_error_it_caused(monkeypatch):
    # numba's "no compiled object yet" follows a Ctrl-C dropped in LLVM's callback
    monkeypatch.setattr(sys, "unraisablehook", lambda u: None)

    class Dropping:
        def __del__(self):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as caught, _cache.ctrl_c_kept():
        Dropping()
        raise RuntimeError("no compiled object yet")
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_ctrl_c_kept_left_in_a_hook_chain_passes_everything_on_after_its_block(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    with _cache.ctrl_c_kept():
        kept = sys.unraisablehook
        sys.unraisablehook = kept  # another library's hook, chained to ours, replaced it
        sys.unraisablehook = lambda u: kept(u)

    class Dropping:
        def __del__(self):
            raise KeyboardInterrupt

    Dropping()  # after the block: given on, not kept for a raise nobody makes
    assert [type(u.exc_value) for u in seen] == [KeyboardInterrupt]


def test_a_save_removes_temporary_files_left_by_killed_writers(tmp_path):
    # numba writes <file>.tmp.<16 hex> and renames it; a writer killed in between (the
    # compile helper of an interrupted fit is killed) leaves it, and numba never removes it
    names = ["f-1.py311.1.nbc.tmp.0123456789abcdef", "g-7.py311.nbi.tmp.fedcba9876543210"]
    fresh = ["f-1.py311.2.nbc.tmp.00112233445566ff", "notes.tmp.0123456789abcdef"]
    for name in names + fresh:
        (tmp_path / name).write_bytes(b"half")
    for name in [*names, fresh[1]]:  # (not a cache file: kept, however old)
        os.utime(tmp_path / name, (time.time() - 2 * _cache.STALE_SECONDS,) * 2)
    _saved(tmp_path)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([*fresh, "f-1.py311.1.nbc", "f-1.py311.2.nbc", "f-1.py311.nbi",
                           _cache.LOCK_NAME])  # fmt: skip


def _run_check(tmp_path, env):
    """Run CHECK in a fresh process in ``tmp_path``; its last line's JSON."""
    out = subprocess.run(
        [sys.executable, "-c", CHECK], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_process_recompiles_over_a_damaged_cache(tmp_path):
    (tmp_path / "racemod.py").write_text(MODULE)
    env = _env(tmp_path)

    def check():
        return _run_check(tmp_path, env)

    assert check()[:2] == [2.0, 3.0]  # fills the cache
    (index,) = (tmp_path / "cache").rglob("*.nbi")
    data = sorted(index.parent.glob("*.nbc"))
    _truncate(data[0])
    assert check()[:2] == [2.0, 3.0]  # compiles the damaged one again, and saves it
    assert check() == [2.0, 3.0, 1, 1]  # repaired
    _truncate(index)
    assert check()[:2] == [2.0, 3.0]
    assert check() == [2.0, 3.0, 1, 1]


def test_a_garbled_cache_file_never_runs_as_wrong_code(tmp_path):
    # one changed value in make(3.0)'s data file: numba loaded it and f(1.0) returned 5.0
    (tmp_path / "racemod.py").write_text(MODULE)
    env = _env(tmp_path)

    def check():
        return _run_check(tmp_path, env)

    assert check() == [2.0, 3.0, 0, 0]  # fills the cache
    changed = 0
    for path in (tmp_path / "cache").rglob("*.nbc"):
        raw = path.read_bytes()
        path.write_bytes(raw.replace(struct.pack("<d", 3.0), struct.pack("<d", 5.0)))
        changed += raw != path.read_bytes()
    assert changed == 1
    assert check() == [2.0, 3.0, 1, 0]  # 3.0 compiled again
    assert check() == [2.0, 3.0, 1, 1]  # and saved over the damaged file


def test_fastinit_compiles_uncached_where_numba_has_no_cache_directory(tmp_path):
    (tmp_path / "file").write_text("")
    env = dict(_env(tmp_path), NUMBA_CACHE_DIR=str(tmp_path / "file" / "cache"))
    script = (  # NUMBA_CACHE_DIR's locator the only one, unusable (the class attribute, not
        # NUMBA_CACHE_LOCATOR_CLASSES, which numba 0.59 lacks: its other locators found one)
        "import warnings\n"
        "from numba.core.caching import CacheImpl\n"
        "CacheImpl._locator_classes = CacheImpl._locator_classes[:1]\n"
        "warnings.simplefilter('always')\n"
        "from fastinit import _fastmath\n"  # defines cache=True functions on import
        "print(_fastmath.max2(1.0, 2.0))\n"
        "import racemod\n"  # not fastinit's: numba's own error
        "racemod.make(2.0)\n"
    )
    (tmp_path / "racemod.py").write_text(MODULE)
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.stdout.split() == ["2.0"]
    assert out.stderr.count("RuntimeWarning: fastinit: numba found no writable cache") == 1
    # the warning names the user's import, not a line of numba's
    assert "<string>:5: RuntimeWarning: fastinit: numba found" in out.stderr, out.stderr
    assert "RuntimeError: cannot cache function 'make.<locals>.f'" in out.stderr


def test_the_windows_lock_is_released_before_the_file_is_closed(tmp_path, monkeypatch):
    # Windows frees a byte-range lock left on a closed file only when it gets to it,
    # so the next save could wait its 10 s for it
    calls = []

    class Msvcrt:
        LK_LOCK, LK_UNLCK = 1, 0

        @staticmethod
        def locking(fd, mode, nbytes):
            calls.append((mode, nbytes, os.lseek(fd, 0, os.SEEK_CUR)))

    monkeypatch.setattr(_cache, "fcntl", None)
    monkeypatch.setattr(_cache, "msvcrt", Msvcrt, raising=False)
    with _cache._exclusive(str(tmp_path)):
        assert calls == [(Msvcrt.LK_LOCK, 1, 0)]
    assert calls == [(Msvcrt.LK_LOCK, 1, 0), (Msvcrt.LK_UNLCK, 1, 0)]


# numba's save of a fastinit function on a full disk (simulated: a file size limit, whose
# EFBIG takes the place of ENOSPC), then of another function, still numba's error
FULL_DISK = """
import resource, signal, warnings
warnings.simplefilter("always")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))
from fastinit import _fastmath
print(_fastmath.max2(1.0, 2.0), _fastmath.max2(3.0, 2.0))
import racemod
racemod.make(2.0)(1.0)
"""


@pytest.mark.skipif(os.name == "nt", reason="a file size limit (RLIMIT_FSIZE) is POSIX")
def test_a_full_disk_leaves_fastinits_functions_compiled_but_unsaved(tmp_path):
    (tmp_path / "racemod.py").write_text(MODULE)
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK], env=_env(tmp_path), cwd=tmp_path,
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.stdout.split() == ["2.0", "3.0"], out.stderr
    assert out.stderr.count("RuntimeWarning: fastinit: numba could not save") == 1, out.stderr
    assert "<string>:7: RuntimeWarning" in out.stderr  # the call compiling it, not numba's line
    assert "OSError: [Errno 27] File too large" in out.stderr  # not fastinit's: numba's error
    # nothing half-written is left to load: no data file, no index naming one, no temp file
    left = sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert [n for n in left if n != _cache.LOCK_NAME and not n.endswith(".nbi")] == []


# A Ctrl-C that arrives while llvmlite runs its object-cache callback (the ctypes function
# LLVM calls when a module's object code is ready, "notify", or to ask for cached object
# code, "getbuffer"): ctypes prints the KeyboardInterrupt as "Exception ignored" and goes
# on.  Simulated: the callback raises it once, for racemod's function only.
CTRL_C_IN_CALLBACK = """
import sys
import fastinit._native
from numba.core.registry import cpu_target
fastinit._cache.SEALED_PACKAGES.add("racemod")  # its files sealed, as fastinit's own
import racemod
engine = cpu_target.target_context.codegen()._engine._ee
name = "_object_cache_" + sys.argv[1]
callback = getattr(engine, name)

def ctrl_c_inside(module, *args):
    if "make" in module.name:
        setattr(engine, name, callback)
        raise KeyboardInterrupt
    return callback(module, *args)

setattr(engine, name, ctrl_c_inside)
f = racemod.make(2.0)
try:
    print(f(1.0))
except KeyboardInterrupt:
    print("KeyboardInterrupt")
print(f(1.0))  # the same process goes on (a notebook's next cell)
"""


def test_ctrl_c_kept_raises_a_dropped_keyboardinterrupt_and_passes_others_on(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)

    class Dropping:  # Python drops what __del__ raises, as it does a ctypes callback's
        def __init__(self, error):
            self.error = error

        def __del__(self):
            raise self.error

    went_on = False
    with pytest.raises(KeyboardInterrupt), _cache.ctrl_c_kept():
        Dropping(ValueError("not ours"))
        Dropping(KeyboardInterrupt())
        went_on = True  # the block ends first, as LLVM's compilation does
    assert went_on
    assert [type(u.exc_value) for u in seen] == [ValueError]  # given to the previous hook
    assert sys.unraisablehook == seen.append  # put back

    def in_a_thread():  # no Ctrl-C there: the hook stays as it is
        with _cache.ctrl_c_kept():
            hooks.append(sys.unraisablehook)

    hooks = []
    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert hooks == [seen.append]


def test_a_ctrl_c_dropped_anywhere_in_a_compilation_is_raised_when_it_ends(monkeypatch):
    # e.g. in a WeakValueDictionary's callback while numba types the function: the first
    # fit went on to the end and returned "ok" (1 of 13 real Ctrl-C at 1 s intervals)
    from numba import njit
    from numba.core import typed_passes

    class Dropping:
        def __del__(self):
            raise KeyboardInterrupt

    typing = typed_passes.NopythonTypeInference.run_pass

    def dropping_typing(self, state):
        Dropping()
        return typing(self, state)

    _cache.install()
    monkeypatch.setattr(typed_passes.NopythonTypeInference, "run_pass", dropping_typing)
    f = njit(lambda x: x + 1)
    with pytest.raises(KeyboardInterrupt):
        f(1)
    monkeypatch.undo()
    assert f(1) == 2


@pytest.mark.parametrize("callback", ["notify", "getbuffer"])
def test_a_ctrl_c_inside_llvms_object_cache_callback_is_a_keyboardinterrupt(tmp_path, callback):
    # notify (compiling, cache empty): numba's save failed with "RuntimeError: no compiled
    # object yet"; getbuffer (loading, cache warm): the process crashed (SIGSEGV), the
    # function's code missing from the engine
    (tmp_path / "racemod.py").write_text(MODULE)
    env = _env(tmp_path)

    def run(script, *args):
        return subprocess.run(
            [sys.executable, "-c", script, *args], env=env, cwd=tmp_path, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip

    if callback == "getbuffer":
        assert run(CHECK).returncode == 0  # a warm cache
    out = run(CTRL_C_IN_CALLBACK, callback)
    assert (out.returncode, out.stdout.split()) == (0, ["KeyboardInterrupt", "2.0"]), out.stderr
    assert "Exception ignored" not in out.stderr  # raised, not printed and dropped
    check = run(CHECK)  # the cache holds make(2.0), whole: loaded, and right
    values_and_hits = json.loads(check.stdout.strip().splitlines()[-1])
    assert values_and_hits[:3] == [2.0, 3.0, 1], check.stderr


def test_a_warning_names_a_users_file_whose_path_starts_like_the_packages():
    # a script in <repo>/fastinit_notes/ is the user's, not fastinit's (<repo>/fastinit/)
    package = os.path.dirname(os.path.abspath(_cache.__file__))
    script = os.path.join(package + "_notes", "run.py")
    namespace = {"caller_level": _cache._caller_level}
    exec(compile("level = caller_level()", script, "exec"), namespace)
    assert namespace["level"] == 1  # the script's own line


def test_a_warning_passes_over_importlibs_import_module_to_the_users_line():
    # fastinit's lazy attributes import through importlib.import_module: the warning of a
    # cache with no writable directory was attributed to importlib/__init__.py
    import importlib

    package = os.path.dirname(os.path.abspath(_cache.__file__))
    namespace = {"caller_level": _cache._caller_level}
    for source, where in [
        ("def inner():\n    return caller_level()\n", os.path.join(package, "lazy.py")),
        ("def import_module():\n    return inner()\n", importlib.__file__),
        ("level = import_module()\n", os.path.join(os.sep, "elsewhere", "user.py")),
    ]:
        exec(compile(source, where, "exec"), namespace)
    assert namespace["level"] == 3  # fastinit's frame, importlib's, then the user's line


def test_a_full_disk_keeps_the_cache_files_saved_before(tmp_path, monkeypatch):
    # a save that fails part-way (a full disk: each write raises) leaves every file as it
    # was, the index and the data file it would have replaced, and no temporary file
    files = _saved(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_open = open

    class FullDisk:
        def __init__(self, path, mode):
            self.file = real_open(path, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(caching, "open", FullDisk, raising=False)  # numba's _open_for_write
    with pytest.raises(OSError, match="No space"):
        files.save(("key", 3), {"code": 3})  # a new entry: data file, then index
    with pytest.raises(OSError, match="No space"):
        files.save(("key", 1), {"code": 11})  # over an existing data file
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert (files.load(("key", 1)), files.load(("key", 2))) == ({"code": 1}, {"code": 2})
