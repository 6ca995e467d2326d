"""What a generator bundle's files must look like before anything in them is trusted.

`parse_json` reads a bundle's JSON (config.json, a safetensors header) to a bounded depth. `checked_bundle_config`
validates ``config.json`` against the schema below (types and bounds, every hash present, sizes this machine can
allocate). `safetensors_header` reads the shapes and dtypes a safetensors file declares, so they can be checked
against the architecture before a tensor or a model is allocated. Every failure is a :class:`BundleError` that
names the file and the key.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path
from typing import Any

from .config import ARCHITECTURES, PRIORS, ModelConfig

FORMAT_NAME = "exaug.exemplar-vae"
# The precisions a bundle may store its exemplar means in, each with the oldest bundle format that holds it:
# version 2 added float16 means, and a bundle of float32 means is still written as version 1, so that an older
# exaug reads it.
MEANS_DTYPE_FORMAT_VERSIONS = {"float32": 1, "float16": 2}
# The newest bundle format this exaug reads and writes.
FORMAT_VERSION = max(MEANS_DTYPE_FORMAT_VERSIONS.values())
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
EXEMPLARS_FILE = "exemplars.safetensors"
HASHED_FILES = (MODEL_FILE, EXEMPLARS_FILE)
# safetensors dtype names → torch's, for the dtypes a bundle may hold.
SAFETENSORS_DTYPES = {"F32": "float32", "F64": "float64", "F16": "float16", "BF16": "bfloat16", "U8": "uint8",
                      "I64": "int64"}
FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on the JSON header
# Deeper than any file exaug writes (config.json nests 4 levels, a safetensors header 3), and far below the
# depth at which Python's recursion (the parser's, or a later walk's) would give out.
MAX_JSON_DEPTH = 32
_FALLBACK_MEMORY_BYTES = 2**40  # where the system does not say how much memory it has
# Where a bundle came from (config.json's optional "provenance"), by the type each field must have.
PROVENANCE_FIELDS: dict[str, tuple[type, ...]] = {
    "version": (str,),  # the release label a published bundle is known by, e.g. "mnist v2"
    "exaug_version": (str,),  # the exaug that trained it
    "epochs_trained": (int,),  # epochs behind these weights (the best epoch of the run that wrote them)
    "best_val_elbo": (int, float, type(None)),  # their validation ELBO (null: the run had no validation data)
    "command": (str, type(None)),  # the command line that trained them (null: the Python API)
}


class BundleError(ValueError):
    """A bundle directory that cannot be loaded; the message names the file and the problem."""


def checked_bundle_config(config: Any, path: Path) -> dict[str, Any]:
    """``config`` (parsed config.json) after checking every key the loader reads; returned unchanged."""
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise BundleError(f"{path} does not describe an exaug generator (expected format {FORMAT_NAME!r})")
    version = config.get("format_version")
    if not _is_int(version) or not 1 <= version <= FORMAT_VERSION:
        raise BundleError(f"{path} has format_version={version!r}; this exaug reads versions 1 to {FORMAT_VERSION}: "
                          "upgrade exaug")
    for key in ("model", "sha256", "exemplar_count"):
        if key not in config:
            raise BundleError(f"{path} lacks the {key!r} entry; the file is incomplete")
    architecture = model_config(config, path)
    count = config["exemplar_count"]
    if not _is_int(count) or count < 1:
        raise BundleError(f"{path}: 'exemplar_count' is {count!r}; it must be a positive integer")
    hashes = config["sha256"]
    if not isinstance(hashes, dict):
        raise BundleError(f"{path}: 'sha256' is {hashes!r}; it must map each weight file to its sha256")
    for name in HASHED_FILES:
        if not isinstance(hashes.get(name), str) or not _SHA256.fullmatch(hashes[name]):
            raise BundleError(f"{path}: 'sha256' has no valid hash for {name} ({hashes.get(name)!r}); every file of "
                              "a bundle must be pinned, so it is refused: re-save or re-download the bundle")
    if not isinstance(config.get("data_checksum"), (str, type(None))):
        raise BundleError(f"{path}: 'data_checksum' is {config['data_checksum']!r}; it must be a string or null")
    training = config.get("training")
    extra = (training or {}).get("extra") if isinstance(training, dict) else None
    if not isinstance(training, (dict, type(None))) or not isinstance(extra, (dict, type(None))):
        raise BundleError(f"{path}: 'training' must be an object (with an object 'extra') or null")
    dataset = (extra or {}).get("dataset")
    if not isinstance(dataset, (str, type(None))):
        raise BundleError(f"{path}: 'training.extra.dataset' is {dataset!r}; it must be the name of a dataset (a "
                          "string) or null")
    check_provenance(config.get("provenance"), path)
    _check_allocatable(architecture, count, path)
    return config


def check_provenance(provenance: Any, path: Path) -> None:
    """Refuse a provenance that is not an object of :data:`PROVENANCE_FIELDS`, each of its type; None (a bundle
    written before exaug recorded provenance) passes."""
    if provenance is None:
        return
    if not isinstance(provenance, dict):
        raise BundleError(f"{path}: 'provenance' is {provenance!r}; it must be an object or absent")
    for key, value in provenance.items():
        allowed = PROVENANCE_FIELDS.get(key)
        if allowed is None:
            raise BundleError(f"{path}: 'provenance' has an unknown field {key!r}; known: {sorted(PROVENANCE_FIELDS)}")
        if not isinstance(value, allowed) or isinstance(value, bool):
            names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in allowed)
            raise BundleError(f"{path}: 'provenance.{key}' is {value!r}; it must be {names}")


def parse_json(text: str | bytes, path: Path, what: str) -> Any:
    """``text`` parsed as JSON, refusing anything nested deeper than `MAX_JSON_DEPTH` (``what`` names the text).

    Python's parser gives a RecursionError on deep nesting, and code that walks the parsed value later could
    too; a bundle is refused here instead."""
    try:
        value = json.loads(text)
    except RecursionError as error:
        raise _too_deep(path, what) from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{path}: {what} is not valid JSON ({error}); the file is corrupt") from error
    if json_depth(value) > MAX_JSON_DEPTH:
        raise _too_deep(path, what)
    return value


def _too_deep(path: Path, what: str) -> BundleError:
    return BundleError(f"{path}: {what} nests lists or objects deeper than {MAX_JSON_DEPTH} levels, more than any "
                       "bundle holds; the file is corrupt or made to crash its reader, so it is refused")


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed JSON ``value`` (a scalar: 0), found without recursion."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, depth + 1)
            pending.extend((child, depth + 1) for child in node)
    return deepest


def _check_allocatable(architecture: ModelConfig, exemplar_count: int, path: Path) -> None:
    """Refuse sizes whose tensors this machine could not hold, before anything is built, even on the meta device.

    Every weight of every architecture joins two of the widths below, within a small factor (the ConvHVAE's
    features are 6·⌈H/4⌉·⌈W/4⌉ wide; its convolution kernels have fixed sizes), so the product of the two
    largest bounds the largest weight. With that under the memory, no tensor size can overflow when the
    architecture is built on the meta device. The exemplar set holds ``exemplar_count`` images (uint8) and
    means (float32).
    """
    _, height, width = architecture.input_shape
    pixels, hidden = architecture.input_dim, 2 * architecture.hidden_dim  # two-level models join two hidden layers
    widths = sorted([(pixels, "input_shape"), (8 * height * width, "input_shape"), (hidden, "hidden_dim"),
                     (hidden, "hidden_dim"), (2 * architecture.latent_dim, "latent_dim"),
                     (architecture.num_pseudo_inputs, "num_pseudo_inputs")], reverse=True)
    (largest, first), (second, other) = widths[:2]
    memory = machine_memory_bytes()
    if 4 * largest * second > memory:
        keys = " and ".join(f"'model.{key}' ({getattr(architecture, key)!r})" for key in sorted({first, other}))
        raise BundleError(f"{path}: with {keys}, the largest weight takes about {_gibibytes(4 * largest * second)} "
                          f"as float32, more than this machine's {_gibibytes(memory)} of memory; the file is corrupt, "
                          "or the generator needs a larger machine")
    exemplar_bytes = exemplar_count * (pixels + 4 * architecture.latent_dim)
    if exemplar_bytes > memory:
        raise BundleError(f"{path}: 'exemplar_count' ({exemplar_count}) exemplars of this size take "
                          f"{_gibibytes(exemplar_bytes)}, more than this machine's {_gibibytes(memory)} of memory; "
                          "the file is corrupt, or the generator needs a larger machine")


def machine_memory_bytes() -> int:
    """The physical memory of this machine, the most any tensor can take (a generous guess where unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows), or it does not know
        return _FALLBACK_MEMORY_BYTES


