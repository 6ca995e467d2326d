"""Device selection shared by every trainer: CUDA when present, the CPU otherwise."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device) -> torch.device:
    """"auto" → CUDA when present, else CPU; any other name is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
