"""fit_generator: it learns, it resumes exactly, and it never overwrites what is already there."""

import dataclasses
import importlib.metadata
import json
import os

import pytest
import torch

import exaug
from torch.utils.data import TensorDataset

from conftest import blob_images, plant_foreign_random_stream
from exaug import BundleError, ExemplarVAE, ModelConfig, TrainConfig, fit_generator, load_generator, save_generator
from exaug.bundle import bundle_provenance
from exaug.models.base import LOG_VAR_MAX, LOG_VAR_MIN
from exaug.run_lock import RunDirectoryBusy, run_directory_lock
from exaug.train import CHECKPOINT_FILE, LOG_FILE, RunProgress, kl_weight, run_progress, stopped_early, training_log

SMALL = ModelConfig(hidden_dim=32, latent_dim=4, num_pseudo_inputs=10)


def quiet_fit(train, val, out, model_config=SMALL, callbacks=(), **options):
    config = TrainConfig(batch_size=50, warmup_epochs=2, **options)
    records = []
    model = fit_generator(train, val, config, out, model_config=model_config, progress=False, log=records.append,
                          callbacks=callbacks)
    return model, records


@pytest.mark.parametrize("prior,search,options", [("exemplar", "knn", {}), ("exemplar", "exact", {}),
                                                  ("exemplar", "knn", {"cached_trunk": True}), ("vamp", "knn", {}),
                                                  ("gaussian", "knn", {})])
def test_training_lowers_the_loss_and_raises_the_validation_elbo(tiny_data, tmp_path, prior, search, options):
    train, val = tiny_data
    _, records = quiet_fit(train, val, tmp_path, model_config=ModelConfig(prior=prior, hidden_dim=32, latent_dim=4,
                                                                           num_pseudo_inputs=10),
                           epochs=6, exemplar_search=search, **options)
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert records[-1]["val_elbo"] > records[0]["val_elbo"]


def test_input_shape_comes_from_the_data(tmp_path):
    images, labels = blob_images(120, shape=(3, 32, 32))
    model, _ = quiet_fit(TensorDataset(images, labels), None, tmp_path, epochs=1)
    assert model.config.input_shape == (3, 32, 32)
    assert load_generator(tmp_path).sample(2).shape == (2, 3, 32, 32)


def test_two_runs_with_the_same_seed_train_identical_weights(tiny_data, tmp_path):
    train, val = tiny_data
    first, _ = quiet_fit(train, val, tmp_path / "first", epochs=2)
    second, _ = quiet_fit(train, val, tmp_path / "second", epochs=2)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def kill_after_epoch(killed_epoch):
    """A callback that stops the process right after epoch ``killed_epoch`` is checkpointed, as a kill would."""
    def callback(trainer, record):
        if record["epoch"] == killed_epoch:
            raise KeyboardInterrupt
    return callback


@pytest.mark.parametrize("options", [{}, {"cached_trunk": True}])
def test_resume_after_a_kill_matches_the_uninterrupted_run(tiny_data, tmp_path, options):
    train, val = tiny_data
    straight, straight_records = quiet_fit(train, val, tmp_path / "straight", epochs=3, **options)
    with pytest.raises(KeyboardInterrupt):
        quiet_fit(train, val, tmp_path / "resumed", epochs=3, callbacks=[kill_after_epoch(2)], **options)
    resumed, resumed_records = quiet_fit(train, val, tmp_path / "resumed", epochs=3, **options)

    assert [r["epoch"] for r in resumed_records] == [3]
    assert resumed_records[0]["val_elbo"] == straight_records[-1]["val_elbo"]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    logged = [json.loads(line)["epoch"] for line in (tmp_path / "resumed" / LOG_FILE).read_text().splitlines()]
    assert logged == [1, 2, 3]


def logged_epochs(out):
    return [record["epoch"] for record in training_log(out)]


def test_a_kill_right_after_the_last_checkpoint_loses_no_log_line(tiny_data, tmp_path):
    train, val = tiny_data
    with pytest.raises(KeyboardInterrupt):
        quiet_fit(train, val, tmp_path, epochs=2, callbacks=[kill_after_epoch(2)])
    _, records = quiet_fit(train, val, tmp_path, epochs=2)  # finds the run finished
    assert records == [] and logged_epochs(tmp_path) == [1, 2]


