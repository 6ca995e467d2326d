"""ExemplarImages: a generator's exemplar set, read by index, in RAM or out of it.

The trainer needs each step's batch and the neighbours it re-encodes, the end of each epoch needs every exemplar
once (in chunks), and the plugin needs the exemplars it recognises. None of them needs the whole set in RAM at once.
So the set may be a tensor (held in RAM, as training has always kept it), a uint8 numpy array such as a
memory-mapped ``.npy`` (rows read from disk as they are asked for), or any map-style dataset, e.g. torchvision's
``ImageFolder`` (items read and transformed as they are asked for). docs/exemplar-storage.md says what each costs.
"""

from __future__ import annotations

import abc
import math
import os
from typing import Iterator, Union

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from .data.labels import dataset_labels, listed_labels
from .data.splits import streamed_checksum
from .images import as_uint8, as_unit_float, value_range

# What an index of the set may be: one row, a slice, or a 1-d tensor or array of rows.
Index = Union[int, slice, torch.Tensor, np.ndarray]
# An index as a source reads it: a slice (a run of rows, read in one piece), or int64 row numbers within the set.
Rows = Union[slice, np.ndarray]
# How many images one read takes when the whole set is read (the checksum, the fingerprints, saving a bundle).
CHUNK_SIZE = 1000


class ExemplarImages:
    """N images C×H×W, read by index as uint8 (the exemplar set's own format) or as float in [0, 1].

    Args:
        images: one of

            * a tensor N×C×H×W, uint8 or float in [0, 1], held in RAM: float images are read exactly as given, never
              rounded to 1/255 (only the bundle and the checksum, which store uint8, round them);
            * a uint8 numpy array N×C×H×W, typically ``np.load(path, mmap_mode="r")``: only the rows asked for are
              read, through the page cache, which the system may reclaim;
            * a map-style dataset whose items are C×H×W image tensors (uint8, or float in [0, 1]), alone or with a
              label, e.g. ``ImageFolder(root, transform=v2.ToImage())``: only the items asked for are loaded.
        labels: one integer label per image. Default: a dataset's own (its label list, as ``ImageFolder.targets``,
            or else read from its items once, which loads every image), none for a tensor or an array.
    """

    def __init__(self, images: torch.Tensor | np.ndarray | Dataset, labels: torch.Tensor | np.ndarray | None = None
                 ) -> None:
        if isinstance(images, torch.Tensor):
            self._source: _Source = _TensorSource(images)
        elif isinstance(images, np.ndarray):
            self._source = _ArraySource(images)
        elif isinstance(images, IterableDataset):
            raise TypeError(f"{type(images).__name__} is an iterable-style dataset, which cannot be read by index: "
                            "write its images once as a uint8 .npy (ExemplarImages.from_npy) or wrap them in a "
                            "map-style Dataset")
        elif isinstance(images, Dataset):
            self._source = _DatasetSource(images)
            if labels is None:
                labels = self._source.labels()
        else:
            raise TypeError(f"exemplar images must be a tensor, a uint8 numpy array (e.g. np.load(path, "
                            f"mmap_mode='r')) or a map-style Dataset of images, got {type(images).__name__}")
        self.labels = _checked_labels(labels, len(self._source))

    @classmethod
    def from_npy(cls, path: str | os.PathLike, labels: torch.Tensor | np.ndarray | None = None) -> "ExemplarImages":
        """The uint8 N×C×H×W array saved at ``path`` (``np.save``), memory-mapped: read from disk row by row. Pickled
        (into a spawned DataLoader worker, say), it travels as its path and is mapped again there."""
        exemplars = cls(np.load(path, mmap_mode="r"), labels)
        exemplars._source.path = os.fspath(path)
        return exemplars

    @property
    def shape(self) -> torch.Size:
        """N×C×H×W, as a tensor of the whole set would have it."""
        return torch.Size((len(self), *self.image_shape))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._source.image_shape

    @property
    def in_memory(self) -> bool:
        """Whether the images are a tensor held in RAM; arrays and datasets are read as they are asked for."""
        return isinstance(self._source, _TensorSource)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: Index) -> torch.Tensor:
        """uint8 images on the CPU, indexed as a uint8 tensor of the whole set would be (B×C×H×W, or C×H×W for an int)."""
        rows, single = self._rows(index)
        images = self._source.uint8(rows)
        return images[0] if single else images

    def unit_float(self, index: Index) -> torch.Tensor:
        """float32 images in [0, 1] on the CPU: uint8 ones as x/255, float ones exactly as given."""
        rows, single = self._rows(index)
        images = self._source.unit_float(rows)
        return images[0] if single else images

    def chunks(self, size: int = CHUNK_SIZE) -> Iterator[torch.Tensor]:
        """The whole set as uint8, in order, ``size`` images at a time."""
        for start in range(0, len(self), size):
            yield self[start:start + size]

    def to_tensor(self) -> torch.Tensor:
        """The whole set as one uint8 tensor in RAM (N·C·H·W bytes; the tensor itself when it is held in RAM)."""
        if isinstance(self._source, _TensorSource):
            return self._source.uint8_images
        return torch.cat(list(self.chunks())) if len(self) else torch.empty(self.shape, dtype=torch.uint8)

    def checksum(self) -> str:
        """sha256 hex of the uint8 image bytes, then of the int64 label bytes if any: what
        :func:`exaug.data.data_checksum` gives for the same images held in RAM."""
        return streamed_checksum(self.chunks(), self.labels)

    def as_float(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "FloatExemplarImages":
        """The set as float images in [0, 1] on ``device``, read by index: what training gathers each step."""
        return FloatExemplarImages(self, torch.device(device), dtype)

    def __deepcopy__(self, memo: dict) -> "ExemplarImages":
        # Read-only: a copied model shares its exemplar store, as two processes share one file.
        return self

    def _rows(self, index: Index) -> tuple[Rows, bool]:
        """``index`` as a slice or as int64 row numbers checked to lie in the set, and whether it was a single row."""
        count = len(self)
        if isinstance(index, slice):
            return slice(*index.indices(count)), False
        rows = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index)
        single = rows.ndim == 0
        if single:
            rows = rows.reshape(1)
        if rows.ndim != 1 or not (np.issubdtype(rows.dtype, np.integer) or rows.size == 0):
            raise IndexError(f"exemplar images are read by an int, a slice or a 1-d array of row numbers; got "
                             f"{rows.dtype} of shape {rows.shape}")
        rows = rows.astype(np.int64)
        outside = rows[(rows < -count) | (rows >= count)]
        if outside.size:
            raise IndexError(f"row {outside[0]} is outside the {count} exemplar images")
        return np.where(rows < 0, rows + count, rows), single


