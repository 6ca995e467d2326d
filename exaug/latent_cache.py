"""The latent cache of Algorithm 1: the latest μ(x_j) of every training exemplar, plus kNN search.

Search runs on faiss (exact L2, CPU) for CPU tensors and on ``torch.mm`` + ``topk`` for CUDA
tensors, so the cache never leaves the device it lives on. faiss is only ever called from
the process that owns the cache (the training process), never from DataLoader workers.
"""

from __future__ import annotations

import faiss
import numpy as np
import torch

from .priors import squared_distances


class LatentCache:
    """N×d table of exemplar latent means, updated in place as the encoder changes.

    Args:
        means: initial N×d means (Algorithm 1 fills the cache with one pass of the encoder).
    """

    def __init__(self, means: torch.Tensor) -> None:
        if means.ndim != 2 or means.shape[0] == 0:
            raise ValueError(f"a latent cache needs N×d means with N > 0, got shape {tuple(means.shape)}")
        self.values = means.detach().clone().contiguous()

    def __len__(self) -> int:
        return self.values.shape[0]

    def update(self, indices: torch.Tensor, means: torch.Tensor) -> None:
        """Overwrite the cached means of exemplars ``indices`` (their latest encodings)."""
        self.values[indices] = means.detach().to(self.values.dtype)

    def refresh(self, means: torch.Tensor) -> None:
        """Replace every cached mean, e.g. after a full pass of the encoder at the end of an epoch."""
        self.values.copy_(means.detach())

    def search(self, queries: torch.Tensor, k: int) -> torch.Tensor:
        """Indices (B×k, nearest first) of the k cached means nearest to each query, in L2."""
        k = min(k, len(self))
        queries = queries.detach()
        if self.values.is_cuda:
            return squared_distances(queries.to(self.values.dtype), self.values).topk(k, largest=False).indices
        database = np.ascontiguousarray(self.values.numpy(), dtype=np.float32)
        query_array = np.ascontiguousarray(queries.cpu().numpy(), dtype=np.float32)
        _, neighbours = faiss.knn(query_array, database, k)
        return torch.from_numpy(neighbours).to(torch.int64)
