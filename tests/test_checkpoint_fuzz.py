"""Any file at a run's checkpoint path either resumes or is refused in one line naming it, never a traceback; and a
checkpoint changed on disk is refused rather than resumed from. Both trainers, real checkpoints of tiny runs."""

import io
import shutil
import struct
import zipfile

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

from conftest import blob_images
from exaug import ModelConfig, TrainConfig, fit_generator
from exaug.checkpoint import CHECKPOINT_FILE, CheckpointError, read_checkpoint, save_checkpoint
from exaug.classifiers import ClassifierConfig, fit_classifier

TRAINERS = ("generator", "classifier")


def data(count, seed):
    images, labels = blob_images(count, shape=(1, 8, 8), seed=seed)
    return TensorDataset(images, labels)


def run(trainer: str, out) -> None:
    """One epoch of a tiny run into ``out``: the first call trains it, a second resumes its checkpoint."""
    if trainer == "generator":
        fit_generator(data(40, 0), data(10, 1), TrainConfig(epochs=1, batch_size=20, warmup_epochs=1), out,
                      model_config=ModelConfig(hidden_dim=8, latent_dim=2, num_pseudo_inputs=4), progress=False,
                      log=lambda record: None)
    else:
        fit_classifier(data(40, 0), data(10, 1), ClassifierConfig(hidden=(8,), epochs=1, batch_size=20, workers=0,
                                                                  device="cpu"),
                       out=out, progress=False, log=lambda record: None)


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """A finished one-epoch run of each trainer, to be copied before each plant."""
    runs = {}
    for trainer in TRAINERS:
        runs[trainer] = tmp_path_factory.mktemp(trainer)
        run(trainer, runs[trainer])
    return runs


def copy_of(finished_runs, trainer, tmp_path):
    folder = tmp_path / f"{trainer}-copy"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(finished_runs[trainer], folder)
    return folder


def resumes_or_refuses_in_one_line(trainer, folder) -> bool:
    """Resume the run in ``folder``: True if it resumed; False if refused in one line naming the checkpoint,
    which is left as it was. Anything else (a traceback of another type) fails the test."""
    before = (folder / CHECKPOINT_FILE).read_bytes()
    try:
        run(trainer, folder)
    except ValueError as error:
        message = str(error)
        assert "\n" not in message and str(folder) in message, message
        assert (folder / CHECKPOINT_FILE).read_bytes() == before
        return False
    return True


def saved_state(path) -> dict:
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize("planted, message", [
    ([1, 2, 3], "holds a list without a run's identity"),
    (torch.zeros(3), "holds a Tensor without a run's identity"),
    ({"identity": {}, "epoch": 1}, "holds 'model' as NoneType, where a checkpoint has dict"),
])
def test_a_well_formed_checkpoint_of_the_wrong_structure_is_one_clear_line(finished_runs, tmp_path, trainer,
                                                                           planted, message):
    folder = copy_of(finished_runs, trainer, tmp_path)
    torch.save(planted, folder / CHECKPOINT_FILE)
    with pytest.raises(CheckpointError, match=message):
        run(trainer, folder)


@pytest.mark.parametrize("trainer", TRAINERS)
def test_a_checkpoint_without_its_model_but_with_the_runs_identity_is_one_clear_line(finished_runs, tmp_path, trainer):
    folder = copy_of(finished_runs, trainer, tmp_path)
    state = saved_state(folder / CHECKPOINT_FILE)
    del state["model"]
    torch.save(state, folder / CHECKPOINT_FILE)
    assert not resumes_or_refuses_in_one_line(trainer, folder)


