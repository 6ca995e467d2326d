"""The small benchmark scripts beside the drop-in grid: their measuring code runs and measures what it says."""

import argparse
import json
import math
import re
import sys

import pytest
import torch
from click.testing import CliRunner

from conftest import BENCHMARKS, load_benchmark, stops_after
from exaug import ExemplarVAE, evaluate
from exaug.bundle import bundle_size
from exaug.cli.main import main as cli

sys.path.insert(0, str(BENCHMARKS))  # as when run as scripts: a benchmark may import a sibling's helpers


def test_pixel_statistics_count_grey_and_saturated_pixels():
    twin_sharpness = load_benchmark("twin_sharpness")
    images = torch.tensor([0, 51, 128, 230, 255, 255, 0, 0], dtype=torch.uint8).view(2, 1, 2, 2)
    stats = twin_sharpness.pixel_statistics(images)
    assert stats["grey_pixels_percent"] == 25.0  # 51 and 128 are strictly between 0.1 and 0.9
    assert stats["saturated_pixels_percent"] == 37.5  # 230, 255, 255
    assert abs(stats["mean_intensity"] - (51 + 128 + 230 + 255 + 255) / 255 / 8) < 1e-6


def test_the_stock_cnn_case_trains_one_epoch_with_the_transform_on_pil_images():
    from exaug.data import default_root, fetch

    stock_cnn = load_benchmark("stock_cnn")
    torch.set_num_threads(1)
    error = stock_cnn.train_and_score(seed=0, p=0.5, epochs=1, dropout=False, normalize=True, test=False,
                                      root=fetch("mnist", default_root()), train_images=3000)
    assert 0.0 < error < 30.0  # one epoch on 3,000 images learns MNIST far past chance (90 %)


def test_the_knn_query_comparison_pairs_both_queries_by_seed_at_equal_epochs(tmp_path, monkeypatch):
    knn_query = load_benchmark("knn_query")
    out = tmp_path / "knn_query.json"
    monkeypatch.setattr(sys, "argv", ["knn_query.py", "--train", "200", "--epochs", "2", "--warmup", "1",
                                      "--seeds", "0", "1", "--runs", str(tmp_path / "runs"), "--out", str(out)])
    knn_query.main()
    result = json.loads(out.read_text())
    (row,) = result["rows"]  # epoch 2, the last
    for seed in ("0", "1"):
        assert set(result["curves"]["cache"][seed]) == set(result["curves"]["posterior"][seed]) == {"1", "2"}
    differences = [result["curves"]["posterior"][s]["2"] - result["curves"]["cache"][s]["2"] for s in ("0", "1")]
    assert row["epoch"] == 2 and abs(row["difference_mean"] - sum(differences) / 2) < 1e-9


def test_the_iwae_speed_comparison_times_both_estimators_on_the_same_images(tmp_path, monkeypatch):
    iwae_speed = load_benchmark("iwae_speed")
    out = tmp_path / "iwae_speed.json"
    monkeypatch.setattr(sys, "argv", ["iwae_speed.py", "--images", "2", "--samples", "50", "--out", str(out)])
    iwae_speed.main()
    result = json.loads(out.read_text())
    assert result["images"] == 2 and result["exemplars"] == 50_000
    assert -1e-5 <= result["bound_change_nats"]["min"] <= result["bound_change_nats"]["max"] <= result["tolerance"] + 1e-5
    seconds = result["seconds_per_image"]
    assert abs(result["speed_up"] - seconds["all_exemplars"] / seconds["near_exemplars"]) < 1e-9


