"""ExemplarAugment: a torchvision v2 transform that replaces an image by an Exemplar VAE sample around it.

For an exemplar x (grey, not binarised) the paper's synthetic image (§5.4) is

    z ~ N(μ(x), σ² I),   x̃ = sigmoid(decoder(z)) rounded to multiples of 1/255,

with σ² the exemplar prior's learned variance; x̃ keeps x's label, so the transform only
touches the image. It drops into ``v2.Compose`` and DataLoader workers (fork or spawn):
randomness comes from torch's global stream, which the DataLoader seeds differently in every
worker, or from a ``torch.Generator`` of the caller's; the generator pickled into workers
carries no exemplar set.
"""

from __future__ import annotations

import copy
import math
import os
from typing import Any

import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from .pretrained import load_generator
from .images import check_images
from .twins import check_noise_scale, check_probability, twin_noise, twins_of
from .models import ExemplarGenerator

_PIL_MODES = {1: "L", 3: "RGB"}
# The drop-in default, picked on validation in docs/dropin.md (the stock PyTorch MNIST CNN on 10K images,
# 1 and 10 epochs; the largest mean cut in error relative to no augmentation among p = 0.25, 0.5, 1). That cut
# is within the seed spread: no p measurably helps the transform alone (ExemplarAugment's docstring).
DROP_IN_P = 0.25