def record_data_offset(content: bytes, name: str) -> int:
    """Where the bytes of zip record ``name`` start in ``content`` (after its local header)."""
    info = zipfile.ZipFile(io.BytesIO(content)).getinfo(name)
    name_length, extra_length = struct.unpack("<HH", content[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + name_length + extra_length


def largest_tensor_record(content: bytes) -> str:
    records = [info for info in zipfile.ZipFile(io.BytesIO(content)).infolist() if "/data/" in info.filename]
    return max(records, key=lambda info: info.file_size).filename


@pytest.mark.parametrize("trainer", TRAINERS)
def test_one_byte_flipped_in_a_checkpoints_weights_is_refused_not_resumed_from(finished_runs, tmp_path, trainer):
    folder = copy_of(finished_runs, trainer, tmp_path)
    content = bytearray((folder / CHECKPOINT_FILE).read_bytes())
    content[record_data_offset(bytes(content), largest_tensor_record(bytes(content))) + 5] ^= 0x10
    (folder / CHECKPOINT_FILE).write_bytes(bytes(content))
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt is damaged: its record .*/data/\d+ does not match the "
                                              r"CRC-32 saved with it.*move it away"):
        run(trainer, folder)


@pytest.mark.parametrize("trainer", TRAINERS)
def test_a_checkpoint_written_without_crc32s_still_resumes(finished_runs, tmp_path, trainer):
    folder = copy_of(finished_runs, trainer, tmp_path)
    state = saved_state(folder / CHECKPOINT_FILE)
    torch.serialization.set_crc32_options(False)
    try:
        torch.save(state, folder / CHECKPOINT_FILE)
    finally:
        torch.serialization.set_crc32_options(True)
    assert {info.CRC for info in zipfile.ZipFile(folder / CHECKPOINT_FILE).infolist()} == {0}
    assert resumes_or_refuses_in_one_line(trainer, folder)


def test_checkpoints_carry_crc32s_even_where_torch_was_told_not_to_write_them(tmp_path):
    torch.serialization.set_crc32_options(False)
    try:
        save_checkpoint(tmp_path / CHECKPOINT_FILE, {"run": 1}, {"weights": torch.arange(100.0)})
    finally:
        torch.serialization.set_crc32_options(True)
    assert 0 not in {info.CRC for info in zipfile.ZipFile(tmp_path / CHECKPOINT_FILE).infolist()}


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats() | st.text(max_size=6)
    | st.lists(st.integers(0, 255), max_size=8).map(lambda values: torch.tensor(values, dtype=torch.uint8)),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6)


@FUZZ
@given(trainer=st.sampled_from(TRAINERS), content=st.binary(max_size=400))
def test_any_bytes_at_the_checkpoint_path_resume_or_give_one_line(finished_runs, tmp_path, trainer, content):
    folder = copy_of(finished_runs, trainer, tmp_path)
    (folder / CHECKPOINT_FILE).write_bytes(content)
    resumes_or_refuses_in_one_line(trainer, folder)


@FUZZ
@given(trainer=st.sampled_from(TRAINERS), value=VALUES)
def test_any_saved_structure_at_the_checkpoint_path_resumes_or_gives_one_line(finished_runs, tmp_path, trainer, value):
    folder = copy_of(finished_runs, trainer, tmp_path)
    torch.save(value, folder / CHECKPOINT_FILE)
    resumes_or_refuses_in_one_line(trainer, folder)


@FUZZ
@given(trainer=st.sampled_from(TRAINERS), data=st.data())
def test_any_value_at_any_key_of_a_real_checkpoint_resumes_or_gives_one_line(finished_runs, tmp_path, trainer, data):
    folder = copy_of(finished_runs, trainer, tmp_path)
    state = saved_state(folder / CHECKPOINT_FILE)
    key = data.draw(st.sampled_from(sorted(state)), label="key")
    inner = data.draw(st.sampled_from(sorted(state[key], key=str)) if isinstance(state[key], dict) and state[key]
                      else st.none(), label="inner key")
    value = data.draw(VALUES, label="value")
    if inner is None:
        state[key] = value
    else:
        state[key][inner] = value
    torch.save(state, folder / CHECKPOINT_FILE)
    resumes_or_refuses_in_one_line(trainer, folder)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trainer=st.sampled_from(TRAINERS), where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_a_flipped_bit_anywhere_is_refused_or_changes_nothing_that_is_loaded(finished_runs, tmp_path, trainer, where,
                                                                            bit):
    path = finished_runs[trainer] / CHECKPOINT_FILE
    genuine = read_checkpoint(path)
    content = bytearray(path.read_bytes())
    content[int(where * len(content))] ^= 1 << bit
    flipped = tmp_path / CHECKPOINT_FILE
    flipped.write_bytes(bytes(content))
    try:
        loaded = read_checkpoint(flipped)
    except CheckpointError as error:
        assert "\n" not in str(error) and str(flipped) in str(error)
        return
    assert same_content(loaded, genuine)


def same_content(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_content(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same_content(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)  # NaN equals itself here


def zip_field(content: bytes, signature: bytes, offset: int) -> int:
    """The position of a field ``offset`` bytes into the first zip record that starts with ``signature``."""
    return content.index(signature) + offset


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize("field, flip", [
    ((b"PK\x01\x02", 38), 0x10),  # a record's external attributes: the directory flag, which no CRC-32 covers
    ((b"PK\x06\x07", 16), 0x02),  # the zip64 locator's disk count: an archive that claims to span disks
])
def test_a_flip_in_the_archives_bookkeeping_is_refused_in_one_line(finished_runs, tmp_path, trainer, field, flip):
    content = bytearray((finished_runs[trainer] / CHECKPOINT_FILE).read_bytes())
    content[zip_field(bytes(content), *field)] ^= flip
    flipped = tmp_path / CHECKPOINT_FILE
    flipped.write_bytes(bytes(content))
    with pytest.raises(CheckpointError) as refused:
        read_checkpoint(flipped)
    assert "\n" not in str(refused.value) and str(flipped) in str(refused.value)
