"""One writer per run directory: a second process training into a directory in use is refused.

Two runs writing the same checkpoint would each resume from the other's epochs and leave a
result that belongs to neither (e.g. two ``fit-classifier --first-seed`` calls whose seed
ranges overlap). The lock is an advisory ``flock`` on ``DIR/.exaug-run.lock``: the operating
system drops it when the process holding it ends, however it ends, so a crash never leaves a
stale lock behind. Forked children (DataLoader workers) do not hold it: they could outlive the
run for a few seconds, or for as long as an interrupted run's loader stays referenced.
"""

from __future__ import annotations

import contextlib
import errno
import os
import warnings
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows has no flock: runs there are not guarded against each other
    fcntl = None

LOCK_FILE = ".exaug-run.lock"
# Filesystems that refuse flock (some network and FUSE mounts) answer with one of these.
_LOCKING_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}
_held_descriptors: set[int] = set()


class RunDirectoryBusy(ValueError):
    """Another process is training into the same directory."""


@contextlib.contextmanager
def run_directory_lock(directory: str | os.PathLike) -> Iterator[None]:
    """Hold ``directory``'s lock for the duration of the block, creating the directory if needed.

    Raises:
        RunDirectoryBusy: another process (or another open lock in this one) holds it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a") as handle:
        if fcntl is not None and _acquire(handle.fileno(), directory):
            _held_descriptors.add(handle.fileno())
        try:
            yield
        finally:
            _held_descriptors.discard(handle.fileno())  # closing the file releases the lock


def _acquire(descriptor: int, directory: Path) -> bool:
    """Take the lock without waiting; False where the filesystem cannot lock (the run goes on unguarded)."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        raise RunDirectoryBusy(
            f"{directory} is in use by another run (its lock {directory / LOCK_FILE} is held); "
            f"wait for that run to finish or choose another output directory") from error
    except OSError as error:
        if error.errno not in _LOCKING_UNSUPPORTED:
            raise
        warnings.warn(f"the filesystem of {directory} cannot lock files ({error.strerror}); "
                      f"nothing stops a second run from writing there at the same time", stacklevel=4)
        return False
    return True


def _release_in_forked_child() -> None:
    """Point a forked child's copies of held lock files at /dev/null, so only the parent holds the lock.

    ``dup2`` rather than ``close``: the child's file objects still own those descriptor numbers
    and will close them later.
    """
    for descriptor in _held_descriptors:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, descriptor)
        os.close(null)
    _held_descriptors.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_release_in_forked_child)
