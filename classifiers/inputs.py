"""What a classifier is given, checked before any folder is made: image tensors of one shape, at least two labelled
classes."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from exaug.data import class_count


def describe_task(dataset: Dataset, labels: torch.Tensor) -> tuple[tuple[int, ...], int]:
    """(C×H×W of one image, number of classes) of a labelled dataset whose labels are ``labels``."""
    if len(dataset) == 0:
        raise ValueError("the training set is empty")
    check_several_classes(labels)
    return image_shape(dataset[0][0], "training"), class_count(dataset, labels)


def check_several_classes(labels: torch.Tensor) -> None:
    """Refuse training labels of one class: the classifier would learn to answer it and report 0 % error."""
    present = torch.unique(torch.as_tensor(labels))
    if present.numel() < 2:
        raise ValueError(f"the training set holds one class only (label {present.item()}), and a classifier needs at "
                         "least 2: add images of other classes (in an image folder, one subfolder per class)")


def check_evaluation_set(dataset: Dataset, input_shape: tuple[int, ...]) -> None:
    """Refuse an empty evaluation set, or one whose images are not shaped like the training images."""
    if len(dataset) == 0:
        raise ValueError("the test (evaluation) set is empty")
    shape = image_shape(dataset[0][0], "test")
    if shape != input_shape:
        raise ValueError(f"test images are {shape} but training images are {input_shape} (C×H×W); "
                         "give both sets the same transforms")


def image_shape(image: Any, which: str) -> tuple[int, ...]:
    """C×H×W of one dataset image, after checking it is the float tensor the classifier takes."""
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or not image.is_floating_point():
        raise ValueError(f"{which} images must be float C×H×W tensors in [0, 1]; got {type(image).__name__} "
                         f"{getattr(image, 'dtype', '')} {tuple(getattr(image, 'shape', ()))}: add v2.ToImage() "
                         "and v2.ToDtype(torch.float32, scale=True)")
    return tuple(image.shape)
