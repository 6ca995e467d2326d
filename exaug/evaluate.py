"""Generator evaluation: the paper's density and representation metrics.

* test ELBO with its reconstruction and KL parts, one posterior sample (Table 9);
* IWAE log-likelihood bound with S importance samples (Tables 1–4, S = 5000);
* active units: latent dimensions whose mean varies over the data by more than 0.01 (Table 8);
* kNN classification error on latent means, k ∈ {3, …, 15} (Table 5);
* the posterior log-variances: their median and the share on the encoder's clamp (a growing latent space).

At test time the exemplar prior uses every training exemplar, with no leave-one-out.
Evaluation images are binarised once with a fixed seed, like the validation set in training.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, restore_random_stream, save_checkpoint, tensor_digest
from .images import as_unit_float
from .latent_cache import LatentCache
from .models import ExemplarGenerator
from .models.base import LOG_VAR_MAX

EVAL_SEED = 0
ACTIVE_UNIT_THRESHOLD = 0.01
DEFAULT_KS = tuple(range(3, 16))
# The IWAE NLL may lie this many nats above the exact one (see ExemplarPrior.log_prob_near), for ~5× less time.
PRIOR_TOLERANCE = 1e-3
# Images scored between two saves of a resumable IWAE evaluation: a stop loses at most this many images' work.
IWAE_SAVE_EVERY = 25
# A log-variance this close to LOG_VAR_MAX counts as resting on the clamp (hardtanh returns the bound itself).
CLAMP_MARGIN = 1e-4


def binarize_once(images: torch.Tensor, seed: int = EVAL_SEED) -> torch.Tensor:
    """A fixed stochastic binarisation of grey images in [0, 1] (or uint8)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.bernoulli(as_unit_float(images).cpu().float(), generator=generator)


@torch.no_grad()
def posterior_log_variances(model: ExemplarGenerator, images: torch.Tensor, batch_size: int = 500) -> dict[str, float]:
    """The median posterior log σ² of the prior latent over ``images``, and the share of them resting on the
    encoder's upper clamp: a latent space that grows as it trains shows as both rising."""
    log_var = torch.cat([model.encode(batch.to(model.device))[1] for batch in images.split(batch_size)])
    return {"posterior_log_var_median": log_var.median().item(),
            "posterior_log_var_at_clamp_share": (log_var >= LOG_VAR_MAX - CLAMP_MARGIN).float().mean().item()}


