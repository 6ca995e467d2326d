"""EpochTrainer: the skeleton both of exaug's trainers share (the generator's and the classifier's).

The skeleton owns what happens around each epoch, in an order that makes every run resumable:

1. the output folder is locked against a second run (:func:`exaug.run_lock.run_directory_lock`), and the
   temporary files of writes a kill cut short are removed;
2. a checkpoint there is resumed, after its identity is checked against this run's settings;
3. each epoch is trained and scored, and its record is kept (the generator appends it to a JSON log);
4. the full training state is written as an atomic checkpoint;
5. the record is logged and handed to each callback;
6. after the last epoch, the run finishes (writes its result) while the folder is still locked.

A kill at any point leaves the last checkpoint and what it describes; the same call resumes from there.
Subclasses say how to build or restore their state, how to train one epoch and what their checkpoint holds.

Under ``torch.distributed`` (:mod:`exaug.distributed`) every rank runs this skeleton; rank 0 alone takes the lock,
prepares the folder, writes checkpoints, logs and progress bars, and whether to resume is its decision, handed to
every rank. Every rank restores the checkpoint, trains its shard and calls the callbacks once the checkpoint is on
disk; a subclass keeps its own files to rank 0 through :attr:`EpochTrainer.writes_files`.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Iterable

from tqdm.auto import tqdm

from .atomic import remove_stale_temporaries
from .checkpoint import CHECKPOINT_FILE, save_checkpoint
from .distributed import ProcessGroup, barrier, check_world_size, current_group, decided_by_writer, gathered_objects
from .run_lock import run_directory_lock

# A log: called with each epoch's record.
EpochLog = Callable[[dict[str, Any]], None]
# Called with the trainer and each epoch's record once that epoch's checkpoint is on disk; the trainer
# exposes its model and ``epoch``. An exception raised in a callback stops the run there, and the same
# call later resumes it at the next epoch.
EpochCallback = Callable[["EpochTrainer", dict[str, Any]], None]


def print_json_line(record: dict[str, Any]) -> None:
    """The default log: one JSON line per epoch on stdout, written around any progress bar."""
    tqdm.write(json.dumps(record), file=sys.stdout)


class EpochTrainer(ABC):
    """One resumable training run of ``epochs`` epochs into ``out`` (None: nothing is written)."""

    def __init__(self, out: Path | None, epochs: int) -> None:
        self.out = out
        self.epochs = epochs
        self.epoch = 0  # the last finished epoch
        self.group: ProcessGroup | None = current_group()  # None: this process trains alone

    @property
    def is_writer(self) -> bool:
        """Whether this process reports: alone, or rank 0 of a group."""
        return self.group is None or self.group.is_writer

    @property
    def writes_files(self) -> bool:
        """Whether this process writes into ``out``: there is one, and this process is the writer."""
        return self.out is not None and self.is_writer

    def with_rank_states(self, state: dict[str, Any], own: Any) -> dict[str, Any]:
        """``state`` with, under DDP, the number of processes and every rank's ``own`` (what that rank alone holds,
        such as its noise streams), by rank, for :meth:`own_rank_state` to hand back; alone, ``state`` as it is."""
        if self.group is None:
            return state
        return {**state, "world_size": self.group.world_size, "rank_states": gathered_objects(self.group, own)}

    def own_rank_state(self, state: dict[str, Any], path: Path) -> Any:
        """This rank's part of a checkpoint :meth:`with_rank_states` wrote (None alone), after refusing one written by
        another number of processes."""
        check_world_size(state, path, self.group)
        return None if self.group is None else state["rank_states"][self.group.rank]

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out is None else self.out / CHECKPOINT_FILE

    def fit(self, progress: bool = True, log: EpochLog | None = None,
            callbacks: Iterable[EpochCallback] = ()) -> None:
        """Train the epochs left, resuming the checkpoint in ``out`` when there is one."""
        progress = progress and self.is_writer
        log = (log or print_json_line) if self.is_writer else None
        if self.out is None:
            self._epochs(progress, log, tuple(callbacks))
            self.finish()
            return
        with contextlib.ExitStack() as lock:
            def prepare_folder() -> bool:
                lock.enter_context(run_directory_lock(self.out))
                remove_stale_temporaries(self.out)  # left by writes a kill cut short; the lock keeps writers out
                return self.checkpoint_path.exists()

            if decided_by_writer(self.group, prepare_folder):
                self.resume()
            else:
                decided_by_writer(self.group, self.start)
            self._epochs(progress, log, tuple(callbacks))
            if self.writes_files:
                self.finish()
            barrier()  # no rank returns before the result is written and the lock is let go

    def _epochs(self, progress: bool, log: EpochLog | None, callbacks: tuple[EpochCallback, ...]) -> None:
        bar = tqdm(range(self.epoch + 1, self.epochs + 1), desc="epochs", disable=not progress,
                   initial=self.epoch, total=self.epochs, file=sys.stderr)
        for epoch in bar:
            if self.stopped():
                break
            started = time.perf_counter()
            record = {"epoch": epoch, **self.train_epoch(epoch, progress)}
            record["seconds"] = round(time.perf_counter() - started, 3)
            self.epoch = epoch
            # The record is kept before the checkpoint: a kill between the two leaves a record that resuming
            # drops and writes again, where the other order would lose the epoch's record for good.
            self.keep_record(record)
            if self.out is not None:
                state = self.state()  # on every rank: a state may gather what each rank holds
                if self.writes_files:
                    save_checkpoint(self.checkpoint_path, self.identity(), state)
                barrier()  # the callbacks of every rank see the checkpoint on disk
            if log is not None:
                log(record)
            for callback in callbacks:
                callback(self, record)
            bar.set_postfix(self.progress_fields(record))

    # ------------------------------------------------------------ what subclasses say
    def start(self) -> None:
        """Prepare ``out`` for a fresh run (nothing to do by default); under DDP, rank 0 alone calls it."""

    @abstractmethod
    def resume(self) -> None:
        """Restore the state saved in the checkpoint, after checking its identity against this run's."""

    @abstractmethod
    def train_epoch(self, epoch: int, progress: bool) -> dict[str, Any]:
        """Train and score epoch ``epoch`` (1-based); return its record's fields."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed by this run: its settings and data."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Everything needed to go on after the last finished epoch exactly as an unbroken run would."""

    def finish(self) -> None:
        """Write what the finished run reports (nothing by default); with ``out``, only the writer calls it."""

    def keep_record(self, record: dict[str, Any]) -> None:
        """Keep the epoch's record (before its checkpoint is written)."""

    def stopped(self) -> bool:
        """Whether the run is over before its epoch budget (early stopping)."""
        return False

    def progress_fields(self, record: dict[str, Any]) -> dict[str, Any]:
        """Fields of the record shown beside the progress bar."""
        return {}