class FloatExemplarImages:
    """An exemplar set as float images in [0, 1] on a device, read by index like a tensor N×C×H×W.

    A set held in RAM is copied to the device once (as float, the format training has always held it in), so
    indexing it is indexing that tensor; any other set is read row by row and only the rows asked for are moved.

    Args:
        images: the exemplar set.
        device, dtype: where and in which float type the images are given.
    """

    def __init__(self, images: ExemplarImages, device: torch.device, dtype: torch.dtype) -> None:
        self.images = images
        self.device = device
        self.dtype = dtype
        self.resident = images.unit_float(slice(None)).to(device=device, dtype=dtype) if images.in_memory else None

    @property
    def shape(self) -> torch.Size:
        return self.images.shape

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: Index) -> torch.Tensor:
        if self.resident is not None:
            return self.resident[index]
        return self.images.unit_float(index).to(device=self.device, dtype=self.dtype)


class _Source(abc.ABC):
    """Where the images are: their count, their shape, and the images of some rows."""

    image_shape: tuple[int, int, int]

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def uint8(self, rows: Rows) -> torch.Tensor:
        """uint8 images of ``rows``, B×C×H×W on the CPU."""

    @abc.abstractmethod
    def unit_float(self, rows: Rows) -> torch.Tensor:
        """float32 images of ``rows`` in [0, 1], B×C×H×W on the CPU."""


class _TensorSource(_Source):
    """A tensor in RAM: its uint8 form is made once (rounded to 1/255) for the bundle, the checksum and the plugin;
    training reads the float images as they are."""

    def __init__(self, images: torch.Tensor) -> None:
        if images.ndim != 4:
            raise ValueError(f"exemplar images must be a tensor N×C×H×W, got shape {tuple(images.shape)}; add a "
                             "channel axis to grey images (images.unsqueeze(1))")
        _check_pixels(images, "exemplar images")
        self.images = images.cpu()
        self.uint8_images = as_uint8(self.images)
        self.image_shape = tuple(images.shape[1:])

    def __len__(self) -> int:
        return self.images.shape[0]

    def uint8(self, rows: Rows) -> torch.Tensor:
        return self.uint8_images[_torch_index(rows)]

    def unit_float(self, rows: Rows) -> torch.Tensor:
        return as_unit_float(self.images[_torch_index(rows)]).float()


