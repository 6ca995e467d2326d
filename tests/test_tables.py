"""The docs' generated tables agree with the result files they come from (benchmarks/tables.py)."""

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from conftest import load_benchmark

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "tables.py"


@pytest.fixture(scope="module")
def tables():
    return load_benchmark("tables")


# The topic modules tables.py loads (benchmarks/tables_*.py): the very modules whose globals its tables read.
@pytest.fixture(scope="module")
def generators(tables):
    return tables.tables_generators


@pytest.fixture(scope="module")
def speed(tables):
    return tables.tables_speed


@pytest.fixture(scope="module")
def classifiers(tables):
    return tables.tables_classifiers


@pytest.fixture(scope="module")
def dropin_tables(tables):
    return tables.tables_dropin


def test_every_generated_table_in_the_docs_matches_its_result_files(tables):
    assert tables.stale_tables() == [], "run python benchmarks/tables.py and commit the docs"


def test_a_table_that_no_longer_matches_its_files_is_named(tables, tmp_path):
    document = tmp_path / "doc.md"
    document.write_text("text\n<!-- table: table-3 -->\n| an old table |\n<!-- /table -->\nmore\n")
    tables.REPO = tmp_path  # name documents relative to the temporary folder
    try:
        assert tables.stale_tables([document]) == ["doc.md: table-3"]
    finally:
        tables.REPO = SCRIPT.parents[1]


def test_a_block_naming_an_unknown_table_is_refused(tables):
    with pytest.raises(ValueError, match="unknown table 'table-9'"):
        tables.rewritten("<!-- table: table-9 -->\n<!-- /table -->")


def study(train_images: int, nll: float) -> dict:
    return {"train_images": train_images, "epochs": 30, "warmup_epochs": 10, "test_images": 500, "iwae_samples": 1000,
            "variants": {"exemplar": {"0": {"iwae_nll": nll, "test_elbo": -nll - 7}}}}


def test_table_3_puts_each_architecture_beside_the_paper_and_marks_what_did_not_run(generators, tmp_path):
    (tmp_path / "ablations").mkdir()
    (tmp_path / "ablations" / "prior-hvae.json").write_text(json.dumps(study(10000, 91.5)))
    table = generators.table_3(tmp_path)
    assert "| HVAE | exemplar | 91.50 | 0 |  | -98.50 | 81.22 |" in table
    assert "| ConvHVAE | exemplar |  | not run |  |  | 79.58 |" in table


def test_table_3_pairs_each_architecture_with_the_vae_by_seed(generators, tmp_path):
    (tmp_path / "ablations").mkdir()
    vae, hvae = study(10000, 93.0), study(10000, 91.5)
    vae["variants"]["exemplar"]["1"] = {"iwae_nll": 94.0, "test_elbo": -101.0}
    hvae["variants"]["exemplar"]["1"] = {"iwae_nll": 93.0, "test_elbo": -100.0}
    (tmp_path / "ablations" / "prior.json").write_text(json.dumps(vae))
    (tmp_path / "ablations" / "prior-hvae.json").write_text(json.dumps(hvae))
    assert "| HVAE | exemplar | 92.25 ± 1.06 | 0, 1 | -1.25 ± 0.35 |" in generators.table_3(tmp_path)


def test_table_3_refuses_studies_on_different_budgets(generators, tmp_path):
    (tmp_path / "ablations").mkdir()
    (tmp_path / "ablations" / "prior.json").write_text(json.dumps(study(10000, 93.0)))
    (tmp_path / "ablations" / "prior-hvae.json").write_text(json.dumps(study(50000, 91.5)))
    with pytest.raises(ValueError, match="different budgets"):
        generators.table_3(tmp_path)


def test_the_curves_table_shows_each_architecture_at_the_epochs_it_reached(generators, tmp_path):
    (tmp_path / "ablations").mkdir()
    finished = study(10000, 91.5)
    finished["variants"]["exemplar"]["0"]["curves"] = {"epoch": [1, 2, 3], "val_elbo": [-200.0, -150.0, -140.0]}
    (tmp_path / "ablations" / "prior-hvae.json").write_text(json.dumps(finished))
    in_progress = {"runs": {"convhvae": {"epoch": [1], "val_elbo": [-190.0]}}}
    (tmp_path / "ablations" / "prior-convhvae-curves.json").write_text(json.dumps(in_progress))
    table = generators.architecture_curves(tmp_path)
    assert "| HVAE | -200.00 | -150.00 | -140.00 |" + "  |" * (len(generators.CURVE_EPOCHS) - 3) in table
    assert "| ConvHVAE | -190.00 |  |  |" in table and "VAE (MLP)" not in table


def test_the_latent_scale_table_reads_only_the_epochs_after_the_warm_up(generators, tmp_path):
    (tmp_path / "convergence").mkdir()
    run = {"epochs_trained": 4, "training": {"warmup_epochs": 2}, "epoch": [1, 2, 3, 4],
           "val_elbo": [-120.0, -100.0, -95.0, -96.0], "prior_log_var": [5.0, -1.5, -1.7, -1.6],
           "val_posterior_log_var_at_clamp_share": [None, 0.0, 0.25, 0.0]}
    (tmp_path / "convergence" / "curves.json").write_text(json.dumps({"runs": {"mlp": run}}))
    assert "| mlp | 4 | -95.00 (3) | -1.50 → -1.60 | -1.70 to -1.50 | 25.0 % |" in generators.convergence_latent_scale(tmp_path)


