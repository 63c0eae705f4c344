"""Perimeter jobs submitted through the API and run by a real worker process."""

from __future__ import annotations

import io
import math

import pytest
from flask.testing import FlaskClient
from PIL import Image

from tests.builders import blank_png, ellipse_mask_png, submit_job
from tests.conftest import hc18_images
from tests.integration.conftest import WorkerStack, wait_for_final

pytestmark = pytest.mark.integration

Client = tuple[FlaskClient, dict[str, str]]


def submit_mask(client: FlaskClient, headers: dict[str, str], png: bytes, spacing: float) -> str:
    """Submit a perimeter job and return its URL."""
    response = submit_job(client, headers, [(png, "mask.png")], {"pixel_spacing_mm": spacing})
    assert response.status_code == 202, response.get_json()
    return response.headers["Location"]


def test_hc18_mask_reaches_succeeded_with_the_reference_circumference(
    stack_client: Client, worker_stack: WorkerStack
) -> None:
    client, headers = stack_client
    image = hc18_images()["000_HC.png"]
    png = image.mask_path.read_bytes()

    job = wait_for_final(client, headers, submit_mask(client, headers, png, image.pixel_size_mm))

    assert job["status"] == "succeeded", (job, worker_stack.log())
    assert job["progress"] == 100 and job["attempts"] == 1
    # The mask's outer edge runs about 1 mm longer than the sonographer's outline (dataset README).
    assert job["result"]["circumference_mm"] == pytest.approx(image.head_circumference_mm, abs=3.0)
    [overlay] = job["artifacts"]
    download = client.get(overlay["url"], headers=headers)
    assert download.status_code == 200 and download.mimetype == "image/png"
    assert Image.open(io.BytesIO(download.data)).size == (800, 540)


def test_synthetic_ellipse_gives_the_analytic_circumference(stack_client: Client) -> None:
    client, headers = stack_client
    a, b, spacing = 150.0, 90.0, 0.2
    png = ellipse_mask_png(width=500, height=400, center=(250, 200), semi_axes=(a, b), angle_deg=30)
    job = wait_for_final(client, headers, submit_mask(client, headers, png, spacing))
    h = ((a - b) / (a + b)) ** 2
    expected = math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h))) * spacing
    assert job["status"] == "succeeded"
    assert job["result"]["circumference_mm"] == pytest.approx(expected, rel=0.005)


def test_a_bad_job_fails_with_its_reason_and_the_next_job_still_runs(
    stack_client: Client, worker_stack: WorkerStack
) -> None:
    client, headers = stack_client
    bad_url = submit_mask(client, headers, blank_png(), 0.1)
    good_url = submit_mask(client, headers, ellipse_mask_png(), 0.1)

    bad = wait_for_final(client, headers, bad_url)
    good = wait_for_final(client, headers, good_url)

    assert bad["status"] == "failed"
    assert bad["error"]["code"] == "empty_mask" and bad["error"]["message"]
    assert bad["result"] is None and bad["artifacts"] == []
    assert good["status"] == "succeeded"
    assert worker_stack.process.poll() is None