def test_a_log_line_cut_short_by_a_kill_is_dropped_and_written_again(tiny_data, tmp_path):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path, epochs=1)
    with open(tmp_path / LOG_FILE, "a") as log:
        log.write('{"epoch": 2, "train_lo')  # the kill came mid-append, before epoch 2's checkpoint
    assert logged_epochs(tmp_path) == [1]  # the cut line is no record
    quiet_fit(train, val, tmp_path, epochs=2)
    assert logged_epochs(tmp_path) == [1, 2]
    assert len((tmp_path / LOG_FILE).read_text().splitlines()) == 2


def test_a_run_resumes_under_another_device_setting_of_the_same_kind(tiny_data, tmp_path):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path, epochs=1, device="auto")
    _, records = quiet_fit(train, val, tmp_path, epochs=2, device="cuda" if torch.cuda.is_available() else "cpu")
    assert [r["epoch"] for r in records] == [2]


@pytest.mark.parametrize("saved_on,message", [("cuda", "saved on cuda"), (None, "saved on another kind of device")])
def test_a_random_stream_from_another_device_kind_is_refused_and_nothing_is_touched(tiny_data, tmp_path, saved_on,
                                                                                    message):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path, epochs=1, device="cpu")
    plant_foreign_random_stream(tmp_path / CHECKPOINT_FILE, "generator", saved_on)
    files = {name: (tmp_path / name).read_bytes() for name in (CHECKPOINT_FILE, "model.safetensors", LOG_FILE)}
    with pytest.raises(ValueError, match=f"{message}.*--device"):
        quiet_fit(train, val, tmp_path, epochs=2, device="cpu")
    assert {name: (tmp_path / name).read_bytes() for name in files} == files


SAVED_FILES = (CHECKPOINT_FILE, "model.safetensors", LOG_FILE)


@pytest.mark.parametrize("diverging", ["training loss", "validation ELBO"])
def test_a_diverged_run_stops_before_it_overwrites_its_bundle_or_checkpoint(tiny_data, tmp_path, monkeypatch, diverging):
    train, val = tiny_data
    saved = {}

    def diverge_after_epoch_one(trainer, record):  # what epoch 1 saved, then what a blow-up would leave
        if record["epoch"] != 1:
            return
        saved.update({name: (tmp_path / name).read_bytes() for name in SAVED_FILES})
        if diverging == "training loss":
            with torch.no_grad():
                for parameter in trainer.model.parameters():
                    parameter.fill_(float("nan"))
        else:  # the training loss stays finite; only the validation bound is lost
            import exaug.train as train_module

            real_elbo_parts = train_module.elbo_parts
            monkeypatch.setattr(train_module, "elbo_parts",
                                lambda model, images: {**real_elbo_parts(model, images), "elbo": float("nan")})

    with pytest.raises(ValueError, match=f"epoch 2: the {diverging} is nan, so training diverged.*epoch 1"):
        quiet_fit(train, val, tmp_path, epochs=2, callbacks=[diverge_after_epoch_one])
    assert {name: (tmp_path / name).read_bytes() for name in SAVED_FILES} == saved


def test_a_run_diverging_in_its_first_epoch_says_nothing_was_saved(tiny_data, tmp_path):
    train, val = tiny_data
    start = ExemplarVAE(dataclasses.replace(SMALL, input_shape=(1, 16, 16)))
    with torch.no_grad():
        for parameter in start.parameters():
            parameter.fill_(1e38)  # finite, so the bundle loads, but every activation overflows
    start.set_exemplars(*blob_images(8))
    save_generator(start, tmp_path / "huge")
    with pytest.raises(ValueError, match=r"epoch 1: the training loss is (nan|inf).*nothing of the run was saved"):
        quiet_fit(train, val, tmp_path / "run", epochs=2, init_from=str(tmp_path / "huge"))
    assert not any((tmp_path / "run" / name).exists() for name in (*SAVED_FILES, "config.json"))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0])
def test_a_learning_rate_that_is_not_finite_and_positive_is_refused_by_name(value):
    with pytest.raises(ValueError, match=f"learning_rate={value}"):
        TrainConfig(learning_rate=value)


