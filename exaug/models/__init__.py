"""Generator architectures, each a module here, built from a ModelConfig and trained with any prior.

The MLP Exemplar VAE of appendix D(a) is `ExemplarVAE` (`vae.py`, with its gated layers in `layers.py`). The
priors (`exaug.priors`), the trainer, the bundle format and the plugin take a generator through the methods
`ExemplarVAE` defines, so a new architecture (HVAE, ConvHVAE) is a new module here.
"""

from .vae import ElboTerms, ExemplarVAE, reparameterize

__all__ = ["ElboTerms", "ExemplarVAE", "reparameterize"]
