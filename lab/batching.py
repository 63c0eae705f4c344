"""The trainers' batcher: a seeded shuffle per epoch, each batch through an augmentation."""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np

# (images, targets, rng) -> augmented (images, targets); the arrays are the batch's own copies.
Augment = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled batches passed through ``augment`` (training only).

    One generator drives both the order and the augmentation, drawn in the order the released
    models were trained with: a permutation at start, each batch's augmentation draws, a new
    permutation at the end of every epoch. Changing that order changes the weights the model
    cards' commands produce.
    """

    def __init__(
        self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, augment: Augment
    ) -> None:
        super().__init__()
        self.x, self.y, self.batch_size, self.augment = x, y, batch_size, augment
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.x))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        picked = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        # Fancy indexing copies, so augmenting in place never touches the training arrays.
        return self.augment(self.x[picked], self.y[picked], self.rng)
