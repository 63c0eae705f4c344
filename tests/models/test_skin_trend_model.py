"""The committed skin-trend ConvLSTM, checked on fresh synthetic series it never saw."""

from __future__ import annotations

import numpy as np
import pytest

from core.config import load_settings
from lab.skin_sequences import make_sequences
from lab.train_sequence import MODEL_NAME, SEED, predict, roc_auc
from models.serving import ModelCache
from pipelines.sequence import FRAMES_INPUT, MASK_INPUT

# A seed none of training, validation or test used.
FRESH_SEED = SEED + 1000
SERIES = 60


@pytest.fixture(scope="module")
def loaded():
    # The worker's own loading path: the sha256 in the manifest is checked before loading.
    return ModelCache().get(load_settings().MODEL_DIR, MODEL_NAME)


@pytest.fixture(scope="module")
def fresh_series():
    return make_sequences(SERIES, FRESH_SEED)


def test_released_model_tells_improving_from_deteriorating_series(loaded, fresh_series) -> None:
    probability = predict(loaded.model, fresh_series)
    # Bounds well inside the model card's test metrics (AUC and accuracy on synthetic series).
    assert roc_auc(fresh_series.labels, probability) >= 0.9
    assert ((probability >= 0.5) == fresh_series.labels).mean() >= 0.85


def test_released_model_ignores_masked_frames(loaded, fresh_series) -> None:
    frames, mask = fresh_series.frames[:4].astype(np.float32), fresh_series.mask[:4]
    before = np.asarray(loaded.model.predict_on_batch({FRAMES_INPUT: frames, MASK_INPUT: mask}))
    scrambled = frames.copy()
    scrambled[~mask] = 255.0 - scrambled[~mask]
    after = np.asarray(loaded.model.predict_on_batch({FRAMES_INPUT: scrambled, MASK_INPUT: mask}))
    np.testing.assert_allclose(after, before, atol=1e-6)


def test_released_model_manifest_describes_a_sequence_model(loaded) -> None:
    manifest = loaded.manifest
    assert manifest.max_frames == 30
    assert manifest.classes == {0: "deteriorating", 1: "improving"}
    assert loaded.model.input[FRAMES_INPUT].shape[1:] == (30, 64, 64, 3)