def test_an_ablation_study_trains_scores_and_plots_every_variant_on_the_same_budget(tmp_path, monkeypatch):
    ablations = load_benchmark("ablations")
    out, figure = tmp_path / "study.json", tmp_path / "study.png"
    study = ["ablations.py", "--study", "leave-one-out", "--train", "200", "--epochs", "2", "--warmup", "1", "--seeds",
             "0", "--test-images", "4", "--samples", "20", "--runs", str(tmp_path / "runs"), "--out", str(out),
             "--plot", str(figure)]
    monkeypatch.setattr(sys, "argv", study)
    ablations.main()
    result = json.loads(out.read_text())
    assert set(result["variants"]) == {"with", "without"} and result["device"] == "cpu"  # recorded, for GPU studies
    for variant in ("with", "without"):
        run = result["variants"][variant]["0"]
        assert run["curves"]["epoch"] == [1, 2] and run["iwae_nll"] > 0
    without = json.loads((tmp_path / "runs" / "leave-one-out" / "without" / "seed0" / "config.json").read_text())
    assert without["training"]["leave_one_out"] is False and without["training"]["epochs"] == 2
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def not_scored_again(*args, **kwargs):
        raise AssertionError("a finished run's saved IWAE scores were computed again")

    monkeypatch.setattr(ExemplarVAE, "iwae", not_scored_again)
    ablations.main()  # a rerun resumes the finished runs and reads back their saved scores
    assert json.loads(out.read_text())["variants"] == result["variants"]
    scores = (tmp_path / "runs" / "leave-one-out" / "with" / "seed0").glob("*.iwae-checkpoint.pt")
    assert [path.name for path in scores] == ["test4-S20-epoch2.iwae-checkpoint.pt"]  # named by what was scored


def test_time_to_quality_gives_every_variant_the_reference_time_and_charges_each_epoch_its_own_cost(tmp_path,
                                                                                                   monkeypatch):
    time_to_quality = load_benchmark("time_to_quality")
    runs, timings, out, figure = tmp_path / "runs", tmp_path / "t.json", tmp_path / "f.json", tmp_path / "f.png"
    variants = ["paper recipe", "gradient on the nearest", "batch 250"]
    common = ["--train", "200", "--variants", *variants]
    budget = ["--epochs", "3", "--seeds", "0", "1", "--threads", "1", "--timings", str(timings), "--runs", str(runs)]
    monkeypatch.setattr(sys, "argv", ["time_to_quality.py", "time", *common, "--epochs", "2", "--warmup", "1",
                                      "--threads", "1", "--out", str(timings)])
    time_to_quality.main()
    timing = json.loads(timings.read_text())
    timing["seconds_per_epoch"]["gradient on the nearest"]["1"] = timing["seconds_per_epoch"]["paper recipe"]["1"] / 2
    timings.write_text(json.dumps(timing))  # a variant at half the cost: twice the epochs in the same time
    for stage in (["train", *common, *budget, "--warmup", "1"],
                  ["report", *common, *budget, "--out", str(out), "--plot", str(figure)]):
        monkeypatch.setattr(sys, "argv", ["time_to_quality.py", *stage])
        time_to_quality.main()
    result = json.loads(out.read_text())
    assert result["rows"]["paper recipe"]["epochs"] == 3 and result["rows"]["gradient on the nearest"]["epochs"] == 6
    assert len(result["curves"]["gradient on the nearest"]["1"]) == 6
    recipe = json.loads((runs / "mnist-200" / "batch-250" / "seed1" / "config.json").read_text())["training"]
    assert recipe["batch_size"] == 250 and abs(recipe["learning_rate"] - 5e-4 * 2.5 ** 0.5) < 1e-12
    reference = result["curves"]["paper recipe"]
    assert result["threshold_val_elbo"] == (reference["0"][-1] + reference["1"][-1]) / 2
    for variant in variants:
        seconds = result["rows"][variant]["seconds_per_epoch"]
        for seed, minutes in zip(("0", "1"), result["rows"][variant]["minutes_to_threshold"]):
            assert minutes == time_to_quality.minutes_to_reach(result["curves"][variant][seed],
                                                               result["threshold_val_elbo"], seconds)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_equal_time_epochs_are_the_whole_epochs_that_fit_in_the_reference_time():
    time_to_quality = load_benchmark("time_to_quality")
    seconds = {"paper recipe": 3.0, "batch 250": 2.0, "batch 500": 9.0}
    assert time_to_quality.equal_time_epochs("paper recipe", 30, seconds) == 30
    assert time_to_quality.equal_time_epochs("batch 250", 30, seconds) == 45
    assert time_to_quality.equal_time_epochs("batch 500", 2, seconds) == 1  # never none


