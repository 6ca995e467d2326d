"""Generator bundles: a directory that holds everything needed to use a trained Exemplar VAE.

Layout::

    config.json            format version, ModelConfig, TrainConfig, data checksum, file hashes
    model.safetensors      the network and prior weights
    exemplars.safetensors  "means" (N×d float32, or float16 to halve them), "images" (N×C×H×W uint8),
                           "labels" (N int64, optional)

Loading never unpickles (safetensors + JSON only) and checks every file against
``config.json`` so a truncated, corrupt or mismatched bundle fails with a message naming
the file and the problem. Saving writes every file to a temporary beside it first and
swaps them in only once all are written, ``config.json`` last: a failed write (a full disk)
leaves the bundle as it was, and a crash between the renames leaves hashes that disagree
with the files, which loading reports.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors, save

from .atomic import atomic_path
from .checkpoint import CHECKPOINT_FILE
from .bundle_schema import (CONFIG_FILE, EXEMPLARS_FILE, FLOAT_DTYPES, FORMAT_NAME, HASHED_FILES,
                            MEANS_DTYPE_FORMAT_VERSIONS, MODEL_FILE, BundleError, check_provenance,
                            checked_bundle_config, model_config, parse_json, safetensors_header)
from .config import ModelConfig, TrainConfig
from .exemplar_images import ExemplarImages
from .models import ExemplarGenerator, build_generator


# save_generator's means_dtype, by torch dtype, with the bundle format each is written as.
MEANS_FORMAT_VERSIONS = {getattr(torch, name): version
                         for name, version in MEANS_DTYPE_FORMAT_VERSIONS.items()}

# Where a bundle saved without its exemplar images gets them: called with the bundle's config.json.
ExemplarImageSource = Callable[[dict[str, Any]], "torch.Tensor | None"]


def save_generator(model: ExemplarGenerator, directory: str | os.PathLike, train_config: TrainConfig | None = None,
                data_checksum: str | None = None, include_images: bool = True,
                provenance: dict[str, Any] | None = None, means_dtype: torch.dtype = torch.float32) -> Path:
    """Write ``model`` (weights and exemplar set) as a bundle directory and return its path.

    ``include_images=False`` leaves the exemplar images out (a bundle to ship inside a
    package): the means and labels still let the generator augment its own exemplars,
    and loading re-attaches the images from the training split named in ``train_config``
    when its checksum matches. ``provenance`` records where the weights came from (the fields of
    :data:`exaug.bundle_schema.PROVENANCE_FIELDS`: a release version, the training command, its epochs and
    best validation ELBO), so a figure can name the bundle it used; it is checked before anything is written.
    ``means_dtype=torch.float16`` stores the exemplar means at half their size; they load back as float32, rounded
    to float16's 11 significant bits. That moves what is built on the stored means a little: the exemplar prior's
    components, and the twins :class:`~exaug.MixedBatchLoader` makes of the generator's own exemplars. The networks,
    and the twins of :class:`~exaug.ExemplarAugment`, which encodes its input afresh, do not change.
    """
    if means_dtype not in MEANS_FORMAT_VERSIONS:
        raise ValueError(f"means_dtype must be one of {sorted(map(str, MEANS_FORMAT_VERSIONS))}, "
                         f"got {means_dtype}")
    if provenance is not None:
        check_provenance(provenance, Path(directory) / CONFIG_FILE)
    if model.exemplar_means is None or model.exemplar_means.shape[0] == 0:
        raise ValueError("the model has no exemplar set; call model.set_exemplars(images, labels) before saving")
    if include_images and model.exemplar_images is None:
        raise ValueError("the model's exemplar images are not loaded; save with include_images=False")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    means = model.exemplar_means.detach().cpu()
    exemplars = {"means": means.to(means_dtype).contiguous()}
    overflowed = torch.isfinite(means) & ~torch.isfinite(exemplars["means"])
    if overflowed.any():
        largest = means[overflowed].abs().max().item()
        raise ValueError(f"an exemplar mean of size {largest:.4g} does not fit in {means_dtype}; save the means with "
                         "means_dtype=torch.float32")
    if include_images:  # a set kept out of RAM is read whole here, once, as the file holds it whole
        images = model.exemplar_images
        exemplars["images"] = (images.to_tensor() if isinstance(images, ExemplarImages) else images).contiguous()
    if model.exemplar_labels is not None:
        exemplars["labels"] = model.exemplar_labels.contiguous()
    # Entered config.json first, so it is renamed into place last; every temporary is written before any rename.
    with atomic_path(directory / CONFIG_FILE) as config_temporary, \
            atomic_path(directory / EXEMPLARS_FILE) as exemplars_temporary, \
            atomic_path(directory / MODEL_FILE) as model_temporary:
        hashes = {MODEL_FILE: _write_safetensors(weights, model_temporary, directory / MODEL_FILE),
                  EXEMPLARS_FILE: _write_safetensors(exemplars, exemplars_temporary, directory / EXEMPLARS_FILE)}
        config = {
            "format": FORMAT_NAME,
            "format_version": MEANS_FORMAT_VERSIONS[means_dtype],
            "model": model.config.to_dict(),
            "training": None if train_config is None else train_config.to_dict(),
            "data_checksum": data_checksum,
            "exemplar_count": int(model.exemplar_means.shape[0]),
            "sha256": hashes,
        }
        if provenance is not None:
            config["provenance"] = provenance
        _write_durably(config_temporary, (json.dumps(config, indent=2) + "\n").encode(), directory / CONFIG_FILE)
    return directory


def bundle_size(path_or_name: str | os.PathLike) -> int:
    """Bytes of a bundle's own files (config.json, the weights and the exemplar set), not of anything else in its
    folder: a training run's folder also holds its checkpoint and log."""
    directory = resolve_bundle(path_or_name)
    return sum((directory / name).stat().st_size for name in (CONFIG_FILE, *HASHED_FILES))