class _ArraySource(_Source):
    """A uint8 numpy array, memory-mapped or not: rows are copied out as they are read."""

    def __init__(self, array: np.ndarray) -> None:
        if array.dtype != np.uint8:
            raise ValueError(f"an exemplar array must be uint8 N×C×H×W, got {array.dtype}: save images as uint8 levels "
                             "(np.round(x * 255).astype(np.uint8)), or pass float images as a tensor or a Dataset")
        if array.ndim == 3:
            raise ValueError(f"an exemplar array must be N×C×H×W, got shape {array.shape}: add the channel axis "
                             "with array[:, None] (a view, nothing is read)")
        if array.ndim != 4:
            raise ValueError(f"an exemplar array must be N×C×H×W, got shape {array.shape}")
        if array.shape[3] in (1, 3, 4) and array.shape[1] not in (1, 3, 4):
            raise ValueError(f"an exemplar array of shape {array.shape} looks channels-last (N×H×W×C); pass "
                             "array.transpose(0, 3, 1, 2) (a view, nothing is read)")
        self.array = array
        self.image_shape = tuple(int(size) for size in array.shape[1:])
        self.path: str | None = None  # the .npy file the array maps, when it maps one whole

    def __getstate__(self) -> dict:
        """A mapped file pickles as its path, not its contents."""
        return {**self.__dict__, "array": None} if self.path is not None else self.__dict__

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.path is not None:
            self.array = np.load(self.path, mmap_mode="r")

    def __len__(self) -> int:
        return self.array.shape[0]

    def uint8(self, rows: Rows) -> torch.Tensor:
        if isinstance(rows, slice):
            return torch.from_numpy(np.array(self.array[rows]))
        # Sorted, the rows of a memory-mapped file are read in one pass forward; then put back in the order asked.
        order = np.argsort(rows, kind="stable")
        read = np.empty((rows.shape[0], *self.image_shape), dtype=np.uint8)
        read[order] = self.array[rows[order]]
        return torch.from_numpy(read)

    def unit_float(self, rows: Rows) -> torch.Tensor:
        return as_unit_float(self.uint8(rows))


class _DatasetSource(_Source):
    """A map-style dataset of C×H×W image tensors, alone or with a label; item i is read when row i is asked for."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        if len(dataset) == 0:
            raise ValueError("the exemplar dataset is empty; a generator needs at least 2 images")
        self.image_shape = tuple(self._image(0).shape)

    def __len__(self) -> int:
        return len(self.dataset)

    def labels(self) -> torch.Tensor | None:
        """The dataset's labels: its label list, else read from its items when they carry one."""
        listed = listed_labels(self.dataset)
        if listed is not None:
            return listed
        first = self.dataset[0]
        return dataset_labels(self.dataset) if isinstance(first, (list, tuple)) and len(first) > 1 else None

    def uint8(self, rows: Rows) -> torch.Tensor:
        return as_uint8(self._images(rows))

    def unit_float(self, rows: Rows) -> torch.Tensor:
        return as_unit_float(self._images(rows)).float()

    def _images(self, rows: Rows) -> torch.Tensor:
        numbers = range(len(self))[rows] if isinstance(rows, slice) else rows.tolist()
        images = []
        for row in numbers:
            image = self._image(row)
            if tuple(image.shape) != self.image_shape:
                raise ValueError(f"exemplar dataset item {row} is {tuple(image.shape)} (C×H×W) but item 0 is "
                                 f"{self.image_shape}: every exemplar must have one shape; add v2.Resize() (and "
                                 "v2.Grayscale() or v2.RGB()) to the dataset's transform")
            images.append(image)
        if not images:
            return torch.empty(0, *self.image_shape, dtype=torch.uint8)
        if any(image.dtype != images[0].dtype for image in images):  # uint8 and float items: all as float
            images = [as_unit_float(image).float() for image in images]
        return torch.stack(images)

    def _image(self, row: int) -> torch.Tensor:
        """Item ``row``'s image, checked to be a C×H×W tensor, uint8 or float in [0, 1]."""
        item = self.dataset[row]
        image = item[0] if isinstance(item, (list, tuple)) else item
        if not isinstance(image, torch.Tensor) or image.ndim != 3:
            got = f"a tensor of shape {tuple(image.shape)}" if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"exemplar dataset item {row} is {got}, not a C×H×W image tensor: give the dataset "
                             "transform=v2.ToImage() (and v2.Grayscale() for grey images read as RGB)")
        image = image.as_subclass(torch.Tensor)  # a tv_tensors.Image is a plain tensor here
        _check_pixels(image, f"exemplar dataset item {row}")
        return image


def _torch_index(rows: Rows) -> slice | torch.Tensor:
    return rows if isinstance(rows, slice) else torch.from_numpy(rows)


def _check_pixels(images: torch.Tensor, what: str) -> None:
    """Refuse images that are neither uint8 nor finite floats in [0, 1], naming ``what`` and the fix."""
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"{what}: dtype {images.dtype} is not supported; images must be uint8 or float in [0, 1]")
    if images.is_floating_point() and images.numel():
        low, high = value_range(images)
        if not (math.isfinite(low) and math.isfinite(high) and 0 <= low and high <= 1):
            raise ValueError(f"{what}: values in [{low:.3g}, {high:.3g}] lie outside [0, 1]; scale images with "
                             "v2.ToDtype(torch.float32, scale=True) (not Normalize), or pass uint8")


def _checked_labels(labels: torch.Tensor | np.ndarray | None, count: int) -> torch.Tensor | None:
    """``labels`` as an int64 tensor of ``count`` entries on the CPU, or a ValueError naming what is wrong."""
    if labels is None:
        return None
    labels = torch.as_tensor(labels)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"exemplar labels must be integers (class indices), got {labels.dtype}")
    if labels.shape != (count,):
        raise ValueError(f"there are {count} exemplar images but labels of shape {tuple(labels.shape)}; give one "
                         "label per image")
    return labels.to(device="cpu", dtype=torch.int64)
