"""fastinit._files.deferred_interrupt: a Ctrl-C inside the block is held, then delivered
as the handler in force before the block would have delivered it."""

import errno
import os
import signal
import stat
import subprocess
import sys

import pytest

from fastinit._files import STOP_SIGNALS, deferred_interrupt, terminate_as_interrupt, write_bytes


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


@pytest.mark.parametrize("name", ["r" * 250 + ".json", "結果" * 40 + ".csv"], ids=["ascii", "utf8"])
def test_a_file_with_a_name_near_the_systems_limit_is_replaced(tmp_path, name):
    target = tmp_path / name  # 255 characters, or 244 bytes of UTF-8: within the usual limit
    for text in (b"first", b"second"):
        write_bytes(target, text)
        assert target.read_bytes() == text
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left


def test_a_replaced_file_reaches_the_disk_before_its_rename(tmp_path, monkeypatch):
    synced = []
    target = tmp_path / "result.json"
    target.write_bytes(b"old")

    def fsync(fd):
        synced.append((os.fstat(fd).st_size, target.read_bytes()))

    monkeypatch.setattr(os, "fsync", fsync)
    write_bytes(target, b"12345")
    assert synced[0] == (5, b"old")  # the new data, synced while the name is the old file's
    assert target.read_bytes() == b"12345"


def test_a_replaced_file_is_renamed_durably(tmp_path, monkeypatch):
    # without the directory's fsync after the rename, a power loss could leave the name
    # pointing at the old file although write_bytes had returned
    synced = []
    target = tmp_path / "result.json"
    target.write_bytes(b"old")

    def fsync(fd):
        synced.append((stat.S_ISDIR(os.fstat(fd).st_mode), target.read_bytes()))

    monkeypatch.setattr(os, "fsync", fsync)
    write_bytes(target, b"new")
    # the data synced under the old name, then the directory once the name is the new file's
    assert synced == [(False, b"old"), (True, b"new")]


# ENOTSUP and EOPNOTSUPP (errno 95 on Linux) made every write on such a mount fail,
# the old file kept
@pytest.mark.parametrize("code", ["EINVAL", "ENOTSUP", "EOPNOTSUPP", "EIO"])
def test_a_file_system_that_cannot_sync_still_gets_the_file_but_a_failed_sync_fails(
    tmp_path, monkeypatch, code
):
    def fsync(fd):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))

    monkeypatch.setattr(os, "fsync", fsync)
    target = tmp_path / "result.json"
    target.write_bytes(b"old")
    if code != "EIO":  # the mount does not sync (some network and FUSE mounts)
        write_bytes(target, b"new")
        assert target.read_bytes() == b"new"
        return
    with pytest.raises(OSError, match="Input/output error") as e:  # the data may not be on disk
        write_bytes(target, b"new")
    assert e.value.filename == str(target)  # named, as a failed open is
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_ctrl_c_just_after_the_temporary_file_is_made_leaves_none(
    tmp_path, monkeypatch, ctrl_c_after
):
    # the Ctrl-C landed between os.open and the try that removes the temporary file
    from fastinit import _files

    monkeypatch.setattr(_files.os, "open", ctrl_c_after(os.open))
    with pytest.raises(KeyboardInterrupt):
        write_bytes(tmp_path / "a.txt", b"data")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_a_ctrl_c_just_after_the_staging_folder_is_made_leaves_none(
    tmp_path, monkeypatch, ctrl_c_after
):
    # the Ctrl-C landed between mkdtemp and the end of Output.__enter__: no __exit__ ran
    import tempfile

    from fastinit.experiments._common import Output

    monkeypatch.setattr(tempfile, "mkdtemp", ctrl_c_after(tempfile.mkdtemp))
    with pytest.raises(KeyboardInterrupt), Output(tmp_path, "t"):
        pass
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", [s.name for s in STOP_SIGNALS])
def test_a_callers_own_stop_signal_handler_stays_in_force(name):
    # the block took over a handler the caller had installed: the signal raised
    # KeyboardInterrupt and the caller's handler never ran
    signum = getattr(signal, name)
    caught = []

    def own(signum, frame):
        caught.append(signum)

    previous = signal.signal(signum, own)
    steps = []
    try:
        with terminate_as_interrupt() as received:
            assert signal.getsignal(signum) is own
            signal.raise_signal(signum)
            steps.append("the block ran to its end")
        assert signal.getsignal(signum) is own
    finally:
        signal.signal(signum, previous)
    assert steps == ["the block ran to its end"]
    assert caught == [signum] and received == []
