"""Figures without a display: pyplot on the Agg backend, and PNGs written atomically and then closed."""

from __future__ import annotations

import os
from typing import Any

from .atomic import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed), imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def save_png(figure: Any, path: str | os.PathLike) -> None:
    """Write ``figure`` to ``path`` as a PNG in one atomic rename, then close it to free its memory."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    pyplot().close(figure)
