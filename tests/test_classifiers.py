"""exaug.classifiers: the MLP, timm models by name, and the §5.4 recipe with and without augmentation."""

import json
import os
import shutil

import pytest
import torch
from torch.utils.data import TensorDataset

from conftest import blob_images, plant_foreign_random_stream
from exaug.classifiers import ClassifierConfig, PermutationInvariantMLP, create_classifier, fit_classifier
from exaug import load_generator
from exaug.classifiers.inputs import describe_task
from exaug.classifiers.train import CHECKPOINT_FILE
from exaug.data import dataset_labels
from exaug.run_lock import RunDirectoryBusy, run_directory_lock


@pytest.fixture
def blobs():
    train_images, train_labels = blob_images(400, seed=0)
    test_images, test_labels = blob_images(100, seed=1)
    return TensorDataset(train_images, train_labels), TensorDataset(test_images, test_labels)


def killed_after_epoch_one(trainer, record):
    """A callback that stops the process right after epoch 1 is checkpointed, as a kill would: it resumes at epoch 2."""
    if record["epoch"] == 1:
        raise KeyboardInterrupt


def quick_config(**options):
    values = dict(hidden=(32, 32), epochs=3, batch_size=20, learning_rate=0.05, workers=0, device="cpu")
    values.update(options)
    return ClassifierConfig(**values)


def test_mlp_is_fully_connected_with_relu_and_the_asked_widths():
    model = PermutationInvariantMLP(784, 10, hidden=(1024, 1024))
    widths = [layer.out_features for layer in model.modules() if isinstance(layer, torch.nn.Linear)]
    assert widths == [1024, 1024, 10]
    assert sum(isinstance(layer, torch.nn.ReLU) for layer in model.modules()) == 2
    assert not any(isinstance(layer, torch.nn.Conv2d) for layer in model.modules())


def test_mlp_is_blind_to_a_fixed_pixel_permutation():
    torch.manual_seed(0)
    model = PermutationInvariantMLP(16, 3, hidden=(8,))
    permutation = torch.randperm(16)
    permuted = PermutationInvariantMLP(16, 3, hidden=(8,))
    permuted.load_state_dict(model.state_dict())
    with torch.no_grad():
        permuted.net[1].weight.copy_(model.net[1].weight[:, permutation])
    x = torch.rand(5, 1, 4, 4)
    torch.testing.assert_close(permuted(x.flatten(1)[:, permutation].view(5, 1, 4, 4)), model(x))


def test_any_timm_model_is_created_by_name_for_the_image_shape():
    model = create_classifier("test_resnet", (1, 16, 16), num_classes=4)
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 4)


def test_an_unknown_model_name_points_to_timm():
    with pytest.raises(ValueError, match="timm.list_models"):
        create_classifier("no_such_net", (1, 16, 16), num_classes=4)


def test_label_smoothing_alone_learns_the_task(blobs):
    train, test = blobs
    result = fit_classifier(train, test, quick_config(), progress=False, log=lambda r: None)
    assert result["test_error"] < 10.0
    assert result["history"][-1]["train_loss"] < result["history"][0]["train_loss"]


def test_augmented_training_learns_with_dataloader_workers(blobs, tiny_generator_dir):
    train, test = blobs
    result = fit_classifier(train, test, quick_config(workers=2, lam=0.5), generator=str(tiny_generator_dir),
                            progress=False, log=lambda r: None)
    assert result["test_error"] < 25.0
    assert result["generator"] == str(tiny_generator_dir)


def test_augmented_training_in_float64_learns(blobs, tiny_generator_dir):
    train, test = blobs
    result = fit_classifier(train, test, quick_config(dtype="float64", lam=0.5), generator=str(tiny_generator_dir),
                            progress=False, log=lambda r: None)
    assert result["config"]["dtype"] == "float64"
    assert result["test_error"] < 25.0


def test_float64_weights_are_what_the_run_trains(blobs, tmp_path):
    train, test = blobs
    fit_classifier(train, test, quick_config(epochs=1, dtype="float64"), out=tmp_path, progress=False,
                   log=lambda r: None)
    weights = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)["model"]
    assert {tensor.dtype for tensor in weights.values()} == {torch.float64}


