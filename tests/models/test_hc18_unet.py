"""The committed HC18 U-Net, checked on real validation images the way the job measures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.config import load_settings
from lab.evaluate import score_images
from lab.hc18 import SPLIT_FILE, list_images
from lab.unet import build_unet
from models.serving import ModelCache
from tests.conftest import HC18_DIR

# Six fixed images: the first of the recorded validation split (never seen in training).
SAMPLE_SIZE = 6


def test_released_model_segments_and_measures_validation_images() -> None:
    settings = load_settings()
    # The worker's own loading path: the sha256 in the manifest is checked before loading.
    loaded = ModelCache().get(settings.MODEL_DIR, "hc18-unet")
    names = json.loads(SPLIT_FILE.read_text())["validation"][:SAMPLE_SIZE]
    by_name = {image.name: image for image in list_images(HC18_DIR)}

    scores = score_images(loaded.model, loaded.manifest, [by_name[name] for name in names])

    # Bounds from the model card's validation metrics: mean Dice well above 0.93, and no image
    # off by more than 7 mm (the worst of all 155 validation images: 6.86 mm for 1.3.0; of this
    # sample, 005_HC.png at 5.86 mm).
    assert np.mean([s.dice for s in scores]) >= 0.93, scores
    for score in scores:
        assert score.error_mm is not None and abs(score.error_mm) <= 7.0, score


# 1.0.0's measurements (inset, raw) in mm of the first validation images, as main measured them
# before postprocessing options existed (commit 30cf9b7): pinning 1.0.0 must still give them.
MEASURED_BY_1_0_0 = {
    "000_HC.png": (46.431064604201175, 47.13458152364076),
    "004_HC.png": (60.37188771691401, 60.994539024567395),
    "005_HC.png": (72.07812939582266, 73.25705365548905),
}


def test_version_1_0_0_still_measures_exactly_as_before() -> None:
    settings = load_settings()
    loaded = ModelCache().get(settings.MODEL_DIR, "hc18-unet", "1.0.0")
    assert loaded.manifest.test_time_flips == () and loaded.manifest.ellipse_fit == "least_squares"
    by_name = {image.name: image for image in list_images(HC18_DIR)}

    scores = score_images(loaded.model, loaded.manifest, [by_name[n] for n in MEASURED_BY_1_0_0])

    for score in scores:
        measured, raw = MEASURED_BY_1_0_0[score.name]
        assert score.measured_mm == pytest.approx(measured, abs=0.01), score
        assert score.measured_raw_mm == pytest.approx(raw, abs=0.01), score


def test_multi_class_unet_outputs_softmax_over_classes() -> None:
    model = build_unet((32, 48, 1), base_filters=4, depth=2, num_classes=3)
    x = np.random.default_rng(0).random((2, 32, 48, 1), dtype=np.float32)

    output = np.asarray(model.predict_on_batch(x))

    assert output.shape == (2, 32, 48, 3)
    assert model.layers[-1].activation.__name__ == "softmax"
    np.testing.assert_allclose(output.sum(axis=-1), 1.0, atol=1e-5)


def test_unet_refuses_input_not_divisible_by_its_depth() -> None:
    with pytest.raises(ValueError, match="divisible"):
        build_unet((30, 48, 1), depth=2)
