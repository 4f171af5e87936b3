"""Shuffled batches straight from the uint8 cache: no per-item Dataset, no PIL, no worker processes.

Batch `step` is a pure function of (seed, step, rank), so a resumed run sees exactly the batches
the uninterrupted run would have seen, and each DDP rank sees its own shard. That holds for the
optional mirroring too: which faces of a batch are flipped is drawn from the same three numbers.
"""

from __future__ import annotations

import numpy as np
import torch

MIRROR_STREAM = 1  # keeps the mirroring draws apart from the epoch permutations, which are seeded with [seed, epoch]


class BatchLoader:
    def __init__(self, images: np.ndarray, indices: np.ndarray, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1, mirror: bool = False, labels: np.ndarray | None = None) -> None:
        """labels: (N, K) +1 / -1 rows of a conditional model's attributes, dealt out with their images."""
        self.images, self.indices, self.batch_size, self.labels = images, np.asarray(indices), batch_size, labels
        self.seed, self.rank, self.world_size, self.mirror = seed, rank, world_size, mirror
        self.steps_per_epoch = len(self.indices) // (batch_size * world_size)
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{len(self.indices)} images cannot fill one batch of {batch_size} on each of {world_size} process(es); "
                "lower train.batch_size or use more data"
            )
        self._epoch, self._order = -1, self.indices

    def epoch_order(self, epoch: int) -> np.ndarray:
        """This rank's image indices for an epoch: one shared permutation, dealt out by rank."""
        if epoch != self._epoch:
            permutation = np.random.default_rng([self.seed, epoch]).permutation(self.indices)
            self._epoch, self._order = epoch, permutation[self.rank :: self.world_size]
        return self._order

    def batch(self, step: int) -> torch.Tensor:
        """uint8 (B, R, R, 3) for a global step; sorted indices make memory-mapped reads sequential.

        With `mirror`, each image is flipped left to right with probability 1/2 (StyleGAN2-ADA's x-flips).
        """
        chosen = self._chosen(step)
        batch = self.images[chosen]  # fancy indexing copies, so flipping in place leaves the cache alone
        if self.mirror:
            flip = np.random.default_rng([self.seed, step, self.rank, MIRROR_STREAM]).random(len(batch)) < 0.5
            batch[flip] = batch[flip, :, ::-1]
        return torch.from_numpy(batch)

    def _chosen(self, step: int) -> np.ndarray:
        epoch, i = divmod(step, self.steps_per_epoch)
        return np.sort(self.epoch_order(epoch)[i * self.batch_size : (i + 1) * self.batch_size])

    def batch_labels(self, step: int) -> torch.Tensor | None:
        """float (B, K): the labels of batch(step)'s images, row for row (a mirrored face keeps its labels); None
        without labels."""
        return None if self.labels is None else torch.from_numpy(self.labels[self._chosen(step)].astype(np.float32))

    def random_labels(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """float (n, K): the full label rows of n training faces drawn from `generator` (the step's), so that the
        combinations asked of G are ones the data has; None without labels."""
        if self.labels is None:
            return None
        rows = torch.randint(len(self.indices), (n,), generator=generator, device=generator.device).cpu().numpy()
        return torch.from_numpy(self.labels[self.indices[rows]].astype(np.float32))
