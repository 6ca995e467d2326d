"""ExemplarAugment: a torchvision v2 transform that replaces an image by an Exemplar VAE sample around it.

For an exemplar x (grey, not binarised) the paper's synthetic image (§5.4) is

    z ~ N(μ(x), σ² I),   x̃ = sigmoid(decoder(z)) rounded to multiples of 1/255,

with σ² the exemplar prior's learned variance; x̃ keeps x's label, so the transform only
touches the image. It drops into ``v2.Compose`` and DataLoader workers (fork or spawn):
randomness comes from torch's global generator, which the DataLoader seeds differently
in every worker, and the generator pickled into workers carries no exemplar set.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from .bundle import load_generator
from .images import check_images
from .twins import twins_of
from .vae import ExemplarVAE, check_noise_scale

_PIL_MODES = {1: "L", 3: "RGB"}


class ExemplarAugment(v2.Transform):
    """Replace each image, with probability ``p``, by an Exemplar VAE sample generated from it.

    Accepts a PIL image, a uint8 or float tensor (C×H×W, or B×C×H×W with per-sample
    randomness) or a ``tv_tensors.Image``, and returns the same type, dtype, range and
    shape. Float inputs must lie in [0, 1]. Runs on the device of a tensor input.

    Args:
        generator: a trained :class:`~exaug.ExemplarVAE`.
        p: probability that a sample is replaced (0 returns every input unchanged).
        noise_scale: multiplies the kernel's σ (for a non-exemplar prior, the posterior's). 1.0 is the
            paper's sampler; smaller values keep
            samples closer to their exemplar (and to its label), larger ones vary them more.

    Example::

        transform = v2.Compose([v2.ToImage(), ExemplarAugment.from_pretrained("mnist"),
                                v2.ToDtype(torch.float32, scale=True)])

    Reference: Norouzi, Fleet & Norouzi, "Exemplar VAE", NeurIPS 2020, §5.4.
    """

    # Images only: masks, boxes and other tv_tensors pass through untouched.
    _transformed_types = (tv_tensors.Image, PIL.Image.Image, lambda x: type(x) is torch.Tensor)

    def __init__(self, generator: ExemplarVAE, p: float = 1.0, noise_scale: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p={p} is a probability and must lie in [0, 1]")
        self.p = float(p)
        self.noise_scale = check_noise_scale(noise_scale)
        self.input_shape = tuple(generator.config.input_shape)
        slim = generator.without_exemplars().eval().requires_grad_(False)
        # The transform's own generator stays on the CPU, where DataLoader workers use it: a worker forked
        # from a process that uses CUDA must never touch CUDA. Copies for other devices serve their batches.
        on_cpu = slim.device.type == "cpu"
        self.generator = slim if on_cpu else copy.deepcopy(slim).cpu()
        self._on_device: dict[torch.device, ExemplarVAE] = {} if on_cpu else {slim.device: slim}

    def _apply(self, fn: Any, recurse: bool = True) -> "ExemplarAugment":
        """``.to()``, ``.cuda()``, ``.double()`` leave the generator alone: it stays on the CPU for DataLoader
        workers, and a batch on another device gets a copy there when it first arrives."""
        return self

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the copies on other devices, so spawned DataLoader workers never start CUDA."""
        state = self.__dict__.copy()
        state["_on_device"] = {}
        return state

    def _generator_on(self, device: torch.device) -> ExemplarVAE:
        """The generator on ``device``: the transform's own, or a copy kept for that device (never moved in place)."""
        if self.generator.device == device:
            return self.generator
        if device not in self._on_device:
            self._on_device[device] = copy.deepcopy(self.generator).to(device)
        return self._on_device[device]

    def __repr__(self) -> str:
        # One line, like torchvision's transforms; the generator's layers would drown the hyper-parameters.
        return f"{type(self).__name__}({self.extra_repr()})"

    @classmethod
    def from_pretrained(cls, path_or_name: str | os.PathLike, p: float = 1.0, noise_scale: float = 1.0,
                        device: str = "cpu") -> "ExemplarAugment":
        """Build the transform from a bundle directory or a bundled generator name ("mnist", "fashion-mnist").

        ``device`` ("cuda" for GPU batches) gets a copy of the generator up front; the transform's own
        copy stays on the CPU for images in DataLoader workers, whatever ``device`` is.
        """
        return cls(load_generator(path_or_name, device=device), p=p, noise_scale=noise_scale)

    def twins(self, images: torch.Tensor) -> torch.Tensor:
        """A twin of every image of a batch B×C×H×W (uint8, or float in [0, 1]), in one generator call.

        The batched path behind :class:`~exaug.ExemplarCollate`: ``p`` is not applied (every image gets its
        twin), the noise comes from torch's global stream, and the result has ``images``' dtype and shape.
        """
        if not check_images(images, self.input_shape):
            raise ValueError(f"twins() takes a batch B×C×H×W, got one image of shape {tuple(images.shape)}")
        noise = torch.randn(images.shape[0], self.generator.config.latent_dim) * self.noise_scale
        return twins_of(self._generator_on(images.device), images, noise)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        batch = _batch_size(flat_inputs[0]) if flat_inputs else 1
        return {
            "replace": torch.rand(batch) < self.p,
            "noise": torch.randn(batch, self.generator.config.latent_dim) * self.noise_scale,
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
        batched = check_images(images, self.input_shape)
        replace = params["replace"]
        if not replace.any():
            return images
        values = images if batched else images.unsqueeze(0)
        chosen = replace.to(values.device)
        out = values.clone()
        out[chosen] = twins_of(self._generator_on(values.device), values[chosen], params["noise"][replace])
        out = out if batched else out.squeeze(0)
        return tv_tensors.wrap(out, like=images) if isinstance(images, tv_tensors.TVTensor) else out


def _batch_size(inpt: Any) -> int:
    if isinstance(inpt, torch.Tensor) and inpt.ndim == 4:
        return inpt.shape[0]
    return 1