def test_minutes_to_reach_counts_whole_epochs_up_to_the_first_that_reaches_the_threshold():
    time_to_quality = load_benchmark("time_to_quality")
    assert time_to_quality.minutes_to_reach([-120.0, -101.0, -99.5, -99.0], -100.0, 30.0) == 1.5
    assert time_to_quality.minutes_to_reach([-120.0, -101.0], -100.0, 30.0) is None


@pytest.mark.parametrize("stage, message", [
    (["time", "--epochs", "1"], "at least 2: the first epoch is not timed"),
    (["train", "--threads", "4"], "no timing of 'paper recipe' at 4 thread(s)"),
    (["report", "--variants", "batch 250"], "include it in --variants"),
    (["report"], "has 0 of its 30 epochs; run the train stage first"),
])
def test_time_to_quality_stops_with_what_to_run_when_a_stage_lacks_its_inputs(tmp_path, monkeypatch, stage, message):
    time_to_quality = load_benchmark("time_to_quality")
    timings = tmp_path / "t.json"
    seconds = {variant: {"1": 2.0, "2": 1.0} for variant in time_to_quality.VARIANTS}
    timings.write_text(json.dumps({"dataset": "mnist", "train_images": 200, "seconds_per_epoch": seconds}))
    paths = [] if stage[0] == "time" else ["--timings", str(timings), "--runs", str(tmp_path / "runs")]
    monkeypatch.setattr(sys, "argv", ["time_to_quality.py", *stage, "--train", "200", *paths])
    with pytest.raises(SystemExit, match=re.escape(message)):
        time_to_quality.main()


def test_time_to_quality_refuses_timings_of_another_scale(tmp_path, monkeypatch):
    time_to_quality = load_benchmark("time_to_quality")
    timings = tmp_path / "t.json"
    timings.write_text(json.dumps({"dataset": "mnist", "train_images": 50000, "seconds_per_epoch": {}}))
    monkeypatch.setattr(sys, "argv", ["time_to_quality.py", "train", "--train", "200", "--timings", str(timings)])
    with pytest.raises(SystemExit, match="timed 50000 mnist images, not 200"):
        time_to_quality.main()


def test_reach_charges_each_generator_folder_its_variants_timed_seconds_against_a_fixed_target(tmp_path,
                                                                                                 monkeypatch):
    from torch.utils.data import Subset

    from exaug import TrainConfig, fit_generator
    from exaug.data import load_split
    from exaug.train import training_log

    time_to_quality = load_benchmark("time_to_quality")
    train, val = Subset(load_split("mnist", "train"), range(200)), load_split("mnist", "val")
    folders = {"paper recipe": tmp_path / "all", "gradient on 3 nearest": tmp_path / "three"}
    for (variant, folder), epochs in zip(folders.items(), (2, 4)):
        fit_generator(train, val, TrainConfig(epochs=epochs, warmup_epochs=1, device="cpu", extra={"dataset": "mnist"},
                                              **time_to_quality.VARIANTS[variant]), folder, progress=False)
    timings, out, figure = tmp_path / "t.json", tmp_path / "reach.json", tmp_path / "reach.png"
    seconds = {"paper recipe": {"2": 60.0}, "gradient on 3 nearest": {"2": 40.0}}
    timings.write_text(json.dumps({"dataset": "mnist", "train_images": 200, "seconds_per_epoch": seconds}))
    curves = {variant: [record["val_elbo"] for record in training_log(folder)] for variant, folder in folders.items()}
    target = max(curves["gradient on 3 nearest"])
    monkeypatch.setattr(sys, "argv", ["time_to_quality.py", "reach", "--train", "200", "--timings", str(timings),
                                      *[f"--run={variant}={folder}" for variant, folder in folders.items()],
                                      "--target", str(target), "--budget-minutes", "2", "--out", str(out),
                                      "--plot", str(figure)])
    time_to_quality.main()
    result = json.loads(out.read_text())
    assert result["equal_minutes"] == 2.0  # the recipe's 2 epochs of 60 s; 3 nearest fits 3 of its 40 s epochs
    three = result["rows"]["gradient on 3 nearest"]
    assert three["epochs_to_target"] == curves["gradient on 3 nearest"].index(target) + 1
    assert three["minutes_to_target"] == three["epochs_to_target"] * 40 / 60
    assert three["equal_time_epochs"] == 3 and three["val_elbo_at_equal_time"] == curves["gradient on 3 nearest"][2]
    assert three["val_elbo_at_budget"] == curves["gradient on 3 nearest"][2]
    assert result["rows"]["paper recipe"]["val_elbo_at_budget"] == curves["paper recipe"][1]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reach_leaves_a_run_too_slow_for_one_epoch_of_the_equal_time_without_a_value():
    time_to_quality = load_benchmark("time_to_quality")
    summary = time_to_quality.reach_summary({"paper recipe": [-100.0], "gradient on 3 nearest": [-99.0]},
                                            {"paper recipe": 16.0, "gradient on 3 nearest": 10.0}, -99.5, 90.0)
    assert summary["equal_minutes"] == 10.0 / 60
    assert summary["rows"]["paper recipe"]["val_elbo_at_equal_time"] is None
    assert summary["rows"]["gradient on 3 nearest"]["epochs_to_target"] == 1
    assert summary["rows"]["paper recipe"]["val_elbo_at_budget"] is None  # 90 minutes are 337 of its epochs