def test_the_latent_scale_table_says_when_a_run_is_still_in_its_warm_up(generators, tmp_path):
    (tmp_path / "convergence").mkdir()
    run = {"epochs_trained": 2, "training": {"warmup_epochs": 100}, "epoch": [1, 2], "val_elbo": [-330.0, -310.0],
           "prior_log_var": [-0.2, -0.5], "val_posterior_log_var_at_clamp_share": [0.0, 0.0]}
    (tmp_path / "convergence" / "curves.json").write_text(json.dumps({"runs": {"fashion": run}}))
    assert "| fashion | 2 | -310.00 (2) | in warm-up (epoch 2 of 100) | |  |" in generators.convergence_latent_scale(tmp_path)


def test_a_run_lost_with_its_machine_keeps_its_row_beside_its_rerun(generators, tmp_path):
    (tmp_path / "convergence").mkdir()
    run = {"epochs_trained": 2, "training": {"warmup_epochs": 100}, "epoch": [1, 2], "val_elbo": [-330.0, -310.0],
           "prior_log_var": [-0.2, -0.5], "val_posterior_log_var_at_clamp_share": [0.0, 0.0]}
    lost = {**run, "epochs_trained": 3, "epoch": [1, 2, 3], "val_elbo": [-330.0, -310.0, -300.0],
            "prior_log_var": [-0.2, -0.5, -0.6], "val_posterior_log_var_at_clamp_share": [0.0, 0.0, 0.0]}
    (tmp_path / "convergence" / "curves-first-run.json").write_text(json.dumps({"runs": {"mlp": lost}}))
    (tmp_path / "convergence" / "curves.json").write_text(json.dumps({"runs": {"mlp": run}}))
    table = generators.convergence_latent_scale(tmp_path)
    assert table.index("| mlp, first run (lost with its machine) | 3 | -300.00 (3) |") < table.index("| mlp, rerun | 2 |")


def test_a_rerun_is_compared_with_its_lost_first_run_at_the_epochs_both_reached(generators, tmp_path):
    (tmp_path / "hvae_50k").mkdir()
    first = {"epoch": [1, 2, 10, 11], "val_elbo": [-200.0, -150.0, -110.0, -109.0]}
    rerun = {"epoch": [1, 2, 10], "val_elbo": [-200.001, -150.5, -109.75]}
    (tmp_path / "hvae_50k" / "curve-first-run.json").write_text(json.dumps({"runs": {"hvae": first}}))
    (tmp_path / "hvae_50k" / "curve.json").write_text(json.dumps({"runs": {"hvae": rerun}}))
    assert "| MNIST, HVAE (50K run) | 10 | -0.001 | +0.25 | +0.25 | 0.5 |" in generators.rerun_agreement(tmp_path)


def test_the_hvae_curve_table_gives_the_lost_run_and_its_rerun_a_column_each(generators, tmp_path):
    (tmp_path / "hvae_50k").mkdir()
    (tmp_path / "time_to_quality").mkdir()
    mlp = [-100.0 - epoch for epoch in range(20, 0, -1)]  # epochs 1..20
    (tmp_path / "time_to_quality" / "reach-50000.json").write_text(json.dumps({"curves": {"paper recipe": mlp}}))
    first = {"epoch": list(range(1, 21)), "val_elbo": [-110.0] * 20}
    rerun = {"epoch": list(range(1, 11)), "val_elbo": [-111.0] * 10}
    (tmp_path / "hvae_50k" / "curve-first-run.json").write_text(json.dumps({"runs": {"hvae": first}}))
    (tmp_path / "hvae_50k" / "curve.json").write_text(json.dumps({"runs": {"hvae": rerun}}))
    table = generators.hvae_50k_curve(tmp_path)
    assert "| epoch | MLP VAE | HVAE, first run (lost with its machine) | − MLP | HVAE, rerun | − MLP |" in table
    assert "| 10 | -111.00 | -110.00 | +1.00 | -111.00 | 0.00 |" in table
    assert "| 20 | -101.00 | -110.00 | -9.00 |  |  |" in table


def paired_report(epochs: int, nll: float, difference: float) -> dict:
    mlp = {"nll": 82.0, "provenance": {"version": "mnist v1", "epochs_trained": 341, "best_val_elbo": -87.6}}
    hvae = {"nll": nll, "provenance": {"epochs_trained": epochs, "best_val_elbo": -88.0}}
    return {"baseline": "mlp", "generators": {"mlp": mlp, "hvae": hvae},
            "differences": {"hvae": {"mean": difference, "sem": 0.1, "share_lower": 0.5}}}


def test_the_hvae_nll_table_lists_the_baseline_once_and_every_snapshot_of_the_run(generators, tmp_path):
    (tmp_path / "hvae_50k").mkdir()
    (tmp_path / "hvae_50k" / "paired_nll-epoch135.json").write_text(json.dumps(paired_report(135, 82.4, 0.4)))
    (tmp_path / "hvae_50k" / "paired_nll.json").write_text(json.dumps(paired_report(300, 81.8, -0.2)))
    rows = generators.hvae_50k_nll(tmp_path).splitlines()[2:]
    assert rows[0].startswith("| mlp | 341 |") and len(rows) == 3
    assert "| hvae, 135 epochs | 135 | -88.00 | 82.40 | +0.40 ± 0.10 | 50 % of images |" in rows
    assert "| hvae, 300 epochs | 300 | -88.00 | 81.80 | -0.20 ± 0.10 | 50 % of images |" in rows


