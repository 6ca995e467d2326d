"""The per-epoch record of generator runs, finished or still training, as one small result file.

A run too long for one session (the ConvHVAE on this CPU) has no final score yet, but its validation ELBO per
epoch compares with other architectures' at the same epoch. This reads each run folder's ``train_log.jsonl``
(and its recorded architecture) and writes what it holds; training is not touched.

    python benchmarks/run_curves.py --run convhvae=runs/ablations/prior-convhvae/exemplar/seed0 \
        --out benchmarks/results/ablations/prior-convhvae-curves.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from exaug.atomic import atomic_write_text
from exaug.bundle import read_bundle_config
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="NAME=DIR",
                        help="a label and a fit_generator folder; repeat for several runs")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs = dict(entry.split("=", 1) for entry in args.run if "=" in entry)
    if len(runs) != len(args.run):
        parser.error(f"--run takes NAME=DIR; got {args.run}")
    report = {"benchmark": "run_curves", "runs": {name: run_curves(Path(folder)) for name, folder in runs.items()}}
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    for name, run in report["runs"].items():
        print(f"{name}: {run['epochs_trained']} epochs, last validation ELBO {run['val_elbo'][-1]:.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