def test_learning_rate_decays_linearly_to_one_hundredth(blobs):
    train, test = blobs
    result = fit_classifier(train, test, quick_config(epochs=2), progress=False, log=lambda r: None)
    assert result["history"][0]["lr"] == pytest.approx(0.05 * (1 + 0.01) / 2)  # halfway: the mean of η and η/100
    assert result["history"][-1]["lr"] == pytest.approx(0.05 / 100)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_killed_run_resumes_to_the_same_result(blobs, tmp_path, tiny_generator_dir, workers):
    train, test = blobs
    config = quick_config(workers=workers)
    straight = fit_classifier(train, test, config, generator=str(tiny_generator_dir), out=tmp_path / "a",
                              progress=False, log=lambda r: None)

    with pytest.raises(KeyboardInterrupt):
        fit_classifier(train, test, config, generator=str(tiny_generator_dir), out=tmp_path / "b",
                       progress=False, log=lambda r: None, callbacks=[killed_after_epoch_one])
    state = torch.load(tmp_path / "b" / CHECKPOINT_FILE, weights_only=True)
    assert state["epoch"] == 1
    resumed = fit_classifier(train, test, config, generator=str(tiny_generator_dir), out=tmp_path / "b",
                             progress=False, log=lambda r: None)
    assert [r["test_error"] for r in resumed["history"]] == [r["test_error"] for r in straight["history"]]
    assert [r["train_loss"] for r in resumed["history"]] == [r["train_loss"] for r in straight["history"]]


def test_a_run_resumes_with_the_same_bundle_under_another_path(blobs, tmp_path, tiny_generator_dir):
    train, test = blobs
    first = fit_classifier(train, test, quick_config(epochs=2), generator=str(tiny_generator_dir),
                           out=tmp_path / "run", progress=False, log=lambda r: None)
    moved = shutil.copytree(tiny_generator_dir, tmp_path / "moved-bundle")
    again = fit_classifier(train, test, quick_config(epochs=2), generator=str(moved), out=tmp_path / "run",
                           progress=False, log=lambda r: None)
    assert again["history"] == first["history"]  # found finished, not trained afresh


def test_resuming_with_other_settings_names_each_change_and_keeps_the_checkpoint(blobs, tmp_path):
    train, test = blobs
    fit_classifier(train, test, quick_config(epochs=1), out=tmp_path, progress=False, log=lambda r: None)
    before = (tmp_path / CHECKPOINT_FILE).read_bytes()
    with pytest.raises(ValueError, match=r"config\.learning_rate: 0\.05 → 0\.2"):
        fit_classifier(train, test, quick_config(epochs=1, learning_rate=0.2), out=tmp_path, progress=False,
                       log=lambda r: None)
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == before


def test_a_checkpoint_from_before_noise_scale_and_dtype_existed_resumes_as_it_ran(blobs, tmp_path):
    train, test = blobs
    first = fit_classifier(train, test, quick_config(epochs=1), out=tmp_path, progress=False, log=lambda r: None)
    state = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    del state["identity"]["config"]["noise_scale"]  # as written by the first release
    del state["identity"]["config"]["dtype"]
    torch.save(state, tmp_path / CHECKPOINT_FILE)
    again = fit_classifier(train, test, quick_config(epochs=1), out=tmp_path, progress=False, log=lambda r: None)
    assert again["history"] == first["history"]
    with pytest.raises(ValueError, match=r"config\.noise_scale: 1\.0 → 0\.5"):
        fit_classifier(train, test, quick_config(epochs=1, noise_scale=0.5), out=tmp_path, progress=False,
                       log=lambda r: None)
    with pytest.raises(ValueError, match=r"config\.dtype: 'float32' → 'float64'"):
        fit_classifier(train, test, quick_config(epochs=1, dtype="float64"), out=tmp_path, progress=False,
                       log=lambda r: None)


@pytest.mark.parametrize("which", ["train", "test"])
def test_other_data_of_the_same_size_refuses_to_resume_and_keeps_the_checkpoint(blobs, tmp_path, which):
    fit_classifier(*blobs, quick_config(epochs=1), out=tmp_path, progress=False, log=lambda r: None)
    before = (tmp_path / CHECKPOINT_FILE).read_bytes()
    train, test = blobs
    relabelled = {"train": train, "test": test}
    images, labels = relabelled[which].tensors
    relabelled[which] = TensorDataset(images, 1 - labels)  # e.g. Fashion-MNIST where MNIST ran: same sizes
    with pytest.raises(ValueError, match=rf"data\.{which}\.labels_sha256"):
        fit_classifier(relabelled["train"], relabelled["test"], quick_config(epochs=1), out=tmp_path,
                       progress=False, log=lambda r: None)
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == before


def test_a_checkpoint_from_before_the_data_were_recorded_resumes(blobs, tmp_path):
    first = fit_classifier(*blobs, quick_config(epochs=1), out=tmp_path, progress=False, log=lambda r: None)
    state = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    del state["identity"]["data"]
    torch.save(state, tmp_path / CHECKPOINT_FILE)
    again = fit_classifier(*blobs, quick_config(epochs=1), out=tmp_path, progress=False, log=lambda r: None)
    assert again["history"] == first["history"]