def agreement_report(classifier: str = "clf/seed0", twins_at_sigma: float = 3.3) -> dict:
    """What benchmarks/twin_label_agreement.py writes."""
    return {"classifier": classifier, "count": 10_000, "dataset": "mnist", "kernel_sigma": 0.35893,
            "disagreement_percent": {"real_exemplars": 0.05, "twins_sigma_x0.5": 0.9, "twins_sigma_x1": twins_at_sigma}}


def test_the_twin_agreement_table_gives_each_generator_its_off_class_share_at_each_kernel_width(generators, tmp_path):
    (tmp_path / "mlp.json").write_text(json.dumps(agreement_report()))
    (tmp_path / "hvae.json").write_text(json.dumps(agreement_report(twins_at_sigma=5.123)))
    lines = generators.twin_agreement(tmp_path, {"MLP": "mlp.json", "HVAE": "hvae.json"}).splitlines()
    assert lines[0] == "| generator | kernel σ | real exemplars | twins at 0.5·σ | twins at 1·σ |"
    assert lines[2:] == ["| MLP | 0.359 | 0.05 % | 0.90 % | 3.30 % |", "| HVAE | 0.359 | 0.05 % | 0.90 % | 5.12 % |"]


def test_the_twin_agreement_table_refuses_files_scored_by_different_classifiers(generators, tmp_path):
    (tmp_path / "mlp.json").write_text(json.dumps(agreement_report()))
    (tmp_path / "hvae.json").write_text(json.dumps(agreement_report(classifier="other/seed0")))
    with pytest.raises(ValueError, match="hvae.json: another classifier"):
        generators.twin_agreement(tmp_path, {"MLP": "mlp.json", "HVAE": "hvae.json"})


def evaluation_report(dataset: str = "mnist", iwae_images: int = 10_000) -> dict:
    """What ``exaug evaluate --out`` writes (the fields the whole-test-set table reads)."""
    return {"dataset": dataset, "test_images": 10_000, "iwae_images": iwae_images, "iwae_samples": 5000,
            "iwae_nll": 81.904, "iwae_nll_sem": 0.2212, "test_elbo": -86.01, "test_kl": 25.5,
            "test_reconstruction": -60.51, "active_units": 30, "latent_dim": 40, "knn_error": 1.08, "knn_k": 6,
            "generator_provenance": {"epochs_trained": 612, "best_val_elbo": -86.512}}


def test_the_whole_test_set_table_puts_each_scored_run_beside_the_paper_and_its_target(generators, tmp_path):
    (tmp_path / "convergence").mkdir()
    (tmp_path / "convergence" / "mnist-evaluation.json").write_text(json.dumps(evaluation_report()))
    rows = generators.whole_test_set(tmp_path).splitlines()[2:]
    assert rows[0] == ("| MNIST, MLP VAE (default recipe) | 612 | -86.51 | 81.90 ± 0.22 (S = 5000) | 82.09 | ≤ 82.0 | "
                       "-86.01 | 25.50 / 60.51 | 30 / 40 | 1.08 (6) | 1.13 | ≤ 1.10 |")
    assert rows[1].startswith("| Fashion-MNIST, MLP VAE (default recipe) | not scored yet |")
    assert rows[2].startswith("| MNIST, HVAE (50K run) | not scored yet |")


@pytest.mark.parametrize("report", [evaluation_report(iwae_images=1000), evaluation_report(dataset="fashion-mnist")])
def test_the_whole_test_set_table_refuses_a_partial_score_or_another_dataset(generators, tmp_path, report):
    (tmp_path / "convergence").mkdir()
    (tmp_path / "convergence" / "mnist-evaluation.json").write_text(json.dumps(report))
    with pytest.raises(ValueError, match="mnist-evaluation.json"):
        generators.whole_test_set(tmp_path)


def load_run_curves():
    return load_benchmark("run_curves")


def test_run_curves_records_a_runs_epochs_so_far_with_its_latent_scale_and_plots_them(tmp_path, monkeypatch):
    from torch.utils.data import TensorDataset

    from conftest import blob_images
    from exaug import ModelConfig, TrainConfig, fit_generator

    run_curves = load_run_curves()
    images, _ = blob_images(30)
    fit_generator(TensorDataset(images), TensorDataset(blob_images(10, seed=1)[0]),
                  TrainConfig(epochs=2, batch_size=15, warmup_epochs=1, knn=3), tmp_path / "run",
                  model_config=ModelConfig(architecture="hvae", hidden_dim=8, latent_dim=2), progress=False,
                  log=lambda record: None)
    curves = run_curves.run_curves(tmp_path / "run")
    assert curves["epochs_trained"] == 2 and curves["epoch"] == [1, 2] and curves["model"]["architecture"] == "hvae"
    assert len(curves["val_elbo"]) == len(curves["prior_log_var"]) == 2
    assert all(0.0 <= share <= 1.0 for share in curves["val_posterior_log_var_at_clamp_share"])
    assert curves["provenance"]["epochs_trained"] in (1, 2)

    monkeypatch.setattr(sys, "argv", ["run_curves.py", "--run", f"tiny={tmp_path / 'run'}",
                                      "--out", str(tmp_path / "curves.json"), "--plot", str(tmp_path / "curves.png")])
    run_curves.main()
    assert json.loads((tmp_path / "curves.json").read_text())["runs"]["tiny"]["epoch"] == [1, 2]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_hvae_dropin_table_labels_each_snapshot_by_its_recorded_version_and_pairs_it_with_the_mlp(dropin_tables,
                                                                                                       tmp_path):
    cell = tmp_path / "dropin" / "runs" / "mnist" / "test" / "cnn-balanced1000-e100"

    def write(folder, generator, p, errors, provenance=None):
        for seed, error in enumerate(errors):
            spec = {"augmentation": folder.split("-p")[0], "generator": generator, "p": p, "seed": seed}
            result = {"spec": spec, "error": error, **({"generator_provenance": provenance} if provenance else {})}
            (cell / folder / f"seed{seed}").mkdir(parents=True)
            (cell / folder / f"seed{seed}" / "result.json").write_text(json.dumps(result))

    write("affine", "bundled", 0.5, [2.0, 2.2, 2.1])
    write("affine+exemplar-append-p1-bundled", "bundled", 1.0, [1.9, 2.0, 1.8])
    write("affine+exemplar-append-p0.5-hvae", "hvae", 0.5, [2.0, 2.0, 1.9])
    write("affine+exemplar-append-p1-hvae-longer", "hvae-longer", 1.0, [1.8, 1.9, 1.8], {"version": "hvae, epoch 311"})
    rows = dropin_tables.hvae_dropin(tmp_path).splitlines()[2:]
    assert "| affine+exemplar-append (hvae, epoch 311, p 1) | 1.80, 1.90, 1.80 | 1.83 | -0.07 ± 0.06 |" in rows
    assert "| affine+exemplar-append (hvae, p 0.5) | 2.00, 2.00, 1.90 | 1.97 | +0.07 ± 0.06 |" in rows
    assert "| affine | 2.00, 2.20, 2.10 | 2.10 |  |" in rows and len(rows) == 4


