"""Where computation runs, for every trainer and command: the device (CUDA when present, else the CPU) and the
number of CPU threads."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device, local_rank: int | None = None) -> torch.device:
    """"auto" → CUDA when present, else CPU; any other name is passed to torch.device.

    ``local_rank``: this process's rank on its node, under DDP; "auto" and "cuda" then name its own GPU,
    cuda:``local_rank``, as each DDP process trains on one GPU.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if local_rank is not None and name == "cuda":
        name = f"cuda:{local_rank}"
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"device={name!r} is not a device name; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} asks for CUDA but no GPU is available; use 'auto' or 'cpu'")
    return device


def apply_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads in torch and faiss (None: leave their defaults, all cores)."""
    if threads is not None:
        import faiss

        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(threads)
