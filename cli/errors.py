"""How the command line reports a problem the user can fix: one line naming it and the fix, no traceback.

The library raises ValueError for bad settings, data, bundles and checkpoints, and FetchError when no source
gives a data set (each message names the fix); the operating system raises OSError for paths that cannot be
written (a file where a folder is wanted, a read-only mount, a full disk). All end in one line.
``exaug --debug`` shows the traceback instead; any other exception is a bug and always shows it.
"""

from __future__ import annotations

import errno
from typing import Any

import click

from exaug.data import FetchError

# What to do about the OSErrors a command meets when writing its output.
_OS_ADVICE = {
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EEXIST: "it is in the way (a file where a folder is needed, or an output already there): choose another path",
    errno.EROFS: "the file system is read-only: choose a writable place",
    errno.EACCES: "you may not write there: choose a writable place",
    errno.EPERM: "you may not write there: choose a writable place",
    errno.ENOSPC: "the disk is full: free some space and run the same command again (what was saved before stays "
                  "intact, and a training run resumes from its last checkpoint)",
    errno.EISDIR: "a folder stands where a file is wanted: choose another path",
}


def one_line(error: ValueError | OSError | FetchError) -> str:
    """The message a user sees for ``error``."""
    if isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        advice = _OS_ADVICE.get(error.errno)
        return f"{where}{error.strerror}" + (f"; {advice}" if advice else "")
    return str(error)


class UserErrorsGroup(click.Group):
    """A command group whose commands report ValueError and OSError as one line (``--debug``: a traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ValueError, OSError, FetchError) as error:
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(one_line(error)) from error