def classifier_run(seed: int, error: float, lam: float = 0.4, learning_rate: float = 0.1, last: float | None = None,
                   version: str | None = "mnist v1") -> dict:
    """A run as benchmarks/classifier_runs.py records it (the fields the tables read)."""
    return {"seed": seed, "error": error, "lam": lam, "learning_rate": learning_rate,
            "mean_of_last_epochs": error if last is None else last, "generator": {"source": "mnist", "version": version}}


def write_row(results, name, runs, split="test", generator="a1", **recipe):
    (results / "classifiers").mkdir(exist_ok=True)
    shared = {"split": split, "dataset": "mnist", "hidden": [1024, 1024], "generator_sha256": generator, **recipe}
    (results / "classifiers" / f"{name}.json").write_text(json.dumps({"commands": ["x"], "recipe": shared,
                                                                       "runs": runs}))


def test_the_validation_grid_bolds_the_rules_pick_breaking_a_tie_by_the_last_ten_epochs(classifiers, tmp_path):
    write_row(tmp_path, "hvae-validation-lr0.1", [classifier_run(0, 0.98, 0.2, last=0.990),
                                                  classifier_run(0, 0.96, 0.4, last=0.985)], split="val")
    write_row(tmp_path, "hvae-validation-lr0.05", [classifier_run(0, 0.96, 0.4, 0.05, last=0.979)], split="val")
    rows = classifiers.hvae_augmentation_validation(tmp_path).splitlines()[2:]
    assert rows == ["| 0.1 | 0.2 | 0.98 | 0.990 |", "| 0.1 | 0.4 | 0.96 | 0.985 |",
                    "| **0.05** | **0.4** | **0.96** | **0.979** |"]


@pytest.mark.parametrize("second", [{"split": "test"}, {"generator": "b2"}, {"hidden": [8192, 8192]}])
def test_the_validation_grid_refuses_a_file_of_another_split_generator_or_recipe(classifiers, tmp_path, second):
    write_row(tmp_path, "hvae-validation-lr0.1", [classifier_run(0, 0.9)], split="val")
    write_row(tmp_path, "hvae-validation-lr0.05", [classifier_run(0, 0.9, learning_rate=0.05)],
              **{"split": "val", **second})
    with pytest.raises(ValueError, match="one recipe and generator, scored on validation"):
        classifiers.hvae_augmentation_validation(tmp_path)


def test_the_validation_picks_put_each_generators_own_pick_side_by_side(classifiers, tmp_path):
    write_row(tmp_path, "hvae-validation-lr0.1", [classifier_run(0, 1.06, 0.4, version="hvae"),
                                                  classifier_run(0, 1.15, 0.2, version="hvae")], split="val", generator="h")
    write_row(tmp_path, "mlp-validation-lr0.05", [classifier_run(0, 0.97, 0.4, 0.05)], split="val", generator="m")
    rows = classifiers.hvae_validation_picks(tmp_path).splitlines()[2:]
    assert rows[0] == "| hvae | its 3 λ × 2 η grid, with this snapshot | 0.4 | 0.1 | 1.06 | 1.060 |"
    assert rows[1].startswith("| mnist v1 | λ from a sweep") and rows[1].endswith("| 0.4 | 0.05 | 0.97 | 0.970 |")


@pytest.mark.parametrize("second, run", [({"hidden": [8192, 8192]}, classifier_run(0, 0.97)),
                                         ({}, classifier_run(1, 0.97)), ({"split": "test"}, classifier_run(0, 0.97))])
def test_the_validation_picks_refuse_runs_that_differ_in_more_than_the_generator(classifiers, tmp_path, second, run):
    write_row(tmp_path, "hvae-validation-lr0.1", [classifier_run(0, 1.06)], split="val", generator="h")
    write_row(tmp_path, "mlp-validation-lr0.05", [run], **{"split": "val", "generator": "m", **second})
    with pytest.raises(ValueError, match="mlp-validation"):
        classifiers.hvae_validation_picks(tmp_path)


def test_a_table_without_its_result_files_names_what_to_collect(classifiers, tmp_path):
    with pytest.raises(ValueError, match="no classifier result file matches .*hvae-validation-.*classifier_runs.py"):
        classifiers.hvae_augmentation_validation(tmp_path)