@pytest.mark.parametrize("run, exemplars, message", [
    ("paper recipe=FOLDER", 200, "is not that variant"),
    ("gradient on 3 nearest=FOLDER", 50_000, "trains on 50000 mnist images, not 200 mnist"),
    ("no such variant=FOLDER", 200, "expected VARIANT=FOLDER"),
    ("paper recipe=MISSING", 200, "start the run with exaug fit-generator"),
])
def test_reach_refuses_a_run_it_cannot_charge_to_the_named_variant(tmp_path, monkeypatch, run, exemplars, message):
    time_to_quality = load_benchmark("time_to_quality")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"exemplar_count": exemplars,
                                                    "training": {"gradient_neighbours": 3}}))
    run = run.replace("FOLDER", str(folder)).replace("MISSING", str(tmp_path / "missing"))
    monkeypatch.setattr(sys, "argv", ["time_to_quality.py", "reach", "--train", "200", "--timings",
                                      str(tmp_path / "t.json"), "--run", run, "--target", "-90"])
    with pytest.raises(SystemExit, match=re.escape(message)):
        time_to_quality.main()


def test_twin_label_agreement_names_the_classifier_run_it_needs_when_the_folder_has_none(tmp_path, monkeypatch):
    twin_label_agreement = load_benchmark("twin_label_agreement")
    monkeypatch.setattr(sys, "argv", ["twin_label_agreement.py", "--generator", "mnist",
                                      "--classifier", str(tmp_path / "seed0"), "--threads", "1"])
    with pytest.raises(SystemExit, match="exaug fit-classifier --generator none"):
        twin_label_agreement.main()


def test_nearest_other_distances_skip_each_row_itself():
    latent_geometry = load_benchmark("latent_geometry")
    torch.manual_seed(0)
    means = torch.randn(700, 5)
    brute = torch.cdist(means[:650], means) + torch.eye(650, 700) * 1e9
    torch.testing.assert_close(latent_geometry.nearest_other_distances(650, means, rows_per_chunk=200),
                               brute.min(dim=1).values, rtol=1e-4, atol=1e-4)


