"""One writer per run directory: a second process training into a directory in use is refused.

Two runs writing the same checkpoint would each resume from the other's epochs and leave a
result that belongs to neither (e.g. two ``fit-classifier --first-seed`` calls whose seed
ranges overlap). The lock is an advisory ``flock`` on ``DIR/.lock``: the operating system
drops it when its process ends, however it ends, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not guarded against each other
    fcntl = None

LOCK_FILE = ".lock"


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
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                raise RunDirectoryBusy(
                    f"{directory} is in use by another run (its lock {directory / LOCK_FILE} is held); "
                    f"wait for that run to finish or choose another output directory") from error
        yield  # closing the file releases the lock