def test_the_progress_of_a_folder_holding_another_kind_of_run_is_a_clear_error(tmp_path):
    from exaug.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / CHECKPOINT_FILE, {"config": {"lam": 0.4}}, {"epoch": 3, "history": []})
    with pytest.raises(ValueError, match="not the checkpoint of a generator run"):
        run_progress(tmp_path)


def test_early_stopping_ends_after_patience_epochs_without_improvement(tiny_data, tmp_path):
    train, val = tiny_data
    _, records = quiet_fit(train, val, tmp_path, epochs=50, patience=1, learning_rate=1.0)
    last = records[-1]
    assert len(records) < 50
    assert last["epoch"] - last["best_epoch"] >= 1


def test_early_stopping_does_not_count_epochs_inside_the_kl_warm_up(tiny_data, tmp_path, monkeypatch):
    train, val = tiny_data
    import exaug.train as train_module

    real_elbo_parts = train_module.elbo_parts
    scores = iter([-100.0, -110.0, -120.0, -130.0, -140.0])  # epoch 1 is the best, then worse and worse
    monkeypatch.setattr(train_module, "elbo_parts",
                        lambda model, images: {**real_elbo_parts(model, images), "elbo": next(scores)})
    _, records = quiet_fit(train, val, tmp_path, epochs=5, patience=1)  # warm-up: 2 epochs
    assert [r["epoch"] for r in records] == [1, 2, 3]  # one epoch of patience after warm-up, not after epoch 1


@pytest.mark.parametrize("epoch, best_epoch, stopped", [(60, 5, False), (150, 100, True), (149, 100, False),
                                                        (151, 120, False), (170, 120, True)])
def test_patience_runs_from_the_later_of_the_best_epoch_and_the_end_of_warm_up(epoch, best_epoch, stopped):
    assert stopped_early(epoch, best_epoch, patience=50, counted_from=100, has_validation=True) is stopped


def test_the_knn_search_looks_around_the_current_posterior_means_unless_asked_for_the_cache(tiny_data, tmp_path):
    train, val = tiny_data
    assert TrainConfig().knn_query == "posterior"
    posterior, _ = quiet_fit(train, val, tmp_path / "posterior", epochs=2, knn=2)
    cache, _ = quiet_fit(train, val, tmp_path / "cache", epochs=2, knn=2, knn_query="cache")
    assert not torch.equal(posterior.encoder.mean.weight, cache.encoder.mean.weight)


def test_a_checkpoint_from_before_knn_query_resumes_as_it_ran_and_says_so_otherwise(tiny_data, tmp_path):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path / "straight", epochs=2, knn_query="cache")
    quiet_fit(train, val, tmp_path / "old", epochs=1, knn_query="cache")
    path = tmp_path / "old" / CHECKPOINT_FILE
    state = torch.load(path, weights_only=True)
    del state["identity"]["train_config"]["knn_query"]  # written before the setting existed
    torch.save(state, path)
    with pytest.raises(ValueError, match="train_config.knn_query: 'cache' → 'posterior'"):
        quiet_fit(train, val, tmp_path / "old", epochs=2)
    quiet_fit(train, val, tmp_path / "old", epochs=2, knn_query="cache")
    assert (tmp_path / "old" / "model.safetensors").read_bytes() == (tmp_path / "straight" / "model.safetensors").read_bytes()


def test_a_run_started_with_the_3_nearest_names_the_flag_that_resumes_it(tiny_data, tmp_path):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path, epochs=1, gradient_neighbours=3)
    with pytest.raises(ValueError, match="pass the --gradient-neighbours the run was started with"):
        quiet_fit(train, val, tmp_path, epochs=2)
    _, records = quiet_fit(train, val, tmp_path, epochs=2, gradient_neighbours=3)
    assert [r["epoch"] for r in records] == [2]


@pytest.mark.parametrize("section, setting", [("model_config", "architecture"),  # the MLP VAE
                                              ("train_config", "gradient_neighbours")])  # all k
def test_a_checkpoint_from_before_a_setting_whose_old_value_is_the_default_resumes(tiny_data, tmp_path, section,
                                                                                   setting):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path, epochs=1)
    path = tmp_path / CHECKPOINT_FILE
    state = torch.load(path, weights_only=True)
    del state["identity"][section][setting]  # written before the setting existed
    torch.save(state, path)
    _, records = quiet_fit(train, val, tmp_path, epochs=2)
    assert [r["epoch"] for r in records] == [2]