def test_paired_rows_give_each_candidate_its_difference_from_the_baseline_over_shared_seeds(classifiers, tmp_path):
    write_row(tmp_path, "mlp", [classifier_run(seed, error) for seed, error in enumerate([0.80, 0.78, 0.76])])
    write_row(tmp_path, "hvae", [classifier_run(seed, error, 0.6, 0.05, version="mnist-hvae")
                                 for seed, error in enumerate([0.75, 0.74, 0.70, 0.71])], generator="b2")
    rows = classifiers.classifier_paired_rows(tmp_path, "mlp", ["hvae"]).splitlines()[2:]
    assert rows == ["| mnist v1 | 0.4 | 0.1 | 0–2 | 0.78 ± 0.02 |  |",
                    "| mnist-hvae | 0.6 | 0.05 | 0–3 | 0.72 ± 0.02 | -0.05 ± 0.01 over 3 seeds |"]


def test_a_paired_row_refuses_runs_of_different_lambdas(classifiers, tmp_path):
    write_row(tmp_path, "mixed", [classifier_run(0, 0.8, 0.4), classifier_run(1, 0.8, 0.6)])
    with pytest.raises(ValueError, match="mix λ or η"):
        classifiers.classifier_paired_rows(tmp_path, "mixed", [])


def test_paired_rows_refuse_a_candidate_trained_to_another_recipe(classifiers, tmp_path):
    write_row(tmp_path, "mlp", [classifier_run(0, 0.8)])
    write_row(tmp_path, "wide", [classifier_run(0, 0.7)], generator="b2", hidden=[8192, 8192])
    with pytest.raises(ValueError, match="wide: its recipe differs from mlp's"):
        classifiers.classifier_paired_rows(tmp_path, "mlp", ["wide"])


def write_dropin_runs(tables, folder, augmentation: str, split: str, errors: list[float], **fields) -> None:
    """Result files of a Fashion-MNIST CNN regime on 1,000 images, laid out as benchmarks/dropin.py writes them."""
    dropin = tables.sibling_benchmark("dropin")
    regime = dropin.RunSpec("fashion-mnist", "cnn", "none", "balanced1000", "test", seed=0, epochs=100, p=0.5)
    for seed, error in enumerate(errors):
        spec = dataclasses.replace(regime, augmentation=augmentation, split=split, seed=seed, **fields)
        run = folder / "dropin" / "runs" / spec.name()
        run.mkdir(parents=True, exist_ok=True)
        (run / "result.json").write_text(json.dumps({"spec": spec.to_dict(), "error": error}))


@pytest.fixture
def dropin_grid(tables, tmp_path):
    """A small drop-in grid: validation picks TrivialAugment as the best classic augmentation."""
    for augmentation, error in {"none": 20.0, "affine": 18.0, "trivialaugment": 15.0}.items():
        write_dropin_runs(tables, tmp_path, augmentation, "val", [error])
    write_dropin_runs(tables, tmp_path, "trivialaugment+exemplar-append", "val", [14.0])
    write_dropin_runs(tables, tmp_path, "none", "test", [17.0, 18.0])
    write_dropin_runs(tables, tmp_path, "trivialaugment", "test", [16.0, 16.5])
    write_dropin_runs(tables, tmp_path, "affine", "test", [19.0, 19.5])
    write_dropin_runs(tables, tmp_path, "trivialaugment+exemplar-append", "test", [15.5, 16.0])
    return tmp_path


def test_a_drop_in_regime_lists_each_row_per_seed_paired_with_none_and_the_best_classic(dropin_tables, dropin_grid):
    table = dropin_tables.dropin_regime(dropin_grid, "fashion-mnist", ("cnn",), "balanced1000", (100,)).splitlines()
    assert [line.split(" | ")[2] for line in table[2:]] == [
        "none", "RandomAffine", "TrivialAugment †", "TrivialAugment + appended †"]  # none first, twins last
    assert table[-1] == ("| cnn | 100 | TrivialAugment + appended † | p 0.5 | 15.50, 16.00 | **15.75 ± 0.35** "
                         "| -1.75 ± 0.35 | -0.50 ± 0.00 (TrivialAugment) |")
    assert table[3].endswith("| +1.75 ± 0.35 | +3.00 ± 0.00 (TrivialAugment) |")  # affine, against the val winner
    twins_only = dropin_tables.dropin_regime(dropin_grid, "fashion-mnist", ("cnn",), "balanced1000", (100,),
                                             baselines=False)
    assert len(twins_only.splitlines()) == 3
    with pytest.raises(ValueError, match="no drop-in test runs of mnist/balanced1000"):
        dropin_tables.dropin_regime(dropin_grid, "mnist", ("cnn",), "balanced1000", (100,))


