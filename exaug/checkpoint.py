"""Resumable-run checkpoints, shared by the generator and classifier trainers.

A checkpoint is one ``torch.save`` file written atomically, holding the run's *identity*
(its configuration and a data checksum) beside its state. A run resumes only from a
checkpoint with the same identity (settings added to the package later count as the value
older checkpoints ran under); anything else is reported, never overwritten.

Damage is caught before a run resumes: ``torch.save`` writes a zip archive with a CRC-32 of
every record, in the same file and so always consistent with it, and `read_checkpoint` checks
them all (``torch.load`` does not). A file whose records carry no CRC-32 (written with torch's
``set_crc32_options(False)``) is read unchecked. The state is then checked for the structure
each trainer needs (`checked_state`), and what torch raises when a part does not fit the live
model becomes a `CheckpointError` too (`restoring`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch

from .atomic import atomic_path

_MOVE_IT_AWAY = "move it away to start this run afresh"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or resumed here; it is left where it is."""


IDENTITY_KEY = "identity"
CHECKPOINT_FILE = "checkpoint.pt"  # a run folder's checkpoint, whichever trainer wrote it


def tensor_digest(named_tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """The sha256 of named tensors' names and bytes (a model's weights, an exemplar set), wherever they live: what a
    resumed computation checks it continues with the same numbers."""
    digest = hashlib.sha256()
    for name, tensor in named_tensors:
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike, identity: dict[str, Any], state: dict[str, Any]) -> None:
    """Atomically write ``state`` tagged with ``identity`` to ``path``."""
    with atomic_path(path) as temporary, _with_crc32():
        try:
            torch.save({IDENTITY_KEY: identity, **state}, temporary)
        except RuntimeError as error:  # how torch reports a failed write, e.g. "unexpected pos" on a full disk
            raise OSError(f"writing {path} failed ({str(error).splitlines()[0]}); is the disk full? The previous "
                          "checkpoint is intact: free some space and run the same command again") from error


@contextlib.contextmanager
def _with_crc32() -> Iterator[None]:
    """Have torch write a CRC-32 of every record, even where its global option turned them off."""
    enabled = getattr(torch.serialization, "get_crc32_options", lambda: True)()  # older torch always writes them
    if not enabled:
        torch.serialization.set_crc32_options(True)
    try:
        yield
    finally:
        if not enabled:
            torch.serialization.set_crc32_options(False)


def load_checkpoint(path: str | os.PathLike, identity: dict[str, Any],
                    added_settings: dict[str, Any] | None = None,
                    advice: dict[str, str] | None = None,
                    canonical: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                    structure: dict[str, type | tuple[type, ...]] | None = None,
                    holder: str | None = None) -> dict[str, Any]:
    """The state saved at ``path``, after checking it belongs to the run described by ``identity``.

    ``added_settings`` (nested like ``identity``) names settings introduced after older checkpoints
    were written, with the value those checkpoints ran under; a checkpoint that lacks one is read
    as holding that value, so upgrading the package does not strand runs in progress.
    ``advice`` maps a dotted setting (``"train_config.init_sha256"``) to what to do when that one
    differs; it replaces the generic advice to pick another directory when it covers every difference.
    ``canonical`` rewrites the stored identity (after ``added_settings``) into the form ``identity`` is
    written in, for checkpoints recorded before that form. ``structure`` is what `checked_state` checks.
    ``holder`` names what a refusal says holds the other work (default: "FOLDER holds a run").
    """
    path = Path(path)
    state = checked_state(read_checkpoint(path), path, structure or {})
    with restoring(path):  # a stored identity of the wrong shape fails in the code that reads it
        stored = _with_added_settings(state[IDENTITY_KEY], added_settings or {})
        if canonical is not None:
            stored = canonical(stored)
        differences = identity_differences(stored, identity)
    if differences:
        advice = advice or {}
        remedies = list(dict.fromkeys(advice[key] for key in differences if key in advice))
        if not all(key in advice for key in differences):
            remedies.append("pass another output directory, or the same settings and data to resume it")
        described = "; ".join(f"{key}: {change}" for key, change in differences.items())
        raise ValueError(f"{holder or f'{path.parent} holds a run'} with a different {described}; {'; '.join(remedies)}")
    return state


