"""Memory and step time of generator training on an exemplar set of a million images kept out of RAM (issue 27 §4).

Writes N synthetic 28×28 uint8 images (a bright square at one of ten places on a noisy background, the place being
the label) as a .npy file, 784 MB at 1M, and trains on it memory-mapped (``ExemplarImages.from_npy``), as
``fit_generator`` would: the trainer's own set-up (checksum, first encoding of every exemplar into the latent
cache), the kNN prior term (building the approximate index when ``knn_index`` picks it), warm-up and timed training
steps of the paper's MLP VAE (hidden width 300, 40-d latent, k = 10, gradient through the neighbours it re-encodes),
and an epoch's end (every exemplar encoded again, the cache refreshed, the set handed to the model). Each run is its
own process, so its peak memory is its own: the peak resident set (``ru_maxrss``) counts the file's pages the run
has touched, which the system may reclaim, so the peak of anonymous memory (what the run cannot give back, sampled
every 20 ms) is given beside it. ``--runs`` picks what to run: ``memmap:auto`` (the index at 1M),
``memmap:exact``, and ``tensor:auto``, the same images read into RAM as a dataset is (float32, plus their uint8 copy).

    python benchmarks/exemplar_memory.py --exemplars 1000000 --out benchmarks/results/exemplar_memory.json

The .npy goes to a temporary folder, deleted at the end, unless ``--data PATH`` names where to keep it (an existing
file of the right shape there is used as it is).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exaug.atomic import atomic_write_text
from exaug.config import ModelConfig, TrainConfig
from exaug.device import apply_threads
from exaug.exemplar_images import ExemplarImages
from exaug.train import GeneratorTrainer

SIDE, CLASSES, CHUNK = 28, 10, 50_000
MODEL = ModelConfig(input_shape=(1, SIDE, SIDE))  # the paper's MLP VAE: hidden width 300, 40-d latent
MB = 1e6


def write_synthetic_images(path: Path, count: int, seed: int = 0) -> np.ndarray:
    """``count`` noisy 28×28 images of a bright 8×8 square at one of ten places, written chunk by chunk to the .npy
    ``path`` (never whole in RAM); returns their labels, the place of each square."""
    rng = np.random.default_rng(seed)
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, 1, SIDE, SIDE))
    labels = rng.integers(0, CLASSES, count)
    corners = [(2 + 10 * (place // 5), 2 + 5 * (place % 5)) for place in range(CLASSES)]
    for start in range(0, count, CHUNK):
        chunk = rng.integers(0, 40, (min(CHUNK, count - start), 1, SIDE, SIDE), dtype=np.uint8)
        for row, label in enumerate(labels[start:start + len(chunk)]):
            top, left = corners[label]
            chunk[row, 0, top:top + 8, left:left + 8] += 200
        images[start:start + len(chunk)] = chunk
    images.flush()
    del images
    return labels


class MemorySampler:
    """The peak of this process's anonymous and file-backed resident memory, from /proc/self/status every 20 ms."""

    def __init__(self) -> None:
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def now(self) -> dict[str, float]:
        """Anonymous and file-backed resident memory now, in MB."""
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in self.peak:
                fields[name] = int(value.split()[0]) * 1024 / MB
        return fields

    def _sample(self) -> None:
        while self.running:
            for name, value in self.now().items():
                self.peak[name] = max(self.peak[name], value)
            time.sleep(0.02)

    def stop(self) -> dict[str, float]:
        self.running = False
        self.thread.join()
        return {f"peak_{name}_mb": value for name, value in self.peak.items()}


def measure(path: str, labels: np.ndarray, source: str, knn_index: str, steps: int, warmup: int,
            threads: int) -> dict[str, Any]:
    """One run in a process of its own: set-up, training steps and an epoch's end on the exemplar set at ``path``."""
    apply_threads(threads)
    memory = MemorySampler()
    phases: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}

    def phase(name: str, started: float) -> None:
        seconds[name] = time.perf_counter() - started
        phases[name] = memory.now()

    phases["start"] = memory.now()  # torch, faiss and exaug imported: what any run holds before its data
    started = time.perf_counter()
    if source == "memmap":
        exemplars = ExemplarImages.from_npy(path, labels)
    else:  # as fit_generator holds a dataset: float32 in [0, 1], and the uint8 copy beside it
        exemplars = ExemplarImages(torch.from_numpy(np.load(path)).float() / 255, labels)
    phase("open", started)
    started = time.perf_counter()
    exemplars.checksum()
    phase("checksum", started)
    config = TrainConfig(exemplar_search="knn", knn_index=knn_index, gradient_neighbours=None, device="cpu", seed=0)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        trainer = GeneratorTrainer(exemplars, None, None, MODEL, config, Path(out))  # checksum + first encoding
        phase("trainer_setup", started)
        started = time.perf_counter()
        prior_term = trainer.prior_term()  # builds the approximate index when knn_index picks it
        phase("prior_term", started)
        order = torch.randperm(len(exemplars), generator=torch.Generator().manual_seed(0))
        batches = order.split(config.batch_size)
        for batch in batches[:warmup]:
            trainer.train_step(batch, 1.0, prior_term)
        step_ms = []
        for batch in batches[warmup:warmup + steps]:
            started = time.perf_counter()
            trainer.train_step(batch, 1.0, prior_term)
            step_ms.append(1000 * (time.perf_counter() - started))
        phases["steps"] = memory.now()
        started = time.perf_counter()
        means = trainer.encode_exemplars()
        trainer.cache.refresh(means)
        trainer.model.set_exemplars(trainer.exemplars, trainer.train_labels, means=means)
        phase("epoch_end", started)
        held = held_bytes(trainer, len(exemplars))
    peaks = memory.stop()
    return {
        "source": source,
        "knn_index": knn_index,
        "index_searched": trainer.cache.index_kind,
        "step_ms_median": statistics.median(step_ms),
        "step_ms_mean": statistics.fmean(step_ms),
        "step_ms_all": step_ms,
        "seconds": seconds,
        "memory_mb_after": phases,
        **peaks,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB,
        "bytes_per_exemplar_held": held,
    }


