"""The trainers' shared batcher: every sample once per epoch, seeded, training arrays untouched."""

from __future__ import annotations

import numpy as np

from lab.batching import AugmentedBatches
from lab.train import augment_pairs
from lab.train_classifier import augment_images


def epoch_ids(batches: AugmentedBatches) -> list[int]:
    """The sample ids (stored in x) of one epoch, in batch order, then start the next epoch."""
    ids = [int(v) for i in range(len(batches)) for v in batches[i][0][:, 0, 0, 0]]
    batches.on_epoch_end()
    return ids


def keep(xs: np.ndarray, ys: np.ndarray, _rng: np.random.Generator) -> tuple:
    return xs, ys


def test_each_epoch_is_a_fresh_seeded_permutation_in_uneven_batches() -> None:
    x = np.arange(11, dtype=np.float32).reshape(11, 1, 1, 1)
    batches = AugmentedBatches(x, np.zeros(11), 4, seed=3, augment=keep)
    assert len(batches) == 3 and len(batches[2][0]) == 3
    first, second = epoch_ids(batches), epoch_ids(batches)
    assert sorted(first) == sorted(second) == list(range(11))
    assert first != second
    again = AugmentedBatches(x, np.zeros(11), 4, seed=3, augment=keep)
    assert epoch_ids(again) == first


def test_the_trainers_augmentations_never_change_the_training_arrays() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((9, 16, 24, 1)).astype(np.float32)
    masks = (rng.random((9, 16, 24, 1)) > 0.5).astype(np.float32)
    labels = rng.integers(0, 3, 9)
    for y, augment in ((masks, augment_pairs), (labels, augment_images)):
        x_before, y_before = x.copy(), y.copy()
        batches = AugmentedBatches(x, y, 4, seed=1, augment=augment)
        changed = [
            not np.array_equal(batches[i][0], x[batches.order[i * 4 : i * 4 + 4]]) for i in range(3)
        ]
        assert any(changed)
        assert np.array_equal(x, x_before) and np.array_equal(y, y_before)