def read_bundle_config(path_or_name: str | os.PathLike) -> dict[str, Any]:
    """The parsed and checked ``config.json`` of a bundle directory or a bundled generator name."""
    directory = resolve_bundle(path_or_name)
    if not directory.is_dir():
        raise BundleError(f"{directory} is not a directory; a bundle is a folder written by exaug.save_generator "
                          "or fit_generator")
    path = directory / CONFIG_FILE
    if not path.is_file():
        bundled = (f"; for the bundled generator, pass the plain name {directory.name!r}"
                   if directory.name in PRETRAINED_NAMES else "")
        raise BundleError(f"{path} is missing; is {directory} a bundle written by exaug.save_generator or "
                          f"fit_generator?{bundled}")
    return checked_bundle_config(parse_json(_own_file(directory, CONFIG_FILE).read_bytes(), path, "config.json"), path)


def bundle_provenance(path_or_name: str | os.PathLike) -> dict[str, Any]:
    """Where the bundle's weights came from (its ``provenance``); empty for bundles written before exaug recorded it."""
    return recorded_provenance(read_bundle_config(path_or_name))


def recorded_provenance(config: dict[str, Any]) -> dict[str, Any]:
    """The ``provenance`` a bundle's config.json records (empty when it predates the field), for a caller that
    already read the config."""
    return dict(config.get("provenance") or {})


def trained_dataset(config: dict[str, Any]) -> str | None:
    """The dataset a bundle's training run recorded (``training.extra.dataset``), if any."""
    return ((config.get("training") or {}).get("extra") or {}).get("dataset")


PRETRAINED_DIR = Path(__file__).parent / "pretrained"
PRETRAINED_NAMES = ("mnist", "fashion-mnist")


def resolve_bundle(path_or_name: str | os.PathLike) -> Path:
    """The directory of a bundle path, or of a bundled generator name ("mnist", "fashion-mnist").

    A string spelt like a bundled name means the bundled generator, even where the working directory holds a
    folder of that name: a data folder called ``mnist`` must not replace the generator unnoticed. Such a folder
    is a path when spelt as one (``"./mnist"``, an absolute path, a ``pathlib.Path``); the clash is reported as
    a warning that says so.
    """
    if isinstance(path_or_name, str) and path_or_name in PRETRAINED_NAMES:
        directory = PRETRAINED_DIR / path_or_name
        if not (directory / CONFIG_FILE).is_file():
            raise BundleError(f"the bundled generator {path_or_name!r} is not part of this installation ({directory})")
        if Path(path_or_name).exists():
            warnings.warn(f"{path_or_name!r} names the bundled generator; the {path_or_name} in the working directory "
                          f"is not used (spell it './{path_or_name}' to load that folder instead)", stacklevel=2)
        return directory
    directory = Path(path_or_name)
    if not directory.exists():
        raise BundleError(
            f"{directory} does not exist; pass a bundle directory written by exaug.save_generator or fit_generator "
            f"or one of the bundled names {PRETRAINED_NAMES}"
        )
    return directory


