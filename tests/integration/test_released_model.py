"""The committed head model through the running system (API, gpu stage, cpu stage) on HC18."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.config import load_settings
from models.model_registry import ModelRegistry
from pipelines.head_circumference import inset
from pipelines.perimeter import measure_perimeter
from tests.builders import face_photo, no_face_photo, submit_job
from tests.conftest import hc18_images
from tests.integration.conftest import WorkerStack, signed_in, succeeded_job

pytestmark = pytest.mark.integration

# Validation-split images (lab/hc18_split.json): never seen in training.
IMAGES = ["000_HC.png", "015_HC.png"]


def test_released_model_measures_hc18_images_through_the_system(
    released_model_stack: WorkerStack,
) -> None:
    images = hc18_images()
    stack = released_model_stack
    newest = ModelRegistry(load_settings().MODEL_DIR).manifest("hc18-unet")
    with signed_in(stack) as (client, headers):
        # One request per image: each has its own pixel size.
        for image in (images[name] for name in IMAGES):
            response = submit_job(
                client, headers, [(image.image_path.read_bytes(), image.name)],
                {"pixel_spacing_mm": image.pixel_size_mm}, job_type="head_circumference",
            )  # fmt: skip
            assert response.status_code == 202
            job = succeeded_job(stack, client, headers, response.headers["Location"])
            assert job["model"]["name"] == "hc18-unet"
            assert job["model"]["version"] == newest.version
            result = job["result"]
            assert result["head_circumference_mm"] == pytest.approx(
                image.head_circumference_mm, abs=6.0
            )
            # Stage 2 measured the stage-1 mask with that version's offset and ellipse fit.
            urls = {artifact["name"]: artifact["url"] for artifact in job["artifacts"]}
            mask = (
                np.asarray(
                    Image.open(io.BytesIO(client.get(urls["mask.png"], headers=headers).data))
                )
                > 127
            )
            expected = inset(
                measure_perimeter(mask, image.pixel_size_mm, newest.ellipse_fit),
                newest.boundary_offset_px,
            )
            assert result["boundary_offset_px"] == newest.boundary_offset_px
            assert result["head_circumference_mm"] == pytest.approx(
                expected.circumference_mm, abs=1e-3
            )


def test_released_sequence_model_runs_a_photo_series_through_the_chain(
    released_model_stack: WorkerStack,
) -> None:
    stack = released_model_stack
    with signed_in(stack) as (client, headers):
        files = [(face_photo(), "a.jpg"), (no_face_photo(), "b.jpg"), (face_photo(), "c.jpg")]
        response = submit_job(client, headers, files, {}, job_type="sequence_inference")
        assert response.status_code == 202
        job = succeeded_job(stack, client, headers, response.headers["Location"])
        assert job["model"]["name"] == "skin-trend-convlstm"
        assert 0.0 <= job["result"]["p_improving"] <= 1.0
        assert job["result"]["frames_used"] == [0, 2]


def test_released_classifier_predicts_a_trimester_through_the_worker(
    released_model_stack: WorkerStack,
) -> None:
    images = hc18_images()
    stack = released_model_stack
    with signed_in(stack) as (client, headers):
        files = [(images[name].image_path.read_bytes(), name) for name in IMAGES]
        response = submit_job(client, headers, files, {}, job_type="classification")
        assert response.status_code == 202
        job = succeeded_job(stack, client, headers, response.headers["Location"])
        assert job["model"]["name"] == "hc18-trimester"
        result = job["result"]
        assert result["prediction"] in {"first", "second", "third", "uncertain"}
        assert len(result["images"]) == len(IMAGES)
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
