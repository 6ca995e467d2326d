"""The exaug command end to end on a small ImageFolder of 16×16 grey images."""

import json
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import stops_after, write_folder
from exaug import load_generator
from exaug.bundle import bundle_provenance
from exaug.cli.main import main


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("folder"), count=200)


@pytest.fixture(scope="module")
def fitted(image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "gen"
    result = CliRunner().invoke(main, [
        "fit-generator", "--dataset", str(image_folder), "--channels", "1", "--epochs", "2", "--warmup-epochs", "1",
        "--hidden-dim", "32", "--latent-dim", "4", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result


def test_fit_generator_prints_a_json_line_per_epoch_and_writes_a_bundle(fitted):
    out, result = fitted
    records = [json.loads(line) for line in result.output.splitlines() if line.startswith('{"epoch"')]
    assert [r["epoch"] for r in records] == [1, 2]
    assert load_generator(out).config.input_shape == (1, 16, 16)


def test_fit_generator_init_from_continues_a_bundle_with_its_architecture(fitted, image_folder, tmp_path):
    bundle, _ = fitted
    result = CliRunner().invoke(main, [
        "fit-generator", "--dataset", str(image_folder), "--channels", "1", "--epochs", "1", "--warmup-epochs", "0",
        "--init-from", str(bundle), "--no-progress", "--out", str(tmp_path / "longer")])
    assert result.exit_code == 0, result.output
    assert load_generator(tmp_path / "longer").config == load_generator(bundle).config


def test_fit_generator_init_from_refuses_an_architecture_the_bundle_does_not_have(fitted, image_folder, tmp_path):
    bundle, _ = fitted
    result = CliRunner().invoke(main, [
        "fit-generator", "--dataset", str(image_folder), "--channels", "1", "--epochs", "1", "--latent-dim", "8",
        "--init-from", str(bundle), "--no-progress", "--out", str(tmp_path / "other")])
    assert result.exit_code != 0
    assert "latent_dim 4 (asked for 8)" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("arch", ["hvae", "convhvae"])
def test_fit_generator_arch_trains_that_architecture_and_sample_export_and_lambda_sweep_take_it(arch, image_folder, tmp_path):
    out = tmp_path / arch
    result = CliRunner().invoke(main, [
        "fit-generator", "--dataset", str(image_folder), "--channels", "1", "--epochs", "1", "--warmup-epochs", "1",
        "--arch", arch, "--hidden-dim", "16", "--latent-dim", "3", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_generator(out).architecture == arch
    result = CliRunner().invoke(main, ["sample", "--generator", str(out), "--mode", "exemplars", "--count", "2",
                                       "--out", str(tmp_path / "plates.png")])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["export", "--generator", str(out), "--out", str(tmp_path / "exported")])
    assert result.exit_code == 0, result.output
    assert load_generator(tmp_path / "exported").architecture == arch
    result = CliRunner().invoke(main, [
        "lambda-sweep", "--dataset", str(image_folder), "--generator", str(out), "--hidden", "8", "--lams", "0.5",
        "--epochs", "1", "--workers", "0", "--no-progress", "--out", str(tmp_path / "sweep")])
    assert result.exit_code == 0, result.output
    assert set(json.loads((tmp_path / "sweep" / "sweep.json").read_text())["val_error"]) == {"0.5"}


def test_fit_generator_init_from_keeps_the_bundle_architecture_and_refuses_another(fitted, image_folder, tmp_path):
    bundle, _ = fitted
    result = CliRunner().invoke(main, [
        "fit-generator", "--dataset", str(image_folder), "--channels", "1", "--epochs", "1", "--arch", "hvae",
        "--init-from", str(bundle), "--no-progress", "--out", str(tmp_path / "other")])
    assert result.exit_code != 0
    assert "architecture 'vae' (asked for 'hvae')" in result.output and "Traceback" not in result.output


def test_fit_generator_rerun_keeps_its_epoch_budget_and_trains_on_when_given_a_larger_one(image_folder, tmp_path):
    out = tmp_path / "gen"
    command = ["fit-generator", "--dataset", str(image_folder), "--channels", "1", "--warmup-epochs", "1",
               "--hidden-dim", "32", "--latent-dim", "4", "--no-progress", "--out", str(out)]
    assert CliRunner().invoke(main, command + ["--epochs", "1"]).exit_code == 0

    again = CliRunner().invoke(main, command)  # no --epochs: the budget it was started with, not the default
    assert again.exit_code == 0, again.output
    assert f"{out} has trained all 1 epochs: nothing left to train" in again.stderr
    longer = CliRunner().invoke(main, command + ["--epochs", "2"])
    assert longer.exit_code == 0, longer.output
    assert f"resuming {out} at epoch 1 of 2 (budget raised from 1)" in longer.stderr
    assert [json.loads(line)["epoch"] for line in (out / "train_log.jsonl").read_text().splitlines()] == [1, 2]


@pytest.mark.parametrize("epochs, said", [
    (500, "resuming runs/gen at epoch 414 of 500 (budget lowered from 2000)"),
    (3000, "resuming runs/gen at epoch 414 of 3000 (budget raised from 2000)"),
    (300, "runs/gen has trained 414 epochs, more than --epochs 300: nothing left to train")])
def test_a_resumed_run_says_how_its_epoch_budget_changed(epochs, said):
    from exaug.cli.generator_commands import _resume_message
    from exaug.train import RunProgress

    so_far = RunProgress(epochs_trained=414, epoch_budget=2000, best_epoch=410, stopped_early=False)
    assert _resume_message(Path("runs/gen"), so_far, epochs).startswith(said)


def test_fit_generator_says_when_a_run_stopped_early_has_nothing_left_to_train(image_folder, tmp_path):
    out = tmp_path / "gen"
    command = ["fit-generator", "--dataset", str(image_folder), "--channels", "1", "--warmup-epochs", "1",
               "--hidden-dim", "32", "--latent-dim", "4", "--patience", "1", "--lr", "1.0", "--no-progress",
               "--out", str(out)]
    first = CliRunner().invoke(main, command + ["--epochs", "40"])
    assert first.exit_code == 0, first.output
    trained = len((out / "train_log.jsonl").read_text().splitlines())
    assert trained < 40
    again = CliRunner().invoke(main, command + ["--epochs", "50"])
    assert again.exit_code == 0, again.output
    assert f"stopped early at epoch {trained}" in again.stderr and f"--init-from {out}" in again.stderr
    assert len((out / "train_log.jsonl").read_text().splitlines()) == trained


def test_evaluate_writes_json_and_markdown(fitted, image_folder, tmp_path):
    out, _ = fitted
    report = tmp_path / "eval.json"
    result = CliRunner().invoke(main, ["evaluate", "--generator", str(out), "--samples", "10", "--subset", "4",
                                       "--no-progress", "--out", str(report)])
    assert result.exit_code == 0, result.output
    results = json.loads(report.read_text())
    assert results["iwae_images"] == 4 and "knn_error" in results and results["iwae_prior_tolerance"] == 1e-3
    assert results["generator_sha256"] == json.loads((out / "config.json").read_text())["sha256"]
    assert results["generator_provenance"]["epochs_trained"] >= 1
    assert "| active units |" in (tmp_path / "eval.md").read_text()
    exact = CliRunner().invoke(main, ["evaluate", "--generator", str(out), "--samples", "10", "--subset", "4",
                                      "--exact-prior", "--no-progress", "--out", str(tmp_path / "exact.json")])
    assert exact.exit_code == 0, exact.output
    exact_results = json.loads((tmp_path / "exact.json").read_text())
    assert exact_results["iwae_prior_tolerance"] is None
    assert 0 <= results["iwae_nll"] - exact_results["iwae_nll"] <= 1e-3 + 1e-5  # the same noise, a certified gap


def test_evaluate_stopped_midway_continues_on_rerun_to_the_result_of_an_unbroken_run(fitted, tmp_path, monkeypatch):
    from exaug import ExemplarVAE, evaluate

    out, _ = fitted
    command = ["evaluate", "--generator", str(out), "--samples", "10", "--subset", "6", "--no-progress"]
    unbroken = CliRunner().invoke(main, command + ["--out", str(tmp_path / "unbroken.json")])
    assert unbroken.exit_code == 0, unbroken.output
    monkeypatch.setattr(evaluate, "IWAE_SAVE_EVERY", 1)
    score = ExemplarVAE.iwae
    monkeypatch.setattr(ExemplarVAE, "iwae", stops_after(3, score))  # stops at the fourth image
    report = tmp_path / "eval.json"
    stopped = CliRunner().invoke(main, command + ["--out", str(report)])
    assert stopped.exit_code != 0 and not report.exists()
    assert (tmp_path / "eval.iwae-checkpoint.pt").exists()
    monkeypatch.setattr(ExemplarVAE, "iwae", stops_after(3, score))  # the three images left, and no more
    resumed = CliRunner().invoke(main, command + ["--out", str(report)])
    assert resumed.exit_code == 0, resumed.output
    assert "continuing the IWAE evaluation saved in" in resumed.stderr
    assert json.loads(report.read_text())["iwae_nll"] == json.loads((tmp_path / "unbroken.json").read_text())["iwae_nll"]
    assert not (tmp_path / "eval.iwae-checkpoint.pt").exists()


def test_fit_generator_passes_the_paper_ablation_query_and_index_flags_into_the_recorded_recipe(image_folder, tmp_path):
    result = CliRunner().invoke(main, [
        "fit-generator", "--dataset", str(image_folder), "--channels", "1", "--epochs", "1", "--warmup-epochs", "1",
        "--hidden-dim", "16", "--latent-dim", "2", "--knn-query", "cache", "--no-leave-one-out",
        "--patience-from-best", "--gradient-neighbours", "2", "--knn-index", "ivf", "--no-progress",
        "--out", str(tmp_path / "gen")])
    assert result.exit_code == 0, result.output
    training = json.loads((tmp_path / "gen" / "config.json").read_text())["training"]
    assert (training["knn_query"], training["leave_one_out"], training["patience_after_warmup"],
            training["gradient_neighbours"], training["knn_index"]) == ("cache", False, False, 2, "ivf")


def test_fit_generator_passes_the_cached_trunk_flag_and_explains_a_clash(image_folder, tmp_path):
    common = ["fit-generator", "--dataset", str(image_folder), "--channels", "1", "--epochs", "1", "--warmup-epochs",
              "1", "--hidden-dim", "16", "--latent-dim", "2", "--cached-trunk", "--no-progress"]
    result = CliRunner().invoke(main, [*common, "--out", str(tmp_path / "gen")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "gen" / "config.json").read_text())["training"]["cached_trunk"] is True
    clash = CliRunner().invoke(main, [*common, "--no-neighbour-gradient", "--out", str(tmp_path / "clash")])
    assert clash.exit_code != 0 and "needs neighbour_gradient=True" in clash.output
    assert not (tmp_path / "clash").exists()


@pytest.mark.parametrize("given, recorded", [(None, None), ("all", None), ("3", 3), ("1", 1)])
def test_fit_generator_re_encodes_all_k_by_default_and_the_g_nearest_when_asked(image_folder, tmp_path, given,
                                                                                 recorded):
    flag = [] if given is None else ["--gradient-neighbours", given]
    result = CliRunner().invoke(main, [
        "fit-generator", "--dataset", str(image_folder), "--channels", "1", "--epochs", "1", "--warmup-epochs", "1",
        "--hidden-dim", "16", "--latent-dim", "2", *flag, "--no-progress", "--out", str(tmp_path / "gen")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "gen" / "config.json").read_text())["training"]["gradient_neighbours"] == recorded


@pytest.mark.parametrize("given, message", [("abc", "neither a count of neighbours nor 'all'"),
                                            ("0", "must be a positive integer")])
def test_fit_generator_refuses_a_gradient_neighbour_count_that_is_not_one(image_folder, tmp_path, given, message):
    result = CliRunner().invoke(main, ["fit-generator", "--dataset", str(image_folder), "--gradient-neighbours", given,
                                       "--no-progress", "--out", str(tmp_path / "gen")])
    assert result.exit_code != 0 and message in result.output and not (tmp_path / "gen").exists()


@pytest.mark.parametrize("command", [["fit-generator", "--dataset", "mnist", "--out", "gen"],
                                     ["data", "subset", "mnist", "--size", "20", "--out", "subset"]])
def test_a_seed_torch_cannot_take_is_refused_before_anything_runs(command, tmp_path):
    result = CliRunner().invoke(main, [*command[:-1], str(tmp_path / command[-1]), "--seed", str(2**70)])
    assert result.exit_code != 0 and "--seed" in result.output and "Traceback" not in result.output
    assert not (tmp_path / command[-1]).exists()


@pytest.mark.parametrize("mode", ["random", "exemplars", "cyclic"])
def test_sample_writes_a_png_grid(fitted, tmp_path, mode):
    out, _ = fitted
    png = tmp_path / f"{mode}.png"
    result = CliRunner().invoke(main, ["sample", "--generator", str(out), "--mode", mode, "--count", "4",
                                       "--out", str(png)])
    assert result.exit_code == 0, result.output
    assert Image.open(png).size[0] > 16


def test_an_unknown_dataset_is_refused_with_the_choices(tmp_path):
    result = CliRunner().invoke(main, ["fit-generator", "--dataset", "cifar", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "neither one of mnist, fashion-mnist" in result.output


def test_a_broken_bundle_is_a_clean_error_not_a_traceback(tmp_path):
    result = CliRunner().invoke(main, ["sample", "--generator", str(tmp_path), "--out", str(tmp_path / "g.png")])
    assert result.exit_code == 1
    assert "config.json is missing" in result.output


def test_a_bundle_without_images_explains_what_needs_them(fitted, tmp_path):
    out, _ = fitted
    slim = tmp_path / "slim"
    exported = CliRunner().invoke(main, ["export", "--generator", str(out), "--out", str(slim), "--no-images"])
    assert exported.exit_code == 0, exported.output
    plates = CliRunner().invoke(main, ["sample", "--generator", str(slim), "--mode", "exemplars", "--count", "2",
                                       "--out", str(tmp_path / "plates.png")])
    assert isinstance(plates.exception, SystemExit) and plates.exit_code == 1  # a message, not a crash
    assert "--mode random" in plates.output and not (tmp_path / "plates.png").exists()
    copy = CliRunner().invoke(main, ["export", "--generator", str(slim), "--out", str(tmp_path / "copy")])
    assert isinstance(copy.exception, SystemExit) and "pass --no-images" in copy.output
    assert not (tmp_path / "copy").exists()


def test_export_of_a_folder_that_is_no_bundle_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(main, ["export", "--generator", str(tmp_path), "--out", str(tmp_path / "copy")])
    assert isinstance(result.exception, SystemExit) and "config.json is missing" in result.output
    assert not (tmp_path / "copy").exists()


def test_sample_insists_on_a_png_name(fitted, tmp_path):
    out, _ = fitted
    result = CliRunner().invoke(main, ["sample", "--generator", str(out), "--out", str(tmp_path / "grid.jpg")])
    assert result.exit_code == 2
    assert "should end in .png" in result.output


def test_fit_classifier_runs_each_seed_and_writes_a_mean_std_table(fitted, image_folder, tmp_path):
    out, _ = fitted
    result = CliRunner().invoke(main, [
        "fit-classifier", "--dataset", str(image_folder), "--generator", str(out), "--hidden", "16", "16",
        "--epochs", "2", "--seeds", "2", "--lam", "0.5", "--workers", "0", "--no-progress", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["errors"]) == 2 and summary["hidden"] == [16, 16] and summary["lam"] == 0.5
    assert (tmp_path / "seed1" / "result.json").exists()
    assert "± " in (tmp_path / "summary.md").read_text()


def test_a_folder_is_scored_on_its_held_out_part_and_says_so(image_folder, tmp_path):
    result = CliRunner().invoke(main, [
        "fit-classifier", "--dataset", str(image_folder), "--generator", "none", "--hidden", "8", "--epochs", "1",
        "--seeds", "1", "--workers", "0", "--no-progress", "--out", str(tmp_path)])  # --split test is the default
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "summary.json").read_text())["split"] == "val"
    assert "| val error %" in (tmp_path / "summary.md").read_text()
    run = torch.load(tmp_path / "seed0" / "checkpoint.pt", weights_only=True)
    assert run["identity"]["config"]["extra"]["split"] == "test"  # what --split said, as older runs stored it


def test_fit_classifier_dtype_reaches_each_run_and_the_table(image_folder, tmp_path):
    result = CliRunner().invoke(main, [
        "fit-classifier", "--dataset", str(image_folder), "--generator", "none", "--hidden", "8", "--epochs", "1",
        "--seeds", "1", "--dtype", "float64", "--workers", "0", "--no-progress", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "seed0" / "result.json").read_text())["config"]["dtype"] == "float64"
    assert json.loads((tmp_path / "summary.json").read_text())["dtype"] == "float64"
    assert "float64" in (tmp_path / "summary.md").read_text()


def test_seeds_split_across_calls_are_summarised_by_a_call_covering_them_all(fitted, image_folder, tmp_path):
    out, _ = fitted
    common = ["fit-classifier", "--dataset", str(image_folder), "--generator", str(out), "--hidden", "16",
              "--epochs", "1", "--workers", "0", "--no-progress", "--out", str(tmp_path)]
    second = CliRunner().invoke(main, [*common, "--seeds", "1", "--first-seed", "1"])
    assert second.exit_code == 0, second.output
    assert not (tmp_path / "seed0").exists() and not (tmp_path / "summary.json").exists()
    assert json.loads((tmp_path / "summary-seeds1-1.json").read_text())["seeds"] == [1]
    assert "±" not in (tmp_path / "summary-seeds1-1.md").read_text().splitlines()[-1]  # no spread from one seed
    seed1 = (tmp_path / "seed1" / "result.json").read_text()
    both = CliRunner().invoke(main, [*common, "--seeds", "2"])
    assert both.exit_code == 0, both.output
    assert (tmp_path / "seed1" / "result.json").read_text() == seed1  # the finished seed resumes to the same result
    assert json.loads((tmp_path / "summary.json").read_text())["seeds"] == [0, 1]
    assert "seeds 0–1" in (tmp_path / "summary.md").read_text()
    rerun_of_seed0 = CliRunner().invoke(main, [*common, "--seeds", "1"])
    assert rerun_of_seed0.exit_code == 0, rerun_of_seed0.output
    assert json.loads((tmp_path / "summary.json").read_text())["seeds"] == [0, 1]  # the larger summary is kept
    assert json.loads((tmp_path / "summary-seeds0-0.json").read_text())["seeds"] == [0]


def test_lambda_sweep_writes_errors_and_a_plot(fitted, image_folder, tmp_path):
    out, _ = fitted
    result = CliRunner().invoke(main, [
        "lambda-sweep", "--dataset", str(image_folder), "--generator", str(out), "--hidden", "16",
        "--lams", "0.2", "1.0", "--noise-scale", "0.5", "--epochs", "1", "--workers", "0", "--no-progress",
        "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    assert set(sweep["val_error"]) == {"0.2", "1"} and sweep["noise_scale"] == 0.5
    assert json.loads((tmp_path / "lam0.2" / "result.json").read_text())["config"]["noise_scale"] == 0.5
    assert Image.open(tmp_path / "sweep.png").format == "PNG"


def test_lambda_plot_draws_several_sweeps_in_one_figure_and_refuses_ones_that_do_not_compare(tmp_path):
    def sweep(name, dataset="mnist", generator="mnist"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "sweep.json").write_text(json.dumps({"dataset": dataset, "generator": generator,
                                                       "model": "mlp-1024x1024", "val_error": {"0.4": 1.0, "1": 2.0}}))
        return str(folder)

    gaussian, exemplar = sweep("gaussian", generator="runs/gaussian"), sweep("exemplar", generator="runs/exemplar")
    figure = tmp_path / "figure5.png"
    result = CliRunner().invoke(main, ["lambda-plot", gaussian, exemplar, "--out", str(figure)])
    assert result.exit_code == 0, result.output
    assert Image.open(figure).format == "PNG"
    fashion = sweep("fashion", dataset="fashion-mnist")
    refused = {
        "differ in dataset": ["lambda-plot", gaussian, fashion, "--out", str(tmp_path / "no.png")],
        "2 --label for 1 sweeps": ["lambda-plot", gaussian, "--label", "a", "--label", "b", "--out", str(tmp_path / "no.png")],
        "share a legend label": ["lambda-plot", gaussian, sweep("again", generator="runs/gaussian"),
                                 "--out", str(tmp_path / "no.png")],
        "holds no sweep.json": ["lambda-plot", str(tmp_path), "--out", str(tmp_path / "no.png")],
    }
    for message, arguments in refused.items():
        result = CliRunner().invoke(main, arguments)
        assert result.exit_code == 2 and message in result.output, (message, result.output)
    assert not (tmp_path / "no.png").exists()


def test_a_sweep_without_a_generator_is_refused(image_folder, tmp_path):
    result = CliRunner().invoke(main, ["lambda-sweep", "--dataset", str(image_folder), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "needs a generator" in result.output


def test_lambda_sweep_refuses_a_lambda_out_of_range_before_any_run(image_folder, tmp_path, tiny_generator_dir):
    result = CliRunner().invoke(main, ["lambda-sweep", "--dataset", str(image_folder), "--generator",
                                       str(tiny_generator_dir), "--lams", "0.2", "2", "--out", str(tmp_path / "sweep")])
    assert result.exit_code == 1 and "lam=2.0 is the weight on real data" in result.output
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("flags,message", [
    (["--generator", "mnsit"], "mnsit"),
    (["--model", "no_such_net"], "timm.list_models"),
    (["--device", "tpu0"], "not a device name"),
    (["--noise-scale", "nan"], "noise_scale=nan"),
    (["--generator", "none", "--noise-scale", "0.5"], "--noise-scale shapes the synthetic twins"),
    (["--lam", "1.5"], "lam=1.5 is the weight on real data"),
    (["--lr", "0"], "learning_rate=0.0"),
    (["--label-smoothing", "1"], "label_smoothing=1.0"),
    (["--epochs", "0"], "epochs=0"),
    (["--hidden", "0"], "hidden=(0,)"),
])
def test_fit_classifier_refuses_misspelt_settings_before_training(image_folder, tmp_path, flags, message):
    result = CliRunner().invoke(main, ["fit-classifier", "--dataset", str(image_folder), *flags,
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_fit_classifier_explains_a_refused_resume(image_folder, tmp_path):
    common = ["fit-classifier", "--dataset", str(image_folder), "--hidden", "8", "--epochs", "1", "--seeds", "1",
              "--workers", "0", "--no-progress", "--out", str(tmp_path)]
    assert CliRunner().invoke(main, common).exit_code == 0
    result = CliRunner().invoke(main, [*common, "--lr", "0.3"])
    assert result.exit_code == 1
    assert "config.learning_rate: 0.1 → 0.3" in result.output


def test_data_subset_writes_a_balanced_mnist_folder_that_fit_generator_trains_on(tmp_path):
    out = tmp_path / "mnist-100"
    result = CliRunner().invoke(main, ["data", "subset", "mnist", "--size", "100", "--seed", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [str(label) for label in range(10)]
    assert all(len(list((out / str(label)).iterdir())) == 10 for label in range(10))
    fitted = CliRunner().invoke(main, [
        "fit-generator", "--dataset", str(out), "--channels", "1", "--epochs", "1", "--warmup-epochs", "1",
        "--hidden-dim", "32", "--latent-dim", "4", "--no-progress", "--out", str(tmp_path / "gen")])
    assert fitted.exit_code == 0, fitted.output
    assert load_generator(tmp_path / "gen").config.input_shape == (1, 28, 28)


def test_data_subset_refuses_an_existing_folder_and_an_uneven_size_in_one_line(tmp_path):
    for arguments, message in [(["--size", "105"], "multiple of 10"), (["--size", "100"], "already exists")]:
        tmp_path.joinpath("taken").mkdir(exist_ok=True)
        result = CliRunner().invoke(main, ["data", "subset", "mnist", *arguments, "--out", str(tmp_path / "taken")])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_exemplar_plates_default_to_ten_rows_with_each_exemplar_framed_in_red(fitted, tmp_path):
    out, _ = fitted
    png = tmp_path / "plates.png"
    result = CliRunner().invoke(main, ["sample", "--generator", str(out), "--mode", "exemplars", "--out", str(png)])
    assert result.exit_code == 0, result.output
    grid = torch.as_tensor(__import__("numpy").array(Image.open(png).convert("RGB")))
    tile = 16 + 2
    assert grid.shape[:2] == (10 * tile + 2, 12 * tile + 2)  # 10 rows: the exemplar and 11 samples
    assert grid[0, 0].tolist() == [255, 0, 0] and grid[0, 2 * tile + 1].tolist() == [255, 255, 255]


@pytest.mark.parametrize("command", ["sample", "evaluate", "export"])
def test_generator_option_says_it_takes_a_bundled_name_or_a_directory(command):
    shown = " ".join(CliRunner().invoke(main, [command, "--help"]).output.split())  # as one line, unwrapped
    assert "--generator NAME|DIR" in shown and "bundled name (mnist, fashion-mnist)" in shown


@pytest.mark.parametrize("command", ["sample", "evaluate", "export", "fit-generator", "fit-classifier"])
def test_every_command_that_reads_data_takes_root(command):
    assert "--root" in CliRunner().invoke(main, [command, "--help"]).output


def test_a_bundle_without_images_finds_them_under_root(tmp_path):
    slim = tmp_path / "slim"
    exported = CliRunner().invoke(main, ["export", "--generator", "mnist", "--out", str(slim), "--no-images"])
    assert exported.exit_code == 0, exported.output
    missing = CliRunner().invoke(main, ["sample", "--generator", str(slim), "--mode", "exemplars", "--count", "1",
                                        "--root", str(tmp_path / "empty"), "--out", str(tmp_path / "none.png")])
    assert missing.exit_code == 1 and "--root or EXAUG_DATA" in missing.output
    from exaug.data import default_root

    found = CliRunner().invoke(main, ["sample", "--generator", str(slim), "--mode", "exemplars", "--count", "1",
                                      "--root", str(default_root()), "--out", str(tmp_path / "one.png")])
    assert found.exit_code == 0, found.output


def test_a_one_seed_summary_is_headed_by_its_seed_not_mean_and_std(fitted, image_folder, tmp_path):
    out, _ = fitted
    result = CliRunner().invoke(main, [
        "fit-classifier", "--dataset", str(image_folder), "--generator", str(out), "--hidden", "16",
        "--epochs", "1", "--seeds", "1", "--workers", "0", "--no-progress", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "summary.md").read_text()
    assert "(seed 0)" in table and "mean ± std" not in table


@pytest.mark.parametrize("command", ["fit-generator", "fit-classifier"])
def test_help_says_why_the_run_lock_file_stays(command):
    shown = " ".join(CliRunner().invoke(main, [command, "--help"]).output.split())
    assert ".exaug-run.lock" in shown and "guard" in shown


def test_export_keeps_how_an_old_bundle_was_trained_not_todays_defaults(tmp_path):
    result = CliRunner().invoke(main, ["export", "--generator", "mnist", "--no-images", "--out", str(tmp_path / "copy")])
    assert result.exit_code == 0, result.output
    training = json.loads((tmp_path / "copy" / "config.json").read_text())["training"]
    assert (training["knn_query"], training["patience_after_warmup"]) == ("cache", False)


def test_export_keeps_the_provenance_and_records_a_release_label(tmp_path):
    result = CliRunner().invoke(main, ["export", "--generator", "mnist", "--no-images", "--version", "mnist v1.1",
                                       "--out", str(tmp_path / "copy")])
    assert result.exit_code == 0, result.output
    provenance = json.loads((tmp_path / "copy" / "config.json").read_text())["provenance"]
    assert provenance == {**bundle_provenance("mnist"), "version": "mnist v1.1"}


def test_export_with_half_precision_means_makes_a_smaller_bundle_that_loads(tmp_path):
    sizes = {}
    for dtype in ("float32", "float16"):
        result = CliRunner().invoke(main, ["export", "--generator", "mnist", "--no-images", "--means-dtype", dtype,
                                           "--out", str(tmp_path / dtype)])
        assert result.exit_code == 0, result.output
        sizes[dtype] = (tmp_path / dtype / "exemplars.safetensors").stat().st_size
    assert sizes["float32"] - sizes["float16"] == 50_000 * load_generator("mnist").config.latent_dim * 2
    assert load_generator(tmp_path / "float16").exemplar_means.dtype == torch.float32


def test_a_malformed_recorded_recipe_is_a_value_error_naming_it():
    from exaug import TrainConfig

    with pytest.raises(ValueError, match="recorded training recipe is malformed"):
        TrainConfig.from_recorded({"epochs": "x"})


def test_the_command_line_recorded_is_the_one_that_ran_the_command(monkeypatch):
    from exaug.cli.options import command_line

    monkeypatch.setattr(sys, "argv", ["/venv/bin/exaug", "--debug", "fit-generator", "--dataset", "my data"])
    assert command_line("fit-generator") == "exaug fit-generator --dataset 'my data'"
    monkeypatch.setattr(sys, "argv", ["pytest", "-q"])
    assert command_line("fit-generator") is None


def test_under_torchrun_only_the_training_commands_start(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(main, ["export", "--generator", "mnist", "--out", str(tmp_path / "copy")])
    assert result.exit_code == 2 and "runs in one process" in result.output and "without torchrun" in result.output
    assert not (tmp_path / "copy").exists()


def test_export_of_a_bundle_with_a_null_provenance_records_only_the_release_label(tmp_path):
    CliRunner().invoke(main, ["export", "--generator", "mnist", "--no-images", "--out", str(tmp_path / "first")])
    config = json.loads((tmp_path / "first" / "config.json").read_text())
    config["provenance"] = None  # as a bundle may record it
    (tmp_path / "first" / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["export", "--generator", str(tmp_path / "first"), "--no-images", "--version",
                                       "mine", "--out", str(tmp_path / "second")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "second" / "config.json").read_text())["provenance"] == {"version": "mine"}