def test_a_drop_in_regime_shows_its_own_picks_or_those_transferred_from_another_regime(tables, dropin_tables,
                                                                                       dropin_grid, monkeypatch):
    write_dropin_runs(tables, dropin_grid, "exemplar", "val", [15.5])  # its own validation picks p 0.5
    write_dropin_runs(tables, dropin_grid, "exemplar", "test", [16.5, 17.0])
    write_dropin_runs(tables, dropin_grid, "exemplar", "test", [17.5, 18.0], p=1.0,
                      knobs_from="mnist/cnn-balanced1000-e100")

    def rows(knobs: str) -> list[str]:
        table = dropin_tables.dropin_regime(dropin_grid, "fashion-mnist", ("cnn",), "balanced1000", (100,), knobs=knobs)
        return [" | ".join(line.split(" | ")[2:4]) for line in table.splitlines()[2:]]

    assert rows("own") == ["none | ", "RandomAffine | ", "TrivialAugment † | ", "drop-in ExemplarAugment † | p 0.5",
                           "TrivialAugment + appended † | p 0.5"]
    assert rows("transferred") == ["none | ", "drop-in ExemplarAugment | p 1 (val of mnist/cnn-balanced1000-e100)"]
    monkeypatch.setattr(dropin_tables, "README_DROPIN_CASES", [("case", ("fashion-mnist", "cnn", "balanced1000", 100),
                                                         "exemplar")])
    with pytest.raises(ValueError, match="has 2 test rows of exemplar"):  # the README shows one row per case
        dropin_tables.dropin_readme(dropin_grid)


def test_the_readme_drop_in_row_shows_none_the_best_classic_and_the_twins_with_the_lowest_in_bold(
        dropin_tables, dropin_grid, monkeypatch):
    monkeypatch.setattr(dropin_tables, "README_DROPIN_CASES", [
        ("a case", ("fashion-mnist", "cnn", "balanced1000", 100), "trivialaugment+exemplar-append")])
    assert dropin_tables.dropin_readme(dropin_grid).splitlines()[-1] == (
        "| a case | 17.50 ± 0.71 | 16.25 ± 0.35 (TrivialAugment †) | **15.75 ± 0.35** (TrivialAugment + appended †) |")
    monkeypatch.setattr(dropin_tables, "README_DROPIN_CASES", [("a case", ("fashion-mnist", "cnn", "balanced1000", 100),
                                                         "exemplar-append")])
    with pytest.raises(ValueError, match="no drop-in test row exemplar-append"):
        dropin_tables.dropin_readme(dropin_grid)


def test_the_one_epoch_stock_cnn_table_pools_its_files_by_seed_and_counts_the_seeds_twins_lowered(dropin_tables,
                                                                                                     tmp_path):
    def write(name: str, seeds: list[int], errors: dict, scored_on: str = "test", **recipe) -> None:
        run = {"epochs": 1, "dropout": False, "normalize": True, "scored_on": scored_on, "seeds": seeds,
               "errors": errors, **recipe}
        (tmp_path / name).write_text(json.dumps(run))

    write("stock_cnn_e1_test_seeds5-6.json", [5, 6], {"none": [4.0, 6.0], "p=0.25": [5.0, 5.0]})
    write("stock_cnn_e1_test.json", [0, 1], {"none": [5.0, 7.0], "p=0.25": [4.0, 5.0], "p=0.5": [6.0, 6.0]})
    write("stock_cnn_e1_val.json", [0, 1], {"none": [5.0, 7.0], "p=0.25": [4.0, 5.0]}, scored_on="validation")
    lines = dropin_tables.stock_cnn_one_epoch(tmp_path).splitlines()[2:]
    assert lines[0] == "| test | 0–1 (`stock_cnn_e1_test.json`) | 0.25 | 6.00 | 4.50 | -1.50 ± 0.71 | 2 of 2 |"
    assert lines[1].startswith("| test | 0–1 (`stock_cnn_e1_test.json`) | 0.5 |")
    assert lines[2].startswith("| test | 5–6 (")  # files in seed order, whatever their names
    assert lines[3].startswith("| validation | 0–1 ")
    assert lines[4] == "| test | all 4, pooled | 0.25 | 5.50 | 4.75 | -0.75 ± 1.26 | 3 of 4 |"
    assert len(lines) == 5  # p 0.5 and validation come from one file each: nothing to pool
    write("stock_cnn_e1_test_seeds7-8.json", [7, 8], {"none": [1.0, 1.0], "p=0.25": [1.0, 1.0]}, dropout=True)
    with pytest.raises(ValueError, match="must all be one-epoch runs without dropout, with Normalize"):
        dropin_tables.stock_cnn_one_epoch(tmp_path)
    write("stock_cnn_e1_test_seeds7-8.json", [6, 8], {"none": [1.0, 1.0], "p=0.25": [1.0, 1.0]})
    with pytest.raises(ValueError, match=r"seeds7-8.json repeats seeds \[6\] .* pooling would count them twice"):
        dropin_tables.stock_cnn_one_epoch(tmp_path)


def test_the_means_precision_table_gives_each_bundle_its_size_nll_and_paired_difference(generators, tmp_path):
    (tmp_path / "hvae_50k").mkdir()
    (tmp_path / "hvae_50k" / "means_precision_nll.json").write_text(json.dumps({
        "images": 500, "samples": 1000, "baseline": "float32 means",
        "generators": {"float32 means": {"bundle_bytes": 18_000_000, "nll": 80.634},
                       "float16 means": {"bundle_bytes": 14_000_000, "nll": 80.634}},
        "differences": {"float16 means": {"mean": 2.6e-05, "sem": 4.5e-05, "share_lower": 0.502}}}))
    (tmp_path / "hvae_50k" / "means_precision_twins.json").write_text(json.dumps({
        "images": 10000, "images_changed_share": 0.947, "pixels_changed_share": 0.004678, "max_abs_steps": 1.0}))
    lines = generators.means_precision(tmp_path).splitlines()
    assert lines[0].startswith("| exemplar means | bundle size | test NLL, first 500 images (S = 1000) |")
    assert lines[0].endswith("| MixedBatchLoader twins of the first 10,000 exemplars that differ (pixels) |")
    assert lines[2] == "| float32 means | 17.2 MiB (18.0 MB) | 80.63 |  |  |  |"
    assert lines[3] == ("| float16 means | 13.4 MiB (14.0 MB) | 80.63 | +0.00003 ± 0.00005 | 50.2 % of images "
                        "| 94.7 % (0.47 %, at most 1/255) |")


