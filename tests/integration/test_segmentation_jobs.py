"""Segmentation jobs through the API and a real worker, with a tiny real model from a registry."""

from __future__ import annotations

import io

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image

from tests.builders import dicom_bytes, encode, submit_job
from tests.integration.conftest import TEST_MODEL, WorkerStack, wait_for_final

pytestmark = pytest.mark.integration

Client = tuple[FlaskClient, dict[str, str]]


def half_bright(height: int = 90, width: int = 160) -> np.ndarray:
    """Dark left half, bright right half."""
    pixels = np.zeros((height, width), dtype=np.uint8)
    pixels[:, width // 2 :] = 240
    return pixels


def test_segmentation_job_records_the_model_and_stores_mask_and_overlay(
    stack_client: Client, worker_stack: WorkerStack
) -> None:
    client, headers = stack_client
    png = encode(Image.fromarray(half_bright()), "PNG")
    response = submit_job(client, headers, [(png, "scan.png")], {}, job_type="segmentation")
    assert response.status_code == 202, response.get_json()

    job = wait_for_final(client, headers, response.headers["Location"])

    assert job["status"] == "succeeded", (job, worker_stack.log())
    assert job["model"]["name"] == TEST_MODEL and job["model"]["version"] == "1.0.0"
    assert len(job["model"]["sha256"]) == 64
    assert job["result"]["classes"]["object"]["fraction"] == pytest.approx(0.5, abs=0.05)
    names = {artifact["name"]: artifact["url"] for artifact in job["artifacts"]}
    assert set(names) == {"mask.png", "overlay.png"}
    mask = Image.open(io.BytesIO(client.get(names["mask.png"], headers=headers).data))
    assert mask.size == (160, 90)
    assert "loaded model tiny-bright" in worker_stack.log()  # warmed up after the fork


def test_dicom_upload_uses_its_pixel_spacing(stack_client: Client) -> None:
    client, headers = stack_client
    dicom = dicom_bytes(half_bright(), (0.25, 0.25))
    response = submit_job(client, headers, [(dicom, "scan.dcm")], {}, job_type="segmentation")
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["inputs"][0]["content_type"] == "application/dicom"
    job = wait_for_final(client, headers, response.headers["Location"])
    assert job["status"] == "succeeded"
    area = job["result"]["classes"]["object"]
    assert area["area_mm2"] == pytest.approx(area["pixels"] * 0.0625)


def test_corrupt_dicom_is_refused_at_upload(stack_client: Client) -> None:
    client, headers = stack_client
    truncated = dicom_bytes(half_bright(), (0.25, 0.25))[:300]
    response = submit_job(client, headers, [(truncated, "scan.dcm")], {}, job_type="segmentation")
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "corrupt_image"