def load_weights(path_or_name: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The network and prior weights of a bundle (or bundled name), checked against its config.json.

    Cheaper than :func:`exaug.load_generator` when only the weights are wanted (a warm start):
    the exemplar set is neither read nor re-attached from the training split.
    """
    directory = resolve_bundle(path_or_name)
    config = read_bundle_config(directory)
    return _read_weights(directory, config, model_config(config, directory / CONFIG_FILE))


def _read_weights(directory: Path, config: dict[str, Any], architecture: ModelConfig) -> dict[str, torch.Tensor]:
    """The weights, after their hash, their declared shapes (against the architecture, before anything is
    allocated) and their values (finite) are checked."""
    path = directory / MODEL_FILE
    content = _checked_bytes(directory, MODEL_FILE, config)
    with torch.device("meta"):  # the architecture's shapes, without allocating its weights
        expected = {name: tuple(tensor.shape) for name, tensor in build_generator(architecture).state_dict().items()}
    declared = safetensors_header(content, path)
    problems = [f"missing {name}" for name in expected if name not in declared]
    problems += [f"unexpected {name}" for name in declared if name not in expected]
    problems += [f"{name} is {list(declared[name][1])}, the architecture needs {list(shape)}"
                 for name, shape in expected.items() if name in declared and declared[name][1] != shape]
    # weights keep the precision they were saved in (a float64 model's are float64) and load into float32
    problems += [f"{name} is {dtype}, not a floating-point type" for name, (dtype, _) in declared.items()
                 if name in expected and dtype not in FLOAT_DTYPES]
    if problems:
        raise BundleError(f"{path} does not match the architecture in config.json: {', '.join(problems)}")
    return _finite(_load_safetensors(content, path), path)


def load_bundle(directory: str | os.PathLike, device: str | torch.device = "cpu",
                exemplar_images: ExemplarImageSource | None = None) -> ExemplarGenerator:
    """Rebuild the ExemplarGenerator saved in ``directory``, checking every file on the way.

    A bundle saved without its exemplar images asks ``exemplar_images`` for them with its config; without
    a source, or when the source returns None, the generator keeps means and labels only."""
    directory = Path(directory)
    config = read_bundle_config(directory)
    architecture = model_config(config, directory / CONFIG_FILE)
    weights = _read_weights(directory, config, architecture)
    exemplars = _read_exemplars(directory, config, architecture)
    with torch.random.fork_rng(devices=[]):  # the init is overwritten: leave the caller's random stream alone
        model = build_generator(architecture)
    model.load_state_dict(weights)
    images = exemplars.get("images")
    if images is None and exemplar_images is not None:
        images = exemplar_images(config)
    # set_exemplars casts float16 means to the model's dtype
    model.set_exemplars(images, exemplars.get("labels"), means=exemplars["means"])
    return model.to(device).eval()


def _read_exemplars(directory: Path, config: dict[str, Any], architecture: ModelConfig) -> dict[str, torch.Tensor]:
    path = directory / EXEMPLARS_FILE
    content = _checked_bytes(directory, EXEMPLARS_FILE, config)
    count = int(config["exemplar_count"])
    expected = {"means": ("float32", (count, architecture.latent_dim)),
                "images": ("uint8", (count, *architecture.input_shape)), "labels": ("int64", (count,))}
    declared = safetensors_header(content, path)
    if "means" not in declared:
        raise BundleError(f"{path} lacks the 'means' tensor")
    if declared["means"][0] in MEANS_DTYPE_FORMAT_VERSIONS:  # the precision save_generator's means_dtype chose
        expected["means"] = (declared["means"][0], expected["means"][1])
    for name, found in declared.items():
        if name not in expected:
            raise BundleError(f"{path} holds an unexpected tensor {name!r}")
        if found != expected[name]:
            raise BundleError(f"{path}: {name!r} is {found[0]} {list(found[1])}; config.json implies "
                              f"{expected[name][0]} {list(expected[name][1])}")
    return _finite(_load_safetensors(content, path), path)


def _write_safetensors(tensors: dict[str, torch.Tensor], temporary: Path, path: Path) -> str:
    """Write ``tensors`` to ``temporary`` (which becomes ``path``) and return the sha256 of what was written."""
    content = save(tensors)
    _write_durably(temporary, content, path)
    return hashlib.sha256(content).hexdigest()


def _write_durably(temporary: Path, content: bytes, path: Path) -> None:
    """Write ``content`` to ``temporary`` and flush it to disk, so that a full disk shows here, before the caller
    swaps any file of the bundle in; the error names ``path``, the file the temporary was to become."""
    try:
        with open(temporary, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise OSError(error.errno, f"{error.strerror} (the bundle there is unchanged)", str(path)) from error


def _checked_bytes(directory: Path, name: str, config: dict[str, Any]) -> bytes:
    """The content of the bundle file ``name``, read once after checking it lies inside the bundle, and checked
    against its sha256 in config.json: the bytes checked are the bytes loaded, even while a training run
    replaces the file."""
    path = directory / name
    if not path.is_file():
        raise BundleError(f"{path} is missing; the bundle is incomplete")
    content = _own_file(directory, name).read_bytes()
    if hashlib.sha256(content).hexdigest() != config["sha256"][name]:
        advice = ("a training run writes this folder: rerun the same fit-generator command, which rewrites the "
                  "bundle from its checkpoint" if (directory / CHECKPOINT_FILE).exists()
                  else "re-save or re-download the bundle")
        raise BundleError(f"{path} does not match the sha256 recorded in config.json: the file is corrupt, "
                          f"truncated or from another bundle; {advice}")
    return content


def _own_file(directory: Path, name: str) -> Path:
    """The bundle file ``name``, after checking that it resolves inside the bundle (not a link to elsewhere)."""
    path = directory / name
    if not path.resolve().is_relative_to(directory.resolve()):
        raise BundleError(f"{path} resolves to {path.resolve()}, outside the bundle; a bundle's files must be its "
                          "own (copy the file in rather than link to it)")
    return path


def _load_safetensors(content: bytes, path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors(content)
    except (SafetensorError, OSError, ValueError) as error:
        raise BundleError(f"{path} is not a readable safetensors file ({error})") from error


def _finite(tensors: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise BundleError(f"{path}: {name!r} holds NaN or infinite values; the generator diverged or the file "
                              "was altered, so it is refused")
    return tensors
