"""exaug: Exemplar VAE generative data augmentation.

The public API in one place; the modules behind it follow the data's path:
data → vae/priors → train → bundle → evaluate → twins → augment/collate/mixed (→ exaug.classifiers, exaug.cli).
"""

from .augment import ExemplarAugment
from .bundle import BundleError
from .collate import ExemplarCollate
from .config import ModelConfig, TrainConfig
from .mixed import MixedBatch, MixedBatchLoader, mixed_loss
from .run_lock import RunDirectoryBusy
from .train import RunProgress, fit_generator, run_progress
from .vae import ExemplarVAE

__all__ = [
    "BundleError",
    "ExemplarAugment",
    "ExemplarCollate",
    "ExemplarVAE",
    "MixedBatch",
    "MixedBatchLoader",
    "ModelConfig",
    "RunDirectoryBusy",
    "RunProgress",
    "TrainConfig",
    "fit_generator",
    "mixed_loss",
    "run_progress",
]
__version__ = "0.1.0"
