"""The docs' tables of the generators' quality: the paper's Table 3 beside each architecture, training curves, the HVAE
on all 50K images, the exemplar means' precision, the latent space's scale, the kNN query and the ablations
(generated into docs/results.md by benchmarks/tables.py)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from tables_common import ARCHITECTURE_NAMES, RESULTS, mean_and_spread, paired_spread, signed

# Table 3 of the paper: MNIST test NLL (nats, IWAE S = 5000, means of 5 runs at the full budget).
PAPER_TABLE_3 = {"vae": {"Gaussian": 84.45, "VampPrior": 82.43, "exemplar": 82.09},
                 "hvae": {"Gaussian": 82.39, "VampPrior": 81.56, "exemplar": 81.22},
                 "convhvae": {"Gaussian": 80.52, "VampPrior": 79.67, "exemplar": 79.58}}


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


# How the tables tell a lost first run from its rerun (appended to the run's name).
FIRST_RUN, RERUN = ", first run (lost with its machine)", ", rerun"


def run_curve_files(path: Path) -> list[tuple[str, Path]]:
    """The curve file of a run (benchmarks/run_curves.py) and, before it, that of a first run of the same command
    that was lost with its machine (``NAME-first-run.json``), each with the words that tell the two apart ("" where
    there was one run)."""
    first = path.with_name(f"{path.stem}-first-run{path.suffix}")
    if not first.exists():
        return [("", path)] if path.exists() else []
    return [(FIRST_RUN, first)] + ([(RERUN, path)] if path.exists() else [])


# The runs that were started again from scratch after their machine was lost: (label, curve file, run name in it).
RERUNS = [
    ("MNIST, MLP VAE (default recipe)", "convergence/curves.json", "MNIST, MLP VAE (default recipe)"),
    ("MNIST, HVAE (50K run)", "hvae_50k/curve.json", "hvae"),
    ("ConvHVAE, exemplar prior, 10K images", "ablations/prior-convhvae-curves.json", "convhvae"),
]


def rerun_agreement(results: Path = RESULTS) -> str:
    """How closely a rerun of the same command, on another machine, follows the lost first run: the difference of
    their validation ELBO (rerun − first run) at a few epochs both reached, and the largest one up to the last."""
    lines = ["| run | epochs both reached | at epoch 1 | at epoch 10 | at the last of them | largest, in absolute value |",
             "|---|---|---|---|---|---|"]
    for label, file, name in RERUNS:
        files = dict(run_curve_files(results / file))
        if set(files) != {FIRST_RUN, RERUN}:
            continue
        first, rerun = (json.loads(files[which].read_text())["runs"][name] for which in (FIRST_RUN, RERUN))
        first_elbo = dict(zip(first["epoch"], first["val_elbo"]))
        differences = {epoch: elbo - first_elbo[epoch] for epoch, elbo in zip(rerun["epoch"], rerun["val_elbo"])
                       if epoch in first_elbo}
        if not differences:
            continue
        last = max(differences)
        cells = [f"{differences[epoch]:+.2g}" if epoch in differences else "" for epoch in (1, 10)]
        lines.append(f"| {label} | {last} | {cells[0]} | {cells[1]} | {differences[last]:+.2g} | "
                     f"{max(abs(value) for value in differences.values()):.2g} |")
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
                curves[ARCHITECTURE_NAMES[architecture]] = dict(zip(runs["0"]["curves"]["epoch"],
                                                                    runs["0"]["curves"]["val_elbo"]))
    for which, path in run_curve_files(results / "ablations" / "prior-convhvae-curves.json"):
        run = json.loads(path.read_text())["runs"]["convhvae"]
        curves[ARCHITECTURE_NAMES["convhvae"] + which] = dict(zip(run["epoch"], run["val_elbo"]))
    lines = ["| architecture | " + " | ".join(f"epoch {epoch}" for epoch in CURVE_EPOCHS) + " |",
             "|---|" + "---|" * len(CURVE_EPOCHS)]
    for name, by_epoch in curves.items():
        cells = [f"{by_epoch[epoch]:.2f}" if epoch in by_epoch else "" for epoch in CURVE_EPOCHS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def hvae_50k_curve(results: Path = RESULTS) -> str:
    """Validation ELBO at equal epochs on all 50K MNIST images, seed 0, one recipe: the MLP VAE of the time-to-quality
    study (the paper's recipe, warm-up 40) beside the HVAE runs (benchmarks/run_curves.py)."""
    mlp = json.loads((results / "time_to_quality" / "reach-50000.json").read_text())["curves"]["paper recipe"]
    hvae = {f"HVAE{which}": dict(zip(run["epoch"], run["val_elbo"]))
            for which, path in run_curve_files(results / "hvae_50k" / "curve.json")
            for run in [json.loads(path.read_text())["runs"]["hvae"]]}
    last = min(len(mlp), max(max(by_epoch) for by_epoch in hvae.values()))
    epochs = [epoch for epoch in (10, 20, 40, 80, 120, 160, 200, 240, 280, 320) if epoch < last] + [last]
    lines = ["| epoch | MLP VAE | " + " | ".join(f"{name} | − MLP" for name in hvae) + " |",
             "|---|---|" + "---|---|" * len(hvae)]
    for epoch in epochs:
        cells = [f"{by_epoch[epoch]:.2f} | {signed(by_epoch[epoch] - mlp[epoch - 1])}" if epoch in by_epoch else " | "
                 for by_epoch in hvae.values()]
        lines.append(f"| {epoch} | {mlp[epoch - 1]:.2f} | " + " | ".join(cells) + " |")
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
        paired = "" if difference is None else f"{signed(difference['mean'])} ± {difference['sem']:.2f}"
        lower = "" if difference is None else f"{100 * difference['share_lower']:.0f} % of images"
        lines.append(f"| {label} | {provenance.get('epochs_trained', '')} | "
                     f"{provenance.get('best_val_elbo', 0):.2f} | {run['nll']:.2f} | {paired} | {lower} |")
    return "\n".join(lines) + "\n"


# The generators evaluated on all 10,000 test images on this machine, each beside the paper's figures (Table 3's NLL,
# Table 5's kNN error) and the targets the issues set: (label, result file, dataset, paper NLL, paper kNN error %,
# NLL target, kNN target).
WHOLE_TEST_SET = [
    ("MNIST, MLP VAE (default recipe)", "convergence/mnist-evaluation.json", "mnist", 82.09, 1.13, 82.0, 1.10),
    ("Fashion-MNIST, MLP VAE (default recipe)", "convergence/fashion-mnist-evaluation.json", "fashion-mnist",
     226.75, 12.56, 226.7, 12.5),
    ("MNIST, HVAE (50K run)", "hvae_50k/evaluation.json", "mnist", 81.22, None, None, None),
]


def whole_test_set(results: Path = RESULTS) -> str:
    """The longer runs scored on the whole test set by ``exaug evaluate`` (IWAE NLL, one-sample ELBO and its parts, active
    units, latent kNN error with k chosen on validation), each with the epochs and best validation ELBO its weights
    record, beside the paper and the issue's target; a run not scored yet is listed as such."""
    lines = ["| run | epochs | best validation ELBO | test NLL, nats (± s.e.) | paper | target | test ELBO "
             "| KL / −reconstruction | active units | latent kNN error % (k) | paper | target |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, file, dataset, paper_nll, paper_knn, nll_target, knn_target in WHOLE_TEST_SET:
        targets = (f"≤ {nll_target}" if nll_target else "", f"≤ {knn_target:.2f}" if knn_target else "")
        paper = (f"{paper_nll:.2f}", "" if paper_knn is None else f"{paper_knn:.2f}")
        path = results / file
        if not path.exists():
            lines.append(f"| {label} | not scored yet | | | {paper[0]} | {targets[0]} | | | | | {paper[1]} | {targets[1]} |")
            continue
        report = json.loads(path.read_text())
        if report["dataset"] != dataset or report["iwae_images"] != report["test_images"]:
            raise ValueError(f"{path}: {report['dataset']}, IWAE on {report['iwae_images']} of {report['test_images']} "
                             f"test images; this table holds {dataset} scored on all of them")
        provenance = report["generator_provenance"]
        lines.append(
            f"| {label} | {provenance['epochs_trained']} | {provenance['best_val_elbo']:.2f} | "
            f"{report['iwae_nll']:.2f} ± {report['iwae_nll_sem']:.2f} (S = {report['iwae_samples']}) | {paper[0]} | "
            f"{targets[0]} | {report['test_elbo']:.2f} | {report['test_kl']:.2f} / {-report['test_reconstruction']:.2f} | "
            f"{report['active_units']} / {report['latent_dim']} | {report['knn_error']:.2f} ({report['knn_k']}) | "
            f"{paper[1]} | {targets[1]} |")
    return "\n".join(lines) + "\n"


def twin_agreement(results: Path, files: dict[str, str]) -> str:
    """Per generator (label → a benchmarks/twin_label_agreement.py file), the share of its twins of the same exemplars
    that one classifier trained on real images only assigns to another class than the exemplar's, at each kernel
    width, beside the share of the real exemplars it gets wrong. The files must share their classifier and exemplars."""
    reports = {label: json.loads((results / file).read_text()) for label, file in files.items()}
    first = next(iter(reports.values()))
    for label, report in reports.items():
        if (report["classifier"], report["count"], report["dataset"]) != (first["classifier"], first["count"], first["dataset"]):
            raise ValueError(f"{files[label]}: another classifier, exemplar count or dataset than {next(iter(files.values()))}")
    scales = [key for key in first["disagreement_percent"] if key.startswith("twins_sigma_x")]
    lines = ["| generator | kernel σ | real exemplars | " + " | ".join(
        f"twins at {key.removeprefix('twins_sigma_x')}·σ" for key in scales) + " |", "|---" * (3 + len(scales)) + "|"]
    for label, report in reports.items():
        shares = report["disagreement_percent"]
        lines.append(f"| {label} | {report['kernel_sigma']:.3f} | {shares['real_exemplars']:.2f} % | " +
                     " | ".join(f"{shares[key]:.2f} %" for key in scales) + " |")
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
        paired = "" if difference is None else f"{signed(difference['mean'], 5)} ± {difference['sem']:.5f}"
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
    runs = {name + which: run for which, path in run_curve_files(results / "convergence" / "curves.json")
            for name, run in json.loads(path.read_text())["runs"].items()}
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


def knn_query(results: Path = RESULTS) -> str:
    """Validation ELBO at equal epochs with the kNN search around each exemplar's cached mean and around the batch's
    posterior means, the mean over the seeds, and posterior − cache paired by seed (benchmarks/knn_query.py)."""
    report = json.loads((results / "knn_query.json").read_text())
    lines = ["| epoch | validation ELBO, cache query | validation ELBO, posterior query "
             "| posterior − cache (paired) |", "|---|---|---|---|"]
    for row in report["rows"]:
        lines.append(f"| {row['epoch']} | {row['cache']:.2f} | {row['posterior']:.2f} | "
                     f"{signed(row['difference_mean'])} ± {row['difference_std']:.2f} |")
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


# How docs/results.md names the generators of benchmarks/latent_geometry.py.
LATENT_GEOMETRY_NAMES = {"mnist": "bundled `mnist` (paper recipe, 341 epochs)",
                         "runs/ttq-50k-default": "3 nearest, 349 epochs",
                         "runs/ttq-50k-all": "paper recipe, 349 epochs"}


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
