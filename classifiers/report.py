"""Reports of classifier runs: the summary over seeds (JSON and a Markdown row), its file name, the λ-sweep plot."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from exaug.figures import pyplot, save_png

from .config import ClassifierConfig


def model_name(model: str, hidden: tuple[int, ...] | list[int]) -> str:
    """"MLP 1024×1024" for the paper's MLPs, else the timm model's name."""
    if model != "mlp":
        return model
    return "MLP " + "×".join(str(width) for width in hidden)


def seed_summary(config: ClassifierConfig, dataset: str, generator: str, scored_on: str,
                 errors: dict[int, float]) -> dict[str, Any]:
    """The errors of one recipe over seeds (``errors``: seed → final error %), with their mean and std."""
    values = list(errors.values())
    return {
        "dataset": dataset, "generator": generator, "split": scored_on, "lam": config.lam,
        "hidden": list(config.hidden), "model": config.model, "epochs": config.epochs,
        "noise_scale": config.noise_scale, "learning_rate": config.learning_rate, "dtype": config.dtype,
        "seeds": list(errors), "errors": values,
        "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
    }


def summary_markdown(summary: dict[str, Any]) -> str:
    """One Markdown table row (with its header) for a :func:`seed_summary`; one seed is headed as such."""
    scale = "" if summary["noise_scale"] == 1.0 else f", noise scale {summary['noise_scale']:g}"
    eta = f"η={summary['learning_rate']:g}" + ("" if summary["dtype"] == "float32" else f", {summary['dtype']}")
    what = (f"LS alone ({eta})" if summary["generator"] == "none"
            else f"LS + Exemplar VAE aug (λ={summary['lam']}, {eta}{scale})")
    spread = "" if summary["std"] is None else f" ± {summary['std']:.2f}"
    seeds = summary["seeds"]
    heading = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean ± std, seeds {seeds[0]}–{seeds[-1]}"
    model = model_name(summary["model"], summary["hidden"])
    return (f"| dataset | model | method | {summary['split']} error % ({heading}) |\n|---|---|---|---|\n"
            f"| {summary['dataset']} | {model} | {what} | {summary['mean']:.2f}{spread} |\n")


def summary_name(out: Path, seeds: range) -> str:
    """Base name of the summary files of a call for ``seeds`` writing into ``out``.

    It is ``summary`` for a call covering every seed from 0 and at least the seeds already summarised
    there, else ``summary-seedsA-B``: a call for part of the seeds never replaces the summary of a larger one.
    """
    partial = f"summary-seeds{seeds[0]}-{seeds[-1]}"
    if seeds[0] != 0:
        return partial
    existing = out / "summary.json"
    if existing.exists():
        try:
            summarised = set(json.loads(existing.read_text())["seeds"])
        except (ValueError, KeyError, TypeError):
            return partial  # unreadable: keep it for the user to look at rather than replace it
        if not summarised <= set(seeds):
            return partial
    return "summary"


def plot_lambda_sweeps(curves: dict[str, dict[float, float]], title: str, path: Path) -> None:
    """Validation error against λ (the paper's Figure 5), one line per label (Figure 5 in full: one per
    generator); a single sweep labelled "" gets no legend. Written atomically as a PNG."""
    figure, axes = pyplot().subplots(figsize=(5, 3.5), dpi=120)
    for label, errors in curves.items():
        lams = sorted(errors)
        axes.plot(lams, [errors[lam] for lam in lams], marker="o", label=label or None)
    axes.set_xlabel("λ (weight on real data)")
    axes.set_ylabel("validation error (%)")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    if any(curves):
        axes.legend(fontsize=8)
    figure.tight_layout()
    save_png(figure, path)
