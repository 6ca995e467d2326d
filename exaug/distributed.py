"""Training as one process of a ``torch.distributed`` group (DDP): who this process is, and what the ranks share.

Both trainers read the group from :func:`current_group`; without one (or in a group of one) they run the
single-process path unchanged. Under a group, rank 0 alone writes files; what decides the run (does a checkpoint
exist, the validation score, an error on rank 0) is decided once, on rank 0, and handed to every rank
(:func:`decided_by_writer`), so no rank can go its own way. Each rank trains on its shard of one shared
permutation (:func:`shard_of_permutation`, :class:`torch.utils.data.DistributedSampler`'s semantics), draws its own
noise (:func:`rank_seed`), and the generator's latent cache is kept identical on every rank
(:class:`ReplicatedLatentCache`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
import torch
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .device import resolve_device
from .latent_cache import LatentCache

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ProcessGroup:
    """This process's place in the running ``torch.distributed`` group."""

    rank: int
    world_size: int
    local_rank: int  # the rank among the processes of this node: its GPU under CUDA
    backend: str

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone writes checkpoints, bundles, logs and progress bars."""
        return self.rank == 0


def current_group() -> ProcessGroup | None:
    """The group this process trains in, or None when it trains alone (no group, or a group of one process).

    The local rank is torchrun's ``LOCAL_RANK``; a group started by other means should set it too when its
    processes share a node's GPUs (without it, the global rank is taken).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    rank = dist.get_rank()
    return ProcessGroup(rank, dist.get_world_size(), int(os.environ.get("LOCAL_RANK", rank)), dist.get_backend())


@contextlib.contextmanager
def torchrun_process_group() -> Iterator[ProcessGroup | None]:
    """Join the group torchrun describes in the environment (``WORLD_SIZE`` > 1) for the duration, when no group
    exists yet: NCCL on ``cuda:LOCAL_RANK`` when CUDA is present, gloo on the CPU otherwise. Elsewhere a no-op."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        yield current_group()
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        yield current_group()
    finally:
        dist.destroy_process_group()


def training_device(name: str | torch.device, group: ProcessGroup | None) -> torch.device:
    """The device a trainer in ``group`` (None: alone) trains on for the setting ``name``: under DDP, "auto" and
    "cuda" are this process's GPU, cuda:LOCAL_RANK."""
    device = resolve_device(name, None if group is None else group.local_rank)
    if group is not None:
        check_device(group, device)
    return device


def check_device(group: ProcessGroup, device: torch.device) -> None:
    """Refuse a training device the group's backend cannot all-reduce, or another rank's GPU."""
    if group.backend == "nccl" and device.type != "cuda":
        raise ValueError(f"the process group uses NCCL, which all-reduces CUDA tensors only, but device={str(device)!r}; "
                         "use --device auto (cuda:LOCAL_RANK), or start the group with the gloo backend to train on CPUs")
    if device.type == "cuda" and device.index is not None and device.index != group.local_rank:
        raise ValueError(f"rank {group.rank} (local rank {group.local_rank}) was given device={str(device)!r}; under DDP "
                         f"each process trains on its own GPU, cuda:LOCAL_RANK: use --device auto or cuda")


def rank_seed(seed: int, rank: int) -> int:
    """A seed for rank ``rank``'s own noise, independent of ``seed``'s stream and of every other rank's."""
    words = np.random.SeedSequence(seed, spawn_key=(rank,)).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])  # below 2**63, as torch.Generator.manual_seed wants


