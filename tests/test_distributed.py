"""Both trainers under torch.distributed: two gloo processes train as one run.

Rank 0 alone writes; every rank ends with the same weights; a run resumes on the same number of processes and
refuses another; a rank killed with SIGKILL stops the run under torchrun, and the same command resumes it; and two
processes at batch 50 follow one process at batch 100. Real process groups throughout (spawned processes, torchrun).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import distributed as dist
from torch.utils.data import DistributedSampler, TensorDataset

from conftest import blob_images
from exaug import ModelConfig, TrainConfig, epochs, fit_generator
from exaug.classifiers import ClassifierConfig, fit_classifier
from exaug.distributed import ProcessGroup, ReplicatedLatentCache, check_device, shard_of_permutation
from exaug.train import LOG_FILE, training_log

WORLD_SIZE = 2
PER_RANK_BATCH = 50
SMALL = ModelConfig(hidden_dim=32, latent_dim=4)
# How far an epoch's figure of two processes at batch 50 may lie from one process's at batch 100, relative to it.
# Measured over seeds 0-4 on this data, with each largest gap well inside (docs/scaling.md has the figures). The
# generator's ranks draw other noise than the single process, so its figures agree as runs of two seeds nearly do;
# the classifier's differ only in which images share a batch.
TOLERANCE = {"generator train_loss": 0.04, "generator val_elbo": 0.005, "classifier train_loss": 0.02}


def data() -> tuple[TensorDataset, TensorDataset]:
    train, val = blob_images(200), blob_images(60, seed=1)
    return TensorDataset(*train), TensorDataset(*val)


def generator_config(world_size: int, epochs: int = 2) -> TrainConfig:
    return TrainConfig(batch_size=PER_RANK_BATCH * WORLD_SIZE // world_size, epochs=epochs, warmup_epochs=1)


def classifier_config(world_size: int) -> ClassifierConfig:
    return ClassifierConfig(batch_size=PER_RANK_BATCH * WORLD_SIZE // world_size, epochs=2, hidden=(32,), workers=0)


# ------------------------------------------------------------------ running on two ranks
def on_two_ranks(work, folder: Path) -> list[dict]:
    """Run ``work(rank, folder)`` in two spawned processes of one gloo group; return what each rank saved."""
    torch.multiprocessing.spawn(_rank_main, args=(work, folder), nprocs=WORLD_SIZE)
    return [torch.load(folder / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD_SIZE)]


def _rank_main(rank: int, work, folder: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder / 'rendezvous'}", rank=rank, world_size=WORLD_SIZE)
    try:
        torch.save(work(rank, folder), folder / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def counting_checkpoint_writes(rank: int, tally: Path) -> None:
    """Count this process's checkpoint writes in ``tally`` (one line naming the rank per write); they still happen."""
    write = epochs.save_checkpoint

    def counted(*args, **kwargs):
        with open(tally, "a") as handle:
            handle.write(f"{rank}\n")
        return write(*args, **kwargs)

    epochs.save_checkpoint = counted


def train_generators(rank: int, folder: Path) -> dict:
    """An unbroken run of 2 epochs, and a run of 1 epoch resumed for a second; the streams and cache each rank
    ends epochs with; and a cache written differently by each rank, then synchronised."""
    counting_checkpoint_writes(rank, folder / "checkpoint_writes.txt")
    train, val = data()
    streams = []

    def keep_streams(trainer, record):
        streams.append({"subsets": trainer.generator.get_state(), "noise": trainer.noise.get_state(),
                        "cache": trainer.cache.values.clone()})

    unbroken = fit_generator(train, val, generator_config(WORLD_SIZE), folder / "unbroken", SMALL, progress=False,
                             callbacks=[keep_streams])
    fit_generator(train, val, generator_config(WORLD_SIZE, epochs=1), folder / "resumed", SMALL, progress=False)
    resumed = fit_generator(train, val, generator_config(WORLD_SIZE), folder / "resumed", SMALL, progress=False)
    indexed = {}

    def keep_index(trainer, record):  # what the approximate index finds, after a step's writes were replayed
        indexed.update(cache=trainer.cache.values.clone(),
                       found=trainer.cache.search(trainer.cache.values[:20], 5, torch.arange(0, 200, 2)))

    approximate = fit_generator(train, val, dataclasses.replace(generator_config(WORLD_SIZE, epochs=1), knn_index="ivf"),
                                folder / "ivf", SMALL, progress=False, callbacks=[keep_index])
    cache = ReplicatedLatentCache(torch.zeros(6, 2), ProcessGroup(rank, WORLD_SIZE, rank, "gloo"))
    cache.update(torch.tensor([rank, 2]), torch.full((2, 2), float(rank + 1)))  # both ranks write exemplar 2
    cache.update(torch.tensor([4 + rank]), torch.full((1, 2), 10.0 + rank))
    cache.synchronise()
    return {"unbroken": unbroken.state_dict(), "resumed": resumed.state_dict(), "streams": streams,
            "cache": cache.values, "ivf": {"weights": approximate.state_dict(), **indexed}}


