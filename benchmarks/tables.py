"""Results tables of the docs, generated from the result files under benchmarks/results/, never typed.

A table lives in a Markdown file between ``<!-- table: NAME -->`` and ``<!-- /table -->``. This script rewrites
every such block from its result files; ``--check`` changes nothing and fails when a block and its files
disagree (tests/test_tables.py runs it in the fast suite).

    python benchmarks/tables.py            # rewrite the tables in README.md and docs/*.md
    python benchmarks/tables.py --check    # exit 1, naming each table that is out of date
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import re
import statistics
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

from exaug.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)

# Table 3 of the paper: MNIST test NLL (nats, IWAE S = 5000, means of 5 runs at the full budget).
PAPER_TABLE_3 = {"vae": {"Gaussian": 84.45, "VampPrior": 82.43, "exemplar": 82.09},
                 "hvae": {"Gaussian": 82.39, "VampPrior": 81.56, "exemplar": 81.22},
                 "convhvae": {"Gaussian": 80.52, "VampPrior": 79.67, "exemplar": 79.58}}
ARCHITECTURE_NAMES = {"vae": "VAE (MLP)", "hvae": "HVAE", "convhvae": "ConvHVAE"}


def mean_and_spread(values: list[float]) -> str:
    """"m" for one value, "m ± sd" over several."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def paired_spread(differences: list[float]) -> str:
    """"+m ± sd" of paired differences: the sign says which side is lower."""
    return f"{statistics.mean(differences):+.2f} ± {statistics.stdev(differences):.2f}"


def table_3(results: Path = RESULTS) -> str:
    """The prior study (benchmarks/ablations.py --study prior) of each architecture beside the paper's Table 3."""
    files = {"vae": "prior.json", "hvae": "prior-hvae.json", "convhvae": "prior-convhvae.json"}
    lines = ["| architecture | prior | test NLL, exaug | seeds | NLL − the VAE's, paired by seed | test ELBO, exaug "
             "| test NLL, paper |", "|---|---|---|---|---|---|---|"]
    budgets = set()
    studies = {}
    for architecture, name in files.items():
        path = results / "ablations" / name
        studies[architecture] = json.loads(path.read_text()) if path.exists() else {"variants": {}}
        if path.exists():
            study = studies[architecture]
            budgets.add((study["train_images"], study["epochs"], study["warmup_epochs"], study["test_images"],
                         study["iwae_samples"]))
    for architecture, study in studies.items():
        for prior, paper in PAPER_TABLE_3[architecture].items():
            runs = study["variants"].get(prior, {})
            baseline = studies["vae"]["variants"].get(prior, {})
            paired = [runs[seed]["iwae_nll"] - baseline[seed]["iwae_nll"] for seed in runs if seed in baseline]
            gap = mean_and_spread(paired) if paired and architecture != "vae" else ""
            if runs:
                seeds = ", ".join(sorted(runs, key=int))
                nll = mean_and_spread([run["iwae_nll"] for run in runs.values()])
                elbo = mean_and_spread([run["test_elbo"] for run in runs.values()])
            else:
                seeds, nll, elbo = "not run", "", ""
            lines.append(f"| {ARCHITECTURE_NAMES[architecture]} | {prior} | {nll} | {seeds} | {gap} | {elbo} "
                         f"| {paper:.2f} |")
    if len(budgets) > 1:
        raise ValueError(f"the prior studies ran on different budgets {sorted(budgets)}; Table 3 compares one budget")
    return "\n".join(lines) + "\n"


def architecture_speed(results: Path = RESULTS) -> str:
    """Seconds per 50K-image epoch of each architecture and prior, and the ratio to the MLP VAE's
    (benchmarks/generator_speed.py --architectures)."""
    report = json.loads((results / "generator_speed_architectures.json").read_text())
    variant_names = {"gaussian": "Gaussian", "knn_neighbour_gradient": "exemplar, kNN, gradient through all k (default)",
                     "knn_neighbour_gradient_g3": "exemplar, kNN, gradient through the 3 nearest"}
    lines = ["| architecture | prior | ms per step | s per epoch | relative to the MLP VAE |", "|---|---|---|---|---|"]
    for name, figures in report["results"].items():
        architecture, _, variant = name.rpartition("/")
        lines.append(f"| {ARCHITECTURE_NAMES[architecture or 'vae']} | {variant_names.get(variant, variant)} | "
                     f"{figures['step_ms']:.1f} | {figures['epoch_seconds']:.1f} | {figures['ratio_to_vae']:.2f}× |")
    return "\n".join(lines) + "\n"


CURVE_EPOCHS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30)


