"""The latent cache of Algorithm 1: the latest μ(x_j) of every training exemplar, plus kNN search.

Search runs on faiss (exact L2, CPU) for CPU tensors and on ``torch.mm`` + ``topk`` for CUDA
tensors, so the cache never leaves the device it lives on. faiss is only ever called from
the process that owns the cache (the training process), never from DataLoader workers.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

from .priors import squared_distances


# faiss computes distances with its own SIMD loop below this many queries and with BLAS
# above; for a training batch against tens of thousands of exemplars BLAS is the faster of the two.
_BLAS_QUERY_THRESHOLD = 20


@contextlib.contextmanager
def _blas_distances() -> Iterator[None]:
    import faiss

    previous = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = _BLAS_QUERY_THRESHOLD
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_threshold = previous


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

    def search(self, queries: torch.Tensor, k: int, candidates: torch.Tensor | None = None) -> torch.Tensor:
        """Indices (B×k, nearest first) of the k cached means nearest to each query, in L2.

        Args:
            queries: B×d latent codes.
            k: neighbours per query (at most the number of candidates).
            candidates: optional indices of the exemplars to search among (e.g. the current
                exemplar subset); the result still holds indices into the whole cache.
        """
        database = self.values if candidates is None else self.values.index_select(0, candidates)
        k = min(k, database.shape[0])
        queries = queries.detach()
        if database.is_cuda:
            found = squared_distances(queries.to(database.dtype), database).topk(k, largest=False).indices
        else:
            import faiss  # imported here so DataLoader workers that never search never load it

            with _blas_distances():
                _, neighbours = faiss.knn(
                    np.ascontiguousarray(queries.cpu().numpy(), dtype=np.float32),
                    np.ascontiguousarray(database.numpy(), dtype=np.float32),
                    k,
                )
            found = torch.from_numpy(neighbours).to(torch.int64)
        return found if candidates is None else candidates[found]
