"""The per-epoch record of generator runs, finished or still training, as one small result file.

A run too long for one session (the ConvHVAE on this CPU) has no final score yet, but its validation ELBO per
epoch compares with other architectures' at the same epoch. This reads each run folder's ``train_log.jsonl``
(and its recorded architecture) and writes what it holds; training is not touched.

    python benchmarks/run_curves.py --run convhvae=runs/ablations/prior-convhvae/exemplar/seed0 \
        --out benchmarks/results/ablations/prior-convhvae-curves.json

With ``--plot``, it also draws the three curves a long run is watched by: the validation ELBO, the exemplar
prior's log σ² and the share of posterior log-variances on the encoder's clamp, per epoch, one line per run.
A latent space that grows (docs/results.md, "Time to quality") shows as a rising log σ² and a share leaving 0.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from exaug.atomic import atomic_write_text
from exaug.bundle import read_bundle_config
from exaug.figures import pyplot, save_png
from exaug.train import training_log


CURVE_FIELDS = ("epoch", "val_elbo", "seconds", "prior_log_var", "val_posterior_log_var_at_clamp_share")


def run_curves(folder: Path) -> dict[str, Any]:
    """The architecture, recipe and per-epoch records of the run in ``folder``: epoch, validation ELBO, seconds, and
    the latent scale (the exemplar prior's log σ², the validation posterior log-variances' share on the encoder's
    clamp; None for epochs that did not record it)."""
    config = read_bundle_config(folder)
    records = training_log(folder)
    return {"folder": str(folder), "model": config["model"], "training": config["training"],
            "provenance": config.get("provenance", {}), "epochs_trained": len(records),
            **{field: [record.get(field) for record in records] for field in CURVE_FIELDS}}


PLOTTED_FIELDS = {"val_elbo": "validation ELBO − the run's best (nats)", "prior_log_var": "exemplar prior log σ²",
                  "val_posterior_log_var_at_clamp_share": "share of posterior log σ² on the clamp"}


def plot_curves(runs: dict[str, dict[str, Any]], path: Path) -> None:
    """The validation ELBO (below each run's best, so runs on different data share an axis), the prior's log σ²
    and the share on the clamp of each run against its epochs, with each run's KL warm-up marked; epochs without
    a record are gaps."""
    figure, axes = pyplot().subplots(1, len(PLOTTED_FIELDS), figsize=(5 * len(PLOTTED_FIELDS), 3.8), dpi=110)
    for axis, (field, title) in zip(axes, PLOTTED_FIELDS.items()):
        after_warmup = []
        for name, run in runs.items():
            values = [float("nan") if value is None else value for value in run[field]]
            if field == "val_elbo":
                best = max(value for value in run[field] if value is not None)
                values = [value - best for value in values]
            after_warmup += [value for epoch, value in zip(run["epoch"], values)
                             if epoch > run["training"]["warmup_epochs"]]
            line, = axis.plot(run["epoch"], values, label=name, linewidth=1)
            axis.axvline(run["training"]["warmup_epochs"], color=line.get_color(), linestyle=":", linewidth=0.8)
        if field == "val_elbo" and after_warmup:  # the warm-up lies tens of nats below: show the runs after it
            axis.set_ylim(min(after_warmup) - 0.5, 0.25)
        if field == "val_posterior_log_var_at_clamp_share":
            axis.set_ylim(-0.02, 1.02)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("epoch (dotted: end of KL warm-up)")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    save_png(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="NAME=DIR",
                        help="a label and a fit_generator folder; repeat for several runs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--plot", type=Path, help="also draw the curves of every run into this PNG")
    args = parser.parse_args()
    runs = dict(entry.split("=", 1) for entry in args.run if "=" in entry)
    if len(runs) != len(args.run):
        parser.error(f"--run takes NAME=DIR; got {args.run}")
    report = {"benchmark": "run_curves", "runs": {name: run_curves(Path(folder)) for name, folder in runs.items()}}
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    if args.plot:
        plot_curves(report["runs"], args.plot)
    for name, run in report["runs"].items():
        print(f"{name}: {run['epochs_trained']} epochs, last validation ELBO {run['val_elbo'][-1]:.2f}")
    print(f"wrote {args.out}" + (f" and {args.plot}" if args.plot else ""))


if __name__ == "__main__":
    main()
