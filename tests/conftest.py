"""Shared test setup.

Subprocess tests inherit NUMBA_CACHE_DIR so that every process of one test run
shares one on-disk compilation cache (a fresh clone compiles each kernel once),
and FASTINIT_CACHE_DIR so that the decompressed MNIST copy goes beside it, not
into the home directory.

The CUDA twins run under numba's CUDA simulator unless an NVIDIA driver is
present (or NUMBA_ENABLE_CUDASIM is set either way by the caller): the switch
must be in the environment before numba is first imported, hence here.
"""

from __future__ import annotations

import ctypes.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
os.environ.setdefault("FASTINIT_CACHE_DIR", str(ROOT / ".fastinit_cache"))
if "NUMBA_ENABLE_CUDASIM" not in os.environ and ctypes.util.find_library("cuda") is None:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"


def run_python(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter with extra environment; return stdout."""
    full_env = {**os.environ, **env}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=600,
    )
    if done.returncode != 0:
        raise AssertionError(f"subprocess failed:\n{done.stderr}")
    return done.stdout


@pytest.fixture
def python_subprocess():
    return run_python


@pytest.fixture
def sigint_default():
    """SIGINT raises KeyboardInterrupt here and in subprocesses, as in a terminal.

    A job started in the background (``cmd &`` in a script, ``nohup``) inherits
    SIGINT ignored, and Python then keeps it ignored: a Ctrl-C test would fail.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def sighup_default():
    """SIGHUP at its default here, so in subprocesses too, as under a terminal.

    Under ``nohup`` (or a runner that ignores it) SIGHUP is inherited ignored, and a
    command rightly keeps it so: a hangup test would then see no hangup.
    """
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGHUP, previous)


@pytest.fixture
def ctrl_c_after(sigint_default):
    """``ctrl_c_after(f)``: ``f`` with a real SIGINT arriving as soon as it has returned
    (its value made, not yet handed back): a Ctrl-C in the window after a call."""

    def wrap(function):
        def then_ctrl_c(*args, **kwargs):
            value = function(*args, **kwargs)
            signal.raise_signal(signal.SIGINT)
            return value

        return then_ctrl_c

    return wrap
