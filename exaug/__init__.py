"""exaug: Exemplar VAE generative data augmentation.

The public API in one place; the modules behind it follow the data's path:
data → vae/priors → train → bundle → evaluate.
"""

from .bundle import BundleError
from .config import ModelConfig, TrainConfig
from .train import fit_generator
from .vae import ExemplarVAE

__all__ = ["BundleError", "ExemplarVAE", "ModelConfig", "TrainConfig", "fit_generator"]
__version__ = "0.1.0"