def test_the_knn_query_table_gives_each_epoch_both_queries_and_their_paired_difference(generators, tmp_path):
    (tmp_path / "knn_query.json").write_text(json.dumps({"rows": [
        {"epoch": 10, "cache": -109.694, "posterior": -109.6952, "difference_mean": -0.0012, "difference_std": 0.0064}]}))
    assert generators.knn_query(tmp_path).splitlines()[2:] == ["| 10 | -109.69 | -109.70 | 0.00 ± 0.01 |"]


@pytest.mark.parametrize("difference, digits, written", [(0.356, 2, "+0.36"), (-0.86, 2, "-0.86"), (-0.0012, 2, "0.00"),
                                                          (0.0004, 2, "0.00"), (-0.000031, 5, "-0.00003")])
def test_a_difference_keeps_its_sign_unless_it_rounds_to_zero(generators, difference, digits, written):
    assert generators.signed(difference, digits) == written


def ablation_run(elbo: float, nll: float, gap: float, seconds: list[float]) -> dict:
    """A seed's run as benchmarks/ablations.py records it (the fields the tables read)."""
    return {"test_elbo": elbo, "iwae_nll": nll,
            "curves": {"train_elbo": [-200.0, -100.0 + gap], "val_elbo": [-210.0, -100.0], "seconds": seconds}}


def write_ablation(results: Path, study: str, variants: dict) -> None:
    (results / "ablations").mkdir(exist_ok=True)
    (results / "ablations" / f"{study}.json").write_text(json.dumps({"iwae_samples": 1000, "variants": variants}))


def test_an_ablation_table_names_the_default_bolds_the_best_and_gives_the_median_epoch(generators, tmp_path):
    write_ablation(tmp_path, "prior", {
        "Gaussian": {"0": ablation_run(-107.0, 99.0, 2.5, [3.0, 2.0]),
                     "1": ablation_run(-108.0, 99.5, 2.4, [2.0, 9.0])},
        "exemplar": {"0": ablation_run(-100.0, 93.0, 2.0, [8.0, 8.0]),
                     "1": ablation_run(-101.0, 94.0, 1.9, [9.0, 7.0])}})
    lines = generators.ablation(tmp_path, "prior", "prior", "exemplar").splitlines()
    assert lines[0] == ("| prior | test ELBO | test NLL (IWAE, S = 1000) | train − validation ELBO, last epoch "
                        "| CPU s per epoch, median |")
    assert lines[2] == "| Gaussian | -107.50 ± 0.71 | 99.25 ± 0.35 | 2.5 (2.50, 2.40) | 2.5 |"
    assert lines[3] == "| exemplar (default) | **-100.50 ± 0.71** | **93.50 ± 0.71** | 2.0 (2.00, 1.90) | 8.0 |"
    assert "**" not in generators.ablation(tmp_path, "prior", "prior", "exemplar", bold=False)


def test_an_ablation_table_paired_with_one_variant_says_when_every_seed_agrees(generators, tmp_path):
    write_ablation(tmp_path, "exemplar-fraction", {
        "M/N 1": {"0": ablation_run(-100.0, 93.6, 3.4, [1.0]), "1": ablation_run(-100.0, 93.5, 3.3, [1.0])},
        "M/N 0.5": {"0": ablation_run(-100.0, 93.4, 2.0, [1.0]), "1": ablation_run(-100.0, 93.3, 1.9, [1.0])},
        "M/N 0.1": {"0": ablation_run(-101.0, 93.5, -0.3, [1.0]), "1": ablation_run(-101.0, 93.1, -0.1, [1.0])}})
    lines = generators.ablation(tmp_path, "exemplar-fraction", "M/N", "M/N 0.5", paired_with="M/N 0.5").splitlines()
    assert lines[0].endswith("| NLL − M/N 0.5's, paired | train − validation ELBO, last epoch |")
    assert lines[2].startswith("| 1 | ") and lines[2].endswith("| +0.20 ± 0.00 (every seed) | 3.4 (3.40, 3.30) |")
    assert lines[3].startswith("| 0.5 (default) | ") and lines[3].endswith("| 0 | 2.0 (2.00, 1.90) |")
    assert lines[4].endswith("| **93.30 ± 0.28** | -0.05 ± 0.21 | -0.2 (-0.30, -0.10) |")  # one seed up, one down


def test_the_10k_time_to_quality_table_explains_a_seed_short_of_the_threshold_and_bolds_the_winner(speed, tmp_path):
    folder = tmp_path / "time_to_quality"
    folder.mkdir()
    (folder / "timings.json").write_text(json.dumps({"seconds_per_epoch": {
        "paper recipe": {"1": 4.9885, "2": 3.082}, "gradient on 3 nearest": {"1": 3.0555, "2": 1.8275},
        "cached centres only": {"1": 2.406, "2": 1.1985}}}))
    row = lambda epochs, finals, minutes: {"epochs": epochs, "final_val_elbo": finals, "minutes_to_threshold": minutes}
    (folder / "frontier.json").write_text(json.dumps({
        "timings": "benchmarks/results/time_to_quality/timings.json", "threads": 2, "seeds": [0, 1],
        "threshold_val_elbo": -102.114, "rows": {
            "paper recipe": row(30, [-102.174, -102.054], [None, 1.541]),
            "gradient on 3 nearest": row(50, [-100.1, -99.9], [0.944, 0.944]),
            "cached centres only": row(77, [-102.4, -102.6], [None, None])}}))
    lines = speed.time_to_quality_10k(tmp_path).splitlines()
    assert lines[0].endswith("| s/epoch, 1 / 2 threads | minutes to -102.11 (2 threads), per seed |")
    assert lines[2] == ("| paper recipe (`--gradient-neighbours all`) | 30 | -102.11 ± 0.08 | 4.99 / 3.08 "
                        "| not reached, 1.5 (seed 0 ends 0.06 short) |")
    assert lines[3] == ("| **gradient on each row's 3 nearest** | 50 | **-100.00 ± 0.14** | 3.06 / 1.83 "
                        "| **0.9, 0.9** |")
    assert lines[4] == "| centres from the cache only | 77 | -102.50 ± 0.14 | 2.41 / 1.20 | not reached |"