def test_latent_geometry_sees_the_clamp_but_not_a_uniform_rescaling_of_the_space():
    from exaug import ModelConfig
    from exaug.models import ExemplarVAE
    from exaug.models.base import LOG_VAR_MAX

    latent_geometry = load_benchmark("latent_geometry")
    torch.manual_seed(0)
    model = ExemplarVAE(ModelConfig(input_shape=(1, 6, 6), hidden_dim=16, latent_dim=3)).eval()
    images = torch.bernoulli(torch.rand(50, 1, 6, 6))
    means = torch.randn(400, 3)
    model.set_exemplars(None, means=means)
    before = latent_geometry.latent_geometry(model, images, exemplars=100)
    model.set_exemplars(None, means=means * 8)  # the whole space 8× wider, the kernel with it
    with torch.no_grad():
        model.prior.log_var.add_(2 * math.log(8))
        model.encoder.log_var.bias.fill_(LOG_VAR_MAX + 5)
        model.encoder.log_var.weight.zero_()
    after = latent_geometry.latent_geometry(model, images, exemplars=100)
    assert after["twin_offset_to_spacing"] == pytest.approx(before["twin_offset_to_spacing"], rel=1e-4)
    assert after["nearest_exemplar_distance"] == pytest.approx(8 * before["nearest_exemplar_distance"], rel=1e-4)
    assert before["posterior_log_var_at_clamp_share"] < 1.0 and after["posterior_log_var_at_clamp_share"] == 1.0


def test_the_generator_speed_benchmark_times_each_variant_against_the_gaussian_prior(tmp_path, monkeypatch):
    generator_speed = load_benchmark("generator_speed")
    out = tmp_path / "speed.json"
    monkeypatch.setattr(sys, "argv", ["generator_speed.py", "--steps", "2", "--warmup", "1", "--threads", "1",
                                      "--variants", "gaussian", "knn_neighbour_gradient_g1", "--out", str(out)])
    generator_speed.main()
    results = json.loads(out.read_text())["results"]
    assert results["gaussian"]["ratio_to_gaussian"] == 1.0
    knn = results["knn_neighbour_gradient_g1"]
    assert knn["refresh_seconds"] > 0 and knn["timed_steps"] == 2  # the exemplar prior re-encodes its means
    assert abs(knn["ratio_to_gaussian"] - knn["epoch_seconds"] / results["gaussian"]["epoch_seconds"]) < 1e-12


def test_the_augment_speed_benchmark_reports_every_path_beside_randaugment(tmp_path, monkeypatch):
    augment_speed = load_benchmark("augment_speed")
    out = tmp_path / "augment.json"
    monkeypatch.setattr(sys, "argv", ["augment_speed.py", "--steps", "2", "--images", "500", "--threads", "1",
                                      "--device", "cpu", "--out", str(out)])
    augment_speed.main()
    result = json.loads(out.read_text())
    throughput = result["worker_throughput_images_per_s"]
    assert throughput["default_p"] == 0.25
    assert abs(throughput["ratio"] - throughput["ExemplarAugment"] / throughput["RandAugment"]) < 1e-12
    assert 0.0 <= result["classifier_step"]["generation_alone_share_of_augmented_step"]


def test_the_augment_speed_benchmark_refuses_too_few_images_to_time(monkeypatch, capsys):
    augment_speed = load_benchmark("augment_speed")
    monkeypatch.setattr(sys, "argv", ["augment_speed.py", "--images", "300"])
    with pytest.raises(SystemExit):
        augment_speed.main()
    assert "at least 400" in capsys.readouterr().err


def test_the_knn_scale_benchmark_times_exact_against_the_index_and_a_whole_step(tmp_path, monkeypatch):
    knn_scale = load_benchmark("knn_scale")
    out = tmp_path / "knn_scale.json"
    monkeypatch.setattr(sys, "argv", ["knn_scale.py", "--sizes", "3000", "6000", "--trials", "3", "--exact-trials", "2",
                                      "--steps", "2", "--image-side", "4", "--out", str(out)])
    knn_scale.main()
    result = json.loads(out.read_text())
    assert set(result["sizes"]) == set(result["steps"]) == {"3000", "6000"}
    for figures in result["sizes"].values():
        assert 0.0 <= figures["ivf"]["recall_at_10_min"] <= figures["ivf"]["recall_at_10"] <= 1.0
        assert 1 <= figures["ivf"]["nprobe"] <= figures["ivf"]["lists"]
    assert result["steps"]["6000"]["index"] == "exact"  # below the threshold, as knn_index="auto" picks
    target = result["target"]
    assert math.isclose(target["ratio"], target["search_ms_largest_auto"] / target["search_ms_smallest_exact"])