@pytest.mark.parametrize("setting, value", [("knn_query", "cache"), ("patience_after_warmup", False)])
def test_a_checkpoint_from_before_a_setting_names_the_flag_that_resumes_it(tiny_data, tmp_path, setting, value):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path, epochs=1, **{setting: value})
    path = tmp_path / CHECKPOINT_FILE
    state = torch.load(path, weights_only=True)
    del state["identity"]["train_config"][setting]  # written before the setting existed
    torch.save(state, path)
    flag = {"knn_query": "--knn-query cache", "patience_after_warmup": "--patience-from-best"}[setting]
    with pytest.raises(ValueError, match=flag):
        quiet_fit(train, val, tmp_path, epochs=2)
    _, records = quiet_fit(train, val, tmp_path, epochs=2, **{setting: value})
    assert [r["epoch"] for r in records] == [2]


@pytest.mark.parametrize("recorded, resumed_with", [
    ({"gradient_neighbours": 10}, {"gradient_neighbours": None}),  # an explicit g = k was all k
    ({"gradient_neighbours": None, "exemplar_search": "exact"}, {"exemplar_search": "exact"}),  # g is no choice there
    ({"gradient_neighbours": None, "neighbour_gradient": False}, {"neighbour_gradient": False}),
    ({"gradient_neighbours": 3, "model_config": ModelConfig(prior="gaussian", hidden_dim=32, latent_dim=4)},
     {"gradient_neighbours": None, "model_config": ModelConfig(prior="gaussian", hidden_dim=32, latent_dim=4)}),
])
def test_a_checkpoint_recording_a_gradient_neighbour_setting_its_recipe_ignores_resumes(tiny_data, tmp_path, recorded,
                                                                                        resumed_with):
    train, val = tiny_data
    written = {**recorded, "gradient_neighbours": None}
    quiet_fit(train, val, tmp_path, epochs=1, **written)
    path = tmp_path / CHECKPOINT_FILE
    state = torch.load(path, weights_only=True)
    state["identity"]["train_config"]["gradient_neighbours"] = recorded["gradient_neighbours"]  # as it was recorded
    torch.save(state, path)
    _, records = quiet_fit(train, val, tmp_path, epochs=2, **resumed_with)
    assert [r["epoch"] for r in records] == [2]


@pytest.mark.parametrize("options", [{"exemplar_search": "exact"}, {"model_config": ModelConfig(hidden_dim=32, latent_dim=4,
                                                                                                 prior="gaussian")}])
def test_knn_query_is_no_part_of_a_run_that_does_not_search_neighbours(tiny_data, tmp_path, options):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path, epochs=1, knn_query="cache", **options)
    _, records = quiet_fit(train, val, tmp_path, epochs=2, **options)  # the default query: no difference
    assert [r["epoch"] for r in records] == [2]


