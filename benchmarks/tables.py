"""Results tables of the docs, generated from the result files under benchmarks/results/, never typed.

A table lives in a Markdown file between ``<!-- table: NAME -->`` and ``<!-- /table -->``. This script rewrites
every such block from its result files; ``--check`` changes nothing and fails when a block and its files
disagree (tests/test_tables.py runs it in the fast suite). Each table is built in the module of its topic,
benchmarks/tables_*.py (generators, speed, scale, classifiers, drop-in); this one names them and fills the blocks.

    python benchmarks/tables.py            # rewrite the tables in README.md and docs/*.md
    python benchmarks/tables.py --check    # exit 1, naming each table that is out of date
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path
from typing import Callable

from exaug.atomic import atomic_write_text

# tables_common holds sibling_benchmark, so it is the one sibling loaded here by hand, by path as sibling_benchmark
# loads the others: benchmarks/ is on sys.path only when this file runs as a script, not when it is loaded by path.
if "tables_common" not in sys.modules:
    _common = importlib.util.spec_from_file_location("tables_common", Path(__file__).with_name("tables_common.py"))
    sys.modules["tables_common"] = importlib.util.module_from_spec(_common)
    _common.loader.exec_module(sys.modules["tables_common"])
from tables_common import RESULTS, sibling_benchmark  # noqa: E402

tables_generators = sibling_benchmark("tables_generators")
tables_speed = sibling_benchmark("tables_speed")
tables_scale = sibling_benchmark("tables_scale")
tables_classifiers = sibling_benchmark("tables_classifiers")
tables_dropin = sibling_benchmark("tables_dropin")

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)

TABLES: dict[str, Callable[[], str]] = {
    "table-3": tables_generators.table_3, "architecture-speed": tables_speed.architecture_speed,
    "whole-test-set": tables_generators.whole_test_set,
    "architecture-curves": tables_generators.architecture_curves,
    "knn-scale": tables_scale.knn_scale, "knn-scale-step": tables_scale.knn_scale_step,
    "ddp-equivalence": tables_scale.ddp_equivalence, "exemplar-memory": tables_scale.exemplar_memory,
    "hvae-50k-curve": tables_generators.hvae_50k_curve, "hvae-50k-nll": tables_generators.hvae_50k_nll,
    "hvae-dropin": tables_dropin.hvae_dropin, "means-precision": tables_generators.means_precision,
    "convergence-latent-scale": tables_generators.convergence_latent_scale,
    "rerun-agreement": tables_generators.rerun_agreement,
    "knn-query": tables_generators.knn_query,
    "ablation-leave-one-out": lambda: tables_generators.ablation(RESULTS, "leave-one-out", "leave-one-out", "with"),
    "ablation-prior": lambda: tables_generators.ablation(RESULTS, "prior", "prior", "exemplar"),
    "ablation-exemplar-fraction": lambda: tables_generators.ablation(
        RESULTS, "exemplar-fraction", "M/N", "M/N 0.5", paired_with="M/N 0.5"),
    "ablation-search": lambda: tables_generators.ablation(
        RESULTS, "search", "prior during training", "kNN, k = 10", bold=False),
    "time-to-quality-10k": tables_speed.time_to_quality_10k,
    "time-to-quality-50k-timings": tables_speed.time_to_quality_50k_timings,
    "time-to-quality-50k-reach": tables_speed.time_to_quality_50k_reach,
    "latent-geometry": tables_generators.latent_geometry, "generator-speed": tables_speed.generator_speed,
    "hvae-augmentation-validation": tables_classifiers.hvae_augmentation_validation,
    "hvae-validation-picks": tables_classifiers.hvae_validation_picks,
    "hvae-twin-agreement": lambda: tables_generators.twin_agreement(RESULTS, {
        "mnist v1 (MLP VAE)": "hvae_50k/twins-mlp.json", "mnist-hvae, epoch 311": "hvae_50k/twins-hvae-e311.json"}),
    "hvae-augmentation-test": tables_classifiers.hvae_augmentation_test,
    "stock-cnn-one-epoch": tables_dropin.stock_cnn_one_epoch,
    "dropin-readme": tables_dropin.dropin_readme, "dropin-test": tables_dropin.dropin_test,
    "dropin-validation": tables_dropin.dropin_validation,
    "dropin-stock-cnn-10k": lambda: tables_dropin.dropin_regime(RESULTS, "mnist", ("cnn",), "first10000", (1, 10)),
    "dropin-1000-mlp": lambda: tables_dropin.dropin_regime(RESULTS, "mnist", ("mlp",), "balanced1000", (100,)),
    "dropin-1000-cnn-resnet18": lambda: tables_dropin.dropin_regime(
        RESULTS, "mnist", ("cnn", "resnet18"), "balanced1000", (100,)),
    "dropin-1000-subset-generators": lambda: tables_dropin.dropin_regime(
        RESULTS, "mnist", ("mlp", "cnn", "resnet18"), "balanced1000", (100,), generator="subset", baselines=False),
    "dropin-all-60k": lambda: tables_dropin.dropin_regime(RESULTS, "mnist", ("cnn",), "all", (5,)),
    "dropin-5000": lambda: tables_dropin.dropin_regime(
        RESULTS, "mnist", ("mlp", "cnn", "resnet18"), "balanced5000", (100, 20)),
    "dropin-fashion-mlp": lambda: tables_dropin.dropin_regime(
        RESULTS, "fashion-mnist", ("mlp",), "balanced1000", (100,)),
    "dropin-fashion-cnn-mnist-knobs": lambda: tables_dropin.dropin_regime(
        RESULTS, "fashion-mnist", ("cnn",), "balanced1000", (100,), knobs="transferred"),
    "dropin-fashion-cnn-tuned": lambda: tables_dropin.dropin_regime(
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
