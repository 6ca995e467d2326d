"""ExemplarAugment: a torchvision v2 transform that replaces an image by an Exemplar VAE sample around it.

For an exemplar x (grey, not binarised) the paper's synthetic image (§5.4) is

    z ~ N(μ(x), σ² I),   x̃ = sigmoid(decoder(z)) rounded to multiples of 1/255,

with σ² the exemplar prior's learned variance; x̃ keeps x's label, so the transform only
touches the image. It drops into ``v2.Compose`` and DataLoader workers (fork or spawn):
randomness comes from torch's global generator, which the DataLoader seeds differently
in every worker, and the generator pickled into workers carries no exemplar set.
"""

from __future__ import annotations

import os
from typing import Any

import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from .bundle import load_generator
from .vae import ExemplarVAE

_PIL_MODES = {1: "L", 3: "RGB"}


class ExemplarAugment(v2.Transform):
    """Replace each image, with probability ``p``, by an Exemplar VAE sample generated from it.

    Accepts a PIL image, a uint8 or float tensor (C×H×W, or B×C×H×W with per-sample
    randomness) or a ``tv_tensors.Image``, and returns the same type, dtype, range and
    shape. Float inputs must lie in [0, 1]. Runs on the device of a tensor input.

    Args:
        generator: a trained :class:`~exaug.ExemplarVAE`.
        p: probability that a sample is replaced (0 returns every input unchanged).

    Example::

        transform = v2.Compose([v2.ToImage(), ExemplarAugment.from_pretrained("runs/mnist"),
                                v2.ToDtype(torch.float32, scale=True)])

    Reference: Norouzi, Fleet & Norouzi, "Exemplar VAE", NeurIPS 2020, §5.4.
    """

    def __init__(self, generator: ExemplarVAE, p: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p={p} is a probability and must lie in [0, 1]")
        self.p = float(p)
        self.input_shape = tuple(generator.config.input_shape)
        self.generator = generator.without_exemplars().eval().requires_grad_(False)

    def __repr__(self) -> str:
        # One line, like torchvision's transforms; the generator's layers would drown the hyper-parameters.
        return f"{type(self).__name__}({self.extra_repr()})"

    @classmethod
    def from_pretrained(cls, path_or_name: str | os.PathLike, p: float = 1.0, device: str = "cpu") -> "ExemplarAugment":
        """Build the transform from a bundle directory or a bundled generator name ("mnist", "fashion-mnist")."""
        return cls(load_generator(path_or_name, device=device), p=p)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        batch = _batch_size(flat_inputs[0]) if flat_inputs else 1
        return {
            "replace": torch.rand(batch) < self.p,
            "noise": torch.randn(batch, self.generator.config.latent_dim),
        }

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, PIL.Image.Image):
            return self._transform_pil(inpt, params)
        return self._transform_tensor(inpt, params)

    def _transform_pil(self, image: PIL.Image.Image, params: dict[str, Any]) -> PIL.Image.Image:
        expected_mode = _PIL_MODES.get(self.input_shape[0])
        if image.mode != expected_mode:
            raise ValueError(
                f"a PIL image of mode {image.mode!r} cannot feed this generator, which takes {self.input_shape[0]} "
                f"channel(s); convert it with image.convert({expected_mode!r})"
            )
        out = self._transform_tensor(F.pil_to_tensor(image), params)
        return F.to_pil_image(out, mode=image.mode)

    def _transform_tensor(self, images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
        batched = self._check(images)
        replace = params["replace"]
        if not replace.any():
            return images
        values = images if batched else images.unsqueeze(0)
        as_float = _to_unit_float(values)
        if self.generator.device != values.device:
            self.generator.to(values.device)
        with torch.no_grad():
            chosen = replace.to(values.device)
            exemplars = as_float[chosen].to(self.generator.dtype)
            mu, log_var = self.generator.encode(exemplars)
            synthetic = self.generator.decode_around(mu, log_var, params["noise"][replace])
        quantised = torch.round(synthetic * 255.0)
        out = values.clone()
        out[chosen] = quantised.to(values.dtype) if values.dtype == torch.uint8 else (quantised / 255.0).to(values.dtype)
        out = out if batched else out.squeeze(0)
        return tv_tensors.wrap(out, like=images) if isinstance(images, tv_tensors.TVTensor) else out

    def _check(self, images: torch.Tensor) -> bool:
        """Raise on anything the generator cannot take; return whether ``images`` is a batch."""
        if images.ndim not in (3, 4):
            raise ValueError(f"expected an image C×H×W or a batch B×C×H×W, got a tensor of shape {tuple(images.shape)}")
        batched = images.ndim == 4
        if batched and images.shape[0] == 0:
            raise ValueError("the batch is empty (0 images); pass at least one image")
        channels, height, width = images.shape[-3:]
        if channels != self.input_shape[0]:
            raise ValueError(
                f"the image has {channels} channel(s) but the generator takes {self.input_shape[0]} "
                f"(shape {self.input_shape}); convert with v2.Grayscale() or v2.RGB() first"
            )
        if (height, width) != tuple(self.input_shape[1:]):
            raise ValueError(
                f"the image is {height}×{width} but the generator takes {self.input_shape[1]}×{self.input_shape[2]}; "
                "resize with v2.Resize() first or fit a generator at this size"
            )
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise ValueError(f"images of dtype {images.dtype} are not supported; use uint8 or a float dtype in [0, 1]")
        if images.is_floating_point():
            if not torch.isfinite(images).all():
                raise ValueError("the image holds NaN or infinite values; ExemplarAugment needs finite values in [0, 1]")
            low, high = images.min().item(), images.max().item()
            if low < 0.0 or high > 1.0:
                raise ValueError(
                    f"float images must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]; "
                    "scale with v2.ToDtype(torch.float32, scale=True) or pass uint8"
                )
        return batched


def _batch_size(inpt: Any) -> int:
    if isinstance(inpt, torch.Tensor) and inpt.ndim == 4:
        return inpt.shape[0]
    return 1


def _to_unit_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0 if images.dtype == torch.uint8 else images
