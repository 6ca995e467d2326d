"""The small benchmark scripts beside the drop-in grid: their measuring code runs and measures what it says."""

import importlib.util
import json
import sys
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_pixel_statistics_count_grey_and_saturated_pixels():
    twin_sharpness = load("twin_sharpness")
    images = torch.tensor([0, 51, 128, 230, 255, 255, 0, 0], dtype=torch.uint8).view(2, 1, 2, 2)
    stats = twin_sharpness.pixel_statistics(images)
    assert stats["grey_pixels_percent"] == 25.0  # 51 and 128 are strictly between 0.1 and 0.9
    assert stats["saturated_pixels_percent"] == 37.5  # 230, 255, 255
    assert abs(stats["mean_intensity"] - (51 + 128 + 230 + 255 + 255) / 255 / 8) < 1e-6


def test_the_stock_cnn_case_trains_one_epoch_with_the_transform_on_pil_images():
    from exaug.data import default_root, fetch

    stock_cnn = load("stock_cnn")
    torch.set_num_threads(1)
    error = stock_cnn.train_and_score(seed=0, p=0.5, epochs=1, dropout=False, normalize=True, test=False,
                                      root=fetch("mnist", default_root()))
    assert 0.0 < error < 20.0  # one epoch on 10K images learns MNIST far past chance (90 %)


def test_the_knn_query_comparison_pairs_both_queries_by_seed_at_equal_epochs(tmp_path, monkeypatch):
    knn_query = load("knn_query")
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
    iwae_speed = load("iwae_speed")
    out = tmp_path / "iwae_speed.json"
    monkeypatch.setattr(sys, "argv", ["iwae_speed.py", "--images", "2", "--samples", "50", "--out", str(out)])
    iwae_speed.main()
    result = json.loads(out.read_text())
    assert result["images"] == 2 and result["exemplars"] == 50_000
    assert -1e-5 <= result["bound_change_nats"]["min"] <= result["bound_change_nats"]["max"] <= result["tolerance"] + 1e-5
    seconds = result["seconds_per_image"]
    assert abs(result["speed_up"] - seconds["all_exemplars"] / seconds["near_exemplars"]) < 1e-9


def test_an_ablation_study_trains_scores_and_plots_every_variant_on_the_same_budget(tmp_path, monkeypatch):
    ablations = load("ablations")
    out, figure = tmp_path / "study.json", tmp_path / "study.png"
    monkeypatch.setattr(sys, "argv", ["ablations.py", "--study", "leave-one-out", "--train", "200", "--epochs", "2",
                                      "--warmup", "1", "--seeds", "0", "--test-images", "4", "--samples", "20",
                                      "--runs", str(tmp_path / "runs"), "--out", str(out), "--plot", str(figure)])
    ablations.main()
    result = json.loads(out.read_text())
    assert set(result["variants"]) == {"with", "without"}
    for variant in ("with", "without"):
        run = result["variants"][variant]["0"]
        assert run["curves"]["epoch"] == [1, 2] and run["iwae_nll"] > 0
    without = json.loads((tmp_path / "runs" / "leave-one-out" / "without" / "seed0" / "config.json").read_text())
    assert without["training"]["leave_one_out"] is False and without["training"]["epochs"] == 2
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_gradient_neighbours_study_records_each_variants_recipe_and_plots_against_time(tmp_path, monkeypatch):
    ablations = load("ablations")
    out, figure = tmp_path / "study.json", tmp_path / "study.png"
    monkeypatch.setattr(sys, "argv", ["ablations.py", "--study", "gradient-neighbours", "--train", "200", "--epochs",
                                      "2", "--warmup", "1", "--seeds", "0", "--test-images", "4", "--samples", "20",
                                      "--runs", str(tmp_path / "runs"), "--out", str(out), "--plot", str(figure),
                                      "--against", "time"])
    ablations.main()
    assert set(json.loads(out.read_text())["variants"]) == {"all 10", "3 nearest", "nearest", "none"}
    recipes = {variant: json.loads((tmp_path / "runs" / "gradient-neighbours" / variant / "seed0" / "config.json"
                                    ).read_text())["training"] for variant in ("all-10", "3-nearest", "nearest", "none")}
    assert [(recipes[v]["neighbour_gradient"], recipes[v]["gradient_neighbours"])
            for v in ("all-10", "3-nearest", "nearest", "none")] == [(True, None), (True, 3), (True, 1), (False, None)]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