def restore_random_stream(generator: torch.Generator, saved_state: torch.Tensor, saved_on: str | None,
                          run_dir: str | os.PathLike) -> None:
    """Continue a saved random stream in ``generator``; only one of the device kind it was saved on can.

    ``saved_on`` is the device kind recorded beside the state (None in checkpoints older than that
    record). A mismatch is a ValueError naming ``--device``, not torch's RuntimeError about state sizes.
    """
    here = generator.device.type

    def refusal(where: str) -> CheckpointError:
        return CheckpointError(f"{run_dir} holds a run whose random stream was saved on {where}, and a {here} "
                               "generator cannot continue it; resume it with --device set to the device it trained on")

    if saved_on not in (None, here):
        raise refusal(saved_on)
    try:
        generator.set_state(saved_state)
    except RuntimeError as error:
        if saved_on is not None:
            raise
        raise refusal("another kind of device") from error


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Everything saved at ``path``, identity included, after checking its CRC-32s but not whose run it is."""
    path = Path(path)
    try:
        content = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read ({error.strerror}); {_MOVE_IT_AWAY}") from error
    _check_crc32(content, path)
    try:
        # Load on the CPU: random-generator states must stay CPU tensors, and load_state_dict
        # moves weights and optimiser state to wherever the live model is.
        state = torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged file
        # torch's own message may advise weights_only=False: for a planted file that would run its code.
        raise CheckpointError(f"{path} cannot be read as a checkpoint ({type(error).__name__}): it is damaged, or not "
                              f"one exaug wrote; {_MOVE_IT_AWAY}") from error
    if not isinstance(state, dict) or not isinstance(state.get(IDENTITY_KEY), dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__} without a run's identity, not a checkpoint exaug "
                              f"wrote; {_MOVE_IT_AWAY}")
    return state


def _check_crc32(content: bytes, path: Path) -> None:
    """Check every record of the zip archive ``torch.save`` wrote against the CRC-32 written with it, and that no
    record claims attributes torch never writes (a directory flag makes torch's reader skip the record's data,
    which no CRC-32 covers)."""
    try:
        if not zipfile.is_zipfile(io.BytesIO(content)):
            return  # not an archive: torch.load tells whether it is a checkpoint at all
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            records = archive.infolist()
            if all(record.CRC == 0 for record in records):
                return  # written with torch's CRC-32s turned off: nothing to check against
            altered = [record.filename for record in records
                       if record.external_attr or record.internal_attr or record.is_dir()]
            damaged = altered[0] if altered else archive.testzip()
    except Exception as error:  # zipfile raises several types for a damaged archive
        raise CheckpointError(f"{path} is damaged ({type(error).__name__}: {error}); {_MOVE_IT_AWAY}") from error
    if damaged is not None:
        raise CheckpointError(f"{path} is damaged: its record {damaged} does not match the CRC-32 saved with it, so it "
                              f"was changed on disk after it was written; {_MOVE_IT_AWAY}")


def checked_state(state: dict[str, Any], path: Path, structure: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """``state`` after checking that it holds each key of ``structure``, of the type given there."""
    for key, kind in structure.items():
        if not isinstance(state.get(key), kind):
            names = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
            raise CheckpointError(f"{path} holds {key!r} as {type(state.get(key)).__name__}, where a checkpoint has "
                                  f"{names}: it is damaged, or not one this kind of run wrote; {_MOVE_IT_AWAY}")
    return state


@contextlib.contextmanager
def restoring(path: Path) -> Iterator[None]:
    """Turn what torch raises when a saved part does not fit its live object into one `CheckpointError`."""
    try:
        yield
    except (CheckpointError, MemoryError, torch.cuda.OutOfMemoryError):  # out of memory: the checkpoint is fine
        raise
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"{path} holds a state that does not fit this run ({type(error).__name__}: "
                              f"{first_line}): it is damaged, or not one exaug wrote; {_MOVE_IT_AWAY}") from error


def identity_differences(stored: dict[str, Any], current: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Each setting that differs, by dotted name: ``{"train_config.knn": "10 → 3"}`` (nested dicts are searched)."""
    differences = {}
    for key, value in current.items():
        old = stored.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            differences.update(identity_differences(old, value, f"{prefix}{key}."))
        elif old != value:
            differences[f"{prefix}{key}"] = f"{_short(old)} → {_short(value)}"
    return differences


def _with_added_settings(stored: dict[str, Any], added: dict[str, Any]) -> dict[str, Any]:
    """``stored`` with every setting of ``added`` it lacks filled in (nested dicts merged)."""
    merged = dict(stored)
    for key, value in added.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _with_added_settings(merged[key], value)
        elif key not in merged:
            merged[key] = value
    return merged


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"