def held_bytes(trainer: GeneratorTrainer, count: int) -> dict[str, float]:
    """Bytes per exemplar of what training holds for every exemplar once an epoch has ended, by owner."""
    model = trainer.model
    held = {"latent_cache": trainer.cache.values.nbytes, "model_exemplar_means": model.exemplar_means.nbytes,
            # kept from the best epoch to write its bundle: a copy of the means of that epoch
            "best_means": model.exemplar_means.nbytes, "labels": trainer.train_labels.nbytes}
    if trainer.cache.index is not None:
        held["approximate_index"] = trainer.cache.index.nbytes()
    if trainer.train_images.resident is not None:
        held["images_float_on_device"] = trainer.train_images.resident.nbytes
        held["images_uint8"] = trainer.exemplars.to_tensor().nbytes
    per_exemplar = {name: value / count for name, value in held.items()}
    per_exemplar["total"] = sum(per_exemplar.values())
    return per_exemplar


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "modified_files": git("status", "--porcelain", "--untracked-files=no")
            .splitlines()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exemplars", type=int, default=1_000_000)
    parser.add_argument("--runs", nargs="+", default=["memmap:auto", "memmap:exact", "tensor:auto"],
                        help="SOURCE:KNN_INDEX, SOURCE memmap or tensor (the images read into RAM)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps before them")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and faiss threads (1: the CPU is shared with training jobs here)")
    parser.add_argument("--data", type=Path, default=None, help="where to keep the .npy (default: a temporary file)")
    parser.add_argument("--note", default="", help="what else ran on the machine while measuring")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/exemplar_memory.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        path = args.data or Path(scratch) / "exemplars.npy"
        started = time.perf_counter()
        labels_path = path.with_suffix(".labels.npy")
        kept = path.exists() and labels_path.exists() and np.load(path, mmap_mode="r").shape == (
            args.exemplars, 1, SIDE, SIDE)
        if not kept:
            np.save(labels_path, write_synthetic_images(path, args.exemplars))
        labels = np.load(labels_path)
        write_seconds = time.perf_counter() - started
        print(f"{args.exemplars:,} images, {path.stat().st_size / MB:.0f} MB on disk, in {write_seconds:.0f} s",
              flush=True)
        runs = []
        for run in args.runs:
            source, knn_index = run.split(":")
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                result = pool.apply(measure, (str(path), labels, source, knn_index, args.steps, args.warmup,
                                              args.threads))
            runs.append(result)
            print(f"{run}: step {result['step_ms_median']:.0f} ms (median of {args.steps}), peak anonymous "
                  f"{result['peak_RssAnon_mb']:.0f} MB, peak RSS {result['peak_rss_mb']:.0f} MB, held "
                  f"{result['bytes_per_exemplar_held']['total']:.0f} B per exemplar", flush=True)
    report = {
        "benchmark": "exemplar_memory",
        "command": f"python benchmarks/exemplar_memory.py --exemplars {args.exemplars} --steps {args.steps}",
        "exemplars": args.exemplars,
        "image_shape": [1, SIDE, SIDE],
        "file_mb": args.exemplars * SIDE * SIDE / MB,
        "model": {"architecture": MODEL.architecture, "hidden_dim": MODEL.hidden_dim, "latent_dim": MODEL.latent_dim},
        "train_config": {"batch_size": TrainConfig().batch_size, "knn": TrainConfig().knn,
                         "exemplar_fraction": TrainConfig().exemplar_fraction, "gradient_neighbours": None},
        "threads": args.threads,
        "platform": {"machine": platform.machine(), "processor": platform.processor(), "torch": torch.__version__,
                     "cpus": multiprocessing.cpu_count()},
        "git": git_state(),
        "note": args.note,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
