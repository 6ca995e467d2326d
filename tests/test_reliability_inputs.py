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
from conftest import write_folder
from test_cli_errors import CLASSIFIER, one_line_error


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


RECIPE = ["--hidden", "8", "--epochs", "1", "--workers", "0", "--no-progress"]  # a classifier trained in a second


def usage_error(result, *fragments):
    """click's refusal of a bad option: exit code 2, its message naming the fix, no traceback."""
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


@pytest.mark.parametrize("args, says", [
    (["--hidden", "--epochs", "1"], "--hidden takes one or more values and got none before --epochs"),
    (["--epochs", "1", "--hidden"], "--hidden takes one or more values and got none at the end"),
])
def test_hidden_without_a_value_is_refused_not_dropped(tmp_path, args, says):
    folder = write_folder(tmp_path / "images")
    result = CliRunner().invoke(main, ["fit-classifier", "--dataset", str(folder), "--generator", "none",
                                       "--seeds", "1", "--workers", "0", "--no-progress",
                                       "--out", str(tmp_path / "run"), *args])
    usage_error(result, says, "e.g. --hidden 1024 1024")
    assert not (tmp_path / "run").exists()


def test_a_negative_hidden_width_reaches_the_config_that_names_it(tmp_path):
    folder = write_folder(tmp_path / "images")
    result = CliRunner().invoke(main, ["fit-classifier", "--dataset", str(folder), "--generator", "none",
                                       "--hidden", "-5", "--out", str(tmp_path / "run")])
    one_line_error(result, "hidden=(-5,) must list at least one positive layer width")


def test_lams_without_a_value_is_refused_not_dropped(tmp_path, tiny_generator_dir):
    folder = write_folder(tmp_path / "images")
    result = CliRunner().invoke(main, ["lambda-sweep", *RECIPE, "--dataset", str(folder), "--generator",
                                       str(tiny_generator_dir), "--out", str(tmp_path / "sweep"), "--lams"])
    usage_error(result, "--lams takes one or more values and got none at the end", "e.g. --lams 0.2 0.4")


@pytest.mark.parametrize("extra", [["--count", "100000000"],
                                   ["--mode", "exemplars", "--count", "5000", "--per-row", "5000"]])
def test_a_sample_grid_too_large_for_memory_is_refused_up_front(tmp_path, tiny_generator_dir, extra):
    result = CliRunner().invoke(main, ["sample", "--generator", str(tiny_generator_dir), *extra,
                                       "--out", str(tmp_path / "grid.png")])
    one_line_error(result, "images of 1×16×16", "at most 262144", "lower them")
    assert not (tmp_path / "grid.png").exists()


@pytest.mark.parametrize("command", [["fit-classifier", "--first-seed", str(2**70)],
                                     ["lambda-sweep", "--seed", str(2**70)],
                                     ["sample", "--seed", str(2**70)],
                                     ["sample", "--seed", "-1"]])
def test_a_seed_torch_cannot_take_is_refused_naming_the_range(tmp_path, tiny_generator_dir, command):
    folder = write_folder(tmp_path / "images")
    recipe = [] if command[0] == "sample" else [*RECIPE, "--dataset", str(folder)]
    result = CliRunner().invoke(main, [*command, *recipe, "--generator", str(tiny_generator_dir),
                                       "--out", str(tmp_path / "out.png")])
    usage_error(result, "seed", "is not in the range 0<=x<=9223372036854775807")


