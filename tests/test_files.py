"""fastinit._files.deferred_interrupt: a Ctrl-C inside the block is held, then delivered
as the handler in force before the block would have delivered it."""

import signal
import subprocess
import sys

import pytest

from fastinit._files import deferred_interrupt


def test_a_held_ctrl_c_is_raised_after_the_block():
    done = []
    with pytest.raises(KeyboardInterrupt), deferred_interrupt():
        signal.raise_signal(signal.SIGINT)
        done.append("rest of the block")
    assert done == ["rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_held_ctrl_c_under_the_default_action_ends_the_process_after_the_block():
    # SIG_DFL (a process that handed SIGINT back to the system) dropped the held Ctrl-C
    code = (
        "import signal\n"
        "from fastinit._files import deferred_interrupt\n"
        "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
        "with deferred_interrupt():\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "    print('block finished', flush=True)\n"
        "print('went on after a Ctrl-C', flush=True)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.stdout == "block finished\n"
    assert run.returncode == -signal.SIGINT


def test_a_handler_not_installed_from_python_is_left_in_place(monkeypatch):
    # signal.getsignal gives None for a handler the host program installed (Python
    # embedded); restoring None raised TypeError at the end of every block
    installed = []
    monkeypatch.setattr(signal, "getsignal", lambda signum: None)
    monkeypatch.setattr(signal, "signal", lambda *args: installed.append(args))
    with deferred_interrupt():
        pass
    assert installed == []
