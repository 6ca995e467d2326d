"""Two gloo processes at per-process batch 50 against one process at batch 100, for both trainers.

For each seed, the generator (MLP VAE, kNN exemplar prior) and the classifier train 2 epochs on the data of
tests/test_distributed.py, once as a DDP run of two spawned processes and once alone; each epoch's training loss
(and the generator's validation ELBO) of the two runs are compared relative to the single process's. Beside that
gap stands the gap between two seeds of the single process, the size of sampling noise. The test's tolerances
rest on these figures.

    python benchmarks/ddp_equivalence.py --seeds 0 1 2 3 4 --out benchmarks/results/ddp_equivalence.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))  # the data, recipes and two-rank launcher the equivalence test uses

import test_distributed as distributed_test  # noqa: E402

from exaug import fit_generator  # noqa: E402
from exaug.atomic import atomic_write_text  # noqa: E402
from exaug.classifiers import fit_classifier  # noqa: E402

FIGURES = ("generator train_loss", "generator val_elbo", "classifier train_loss")


def histories(world_size: int, seeds: list[int], folder: Path) -> dict[int, dict[str, list[float]]]:
    """Per seed, each figure's value at every epoch of runs on ``world_size`` processes (this one's share)."""
    train, val = distributed_test.data()
    found = {}
    for seed in seeds:
        generator_log, classifier_log = [], []
        fit_generator(train, val, dataclasses.replace(distributed_test.generator_config(world_size), seed=seed),
                      folder / f"generator-{world_size}-{seed}", distributed_test.SMALL, progress=False,
                      log=generator_log.append)
        fit_classifier(train, val, dataclasses.replace(distributed_test.classifier_config(world_size), seed=seed),
                       progress=False, log=classifier_log.append)
        found[seed] = {"generator train_loss": [r["train_loss"] for r in generator_log],
                       "generator val_elbo": [r["val_elbo"] for r in generator_log],
                       "classifier train_loss": [r["train_loss"] for r in classifier_log]}
    return found


def largest_relative_gap(first: list[float], second: list[float]) -> float:
    return max(abs(a - b) / abs(a) for a, b in zip(first, second))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    shared = distributed_test.on_two_ranks(_two_rank_histories, _seeded(folder, args.seeds))[0]
    torch.set_num_threads(1)
    alone = histories(1, args.seeds, folder)
    per_seed: dict[str, Any] = {}
    for position, seed in enumerate(args.seeds):
        other = alone[args.seeds[(position + 1) % len(args.seeds)]]
        per_seed[str(seed)] = {figure: {"two_processes": shared[seed][figure], "one_process": alone[seed][figure],
                                        "gap": largest_relative_gap(alone[seed][figure], shared[seed][figure]),
                                        "gap_to_next_seed": largest_relative_gap(alone[seed][figure], other[figure])}
                               for figure in FIGURES}
    report = {"benchmark": "ddp_equivalence", "torch_threads": torch.get_num_threads(),
              "world_size": distributed_test.WORLD_SIZE,
              "per_process_batch": distributed_test.PER_RANK_BATCH, "seeds": args.seeds,
              "test_tolerance": distributed_test.TOLERANCE, "per_seed": per_seed,
              "largest": {figure: {"gap": max(s[figure]["gap"] for s in per_seed.values()),
                                   "gap_to_next_seed": max(s[figure]["gap_to_next_seed"] for s in per_seed.values())}
                          for figure in FIGURES},
              "torch": torch.__version__, "machine": platform.machine()}
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    for figure, largest in report["largest"].items():
        print(f"{figure}: 2 × {distributed_test.PER_RANK_BATCH} against 1 × "
              f"{distributed_test.PER_RANK_BATCH * distributed_test.WORLD_SIZE}: {100 * largest['gap']:.2f} %, "
              f"two seeds alone: {100 * largest['gap_to_next_seed']:.2f} %")
    print(f"wrote {args.out}")


def _seeded(folder: Path, seeds: list[int]) -> Path:
    (folder / "seeds.json").write_text(json.dumps(seeds))
    return folder


def _two_rank_histories(rank: int, folder: Path) -> dict[int, dict[str, list[float]]]:
    return histories(distributed_test.WORLD_SIZE, json.loads((folder / "seeds.json").read_text()), folder)


if __name__ == "__main__":
    main()