def test_seeds_running_past_the_largest_are_refused_before_any_data_is_read(tmp_path):
    folder = write_folder(tmp_path / "images")
    result = CliRunner().invoke(main, [*CLASSIFIER, "--dataset", str(folder), "--first-seed", str(2**63 - 1),
                                       "--seeds", "2", "--out", str(tmp_path / "run")])
    one_line_error(result, "seed=9223372036854775808 must lie in [0, 2**63 - 1]")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("content, says", [
    ('{"dataset": "mnist", "model": "mlp-1024x1024", "generator": "mnist"', "not JSON"),
    ('{"dataset": "mnist", "model": "mlp-1024x1024", "generator": "mnist"}', "no val_error"),
    ('{"dataset": "mnist", "model": "mlp", "generator": "mnist", "val_error": {"0.4": "low"}}', "'0.4': 'low'"),
    ('[1, 2]', "not a JSON object"),
])
def test_lambda_plot_of_a_damaged_sweep_is_one_line_naming_the_file(tmp_path, content, says):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(content)
    result = CliRunner().invoke(main, ["lambda-plot", str(sweep), "--out", str(tmp_path / "plot.png")])
    one_line_error(result, f"{sweep / 'sweep.json'} is not a sweep exaug lambda-sweep wrote", says,
                   "run that lambda-sweep again")
    assert not (tmp_path / "plot.png").exists()


@pytest.fixture
def folder_trained_bundle(tmp_path, tiny_generator_dir):
    """A bundle whose training run recorded an image folder as its dataset, as fit-generator on a folder does."""
    from exaug import TrainConfig, load_generator, save_generator

    folder = write_folder(tmp_path / "images")
    return folder, save_generator(load_generator(tiny_generator_dir), tmp_path / "bundle",
                                  TrainConfig(extra={"dataset": str(folder)}))


def test_a_folder_trained_bundle_exported_without_images_gives_advice_that_can_help(tmp_path, folder_trained_bundle):
    folder, bundle = folder_trained_bundle
    slim = tmp_path / "slim"
    assert CliRunner().invoke(main, ["export", "--generator", str(bundle), "--out", str(slim), "--no-images"]).exit_code == 0
    plates = CliRunner().invoke(main, ["sample", "--generator", str(slim), "--mode", "exemplars", "--count", "2",
                                       "--out", str(tmp_path / "plates.png")])
    copy = CliRunner().invoke(main, ["export", "--generator", str(slim), "--out", str(tmp_path / "copy")])
    for result in (plates, copy):
        one_line_error(result, f"was trained on {folder}", "use the bundle fit-generator wrote",
                       "exported from it without --no-images")
        assert "exaug data fetch" not in result.output  # it cannot bring back a folder's images


class Pairs(torch.utils.data.Dataset):
    """(image, label) pairs exactly as given: what a user's own dataset may hand a DataLoader."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        return self.pairs[index]


@pytest.mark.parametrize("pairs, error, says", [
    (lambda images, labels: [(image, "cat") for image in images], ValueError,
     r"labels must be numbers.*map class names to indices"),
    (lambda images, labels: [(image.tolist(), label) for image, label in zip(images, labels.tolist())], TypeError,
     r"images as one tensor B×C×H×W, got a list.*v2\.ToImage\(\)"),
], ids=["class names as labels", "list images"])
def test_mixed_batch_loader_names_labels_or_images_of_the_wrong_type(tiny_generator_dir, tiny_data, pairs, error,
                                                                     says):
    from exaug import MixedBatchLoader

    images, labels = tiny_data[0].tensors
    loader = DataLoader(Pairs(pairs(images[:8], labels[:8])), batch_size=4)
    with pytest.raises(error, match=says):
        next(iter(MixedBatchLoader(loader, tiny_generator_dir)))


def test_mixed_batch_loader_refuses_a_label_count_that_is_not_one_per_image(tiny_generator_dir, tiny_data):
    from exaug import MixedBatchLoader

    images, labels = tiny_data[0].tensors
    with pytest.raises(ValueError, match=r"there are 4 images but labels of shape \(1,\)"):
        next(iter(MixedBatchLoader([(images[:4], labels[:1])], tiny_generator_dir)))


def test_exemplar_collate_names_class_names_given_as_labels(tiny_generator_dir, tiny_data):
    from exaug import ExemplarAugment, ExemplarCollate

    images, _ = tiny_data[0].tensors
    collate = ExemplarCollate(ExemplarAugment.from_pretrained(tiny_generator_dir, p=1.0))
    loader = DataLoader(Pairs([(image, "cat") for image in images[:8]]), batch_size=4, collate_fn=collate)
    with pytest.raises(ValueError, match=r"labels must be numbers, one per image"):
        next(iter(loader))
