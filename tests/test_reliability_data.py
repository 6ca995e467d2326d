"""Issue 26, data: damage that keeps a file's size and modification time ends in a repair, not a loop; staging
folders that kill -9 left behind are removed by the next call, never one a running call is using."""

import multiprocessing
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import mnist_raw
from exaug import load_generator
from exaug.cli.main import main
from exaug.data import fetch, fetching, load_split, write_image_folder

IMAGES = "train-images-idx3-ubyte"
FIRST_PIXEL = 16  # bytes before the first pixel of an idx3 file


def flip_a_pixel_keeping_size_and_mtime(path: Path) -> None:
    """What an unlucky disk does: one byte changes, the file's size and modification time do not."""
    stat = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(FIRST_PIXEL + 300)
        pixel = handle.read(1)[0]
        handle.seek(FIRST_PIXEL + 300)
        handle.write(bytes([pixel ^ 0xFF]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_the_bundled_generator_on_data_damaged_in_place_names_fetch_verify_instead_of_dropping_its_images(mnist_root):
    load_split("mnist", "val", mnist_root, fetch_missing=False)  # verified: the record now spares the hash
    flip_a_pixel_keeping_size_and_mtime(mnist_raw(mnist_root, IMAGES))
    with pytest.raises(ValueError, match=f"{IMAGES} do not match their pinned sha256 although their size and "
                                         r"modification time are unchanged .*`exaug data fetch --verify mnist`"):
        load_generator("mnist", data_root=mnist_root)


def test_fetch_verify_hashes_every_file_again_and_repairs_damage_that_kept_size_and_mtime(mnist_root):
    genuine = load_split("mnist", "train", mnist_root, fetch_missing=False)
    flip_a_pixel_keeping_size_and_mtime(mnist_raw(mnist_root, IMAGES))
    result = CliRunner().invoke(main, ["data", "fetch", "mnist", "--verify", "--package-sources", "--root", str(mnist_root)])
    assert result.exit_code == 0 and "every file hashed again" in result.output, result.output
    assert torch.equal(load_split("mnist", "train", mnist_root, fetch_missing=False).images, genuine.images)
    assert load_generator("mnist", data_root=mnist_root).exemplar_images is not None


def start_and_hold_in_staging(target, *arguments) -> multiprocessing.Process:
    """Run ``target(announce, *arguments)`` in a forked process; return once it announced that it is writing into
    its staging folder (then it waits to be killed)."""
    context = multiprocessing.get_context("fork")
    staging = context.Event()
    process = context.Process(target=target, args=(staging.set, *arguments), daemon=True)
    process.start()
    assert staging.wait(timeout=60), "the process did not reach its staging folder"
    return process


def kill_nine(process: multiprocessing.Process) -> None:
    process.kill()
    process.join()


def fetch_and_hold(announce, mnist_root: str) -> None:
    """A fetch whose download is slow: it stages part of a file, then waits."""
    def slow_download(tv_class, staging):
        (Path(staging) / "partial").write_bytes(bytes(1_000_000))
        announce()
        time.sleep(120)

    fetching._download_with_torchvision = slow_download
    fetch("mnist", mnist_root)


def staging_folders(mnist_root: Path) -> list[str]:
    return sorted(path.name for path in mnist_root.iterdir() if path.name.startswith(".staging-"))


def test_a_staging_folder_of_a_killed_fetch_is_removed_by_the_next_but_not_while_its_fetch_runs(tmp_path):
    fetching_process = start_and_hold_in_staging(fetch_and_hold, str(tmp_path))
    try:
        shutil.copytree(fetch("mnist") / "MNIST", tmp_path / "MNIST")
        fetch("mnist", tmp_path)
        assert len(staging_folders(tmp_path)) == 1  # in use: left alone
    finally:
        kill_nine(fetching_process)
    assert len(staging_folders(tmp_path)) == 1  # the kill left it behind
    fetch("mnist", tmp_path)
    assert staging_folders(tmp_path) == []


def write_and_hold(announce, out: str) -> None:
    """An image folder written slowly: one image, then a wait."""
    save = Image.Image.save

    def save_and_hold(image, *arguments, **options):
        save(image, *arguments, **options)
        announce()
        time.sleep(120)

    Image.Image.save = save_and_hold
    write_image_folder(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), out)


def test_a_subset_folder_a_kill_left_half_written_is_removed_by_the_next_call_but_not_while_its_write_runs(tmp_path):
    out = tmp_path / "subset"
    images, labels = torch.zeros(4, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1, 0, 1])
    writing = start_and_hold_in_staging(write_and_hold, str(out))
    try:
        write_image_folder(images, labels, out)  # the same folder, at the same time
        assert len(list(tmp_path.glob(".subset.*"))) == 1  # the other write's staging folder: left alone
    finally:
        kill_nine(writing)
    with pytest.raises(ValueError, match="already exists"):
        write_image_folder(images, labels, out)
    assert list(tmp_path.glob(".subset.*")) == []
