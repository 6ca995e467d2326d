"""ExemplarLookup: which images of a batch are exemplars of a generator, found by their bytes.

An exemplar's latent mean is cached in the generator, so the plugin need not encode it again. Keeping every
exemplar's bytes as a key would hold the whole set in RAM a second time; this keeps one fingerprint (a hash of
the image's bytes) and the order that sorts them, 16 bytes per exemplar, and confirms each fingerprint that
matches by comparing the image with the exemplar itself, read by index.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from .exemplar_images import ExemplarImages


class ExemplarLookup:
    """Row numbers in an exemplar set of the images that are, byte for byte, one of its exemplars.

    Where the set holds the same image more than once, the last of them is the one found.

    Args:
        exemplars: the exemplar set, or its uint8 images N×C×H×W.
    """

    def __init__(self, exemplars: ExemplarImages | torch.Tensor) -> None:
        self.exemplars = exemplars if isinstance(exemplars, ExemplarImages) else ExemplarImages(exemplars)
        fingerprints = np.concatenate([_fingerprints(chunk) for chunk in self.exemplars.chunks()])
        self.order = np.argsort(fingerprints, kind="stable")  # equal fingerprints stay in row order
        self.sorted_fingerprints = fingerprints[self.order]

    def find(self, images: torch.Tensor) -> torch.Tensor:
        """For uint8 images B×C×H×W, the row of each in the exemplar set, or -1 where it is none of them (int64, CPU)."""
        images = images.cpu()
        keys = _fingerprints(images)
        first = np.searchsorted(self.sorted_fingerprints, keys, side="left")
        stop = np.searchsorted(self.sorted_fingerprints, keys, side="right")
        found = np.full(len(keys), -1, dtype=np.int64)
        for row in np.flatnonzero(stop > first):
            for position in range(stop[row] - 1, first[row] - 1, -1):  # the last exemplar with these bytes first
                candidate = int(self.order[position])
                if torch.equal(self.exemplars[candidate], images[row]):
                    found[row] = candidate
                    break
        return torch.from_numpy(found)


def _fingerprints(images: torch.Tensor) -> np.ndarray:
    """A 64-bit hash (BLAKE2b) of each image's bytes, the same in every process."""
    rows = images.contiguous().reshape(images.shape[0], -1).numpy()
    digests = b"".join(hashlib.blake2b(row.tobytes(), digest_size=8).digest() for row in rows)
    return np.frombuffer(digests, dtype=np.int64).copy()