@torch.no_grad()
def elbo_parts(model: ExemplarGenerator, images: torch.Tensor, batch_size: int = 500, seed: int = EVAL_SEED) -> dict[str, float]:
    """Mean one-sample ELBO, reconstruction log p(x|z) and KL over binary ``images``."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    reconstruction = kl = 0.0
    for batch in images.split(batch_size):
        terms = model.elbo_terms(batch.to(model.device), generator)
        reconstruction += terms.reconstruction.sum().item()
        kl += terms.kl.sum().item()
    count = images.shape[0]
    return {"elbo": (reconstruction - kl) / count, "reconstruction": reconstruction / count, "kl": kl / count}


@torch.no_grad()
def iwae_log_likelihood(model: ExemplarGenerator, images: torch.Tensor, num_samples: int = 5000, chunk_size: int = 500,
                        seed: int = EVAL_SEED, progress: bool = False,
                        prior_tolerance: float | None = PRIOR_TOLERANCE,
                        checkpoint: str | os.PathLike | None = None) -> torch.Tensor:
    """IWAE bound on log p(x) for each binary image (a tensor of per-image values); ``prior_tolerance`` as in
    :meth:`ExemplarGenerator.iwae` (None: every sample against every exemplar).

    With ``checkpoint`` (a file path), the bounds so far and the random stream are saved there every
    :data:`IWAE_SAVE_EVERY` images, and a call finding that file continues where it stopped: a long evaluation
    survives a stop, with the numbers an unbroken call gives on the same device and thread count. The file is
    continued only for the same model, exemplar set, images, settings and device kind; the caller removes it once
    the result is safely written.
    """
    generator = torch.Generator(device=model.device).manual_seed(seed)
    values: list[torch.Tensor] = []
    if checkpoint is not None:
        identity = _iwae_identity(model, images, num_samples, chunk_size, seed, prior_tolerance)
        if Path(checkpoint).exists():
            retry = (f"delete {checkpoint} to start this evaluation afresh, or rerun with the settings it was "
                     "started with")
            structure = {"bounds": torch.Tensor, "generator": torch.Tensor, "generator_device": str}
            state = load_checkpoint(checkpoint, identity, advice={key: retry for key in identity}, structure=structure,
                                    holder=f"{checkpoint} holds an IWAE evaluation")
            values = list(state["bounds"].to(model.device).split(1))
            restore_random_stream(generator, state["generator"], state["generator_device"], Path(checkpoint).parent)
    remaining = tqdm(range(len(values), len(images)), desc="IWAE", disable=not progress, file=sys.stderr,
                     initial=len(values), total=len(images))
    for index in remaining:
        values.append(model.iwae(images[index].unsqueeze(0).to(model.device), num_samples, chunk_size, generator,
                                 prior_tolerance))
        if checkpoint is not None and (len(values) % IWAE_SAVE_EVERY == 0 or len(values) == len(images)):
            save_checkpoint(checkpoint, identity, {"bounds": torch.cat(values).cpu(), "generator": generator.get_state(),
                                                   "generator_device": generator.device.type})
    return torch.cat(values).cpu()


def _iwae_identity(model: ExemplarGenerator, images: torch.Tensor, num_samples: int, chunk_size: int, seed: int,
                   prior_tolerance: float | None) -> dict[str, Any]:
    """What a saved IWAE evaluation must match to be continued: the numbers, not the file names they came from."""
    return {"weights_sha256": tensor_digest([*model.state_dict().items(), ("exemplar_means", model.exemplar_means)]),
            "images_sha256": tensor_digest([("images", images)]), "num_samples": num_samples,
            "chunk_size": chunk_size, "seed": seed, "prior_tolerance": prior_tolerance,
            "device": model.device.type}


@torch.no_grad()
def active_units(means: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """Number of latent dimensions whose mean μ(x) has variance above ``threshold`` over the data."""
    return int((means.double().var(0) > threshold).sum())


def knn_errors(train_means: torch.Tensor, train_labels: torch.Tensor, query_means: torch.Tensor,
               query_labels: torch.Tensor, ks: Sequence[int] = DEFAULT_KS) -> dict[int, float]:
    """Classification error (%) of a k-nearest-neighbour vote in latent space, for each k.

    Ties go to the class of the nearer neighbours (each vote carries a tiny bonus that
    shrinks with rank). The search is the latent cache's: faiss for CPU means, a matrix
    product on the GPU for CUDA means.
    """
    largest = max(ks)
    neighbours = LatentCache(train_means.float()).search(query_means.float().to(train_means.device), largest)
    neighbour_labels = train_labels.cpu()[neighbours.cpu()]
    num_classes = int(max(train_labels.max(), query_labels.max())) + 1
    votes = torch.nn.functional.one_hot(neighbour_labels, num_classes).double()
    rank_bonus = 1e-3 / torch.arange(1, largest + 1, dtype=torch.float64).view(1, -1, 1)
    errors = {}
    for k in ks:
        predicted = (votes[:, :k] * (1 + rank_bonus[:, :k])).sum(1).argmax(1)
        errors[k] = 100.0 * (predicted != query_labels.cpu()).double().mean().item()
    return errors


def evaluate_generator(model: ExemplarGenerator, test_images: torch.Tensor, test_labels: torch.Tensor | None = None,
                       val_images: torch.Tensor | None = None, val_labels: torch.Tensor | None = None,
                       num_samples: int = 5000, subset: int | None = 1000, ks: Sequence[int] = DEFAULT_KS,
                       progress: bool = True, prior_tolerance: float | None = PRIOR_TOLERANCE,
                       iwae_checkpoint: str | os.PathLike | None = None) -> dict[str, Any]:
    """All metrics of the module for a trained generator; the exemplar set is the training data.

    Args:
        model: a generator with its exemplar set (as loaded by ``exaug.load_generator``).
        test_images: grey test images in [0, 1] or uint8; binarised once here.
        test_labels: labels for the kNN error (skipped when None or the model has no labels).
        val_images, val_labels: when given, k is chosen on them and the test error reported at that k.
        num_samples: importance samples per image for IWAE.
        subset: IWAE runs on the first ``subset`` test images (None: all).
        prior_tolerance: with the exemplar prior, how far (nats) below the exact IWAE bound the certified
            near-exemplar estimate may lie; None scores every sample against every exemplar.
        iwae_checkpoint: a file that makes the IWAE part resumable (see :func:`iwae_log_likelihood`).
    """
    if model.exemplar_means is None or model.exemplar_means.shape[0] == 0:
        raise ValueError("the model has no exemplar set; load it with exaug.load_generator")
    model.eval()
    binary_test = binarize_once(test_images)
    results: dict[str, Any] = {"test_images": int(binary_test.shape[0])}
    results.update({f"test_{name}": value for name, value in elbo_parts(model, binary_test).items()})
    iwae_images = binary_test if subset is None else binary_test[:subset]
    bounds = iwae_log_likelihood(model, iwae_images, num_samples, progress=progress, prior_tolerance=prior_tolerance,
                                 checkpoint=iwae_checkpoint)
    results.update(iwae_nll=-bounds.mean().item(), iwae_nll_sem=bounds.std().item() / math.sqrt(len(bounds)),
                   iwae_samples=num_samples, iwae_images=int(len(bounds)), iwae_prior_tolerance=prior_tolerance)
    test_means = model.encode_means(test_images)
    results["active_units"] = active_units(test_means)
    results["latent_dim"] = model.config.latent_dim
    if test_labels is not None and model.exemplar_labels is not None:
        test_errors = knn_errors(model.exemplar_means, model.exemplar_labels, test_means, test_labels, ks)
        results["knn_test_error"] = {str(k): error for k, error in test_errors.items()}
        if val_images is not None and val_labels is not None:
            val_errors = knn_errors(model.exemplar_means, model.exemplar_labels, model.encode_means(val_images), val_labels, ks)
            best_k = min(val_errors, key=lambda k: (val_errors[k], k))
            results["knn_val_error"] = {str(k): error for k, error in val_errors.items()}
        else:
            best_k = min(test_errors, key=lambda k: (test_errors[k], k))
        results.update(knn_k=best_k, knn_error=test_errors[best_k])
    return results


def markdown_report(results: dict[str, Any]) -> str:
    """The headline metrics as a Markdown table (NLL in nats; lower is better)."""
    rows = [
        ("test NLL, IWAE", f"{results['iwae_nll']:.2f} ± {results['iwae_nll_sem']:.2f}",
         f"S={results['iwae_samples']}, {results['iwae_images']} test images"),
        ("test ELBO", f"{results['test_elbo']:.2f}", f"{results['test_images']} test images, one sample"),
        ("reconstruction, -log p(x|z)", f"{-results['test_reconstruction']:.2f}", "Table 9"),
        ("KL", f"{results['test_kl']:.2f}", "Table 9"),
        ("active units", f"{results['active_units']} / {results['latent_dim']}",
         "Var μ > 0.01 over the prior latent (z2 of a hierarchical model), Table 8"),
    ]
    if "knn_error" in results:
        chosen = "chosen on validation" if "knn_val_error" in results else "best on test"
        rows.append(("kNN error %", f"{results['knn_error']:.2f}", f"k={results['knn_k']} ({chosen}), Table 5"))
    lines = ["| metric | value | note |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + "\n"