def train_classifiers(rank: int, folder: Path) -> dict:
    counting_checkpoint_writes(rank, folder / "checkpoint_writes.txt")
    train, test = data()
    final = {}

    def keep_weights(trainer, record):
        final.update(trainer.model.state_dict())

    unbroken = fit_classifier(train, test, classifier_config(WORLD_SIZE), out=folder / "unbroken", progress=False,
                              callbacks=[keep_weights])
    config = classifier_config(WORLD_SIZE)
    with contextlib.suppress(Stopped):  # every rank stops after epoch 1's checkpoint, as a kill would
        fit_classifier(train, test, config, out=folder / "resumed", progress=False, callbacks=[stop_after_epoch_one])
    resumed = fit_classifier(train, test, config, out=folder / "resumed", progress=False)
    return {"unbroken": unbroken, "resumed": resumed, "weights": final}


class Stopped(Exception):
    pass


def stop_after_epoch_one(trainer, record):
    if record["epoch"] == 1:
        raise Stopped


@pytest.fixture(scope="module")
def generator_ranks(tmp_path_factory) -> tuple[list[dict], Path]:
    folder = tmp_path_factory.mktemp("generator_ranks")
    return on_two_ranks(train_generators, folder), folder


# ------------------------------------------------------------------ the generator
def test_two_generator_ranks_end_with_the_same_weights(generator_ranks):
    (first, second), _ = generator_ranks
    for name, weights in first["unbroken"].items():
        torch.testing.assert_close(second["unbroken"][name], weights, rtol=0, atol=0, msg=name)


def test_generator_checkpoints_and_log_are_written_once_by_rank_zero(generator_ranks):
    _, folder = generator_ranks
    writes = (folder / "checkpoint_writes.txt").read_text().split()
    assert writes == ["0"] * 5  # unbroken: 2 epochs; resumed: 1 + 1; with the approximate index: 1
    assert [record["epoch"] for record in training_log(folder / "unbroken")] == [1, 2]


def test_generator_ranks_share_exemplar_subsets_and_cache_but_not_noise(generator_ranks):
    (first, second), _ = generator_ranks
    for mine, theirs in zip(first["streams"], second["streams"]):
        assert torch.equal(mine["subsets"], theirs["subsets"])
        assert torch.equal(mine["cache"], theirs["cache"])
        assert not torch.equal(mine["noise"], theirs["noise"])


def test_with_the_approximate_index_the_ranks_keep_one_cache_one_index_and_one_model(generator_ranks):
    (first, second), _ = generator_ranks
    assert torch.equal(first["ivf"]["cache"], second["ivf"]["cache"])
    assert torch.equal(first["ivf"]["found"], second["ivf"]["found"])
    for name, weights in first["ivf"]["weights"].items():
        torch.testing.assert_close(second["ivf"]["weights"][name], weights, rtol=0, atol=0, msg=name)


def test_the_replicated_cache_applies_every_ranks_writes_in_order_on_every_rank(generator_ranks):
    (first, second), _ = generator_ranks
    expected = torch.tensor([[1.0, 1.0], [2.0, 2.0], [2.0, 2.0], [0.0, 0.0], [10.0, 10.0], [11.0, 11.0]])
    assert torch.equal(first["cache"], expected)  # exemplar 2: rank 1's write lands after rank 0's
    assert torch.equal(second["cache"], expected)


def test_a_resumed_generator_run_ends_as_the_unbroken_one(generator_ranks):
    (first, _), _ = generator_ranks
    for name, weights in first["unbroken"].items():
        torch.testing.assert_close(first["resumed"][name], weights, rtol=0, atol=0, msg=name)


def test_two_ranks_at_batch_50_follow_one_process_at_batch_100(generator_ranks, tmp_path):
    _, folder = generator_ranks
    train, val = data()
    records = []
    fit_generator(train, val, generator_config(1), tmp_path, SMALL, progress=False, log=records.append)
    for alone, shared in zip(records, training_log(folder / "unbroken"), strict=True):
        for key in ("train_loss", "val_elbo"):
            assert abs(shared[key] - alone[key]) <= TOLERANCE[f"generator {key}"] * abs(alone[key]), (key, alone, shared)


