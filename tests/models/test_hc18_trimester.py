"""Trimester labels by Hadlock's formula, and the committed trimester classifier on real
validation images."""

from __future__ import annotations

import json

import numpy as np
from scipy.stats import binom

from core.config import load_settings
from lab.hc18 import SPLIT_FILE, list_images
from lab.train_classifier import MODEL_NAME, arrays
from lab.trimester import trimester_index
from models.serving import ModelCache
from tests.conftest import HC18_DIR


def test_trimester_boundaries_are_14_and_28_weeks() -> None:
    assert trimester_index(85.0) == 0  # 13.7 weeks
    assert trimester_index(95.0) == 1  # 14.3 weeks
    assert trimester_index(255.0) == 1  # 27.7 weeks
    assert trimester_index(262.0) == 2  # 28.5 weeks


def test_released_classifier_on_validation_images() -> None:
    settings = load_settings()
    # The worker's own loading path: the sha256 in the manifest is checked before loading.
    loaded = ModelCache().get(settings.MODEL_DIR, MODEL_NAME)
    manifest = loaded.manifest
    names = set(json.loads(SPLIT_FILE.read_text())["validation"])
    # Every validation image there is: 22 in the committed sample, 155 in the full set.
    images = [image for image in list_images(HC18_DIR) if image.name in names]
    x, y = arrays(images, manifest.input_height, manifest.input_width)
    predicted = np.asarray(loaded.model.predict_on_batch(x)).argmax(axis=1)
    # A model as accurate as the card says gets at least this many right with 99 % probability
    # (binomial); on the sample that is 15 of 22, where guessing the commonest class gets 10.
    least = binom.ppf(0.01, len(images), manifest.metrics["accuracy"])
    assert (predicted == y).sum() >= least, (predicted.tolist(), y.tolist())
    assert manifest.classes == {0: "first", 1: "second", 2: "third"}