def test_a_run_that_used_up_its_epochs_trains_on_in_place_exactly_as_a_longer_run(tiny_data, tmp_path):
    train, val = tiny_data
    straight, straight_records = quiet_fit(train, val, tmp_path / "straight", epochs=4)
    quiet_fit(train, val, tmp_path / "extended", epochs=2)
    extended, extended_records = quiet_fit(train, val, tmp_path / "extended", epochs=4)

    assert [r["epoch"] for r in extended_records] == [3, 4]
    without_timing = [{key: value for key, value in record.items() if key != "seconds"} for record in extended_records]
    assert without_timing == [{key: value for key, value in record.items() if key != "seconds"}
                              for record in straight_records[2:]]
    for (name, a), b in zip(straight.state_dict().items(), extended.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    logged = [json.loads(line)["epoch"] for line in (tmp_path / "extended" / LOG_FILE).read_text().splitlines()]
    assert logged == [1, 2, 3, 4]
    assert json.loads((tmp_path / "extended" / "config.json").read_text())["training"]["epochs"] == 4


def test_a_checkpoint_written_before_runs_could_be_extended_extends_too(tiny_data, tmp_path):
    train, val = tiny_data
    straight, _ = quiet_fit(train, val, tmp_path / "straight", epochs=4)
    _, records = quiet_fit(train, val, tmp_path / "old", epochs=2)
    path = tmp_path / "old" / CHECKPOINT_FILE
    state = torch.load(path, weights_only=True)
    del state["epoch_budget"]  # older checkpoints kept the budget in their identity, and a "finished" flag
    state["identity"]["train_config"]["epochs"] = 2
    state["finished"] = True
    torch.save(state, path)

    assert run_progress(tmp_path / "old") == RunProgress(2, 2, records[-1]["best_epoch"], stopped_early=False)
    extended, _ = quiet_fit(train, val, tmp_path / "old", epochs=4)
    for (name, a), b in zip(straight.state_dict().items(), extended.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_a_run_stopped_early_stays_stopped_when_given_more_epochs(tiny_data, tmp_path):
    train, val = tiny_data
    _, records = quiet_fit(train, val, tmp_path, epochs=50, patience=1, learning_rate=1.0)
    before = (tmp_path / "model.safetensors").read_bytes()
    assert run_progress(tmp_path).stopped_early
    _, more = quiet_fit(train, val, tmp_path, epochs=60, patience=1, learning_rate=1.0)
    assert len(records) < 50 and more == []
    assert (tmp_path / "model.safetensors").read_bytes() == before


def test_asking_for_fewer_epochs_than_already_trained_is_refused_and_changes_nothing(tiny_data, tmp_path):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path, epochs=2)
    files = {name: (tmp_path / name).read_bytes() for name in ("model.safetensors", "config.json", CHECKPOINT_FILE)}
    with pytest.raises(ValueError, match="already trained 2 epochs, more than epochs=1; ask for at least 2"):
        quiet_fit(train, val, tmp_path, epochs=1)
    assert {name: (tmp_path / name).read_bytes() for name in files} == files


def test_the_bundle_keeps_the_best_validation_model(tiny_data, tmp_path, monkeypatch):
    train, val = tiny_data
    import exaug.train as train_module

    real_elbo_parts = train_module.elbo_parts

    def score_epochs(*elbos):
        scores = iter(elbos)
        monkeypatch.setattr(train_module, "elbo_parts",
                            lambda model, images: {**real_elbo_parts(model, images), "elbo": next(scores)})

    score_epochs(-100.0, -90.0, -80.0, -95.0)  # epoch 3 is the best; epoch 4 is worse
    model, records = quiet_fit(train, val, tmp_path / "four", epochs=4)
    assert [r["best_epoch"] for r in records] == [1, 2, 3, 3]
    score_epochs(-100.0, -90.0, -80.0)
    after_three, _ = quiet_fit(train, val, tmp_path / "three", epochs=3)  # the same seed: epoch 3's weights
    loaded = load_generator(tmp_path / "four")
    provenance = bundle_provenance(tmp_path / "four")
    assert (provenance["epochs_trained"], provenance["best_val_elbo"]) == (3, -80.0)
    for (name, a), b, c in zip(after_three.state_dict().items(), loaded.state_dict().values(),
                               model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)
        torch.testing.assert_close(c, a, rtol=0, atol=0, msg=name)


def test_a_folder_with_someone_elses_files_is_not_overwritten(tiny_data, tmp_path):
    train, val = tiny_data
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="config.json"):
        quiet_fit(train, val, tmp_path, epochs=1)
    assert (tmp_path / "config.json").read_text() == "{}"


def test_a_run_with_other_settings_refuses_to_resume_in_the_same_folder(tiny_data, tmp_path):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path, epochs=1)
    before = (tmp_path / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match=r"different train_config\.knn: \d+ → 3"):
        quiet_fit(train, val, tmp_path, epochs=1, knn=3)
    assert (tmp_path / "model.safetensors").read_bytes() == before


def test_a_damaged_checkpoint_is_reported_and_left_alone(tiny_data, tmp_path):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path, epochs=1)
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="checkpoint.pt cannot be read as a checkpoint"):
        quiet_fit(train, val, tmp_path, epochs=1)
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == b"not a checkpoint"


