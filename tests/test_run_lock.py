"""exaug.run_lock: one run per output directory, and no stale lock after a crash or in forked workers."""

import errno
import multiprocessing
import subprocess
import sys
import time

import pytest

from exaug import run_lock
from exaug.run_lock import LOCK_FILE, RunDirectoryBusy, run_directory_lock


def test_a_directory_in_use_is_refused_with_a_message_naming_it(tmp_path):
    with run_directory_lock(tmp_path / "run"):
        with pytest.raises(RunDirectoryBusy, match=r"run is in use by another run .*choose another output directory"):
            with run_directory_lock(tmp_path / "run"):
                pass


def test_the_lock_is_free_again_after_the_block(tmp_path):
    with run_directory_lock(tmp_path):
        pass
    with run_directory_lock(tmp_path):
        assert (tmp_path / LOCK_FILE).exists()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom exaug.run_lock import run_directory_lock\n"
         f"with run_directory_lock({str(tmp_path)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirectoryBusy):
            with run_directory_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with run_directory_lock(tmp_path):
        pass


def _signal_then_sleep(started):
    started.set()
    time.sleep(60)


def test_a_forked_child_still_running_does_not_keep_the_lock(tmp_path):
    fork = multiprocessing.get_context("fork")
    started = fork.Event()
    with run_directory_lock(tmp_path):
        child = fork.Process(target=_signal_then_sleep, args=(started,))
        child.start()  # as a DataLoader worker is forked while a run holds its directory
        assert started.wait(30)
    try:
        assert child.is_alive()
        with run_directory_lock(tmp_path):
            pass
    finally:
        child.kill()
        child.join()


def test_a_filesystem_that_cannot_lock_gives_a_warning_and_the_run_goes_on(tmp_path, monkeypatch):
    def unsupported(descriptor, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(run_lock.fcntl, "flock", unsupported)
    ran = False
    with pytest.warns(UserWarning, match="cannot lock files"):
        with run_directory_lock(tmp_path):
            ran = True
    assert ran
