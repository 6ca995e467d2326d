"""ClassifierConfig: the training recipe of §5.4, one field per knob."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from exaug.config import MAX_SEED
from exaug.mixed import check_lam
from exaug.twins import check_noise_scale

# SGD on fp16/bf16 weights would need loss scaling or master weights, which this recipe does not have.
TRAINING_DTYPES = ("float32", "float64")


@dataclass
class ClassifierConfig:
    """Recipe of paper §5.4: SGD with momentum, linear learning-rate decay, label smoothing."""

    model: str = "mlp"  # "mlp" or a timm model name
    hidden: tuple[int, ...] = (1024, 1024)  # MLP hidden widths (2×1024 or 2×8192 in the paper)
    epochs: int = 100
    batch_size: int = 100
    learning_rate: float = 0.1  # η, decayed linearly to η·final_lr_factor over the run
    final_lr_factor: float = 0.01
    momentum: float = 0.9
    label_smoothing: float = 0.1
    lam: float = 0.4  # weight on real data in eq. 16 (0.4 MNIST, 0.8 Fashion-MNIST); unused without a generator
    noise_scale: float = 1.0  # factor on the kernel σ of the synthetic twins; 1.0 is the paper's sampler
    dtype: str = "float32"  # of the weights and inputs; "float64" is what the authors' code trains in
    workers: int = 2  # DataLoader worker processes
    seed: int = 0
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden={self.hidden} must list at least one positive layer width, e.g. (1024, 1024)")
        self.lam = check_lam(self.lam)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing={self.label_smoothing} must lie in [0, 1)")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive integer")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate={self.learning_rate} must be a finite positive number (the paper's is 0.1)")
        if not 0 < self.final_lr_factor <= 1:
            raise ValueError(f"final_lr_factor={self.final_lr_factor} must lie in (0, 1] (the paper's is 0.01)")
        self.noise_scale = check_noise_scale(self.noise_scale)
        if self.dtype not in TRAINING_DTYPES:
            raise ValueError(f"dtype={self.dtype!r} is not a training precision; use one of {', '.join(TRAINING_DTYPES)}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed={self.seed} must lie in [0, 2**63 - 1], the seeds torch's generators take")
        if self.workers < 0:
            raise ValueError(f"workers={self.workers} must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)