def test_a_warm_start_begins_at_the_bundles_weights_and_records_them(tiny_data, tmp_path):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path / "first", epochs=2)
    start = load_generator(tmp_path / "first")
    # Steps of 1e-30 leave every weight where it started, to within 1e-20: what comes back is where it began.
    after_one_step, _ = quiet_fit(train, val, tmp_path / "longer", model_config=None, epochs=1, learning_rate=1e-30,
                                  init_from=str(tmp_path / "first"))
    for name, value in start.state_dict().items():
        torch.testing.assert_close(after_one_step.state_dict()[name], value, rtol=0, atol=1e-20, msg=name)
    saved = json.loads((tmp_path / "longer" / "config.json").read_text())
    first = json.loads((tmp_path / "first" / "config.json").read_text())
    assert saved["training"]["init_from"] == str(tmp_path / "first")
    assert saved["training"]["init_sha256"] == first["sha256"]["model.safetensors"]
    assert saved["model"] == first["model"]


def test_a_warm_start_from_a_bundle_of_another_architecture_is_refused(tiny_data, tmp_path):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path / "first", epochs=1)
    with pytest.raises(ValueError, match=r"latent_dim 4 \(asked for 8\)"):
        quiet_fit(train, val, tmp_path / "other", model_config=ModelConfig(hidden_dim=32, latent_dim=8,
                                                                           num_pseudo_inputs=10),
                  epochs=1, init_from=str(tmp_path / "first"))
    assert not (tmp_path / "other" / "config.json").exists()


def test_a_warm_started_run_refuses_to_resume_once_its_start_bundle_changed(tiny_data, tmp_path):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path / "first", epochs=1)
    quiet_fit(train, val, tmp_path / "longer", model_config=None, epochs=1, init_from=str(tmp_path / "first"))
    before = (tmp_path / "longer" / "model.safetensors").read_bytes()
    quiet_fit(train, val, tmp_path / "first-again", epochs=1, seed=5)
    for name in ("config.json", "model.safetensors", "exemplars.safetensors"):
        (tmp_path / "first" / name).write_bytes((tmp_path / "first-again" / name).read_bytes())
    with pytest.raises(ValueError, match="init_sha256.*does not hold the weights this run started from"):
        quiet_fit(train, val, tmp_path / "longer", model_config=None, epochs=1, init_from=str(tmp_path / "first"))
    assert (tmp_path / "longer" / "model.safetensors").read_bytes() == before


def test_a_warm_started_run_trains_on_from_a_copy_of_its_start_bundle_under_another_name(tiny_data, tmp_path):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path / "first", epochs=1)
    quiet_fit(train, val, tmp_path / "longer", model_config=None, epochs=1, init_from=str(tmp_path / "first"))
    (tmp_path / "first").rename(tmp_path / "moved")
    _, records = quiet_fit(train, val, tmp_path / "longer", model_config=None, epochs=2,
                           init_from=str(tmp_path / "moved"))
    assert [record["epoch"] for record in records] == [2]


def test_images_outside_the_unit_range_are_refused(tmp_path):
    images = torch.rand(10, 1, 4, 4) * 255
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        quiet_fit(TensorDataset(images), None, tmp_path, epochs=1)


def test_kl_warmup_is_linear_then_flat():
    assert [kl_weight(e, 4) for e in (1, 2, 4, 9)] == [0.25, 0.5, 1.0, 1.0]
    assert kl_weight(1, 0) == 1.0


def test_the_run_directory_is_locked_while_training_and_free_afterwards(tiny_data, tmp_path):
    train, val = tiny_data
    refusals = []

    def try_a_second_run(record):
        with pytest.raises(RunDirectoryBusy) as refused:
            fit_generator(train, val, TrainConfig(epochs=2), tmp_path, model_config=SMALL, progress=False)
        refusals.append(refused.value)

    fit_generator(train, val, TrainConfig(batch_size=50, epochs=2), tmp_path, model_config=SMALL, progress=False,
                  log=try_a_second_run)
    assert len(refusals) == 2
    with run_directory_lock(tmp_path):
        pass


class KilledAt(Exception):
    """Stands for a kill (or a full disk) at one write point."""


