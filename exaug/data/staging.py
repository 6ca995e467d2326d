"""Staging folders that killed writes left behind are removed the next time, never one another process is using.

`fetch` stages a data set in ``<root>/.staging-<random>`` and `write_image_folder` an image folder in
``.<out>.<random>`` beside it; both rename what they staged into place. A kill -9 leaves the staging folder
behind (tens of MB). While a process stages in a folder it holds a shared ``flock`` on that folder (the
directory itself, so no lock file is left there); a process that can take the lock exclusively knows that
nobody is staging there, so the staging folders it finds are leftovers, and it removes them before it stages
under a shared lock itself. The operating system drops a killed process's lock, so its leftovers are removed
by the next call. Where ``flock`` is missing (Windows) or refused (network file systems do not lock
directories), leftovers stay.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows: no flock, so no way to tell a leftover from a folder in use
    fcntl = None

# tempfile's random part of a name: 8 characters of these.
RANDOM_PART = "[a-z0-9_]{8}"


@contextlib.contextmanager
def staging_area(parent: Path, leftover: re.Pattern[str]) -> Iterator[None]:
    """Stage in ``parent`` during the block; first remove the folders named like ``leftover`` when nobody else is
    staging there."""
    parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # no flock (Windows): leftovers stay, as the docs say
        yield
        return
    descriptor = os.open(parent, os.O_RDONLY)
    try:
        if _flock(descriptor, exclusive=True):
            remove_leftovers(parent, leftover)
        _flock(descriptor, exclusive=False)  # waits only while another process removes leftovers
        yield
    finally:
        os.close(descriptor)  # releases the lock


def remove_leftovers(parent: Path, leftover: re.Pattern[str]) -> list[Path]:
    """Remove the folders in ``parent`` whose names match ``leftover``; return them. Only while holding the lock."""
    found = [path for path in parent.iterdir()
             if leftover.fullmatch(path.name) and path.is_dir() and not path.is_symlink()]
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    return found


def _flock(descriptor: int, exclusive: bool) -> bool:
    """Take (or convert to) the exclusive lock without waiting, or the shared one; False where it cannot be had."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH)
    except OSError:  # BlockingIOError: another process stages there; others: this file system cannot lock it
        return False
    return True