def _gibibytes(size: int) -> str:
    return f"{size / 2**30:.3g} GiB"


def model_config(config: dict[str, Any], path: Path) -> ModelConfig:
    """The architecture in a bundle's config.json, with the type and bounds of each field checked."""
    values = config["model"]
    if not isinstance(values, dict):
        raise BundleError(f"{path}: 'model' is {values!r}; it must be an object of ModelConfig fields")
    shape = values.get("input_shape")
    if not isinstance(shape, list) or len(shape) != 3 or not all(_is_int(size) and size >= 1 for size in shape):
        raise BundleError(f"{path}: 'model.input_shape' is {shape!r}; it must be [C, H, W] of positive integers")
    for key in ("latent_dim", "hidden_dim", "num_pseudo_inputs"):
        if key in values and (not _is_int(values[key]) or values[key] < 1):
            raise BundleError(f"{path}: 'model.{key}' is {values[key]!r}; it must be a positive integer")
    architecture = values.get("architecture", "vae")  # bundles from before the field are the MLP VAE
    if architecture not in ARCHITECTURES:
        raise BundleError(f"{path}: 'model.architecture' is {architecture!r}, which this exaug does not know; the "
                          f"known architectures are {ARCHITECTURES} (a bundle from a newer exaug: upgrade exaug)")
    if values.get("prior") not in PRIORS:
        raise BundleError(f"{path}: 'model.prior' is {values.get('prior')!r}; it must be one of {PRIORS}")
    try:
        return ModelConfig.from_dict(values)
    except (TypeError, ValueError) as error:
        raise BundleError(f"{path}: invalid 'model' entry: {error}") from error


