"""Every problem a user can fix ends in one line that names it and the fix, with no traceback (issue 15 §3);
``exaug --debug`` shows the traceback instead."""

import errno
import os
import shutil

import pytest
import torch
from click.testing import CliRunner

from conftest import write_folder
from exaug.cli.main import main

CLASSIFIER = ["fit-classifier", "--generator", "none", "--hidden", "8", "--epochs", "1", "--seeds", "1",
              "--workers", "0", "--no-progress"]


def one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.output.startswith("Error: ")
    for fragment in fragments:
        assert fragment in result.output, result.output


class Planted:
    """A pickle that would write a file when unpickled: what an attacker plants as a checkpoint."""

    def __init__(self, witness):
        self.witness = witness

    def __reduce__(self):
        return (open, (str(self.witness), "w"))


@pytest.mark.parametrize("plant", ["damaged", "code"])
def test_a_planted_or_damaged_classifier_checkpoint_is_one_line_never_run_and_left_alone(tmp_path, plant):
    folder = write_folder(tmp_path / "images")
    checkpoint = tmp_path / "run" / "seed0" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    if plant == "code":
        torch.save({"epoch": Planted(tmp_path / "witness")}, checkpoint)
    else:
        checkpoint.write_bytes(b"PK\x03\x04 damaged")
    before = checkpoint.read_bytes()
    result = CliRunner().invoke(main, [*CLASSIFIER, "--dataset", str(folder), "--out", str(tmp_path / "run")])
    one_line_error(result, "checkpoint.pt cannot be read as a checkpoint", "move it away")
    assert "weights_only" not in result.output  # torch's advice to load it unsafely is not passed on
    assert checkpoint.read_bytes() == before and not (tmp_path / "witness").exists()


def test_a_file_in_an_image_folder_that_is_not_an_image_is_named(tmp_path):
    folder = write_folder(tmp_path / "images")
    bad = next((folder / "class0").iterdir())
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    result = CliRunner().invoke(main, [*CLASSIFIER, "--dataset", str(folder), "--out", str(tmp_path / "run")])
    one_line_error(result, f"{bad} cannot be read as an image", "remove or replace it")


def test_a_class_folder_without_images_is_named(tmp_path):
    folder = write_folder(tmp_path / "images")
    (folder / "empty-class").mkdir()
    result = CliRunner().invoke(main, [*CLASSIFIER, "--dataset", str(folder), "--out", str(tmp_path / "run")])
    one_line_error(result, "empty-class", "remove empty class folders")


def test_images_of_mixed_sizes_are_named_with_their_sizes(tmp_path):
    folder = write_folder(tmp_path / "images")
    write_folder(tmp_path / "larger", count=2, size=(20, 20))
    for path in (tmp_path / "larger").rglob("*.png"):
        shutil.copy(path, folder / path.parent.name / f"larger-{path.name}")
    result = CliRunner().invoke(main, [*CLASSIFIER, "--dataset", str(folder), "--out", str(tmp_path / "run")])
    one_line_error(result, "images of different sizes", "16×16", "20×20", "resize them")


@pytest.mark.parametrize("command, says", [(CLASSIFIER, "Not a directory"),
                                           (["sample", "--generator", "mnist", "--count", "2"], "File exists")])
def test_an_out_path_under_a_file_says_so(tmp_path, command, says):
    folder = write_folder(tmp_path / "images")
    (tmp_path / "afile").write_text("mine")
    out = tmp_path / "afile" / ("sub.png" if command[0] == "sample" else "sub")
    extra = ["--dataset", str(folder)] if command[0] != "sample" else []
    result = CliRunner().invoke(main, [*command, *extra, "--out", str(out)])
    one_line_error(result, says, "choose another path")
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_read_only_output_says_so(tmp_path, monkeypatch):
    folder = write_folder(tmp_path / "images")
    real_mkdir = os.mkdir

    def read_only(path, *args, **kwargs):  # what a read-only mount answers (root ignores permission bits)
        if str(path).startswith(str(tmp_path / "mount")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", read_only)
    result = CliRunner().invoke(main, [*CLASSIFIER, "--dataset", str(folder), "--out", str(tmp_path / "mount" / "run")])
    one_line_error(result, "Read-only file system", "choose a writable place")


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    folder = write_folder(tmp_path / "images")
    checkpoint = tmp_path / "run" / "seed0" / "checkpoint.pt"
    real_save, saved = torch.save, []

    def disk_full_at_the_second_save(*args, **kwargs):  # in torch's words for a write that ran out of space
        if saved:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4160 vs 4096")
        real_save(*args, **kwargs)
        saved.append(True)

    monkeypatch.setattr(torch, "save", disk_full_at_the_second_save)
    result = CliRunner().invoke(main, [*CLASSIFIER, "--epochs", "2", "--dataset", str(folder),
                                       "--out", str(tmp_path / "run")])
    one_line_error(result, "checkpoint.pt failed", "is the disk full", "run the same command again")
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1 and not list(checkpoint.parent.glob(".*.tmp"))


def test_debug_shows_the_traceback_instead(tmp_path):
    folder = write_folder(tmp_path / "images")
    (folder / "empty-class").mkdir()
    result = CliRunner().invoke(main, ["--debug", *CLASSIFIER, "--dataset", str(folder), "--out", str(tmp_path / "run")])
    assert isinstance(result.exception, ValueError) and "empty-class" in str(result.exception)


def test_a_data_set_no_source_can_give_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    from exaug.data import fetching

    def offline(*args):
        raise fetching.FetchError("Fashion-MNIST could not be downloaded; install it with "
                                  "`sudo apt-get install -y dataset-fashion-mnist`")

    monkeypatch.setattr(fetching, "_fetch_into", offline)
    result = CliRunner().invoke(main, ["data", "fetch", "fashion-mnist", "--root", str(tmp_path)])
    one_line_error(result, "could not be downloaded", "apt-get install")