def paired_nll_on_three_images(out, first: str, second: str) -> list[str]:
    """The command line of paired_nll.py scoring two generators, both the bundled mnist, on 3 images."""
    return ["paired_nll.py", "--generator", f"{first}=mnist", "--generator", f"{second}=mnist", "--images", "3",
            "--samples", "20", "--out", str(out)]


def test_paired_nll_scores_every_generator_on_the_same_images_and_pairs_them(tmp_path, monkeypatch):
    paired_nll = load_benchmark("paired_nll")
    out = tmp_path / "paired.json"
    monkeypatch.setattr(sys, "argv", paired_nll_on_three_images(out, "first", "again"))
    paired_nll.main()
    result = json.loads(out.read_text())
    first, again = result["generators"]["first"], result["generators"]["again"]
    assert len(first["bounds"]) == 3 and first["bounds"] == again["bounds"]  # the same images, the same noise
    assert result["differences"]["again"] == {"mean": 0.0, "sem": 0.0, "share_lower": 0.0}
    assert first["provenance"]["version"] == "mnist v1" and first["resumed"] is False
    assert first["bundle_bytes"] == bundle_size("mnist")
    assert list(tmp_path.glob("*.iwae-checkpoint.pt")) == []  # progress files go once the result is written


def test_paired_nll_continues_a_stopped_scoring_to_the_same_numbers(tmp_path, monkeypatch):
    paired_nll = load_benchmark("paired_nll")
    out = tmp_path / "paired.json"
    monkeypatch.setattr(sys, "argv", paired_nll_on_three_images(out, "MLP v1", "again"))
    paired_nll.main()
    unbroken = json.loads(out.read_text())
    monkeypatch.setattr(evaluate, "IWAE_SAVE_EVERY", 1)
    monkeypatch.setattr(ExemplarVAE, "iwae", stops_after(4, ExemplarVAE.iwae))  # the second generator's 2nd image
    with pytest.raises(KeyboardInterrupt):
        paired_nll.main()
    assert sorted(path.name for path in tmp_path.glob("*.iwae-checkpoint.pt")) == [
        "paired.MLP-v1.iwae-checkpoint.pt", "paired.again.iwae-checkpoint.pt"]
    monkeypatch.undo()
    monkeypatch.setattr(sys, "argv", paired_nll_on_three_images(out, "MLP v1", "again"))
    paired_nll.main()
    resumed = json.loads(out.read_text())
    assert [run["resumed"] for run in resumed["generators"].values()] == [True, True]
    assert resumed["generators"]["again"]["bounds"] == unbroken["generators"]["again"]["bounds"]


def test_paired_nll_refuses_generators_of_different_datasets(monkeypatch):
    paired_nll = load_benchmark("paired_nll")
    monkeypatch.setattr(sys, "argv", ["paired_nll.py", "--generator", "a=mnist", "--generator", "b=fashion-mnist",
                                      "--out", "unused.json"])
    with pytest.raises(SystemExit):
        paired_nll.main()


def test_the_ddp_equivalence_benchmark_compares_two_processes_with_one_on_each_seed(tmp_path, monkeypatch):
    ddp_equivalence = load_benchmark("ddp_equivalence")
    out = tmp_path / "ddp.json"
    monkeypatch.setattr(sys, "argv", ["ddp_equivalence.py", "--seeds", "0", "1", "--out", str(out)])
    ddp_equivalence.main()
    report = json.loads(out.read_text())
    for figure in ddp_equivalence.FIGURES:
        runs = [report["per_seed"][seed][figure] for seed in ("0", "1")]
        assert all(len(run["two_processes"]) == len(run["one_process"]) == 2 for run in runs)  # two epochs each
        assert report["largest"][figure]["gap"] == max(run["gap"] for run in runs)
        assert report["largest"][figure]["gap"] <= report["test_tolerance"][figure]


