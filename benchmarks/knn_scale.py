"""The latent cache's kNN search at exemplar sets of 50K to millions: exact against the approximate index
(issue 27 §3), and a whole training step at the largest size.

For each size N the cache holds N synthetic 40-d latent means: a mixture of 100 Gaussian clusters whose
per-dimension spread follows the bundled MNIST generator's means (30 active dimensions from 1.1 down to 0.3,
10 near zero at 0.05), split 60/40 between the clusters' centres and their spread. Each timed search is
one training step's: 100 queries, k + 1 = 11 neighbours among a fresh random half of the cache (the
exemplar subset π), the queries at rows outside π plus a little noise; recall@10 is against the exact
search of the same queries. Updates write 1,100 rows (a batch and its re-encoded neighbours); a refresh
replaces every row (the end of an epoch). The whole step is the trainer's: the ELBO of an MLP VAE on 8×8
images (5M 784-pixel images would not fit in memory as float32) with the leave-one-out kNN prior,
gradient through all k neighbours, backward, the optimiser step and the cache's update; beside its parts, what
drawing π as the first M of a permutation would cost at that size.

    python benchmarks/knn_scale.py --sizes 50000 500000 5000000 --out benchmarks/results/knn_scale.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Callable

import torch

from exaug import latent_cache
from exaug.atomic import atomic_write_text
from exaug.config import ModelConfig, TrainConfig
from exaug.device import apply_threads
from exaug.exemplar_objective import LeaveOneOutExemplarPrior
from exaug.latent_cache import LatentCache, as_mask, at_scale, recall
from exaug.models import ExemplarVAE
from exaug.optim import NormalizedAdam

DIM, BATCH, K = 40, 100, 10
UPDATED_ROWS = 1_100


def synthetic_latents(n: int, seed: int = 0) -> torch.Tensor:
    """N×40 means from a mixture of 100 Gaussian clusters shaped like a trained generator's latent space."""
    generator = torch.Generator().manual_seed(seed)
    scale = torch.cat([torch.linspace(1.1, 0.3, 30), torch.full((DIM - 30,), 0.05)])
    centres = torch.randn(100, DIM, generator=generator) * scale * 0.6 ** 0.5
    labels = torch.randint(0, 100, (n,), generator=generator)
    return centres[labels] + torch.randn(n, DIM, generator=generator) * scale * 0.4 ** 0.5


