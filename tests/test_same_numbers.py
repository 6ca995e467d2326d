"""Refactors change no number: small generator and classifier runs, and the plugin's twins, match the
recorded digests bit for bit (recorded before the restructure of issue 16 §4, and again when issue 17 (a)
changed the default kNN query; see docs/architecture.md).

The golden file holds sha256 digests of weights, twins and batches, and the exact training histories
(wall-clock seconds aside). Float results can differ between CPU instruction sets, so the check runs where
the golden file was recorded (same torch version and CPU capability) and is skipped, saying why, elsewhere.
To record again after a change that is meant to move the numbers: ``EXAUG_RECORD_GOLDEN=1 pytest
tests/test_same_numbers.py``, and say in the commit why they moved.
"""

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from exaug import ExemplarAugment, ExemplarCollate, ModelConfig, TrainConfig, fit_generator
from exaug.classifiers import ClassifierConfig, fit_classifier

from conftest import blob_images

GOLDEN = Path(__file__).parent / "golden" / "same_numbers.json"
RECORDING = os.environ.get("EXAUG_RECORD_GOLDEN") == "1"


def platform_key() -> dict[str, str]:
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def digest(tensors: dict[str, torch.Tensor] | list[torch.Tensor]) -> str:
    items = tensors.items() if isinstance(tensors, dict) else enumerate(tensors)
    sha = hashlib.sha256()
    for name, tensor in items:
        sha.update(str(name).encode())
        sha.update(str(tensor.dtype).encode())
        sha.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def without_seconds(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in record.items() if key != "seconds"} for record in history]


def numbers_now(tmp_path: Path) -> dict:
    """Every number the golden file pins, computed by the code as it is now."""
    torch.set_num_threads(1)
    images, labels = blob_images(160)
    val_images, val_labels = blob_images(40, seed=1)
    train, val = TensorDataset(images, labels), TensorDataset(val_images, val_labels)
    generator = fit_generator(
        # gradient_neighbours=None: all k, the recipe the digests were recorded under (the default is now 3)
        train, val, TrainConfig(epochs=3, batch_size=32, warmup_epochs=2, exemplar_search="knn", knn=5,
                                gradient_neighbours=None, exemplar_fraction=0.5, device="cpu", seed=3),
        out=tmp_path / "generator", model_config=ModelConfig(hidden_dim=32, latent_dim=4), progress=False,
        log=lambda record: None)
    generator_log = [json.loads(line) for line in (tmp_path / "generator" / "train_log.jsonl").read_text().splitlines()]
    numbers = {"generator": {"weights": digest(generator.state_dict()), "history": without_seconds(generator_log)}}

    for name, bundle in (("plain", None), ("mixed", tmp_path / "generator")):
        result = fit_classifier(train, val, ClassifierConfig(hidden=(32, 32), epochs=2, batch_size=40, workers=0,
                                                             device="cpu", seed=5, lam=0.6),
                                generator=bundle, out=tmp_path / f"classifier-{name}", progress=False,
                                log=lambda record: None)
        weights = torch.load(tmp_path / f"classifier-{name}" / "checkpoint.pt", weights_only=True)["model"]
        numbers[f"classifier-{name}"] = {"weights": digest(weights), "history": without_seconds(result["history"])}

    augment = ExemplarAugment(generator, p=0.5, rng=torch.Generator().manual_seed(7))
    uint8_images = (images[:8] * 255).round().to(torch.uint8)
    numbers["augment"] = {"float": digest([augment(image) for image in images[:8]]),
                          "uint8_batch": digest([augment(uint8_images)]),
                          "twins": digest([augment.twins(images[:8])])}
    collate = ExemplarCollate(ExemplarAugment(generator, p=0.5, rng=torch.Generator().manual_seed(8)), append=True)
    batch = collate([(images[i], int(labels[i])) for i in range(16)])
    numbers["collate_append"] = digest(list(batch))
    return numbers


def test_refactors_leave_every_number_of_small_runs_bit_identical(tmp_path):
    if RECORDING:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps({"platform": platform_key(), "numbers": numbers_now(tmp_path)}, indent=1) + "\n")
        pytest.skip(f"recorded {GOLDEN}")
    golden = json.loads(GOLDEN.read_text())
    if golden["platform"] != platform_key():
        pytest.skip(f"golden numbers were recorded under {golden['platform']}, this is {platform_key()}")
    now = numbers_now(tmp_path)
    for part, expected in golden["numbers"].items():
        assert pinned(now[part], expected) == expected, f"{part} changed"


def pinned(now: object, expected: object) -> object:
    """``now`` with the fields of training histories the golden file does not hold left out: a field added to
    the epoch records since (a new diagnostic) is no number it pins, while every field it holds must match."""
    if not (isinstance(now, dict) and isinstance(expected, dict) and "history" in expected):
        return now
    history = [{key: record.get(key) for key in golden} for record, golden in zip(now["history"], expected["history"])]
    return {**now, "history": history + now["history"][len(history):]}
