"""Hostile inputs end in one line naming the problem and the fix (issue 26, part B): image files PIL cannot
read, a one-class folder for a classifier, options out of range, damaged result files, and labels or images
of the wrong type for the batch-level plugins."""

import struct
import zlib

import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader, TensorDataset

from exaug.cli.main import main
from exaug.cli.options import ImageFileError, open_dataset
from test_cli_errors import CLASSIFIER, one_line_error, write_folder


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with a valid CRC, so ``verify()`` accepts it whatever its body holds."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def grey_png(width: int, height: int, stream: bytes) -> bytes:
    """A grey 8-bit PNG of the given size whose single IDAT chunk holds ``stream``."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", stream) + png_chunk(b"IEND", b"")


HOSTILE_PNGS = {
    # a header claiming 20000×20000 pixels: PIL refuses it as a decompression bomb
    "bomb": (grey_png(20000, 20000, zlib.compress(b"\0" * 64)), "decompression bomb"),
    # valid chunks and CRCs around a zlib stream that is garbage: passes verify(), fails to decode
    "garbage stream": (grey_png(16, 16, b"\x78\x9c not a deflate stream"), "broken data stream"),
}


@pytest.mark.parametrize("kind", HOSTILE_PNGS)
@pytest.mark.parametrize("workers", ["0", "2"])
def test_an_image_pil_cannot_decode_is_one_line_naming_the_file(tmp_path, kind, workers):
    folder = write_folder(tmp_path / "images")
    bad = next((folder / "class0").iterdir())
    content, says = HOSTILE_PNGS[kind]
    bad.write_bytes(content)
    result = CliRunner().invoke(main, [*CLASSIFIER, "--workers", workers, "--dataset", str(folder),
                                       "--out", str(tmp_path / "run")])
    one_line_error(result, f"{bad} cannot be read as an image", says, "remove or replace it")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", HOSTILE_PNGS)
@pytest.mark.parametrize("workers", [0, 2])
def test_an_image_damaged_after_the_folder_was_opened_is_named_in_one_line_even_from_a_worker(tmp_path, kind,
                                                                                             workers):
    folder = write_folder(tmp_path / "images")
    dataset = open_dataset(str(folder), "trainval", None)
    bad = next((folder / "class0").iterdir())
    bad.write_bytes(HOSTILE_PNGS[kind][0])
    with pytest.raises(ImageFileError) as caught:
        list(DataLoader(dataset, batch_size=4, num_workers=workers))
    message = str(caught.value)
    assert message.startswith(f"{bad} cannot be read as an image") and "\n" not in message


def one_class_folder(root):
    """A folder whose images all sit in one class subfolder."""
    folder = write_folder(root)
    for path in list(folder.rglob("*.png")):
        (folder / "class0").mkdir(exist_ok=True)
        path.rename(folder / "class0" / f"{path.parent.name}-{path.name}")
    for empty in [path for path in folder.iterdir() if not any(path.iterdir())]:
        empty.rmdir()
    return folder


def test_a_classifier_on_a_one_class_folder_is_refused_in_one_line(tmp_path):
    folder = one_class_folder(tmp_path / "images")
    result = CliRunner().invoke(main, [*CLASSIFIER, "--dataset", str(folder), "--out", str(tmp_path / "run")])
    one_line_error(result, "one class only", "a classifier needs at least 2", "one subfolder per class")
    assert not (tmp_path / "run").exists()


def test_fit_classifier_refuses_labels_of_one_class(tiny_data):
    from exaug.classifiers import ClassifierConfig, fit_classifier

    train, test = tiny_data
    images, labels = train.tensors
    with pytest.raises(ValueError, match=r"one class only \(label 3\)"):
        fit_classifier(TensorDataset(images, torch.full_like(labels, 3)), test,
                       ClassifierConfig(hidden=(8,), epochs=1, workers=0), progress=False)


def test_a_generator_trains_on_a_one_class_folder(tmp_path):
    folder = one_class_folder(tmp_path / "images")
    result = CliRunner().invoke(main, ["fit-generator", "--dataset", str(folder), "--channels", "1", "--epochs", "1",
                                       "--warmup-epochs", "1", "--hidden-dim", "8", "--latent-dim", "2",
                                       "--no-progress", "--out", str(tmp_path / "gen")])
    assert result.exit_code == 0, result.output