def architecture_curves(results: Path = RESULTS) -> str:
    """Validation ELBO per epoch of the exemplar prior's seed-0 run of each architecture at the prior study's
    budget: the finished studies' curves, and for a run still training its curve so far
    (benchmarks/run_curves.py)."""
    curves = {}
    for architecture, name in (("vae", "prior.json"), ("hvae", "prior-hvae.json")):
        path = results / "ablations" / name
        if path.exists():
            runs = json.loads(path.read_text())["variants"].get("exemplar", {})
            if "0" in runs:
                curves[architecture] = dict(zip(runs["0"]["curves"]["epoch"], runs["0"]["curves"]["val_elbo"]))
    in_progress = results / "ablations" / "prior-convhvae-curves.json"
    if in_progress.exists():
        run = json.loads(in_progress.read_text())["runs"]["convhvae"]
        curves["convhvae"] = dict(zip(run["epoch"], run["val_elbo"]))
    lines = ["| architecture | " + " | ".join(f"epoch {epoch}" for epoch in CURVE_EPOCHS) + " |",
             "|---|" + "---|" * len(CURVE_EPOCHS)]
    for architecture, by_epoch in curves.items():
        cells = [f"{by_epoch[epoch]:.2f}" if epoch in by_epoch else "" for epoch in CURVE_EPOCHS]
        lines.append(f"| {ARCHITECTURE_NAMES[architecture]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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


def hvae_50k_curve(results: Path = RESULTS) -> str:
    """Validation ELBO at equal epochs on all 50K MNIST images, seed 0, one recipe: the MLP VAE of the time-to-quality
    study (the paper's recipe, warm-up 40) beside the HVAE run (benchmarks/run_curves.py)."""
    mlp = json.loads((results / "time_to_quality" / "reach-50000.json").read_text())["curves"]["paper recipe"]
    hvae = json.loads((results / "hvae_50k" / "curve.json").read_text())["runs"]["hvae"]
    by_epoch = dict(zip(hvae["epoch"], hvae["val_elbo"]))
    last = min(len(mlp), max(by_epoch))
    epochs = [epoch for epoch in (10, 20, 40, 80, 120, 160, 200, 240, 280, 320) if epoch < last] + [last]
    lines = ["| epoch | MLP VAE | HVAE | HVAE − MLP |", "|---|---|---|---|"]
    for epoch in epochs:
        lines.append(f"| {epoch} | {mlp[epoch - 1]:.2f} | {by_epoch[epoch]:.2f} | {by_epoch[epoch] - mlp[epoch - 1]:+.2f} |")
    return "\n".join(lines) + "\n"


def hvae_50k_nll(results: Path = RESULTS) -> str:
    """Test NLL of the bundled MLP generator and of the HVAE as its run went on, on the same test images
    (benchmarks/paired_nll.py, one file per HVAE snapshot: paired_nll*.json)."""
    rows: dict[str, tuple[dict, dict | None]] = {}
    for path in sorted((results / "hvae_50k").glob("paired_nll*.json")):
        report = json.loads(path.read_text())
        for name, run in report["generators"].items():
            provenance = run["provenance"]
            label = (name if name == report["baseline"]
                     else provenance.get("version") or f"{name}, {provenance['epochs_trained']} epochs")
            rows[label] = (run, report["differences"].get(name))
    lines = ["| generator | epochs | best validation ELBO | test NLL, nats | − the MLP's, paired | lower NLL on |",
             "|---|---|---|---|---|---|"]
    for label, (run, difference) in sorted(rows.items(), key=lambda row: row[1][1] is not None):
        provenance = run["provenance"]
        paired = "" if difference is None else f"{difference['mean']:+.2f} ± {difference['sem']:.2f}"
        lower = "" if difference is None else f"{100 * difference['share_lower']:.0f} % of images"
        lines.append(f"| {label} | {provenance.get('epochs_trained', '')} | "
                     f"{provenance.get('best_val_elbo', 0):.2f} | {run['nll']:.2f} | {paired} | {lower} |")
    return "\n".join(lines) + "\n"


def hvae_dropin(results: Path = RESULTS) -> str:
    """The 1,000-image stock-CNN cell of the drop-in grid (RandomAffine + appended twins) with the twins of each HVAE
    snapshot beside the bundled MLP generator's, per seed and paired (benchmarks/dropin.py, generator kinds hvae and
    hvae-longer; a result that recorded its generator's version is labelled with it)."""
    runs = results / "dropin" / "runs" / "mnist" / "test" / "cnn-balanced1000-e100"
    errors: dict[str, dict[str, float]] = {}
    generator_of: dict[str, str] = {}  # each row's generator kind: "bundled", "hvae…", or "" for affine alone
    for path in sorted(runs.glob("*/seed*/result.json")):
        result = json.loads(path.read_text())
        spec = result["spec"]
        if spec["augmentation"] == "affine":
            label, kind = "affine", ""
        elif spec["augmentation"] == "affine+exemplar-append" and spec["generator"] != "subset":
            kind = spec["generator"]
            version = (result.get("generator_provenance") or {}).get("version") or kind
            label = f"affine+exemplar-append ({version}, p {spec['p']:g})"
        else:
            continue
        generator_of[label] = kind
        errors.setdefault(label, {})[str(spec["seed"])] = result["error"]
    mlp = next(errors[label] for label, kind in generator_of.items() if kind == "bundled")
    lines = ["| augmentation | test error % per seed | mean | − with the MLP generator's twins, paired |",
             "|---|---|---|---|"]
    for label, by_seed in errors.items():
        seeds = sorted(by_seed)
        paired = [by_seed[seed] - mlp[seed] for seed in seeds if seed in mlp]
        difference = paired_spread(paired) if generator_of[label].startswith("hvae") else ""
        lines.append(f"| {label} | {', '.join(f'{by_seed[seed]:.2f}' for seed in seeds)} | "
                     f"{statistics.mean(by_seed.values()):.2f} | {difference} |")
    return "\n".join(lines) + "\n"


def means_precision(results: Path = RESULTS) -> str:
    """The same HVAE snapshot exported with its exemplar means in float32 and in float16: each bundle's size without
    images, its test NLL on the same images paired image by image (benchmarks/paired_nll.py), and how far the §5.4
    loader's twins of the training exemplars moved, drawn with the same noise (benchmarks/twin_shift.py)."""
    run = json.loads((results / "hvae_50k" / "means_precision_nll.json").read_text())
    shift = json.loads((results / "hvae_50k" / "means_precision_twins.json").read_text())
    lines = [f"| exemplar means | bundle size | test NLL, first {run['images']} images (S = {run['samples']}) "
             f"| − {run['baseline']}, paired (± s.e.) | lower on | MixedBatchLoader twins of the first "
             f"{shift['images']:,} exemplars that differ (pixels) |", "|---|---|---|---|---|---|"]
    for name, generator in run["generators"].items():
        size = generator["bundle_bytes"]
        difference = run["differences"].get(name)
        paired = "" if difference is None else f"{difference['mean']:+.5f} ± {difference['sem']:.5f}"
        lower = "" if difference is None else f"{100 * difference['share_lower']:.1f} % of images"
        moved = "" if difference is None else (
            f"{100 * shift['images_changed_share']:.1f} % ({100 * shift['pixels_changed_share']:.2f} %, at most "
            f"{shift['max_abs_steps']:.0f}/255)")
        lines.append(f"| {name} | {size / 2**20:.1f} MiB ({size / 1e6:.1f} MB) | {generator['nll']:.2f} | {paired} "
                     f"| {lower} | {moved} |")
    return "\n".join(lines) + "\n"


def convergence_latent_scale(results: Path = RESULTS) -> str:
    """How far each long default-recipe run has come, and whether its latent space stayed put after the KL warm-up:
    the exemplar prior's log σ² and the largest share of posterior log-variances on the encoder's clamp
    (benchmarks/run_curves.py)."""
    runs = json.loads((results / "convergence" / "curves.json").read_text())["runs"]
    lines = ["| run | epochs so far | best validation ELBO (epoch) | prior log σ², end of warm-up → last | "
             "its range after warm-up | largest share on the clamp after warm-up |", "|---|---|---|---|---|---|"]
    for name, run in runs.items():
        warmup = run["training"]["warmup_epochs"]
        after = [index for index, epoch in enumerate(run["epoch"]) if epoch >= warmup]
        log_vars = [run["prior_log_var"][index] for index in after if run["prior_log_var"][index] is not None]
        shares = [share for index in after
                  if (share := run["val_posterior_log_var_at_clamp_share"][index]) is not None]
        best = max(range(len(run["val_elbo"])), key=run["val_elbo"].__getitem__)
        scale = (f"{log_vars[0]:.2f} → {log_vars[-1]:.2f} | {min(log_vars):.2f} to {max(log_vars):.2f} | "
                 f"{100 * max(shares):.1f} %" if log_vars and shares else
                 f"in warm-up (epoch {run['epoch'][-1]} of {warmup}) | | ")
        lines.append(f"| {name} | {run['epochs_trained']} | {run['val_elbo'][best]:.2f} ({run['epoch'][best]}) | "
                     f"{scale} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- docs/results.md
def knn_query(results: Path = RESULTS) -> str:
    """Validation ELBO at equal epochs with the kNN search around each exemplar's cached mean and around the batch's
    posterior means, the mean over the seeds, and posterior − cache paired by seed (benchmarks/knn_query.py)."""
    report = json.loads((results / "knn_query.json").read_text())
    lines = ["| epoch | validation ELBO, cache query | validation ELBO, posterior query "
             "| posterior − cache (paired) |", "|---|---|---|---|"]
    for row in report["rows"]:
        lines.append(f"| {row['epoch']} | {row['cache']:.2f} | {row['posterior']:.2f} | "
                     f"{row['difference_mean']:+.2f} ± {row['difference_std']:.2f} |")
    return "\n".join(lines) + "\n"


def ablation(results: Path, study: str, column: str, default: str, paired_with: str | None = None,
             bold: bool = True) -> str:
    """One study of benchmarks/ablations.py (benchmarks/results/ablations/STUDY.json), per variant: test ELBO and test
    NLL (mean ± std over the seeds); with ``paired_with``, the NLL's difference from that variant, paired by seed
    ("every seed" when the differences of all seeds share a sign); the training objective minus the validation ELBO
    at the last epoch (mean, then per seed); without ``paired_with``, the median CPU seconds of an epoch over every
    epoch of every seed. A variant is named without the column's name ("M/N 0.2" under "M/N" is "0.2"), ``default``
    marked; with ``bold``, the highest mean ELBO and the lowest mean NLL."""
    report = json.loads((results / "ablations" / f"{study}.json").read_text())
    variants = report["variants"]
    elbo = {variant: [run["test_elbo"] for run in runs.values()] for variant, runs in variants.items()}
    nll = {variant: [run["iwae_nll"] for run in runs.values()] for variant, runs in variants.items()}
    best_elbo = max(variants, key=lambda variant: statistics.mean(elbo[variant]))
    best_nll = min(variants, key=lambda variant: statistics.mean(nll[variant]))
    header = [column, "test ELBO", f"test NLL (IWAE, S = {report['iwae_samples']})"]
    header += [f"NLL − {paired_with}'s, paired"] if paired_with else []
    header += ["train − validation ELBO, last epoch"] + ([] if paired_with else ["CPU s per epoch, median"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for variant, runs in variants.items():
        label = variant.removeprefix(f"{column} ") + (" (default)" if variant == default else "")
        cells = [label, mean_and_spread(elbo[variant]), mean_and_spread(nll[variant])]
        if bold:
            cells[1] = f"**{cells[1]}**" if variant == best_elbo else cells[1]
            cells[2] = f"**{cells[2]}**" if variant == best_nll else cells[2]
        if paired_with:
            baseline = variants[paired_with]
            differences = [run["iwae_nll"] - baseline[seed]["iwae_nll"] for seed, run in runs.items()]
            same_sign = (all(difference > 0 for difference in differences)
                         or all(difference < 0 for difference in differences))
            cells.append("0" if variant == paired_with else
                         paired_spread(differences) + (" (every seed)" if same_sign else ""))
        gaps = [run["curves"]["train_elbo"][-1] - run["curves"]["val_elbo"][-1] for run in runs.values()]
        cells.append(f"{statistics.mean(gaps):.1f} ({', '.join(f'{gap:.2f}' for gap in gaps)})")
        if not paired_with:
            seconds = statistics.median(second for run in runs.values() for second in run["curves"]["seconds"])
            cells.append(f"{seconds:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# How docs/results.md names the variants of benchmarks/time_to_quality.py and benchmarks/latent_geometry.py.
TIME_TO_QUALITY_10K_NAMES = {"paper recipe": "paper recipe (`--gradient-neighbours all`)",
                             "gradient on 3 nearest": "gradient on each row's 3 nearest",
                             "gradient on the nearest": "gradient on the nearest",
                             "gradient into the μ head (cached trunk)": "gradient into the mean head, cached trunk",
                             "cached centres only": "centres from the cache only",
                             "batch 250": "batch 250, learning rate × √2.5",
                             "batch 500": "batch 500, learning rate × √5"}
TIME_TO_QUALITY_50K_NAMES = {"paper recipe": "paper recipe (all k, the default)",
                             "gradient on 3 nearest": "gradient on 3 nearest (`--gradient-neighbours 3`)"}
LATENT_GEOMETRY_NAMES = {"mnist": "bundled `mnist` (paper recipe, 341 epochs)",
                         "runs/ttq-50k-default": "3 nearest, 349 epochs",
                         "runs/ttq-50k-all": "paper recipe, 349 epochs"}


def time_to_quality_timings(results: Path, name: str) -> dict[str, dict[str, float]]:
    """Seconds per epoch of each variant at each thread count, from the timings file a time-to-quality result names
    (benchmarks/time_to_quality.py time), read under ``results``."""
    return json.loads((results / "time_to_quality" / Path(name).name).read_text())["seconds_per_epoch"]


def time_to_quality_10k(results: Path = RESULTS) -> str:
    """Each variant in the paper recipe's training time on the first 10,000 MNIST images
    (benchmarks/time_to_quality.py report, frontier.json, with the seconds per epoch of the timings file it names):
    its epochs, its final validation ELBO (mean ± std over the seeds), its seconds per epoch at each thread count,
    and the minutes each seed took to reach the recipe's final ELBO ("not reached" for a variant no seed brought
    there; a seed short of it in a row where others reached it says by how much). The highest final ELBO and the
    fewest minutes on every seed in bold."""
    frontier = json.loads((results / "time_to_quality" / "frontier.json").read_text())
    timings = time_to_quality_timings(results, frontier["timings"])
    rows, threshold, seeds = frontier["rows"], frontier["threshold_val_elbo"], frontier["seeds"]
    best = max(rows, key=lambda variant: statistics.mean(rows[variant]["final_val_elbo"]))
    reaching = [variant for variant, row in rows.items() if None not in row["minutes_to_threshold"]]
    fastest = min(reaching, key=lambda variant: statistics.mean(rows[variant]["minutes_to_threshold"]), default=None)
    threads = list(next(iter(timings.values())))
    lines = [f"| variant | epochs in the time | validation ELBO at the end | s/epoch, {' / '.join(threads)} threads "
             f"| minutes to {threshold:.2f} ({frontier['threads']} threads), per seed |", "|---|---|---|---|---|"]
    for variant, row in rows.items():
        label, final = TIME_TO_QUALITY_10K_NAMES.get(variant, variant), mean_and_spread(row["final_val_elbo"])
        minutes = row["minutes_to_threshold"]
        if all(minute is None for minute in minutes):
            reached = "not reached"
        else:
            reached = ", ".join("not reached" if minute is None else f"{minute:.1f}" for minute in minutes)
            reached += "".join(f" (seed {seed} ends {threshold - elbo:.2f} short)" for seed, minute, elbo
                               in zip(seeds, minutes, row["final_val_elbo"], strict=True) if minute is None)
        if variant == best:
            label, final = f"**{label}**", f"**{final}**"
        if variant == fastest:
            reached = f"**{reached}**"
        seconds = " / ".join(f"{timings[variant][thread]:.2f}" for thread in threads)
        lines.append(f"| {label} | {row['epochs']} | {final} | {seconds} | {reached} |")
    return "\n".join(lines) + "\n"


def time_to_quality_50k_timings(results: Path = RESULTS) -> str:
    """Seconds per epoch of all 50,000 MNIST images (validation and exemplar refresh included) of each variant of the
    50K time-to-quality runs, at each thread count (the timings file that reach-50000.json names,
    benchmarks/time_to_quality.py time)."""
    reach = json.loads((results / "time_to_quality" / "reach-50000.json").read_text())
    timings = time_to_quality_timings(results, reach["timings"])
    threads = list(next(iter(timings.values())))
    lines = ["| variant | " + " | ".join(f"s/epoch, {thread} thread{'s' * (thread != '1')}" for thread in threads)
             + " |", "|---|" + "---|" * len(threads)]
    for variant, by_threads in timings.items():
        lines.append(f"| {TIME_TO_QUALITY_50K_NAMES.get(variant, variant)} | "
                     + " | ".join(f"{by_threads[thread]:.1f}" for thread in threads) + " |")
    return "\n".join(lines) + "\n"


def time_to_quality_50k_reach(results: Path = RESULTS) -> str:
    """The 50K time-to-quality runs, one seed each (benchmarks/time_to_quality.py reach, reach-50000.json): the best
    validation ELBO and its epoch, the ELBO after the last epoch both ran, the epochs and minutes to the target (by
    the timed seconds per epoch), and the ELBO at equal time, the shorter run's minutes. The variant that reached the
    target soonest, its epochs and minutes, and the highest ELBO at equal time in bold."""
    reach = json.loads((results / "time_to_quality" / "reach-50000.json").read_text())
    rows = reach["rows"]
    epochs = {row["epochs"] for row in rows.values()} | {len(curve) for curve in reach["curves"].values()}
    if len(epochs) > 1:
        raise ValueError(f"the 50K runs were stopped at different epochs {sorted(epochs)}; the table compares one")
    reaching = [variant for variant, row in rows.items() if row["minutes_to_target"] is not None]
    soonest = min(reaching, key=lambda variant: rows[variant]["minutes_to_target"], default=None)
    best_at_equal_time = max(rows, key=lambda variant: rows[variant]["val_elbo_at_equal_time"])
    lines = [f"| variant | best validation ELBO (epoch) | after {epochs.pop()} epochs | epochs, minutes to "
             f"{reach['target_val_elbo']:.1f} ({reach['threads']} threads) | at equal time, "
             f"{reach['equal_minutes']:.1f} min |", "|---|---|---|---|---|"]
    for variant, row in rows.items():
        label = TIME_TO_QUALITY_50K_NAMES.get(variant, variant)
        target = ("not reached" if row["minutes_to_target"] is None else
                  f"{row['epochs_to_target']}, {row['minutes_to_target']:.1f}")
        equal = f"{row['val_elbo_at_equal_time']:.2f}"
        if variant == soonest:
            label, target = f"**{label}**", f"**{target}**"
        if variant == best_at_equal_time:
            equal = f"**{equal}**"
        lines.append(f"| {label} | {row['best_val_elbo']:.2f} ({row['best_epoch']}) | "
                     f"{reach['curves'][variant][-1]:.2f} | {target} | {equal} (epoch {row['equal_time_epochs']}) |")
    return "\n".join(lines) + "\n"


def latent_geometry(results: Path = RESULTS) -> str:
    """The scale of each generator's latent space (benchmarks/latent_geometry.py): the kernel σ, the exemplar means'
    spread and spacing, a twin's offset σ·√d over that spacing, and the posterior log-variances of validation
    images, their median and the share on the encoder's clamp."""
    report = json.loads((results / "latent_geometry.json").read_text())
    lines = ["| generator | kernel σ | exemplar spread per dimension (median std) | median distance to the nearest "
             "other exemplar | σ·√d / that distance | posterior log σ², median | share at the "
             f"{report['log_var_clamp']:+g} clamp |", "|---|---|---|---|---|---|---|"]
    for name, figures in report["generators"].items():
        lines.append(f"| {LATENT_GEOMETRY_NAMES.get(name, name)} | {figures['kernel_sigma']:.3f} | "
                     f"{figures['exemplar_spread_per_dimension']:.3f} | {figures['nearest_exemplar_distance']:.3f} | "
                     f"{figures['twin_offset_to_spacing']:.2f} | {figures['posterior_log_var_median']:.2f} | "
                     f"{100 * figures['posterior_log_var_at_clamp_share']:.1f} % |")
    return "\n".join(lines) + "\n"


GENERATOR_SPEED_NAMES = {
    "knn": "kNN, centres from the latent cache (`--no-neighbour-gradient`)",
    "knn_neighbour_gradient": "kNN, gradient on all k = 10 neighbours (Algorithm 1, the default)",
    "knn_neighbour_gradient_g3": "kNN, gradient on each row's 3 nearest (`--gradient-neighbours 3`)",
    "knn_neighbour_gradient_g1": "kNN, gradient on the nearest only (`--gradient-neighbours 1`)",
    "knn_neighbour_gradient_cached_trunk": "kNN, gradient into the mean head from cached trunk features "
                                           "(`--cached-trunk`)",
    "exact": "exact", "exact_neighbour_gradient": "exact with neighbour gradient"}
GENERATOR_SPEED_DEFAULT = "knn_neighbour_gradient"


def generator_speed(results: Path = RESULTS) -> str:
    """An epoch of each prior variant relative to the Gaussian prior's, timed side by side in one process
    (benchmarks/generator_speed.py); a ratio of 10 or more to the unit, the default in bold."""
    report = json.loads((results / "generator_speed.json").read_text())
    lines = ["| variant | epoch cost against the Gaussian prior |", "|---|---|"]
    for variant, figures in report["results"].items():
        if variant == "gaussian":
            continue
        ratio = figures["ratio_to_gaussian"]
        cells = [GENERATOR_SPEED_NAMES.get(variant, variant), f"{ratio:.2f}×" if ratio < 10 else f"{ratio:.0f}×"]
        if variant == GENERATOR_SPEED_DEFAULT:
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def validation_pick(runs: list[dict]) -> dict:
    """The docs' selection rule, fixed before the runs it judges: the lowest final-epoch validation error, ties
    broken by the lowest mean of the last ten epochs."""
    return min(runs, key=lambda run: (run["error"], run["mean_of_last_epochs"]))


def classifier_files(results: Path, pattern: str) -> list[dict]:
    """The benchmarks/classifier_runs.py files matching ``pattern``; none is a ValueError naming it."""
    files = [json.loads(path.read_text()) for path in sorted((results / "classifiers").glob(pattern))]
    if not files:
        raise ValueError(f"no classifier result file matches {results / 'classifiers' / pattern}; collect the runs "
                         f"with benchmarks/classifier_runs.py")
    return files


def without_generator(recipe: dict) -> dict:
    return {key: value for key, value in recipe.items() if key != "generator_sha256"}


def classifier_validation_grid(results: Path, pattern: str) -> str:
    """Every λ, η of a validation sweep (benchmarks/classifier_runs.py files matching ``pattern``, one recipe and
    generator), the rule's pick in bold."""
    files = classifier_files(results, pattern)
    if any(file["recipe"] != files[0]["recipe"] for file in files) or files[0]["recipe"]["split"] != "val":
        raise ValueError(f"{pattern}: a validation grid holds one recipe and generator, scored on validation")
    runs = [run for file in files for run in file["runs"]]
    if len({(run["lam"], run["learning_rate"]) for run in runs}) < len(runs):
        raise ValueError(f"{pattern}: a λ, η appears twice in the grid")
    pick = validation_pick(runs)
    lines = ["| η | λ | validation error %, final epoch | mean of the last 10 epochs |", "|---|---|---|---|"]
    for run in sorted(runs, key=lambda run: (-run["learning_rate"], run["lam"])):
        cells = [f"{run['learning_rate']:g}", f"{run['lam']:g}", f"{run['error']:.2f}",
                 f"{run['mean_of_last_epochs']:.3f}"]
        if run is pick:
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def classifier_paired_rows(results: Path, baseline: str, candidates: list[str]) -> str:
    """Test error per seed of each row (a benchmarks/classifier_runs.py file: one recipe, one generator, one λ and
    η), and each candidate's paired difference from ``baseline`` over the seeds both ran. The rows must share
    their recipe but for the generator, λ and η; each names its generator's recorded version."""
    rows = {name: classifier_files(results, f"{name}.json")[0] for name in [baseline, *candidates]}
    for name, row in rows.items():
        if row["recipe"]["split"] != "test":
            raise ValueError(f"{name}: a test row holds a run scored on another split")
        if len({(run["lam"], run["learning_rate"]) for run in row["runs"]}) != 1:
            raise ValueError(f"{name}: its runs mix λ or η; one row holds one recipe")
        if without_generator(row["recipe"]) != without_generator(rows[baseline]["recipe"]):
            raise ValueError(f"{name}: its recipe differs from {baseline}'s in more than the generator, λ and η")
    by_seed = {name: {run["seed"]: run for run in row["runs"]} for name, row in rows.items()}
    lines = ["| generator | λ | η | seeds | test error %, mean ± std | − the baseline's, paired (mean ± std) |",
             "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        runs = row["runs"]
        seeds = sorted(by_seed[name])
        errors = [by_seed[name][seed]["error"] for seed in seeds]
        generator = runs[0]["generator"] or {}
        label = generator.get("version") or generator.get("source") or "none (LS alone)"
        paired = ""
        if name != baseline:
            shared = [seed for seed in seeds if seed in by_seed[baseline]]
            differences = [by_seed[name][seed]["error"] - by_seed[baseline][seed]["error"] for seed in shared]
            paired = f"{paired_spread(differences)} over {len(shared)} seeds" if len(shared) > 1 else ""
        seed_range = f"{seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else \
            ", ".join(map(str, seeds))
        lines.append(f"| {label} | {runs[0]['lam']:g} | {runs[0]['learning_rate']:g} | {seed_range} | "
                     f"{mean_and_spread(errors)} | {paired} |")
    return "\n".join(lines) + "\n"


def hvae_augmentation_validation(results: Path = RESULTS) -> str:
    """§5.4 with the HVAE's twins: the λ × η grid on MNIST validation (seed 0) that chose its test recipe."""
    return classifier_validation_grid(results, "hvae-validation-*.json")


def hvae_augmentation_test(results: Path = RESULTS) -> str:
    """§5.4 on MNIST test, 2×1024, the HVAE's twins against the bundled MLP generator's, each at the λ and η its own
    validation sweep picked, paired by seed (the seed count fixed before any test run)."""
    return classifier_paired_rows(results, "mlp-augmentation-test", ["hvae-augmentation-test"])


# ------------------------------------------------------------------------------------------- drop-in grid
# How the docs name the grid's augmentations (benchmarks/dropin.py AUGMENTATIONS), and the order of their rows.
AUGMENTATION_NAMES = {"none": "none", "affine": "RandomAffine", "hflip": "RandomHorizontalFlip",
                      "mixup-cutmix": "Mixup/CutMix", "trivialaugment": "TrivialAugment",
                      "exemplar": "drop-in ExemplarAugment", "exemplar-append": "twins appended",
                      "mixed": "mixed loss (eq. 16)", "hflip+exemplar-append": "RandomHorizontalFlip + appended",
                      "affine+exemplar": "RandomAffine + ExemplarAugment",
                      "affine+exemplar-append": "RandomAffine + appended",
                      "trivialaugment+exemplar-append": "TrivialAugment + appended"}
def sibling_benchmark(name: str) -> ModuleType:
    """The script benchmarks/NAME.py as a module (registered under NAME: its dataclasses look their module up)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@functools.lru_cache(maxsize=4)
def dropin_results(results: Path) -> tuple[list[dict], list[dict]]:
    """Every run of the drop-in grid under ``results``/dropin, and its test rows as benchmarks/dropin.py sums them."""
    dropin = sibling_benchmark("dropin")
    runs = dropin.read_results(results / "dropin")
    return runs, dropin.summarize(runs)


def dropin_label(row: dict) -> str:
    """The augmentation's name in the docs, marked when it joined the candidate set after test results."""
    dropin = sibling_benchmark("dropin")
    return AUGMENTATION_NAMES[row["augmentation"]] + (
        dropin.ADDED_AFTER_TEST_MARK if dropin.added_after_test_results(row) else "")


def dropin_regime(results: Path, dataset: str, models: tuple[str, ...], subset: str, epochs: tuple[int, ...],
                  generator: str = "bundled", knobs: str = "any", baselines: bool = True) -> str:
    """The test rows of one drop-in regime (benchmarks/dropin.py): per model and budget, each augmentation's errors
    per seed, their mean ± std, and the paired differences by seed against none and against the best classic
    augmentation on validation; the lowest mean of each model and budget in bold. ``generator`` keeps the rows
    whose twins came from that kind of generator; ``knobs`` "own" keeps rows tuned on this regime's validation,
    "transferred" rows whose knobs came from another regime's; ``baselines`` adds the rows without twins."""
    dropin = sibling_benchmark("dropin")
    order = list(AUGMENTATION_NAMES)

    def kept(row: dict) -> bool:
        if dropin.row_uses_generator(row) and row["generator"] != generator:
            return False
        if not dropin.row_uses_generator(row) and not baselines:
            return False
        if row["augmentation"] == "none" or knobs == "any":
            return True
        return (knobs == "transferred") == bool(row["knobs_from"])

    rows = [row for row in dropin_results(results)[1] if (row["dataset"], row["subset"]) == (dataset, subset)
            and row["model"] in models and row["epochs"] in epochs and kept(row)]
    if not rows:
        raise ValueError(f"no drop-in test runs of {dataset}/{subset}, {models}, epochs {epochs} under {results}")
    rows.sort(key=lambda row: (models.index(row["model"]), row["epochs"], order.index(row["augmentation"]),
                               row["knob"]))
    best = {}
    for row in rows:
        group = (row["model"], row["epochs"])
        best[group] = min(best.get(group, row["mean"]), row["mean"])
    lines = ["| model | epochs | augmentation | knob | test error % per seed | mean ± std | vs none, paired "
             "| vs the best classic on validation, paired |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        mean = dropin.mean_text(row)
        if row["mean"] == best[(row["model"], row["epochs"])]:
            mean = f"**{mean}**"
        per_seed = ", ".join(f"{error:.2f}" for error in row["errors"])
        classic = row["vs_best_classic"]
        against = "" if classic is None else (f"{dropin.paired_text(classic)} "
                                              f"({AUGMENTATION_NAMES[row['best_classic']]})")
        lines.append(f"| {row['model']} | {row['epochs']} | {dropin_label(row)} | {dropin.knob_label(row)} | {per_seed} "
                     f"| {mean} | {dropin.paired_text(row['vs_none'])} | {against} |")
    return "\n".join(lines) + "\n"


# The README's drop-in cases: (case, (dataset, model, subset, epochs), the twins row shown).
README_DROPIN_CASES = [
    ("stock PyTorch CNN, first 10K images, 1 epoch", ("mnist", "cnn", "first10000", 1), "exemplar-append"),
    ("stock PyTorch CNN, first 10K images, 10 epochs", ("mnist", "cnn", "first10000", 10), "affine+exemplar-append"),
    ("stock PyTorch CNN, all 60K images, 5 epochs", ("mnist", "cnn", "all", 5), "exemplar"),
    ("paper's MLP, 1,000 labelled images", ("mnist", "mlp", "balanced1000", 100), "affine+exemplar-append"),
    ("stock PyTorch CNN, 1,000 labelled images", ("mnist", "cnn", "balanced1000", 100), "affine+exemplar-append"),
    ("timm resnet18, 1,000 labelled images", ("mnist", "resnet18", "balanced1000", 100), "affine+exemplar-append"),
    ("paper's MLP, 5,000 labelled images", ("mnist", "mlp", "balanced5000", 100), "affine+exemplar-append"),
    ("stock PyTorch CNN, 5,000 labelled images", ("mnist", "cnn", "balanced5000", 20), "affine+exemplar-append"),
    ("timm resnet18, 5,000 labelled images", ("mnist", "resnet18", "balanced5000", 20), "affine+exemplar-append"),
    ("Fashion-MNIST, paper's MLP, 1,000 labelled images", ("fashion-mnist", "mlp", "balanced1000", 100),
     "trivialaugment+exemplar-append"),
    ("Fashion-MNIST, stock PyTorch CNN, 1,000 labelled images", ("fashion-mnist", "cnn", "balanced1000", 100),
     "trivialaugment+exemplar-append")]


def dropin_readme(results: Path = RESULTS) -> str:
    """The README's summary of the drop-in grid: per case, no augmentation, the best classic augmentation on
    validation and the shown twins row (the bundled generator's, at its validation knob), mean ± std over the test
    seeds, the lowest in bold; † marks a row that joined the candidate set after test results."""
    dropin = sibling_benchmark("dropin")
    summary = dropin_results(results)[1]

    def find(regime: tuple, augmentation: str) -> dict | None:
        found = [row for row in summary if (row["dataset"], row["model"], row["subset"], row["epochs"]) == regime
                 and row["augmentation"] == augmentation
                 and (row["generator"] == "bundled" or not dropin.row_uses_generator(row))]
        if len(found) > 1:
            raise ValueError(f"{regime} has {len(found)} test rows of {augmentation} (knobs "
                             f"{[dropin.knob_label(row) for row in found]}); the README shows one")
        return found[0] if found else None

    lines = ["| case | none | best classic | with twins |", "|---|---|---|---|"]
    for case, regime, twins in README_DROPIN_CASES:
        shown = find(regime, twins)
        if shown is None:
            raise ValueError(f"no drop-in test row {twins} for {regime} under {results}")
        classic = find(regime, shown["best_classic"]) if shown["best_classic"] else None
        cells = [find(regime, "none"), classic, shown]
        best = min(row["mean"] for row in cells if row is not None)

        def cell(row: dict | None, named: bool) -> str:
            if row is None:
                return "not run"
            text = dropin.mean_text(row)
            text = f"**{text}**" if row["mean"] == best else text
            if not named:
                return text
            knob = f", {row['knob']}" if row["augmentation"] == "exemplar" else ""
            return f"{text} ({dropin_label(row)}{knob})"
        lines.append(f"| {case} | {cell(cells[0], False)} | {cell(cells[1], True)} | {cell(cells[2], True)} |")
    return "\n".join(lines) + "\n"


def dropin_test(results: Path = RESULTS) -> str:
    """Every test row of the drop-in grid (benchmarks/dropin.py's summary)."""
    return sibling_benchmark("dropin").markdown_table(dropin_results(results)[1])


def dropin_validation(results: Path = RESULTS) -> str:
    """Every setting of the drop-in grid tried on validation."""
    return sibling_benchmark("dropin").validation_markdown(dropin_results(results)[0])


def stock_cnn_one_epoch(results: Path = RESULTS) -> str:
    """The stock PyTorch CNN for one epoch on the first 10K MNIST images, without and with the drop-in transform,
    as a user writes it (benchmarks/stock_cnn.py): each result file's seeds per p, then, where several files score
    the same split at the same p, all their seeds pooled; paired by seed, with the seeds the twins lowered."""
    runs = sorted((json.loads(path.read_text()) | {"file": path.name}
                   for path in results.glob("stock_cnn_e1_*.json")), key=lambda run: (run["scored_on"], run["seeds"]))
    if not runs:
        raise ValueError(f"no stock_cnn_e1_*.json under {results}")
    lines = ["| scored on | seeds | p | none | with twins | paired difference | seeds lower with twins |",
             "|---|---|---|---|---|---|---|"]

    def row(scored_on: str, seeds: str, p: str, none: list[float], twins: list[float]) -> str:
        differences = [with_twins - without for with_twins, without in zip(twins, none, strict=True)]
        lower = sum(difference < 0 for difference in differences)
        return (f"| {scored_on} | {seeds} | {p} | {statistics.mean(none):.2f} | {statistics.mean(twins):.2f} | "
                f"{paired_spread(differences)} | {lower} of {len(differences)} |")

    recipes = {(run["epochs"], run["dropout"], run.get("normalize")) for run in runs}
    if recipes != {(1, False, True)}:
        raise ValueError(f"the stock_cnn_e1_*.json files must all be one-epoch runs without dropout, with "
                         f"Normalize; they hold (epochs, dropout, normalize) {sorted(recipes, key=str)}")
    pooled: dict[tuple[str, str], dict[str, list]] = {}
    for run in runs:
        seeds = run["seeds"]
        consecutive = seeds == list(range(seeds[0], seeds[-1] + 1))
        seed_label = f"{seeds[0]}–{seeds[-1]}" if consecutive else ", ".join(map(str, seeds))
        for p, errors in run["errors"].items():
            if p == "none":
                continue
            label = p.removeprefix("p=")
            lines.append(row(run["scored_on"], f"{seed_label} (`{run['file']}`)", label, run["errors"]["none"],
                             errors))
            group = pooled.setdefault((run["scored_on"], label), {"none": [], "twins": [], "seeds": [], "files": []})
            repeated = set(group["seeds"]) & set(seeds)
            if repeated:
                raise ValueError(f"{run['file']} repeats seeds {sorted(repeated)} of {group['files']} "
                                 f"({run['scored_on']}, p {label}): pooling would count them twice")
            group["none"] += run["errors"]["none"]
            group["twins"] += errors
            group["seeds"] += seeds
            group["files"].append(run["file"])
    for (scored_on, p), group in pooled.items():
        if len(group["files"]) > 1:
            lines.append(row(scored_on, f"all {len(group['none'])}, pooled", p, group["none"], group["twins"]))
    return "\n".join(lines) + "\n"


TABLES: dict[str, Callable[[], str]] = {"table-3": table_3, "architecture-speed": architecture_speed,
                                        "architecture-curves": architecture_curves,
                                        "knn-scale": knn_scale, "knn-scale-step": knn_scale_step,
                                        "ddp-equivalence": ddp_equivalence, "exemplar-memory": exemplar_memory,
                                        "hvae-50k-curve": hvae_50k_curve, "hvae-50k-nll": hvae_50k_nll,
                                        "hvae-dropin": hvae_dropin, "means-precision": means_precision,
                                        "convergence-latent-scale": convergence_latent_scale,
                                        "knn-query": knn_query,
                                        "ablation-leave-one-out": lambda: ablation(
                                            RESULTS, "leave-one-out", "leave-one-out", "with"),
                                        "ablation-prior": lambda: ablation(RESULTS, "prior", "prior", "exemplar"),
                                        "ablation-exemplar-fraction": lambda: ablation(
                                            RESULTS, "exemplar-fraction", "M/N", "M/N 0.5", paired_with="M/N 0.5"),
                                        "ablation-search": lambda: ablation(
                                            RESULTS, "search", "prior during training", "kNN, k = 10", bold=False),
                                        "time-to-quality-10k": time_to_quality_10k,
                                        "time-to-quality-50k-timings": time_to_quality_50k_timings,
                                        "time-to-quality-50k-reach": time_to_quality_50k_reach,
                                        "latent-geometry": latent_geometry, "generator-speed": generator_speed,
                                        "hvae-augmentation-validation": hvae_augmentation_validation,
                                        "hvae-augmentation-test": hvae_augmentation_test,
                                        "stock-cnn-one-epoch": stock_cnn_one_epoch,
                                        "dropin-readme": dropin_readme, "dropin-test": dropin_test,
                                        "dropin-validation": dropin_validation,
                                        "dropin-stock-cnn-10k": lambda: dropin_regime(
                                            RESULTS, "mnist", ("cnn",), "first10000", (1, 10)),
                                        "dropin-1000-mlp": lambda: dropin_regime(
                                            RESULTS, "mnist", ("mlp",), "balanced1000", (100,)),
                                        "dropin-1000-cnn-resnet18": lambda: dropin_regime(
                                            RESULTS, "mnist", ("cnn", "resnet18"), "balanced1000", (100,)),
                                        "dropin-1000-subset-generators": lambda: dropin_regime(
                                            RESULTS, "mnist", ("mlp", "cnn", "resnet18"), "balanced1000", (100,),
                                            generator="subset", baselines=False),
                                        "dropin-all-60k": lambda: dropin_regime(RESULTS, "mnist", ("cnn",), "all", (5,)),
                                        "dropin-5000": lambda: dropin_regime(
                                            RESULTS, "mnist", ("mlp", "cnn", "resnet18"), "balanced5000", (100, 20)),
                                        "dropin-fashion-mlp": lambda: dropin_regime(
                                            RESULTS, "fashion-mnist", ("mlp",), "balanced1000", (100,)),
                                        "dropin-fashion-cnn-mnist-knobs": lambda: dropin_regime(
                                            RESULTS, "fashion-mnist", ("cnn",), "balanced1000", (100,),
                                            knobs="transferred"),
                                        "dropin-fashion-cnn-tuned": lambda: dropin_regime(
                                            RESULTS, "fashion-mnist", ("cnn",), "balanced1000", (100,), knobs="own")}


def rewritten(text: str) -> str:
    """``text`` with every table block regenerated; a block naming an unknown table is a ValueError."""
    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise ValueError(f"unknown table {name!r}; known tables are {sorted(TABLES)}")
        return match.group(1) + TABLES[name]() + match.group(4)
    return BLOCK.sub(replace, text)


def stale_tables(documents: list[Path] = DOCUMENTS) -> list[str]:
    """'document: table' for every block that differs from what its result files give."""
    stale = []
    for document in documents:
        text = document.read_text(encoding="utf-8")
        fresh = rewritten(text)
        if fresh != text:
            stale += [f"{document.relative_to(REPO)}: {match['name']}" for match, new in
                      zip(BLOCK.finditer(text), BLOCK.finditer(fresh)) if match["body"] != new["body"]]
    return stale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; fail if a table is out of date")
    args = parser.parse_args()
    if args.check:
        stale = stale_tables()
        for entry in stale:
            print(f"out of date: {entry} (run python benchmarks/tables.py)")
        sys.exit(1 if stale else 0)
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        fresh = rewritten(text)
        if fresh != text:
            atomic_write_text(document, fresh)
            print(f"rewrote the tables of {document.relative_to(REPO)}")


if __name__ == "__main__":
    main()
