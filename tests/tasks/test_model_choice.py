"""Which model and which threshold a job uses: *_MODEL_VERSION pins a version, params.model picks
another model of the task (params.model_version one of its versions), params.uncertain_below
beats the model card's, which beats the setting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from PIL import Image

from core.config import load_settings
from core.jobtypes import JOB_TYPES
from core.settings_access import SETTINGS_KEY
from models.serving import classification_model, configured_model, job_model
from pipelines.base import PipelineError, no_progress
from tasks.classification import classify_with_model
from tests.model_builders import (
    BINARY_CLASSES,
    TRIMESTER_CLASSES,
    bright_pixel_model,
    mean_intensity_classifier,
    write_classifier,
    write_registry_model,
)

# Distinct from each other and from the setting's default (0.6), so each source is told apart.
CARD_THRESHOLD = 0.8
SETTING_THRESHOLD = 0.3


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two versions of one model, a classifier with a threshold on its card and one without."""
    root = tmp_path_factory.mktemp("registry")
    for version in ("1.0.0", "1.1.0"):
        write_registry_model(
            root,
            "versioned",
            version,
            mean_intensity_classifier(),
            TRIMESTER_CLASSES,
            "classification",
        )
    write_registry_model(root, "segmenter", "1.0.0", bright_pixel_model(), BINARY_CLASSES)
    write_classifier(root, "carded", uncertain_below=CARD_THRESHOLD)
    write_classifier(root, "bare", uncertain_below=None)
    return root


def settings_for(registry: Path, **overrides: object) -> Any:
    """Settings on the test registry."""
    return load_settings().model_copy(update={"MODEL_DIR": registry, **overrides})


@pytest.mark.parametrize("pinned", ["", "1.0.0", "1.1.0"])
def test_a_pinned_model_version_is_loaded_else_the_newest(registry: Path, pinned: str) -> None:
    settings = settings_for(
        registry, CLASSIFICATION_MODEL="versioned", CLASSIFICATION_MODEL_VERSION=pinned
    )
    assert classification_model(settings).manifest.version == (pinned or "1.1.0")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ("carded", "1.0.0")),
        ({"model": "versioned"}, ("versioned", "1.1.0")),
        ({"model": "versioned", "model_version": "1.0.0"}, ("versioned", "1.0.0")),
        ({"model_version": "1.0.0"}, ("carded", "1.0.0")),
    ],
)
def test_params_pick_the_model_and_version(
    registry: Path, params: dict[str, Any], expected: tuple[str, str]
) -> None:
    settings = settings_for(registry, CLASSIFICATION_MODEL="carded")
    loaded = job_model(settings, JOB_TYPES["classification"], params)
    assert (loaded.manifest.name, loaded.manifest.version) == expected


def test_a_model_of_another_task_fails_the_job_as_model_unavailable(registry: Path) -> None:
    # The web refuses this at upload; a default set to the wrong kind of model is caught here.
    settings = settings_for(registry, CLASSIFICATION_MODEL="segmenter")
    with pytest.raises(PipelineError, match="is a segmentation model") as failure:
        job_model(settings, JOB_TYPES["classification"], {})
    assert failure.value.code == "model_unavailable"
    assert configured_model(settings, "CLASSIFICATION_MODEL").manifest.task == "segmentation"


@pytest.fixture
def app_with(registry: Path) -> Iterator[Callable[..., Flask]]:
    """An app context whose settings name the test registry, plus the given overrides."""
    contexts = []

    def make(**overrides: object) -> Flask:
        app = Flask(__name__)
        app.extensions[SETTINGS_KEY] = load_settings().model_copy(
            update={
                "MODEL_DIR": registry,
                "CLASSIFICATION_UNCERTAIN_BELOW": SETTING_THRESHOLD,
                **overrides,
            }
        )
        context = app.app_context()
        context.push()
        contexts.append(context)
        return app

    yield make
    for context in reversed(contexts):
        context.pop()


@pytest.fixture
def mixed_set(tmp_path: Path) -> list[Path]:
    """A dark and a bright image: the set's best class has a probability near one half."""
    paths = []
    for level in (10, 245):
        path = tmp_path / f"{level}.png"
        Image.fromarray(np.full((60, 90), level, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def run(paths: list[Path], params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The classification's result and the name of the model that made it."""
    output = classify_with_model(paths, params, no_progress)
    assert output.model is not None
    return output.result, output.model.name


@pytest.mark.parametrize(
    ("default_model", "params", "model", "threshold"),
    [
        ("carded", {}, "carded", CARD_THRESHOLD),
        ("bare", {}, "bare", SETTING_THRESHOLD),
        ("carded", {"uncertain_below": 0.1}, "carded", 0.1),
        ("bare", {"uncertain_below": 0.9}, "bare", 0.9),
        ("bare", {"model": "carded"}, "carded", CARD_THRESHOLD),
        ("carded", {"model": "bare", "uncertain_below": 0.2}, "bare", 0.2),
    ],
)
def test_the_threshold_comes_from_params_else_the_card_else_the_setting(
    app_with: Callable[..., Flask],
    mixed_set: list[Path],
    default_model: str,
    params: dict[str, Any],
    model: str,
    threshold: float,
) -> None:
    app_with(CLASSIFICATION_MODEL=default_model)
    result, used = run(mixed_set, params)
    assert used == model
    assert result["uncertain_below"] == threshold
    confident = result["confidence"] >= threshold
    assert result["prediction"] == (result["most_probable"] if confident else "uncertain")


def test_the_same_set_is_uncertain_or_not_by_the_threshold_alone(
    app_with: Callable[..., Flask], mixed_set: list[Path]
) -> None:
    app_with(CLASSIFICATION_MODEL="carded")
    strict, _ = run(mixed_set, {})
    assert 0.1 < strict["confidence"] < CARD_THRESHOLD  # the card's bar is above this set
    assert strict["prediction"] == "uncertain"
    lenient, _ = run(mixed_set, {"uncertain_below": 0.1})
    assert lenient["prediction"] == lenient["most_probable"] != "uncertain"


def test_params_model_is_not_held_to_the_default_models_pinned_version(
    app_with: Callable[..., Flask], mixed_set: list[Path]
) -> None:
    # The pin names a version of the default classifier; another model is taken at its newest.
    app_with(CLASSIFICATION_MODEL="carded", CLASSIFICATION_MODEL_VERSION="1.0.0")
    output = classify_with_model(mixed_set, {"model": "versioned"}, no_progress)
    assert output.model is not None
    assert (output.model.name, output.model.version) == ("versioned", "1.1.0")
