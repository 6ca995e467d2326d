"""The docs' tables of what a generator's training costs in time: an epoch of each architecture and prior, each prior
variant against the Gaussian prior's, and the time each variant takes to reach the paper recipe's quality
(generated into docs/results.md by benchmarks/tables.py)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from tables_common import ARCHITECTURE_NAMES, RESULTS, mean_and_spread


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


# How docs/results.md names the variants of benchmarks/time_to_quality.py.
TIME_TO_QUALITY_10K_NAMES = {"paper recipe": "paper recipe (`--gradient-neighbours all`)",
                             "gradient on 3 nearest": "gradient on each row's 3 nearest",
                             "gradient on the nearest": "gradient on the nearest",
                             "gradient into the μ head (cached trunk)": "gradient into the mean head, cached trunk",
                             "cached centres only": "centres from the cache only",
                             "batch 250": "batch 250, learning rate × √2.5",
                             "batch 500": "batch 500, learning rate × √5"}

TIME_TO_QUALITY_50K_NAMES = {"paper recipe": "paper recipe (all k, the default)",
                             "gradient on 3 nearest": "gradient on 3 nearest (`--gradient-neighbours 3`)"}


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
