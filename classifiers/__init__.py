"""exaug.classifiers: the paper's permutation-invariant MLPs, any timm model, and the §5.4 training recipe."""

from .config import ClassifierConfig
from .factory import create_classifier
from .mlp import PermutationInvariantMLP
from .train import fit_classifier

__all__ = ["ClassifierConfig", "PermutationInvariantMLP", "create_classifier", "fit_classifier"]