class ExemplarAugment(v2.Transform):
    """Replace each image, with probability ``p``, by an Exemplar VAE sample generated from it.

    Accepts a PIL image, a uint8 or float tensor (C×H×W, or B×C×H×W with per-sample
    randomness), a ``tv_tensors.Image`` or a ``tv_tensors.Video`` (frame by frame), and returns
    the same type, dtype, range and shape. Float inputs must lie in [0, 1]. Runs on the device
    of a tensor input. Every image of a sample, and every image of a batch, gets its own draw;
    masks, boxes, labels and other entries of the sample pass through as they are, and an empty
    batch comes back unchanged.

    Args:
        generator: a trained generator of any architecture (:class:`~exaug.ExemplarGenerator`).
        p: probability that a sample is replaced (0 returns every input unchanged; 1 replaces every image, so
            the classifier never sees a real one). The default, 0.25, was picked on validation with the stock
            PyTorch MNIST CNN on 10K images, over 1 and 10 epochs of training, among p ∈ {0.25, 0.5, 1}. No p was
            shown to help the transform alone beyond the seed spread; what did help in the low-data MNIST regimes
            measured is a classic augmentation with twins appended (:class:`~exaug.ExemplarCollate` with
            ``append=True, transform=...``). docs/dropin.md has the figures and where it does not pay.

            One image per call pays the generator's fixed cost each time; ExemplarCollate and
            :class:`~exaug.ExemplarTwins` generate a batch per call (speed in docs/dropin.md).
        noise_scale: multiplies the kernel's σ around the exemplar (for a non-exemplar prior, the posterior's);
            a hierarchical generator's z1 is still drawn from p(z1 | z2). 1.0 is the paper's sampler; smaller
            values keep samples closer to their exemplar (and to its label), larger ones vary them more.
        rng: a ``torch.Generator`` (on the CPU) to draw from instead of torch's global stream, for
            randomness that is reproducible and independent of other code. It is named ``rng`` because
            ``generator`` is the generator. In a DataLoader worker the transform draws from a stream
            seeded by ``rng``'s seed and the worker's seed, so workers never repeat one another and a
            DataLoader given its own ``generator`` replays the same augmentations.

    Example::

        transform = v2.Compose([v2.ToImage(), ExemplarAugment.from_pretrained("mnist"),
                                v2.ToDtype(torch.float32, scale=True)])

    Reference: Norouzi, Fleet & Norouzi, "Exemplar VAE", NeurIPS 2020, §5.4.
    """

    # Images only: masks, boxes and other tv_tensors pass through untouched.
    _transformed_types = (tv_tensors.Image, tv_tensors.Video, PIL.Image.Image, lambda x: type(x) is torch.Tensor)

    def __init__(self, generator: ExemplarGenerator, p: float = DROP_IN_P, noise_scale: float = 1.0,
                 rng: torch.Generator | None = None) -> None:
        super().__init__()
        self.p = check_probability(p)
        if rng is not None and (not isinstance(rng, torch.Generator) or rng.device.type != "cpu"):
            raise ValueError(f"rng must be a torch.Generator on the CPU (torch.Generator().manual_seed(0)), got {rng!r}")
        self.noise_scale = check_noise_scale(noise_scale)
        self.rng = rng
        self._worker_rng: tuple[int, torch.Generator] | None = None  # (worker seed, its stream)
        self.input_shape = tuple(generator.config.input_shape)
        slim = generator.without_exemplars().eval().requires_grad_(False)
        # The transform's own generator stays on the CPU, where DataLoader workers use it: a worker forked
        # from a process that uses CUDA must never touch CUDA. Copies for other devices serve their batches.
        on_cpu = slim.device.type == "cpu"
        self.generator = slim if on_cpu else copy.deepcopy(slim).cpu()
        self._on_device: dict[torch.device, ExemplarGenerator] = {} if on_cpu else {slim.device: slim}

    def _apply(self, fn: Any, recurse: bool = True) -> "ExemplarAugment":
        """``.to()``, ``.cuda()``, ``.double()`` leave the generator alone: it stays on the CPU for DataLoader
        workers, and a batch on another device gets a copy there when it first arrives."""
        return self

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the copies on other devices, so spawned DataLoader workers never start CUDA, and with
        ``rng`` as the bytes of its state: torch shares a ``torch.Generator``'s state tensor with spawned workers
        through a file descriptor, which fails (``unable to resize file``) and kills the worker."""
        state = self.__dict__.copy()
        state["_on_device"] = {}
        state["_worker_rng"] = None  # a worker derives its own stream again from the seed (see stream())
        state["rng"] = None if self.rng is None else self.rng.get_state().numpy().tobytes()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuild ``rng`` from the bytes of its state: the same seed, at the same point of its stream."""
        rng_state = state["rng"]
        if rng_state is not None:
            state["rng"] = torch.Generator()
            state["rng"].set_state(torch.frombuffer(bytearray(rng_state), dtype=torch.uint8))
        super().__setstate__(state)

    def _generator_on(self, device: torch.device) -> ExemplarGenerator:
        """The generator on ``device``: the transform's own, or a copy kept for that device (never moved in place)."""
        if self.generator.device == device:
            return self.generator
        if device not in self._on_device:
            self._on_device[device] = copy.deepcopy(self.generator).to(device)
        return self._on_device[device]

    def extra_repr(self) -> str:
        # rng is a setting, not a hyper-parameter: keep repr to what changes the samples' distribution
        return f"p={self.p}, noise_scale={self.noise_scale}, input_shape={self.input_shape}"

    def __repr__(self) -> str:
        # One line, like torchvision's transforms; the generator's layers would drown the hyper-parameters.
        return f"{type(self).__name__}({self.extra_repr()})"

    @classmethod
    def from_pretrained(cls, path_or_name: str | os.PathLike, p: float = DROP_IN_P, noise_scale: float = 1.0,
                        device: str = "cpu", rng: torch.Generator | None = None) -> "ExemplarAugment":
        """Build the transform from a bundle directory or a bundled generator name ("mnist", "fashion-mnist").

        ``device`` ("cuda" for GPU batches) gets a copy of the generator up front; the transform's own
        copy stays on the CPU for images in DataLoader workers, whatever ``device`` is.
        """
        return cls(load_generator(path_or_name, device=device), p=p, noise_scale=noise_scale, rng=rng)

    def twins(self, images: torch.Tensor) -> torch.Tensor:
        """A twin of every image of a batch B×C×H×W (uint8, or float in [0, 1]), in one generator call.

        The batched path behind :class:`~exaug.ExemplarCollate`: ``p`` is not applied (every image gets its
        twin), the noise comes from the transform's stream, and the result has ``images``' dtype and shape.
        """
        if not check_images(images, self.input_shape):
            raise ValueError(f"twins() takes a batch B×C×H×W, got one image of shape {tuple(images.shape)}")
        noise = twin_noise(self.generator, images.shape[0], self.noise_scale, self.stream())
        return twins_of(self._generator_on(images.device), images, noise)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """One (replace, noise) draw per image of every input of the sample, keyed by the input object."""
        draws = [self.draws(_image_count(inpt)) for inpt in flat_inputs]
        return {"draws": dict(zip(map(id, flat_inputs), draws))}

    def draws(self, count: int, p: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """For ``count`` images, which are replaced (each with probability ``p``, by default this transform's) and
        the noise of each one's twin, from :meth:`stream` in that order; :class:`~exaug.ExemplarTwins` draws a
        batch the same way."""
        stream = self.stream()
        replace = torch.rand(count, generator=stream) < (self.p if p is None else p)
        return replace, twin_noise(self.generator, count, self.noise_scale, stream)

    def stream(self) -> torch.Generator | None:
        """Where this transform's random numbers come from: ``rng``, in a DataLoader worker a stream derived from
        it, or None for torch's global stream. :class:`~exaug.ExemplarCollate` draws from it too."""
        if self.rng is None:
            return None
        worker = torch.utils.data.get_worker_info()
        if worker is None:
            return self.rng
        if self._worker_rng is None or self._worker_rng[0] != worker.seed:
            seed = (self.rng.initial_seed() * 0x9E3779B97F4A7C15 + worker.seed) % 2**63
            self._worker_rng = (worker.seed, torch.Generator().manual_seed(seed))
        return self._worker_rng[1]

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        replace, noise = params["draws"][id(inpt)]
        if isinstance(inpt, PIL.Image.Image):
            return self._transform_pil(inpt, replace, noise)
        if isinstance(inpt, tv_tensors.Video):  # every frame is an image: T×C×H×W or B×T×C×H×W
            frames = self._transform_tensor(inpt.as_subclass(torch.Tensor).flatten(0, -4), replace, noise)
            return tv_tensors.wrap(frames.reshape(inpt.shape), like=inpt)
        return self._transform_tensor(inpt, replace, noise)

    def _transform_pil(self, image: PIL.Image.Image, replace: torch.Tensor, noise: torch.Tensor) -> PIL.Image.Image:
        expected_mode = _PIL_MODES.get(self.input_shape[0])
        if image.mode != expected_mode:
            raise ValueError(
                f"a PIL image of mode {image.mode!r} cannot feed this generator, which takes {self.input_shape[0]} "
                f"channel(s); convert it with image.convert({expected_mode!r})"
            )
        out = self._transform_tensor(F.pil_to_tensor(image), replace, noise)
        return F.to_pil_image(out, mode=image.mode)

    def _transform_tensor(self, images: torch.Tensor, replace: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        batched = check_images(images, self.input_shape, allow_empty=True)
        if not replace.any():
            return images
        out = self.replace_with_twins(images if batched else images.unsqueeze(0), replace, noise)
        out = out if batched else out.squeeze(0)
        return tv_tensors.wrap(out, like=images) if isinstance(images, tv_tensors.TVTensor) else out

    def replace_with_twins(self, images: torch.Tensor, replace: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """A copy of a checked batch B×C×H×W in which the images where ``replace`` (B, on the CPU) is True are
        their twins, decoded from the matching rows of ``noise`` (B×``twin_noise_dim``, already scaled); the
        batch itself when none is."""
        if not replace.any():
            return images
        chosen = replace.to(images.device)
        out = images.clone()
        out[chosen] = twins_of(self._generator_on(images.device), images[chosen], noise[replace])
        return out


def _image_count(inpt: Any) -> int:
    """How many images an input holds: the frames of a video, the rows of a batch, else one."""
    if isinstance(inpt, tv_tensors.Video):
        return math.prod(inpt.shape[:-3])
    if isinstance(inpt, torch.Tensor) and inpt.ndim == 4:
        return inpt.shape[0]
    return 1
