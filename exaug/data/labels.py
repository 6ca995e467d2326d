"""The labels of any labelled dataset, read cheaply where it keeps a list of them.

Training code needs every label before the first step: to count the classes, and to tell a resumed run
whether it is given the same data. torchvision datasets, ImageFolder, ``TensorDataset``, ``Subset`` and
exaug's own ``ImageTensorDataset`` keep their labels in a list; anything else is read item by item.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch.utils.data import Dataset, Subset, TensorDataset


def dataset_labels(dataset: Dataset) -> torch.Tensor:
    """Every label of a labelled dataset, in order: from its label list when it has one, else by reading
    each of its items once (slow: every image is loaded and transformed)."""
    listed = listed_labels(dataset)
    if listed is not None:
        return listed
    return torch.as_tensor([dataset[i][1] for i in range(len(dataset))])


def listed_labels(dataset: Dataset) -> torch.Tensor | None:
    """The labels of ``dataset`` from its label list, or None when it keeps none."""
    if isinstance(dataset, Subset):
        parent = listed_labels(dataset.dataset)
        return None if parent is None else parent[torch.as_tensor(dataset.indices, dtype=torch.int64)]
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
        return dataset.tensors[1]
    for name in ("labels", "targets"):  # exaug's ImageTensorDataset; torchvision datasets and ImageFolder
        labels = getattr(dataset, name, None)
        if labels is not None:
            return torch.as_tensor(labels)
    return None


def class_count(dataset: Dataset, labels: torch.Tensor) -> int:
    """Number of classes: the dataset's class list when it has one, else the largest label + 1."""
    while isinstance(dataset, Subset):  # e.g. a random_split of an ImageFolder: the classes are the whole folder's
        dataset = dataset.dataset
    classes = getattr(dataset, "classes", None)  # torchvision datasets, ImageFolder
    if classes is not None:
        return len(classes)
    return int(labels.max()) + 1


def describe_labels(labels: torch.Tensor) -> dict[str, Any]:
    """What identifies a data set to a resumed run: its size and the sha256 of its labels in order."""
    values = labels.detach().to("cpu", torch.int64).contiguous().numpy()
    return {"size": len(values), "labels_sha256": hashlib.sha256(values.tobytes()).hexdigest()}