def test_resuming_on_another_number_of_processes_is_refused_in_one_line(generator_ranks, tmp_path):
    _, folder = generator_ranks
    shutil.copytree(folder / "unbroken", tmp_path / "run")
    train, val = data()
    with pytest.raises(ValueError, match=r"written by a run of 2 process\(es\) and this run has 1: resume it with"):
        fit_generator(train, val, generator_config(WORLD_SIZE, epochs=3), tmp_path / "run", SMALL, progress=False)


# ------------------------------------------------------------------ the classifier
@pytest.fixture(scope="module")
def classifier_ranks(tmp_path_factory) -> tuple[list[dict], Path]:
    folder = tmp_path_factory.mktemp("classifier_ranks")
    return on_two_ranks(train_classifiers, folder), folder


def without_timings(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in record.items() if key != "seconds"} for record in history]


def test_classifier_ranks_agree_and_rank_zero_alone_writes(classifier_ranks):
    (first, second), folder = classifier_ranks
    for name, weights in first["weights"].items():
        torch.testing.assert_close(second["weights"][name], weights, rtol=0, atol=0, msg=name)
    assert without_timings(first["unbroken"]["history"]) == without_timings(second["unbroken"]["history"])
    assert (folder / "checkpoint_writes.txt").read_text().split() == ["0"] * 4
    assert json.loads((folder / "unbroken" / "result.json").read_text())["history"] == first["unbroken"]["history"]


def test_a_resumed_classifier_run_ends_as_the_unbroken_one(classifier_ranks):
    (first, _), _ = classifier_ranks
    assert without_timings(first["resumed"]["history"]) == without_timings(first["unbroken"]["history"])


def test_two_classifier_ranks_at_batch_50_follow_one_process_at_batch_100(classifier_ranks):
    (first, _), _ = classifier_ranks
    train, test = data()
    alone = fit_classifier(train, test, classifier_config(1), progress=False, log=lambda record: None)
    for single, shared in zip(alone["history"], first["unbroken"]["history"], strict=True):
        assert abs(shared["train_loss"] - single["train_loss"]) <= TOLERANCE["classifier train_loss"] * single["train_loss"]
        assert shared["lr"] == pytest.approx(single["lr"])


# ------------------------------------------------------------------ the pieces
@pytest.mark.parametrize("size,world_size", [(10, 2), (7, 2), (7, 3)])
def test_generator_shards_are_distributed_samplers(size, world_size):
    for rank in range(world_size):
        sampler = DistributedSampler(range(size), num_replicas=world_size, rank=rank, shuffle=True, seed=5)
        sampler.set_epoch(3)
        group = ProcessGroup(rank, world_size, rank, "gloo")
        assert shard_of_permutation(size, 5, 3, group).tolist() == list(sampler)


def test_nccl_on_the_cpu_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="NCCL, which all-reduces CUDA tensors only, but device='cpu'; use --device"):
        check_device(ProcessGroup(0, 2, 0, "nccl"), torch.device("cpu"))


def test_another_ranks_gpu_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"rank 1 \(local rank 1\) was given device='cuda:0'.*cuda:LOCAL_RANK"):
        check_device(ProcessGroup(1, 2, 1, "gloo"), torch.device("cuda:0"))


# ------------------------------------------------------------------ a rank killed under torchrun
KILLABLE_RUN = textwrap.dedent("""
    import os, signal, sys
    import torch
    sys.path.insert(0, {tests!r})
    from test_distributed import SMALL, data, generator_config
    from exaug import fit_generator
    from exaug.distributed import torchrun_process_group

    def kill_rank_one_after_epoch_one(trainer, record):
        if record["epoch"] == 1 and trainer.group.rank == 1 and sys.argv[2] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)

    torch.set_num_threads(1)
    with torchrun_process_group():
        train, val = data()
        fit_generator(train, val, generator_config(2), sys.argv[1], SMALL, progress=False,
                      callbacks=[kill_rank_one_after_epoch_one])
""")


def torchrun(script: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD_SIZE),
               "--standalone", str(script), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


def test_a_killed_rank_stops_the_run_and_the_same_command_resumes_it(generator_ranks, tmp_path):
    (first, _), _ = generator_ranks
    script = tmp_path / "killable_run.py"
    script.write_text(KILLABLE_RUN.format(tests=str(Path(__file__).parent)))
    out = tmp_path / "run"
    killed = torchrun(script, str(out), "kill")
    assert killed.returncode != 0
    assert "SIGKILL" in killed.stderr
    assert [record["epoch"] for record in training_log(out)] == [1]
    resumed = torchrun(script, str(out), "keep")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [record["epoch"] for record in training_log(out)] == [1, 2]
    assert not list(out.glob(".*.tmp"))  # nothing half-written
    from exaug import load_generator

    weights = load_generator(out).state_dict()
    for name, unbroken in first["unbroken"].items():
        torch.testing.assert_close(weights[name], unbroken, rtol=0, atol=0, msg=name)
