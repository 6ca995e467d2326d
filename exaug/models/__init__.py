"""Generator architectures, each a module here, built by name from a ModelConfig and trained with any prior.

* ``vae`` — :class:`ExemplarVAE`, the MLP VAE of appendix D(a) (``vae.py``);
* ``hvae`` — :class:`HierarchicalVAE`, the two-level VAE of D(b) (``hierarchical.py``);
* ``convhvae`` — :class:`ConvHierarchicalVAE`, its convolutional form of D(c) (``conv_hierarchical.py``).

Each subclasses :class:`ExemplarGenerator` (``base.py``), the one interface the trainer, the priors' objective,
evaluation, sampling, the bundle format and the plugin use; ``layers.py`` holds the gated layers.
"""

from __future__ import annotations

from ..config import ARCHITECTURES, ModelConfig
from .base import ElboTerms, ExemplarGenerator, reparameterize
from .conv_hierarchical import ConvHierarchicalVAE
from .hierarchical import HierarchicalVAE
from .vae import ExemplarVAE

GENERATOR_CLASSES: dict[str, type[ExemplarGenerator]] = {
    cls.architecture: cls for cls in (ExemplarVAE, HierarchicalVAE, ConvHierarchicalVAE)}
assert tuple(GENERATOR_CLASSES) == ARCHITECTURES, "every architecture ModelConfig accepts has a class, in order"


def build_generator(config: ModelConfig) -> ExemplarGenerator:
    """A freshly initialised generator of the architecture ``config.architecture`` names."""
    return GENERATOR_CLASSES[config.architecture](config)


__all__ = ["ConvHierarchicalVAE", "ElboTerms", "ExemplarGenerator", "ExemplarVAE", "GENERATOR_CLASSES",
           "HierarchicalVAE", "build_generator", "reparameterize"]
