"""The two dataclasses that describe a generator: what it is, and how it was trained.

`ModelConfig` fixes the architecture (everything needed to rebuild the weights);
`TrainConfig` is the recipe of paper §5 / appendix D.2. Both serialise to plain
JSON beside the weights; the CLI maps its flags onto them and nothing else parses
options.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

PRIORS = ("gaussian", "vamp", "exemplar")
# Generator architectures (exaug.models.build_generator builds each): the MLP VAE of appendix D(a), and the
# two-level hierarchical VAEs of D(b) (gated dense layers) and D(c) (gated convolutions).
ARCHITECTURES = ("vae", "hvae", "convhvae")
EXEMPLAR_SEARCHES = ("exact", "knn")
KNN_QUERIES = ("posterior", "cache")
KNN_INDEXES = ("auto", "exact", "ivf")
# torch seeds its generators with at most 64 bits; one is kept spare for the seeds derived by adding to a seed
# (the worker seeds' stream, each rank of a DDP run).
MAX_SEED = 2**63 - 1


@dataclass
class ModelConfig:
    """A generator's architecture (appendix D): enough to rebuild its weights. Bernoulli likelihood throughout.

    A bundle's config.json records these fields; one written before ``architecture`` existed is the MLP VAE.
    """

    architecture: str = "vae"  # one of ARCHITECTURES
    input_shape: tuple[int, ...] = (1, 28, 28)  # C×H×W of the data, flattened inside the model
    latent_dim: int = 40  # d_z of each stochastic layer (z, or z1 and z2); the paper uses 40 throughout
    hidden_dim: int = 300  # width of the gated dense layers, encoder and decoder
    prior: str = "exemplar"  # one of PRIORS
    num_pseudo_inputs: int = 500  # K of the VampPrior (ignored by the other priors)

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture={self.architecture!r} is not known; expected one of {ARCHITECTURES}")
        if self.prior not in PRIORS:
            raise ValueError(f"prior={self.prior!r} is not known; expected one of {PRIORS}")
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input_shape={self.input_shape} must be C×H×W with positive sizes")
        for name in ("latent_dim", "hidden_dim", "num_pseudo_inputs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive integer")

    @property
    def input_dim(self) -> int:
        channels, height, width = self.input_shape
        return channels * height * width

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        return _from_dict(cls, values)


@dataclass
class TrainConfig:
    """Training recipe: the paper's defaults (§5, D.2) unless a field says otherwise."""

    epochs: int = 2000  # upper bound; early stopping usually ends training first
    batch_size: int = 100
    learning_rate: float = 5e-4  # Adam on per-tensor L2-normalised gradients
    warmup_epochs: int = 100  # linear KL annealing from 0 to 1 over this many epochs
    patience: int = 50  # stop after this many epochs without a better validation ELBO
    # Count those epochs only after the KL warm-up (the authors' rule); False counts from the best epoch
    # alone, as exaug did before this field (checkpoints from then resume with it).
    patience_after_warmup: bool = True
    exemplar_fraction: float = 0.5  # M/N, the exemplar subsampling ratio of eq. 5
    # Leave-one-out (eq. 13): a training point is never explained by its own exemplar. Off only for the
    # ablation of Table 1 / Figure 2, where the prior can collapse onto the training set.
    leave_one_out: bool = True
    exemplar_search: str = "knn"  # "exact": all M exemplars; "knn": k nearest ones (§3.1)
    knn: int = 10  # k of the kNN approximation
    # Where the kNN search looks: "posterior", around the batch's current posterior means (the authors'
    # code); "cache", around each exemplar's cached mean, up to an epoch stale (exaug before this field).
    knn_query: str = "posterior"
    # What the kNN search searches: "exact", every member of the exemplar subset; "ivf", an approximate faiss
    # inverted-file index on the CPU (recall@10 ≥ 0.95 against exact, for exemplar sets of millions); "auto",
    # exact below exaug.latent_cache.APPROXIMATE_FROM exemplars or on a GPU, the index from there
    # (docs/exemplar-scale.md).
    knn_index: str = "auto"
    # Re-encode the prior's exemplars with gradient (Algorithm 1). Without it the centres come from the latent
    # cache: cheaper epochs, but the latent scale drifts and less is learnt per epoch (see docs/results.md).
    neighbour_gradient: bool = True
    # With the kNN search and neighbour_gradient: re-encode only each row's g nearest neighbours with gradient,
    # the other k − g come from the cache (None, or any g ≥ k: all k, as Algorithm 1). Ignored otherwise, as knn is
    # by the exact search. g = 3 reached a given validation ELBO soonest (time to quality, docs/results.md), but on
    # long runs it lets the latent space grow onto the encoder's log-variance clamp, so the default is all k.
    gradient_neighbours: int | None = None
    # With neighbour_gradient: re-encode the neighbours from their encoder-trunk features cached at the last end of
    # epoch, so the prior's gradient reaches the μ head but not the trunk. A step then costs about what the cache
    # alone costs (issue 17 §3, time to quality).
    cached_trunk: bool = False
    seed: int = 0
    device: str = "auto"  # "auto" picks CUDA when present
    # Warm start: a bundle directory or bundled name whose weights replace the random init (continue or
    # fine-tune a generator), and the sha256 of its model.safetensors, filled in by fit_generator.
    init_from: str | None = None
    init_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes kept in the bundle

    def __post_init__(self) -> None:
        if self.exemplar_search not in EXEMPLAR_SEARCHES:
            raise ValueError(
                f"exemplar_search={self.exemplar_search!r} is not known; expected one of {EXEMPLAR_SEARCHES}"
            )
        if self.knn_query not in KNN_QUERIES:
            raise ValueError(f"knn_query={self.knn_query!r} is not known; expected one of {KNN_QUERIES}")
        if self.knn_index not in KNN_INDEXES:
            raise ValueError(f"knn_index={self.knn_index!r} is not known; expected one of {KNN_INDEXES}")
        if not 0.0 < self.exemplar_fraction <= 1.0:
            raise ValueError(f"exemplar_fraction={self.exemplar_fraction} must lie in (0, 1]")
        for name in ("epochs", "batch_size", "knn", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive integer")
        if self.gradient_neighbours is not None and (isinstance(self.gradient_neighbours, bool)
                                                     or not isinstance(self.gradient_neighbours, int)
                                                     or self.gradient_neighbours < 1):
            raise ValueError(f"gradient_neighbours={self.gradient_neighbours!r} must be a positive integer "
                             "(None: all k)")
        if self.cached_trunk and not self.neighbour_gradient:
            raise ValueError("cached_trunk re-encodes the neighbours from cached trunk features: it needs "
                             "neighbour_gradient=True")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed={self.seed!r} must be an integer in [0, 2**63 - 1], what torch's generators take")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs={self.warmup_epochs} must be >= 0 (0 disables warm-up)")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate={self.learning_rate} must be a finite positive number")
        if self.init_from is not None:
            self.init_from = str(self.init_from)

    @property
    def gradient_neighbours_in_use(self) -> int | None:
        """How many of each row's nearest neighbours the kNN prior re-encodes with gradient, or None when that is
        not a choice this recipe makes: all k (g ≥ k), the exact search, no neighbour gradient, a cached trunk."""
        applies = self.exemplar_search == "knn" and self.neighbour_gradient and not self.cached_trunk
        g = self.gradient_neighbours
        return g if applies and g is not None and g < self.knn else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        return _from_dict(cls, values)

    @classmethod
    def from_recorded(cls, values: dict[str, Any]) -> "TrainConfig":
        """The recipe a bundle or checkpoint recorded: a field added since it was written takes the value that
        runs of its time trained under (not today's default), and a malformed value is a ValueError."""
        try:
            return _from_dict(cls, {**TRAIN_SETTINGS_ADDED_SINCE_FIRST_RELEASE, **values})
        except TypeError as error:
            raise ValueError(f"the recorded training recipe is malformed ({error})") from error


# TrainConfig fields newer than the first release, with the value runs from before each of them trained under.
# knn_index: those runs searched exactly, which "auto" does below APPROXIMATE_FROM exemplars, bit for bit; "auto"
# (the default) lets them resume without the setting, and only one of more exemplars would resume approximate.
TRAIN_SETTINGS_ADDED_SINCE_FIRST_RELEASE = {"init_from": None, "init_sha256": None, "knn_query": "cache",
                                            "leave_one_out": True, "patience_after_warmup": False,
                                            "gradient_neighbours": None, "cached_trunk": False, "knn_index": "auto"}


def _from_dict(cls: type, values: dict[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; known fields are {sorted(known)}")
    return cls(**values)