@pytest.fixture
def reach_50k(tmp_path):
    """A 50K time-to-quality result (reach-50000.json) and the timings file it names."""
    folder = tmp_path / "time_to_quality"
    folder.mkdir()
    (folder / "timings-50000.json").write_text(json.dumps({"seconds_per_epoch": {
        "paper recipe": {"1": 27.125, "2": 16.151}, "gradient on 3 nearest": {"1": 17.217, "2": 10.257}}}))

    def row(best, best_epoch, to_target, minutes, equal_epochs, equal_elbo):
        return {"epochs": 3, "best_val_elbo": best, "best_epoch": best_epoch, "epochs_to_target": to_target,
                "minutes_to_target": minutes, "equal_time_epochs": equal_epochs, "val_elbo_at_equal_time": equal_elbo}
    (folder / "reach-50000.json").write_text(json.dumps({
        "timings": "benchmarks/results/time_to_quality/timings-50000.json", "threads": 2, "target_val_elbo": -87.6,
        "equal_minutes": 0.51, "rows": {"paper recipe": row(-87.7, 2, None, None, 2, -88.0),
                                        "gradient on 3 nearest": row(-87.5, 3, 3, 0.513, 3, -87.55)},
        "curves": {"paper recipe": [-90.0, -87.7, -87.8], "gradient on 3 nearest": [-90.0, -87.7, -87.5]}}))
    return tmp_path


def test_the_50k_timings_table_gives_each_variant_its_seconds_per_epoch_at_each_thread_count(speed, reach_50k):
    assert speed.time_to_quality_50k_timings(reach_50k).splitlines() == [
        "| variant | s/epoch, 1 thread | s/epoch, 2 threads |", "|---|---|---|",
        "| paper recipe (all k, the default) | 27.1 | 16.2 |",
        "| gradient on 3 nearest (`--gradient-neighbours 3`) | 17.2 | 10.3 |"]


def test_the_50k_reach_table_bolds_the_variant_at_the_target_soonest_and_the_best_at_equal_time(speed, reach_50k):
    lines = speed.time_to_quality_50k_reach(reach_50k).splitlines()
    assert lines[0] == ("| variant | best validation ELBO (epoch) | after 3 epochs "
                        "| epochs, minutes to -87.6 (2 threads) | at equal time, 0.5 min |")
    assert lines[2] == "| paper recipe (all k, the default) | -87.70 (2) | -87.80 | not reached | -88.00 (epoch 2) |"
    assert lines[3] == ("| **gradient on 3 nearest (`--gradient-neighbours 3`)** | -87.50 (3) | -87.50 | **3, 0.5** "
                        "| **-87.55** (epoch 3) |")
    report = json.loads((reach_50k / "time_to_quality" / "reach-50000.json").read_text())
    report["curves"]["paper recipe"].append(-87.6)
    (reach_50k / "time_to_quality" / "reach-50000.json").write_text(json.dumps(report))
    with pytest.raises(ValueError, match="stopped at different epochs"):
        speed.time_to_quality_50k_reach(reach_50k)


def test_the_latent_geometry_table_gives_each_generator_its_scale_and_share_on_the_clamp(generators, tmp_path):
    (tmp_path / "latent_geometry.json").write_text(json.dumps({"log_var_clamp": 2.0, "generators": {
        "runs/ttq-50k-default": {"kernel_sigma": 2.82550430, "exemplar_spread_per_dimension": 4.98197,
                                 "nearest_exemplar_distance": 9.50087, "twin_offset_to_spacing": 1.88089,
                                 "posterior_log_var_median": 1.51367, "posterior_log_var_at_clamp_share": 0.35114}}}))
    lines = generators.latent_geometry(tmp_path).splitlines()
    assert lines[0].endswith("| posterior log σ², median | share at the +2 clamp |")
    assert lines[2] == "| 3 nearest, 349 epochs | 2.826 | 4.982 | 9.501 | 1.88 | 1.51 | 35.1 % |"


def test_the_generator_speed_table_leaves_out_the_gaussian_unit_and_bolds_the_default(speed, tmp_path):
    (tmp_path / "generator_speed.json").write_text(json.dumps({"results": {
        "gaussian": {"ratio_to_gaussian": 1.0}, "knn_neighbour_gradient": {"ratio_to_gaussian": 2.734977},
        "exact_neighbour_gradient": {"ratio_to_gaussian": 82.547}}}))
    assert speed.generator_speed(tmp_path).splitlines()[2:] == [
        "| **kNN, gradient on all k = 10 neighbours (Algorithm 1, the default)** | **2.73×** |",
        "| exact with neighbour gradient | 83× |"]