def count_replaces(run) -> int:
    calls = {"count": 0}
    real_replace = os.replace

    def counting(*args, **kwargs):
        calls["count"] += 1
        return real_replace(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "replace", counting)
        run()
    return calls["count"]


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_kill_at_any_write_point_leaves_a_folder_the_same_command_finishes_identically(tiny_data, tmp_path, when):
    """Every file is written by an atomic rename; the run is stopped at each rename in turn, just before it
    (the new file is not in place: a kill or a full disk) or just after (in place, the next write not begun)."""
    train, val = tiny_data
    clean = tmp_path / "clean"
    writes = count_replaces(lambda: quiet_fit(train, val, clean, epochs=2))
    for point in range(1, writes + 1):
        out = tmp_path / f"{when}-{point}"
        calls = {"count": 0}
        real_replace = os.replace

        def stop_at_the_point(*args, **kwargs):
            calls["count"] += 1
            if calls["count"] == point and when == "before":
                raise KilledAt(point)
            real_replace(*args, **kwargs)
            if calls["count"] == point:
                raise KilledAt(point)

        with pytest.MonkeyPatch.context() as patch, pytest.raises(KilledAt):
            patch.setattr(os, "replace", stop_at_the_point)
            quiet_fit(train, val, out, epochs=2)
        quiet_fit(train, val, out, epochs=2)  # the same command, run again
        for name in ("model.safetensors", "exemplars.safetensors", "config.json"):
            assert (out / name).read_bytes() == (clean / name).read_bytes(), f"{name} after a stop at write {point}"
        assert logged_epochs(out) == [1, 2]


def test_another_runs_files_without_a_checkpoint_are_still_refused(tiny_data, tmp_path):
    train, val = tiny_data
    real_replace = os.replace

    def stop_after_the_first_bundle_file(source, target):
        real_replace(source, target)
        if str(target).endswith("config.json"):
            raise KilledAt(target)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(KilledAt):
        patch.setattr(os, "replace", stop_after_the_first_bundle_file)
        quiet_fit(train, val, tmp_path, epochs=2)
    assert not (tmp_path / CHECKPOINT_FILE).exists()
    with pytest.raises(FileExistsError, match="not the files of a run with these settings"):
        quiet_fit(train, val, tmp_path, epochs=2, seed=1)
    assert (tmp_path / "config.json").exists()


def test_temporary_files_of_killed_writes_are_removed_when_the_run_starts_again(tiny_data, tmp_path):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path, epochs=1)
    stale = [tmp_path / ".checkpoint.pt.k2j4x_9q.tmp", tmp_path / ".config.json.abcdefgh.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    (tmp_path / "notes.tmp").write_text("the user's own")
    quiet_fit(train, val, tmp_path, epochs=2)
    assert not any(path.exists() for path in stale) and (tmp_path / "notes.tmp").exists()


def test_a_bundle_cut_short_in_a_run_folder_says_to_rerun_the_command_which_repairs_it(tiny_data, tmp_path):
    train, val = tiny_data
    quiet_fit(train, val, tmp_path, epochs=1)
    genuine = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(genuine[: len(genuine) // 2])  # as a kill mid-save would leave it
    with pytest.raises(BundleError, match="rerun the same fit-generator command"):
        load_generator(tmp_path)
    quiet_fit(train, val, tmp_path, epochs=1)
    assert (tmp_path / "model.safetensors").read_bytes() == genuine


@pytest.mark.parametrize("seed", [-1, 2**63, 2**70, True])
def test_a_seed_torch_cannot_take_is_refused_by_the_recipe(seed):
    with pytest.raises(ValueError, match="seed=.* must be an integer in \\[0, 2\\*\\*63 - 1\\]"):
        TrainConfig(seed=seed)


def test_the_bundle_records_the_command_and_exaug_version_that_trained_it(tiny_data, tmp_path):
    train, val = tiny_data
    fit_generator(train, val, TrainConfig(epochs=1, batch_size=50), tmp_path, model_config=SMALL, progress=False,
                  log=lambda record: None, command="exaug fit-generator --dataset blobs --out here")
    provenance = bundle_provenance(tmp_path)
    assert provenance["command"] == "exaug fit-generator --dataset blobs --out here"
    assert provenance["exaug_version"] == exaug.__version__ == importlib.metadata.version("exaug")


def test_each_epoch_records_how_the_validation_posterior_variances_sit_against_the_clamp(tiny_data, tmp_path):
    train, val = tiny_data
    _, records = quiet_fit(train, val, tmp_path, epochs=2)
    for record in records:
        assert 0.0 <= record["val_posterior_log_var_at_clamp_share"] <= 1.0
        assert LOG_VAR_MIN <= record["val_posterior_log_var_median"] <= LOG_VAR_MAX
