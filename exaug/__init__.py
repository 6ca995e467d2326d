"""exaug: Exemplar VAE generative data augmentation.

The public API in one place; the modules behind it follow the data's path:
data → models/priors → bundle format → evaluate → train → pretrained → twins → augment/collate/mixed
(→ exaug.classifiers, exaug.cli); docs/architecture.md has the layers, tests/test_architecture.py holds them.
"""

from .augment import ExemplarAugment
from .batch_twins import ExemplarTwins
from .bundle import BundleError, save_generator
from .collate import ExemplarCollate
from .config import ModelConfig, TrainConfig
from .exemplar_images import ExemplarImages
from .mixed import MixedBatch, MixedBatchLoader, mixed_loss
from .run_lock import RunDirectoryBusy
from .train import RunProgress, fit_generator, run_progress
from .version import __version__
from .models import ExemplarGenerator, ExemplarVAE
from .pretrained import load_generator

__all__ = [
    "BundleError",
    "ExemplarAugment",
    "ExemplarCollate",
    "ExemplarGenerator",
    "ExemplarImages",
    "ExemplarTwins",
    "ExemplarVAE",
    "MixedBatch",
    "MixedBatchLoader",
    "ModelConfig",
    "RunDirectoryBusy",
    "RunProgress",
    "TrainConfig",
    "fit_generator",
    "load_generator",
    "mixed_loss",
    "run_progress",
    "save_generator",
]
