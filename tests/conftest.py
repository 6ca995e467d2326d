"""Shared fixtures and helpers: tiny image sets of several shapes (nothing here assumes 28×28), checkpoint doctoring."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def stops_after(calls: int, function):
    """``function``, made to stop the process (a KeyboardInterrupt, as a kill would) when called after ``calls`` calls."""
    made = []

    def counted(*args, **kwargs):
        if len(made) == calls:
            raise KeyboardInterrupt
        made.append(1)
        return function(*args, **kwargs)

    return counted


def load_benchmark(name: str):
    """The script benchmarks/NAME.py as a module, registered under NAME (its dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def blob_images(count: int, shape=(1, 16, 16), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey images of a bright square at one of four places (the label), plus noise: easy to learn."""
    generator = torch.Generator().manual_seed(seed)
    channels, height, width = shape
    labels = torch.randint(0, 4, (count,), generator=generator)
    images = 0.1 * torch.rand(count, channels, height, width, generator=generator)
    for index, label in enumerate(labels.tolist()):
        top, left = (label // 2) * height // 2, (label % 2) * width // 2
        images[index, :, top:top + height // 2, left:left + width // 2] += 0.8
    return (images.clamp(0, 1) * 255).round() / 255, labels


def write_folder(root: Path, count: int = 12, size: tuple[int, int] = (16, 16)) -> Path:
    """``count`` grey blob images saved as an ImageFolder under ``root``: one subfolder per class, PNG files."""
    images, labels = blob_images(count, shape=(1, *size))
    for index, (image, label) in enumerate(zip(images, labels.tolist())):
        (root / f"class{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray((image[0] * 255).byte().numpy(), mode="L").save(root / f"class{label}" / f"{index}.png")
    return root


@pytest.fixture
def tiny_data():
    images, labels = blob_images(300)
    val_images, val_labels = blob_images(60, seed=1)
    return TensorDataset(images, labels), TensorDataset(val_images, val_labels)


@pytest.fixture
def mnist_root(tmp_path):
    """A data root holding a private copy of the fetched MNIST raw files, free to damage."""
    from exaug.data import fetch

    shutil.copytree(fetch("mnist") / "MNIST", tmp_path / "MNIST")
    return tmp_path


def mnist_raw(root: Path, name: str) -> Path:
    """The raw file ``name`` of MNIST under the data root ``root``."""
    return root / "MNIST" / "raw" / name


@pytest.fixture(scope="session")
def tiny_generator_dir(tmp_path_factory):
    """A small exemplar-prior generator for 1×16×16 images, saved as a bundle (untrained weights suffice)."""
    from exaug import ExemplarVAE, ModelConfig, save_generator

    torch.manual_seed(0)
    model = ExemplarVAE(ModelConfig(input_shape=(1, 16, 16), hidden_dim=32, latent_dim=4))
    images, labels = blob_images(64)
    model.set_exemplars(images, labels)
    directory = tmp_path_factory.mktemp("generator")
    save_generator(model, directory)
    return directory


def plant_foreign_random_stream(checkpoint, stream: str, saved_on: str | None) -> None:
    """Rewrite ``checkpoint`` so that its ``stream`` random state comes from another device kind: a
    CUDA generator's 16-byte state, recorded under ``{stream}_device`` as ``saved_on`` (None: not
    recorded, as in checkpoints written before the device kind was)."""
    state = torch.load(checkpoint, weights_only=True)
    state[stream] = torch.zeros(16, dtype=torch.uint8)
    if saved_on is None:
        state.pop(f"{stream}_device", None)
    else:
        state[f"{stream}_device"] = saved_on
    torch.save(state, checkpoint)
