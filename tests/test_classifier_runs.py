"""benchmarks/classifier_runs.py: finished classifier runs become one committed, traceable result file."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from conftest import blob_images, load_benchmark
from exaug import ExemplarVAE, ModelConfig, save_generator
from exaug.classifiers import ClassifierConfig, fit_classifier

@pytest.fixture(scope="module")
def classifier_runs():
    return load_benchmark("classifier_runs")


@pytest.fixture(scope="module")
def versioned_generator(tiny_generator_dir, tmp_path_factory):
    """The tiny generator, its config.json recording a release version as a published bundle's does."""
    directory = tmp_path_factory.mktemp("versioned") / "generator"
    shutil.copytree(tiny_generator_dir, directory)
    config = json.loads((directory / "config.json").read_text())
    config["provenance"] = {"version": "blobs v1", "epochs_trained": 7}
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def sweep(out: Path, generator: Path | None, lams: list[float], split: str = "val") -> None:
    """A real λ sweep on blobs, as exaug lambda-sweep lays it out (lamX/ per run), 12 epochs each."""
    train_images, train_labels = blob_images(200, seed=0)
    test_images, test_labels = blob_images(50, seed=1)
    for lam in lams:
        config = ClassifierConfig(hidden=(16,), epochs=12, batch_size=50, learning_rate=0.05, workers=0, device="cpu",
                                  lam=lam, extra={"dataset": "blobs", "split": split})
        fit_classifier(TensorDataset(train_images, train_labels), TensorDataset(test_images, test_labels), config,
                       generator=None if generator is None else str(generator), out=out / f"lam{lam:g}",
                       progress=False, log=lambda record: None)


def test_each_finished_run_is_recorded_with_its_recipe_error_and_generator_version(classifier_runs, versioned_generator,
                                                                                   tmp_path):
    sweep(tmp_path / "sweep", versioned_generator, [0.4, 0.8])
    finished, unfinished = classifier_runs.collect([tmp_path / "sweep"])
    assert unfinished == [] and [run["lam"] for run in finished] == [0.4, 0.8]
    result = json.loads((tmp_path / "sweep" / "lam0.4" / "result.json").read_text())
    run = finished[0]
    assert run["error"] == result["test_error"] and run["split"] == "val" and run["evaluated_on"] == 50
    assert run["mean_of_last_epochs"] == pytest.approx(
        sum(epoch["test_error"] for epoch in result["history"][-10:]) / 10)
    assert run["generator"]["version"] == "blobs v1" and run["generator"]["epochs_trained"] == 7
    assert run["generator"]["sha256"] == result["generator_identity"]["sha256"]


def test_a_generator_folder_since_overwritten_is_named_but_its_version_not_trusted(classifier_runs, versioned_generator,
                                                                                    tmp_path):
    generator = tmp_path / "generator"
    shutil.copytree(versioned_generator, generator)
    sweep(tmp_path / "sweep", generator, [0.5])
    torch.manual_seed(1)
    other = ExemplarVAE(ModelConfig(input_shape=(1, 16, 16), hidden_dim=32, latent_dim=4))
    other.set_exemplars(*blob_images(64))
    shutil.rmtree(generator)
    save_generator(other, generator, provenance={"version": "blobs v2"})
    (run,), _ = classifier_runs.collect([tmp_path / "sweep"])
    assert run["generator"]["version"] is None and "now holds other files" in run["generator"]["note"]


def test_an_unfinished_run_is_left_out_and_named(classifier_runs, tmp_path):
    sweep(tmp_path / "sweep", None, [0.5])
    (tmp_path / "sweep" / "lam0.7").mkdir()
    (tmp_path / "sweep" / "lam0.7" / "checkpoint.pt").write_bytes(b"")
    (tmp_path / "sweep" / "lam0.9").mkdir()  # not yet past its first epoch
    (tmp_path / "sweep" / "plots").mkdir()  # not a run folder
    finished, unfinished = classifier_runs.collect([tmp_path / "sweep"])
    assert [run["lam"] for run in finished] == [0.5] and finished[0]["generator"] is None
    assert unfinished == [tmp_path / "sweep" / "lam0.7", tmp_path / "sweep" / "lam0.9"]


def test_runs_of_two_recipes_are_refused_in_one_file(classifier_runs, tmp_path, monkeypatch):
    sweep(tmp_path / "a", None, [0.5])
    sweep(tmp_path / "b", None, [0.5], split="test")
    monkeypatch.setattr(sys, "argv", ["classifier_runs.py", "--name", "row", "--runs", str(tmp_path / "a"),
                                      str(tmp_path / "b"), "--command", "x", "--out", str(tmp_path / "results")])
    with pytest.raises(SystemExit, match="differ in more than λ, η and the seed"):
        classifier_runs.main()
    assert not (tmp_path / "results" / "row.json").exists()


def test_the_command_writes_one_file_with_the_commands_and_refuses_an_empty_collection(classifier_runs, tmp_path,
                                                                                         monkeypatch, capsys):
    sweep(tmp_path / "sweep", None, [0.5])
    monkeypatch.setattr(sys, "argv", ["classifier_runs.py", "--name", "row", "--runs", str(tmp_path / "sweep"),
                                      "--command", "exaug lambda-sweep …", "--out", str(tmp_path / "results")])
    classifier_runs.main()
    written = json.loads((tmp_path / "results" / "row.json").read_text())
    assert written["commands"] == ["exaug lambda-sweep …"] and len(written["runs"]) == 1
    assert written["recipe"]["split"] == "val" and written["recipe"]["generator_sha256"] is None
    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(sys, "argv", ["classifier_runs.py", "--name", "empty", "--runs", str(tmp_path / "empty"),
                                      "--command", "x", "--out", str(tmp_path / "results")])
    with pytest.raises(SystemExit, match="no finished run"):
        classifier_runs.main()
    assert not (tmp_path / "results" / "empty.json").exists()