def median_ms(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return 1000 * sorted(times)[len(times) // 2]


def search_trials(means: torch.Tensor, trials: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(queries, π) of ``trials`` training steps: a fresh half of the rows, and 100 queries from outside it."""
    generator = torch.Generator().manual_seed(seed)
    n = means.shape[0]
    drawn = []
    for _ in range(trials):
        order = torch.randperm(n, generator=generator)
        rows = order[(n + 1) // 2:][:BATCH]
        drawn.append((means[rows] + 0.01 * torch.randn(BATCH, DIM, generator=generator), order[: (n + 1) // 2]))
    return drawn


def time_searches(cache: LatentCache, trials: list[tuple[torch.Tensor, torch.Tensor]], masked: bool = False
                  ) -> tuple[float, list]:
    """Median milliseconds of a step's search, and what it found; π handed over as indices, or as the N-long mask
    a training step draws from APPROXIMATE_FROM exemplars (``masked``; making it is the draw's work, not timed)."""
    found, times = [], []
    for queries, candidates in trials:
        if masked:
            candidates = as_mask(candidates, len(cache))
        started = time.perf_counter()
        found.append(cache.search(queries, K + 1, candidates)[:, :K])
        times.append(time.perf_counter() - started)
    return 1000 * sorted(times)[len(times) // 2], found


def measure_size(n: int, trials: int, exact_trials: int) -> dict:
    """Search, build, update and refresh of the exact cache and the index at N exemplars."""
    means = synthetic_latents(n)
    drawn = search_trials(means, trials, seed=1)
    exact = LatentCache(means, knn_index="exact")
    exact_ms, exact_found = time_searches(exact, drawn[:exact_trials])
    started = time.perf_counter()
    approximate = LatentCache(means, knn_index="ivf")
    build_seconds = time.perf_counter() - started
    ivf_ms, ivf_found = time_searches(approximate, drawn, masked=at_scale(n))
    recalls = [recall(found, truth) for found, truth in zip(ivf_found, exact_found)]
    rows = torch.randint(0, n, (UPDATED_ROWS,), generator=torch.Generator().manual_seed(2))
    moved = means[rows] + 0.01 * torch.randn(UPDATED_ROWS, DIM)
    started = time.perf_counter()
    approximate.refresh(means)
    refresh_seconds = time.perf_counter() - started
    index = approximate.index
    figures = {
        "exemplars": n,
        "exact": {"search_ms": exact_ms, "timed_searches": len(exact_found),
                  "update_ms": median_ms(lambda: exact.update(rows, moved), 20),
                  "refresh_seconds": median_ms(lambda: exact.refresh(means), 3) / 1000,
                  "memory_mb": exact.values.nbytes / 2**20},
        "ivf": {"search_ms": ivf_ms, "timed_searches": len(ivf_found),
                "recall_at_10": sum(recalls) / len(recalls), "recall_at_10_min": min(recalls),
                "lists": index.lists, "nprobe": index.nprobe, "rerank": latent_cache.RERANK,
                "build_seconds": build_seconds,
                "update_ms": median_ms(lambda: approximate.update(rows, moved), 20),
                "refresh_seconds": refresh_seconds,
                "memory_mb": (approximate.values.nbytes + index.nbytes()) / 2**20,
                "index_memory_mb": index.nbytes() / 2**20},
    }
    figures["ivf"]["search_speed_up"] = exact_ms / ivf_ms
    return figures


def measure_step(n: int, image_side: int, steps: int, warmup: int) -> dict:
    """Milliseconds of a whole training step at N exemplars, and of its parts, under knn_index="auto"."""
    torch.manual_seed(0)
    model = ExemplarVAE(ModelConfig(input_shape=(1, image_side, image_side), latent_dim=DIM, hidden_dim=300))
    images = torch.rand(n, 1, image_side, image_side)
    cache = LatentCache(synthetic_latents(n))
    config = TrainConfig(knn=K, knn_query="cache", gradient_neighbours=None)
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    prior = LeaveOneOutExemplarPrior(model, images, cache, config, generator)
    setup_seconds = time.perf_counter() - started
    optimizer = NormalizedAdam(model.parameters(), lr=config.learning_rate)
    batches = torch.randint(0, n, (warmup + steps, BATCH), generator=torch.Generator().manual_seed(3))

    def step(batch: torch.Tensor) -> None:
        x = torch.bernoulli(images[batch])
        terms = model(x, log_prior=lambda z, mu: prior(z, batch), generator=generator)
        loss = (terms.kl - terms.reconstruction).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        cache.update(batch, terms.posterior_mean)

    for batch in batches[:warmup]:
        step(batch)
    timed = iter(batches[warmup:])
    step_ms = median_ms(lambda: step(next(timed)), steps)
    subset = prior._draw_subset()
    queries = cache.values[batches[0]]
    members = prior._nearest_members(batches[0], subset)[0]
    parts = {
        "draw_subset_ms": median_ms(prior._draw_subset, steps),
        "leave_one_out_mask_ms": median_ms(lambda: as_mask(subset, n), steps),
        "search_ms": median_ms(lambda: cache.search(queries, K + 1, subset), steps),
        "re_encode_neighbours_ms": median_ms(lambda: model.exemplar_mean(images[members]).sum().backward(), steps),
        "cache_update_ms": median_ms(lambda: cache.update(members, cache.values[members]), steps),
    }
    permutation_ms = median_ms(lambda: torch.randperm(n, generator=generator)[: prior.subset_size], steps)
    return {"exemplars": n, "image_shape": [1, image_side, image_side], "index": cache.index_kind,
            "subset_drawn_as": "mask" if prior.subset_as_mask else "permutation",
            "subset_by_permutation_ms": permutation_ms,
            "neighbours_re_encoded": int(members.shape[0]), "index_setup_seconds": setup_seconds,
            "step_ms": step_ms, "parts_ms": parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 500_000, 5_000_000])
    parser.add_argument("--trials", type=int, default=20, help="timed search batches of the index per size")
    parser.add_argument("--exact-trials", type=int, default=5,
                        help="timed batches of the exact search (seconds each at millions); recall uses these")
    parser.add_argument("--step-sizes", type=int, nargs="*", default=None,
                        help="sizes to time a whole training step at (default: the smallest and the largest)")
    parser.add_argument("--steps", type=int, default=20, help="timed whole training steps per size")
    parser.add_argument("--image-side", type=int, default=8, help="side of the synthetic square images of the step")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and faiss threads (1: the CPU is shared with training jobs here)")
    parser.add_argument("--note", default="", help="what else ran on the machine while timing")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/knn_scale.json"))
    args = parser.parse_args()
    apply_threads(args.threads)
    exact_trials = min(args.exact_trials, args.trials)

    sizes = {}
    for n in args.sizes:
        sizes[str(n)] = figures = measure_size(n, args.trials, exact_trials)
        print(f"N={n:>9,}  exact {figures['exact']['search_ms']:8.1f} ms  ivf {figures['ivf']['search_ms']:6.1f} ms "
              f"(nprobe {figures['ivf']['nprobe']} of {figures['ivf']['lists']} lists)  recall@10 "
              f"{figures['ivf']['recall_at_10']:.3f}  build {figures['ivf']['build_seconds']:.1f} s", flush=True)
    smallest, largest = str(min(args.sizes)), str(max(args.sizes))
    step_sizes = args.step_sizes if args.step_sizes is not None else sorted({min(args.sizes), max(args.sizes)})
    steps = {}
    for n in step_sizes:
        steps[str(n)] = measure_step(n, args.image_side, args.steps, warmup=3)
        print(f"step at N={n:>9,} ({steps[str(n)]['index']}): {steps[str(n)]['step_ms']:.1f} ms, parts "
              f"{ {name: round(ms, 1) for name, ms in steps[str(n)]['parts_ms'].items()} }", flush=True)
    # The target: the search a training step runs at the largest size (the index, as knn_index="auto" picks it)
    # against the search at the smallest (exact there).
    target = {"search_ms_smallest_exact": sizes[smallest]["exact"]["search_ms"],
              "search_ms_largest_auto": sizes[largest][latent_cache.resolve_knn_index("auto", int(largest),
                                                                                     torch.device("cpu"))]["search_ms"]}
    target["ratio"] = target["search_ms_largest_auto"] / target["search_ms_smallest_exact"]
    target["met"] = target["ratio"] <= 2 and sizes[largest]["ivf"]["recall_at_10"] >= 0.95
    report = {
        "benchmark": "knn_scale",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "note": args.note,
        "approximate_from": latent_cache.APPROXIMATE_FROM,
        "latents": "mixture of 100 Gaussian clusters in 40-d, spread shaped like the mnist generator's means",
        "sizes": sizes,
        "steps": steps,
        "target": target,
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"\nsearch at {largest} vs {smallest}: {target['ratio']:.2f}x (target ≤ 2x at recall@10 ≥ 0.95: "
          f"{'met' if target['met'] else 'not met'})\nwrote {args.out}")


if __name__ == "__main__":
    main()
