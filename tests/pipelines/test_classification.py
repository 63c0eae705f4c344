"""Image-set classification: per-image probabilities, their mean, and the uncertain outcome."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.model_registry import ModelRegistry
from pipelines.base import no_progress
from pipelines.classification import UNCERTAIN, classify_images
from tests.model_builders import mean_intensity_classifier, write_classifier


@pytest.fixture(scope="module")
def model_and_spec(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("registry")
    write_classifier(root, "toy")
    return mean_intensity_classifier(), ModelRegistry(root).verified("toy")


def gray(tmp_path: Path, name: str, level: int) -> Path:
    path = tmp_path / name
    Image.fromarray(np.full((60, 90), level, dtype=np.uint8)).save(path)
    return path


def test_each_image_and_the_set_get_probabilities(model_and_spec, tmp_path: Path) -> None:
    model, spec = model_and_spec
    paths = [gray(tmp_path, "a.png", 230), gray(tmp_path, "b.png", 240)]
    result = classify_images(paths, model, spec, 0.6, no_progress).result
    assert result["prediction"] == "third"
    assert [image["most_probable"] for image in result["images"]] == ["third", "third"]
    for probabilities in [result["probabilities"], *(i["probabilities"] for i in result["images"])]:
        assert set(probabilities) == {"first", "second", "third"}
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    mean_third = np.mean([i["probabilities"]["third"] for i in result["images"]])
    assert result["probabilities"]["third"] == pytest.approx(mean_third, abs=1e-4)


def test_disagreeing_images_average_to_uncertain(model_and_spec, tmp_path: Path) -> None:
    model, spec = model_and_spec
    paths = [gray(tmp_path, "dark.png", 10), gray(tmp_path, "bright.png", 245)]
    result = classify_images(paths, model, spec, 0.6, no_progress).result
    assert result["prediction"] == UNCERTAIN
    assert result["confidence"] < 0.6
    assert result["most_probable"] in {"first", "third"}
    # The same set is a prediction when the bar is lower.
    lenient = classify_images(paths, model, spec, 0.4, no_progress).result
    assert lenient["prediction"] == lenient["most_probable"]
