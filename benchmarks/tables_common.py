"""What the docs' table modules share (benchmarks/tables.py and its tables_*.py topics): where the result files
lie, how a spread of figures is written, how an architecture is named, and how a sibling script is loaded.

benchmarks/ is not a package and is on sys.path only when a script there runs, so benchmarks/tables.py loads this
module by path and registers it under its name before its topic modules: their ``from tables_common import`` then
finds it in sys.modules however tables.py itself was loaded.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
from pathlib import Path
from types import ModuleType

RESULTS = Path(__file__).resolve().parent / "results"
# How the docs name the generator architectures.
ARCHITECTURE_NAMES = {"vae": "VAE (MLP)", "hvae": "HVAE", "convhvae": "ConvHVAE"}


def mean_and_spread(values: list[float]) -> str:
    """"m" for one value, "m ± sd" over several."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def signed(value: float, digits: int = 2) -> str:
    """A difference with its sign ("+0.36", "-0.86"), and "0.00" when it rounds to zero: "-0.00" would claim a side."""
    text = f"{value:+.{digits}f}"
    return text[1:] if float(text) == 0 else text


def paired_spread(differences: list[float]) -> str:
    """"+m ± sd" of paired differences: the sign says which side is lower."""
    return f"{signed(statistics.mean(differences))} ± {statistics.stdev(differences):.2f}"


def sibling_benchmark(name: str) -> ModuleType:
    """The script benchmarks/NAME.py as a module (registered under NAME: its dataclasses look their module up)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