def test_a_run_resumes_with_other_workers_and_device_setting(blobs, tmp_path, tiny_generator_dir):
    first = fit_classifier(*blobs, quick_config(epochs=1, device="auto"), generator=str(tiny_generator_dir),
                           out=tmp_path, progress=False, log=lambda r: None)
    resolved = "cuda" if torch.cuda.is_available() else "cpu"
    again = fit_classifier(*blobs, quick_config(epochs=1, workers=2, device=resolved), generator=str(tiny_generator_dir),
                           out=tmp_path, progress=False, log=lambda r: None)
    assert again["history"] == first["history"]  # found finished, not refused


@pytest.mark.parametrize("saved_on,message", [("cuda", "saved on cuda"), (None, "saved on another kind of device")])
def test_a_twin_noise_stream_from_another_device_kind_is_refused_clearly(blobs, tmp_path, tiny_generator_dir,
                                                                         saved_on, message):
    with pytest.raises(KeyboardInterrupt):
        fit_classifier(*blobs, quick_config(epochs=2), generator=str(tiny_generator_dir), out=tmp_path,
                       progress=False, log=lambda r: None, callbacks=[killed_after_epoch_one])
    plant_foreign_random_stream(tmp_path / CHECKPOINT_FILE, "mixed_rng", saved_on)
    before = (tmp_path / CHECKPOINT_FILE).read_bytes()
    with pytest.raises(ValueError, match=f"{message}.*--device"):
        fit_classifier(*blobs, quick_config(epochs=2), generator=str(tiny_generator_dir), out=tmp_path,
                       progress=False, log=lambda r: None)
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == before


def test_an_in_memory_generator_with_other_weights_refuses_to_resume(blobs, tmp_path, tiny_generator_dir):
    generator = load_generator(tiny_generator_dir)
    fit_classifier(*blobs, quick_config(epochs=1), generator=generator, out=tmp_path, progress=False,
                   log=lambda r: None)
    with torch.no_grad():
        next(generator.parameters()).add_(0.01)
    with pytest.raises(ValueError, match=r"generator\.weights_sha256"):
        fit_classifier(*blobs, quick_config(epochs=1), generator=generator, out=tmp_path, progress=False,
                       log=lambda r: None)


class RandomImages(torch.utils.data.Dataset):
    """Images drawn afresh at every read, in whichever process reads them; each draw is logged to ``log_dir``."""

    def __init__(self, log_dir, size=40):
        self.log_dir, self.targets = log_dir, [index % 2 for index in range(size)]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        image = torch.rand(1, 4, 4)
        with open(os.path.join(self.log_dir, f"{os.getpid()}.txt"), "a") as log:
            log.write(f"{image.sum().item()!r}\n")
        return image, self.targets[index]


def worker_draws(log_dir):
    """The draws logged by processes other than this one (fit_classifier reads an image here to learn its shape)."""
    return [line for path in sorted(log_dir.iterdir()) if path.stem != str(os.getpid())
            for line in path.read_text().split()]


@pytest.mark.parametrize("progress", [False, True])
def test_each_epoch_reads_every_training_image_once_with_workers(tmp_path, progress):
    test = TensorDataset(torch.rand(10, 1, 4, 4), torch.arange(10) % 2)
    fit_classifier(RandomImages(tmp_path), test, quick_config(epochs=2, workers=2), progress=progress,
                   log=lambda r: None)
    assert len(worker_draws(tmp_path)) == 2 * 40


def test_a_resumed_run_does_not_replay_the_workers_random_draws_of_its_first_epoch(tmp_path):
    before, after = tmp_path / "draws-before-kill", tmp_path / "draws-after-resume"
    before.mkdir(), after.mkdir()
    test = TensorDataset(torch.rand(10, 1, 4, 4), torch.arange(10) % 2)
    config = quick_config(epochs=2, workers=1)

    with pytest.raises(KeyboardInterrupt):
        fit_classifier(RandomImages(before), test, config, out=tmp_path / "run", progress=False,
                       log=lambda r: None, callbacks=[killed_after_epoch_one])
    first_epoch = worker_draws(before)
    assert len(first_epoch) == 40
    fit_classifier(RandomImages(after), test, config, out=tmp_path / "run", progress=False, log=lambda r: None)
    second_epoch = worker_draws(after)
    assert len(second_epoch) == 40
    assert not set(second_epoch) & set(first_epoch)


