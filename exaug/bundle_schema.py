"""What a generator bundle's files must look like before anything in them is trusted.

`checked_bundle_config` validates ``config.json`` against the schema below (types and bounds, every hash
present). `safetensors_header` reads the shapes and dtypes a safetensors file declares, so they can be
checked against the architecture before a tensor or a model is allocated. Every failure is a
:class:`BundleError` that names the file and the key.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

from .config import ARCHITECTURES, PRIORS, ModelConfig

FORMAT_NAME = "exaug.exemplar-vae"
FORMAT_VERSION = 1
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


class BundleError(ValueError):
    """A bundle directory that cannot be loaded; the message names the file and the problem."""


def checked_bundle_config(config: Any, path: Path) -> dict[str, Any]:
    """``config`` (parsed config.json) after checking every key the loader reads; returned unchanged."""
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise BundleError(f"{path} does not describe an exaug generator (expected format {FORMAT_NAME!r})")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(f"{path} has format_version={version!r}; this exaug reads version {FORMAT_VERSION}: "
                          "upgrade exaug")
    for key in ("model", "sha256", "exemplar_count"):
        if key not in config:
            raise BundleError(f"{path} lacks the {key!r} entry; the file is incomplete")
    model_config(config, path)
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
    return config


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
    try:
        header = json.loads(content[8:8 + length])
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{path}: its safetensors header is not valid JSON ({error})") from error
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
