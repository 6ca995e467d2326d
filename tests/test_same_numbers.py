"""Refactors change no number: small generator and classifier runs, and the plugin's twins, match the
recorded digests bit for bit (recorded before the restructure of issue 16 §4, and again when issue 17 (a)
changed the default kNN query; see docs/architecture.md).

The golden file holds sha256 digests of weights, twins and batches, and the exact training histories
(wall-clock seconds aside). Float sums round differently on another processor, even one that torch runs with
the same kernels (two machines reporting AVX512 differed by 3e-7 relative), so the bit-for-bit check runs
where the golden file was recorded (same torch, CPU capability and processor) and is skipped, saying why,
elsewhere; on any machine the training histories must agree with it to float rounding.
To record again after a change that is meant to move the numbers, or on a new machine to pin its bits:
``EXAUG_RECORD_GOLDEN=1 pytest tests/test_same_numbers.py``, and say in the commit why.
"""

import hashlib
import json
import math
import os
import platform
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from exaug import ExemplarAugment, ExemplarCollate, ModelConfig, TrainConfig, fit_generator
from exaug.classifiers import ClassifierConfig, fit_classifier

from conftest import blob_images

GOLDEN = Path(__file__).parent / "golden" / "same_numbers.json"
RECORDING = os.environ.get("EXAUG_RECORD_GOLDEN") == "1"


# Across machines the histories' floats may differ by rounding (3e-7 relative seen); a change of the code that
# moves a number by more than this is caught on any machine.
ROUNDING = 1e-5


def platform_key() -> dict[str, str]:
    """What decides the bits of a float result here: torch's build, the kernels it picked, and the processor."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "processor": processor()}


def processor() -> str:
    """The processor's vendor, family, model and stepping, and a digest of its feature flags (Linux's
    /proc/cpuinfo; elsewhere what the platform module says)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in cpuinfo.read_text().split("\n\n")[0].splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = hashlib.sha256(" ".join(sorted(fields.get("flags", "").split())).encode()).hexdigest()[:12]
    return " ".join(fields.get(key, "?") for key in ("vendor_id", "cpu family", "model", "stepping")) + f" flags {flags}"


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


@pytest.fixture(scope="module")
def now(tmp_path_factory) -> dict:
    return numbers_now(tmp_path_factory.mktemp("same-numbers"))


def test_refactors_leave_every_number_of_small_runs_bit_identical(now):
    if RECORDING:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps({"platform": platform_key(), "numbers": now}, indent=1) + "\n")
        pytest.skip(f"recorded {GOLDEN}")
    golden = json.loads(GOLDEN.read_text())
    if golden["platform"] != platform_key():
        pytest.skip(f"golden numbers were recorded under {golden['platform']}, this is {platform_key()}")
    for part, expected in golden["numbers"].items():
        assert pinned(now[part], expected) == expected, f"{part} changed"


def test_on_any_machine_the_training_histories_match_the_golden_ones_to_float_rounding(now):
    golden = json.loads(GOLDEN.read_text())["numbers"]
    for part, expected in golden.items():
        if isinstance(expected, dict) and "history" in expected:
            history = pinned(now[part], expected)["history"]
            assert len(history) == len(expected["history"]), f"{part}: another number of epochs"
            for epoch, (record, recorded) in enumerate(zip(history, expected["history"]), start=1):
                for key, value in recorded.items():
                    assert close(record[key], value), f"{part}, epoch {epoch}: {key} is {record[key]}, recorded {value}"


def close(value: object, recorded: object) -> bool:
    if isinstance(recorded, float) and isinstance(value, float):
        return math.isclose(value, recorded, rel_tol=ROUNDING, abs_tol=ROUNDING)
    return value == recorded


def pinned(now: object, expected: object) -> object:
    """``now`` with the fields of training histories the golden file does not hold left out: a field added to
    the epoch records since (a new diagnostic) is no number it pins, while every field it holds must match."""
    if not (isinstance(now, dict) and isinstance(expected, dict) and "history" in expected):
        return now
    history = [{key: record.get(key) for key in golden} for record, golden in zip(now["history"], expected["history"])]
    return {**now, "history": history + now["history"][len(history):]}


def test_float_rounding_is_told_apart_from_a_changed_number():
    assert close(199.7482666015625, 199.7482696533203)  # two machines' epoch-1 loss, the same code
    assert not close(199.76, 199.7482696533203)
    assert not close(3, 4) and close("knn", "knn")