def shard_of_permutation(size: int, seed: int, epoch: int, group: ProcessGroup) -> torch.Tensor:
    """This rank's indices of epoch ``epoch``, as ``DistributedSampler(shuffle=True, seed=seed)`` after
    ``set_epoch(epoch)`` gives them: one permutation shared by all ranks, padded by its own start to a multiple of
    the world size, of which each rank takes every world-size-th index from its rank on."""
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed + epoch))
    total = -(-size // group.world_size) * group.world_size
    padded = torch.cat([order, order.repeat(-(-total // size))[: total - size]])
    return padded[group.rank:total:group.world_size]


def check_world_size(state: dict[str, Any], path: os.PathLike, group: ProcessGroup | None) -> None:
    """Refuse to resume a checkpoint written by another number of processes: each rank's noise stream, and
    which images each rank trains on, are that number's."""
    saved = state.get("world_size", 1)
    running = 1 if group is None else group.world_size
    if saved != running:
        raise ValueError(f"{path} was written by a run of {saved} process(es) and this run has {running}: resume it "
                         f"with the same number (torchrun --nproc_per_node {saved} ..., or without torchrun for 1), "
                         "or start afresh in another output directory")


def data_parallel(model: torch.nn.Module, device: torch.device, sync_buffers: bool = True) -> DistributedDataParallel:
    """``model`` wrapped in DDP on ``device``, its weights broadcast from rank 0; each backward averages its gradients
    over the ranks. ``sync_buffers=False`` skips DDP's copy of rank 0's buffers before each forward, for buffers the
    ranks keep alike themselves."""
    options: dict[str, Any] = {}
    if not sync_buffers:  # torch renamed the switch; the new name still copies them once, at the start
        modern = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
        options = {"forward_sync_buffers" if modern else "broadcast_buffers": False}
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None, **options)


def decided_by_writer(group: ProcessGroup | None, decide: Callable[[], T]) -> T:
    """Run ``decide`` on rank 0 alone and return its result on every rank; an exception it raises is raised on
    every rank, so all stop together with rank 0's message."""
    if group is None:
        return decide()
    outcome: list[Any] = [None]
    if group.is_writer:
        try:
            outcome[0] = (True, decide())
        except Exception as error:  # handed on, and raised on every rank below
            outcome[0] = (False, error)
    dist.broadcast_object_list(outcome, src=0)
    succeeded, value = outcome[0]
    if not succeeded:
        raise value
    return value


def gathered_objects(group: ProcessGroup, value: Any) -> list[Any]:
    """``value`` of every rank, by rank."""
    values: list[Any] = [None] * group.world_size
    dist.all_gather_object(values, value)
    return values


def summed(values: torch.Tensor) -> torch.Tensor:
    """The sum over ranks of ``values`` (float64 CPU tensors travel on the backend's device)."""
    on_device = values.to(_collective_device())
    dist.all_reduce(on_device)
    return on_device.to(values.device)


def broadcast_tensor(values: torch.Tensor) -> torch.Tensor:
    """Rank 0's ``values`` on every rank (same shape and dtype on each)."""
    on_device = values.to(_collective_device())
    dist.broadcast(on_device, src=0)
    return on_device.to(values.device)


def barrier() -> None:
    """Wait until every rank gets here."""
    if dist.is_initialized():
        dist.barrier()


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


class ReplicatedLatentCache(LatentCache):
    """A latent cache that stays identical on every rank.

    Each rank writes its own batch's means (and, with the neighbour gradient, its re-encoded neighbours) as a
    single process does. :meth:`synchronise`, called once per step, then replays every rank's writes of the step
    on every rank, in the order of the writes within a step and by rank within one write: a step's batch means
    land after all ranks' neighbour re-encodings, as in one process training on the whole batch.
    """

    def __init__(self, means: torch.Tensor, group: ProcessGroup) -> None:
        super().__init__(means)
        self.group = group
        self._writes: list[tuple[torch.Tensor, torch.Tensor]] = []

    def update(self, indices: torch.Tensor, means: torch.Tensor) -> None:
        """Write the means here at once, and keep them for `synchronise`, which also files them in an approximate
        index (once a step, for every rank's rows together)."""
        self.write(indices, means)
        self._writes.append((indices.to(self.values.device), means.detach().to(self.values.dtype)))

    def synchronise(self) -> None:
        """Apply every rank's writes since the last call, on every rank, and file the rows they touched again."""
        writes, self._writes = self._writes, []
        # One row per written mean: (which write of the step, rank, exemplar index, mean...), in float64, which
        # holds the indices and float32 means exactly.
        rows = torch.cat([torch.cat([torch.tensor([[step, self.group.rank]], dtype=torch.float64).expand(len(indices), 2),
                                     indices.cpu().unsqueeze(1).double(), means.cpu().double()], 1)
                          for step, (indices, means) in enumerate(writes)]
                         or [torch.empty(0, self.values.shape[1] + 3, dtype=torch.float64)])
        every = _gathered_rows(rows, self.group.world_size)
        writer = every[:, 0] * self.group.world_size + every[:, 1]
        # Applied one write of one rank at a time: within one assignment, which of two writes to an index wins
        # is undefined.
        for key in writer.unique():  # sorted: by write, then by rank
            chosen = every[writer == key]
            self.write(chosen[:, 2].long().to(self.values.device), chosen[:, 3:].to(self.values))
        if every.shape[0]:
            self.refile(every[:, 2].long().unique().to(self.values.device))


def _gathered_rows(rows: torch.Tensor, world_size: int) -> torch.Tensor:
    """Every rank's ``rows`` (a float64 table with as many columns on each rank), concatenated by rank."""
    device = _collective_device()
    counts = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world_size)]
    dist.all_gather(counts, torch.tensor([rows.shape[0]], device=device))
    longest = max(int(count.item()) for count in counts)
    padded = torch.zeros(longest, rows.shape[1], dtype=rows.dtype, device=device)
    padded[: rows.shape[0]] = rows.to(device)
    gathered = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(gathered, padded)
    return torch.cat([table[: int(count.item())] for table, count in zip(gathered, counts)]).cpu()
