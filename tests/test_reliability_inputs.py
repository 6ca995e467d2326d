"""Hostile inputs end in one line naming the problem and the fix (issue 26, part B): image files PIL cannot
read, a one-class folder for a classifier, options out of range, damaged result files, and labels or images
of the wrong type for the batch-level plugins."""

import struct
import zlib

import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

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
