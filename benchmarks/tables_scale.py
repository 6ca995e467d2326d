"""The docs' tables of generator training at scale: the kNN search over many exemplars, a million exemplars on disk
or in RAM, and several processes against one (generated into docs/exemplar-scale.md, docs/exemplar-storage.md and
docs/scaling.md by benchmarks/tables.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tables_common import RESULTS


def knn_scale(results: Path = RESULTS) -> str:
    """The latent cache's exact search beside the approximate index at each exemplar count
    (benchmarks/knn_scale.py)."""
    report = json.loads((results / "knn_scale.json").read_text())
    lines = ["| exemplars | exact search, ms | index search, ms | recall@10 (min) | nprobe / lists | index build, s "
             "| update of 1,100 rows, ms (exact / index) | refresh, s (index) | memory, MB (exact / index) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n, figures in report["sizes"].items():
        exact, ivf = figures["exact"], figures["ivf"]
        lines.append(f"| {int(n):,} | {exact['search_ms']:.1f} | {ivf['search_ms']:.1f} | {ivf['recall_at_10']:.3f} "
                     f"({ivf['recall_at_10_min']:.3f}) | {ivf['nprobe']} / {ivf['lists']} | {ivf['build_seconds']:.1f} "
                     f"| {exact['update_ms']:.2f} / {ivf['update_ms']:.1f} | {ivf['refresh_seconds']:.1f} "
                     f"| {exact['memory_mb']:.0f} / {ivf['memory_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def knn_scale_step(results: Path = RESULTS) -> str:
    """A whole training step at the smallest and the largest exemplar count, and its parts (benchmarks/knn_scale.py)."""
    report = json.loads((results / "knn_scale.json").read_text())
    parts = {"draw_subset_ms": "draw π", "leave_one_out_mask_ms": "leave-one-out mask",
             "search_ms": "kNN search", "re_encode_neighbours_ms": "re-encode neighbours (with backward)",
             "cache_update_ms": "cache update"}
    lines = ["| exemplars | search | π drawn as | whole step, ms | " + " | ".join(f"{name}, ms" for name in parts.values())
             + " | π as the first M of a permutation, ms |",
             "|---|---|---|---|" + "---|" * len(parts) + "---|"]
    for n, step in report["steps"].items():
        cells = " | ".join(f"{step['parts_ms'][key]:.1f}" for key in parts)
        lines.append(f"| {int(n):,} | {step['index']} | {step['subset_drawn_as']} | {step['step_ms']:.1f} | {cells} "
                     f"| {step['subset_by_permutation_ms']:.1f} |")
    return "\n".join(lines) + "\n"


def exemplar_memory(results: Path = RESULTS) -> str:
    """A generator step on a million synthetic exemplars, read from a memory-mapped file or held in RAM
    (benchmarks/exemplar_memory.py)."""
    report = json.loads((results / "exemplar_memory.json").read_text())
    images = {"memmap": "memory-mapped `.npy`", "tensor": "in RAM, as a dataset is held"}
    lines = ["| run | images | kNN search | step, ms | set-up, s | index build, s | epoch's end, s "
             "| peak anonymous memory, GB | peak resident set, GB |", "|---|---|---|---|---|---|---|---|---|"]
    for run in report["runs"]:
        seconds, approximate = run["seconds"], run["index_searched"] == "ivf"
        setup = f"{seconds['trainer_setup']:.1f}"
        if seconds["open"] >= 0.05:  # a set held in RAM is read and converted before the trainer starts
            setup += f" (+ {seconds['open']:.1f} to read)"
        cells = [f"`{run['source']}:{run['knn_index']}`", images[run["source"]],
                 "approximate index" if approximate else "exact", f"{run['step_ms_median']:.0f}", setup,
                 f"{seconds['prior_term']:.1f}" if approximate else "–", f"{seconds['epoch_end']:.1f}",
                 f"{run['peak_RssAnon_mb'] / 1000:.2f}", f"{run['peak_rss_mb'] / 1000:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ddp_equivalence(results: Path = RESULTS) -> str:
    """Two processes at batch 50 against one at batch 100, the largest relative gap of any epoch over the seeds,
    beside the gap between two seeds alone and the test's tolerance (benchmarks/ddp_equivalence.py)."""
    report = json.loads((results / "ddp_equivalence.json").read_text())
    batch, world = report["per_process_batch"], report["world_size"]
    lines = [f"| figure | {world} × {batch} against 1 × {batch * world} | two seeds, 1 × {batch * world} "
             "| tolerance in the test |", "|---|---|---|---|"]
    for figure, largest in report["largest"].items():
        lines.append(f"| {figure.replace('_', ' ')} | {100 * largest['gap']:.2f} % | "
                     f"{100 * largest['gap_to_next_seed']:.2f} % | {100 * report['test_tolerance'][figure]:g} % |")
    return "\n".join(lines) + "\n"
