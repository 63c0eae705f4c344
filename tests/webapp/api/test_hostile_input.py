"""Hostile and absurd input gets a JSON 4xx (never a 500), stores nothing, and never NaN/Inf."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import Image

from core.database import db
from core.records import Job, JobInput
from tests.builders import (
    DEFAULT_PASSWORD,
    dicom_with_spacing,
    ellipse_mask_png,
    encode,
    submit_job,
)


def assert_nothing_stored(media_root: Path) -> None:
    """No job row, no input row, no file."""
    assert db.session.scalar(db.select(db.func.count()).select_from(Job)) == 0
    assert db.session.scalar(db.select(db.func.count()).select_from(JobInput)) == 0
    assert [path for path in media_root.rglob("*") if path.is_file()] == []


def png_with_big_colour_profile() -> bytes:
    """A tiny PNG whose (compressed) ICC profile inflates to 50 MB."""
    return encode(Image.new("L", (8, 8)), "PNG", icc_profile=b"\0" * (50 * 1024 * 1024))


def nested(depth: int) -> str:
    """A JSON object with an array nested ``depth`` levels deep in it."""
    return '{"pixel_spacing_mm": ' + "[" * depth + "]" * depth + "}"


SCAN = "head_circumference"
HOSTILE_SUBMISSIONS: dict[str, tuple[dict[str, Any], int, str]] = {
    "spacing 1e308": (dict(params='{"pixel_spacing_mm": 1e308}'), 400, "invalid_params"),
    "spacing of 400 digits": (
        dict(params='{"pixel_spacing_mm": ' + "9" * 400 + "}"),
        400,
        "invalid_params",
    ),
    "integer of 5000 digits": (
        dict(params='{"pixel_spacing_mm": ' + "9" * 5000 + "}"),
        400,
        "invalid_params",
    ),
    "params nested 100,000 deep": (dict(params=nested(100_000)), 400, "invalid_params"),
    "subject id ²": (dict(subject_id="²"), 404, "subject_not_found"),
    "subject id of 30 digits": (dict(subject_id="9" * 30), 404, "subject_not_found"),
    "png cut to 20 bytes": (
        dict(files=[(ellipse_mask_png()[:20], "cut.png")]),
        422,
        "corrupt_image",
    ),
    "png with a 50 MB colour profile": (
        dict(files=[(png_with_big_colour_profile(), "icc.png")]),
        422,
        "corrupt_image",
    ),
    "dicom spacing NaN": (
        dict(files=[(dicom_with_spacing("NaN"), "a.dcm")], params={}, job_type=SCAN),
        422,
        "invalid_pixel_spacing",
    ),
    "dicom spacing 1e308": (
        dict(files=[(dicom_with_spacing("1e308"), "a.dcm")], params={}, job_type=SCAN),
        422,
        "invalid_pixel_spacing",
    ),
    "type with a NUL": (dict(job_type="perimeter\x00"), 400, "invalid_characters"),
}


@pytest.mark.parametrize("case", HOSTILE_SUBMISSIONS, ids=list(HOSTILE_SUBMISSIONS))
def test_hostile_submissions_get_a_json_4xx_and_leave_nothing(
    case: str, client: FlaskClient, headers: dict[str, str], media_root: Path
) -> None:
    kwargs, status, code = HOSTILE_SUBMISSIONS[case]
    response = submit_job(client, headers, **kwargs)

    assert response.status_code == status, response.get_data(as_text=True)[:500]
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    assert_nothing_stored(media_root)


def test_a_300_character_file_name_is_shortened_keeping_its_extension(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    name = "x" * 300 + ".png"
    response = submit_job(client, headers, files=[(ellipse_mask_png(), name)])

    assert response.status_code == 202, response.get_data(as_text=True)[:500]
    stored = db.session.scalar(db.select(JobInput.filename))
    assert len(stored) == 255 and stored.endswith("x.png")
    assert response.get_json()["inputs"][0]["filename"] == stored


def test_nul_characters_in_queries_paths_and_credentials_are_4xx(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    job_id = submit_job(client, headers).get_json()["id"]
    refusals = [
        client.get("/api/v1/jobs?type=a%00b", headers=headers),
        client.get(f"/api/v1/jobs/{job_id}/artifacts/a%00b", headers=headers),
    ]
    for response in refusals:
        assert response.status_code == 400, response.get_data(as_text=True)[:500]
        assert response.get_json()["error"]["code"] == "invalid_characters"
    basic = base64.b64encode(f"a\x00b@example.org:{DEFAULT_PASSWORD}".encode()).decode()
    response = client.post("/api/v1/tokens", headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_credentials"


def test_a_form_part_without_a_name_is_an_unexpected_field(
    client: FlaskClient, headers: dict[str, str], media_root: Path
) -> None:
    boundary = "b0undary"
    parts = [
        ('name="type"', b"perimeter"),
        ('name="params"', b'{"pixel_spacing_mm": 0.1}'),
        ('name="files"; filename="m.png"', ellipse_mask_png()),
        ("", b"no name"),
    ]
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n\r\n".encode()
            + content
            + b"\r\n"
            for disposition, content in parts
        )
        + f"--{boundary}--\r\n".encode()
    )
    response = client.post(
        "/api/v1/jobs",
        data=body,
        headers=headers,
        content_type=f"multipart/form-data; boundary={boundary}",
    )

    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert response.get_json()["error"]["code"] == "unexpected_field"
    assert_nothing_stored(media_root)


def test_an_upload_is_not_parsed_before_its_sender_is_known(client: FlaskClient) -> None:
    # A NUL in a multipart field would be a 400 - but only once the sender is authenticated:
    # nobody unknown can make the server parse an upload.
    anonymous = client.post(
        "/api/v1/jobs",
        data={"type": "perimeter\x00", "files": (io.BytesIO(b"x"), "mask.png")},
        content_type="multipart/form-data",
    )
    assert anonymous.status_code == 401
