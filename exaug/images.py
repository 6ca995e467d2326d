"""Image batches at the public boundary: validation with clear messages, and format round trips.

Every entry point that takes user images (ExemplarAugment, MixedBatchLoader) checks them
here, and MixedBatchLoader its labels, so each bad input gets the same message naming the value and
the fix, and turns generated images back into the caller's dtype here.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def check_images(images: torch.Tensor, input_shape: tuple[int, ...], allow_empty: bool = False) -> bool:
    """Raise on anything a generator of ``input_shape`` (C×H×W) cannot take; return whether it is a batch.

    An empty batch is refused unless ``allow_empty`` (a transform passes one through, as torchvision's do).
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"expected a tensor of images, got {type(images).__name__}")
    if images.ndim not in (3, 4):
        raise ValueError(f"expected an image C×H×W or a batch B×C×H×W, got a tensor of shape {tuple(images.shape)}")
    batched = images.ndim == 4
    if batched and images.shape[0] == 0 and not allow_empty:
        raise ValueError("the batch is empty (0 images); pass at least one image")
    channels, height, width = images.shape[-3:]
    if channels != input_shape[0]:
        if not batched and input_shape[0] == 1 and channels not in (3, 4) and (height, width) == tuple(input_shape[1:]):
            raise ValueError(
                f"a tensor of shape {tuple(images.shape)} reads as C×H×W with {channels} channels, but the generator "
                f"takes {tuple(input_shape)}; if it is a batch of {channels} images without a channel axis, add one "
                "with images.unsqueeze(1)"
            )
        raise ValueError(
            f"the image has {channels} channel(s) but the generator takes {input_shape[0]} "
            f"(shape {tuple(input_shape)}); convert with v2.Grayscale() or v2.RGB() first"
        )
    if (height, width) != tuple(input_shape[1:]):
        raise ValueError(
            f"the image is {height}×{width} but the generator takes {input_shape[1]}×{input_shape[2]}; "
            "resize with v2.Resize() first or fit a generator at this size"
        )
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"images of dtype {images.dtype} are not supported; use uint8 or a float dtype in [0, 1]")
    if images.is_floating_point() and images.numel() > 0:
        low, high = value_range(images)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError("the image holds NaN or infinite values; exaug needs finite values in [0, 1]")
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"float images must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]; "
                "scale with v2.ToDtype(torch.float32, scale=True) (not Normalize) or pass uint8"
            )
    return batched


def check_labels(labels: Any, count: int) -> torch.Tensor:
    """``labels`` as a tensor with one entry (or row) per image of a batch of ``count``, or a ValueError naming what
    is wrong: class names or a label per batch would otherwise meet torch as ``too many dimensions 'str'`` or
    later as a shape mismatch in the loss."""
    try:
        tensor = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"labels must be numbers, one per image (class indices or one-hot rows); got "
                         f"{type(labels).__name__} ({error}): map class names to indices first") from None
    if tensor.ndim == 0 or tensor.shape[0] != count:
        raise ValueError(f"there are {count} images but labels of shape {tuple(tensor.shape)}; give one label per image")
    return tensor


def value_range(images: torch.Tensor) -> tuple[float, float]:
    """(min, max) of a float tensor in one device-to-host copy; NaN anywhere makes both NaN, ±inf shows as itself."""
    low, high = torch.stack(torch.aminmax(images)).tolist()
    return low, high


def in_format_of(generated: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Generated images in [0, 1] → multiples of 1/255 in ``like``'s dtype (uint8 levels or floats).

    The division happens in ``like``'s dtype, so a float64 caller gets k/255 to float64 precision.
    """
    levels = torch.round(generated * 255.0)
    return levels.to(torch.uint8) if like.dtype == torch.uint8 else levels.to(like.dtype) / 255.0


def as_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images → float32 in [0, 1] (x/255); float images pass through unchanged."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32) / 255.0
    return images


def as_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] (or already uint8) → uint8, rounding to the nearest level of 1/255."""
    if images.dtype == torch.uint8:
        return images
    low, high = value_range(images)
    if not (math.isfinite(low) and math.isfinite(high)) or low < 0 or high > 1:
        raise ValueError("exemplar images must be finite floats in [0, 1] (or uint8)")
    return (images * 255.0).round().to(torch.uint8)
