"""benchmarks/dropin.py: every cell of the grid runs on tiny real-MNIST subsets, resumes, and is summarised fairly."""

import dataclasses
import json
import shutil

import pytest
import torch

from conftest import load_benchmark

dropin = load_benchmark("dropin")

TINY = dropin.RunSpec("mnist", "mlp", "none", "balanced20", "val", seed=0, epochs=2)


@pytest.mark.parametrize("augmentation", dropin.AUGMENTATIONS)
def test_every_augmentation_trains_and_scores_a_run(augmentation, tmp_path):
    torch.set_num_threads(1)
    result = dropin.run(dataclasses.replace(TINY, augmentation=augmentation), tmp_path, log=lambda line: None)
    assert 0 <= result["error"] <= 100 and result["train_size"] == 20
    assert [record["epoch"] for record in result["history"]] == [1, 2]
    assert json.loads((tmp_path / "result.json").read_text())["error"] == result["error"]
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("model", ["cnn", "resnet18"])
def test_the_cnn_and_the_timm_model_train_with_twins_appended(model, tmp_path):
    spec = dataclasses.replace(TINY, model=model, augmentation="exemplar-append", epochs=1)
    assert 0 <= dropin.run(spec, tmp_path, log=lambda line: None)["error"] <= 100


def test_a_killed_run_resumes_to_the_same_result_as_an_unbroken_one(tmp_path):
    spec = dataclasses.replace(TINY, augmentation="affine+exemplar", epochs=5, p=0.5)
    unbroken = dropin.run(spec, tmp_path / "unbroken", log=lambda line: None)

    def die_after_epoch_3(line):
        if json.loads(line)["epoch"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dropin.run(spec, tmp_path / "killed", log=die_after_epoch_3)
    resumed = dropin.run(spec, tmp_path / "killed", log=lambda line: None)
    assert [r["val_error"] for r in resumed["history"]] == [r["val_error"] for r in unbroken["history"]]


def test_the_subset_is_class_balanced_and_fixed_by_the_seed():
    first = dropin.training_images(dataclasses.replace(TINY, subset="balanced100"))
    again = dropin.training_images(dataclasses.replace(TINY, subset="balanced100", split="test"))
    other = dropin.training_images(dataclasses.replace(TINY, subset="balanced100", seed=1))
    assert torch.equal(torch.bincount(first.labels), torch.full((10,), 10))
    assert torch.equal(first.images, again.images)  # tuning and testing train on the same images
    assert not torch.equal(first.images, other.images)


def result(spec, error):
    return {"spec": spec.to_dict(), "error": error, "history": []}


def test_validation_picks_the_lowest_final_error_and_the_milder_knob_on_a_tie():
    low, high = (dataclasses.replace(TINY, augmentation="exemplar", p=p) for p in (0.25, 0.5))
    mixed = [dataclasses.replace(TINY, augmentation="mixed", lam=lam) for lam in (0.4, 0.7)]
    picked = dropin.pick_on_validation([result(low, 5.0), result(high, 4.0), result(mixed[0], 3.0),
                                        result(mixed[1], 3.0)])
    assert {spec.augmentation: spec.knob for spec in picked.values()} == {"exemplar": "p 0.5", "mixed": "λ 0.7"}


def test_validation_averages_the_seeds_run_before_picking():
    low, high = (dataclasses.replace(TINY, augmentation="exemplar", p=p) for p in (0.25, 0.5))
    results = [result(low, 5.0), result(dataclasses.replace(low, seed=1), 1.0),
               result(high, 4.0), result(dataclasses.replace(high, seed=1), 3.0)]
    assert [spec.knob for spec in dropin.pick_on_validation(results).values()] == ["p 0.25"]


def test_the_test_plan_runs_each_pick_for_every_seed_on_the_test_set():
    plan = dropin.test_plan([result(TINY, 5.0)], seeds=(0, 1, 2))
    assert [(spec.split, spec.seed) for spec in plan] == [("test", 0), ("test", 1), ("test", 2)]


def test_the_headline_test_plan_keeps_none_the_drop_in_and_the_best_classic_and_generator_picks():
    errors = {"none": 9.0, "affine": 5.0, "trivialaugment": 4.0, "mixup-cutmix": 6.0, "exemplar": 8.0,
              "exemplar-append": 7.0, "mixed": 3.0, "affine+exemplar": 2.0}
    results = [result(dataclasses.replace(TINY, augmentation=name), error) for name, error in errors.items()]
    plan = dropin.test_plan(results, seeds=(0, 1, 2), scope="headline")
    assert sorted({spec.augmentation for spec in plan}) == ["affine+exemplar", "exemplar", "none", "trivialaugment"]
    assert len(plan) == 12 and {spec.split for spec in plan} == {"test"}


def test_the_summary_pairs_each_augmentation_with_none_and_the_best_classic_by_seed():
    test = dataclasses.replace(TINY, split="test")
    runs = {"none": [5.0, 6.0, 7.0], "affine": [4.0, 6.5, 6.0], "trivialaugment": [1.0, 1.0, 1.0],
            "exemplar": [3.0, 5.0, 6.5]}
    results = [result(dataclasses.replace(test, augmentation=name, seed=seed), error)
               for name, errors in runs.items() for seed, error in enumerate(errors)]
    # affine is the best classic on validation; trivialaugment's low test errors must not make it so
    results += [result(dataclasses.replace(TINY, augmentation="affine"), 2.0),
                result(dataclasses.replace(TINY, augmentation="trivialaugment"), 3.0)]
    rows = {row["augmentation"]: row for row in dropin.summarize(results)}
    assert rows["affine"]["mean"] == pytest.approx(5.5) and rows["none"]["std"] == pytest.approx(1.0)
    assert rows["affine"]["vs_none"]["mean"] == pytest.approx((-1.0 + 0.5 - 1.0) / 3)
    assert rows["exemplar"]["best_classic"] == "affine"
    assert rows["exemplar"]["vs_best_classic"]["mean"] == pytest.approx((-1.0 - 1.5 + 0.5) / 3)
    assert rows["none"]["vs_none"] is None and rows["affine"]["vs_best_classic"] is None
    table = dropin.markdown_table(list(rows.values()))
    assert "| bundled | exemplar |" in table and "|  | affine |" in table  # the generator column, for twins only
    validation = dropin.validation_markdown(results)
    assert "| mnist | mlp | balanced20 | 2 |  | affine |  | 1 | 2.00 |" in validation


def test_a_horizontal_flip_is_tried_only_where_it_keeps_the_label():
    def flips(dataset):
        return {spec.augmentation for spec in dropin.validation_plan(dataset, sizes=(1000,))} & {"hflip",
                                                                                                "hflip+exemplar-append"}
    assert flips("fashion-mnist") == {"hflip", "hflip+exemplar-append"}
    assert flips("mnist") == set()  # a flipped 2 or 7 is no digit


def test_a_regime_without_validation_reuses_another_regimes_picks_and_says_so():
    picks = {"none": 9.0, "affine": 5.0, "trivialaugment": 6.0, "exemplar": 8.0, "affine+exemplar-append": 4.0}
    results = [result(dataclasses.replace(TINY, model=model, augmentation=name, p=1.0), error)
               for model in dropin.MODELS for name, error in picks.items()]
    plan = dropin.transferred_test_plan(results, "mnist/balanced20-e2", "fashion-mnist/balanced5000",
                                        augmentations=["none", "affine+exemplar-append"], seeds=(0, 1, 2))
    assert len(plan) == 2 * 3 * len(dropin.MODELS)
    cnn = [spec for spec in plan if spec.model == "cnn"]
    assert {(spec.dataset, spec.subset, spec.split, spec.epochs) for spec in cnn} == {
        ("fashion-mnist", "balanced5000", "test", 20)}
    assert {spec.p for spec in cnn if spec.augmentation != "none"} == {1.0}
    assert {spec.knobs_from for spec in cnn} == {"mnist/cnn-balanced20-e2"}
    # provenance is not identity: the same computation keeps the same folder
    assert cnn[0].name() == dataclasses.replace(cnn[0], knobs_from="").name()
    everything = dropin.transferred_test_plan(results, "mnist/balanced20-e2", "mnist/all-e5", models=["cnn"])
    assert {(spec.augmentation, spec.subset, spec.epochs) for spec in everything} == {
        (name, "all", 5) for name in ("none", "exemplar", "affine", "affine+exemplar-append")}  # headline picks
    with pytest.raises(ValueError, match="no headline validation pick for mixed"):
        dropin.transferred_test_plan(results, "mnist/balanced20-e2", "mnist/balanced5000", augmentations=["mixed"])
    with pytest.raises(ValueError, match="no headline validation picks"):
        dropin.transferred_test_plan(results, "mnist/balanced1000", "mnist/balanced5000")
    with pytest.raises(ValueError, match="has no low-data budget: name the epochs"):
        dropin.transferred_test_plan(results, "mnist/balanced20-e2", "mnist/all")
    with pytest.raises(ValueError, match="is not DATASET/SUBSET"):
        dropin.transferred_test_plan(results, "mnist", "mnist/all-e5")

    # the summary pairs a transferred regime with the classic that won on the regime its knobs came from
    tested = [result(dataclasses.replace(spec, dataset="mnist"), 3.0 + spec.seed) for spec in plan
              if spec.model == "mlp"]
    tested += [result(dataclasses.replace(spec, dataset="mnist", augmentation="affine", p=0.5), 4.0 + spec.seed)
               for spec in plan if spec.model == "mlp" and spec.augmentation == "none"]
    rows = {row["augmentation"]: row for row in dropin.summarize(results + tested)
            if row["subset"] == "balanced5000"}
    assert rows["affine+exemplar-append"]["best_classic"] == "affine"
    assert rows["affine+exemplar-append"]["vs_best_classic"]["mean"] == pytest.approx(-1.0)
    assert "p 1 (val of mnist/mlp-balanced20-e2)" in dropin.markdown_table(list(rows.values()))

    # once the regime gets validation runs of its own, they decide, and a knob they picked too is theirs
    own = dataclasses.replace(TINY, subset="balanced5000", epochs=100)
    own_validation = [result(dataclasses.replace(own, augmentation="trivialaugment"), 1.0),
                      result(dataclasses.replace(own, augmentation="affine+exemplar-append", p=1.0), 2.0),
                      result(dataclasses.replace(own, augmentation="affine+exemplar-append", p=0.5), 3.0)]
    rows = {row["augmentation"]: row for row in dropin.summarize(results + tested + own_validation)
            if row["subset"] == "balanced5000"}
    assert rows["affine+exemplar-append"]["best_classic"] == "trivialaugment"
    assert rows["affine+exemplar-append"]["knobs_from"] == ""
    assert rows["affine"]["knobs_from"] == "mnist/mlp-balanced20-e2"  # its own validation never ran affine


@pytest.mark.parametrize("field, value, message", [("augmentation", "cutout", "not one of"),
                                                    ("subset", "some", "balanced<N>"), ("split", "train", "val or test")])
def test_a_bad_spec_is_refused_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(TINY, **{field: value})


def test_plan_val_keeps_only_the_models_and_augmentations_asked_for(tmp_path):
    from click.testing import CliRunner

    out = tmp_path / "plan.json"
    result = CliRunner().invoke(dropin.cli, ["plan", "val", "--dataset", "fashion-mnist", "--sizes", "1000",
                                             "--model", "cnn", "--augmentation", "none", "--augmentation",
                                             "hflip+exemplar-append", "--out", str(out)])
    assert result.exit_code == 0, result.output
    plan = json.loads(out.read_text())
    assert {(spec["model"], spec["augmentation"], spec["p"]) for spec in plan} == {
        ("cnn", "none", 0.5), ("cnn", "hflip+exemplar-append", 0.5), ("cnn", "hflip+exemplar-append", 1.0)}
    refused = CliRunner().invoke(dropin.cli, ["plan", "test", "--model", "cnn", "--out", str(out)])
    assert refused.exit_code == 2 and "give --knobs-from too" in refused.output


def test_a_plan_for_another_generator_holds_only_the_runs_that_use_one():
    plan = dropin.validation_plan("mnist", sizes=(1000,), generator="hvae")
    assert plan and all(spec.uses_generator and spec.generator == "hvae" for spec in plan)
    assert {spec.subset for spec in plan} == {"balanced1000"}


def test_an_hvae_run_names_the_folder_it_reads_and_how_to_fill_it(tmp_path, monkeypatch):
    monkeypatch.setattr(dropin, "GENERATORS", tmp_path)
    spec = dataclasses.replace(TINY, augmentation="exemplar-append", generator="hvae")
    with pytest.raises(FileNotFoundError, match=r"mnist-hvae holds no generator.*--arch hvae"):
        dropin.generator_source(spec)
    (tmp_path / "mnist-hvae").mkdir()
    assert dropin.generator_source(spec) == tmp_path / "mnist-hvae"
    assert dropin.generator_source(dataclasses.replace(spec, generator="bundled")) == "mnist"


def test_a_run_records_its_generator_snapshot_and_resumes_only_with_the_same_one(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from exaug.cli.main import main as exaug_cli

    monkeypatch.setattr(dropin, "GENERATORS", tmp_path / "generators")

    def export(version):  # a new snapshot of the run replaces the folder's bundle
        shutil.rmtree(tmp_path / "generators" / "mnist-hvae-longer", ignore_errors=True)
        result = CliRunner().invoke(exaug_cli, ["export", "--generator", "mnist", "--no-images", "--version", version,
                                                "--out", str(tmp_path / "generators" / "mnist-hvae-longer")])
        assert result.exit_code == 0, result.output

    def die_after_epoch_2(line):  # epoch 1 is checkpointed by then
        if json.loads(line)["epoch"] == 2:
            raise KeyboardInterrupt

    export("snapshot A")
    spec = dataclasses.replace(TINY, augmentation="exemplar-append", generator="hvae-longer", epochs=5)
    with pytest.raises(KeyboardInterrupt):
        dropin.run(spec, tmp_path / "run", log=die_after_epoch_2)
    export("snapshot B")
    with pytest.raises(ValueError, match="different generator_provenance"):
        dropin.run(spec, tmp_path / "run", log=lambda line: None)
    export("snapshot A")
    assert dropin.run(spec, tmp_path / "run", log=lambda line: None)["generator_provenance"]["version"] == "snapshot A"
