"""Bring your own model, end to end: models saved the way the original apps saved them are
imported with ``flask --app webapp models import``, chosen per job, and served by a running
worker with exactly known classes and areas; a new version dropped into the registry is used by
the next job without restarting the worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image

from core.settings_access import current_settings
from models.importer import ImportRequest, import_model
from tests.builders import encode, submit_job
from tests.integration.conftest import WorkerStack, succeeded_job
from tests.model_builders import (
    CXR_CLASSES,
    SEX_CLASSES,
    SEX_INPUT,
    TISSUE_CLASSES,
    TISSUE_INPUT,
    mean_intensity_classifier,
    tissue_unet,
    write_keras2_sequential_h5,
)

pytestmark = pytest.mark.integration

Client = tuple[FlaskClient, dict[str, str]]
# Rows of the tissue scan (at the U-Net's own size, so no resizing blurs a boundary): intensity
# 0 (rest), 128 (muscle: 0.502 is between 1/3 and 2/3) and 255 (fat).
BANDS = ((10, 0), (12, 128), (10, 255))
SPACING_MM = 0.5


def gray_png(level: int, shape: tuple[int, ...]) -> bytes:
    return encode(Image.fromarray(np.full(shape[:2], level, dtype=np.uint8)), "PNG")


def tissue_png() -> bytes:
    rows = [np.full((height, TISSUE_INPUT[1]), level, np.uint8) for height, level in BANDS]
    return encode(Image.fromarray(np.vstack(rows)), "PNG")


@pytest.fixture(scope="module")
def imported(worker_stack: WorkerStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three models, imported into the running worker's registry with the command."""
    folder = tmp_path_factory.mktemp("byom")
    sex = write_keras2_sequential_h5(folder / "sex_classifier.h5")
    mean_intensity_classifier().save(folder / "covid_xray.keras")
    tissue_unet().save(folder / "tissue_unet.keras")
    threshold = ["--uncertain-below", "0.6"]
    commands = [
        [sex, "us-sex", "classification", SEX_CLASSES, []],
        [folder / "covid_xray.keras", "cxr", "classification", CXR_CLASSES, threshold],
        [folder / "tissue_unet.keras", "tissue", "segmentation", TISSUE_CLASSES, []],
    ]
    runner = worker_stack.app.test_cli_runner()
    for path, name, task, classes, extra in commands:
        arguments = ["models", "import", str(path), "--name", name, "--version", "1.0.0"]
        arguments += ["--task", task, "--classes", ",".join(classes), *extra]
        result = runner.invoke(args=arguments)
        assert result.exit_code == 0, result.output
        assert f"imported {name} 1.0.0: {task}" in result.output
    with worker_stack.app.app_context():
        return current_settings().MODEL_DIR


def test_a_keras2_h5_sigmoid_cnn_classifies_each_image(
    imported: Path, stack_client: Client, worker_stack: WorkerStack
) -> None:
    client, headers = stack_client
    files = [(gray_png(10, SEX_INPUT), "dark.png"), (gray_png(245, SEX_INPUT), "bright.png")]
    response = submit_job(client, headers, files, {"model": "us-sex"}, "classification")
    job = succeeded_job(worker_stack, client, headers, response.headers["Location"])
    assert (job["model"]["name"], job["model"]["version"]) == ("us-sex", "1.0.0")
    images = job["result"]["images"]
    assert [image["most_probable"] for image in images] == ["female", "male"]
    assert images[0]["probabilities"] == {"female": 1.0, "male": 0.0}
    assert images[1]["probabilities"] == {"female": 0.0, "male": 1.0}
    # Half and half over the set: below the default 0.6, so uncertain.
    assert job["result"]["prediction"] == "uncertain"


def test_a_softmax_classifier_with_its_own_threshold(
    imported: Path, stack_client: Client, worker_stack: WorkerStack
) -> None:
    client, headers = stack_client
    files = [(gray_png(128, (60, 90)), "chest.png")]
    response = submit_job(client, headers, files, {"model": "cxr"}, "classification")
    job = succeeded_job(worker_stack, client, headers, response.headers["Location"])
    mean = np.float32(128) / np.float32(255)
    logits = np.array([0.0, 20 * mean - 8, 40 * mean - 24])
    expected = np.exp(logits) / np.exp(logits).sum()
    result = job["result"]
    assert result["probabilities"] == {
        name: round(float(p), 4) for name, p in zip(CXR_CLASSES, expected, strict=True)
    }
    assert (result["prediction"], result["uncertain_below"]) == ("pneumonia", 0.6)


def segment(
    worker_stack: WorkerStack, client: FlaskClient, headers: dict[str, str], params: dict
) -> dict:
    """A segmentation job of the tissue scan with these params, once it succeeded."""
    files = [(tissue_png(), "tissue.png")]
    params = {"pixel_spacing_mm": SPACING_MM, **params}
    response = submit_job(client, headers, files, params, "segmentation")
    assert response.status_code == 202, response.json
    return succeeded_job(worker_stack, client, headers, response.headers["Location"])


def areas(job: dict) -> dict[str, tuple[int, float]]:
    return {name: (c["pixels"], c["area_mm2"]) for name, c in job["result"]["classes"].items()}


def test_a_unet_segments_and_a_new_version_is_used_without_a_restart(
    imported: Path, stack_client: Client, worker_stack: WorkerStack, tmp_path: Path
) -> None:
    client, headers = stack_client
    width = TISSUE_INPUT[1]
    pixels = {
        name: rows * width for name, (rows, _level) in zip(TISSUE_CLASSES, BANDS, strict=True)
    }
    first = segment(worker_stack, client, headers, {"model": "tissue"})
    assert first["model"]["version"] == "1.0.0"
    assert areas(first) == {name: (n, n * SPACING_MM**2) for name, n in pixels.items()}

    # Version 1.1.0 calls everything above 1/3 fat; drop it in while the worker runs.
    worker_pid = worker_stack.process.pid
    source = tmp_path / "tissue_unet_1_1.keras"
    tissue_unet(fat_bias=-60.0).save(source)
    import_model(ImportRequest(source, "tissue", "1.1.0", "segmentation", TISSUE_CLASSES), imported)
    newer = segment(worker_stack, client, headers, {"model": "tissue"})
    assert newer["model"]["version"] == "1.1.0"
    fat = pixels["muscle"] + pixels["fat"]
    assert areas(newer) == {
        "rest": (pixels["rest"], pixels["rest"] * SPACING_MM**2),
        "muscle": (0, 0.0),
        "fat": (fat, fat * SPACING_MM**2),
    }
    pinned = segment(worker_stack, client, headers, {"model": "tissue", "model_version": "1.0.0"})
    assert pinned["model"]["version"] == "1.0.0" and areas(pinned) == areas(first)
    assert worker_stack.process.pid == worker_pid and worker_stack.process.poll() is None
