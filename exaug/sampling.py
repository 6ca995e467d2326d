"""Image grids of a generator's samples: random draws (Fig. 9), exemplar plates (Fig. 3/10), cyclic generation (App. B)."""

from __future__ import annotations

import torch
from torchvision.utils import make_grid

from .images import as_unit_float
from .models import ExemplarGenerator

SAMPLE_MODES = ("random", "exemplars", "cyclic")


@torch.no_grad()
def random_grid(model: ExemplarGenerator, count: int = 100, generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` unconditional samples from the prior, as one image grid."""
    images = model.sample(count, generator)
    return make_grid(images.cpu(), nrow=_side(count), padding=2, pad_value=1.0)


@torch.no_grad()
def exemplar_plates(model: ExemplarGenerator, exemplars: torch.Tensor, per_plate: int = 11,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """One row per exemplar: the exemplar itself (framed in red), then ``per_plate`` samples generated from it."""
    exemplars = as_unit_float(exemplars).to(model.device)
    repeated = exemplars.repeat_interleave(per_plate, dim=0)
    samples = model.generate(repeated, generator).view(exemplars.shape[0], per_plate, *exemplars.shape[1:])
    rows = torch.cat([exemplars.unsqueeze(1), samples], dim=1).flatten(0, 1)
    return _frame_first_column(make_grid(rows.cpu(), nrow=per_plate + 1, padding=2, pad_value=1.0),
                               exemplars.shape[0], exemplars.shape[-2:])


@torch.no_grad()
def cyclic_generation(model: ExemplarGenerator, starts: torch.Tensor, steps: int = 11,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """One row per start image (framed in red): each sample becomes the exemplar of the next (left to right)."""
    current = as_unit_float(starts).to(model.device)
    chain = [current]
    for _ in range(steps):
        current = model.generate(current, generator)
        chain.append(current)
    rows = torch.stack(chain, dim=1).flatten(0, 1)
    return _frame_first_column(make_grid(rows.cpu(), nrow=steps + 1, padding=2, pad_value=1.0),
                               starts.shape[0], starts.shape[-2:])


def _frame_first_column(grid: torch.Tensor, rows: int, tile: tuple[int, int], padding: int = 2) -> torch.Tensor:
    """Paint the padding around the first tile of every row red, so the exemplar stands out from its samples."""
    height, width = tile
    red = torch.tensor([1.0, 0.0, 0.0], dtype=grid.dtype)[:, None, None]
    for row in range(rows):
        top = row * (height + padding)
        frame = grid[:, top:top + height + 2 * padding, :width + 2 * padding]
        inside = frame[:, padding:padding + height, padding:padding + width].clone()
        frame[:] = red
        frame[:, padding:padding + height, padding:padding + width] = inside
    return grid


def _side(count: int) -> int:
    return max(1, int(round(count ** 0.5)))
