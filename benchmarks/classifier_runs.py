"""Copy finished classifier runs into one small committed result file, so their figures stay traceable.

``exaug fit-classifier`` and ``exaug lambda-sweep`` write a ``result.json`` per run (``seedN/`` or ``lamX/``) into
folders that are not committed. This script gathers the finished runs under the folders it is given into
``benchmarks/results/classifiers/NAME.json``: per run its recipe, the generator it used (file hashes and the
bundle's recorded version, checked to be the same files), its final error and the mean of its last ten epochs
(the tie-break of the docs' selection rule), with the commands that made them. benchmarks/tables.py builds the
docs' classifier tables from these files.

    python benchmarks/classifier_runs.py --name hvae-validation-lr0.1 --runs carry/hvae-clf/sweep-lr0.1 \\
        --command "exaug lambda-sweep --dataset mnist --generator carry/hvae-clf/generator-e311 --lams 0.2 0.4 0.6 …"

A run without ``result.json`` (still training, or stopped) is listed and left out; collecting again later adds it.
One file holds one recipe: runs that differ in more than λ, η and the seed are refused.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any

from exaug.atomic import atomic_write_text
from exaug.bundle import BundleError, read_bundle_config, recorded_provenance
from exaug.classifiers.train import SETTINGS_ADDED_SINCE_FIRST_RELEASE

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "classifiers"
RECIPE_FIELDS = ("model", "hidden", "epochs", "batch_size", "learning_rate", "label_smoothing", "lam",
                 "noise_scale", "dtype", "seed")
LAST_EPOCHS = 10  # the tie-break of the selection rule: the mean error of the last ten epochs
RUN_FOLDER = re.compile(r"seed\d+|lam[\d.e-]+")  # how exaug fit-classifier and exaug lambda-sweep name run folders
VARIED = ("lam", "learning_rate", "seed")  # what may differ between the runs of one file


def run_record(result_file: Path) -> dict[str, Any]:
    """One finished run, from its ``result.json``: what a reader needs to trust and compare its error."""
    result = json.loads(result_file.read_text())
    config = {**SETTINGS_ADDED_SINCE_FIRST_RELEASE["config"], **result["config"]}  # older runs lack newer fields
    errors = [epoch["test_error"] for epoch in result["history"]]
    return {
        "folder": repository_path(result_file.parent),
        "dataset": config["extra"]["dataset"],
        "split": config["extra"]["split"],  # "val": the error is on the validation split, though stored as test_error
        **{field: config[field] for field in RECIPE_FIELDS},
        "generator": generator_record(result.get("generator"), result.get("generator_identity")),
        "train_size": result["train_size"],
        "evaluated_on": result["test_size"],
        "error": result["test_error"],
        "mean_of_last_epochs": statistics.fmean(errors[-LAST_EPOCHS:]),
    }


def repository_path(path: Path) -> str:
    """``path`` relative to the repository when inside it, so a committed file names no one's home folder."""
    resolved = path.resolve()
    return resolved.relative_to(REPO).as_posix() if resolved.is_relative_to(REPO) else path.as_posix()


def generator_record(source: str | None, identity: dict[str, Any] | None) -> dict[str, Any] | None:
    """The generator a run used: its name or folder, file hashes, and the version its bundle recorded, read only
    when that bundle still holds the very files the run hashed (a folder since overwritten is named, not trusted)."""
    if source is None:
        return None
    record: dict[str, Any] = {"source": source, "sha256": (identity or {}).get("sha256")}
    try:
        config = read_bundle_config(source)
    except (BundleError, OSError):
        record["version"] = None
        return record
    same_files = config.get("sha256") == record["sha256"]
    provenance = recorded_provenance(config)
    record["version"] = provenance.get("version") if same_files else None
    record["epochs_trained"] = provenance.get("epochs_trained") if same_files else None
    if not same_files:
        record["note"] = f"{source} now holds other files than this run used"
    return record


def recipe(run: dict[str, Any]) -> dict[str, Any]:
    """What runs compared with one another must share: everything but λ, η, the seed and the outcome, with the
    generator by its file hashes."""
    own = {*VARIED, "error", "mean_of_last_epochs", "folder", "generator"}
    return {**{key: value for key, value in run.items() if key not in own},
            "generator_sha256": (run["generator"] or {}).get("sha256")}


def collect(folders: list[Path]) -> tuple[list[dict[str, Any]], list[Path]]:
    """Finished runs under ``folders`` (each a run folder or a folder of them) and the unfinished ones."""
    finished, unfinished = [], []
    for folder in folders:
        if not folder.is_dir():
            raise SystemExit(f"{folder} is not a folder of classifier runs; pass the --out of "
                             f"exaug fit-classifier or exaug lambda-sweep")
        run_folders = [folder] if (folder / "result.json").exists() or (folder / "checkpoint.pt").exists() else \
            sorted(child for child in folder.iterdir() if child.is_dir() and RUN_FOLDER.fullmatch(child.name))
        for run in run_folders:
            if (run / "result.json").exists():
                finished.append(run_record(run / "result.json"))
            else:  # training, stopped, or not yet past its first epoch
                unfinished.append(run)
    return finished, unfinished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="the result file's name under benchmarks/results/classifiers/")
    parser.add_argument("--runs", type=Path, nargs="+", required=True,
                        help="--out folders of exaug fit-classifier or exaug lambda-sweep (or single run folders)")
    parser.add_argument("--command", action="append", required=True,
                        help="a command that made these runs, as run (repeat for several)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    finished, unfinished = collect(args.runs)
    for run in unfinished:
        print(f"not finished, left out: {run}")
    if not finished:
        raise SystemExit(f"no finished run under {', '.join(map(str, args.runs))}; nothing written")
    recipes = {json.dumps(recipe(run), sort_keys=True) for run in finished}
    if len(recipes) > 1:
        raise SystemExit(f"the runs under {', '.join(map(str, args.runs))} differ in more than λ, η and the seed "
                         f"({len(recipes)} recipes); collect each recipe into its own --name")
    settings = [tuple(run[key] for key in VARIED) for run in finished]
    if len(set(settings)) < len(settings):
        raise SystemExit(f"two runs under {', '.join(map(str, args.runs))} share λ, η and the seed; pass each run once")
    finished.sort(key=lambda run: tuple(run[key] for key in ("learning_rate", "lam", "seed")))
    path = args.out / f"{args.name}.json"
    atomic_write_text(path, json.dumps({"commands": args.command, "recipe": recipe(finished[0]), "runs": finished},
                                       indent=1) + "\n")
    print(f"wrote {len(finished)} runs to {path}")


if __name__ == "__main__":
    main()