def safetensors_header(content: bytes, path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Each tensor a safetensors file declares, as name → (torch dtype name, shape), read from its header
    alone; the data offsets are checked to lie inside the file."""
    if len(content) < 8:
        raise BundleError(f"{path} is {len(content)} bytes long, too short for a safetensors file")
    (length,) = struct.unpack("<Q", content[:8])
    if length > min(_MAX_HEADER_BYTES, len(content) - 8):
        raise BundleError(f"{path}: its safetensors header claims {length} bytes, more than the file holds")
    header = parse_json(content[8:8 + length], path, "its safetensors header")
    if not isinstance(header, dict):
        raise BundleError(f"{path}: its safetensors header is not an object")
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or entry.get("dtype") not in SAFETENSORS_DTYPES:
            raise BundleError(f"{path}: tensor {name!r} has no dtype a bundle may hold ({entry!r})")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not isinstance(shape, list) or not all(_is_int(size) and size >= 0 for size in shape):
            raise BundleError(f"{path}: tensor {name!r} has shape {shape!r}, not a list of sizes")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= len(content) - 8 - length):
            raise BundleError(f"{path}: tensor {name!r} has data offsets {offsets!r} outside the file")
        tensors[name] = (SAFETENSORS_DTYPES[entry["dtype"]], tuple(shape))
    return tensors


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