def test_thread_determinism_repeats_a_step_and_compares_it_at_each_other_thread_count(tmp_path, monkeypatch):
    thread_determinism = load_benchmark("thread_determinism")
    out = tmp_path / "threads.json"
    monkeypatch.setattr(sys, "argv", ["thread_determinism.py", "--threads", "1", "2", "--batch", "8",
                                      "--architectures", "vae", "convhvae", "--out", str(out)])
    threads = torch.get_num_threads()
    try:
        thread_determinism.main()
    finally:
        torch.set_num_threads(threads)
    result = json.loads(out.read_text())["architectures"]
    assert set(result) == {"vae", "convhvae"}
    for architecture in result.values():
        assert architecture["repeat_identical"] is True  # the same thread count gives the same numbers
        assert architecture["threads_2"]["gradient_max_magnitude"] > 0


def test_twin_shift_counts_the_twins_and_pixels_that_moved_and_by_how_many_steps():
    twin_shift = load_benchmark("twin_shift")
    first = torch.zeros(4, 1, 2, 2)
    second = first.clone()
    second[1, 0, 0, 0], second[3, 0, 1, 1] = 1.0, -2.0  # two twins move, one pixel each
    assert twin_shift.shift(first, second) == {"pixels_changed_share": 2 / 16, "images_changed_share": 0.5,
                                               "mean_abs_steps": 3 / 16, "max_abs_steps": 2.0}


def test_the_compared_generators_are_named_once_each_and_trained_on_one_dataset(capsys):
    paired_nll = load_benchmark("paired_nll")
    parser = argparse.ArgumentParser()
    assert paired_nll.generator_sources(parser, ["a=mnist", "b=mnist"], count=2) == ({"a": "mnist", "b": "mnist"},
                                                                                     "mnist")
    for entries, count in ((["a=mnist", "b=mnist", "c=mnist"], 2), (["a=mnist", "a=mnist"], None), (["mnist"], None),
                           (["a=mnist", "b=fashion-mnist"], None)):
        with pytest.raises(SystemExit):
            paired_nll.generator_sources(parser, entries, count)
    assert "exactly 2 times" in capsys.readouterr().err.split("\n")[1]


@pytest.mark.slow
def test_twin_shift_finds_no_change_between_a_bundle_and_itself_and_one_step_moves_from_half_precision_means(
        tmp_path, monkeypatch):
    twin_shift = load_benchmark("twin_shift")
    exported = CliRunner().invoke(cli, ["export", "--generator", "mnist", "--no-images", "--means-dtype", "float16",
                                        "--out", str(tmp_path / "half")])
    assert exported.exit_code == 0, exported.output

    def compare(second: str) -> dict:
        out = tmp_path / f"{second.replace('/', '-')}.json"
        monkeypatch.setattr(sys, "argv", ["twin_shift.py", "--generator", "full=mnist", "--generator",
                                          f"other={second}", "--images", "200", "--out", str(out)])
        twin_shift.main()
        return json.loads(out.read_text())

    same = compare("mnist")
    assert same["pixels_changed_share"] == 0.0 and same["max_abs_steps"] == 0.0  # the same noise for both
    half = compare(str(tmp_path / "half"))
    assert 0.0 < half["images_changed_share"] <= 1.0 and half["max_abs_steps"] >= 1.0


def test_golden_drift_tells_rounding_in_a_history_from_a_changed_digest():
    golden_drift = load_benchmark("golden_drift")
    recorded = {"generator": {"weights": "a", "history": [{"epoch": 1, "loss": 200.0}]}, "augment": "b"}
    now = {"generator": {"weights": "c", "history": [{"epoch": 1, "loss": 200.00006, "new_field": 1.0}]},
           "augment": "b"}
    parts = golden_drift.drift(recorded, now)
    assert parts["generator"]["weights_digest_same"] is False
    assert abs(parts["generator"]["largest_relative_difference"] - 3e-7) < 1e-9
    assert parts["augment"] == {"digest_same": True}
