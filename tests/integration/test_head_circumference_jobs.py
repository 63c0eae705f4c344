"""Head circumference through the chain (gpu segmentation, then cpu measurement) in a real worker.

The stand-in model segments bright pixels, so a bright ellipse on a dark scan has a known
circumference: the chain's plumbing and geometry are checked exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from flask.testing import FlaskClient
from skimage import data

from pipelines import intergrowth
from pipelines.perimeter import ellipse_circumference
from tests.builders import bearer, dicom_bytes, encode, make_subject, make_user, submit_job
from tests.integration.conftest import TEST_MODEL, WorkerStack, wait_for_final

pytestmark = pytest.mark.integration

Client = tuple[FlaskClient, dict[str, str]]
SPACING = 0.15


def bright_ellipse(a: float = 180, b: float = 120) -> np.ndarray:
    """A bright filled ellipse, axis-aligned, in the middle of an 800x540 dark frame."""
    rows, cols = np.mgrid[0:540, 0:800]
    inside = ((cols - 400) / a) ** 2 + ((rows - 270) / b) ** 2 <= 1
    return np.where(inside, 230, 10).astype(np.uint8)


def run_job(client: FlaskClient, headers: dict[str, str], files, params) -> dict:
    """Submit a head circumference job and wait for it."""
    response = submit_job(client, headers, files, params, job_type="head_circumference")
    assert response.status_code == 202, response.get_json()
    return wait_for_final(client, headers, response.headers["Location"])


def test_chain_measures_the_head_and_records_model_and_artifacts(
    stack_client: Client, worker_stack: WorkerStack
) -> None:
    from PIL import Image

    client, headers = stack_client
    png = encode(Image.fromarray(bright_ellipse()), "PNG")
    job = run_job(client, headers, [(png, "head.png")], {"pixel_spacing_mm": SPACING})

    assert job["status"] == "succeeded", (job, worker_stack.log())
    assert job["progress"] == 100 and job["attempts"] == 1
    result = job["result"]
    # The tiny model works at 24x16, so the mask edge is only as good as that: within 2 %.
    expected = ellipse_circumference(180, 120) * SPACING
    assert result["head_circumference_mm"] == pytest.approx(expected, rel=0.02)
    assert result["semi_axes_a_mm"] == pytest.approx(180 * SPACING, rel=0.03)
    assert result["center_x_mm"] == pytest.approx(400 * SPACING, rel=0.02)
    assert set(result) >= {"center_y_mm", "semi_axes_b_mm", "angle_rad", "quality_flags"}
    assert job["model"]["name"] == TEST_MODEL
    assert {artifact["name"] for artifact in job["artifacts"]} == {"mask.png", "overlay.png"}


def test_dicom_pixel_spacing_gives_the_same_hc_as_png_with_that_spacing(
    stack_client: Client,
) -> None:
    from PIL import Image

    client, headers = stack_client
    pixels = bright_ellipse(150, 100)
    from_png = run_job(
        client, headers, [(encode(Image.fromarray(pixels), "PNG"), "h.png")],
        {"pixel_spacing_mm": SPACING},
    )  # fmt: skip
    from_dicom = run_job(client, headers, [(dicom_bytes(pixels, (SPACING, SPACING)), "h.dcm")], {})
    assert from_png["status"] == from_dicom["status"] == "succeeded"
    assert (
        from_dicom["result"]["head_circumference_mm"] == from_png["result"]["head_circumference_mm"]
    )


def test_a_photo_that_is_not_an_ultrasound_gets_a_flagged_result(stack_client: Client) -> None:
    from PIL import Image

    client, headers = stack_client
    photo = encode(Image.fromarray(data.coffee()), "JPEG")
    job = run_job(client, headers, [(photo, "coffee.jpg")], {"pixel_spacing_mm": SPACING})
    assert job["status"] == "succeeded"
    assert job["result"]["quality_flags"], job["result"]


def test_the_subject_due_date_gives_the_age_and_the_centile(stack_client: Client) -> None:
    from datetime import UTC, datetime, timedelta

    from PIL import Image

    client, _ = stack_client
    owner = make_user()
    headers = bearer(client, owner.email)
    # Due in 130 days: the scan submitted today is 280 - 130 = 150 days (21+3 weeks) old.
    due = datetime.now(UTC).date() + timedelta(days=130)
    subject = make_subject(owner, due_date=due)
    png = encode(Image.fromarray(bright_ellipse()), "PNG")
    response = submit_job(
        client, headers, [(png, "head.png")], {"pixel_spacing_mm": SPACING},
        job_type="head_circumference", subject_id=str(subject.id),
    )  # fmt: skip
    job = wait_for_final(client, headers, response.headers["Location"])

    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["gestational_age_days"] == 150
    assert result["gestational_age_source"] == "due_date"
    hc = result["head_circumference_mm"]
    assert result["hc_z_score"] == pytest.approx(intergrowth.z_score(hc, 150), abs=1e-3)
    assert result["hc_centile"] is not None and result["hc_centile_unavailable"] is None
