"""Hadlock's formula, and the committed trimester classifier on real validation images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.config import load_settings
from lab.hc18 import SPLIT_FILE, list_images
from lab.train_classifier import MODEL_NAME, arrays
from lab.trimester import gestational_age_weeks, trimester_index
from models.serving import ModelCache
from tests.conftest import HC18_DIR


@pytest.mark.parametrize(
    ("hc_mm", "weeks"),
    # Hadlock 1984 (HC in cm): 8.96 + 0.540 HC + 0.0003 HC^3.
    [(100.0, 8.96 + 5.40 + 0.30), (175.0, 8.96 + 9.45 + 0.0003 * 17.5**3), (300.0, 33.26)],
)
def test_hadlock_gestational_age(hc_mm: float, weeks: float) -> None:
    assert gestational_age_weeks(hc_mm) == pytest.approx(weeks, abs=0.01)


def test_trimester_boundaries_are_14_and_28_weeks() -> None:
    assert trimester_index(85.0) == 0  # 13.7 weeks
    assert trimester_index(95.0) == 1  # 14.3 weeks
    assert trimester_index(255.0) == 1  # 27.7 weeks
    assert trimester_index(262.0) == 2  # 28.5 weeks


@pytest.mark.skipif(not HC18_DIR.is_dir(), reason=f"no HC18 data at {HC18_DIR}")
def test_released_classifier_on_validation_images() -> None:
    settings = load_settings()
    # The worker's own loading path: the sha256 in the manifest is checked before loading.
    loaded = ModelCache().get(settings.MODEL_DIR, MODEL_NAME)
    manifest = loaded.manifest
    names = set(json.loads(SPLIT_FILE.read_text())["validation"])
    images = [image for image in list_images(HC18_DIR) if image.name in names][:60]
    x, y = arrays(images, manifest.input_height, manifest.input_width)
    predicted = np.asarray(loaded.model.predict_on_batch(x)).argmax(axis=1)
    # A bound well inside the model card's validation accuracy.
    assert (predicted == y).mean() >= 0.7
    assert manifest.classes == {0: "first", 1: "second", 2: "third"}