@pytest.mark.parametrize("options,message", [
    (dict(lam=1.5), "lam=1.5"),
    (dict(noise_scale=-1.0), "noise_scale=-1.0"),
    (dict(label_smoothing=1.0), "label_smoothing"),
    (dict(epochs=0), "epochs=0"),
    (dict(workers=-1), "workers=-1"),
    (dict(learning_rate=float("nan")), "learning_rate=nan"),
    (dict(learning_rate=float("inf")), "learning_rate=inf"),
    (dict(learning_rate=0.0), "learning_rate=0.0"),
    (dict(final_lr_factor=0.0), "final_lr_factor=0.0"),
    (dict(dtype="float16"), "dtype='float16'.*float32, float64"),
])
def test_bad_recipes_are_refused_by_name(options, message):
    with pytest.raises(ValueError, match=message):
        quick_config(**options)


def test_the_classes_and_labels_of_a_split_folder_come_from_its_lists_not_its_images():
    class CountingFolder(torch.utils.data.Dataset):
        classes = ["a", "b", "c"]  # like ImageFolder; label 2 never occurs in the split below
        targets = [index % 2 for index in range(50)]
        reads = 0

        def __len__(self):
            return 50

        def __getitem__(self, index):
            CountingFolder.reads += 1
            return torch.rand(1, 4, 4), self.targets[index]

    split = torch.utils.data.Subset(CountingFolder(), range(10, 40))
    labels = dataset_labels(split)
    shape, classes = describe_task(split, labels)
    assert (shape, classes) == ((1, 4, 4), 3)
    assert labels.tolist() == [index % 2 for index in range(10, 40)]
    assert CountingFolder.reads == 1


@pytest.mark.parametrize("bad_sets,message", [
    (lambda train, test: (TensorDataset(train.tensors[0][:0], train.tensors[1][:0]), test), "training set is empty"),
    (lambda train, test: (TensorDataset((train.tensors[0] * 255).to(torch.uint8), train.tensors[1]), test),
     "float C×H×W"),
    (lambda train, test: (train, TensorDataset(test.tensors[0][:0], test.tensors[1][:0])), "test .* set is empty"),
    (lambda train, test: (train, TensorDataset(test.tensors[0][:, :, :2], test.tensors[1])), "same transforms"),
    (lambda train, test: (train, TensorDataset((test.tensors[0] * 255).to(torch.uint8), test.tensors[1])),
     "test images must be float"),
])
def test_bad_data_is_refused_before_the_output_folder_is_made(blobs, tmp_path, bad_sets, message):
    with pytest.raises(ValueError, match=message):
        fit_classifier(*bad_sets(*blobs), quick_config(), out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_missing_generator_is_refused_before_the_output_folder_is_made(blobs, tmp_path):
    with pytest.raises(ValueError, match="no-such-bundle"):
        fit_classifier(*blobs, quick_config(), generator=str(tmp_path / "no-such-bundle"), out=tmp_path / "run",
                       progress=False)
    assert not (tmp_path / "run").exists()


def test_the_run_directory_is_locked_while_training_and_free_afterwards(blobs, tmp_path):
    refusals = []

    def try_a_second_run(record):
        with pytest.raises(RunDirectoryBusy) as refused:
            fit_classifier(*blobs, quick_config(), out=tmp_path, progress=False, log=lambda record: None)
        refusals.append(refused.value)

    fit_classifier(*blobs, quick_config(workers=2), out=tmp_path, progress=False, log=try_a_second_run)
    assert len(refusals) == 3  # one per epoch, each while the first run was training
    with run_directory_lock(tmp_path):
        pass


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_kill_at_any_write_point_leaves_a_run_the_same_call_finishes_identically(blobs, tmp_path,
                                                                                   tiny_generator_dir, when):
    """Each checkpoint and the result are written by an atomic rename; the run is stopped at each rename in
    turn, just before it (a kill, or a full disk) or just after it."""
    real_replace = os.replace
    fit = lambda out: fit_classifier(*blobs, quick_config(epochs=2), generator=str(tiny_generator_dir), out=out,
                                     progress=False, log=lambda r: None)
    without_seconds = lambda result: [{k: v for k, v in r.items() if k != "seconds"} for r in result["history"]]
    clean = without_seconds(fit(tmp_path / "clean"))
    for point in (1, 2, 3):  # checkpoint 1, checkpoint 2, result.json
        calls = {"count": 0}

        def stop_at_the_point(*args, **kwargs):
            calls["count"] += 1
            if calls["count"] == point and when == "before":
                raise KeyboardInterrupt
            real_replace(*args, **kwargs)
            if calls["count"] == point:
                raise KeyboardInterrupt

        out = tmp_path / f"{when}-{point}"
        with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
            patch.setattr(os, "replace", stop_at_the_point)
            fit(out)
        assert without_seconds(fit(out)) == clean
        assert json.loads((out / "result.json").read_text())["test_error"] == clean[-1]["test_error"]
