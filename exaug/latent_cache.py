"""The latent cache of Algorithm 1: the latest μ(x_j) of every training exemplar, plus kNN search.

Search runs on faiss (exact L2, CPU) for CPU tensors and on ``torch.mm`` + ``topk`` for CUDA
tensors, so the cache never leaves the device it lives on. A CPU cache of many exemplars searches an
approximate faiss index instead (`InvertedFileIndex`, chosen by the ``knn_index`` setting), kept up to
date as the cache changes. faiss is only ever called from the process that owns the cache (the
training process), never from DataLoader workers.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import numpy as np
import torch

from .priors import squared_distances


# faiss computes distances with its own SIMD loop below this many queries and with BLAS
# above; for a training batch against tens of thousands of exemplars BLAS is the faster of the two.
_BLAS_QUERY_THRESHOLD = 20
# With knn_index="auto", a CPU cache of at least this many exemplars searches the approximate index; below
# it the search stays exact, and bit for bit what it was before the index existed (docs/exemplar-scale.md
# gives the measurements behind the figure).
APPROXIMATE_FROM = 200_000
# The approximate index's search depth (nprobe) is the smallest whose recall@10 against the exact search,
# on CALIBRATION_QUERIES sample queries, reaches CALIBRATION_RECALL: above the 0.95 asked of it, by a
# margin for the sampling error of so few queries.
CALIBRATION_RECALL = 0.97
CALIBRATION_QUERIES = 256
CALIBRATION_K = 10
# k-means trains the inverted lists on this many rows per list (faiss asks for at least 39).
TRAINING_ROWS_PER_LIST = 64
# The approximate index ranks RERANK·k candidates by their 4-bit codes, then the k nearest of them by exact distance.
RERANK = 4


@contextlib.contextmanager
def _blas_distances() -> Iterator[None]:
    import faiss

    previous = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = _BLAS_QUERY_THRESHOLD
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_threshold = previous


def _as_faiss(values: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(values.detach().cpu().numpy(), dtype=np.float32)


def exact_search(queries: torch.Tensor, database: torch.Tensor, k: int) -> torch.Tensor:
    """Row indices (B×k, nearest first) of the k rows of ``database`` nearest to each query, in L2, exactly."""
    if database.is_cuda:
        return squared_distances(queries.to(database.dtype), database).topk(k, largest=False).indices
    import faiss  # imported here so DataLoader workers that never search never load it

    with _blas_distances():
        _, neighbours = faiss.knn(_as_faiss(queries), _as_faiss(database), k)
    return torch.from_numpy(neighbours).to(torch.int64)


def at_scale(rows: int) -> bool:
    """Whether an exemplar set of ``rows`` is large enough for the paths built for millions: the approximate index
    (under "auto", on the CPU) and π drawn as a mask."""
    return rows >= APPROXIMATE_FROM


def resolve_knn_index(setting: str, rows: int, device: torch.device) -> str:
    """The index a cache of ``rows`` exemplars on ``device`` searches under the ``knn_index`` setting:
    "exact", or "ivf" (`InvertedFileIndex`). "auto" picks "ivf" for a CPU cache of at least
    APPROXIMATE_FROM rows; a CUDA cache always searches exactly, on the GPU."""
    if setting == "auto":
        return "ivf" if device.type == "cpu" and at_scale(rows) else "exact"
    if setting == "ivf" and device.type != "cpu":
        raise ValueError(f"knn_index='ivf' is a faiss index on the CPU, and this latent cache lives on {device}, where "
                         "the exact search runs on the GPU: use knn_index='auto' or 'exact'")
    if setting == "ivf" and rows < TRAINING_ROWS_PER_LIST:
        raise ValueError(f"knn_index='ivf' needs at least {TRAINING_ROWS_PER_LIST} exemplars to train its lists, and "
                         f"this set has {rows}: use knn_index='exact' (or 'auto'), which searches a set this small "
                         "faster anyway")
    if setting not in ("exact", "ivf"):
        raise ValueError(f"knn_index={setting!r} is not known; expected one of ('auto', 'exact', 'ivf')")
    return setting


class InvertedFileIndex:
    """Approximate L2 kNN over the rows of a latent cache: a faiss inverted file of 4-bit codes (IndexIVFPQFastScan,
    one sub-quantizer per dimension, scanned with SIMD), whose candidates are re-ranked by their exact rows.

    k-means splits the rows into about 2·√N lists; a query scans the codes of the ``nprobe`` lists whose centroids
    are nearest, skipping rows that are not candidates (a bitmap selector), keeps the RERANK·k nearest by their codes
    and returns the k of those nearest by the cache's own rows. Codes are approximate, the re-ranking is exact: the
    recall lost is the neighbours the scanned lists miss or the codes rank too far. ``nprobe`` is calibrated at each
    build against the exact search (CALIBRATION_RECALL). Rows that move are filed again (removed, then added under
    their new code); `rebuild` re-trains the lists, for when every row has moved (the cache's refresh at the end of an
    epoch).

    Args:
        values: N×d cache rows on the CPU; the index re-ranks with these rows as they are when it searches (the
            cache's own tensor, not a copy).
    """

    def __init__(self, values: torch.Tensor) -> None:
        self.rebuild(values)

    def rebuild(self, values: torch.Tensor) -> None:
        """Train the lists on a sample of ``values``, file every row, and calibrate ``nprobe``."""
        import faiss

        self.values = values
        rows = _as_faiss(values)
        n, d = rows.shape
        self.lists = max(1, min(n // TRAINING_ROWS_PER_LIST, round(2 * math.sqrt(n))))
        self.index = faiss.IndexIVFPQFastScan(faiss.IndexFlatL2(d), d, self.lists, d, 4)
        self.index.by_residual = True  # codes of the offset from the list's centroid: finer than of the row itself
        # A fixed numpy stream: the build never draws from the training's torch generators.
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(n, min(n, self.lists * TRAINING_ROWS_PER_LIST), replace=False))
        self.index.train(rows[sample])
        self.index.add(rows)
        self.nprobe = self._calibrated_nprobe(rows, rng)

    def update(self, indices: torch.Tensor) -> None:
        """File rows ``indices`` (unique or not) again, under the code and in the list of the value they hold now."""
        import faiss

        ids = np.unique(indices.cpu().numpy()).astype(np.int64)
        self.index.remove_ids(faiss.IDSelectorBatch(ids))
        self.index.add_with_ids(_as_faiss(self.values[torch.from_numpy(ids)]), ids)

    def nbytes(self) -> int:
        """Memory the index holds: the codes, their ids and the centroids (the rows it re-ranks with are the cache's)."""
        return self.index.ntotal * (self.index.code_size + 8) + self.lists * 4 * self.index.d

    def search(self, queries: torch.Tensor, k: int, candidates: torch.Tensor | None = None,
               nprobe: int | None = None) -> torch.Tensor:
        """Row indices (B×k, nearest first) of k rows near each query (fewer if there are fewer candidates), all of
        them ``candidates`` when given (indices, or an N-long boolean mask).

        ``nprobe`` (default: the calibrated one) is raised for the rows whose scanned lists held fewer than k
        candidates, until every row has k.
        """
        import faiss

        n = self.index.ntotal
        selector = None
        if candidates is not None:
            member = as_mask(candidates.cpu(), n)
            k = min(k, int(member.count_nonzero()))
            bitmap = np.packbits(member.numpy(), bitorder="little")
            selector = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap))
        queries = queries.detach().cpu().to(torch.float32).contiguous()
        depth = nprobe or self.nprobe
        found = self._reranked(queries, k, selector, depth)
        short = (found < 0).any(1)
        while short.any():
            depth = min(2 * depth, self.lists)
            found[short] = self._reranked(queries[short], k, selector, depth)
            short = (found < 0).any(1)
        return found

    def _reranked(self, queries: torch.Tensor, k: int, selector, nprobe: int) -> torch.Tensor:
        """The k of the RERANK·k rows nearest by code that are nearest by their exact rows; -1 where too few."""
        import faiss

        _, coarse = self.index.search(queries.numpy(), RERANK * k,
                                      params=faiss.SearchParametersIVF(sel=selector, nprobe=nprobe))
        coarse = torch.from_numpy(coarse)
        distances = (self.values[coarse.clamp(min=0)] - queries.unsqueeze(1)).square().sum(2)
        distances[coarse < 0] = math.inf  # a missing candidate ranks last and stays -1
        return coarse.gather(1, distances.topk(k, largest=False).indices)

    def _calibrated_nprobe(self, rows: np.ndarray, rng: np.random.Generator) -> int:
        """The smallest nprobe on a ladder of about √2 steps whose recall@CALIBRATION_K reaches CALIBRATION_RECALL,
        for queries at rows outside a random half of the cache searched among that half (as a training step
        searches the exemplar subset)."""
        n = rows.shape[0]
        order = rng.permutation(n)
        half, outside = order[: (n + 1) // 2], order[(n + 1) // 2:]
        k = min(CALIBRATION_K, half.shape[0])
        if outside.shape[0] == 0:
            return self.lists
        queries = torch.from_numpy(rows[rng.choice(outside, min(CALIBRATION_QUERIES, outside.shape[0]), replace=False)])
        candidates = torch.from_numpy(half)
        exact = candidates[exact_search(queries, torch.from_numpy(rows[half]), k)]
        ladder = sorted({min(self.lists, round(2 ** (step / 2))) for step in range(2 * math.ceil(math.log2(self.lists)) + 1)})
        for nprobe in ladder:
            if recall(self.search(queries, k, candidates, nprobe), exact) >= CALIBRATION_RECALL:
                return nprobe
        return self.lists


def as_mask(candidates: torch.Tensor, n: int) -> torch.Tensor:
    """Exemplars given as indices or as an N-long boolean mask, as the mask (on the device they are on)."""
    if candidates.dtype == torch.bool:
        return candidates
    member = torch.zeros(n, dtype=torch.bool, device=candidates.device)
    member[candidates] = True
    return member


def as_indices(candidates: torch.Tensor) -> torch.Tensor:
    """Exemplars given as indices or as an N-long boolean mask, as their indices in increasing order for a mask."""
    return candidates.nonzero().squeeze(1) if candidates.dtype == torch.bool else candidates


def recall(found: torch.Tensor, exact: torch.Tensor) -> float:
    """Mean over rows of the share of each row of ``exact`` (B×k indices) that ``found`` (B×k) holds too."""
    hits = (found.unsqueeze(2) == exact.unsqueeze(1)).any(1).sum()
    return hits.item() / exact.numel()


class LatentCache:
    """N×d table of exemplar latent means, updated in place as the encoder changes.

    Args:
        means: initial N×d means (Algorithm 1 fills the cache with one pass of the encoder).
        knn_index: what `search` searches, as `use_index` takes it.
    """

    def __init__(self, means: torch.Tensor, knn_index: str = "exact") -> None:
        if means.ndim != 2 or means.shape[0] == 0:
            raise ValueError(f"a latent cache needs N×d means with N > 0, got shape {tuple(means.shape)}")
        self.values = means.detach().clone().contiguous()
        self.index: InvertedFileIndex | None = None
        self.use_index(knn_index)

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def index_kind(self) -> str:
        """"exact" or "ivf": the search this cache runs now."""
        return "exact" if self.index is None else "ivf"

    def use_index(self, knn_index: str) -> None:
        """Search as the ``knn_index`` setting says from now on ("auto", "exact" or "ivf"; `resolve_knn_index`).
        An approximate index is built from the current means the first time, then kept up to date."""
        kind = resolve_knn_index(knn_index, len(self), self.values.device)
        if kind == "exact":
            self.index = None
        elif self.index is None:
            self.index = InvertedFileIndex(self.values)

    def update(self, indices: torch.Tensor, means: torch.Tensor) -> None:
        """Overwrite the cached means of exemplars ``indices`` (their latest encodings)."""
        self.write(indices, means)
        self.refile(indices)

    def write(self, indices: torch.Tensor, means: torch.Tensor) -> None:
        """Overwrite the cached means of ``indices`` without filing them again in the index (see `refile`)."""
        self.values[indices] = means.detach().to(self.values.dtype)

    def refile(self, indices: torch.Tensor) -> None:
        """File rows ``indices`` again in the approximate index, under the means they hold now (nothing without one)."""
        if self.index is not None:
            self.index.update(indices)

    def refresh(self, means: torch.Tensor) -> None:
        """Replace every cached mean, e.g. after a full pass of the encoder at the end of an epoch."""
        self.values.copy_(means.detach())
        if self.index is not None:
            self.index.rebuild(self.values)

    def search(self, queries: torch.Tensor, k: int, candidates: torch.Tensor | None = None) -> torch.Tensor:
        """Indices (B×k, nearest first) of the k cached means nearest to each query, in L2.

        Args:
            queries: B×d latent codes.
            k: neighbours per query (at most the number of candidates).
            candidates: optional exemplars to search among (e.g. the current exemplar subset), as indices or as an
                N-long boolean mask; the result still holds indices into the whole cache.
        """
        queries = queries.detach()
        if self.index is not None:
            return self.index.search(queries, min(k, len(self)), candidates)
        if candidates is not None:
            candidates = as_indices(candidates)
        database = self.values if candidates is None else self.values.index_select(0, candidates)
        found = exact_search(queries, database, min(k, database.shape[0]))
        return found if candidates is None else candidates[found]
