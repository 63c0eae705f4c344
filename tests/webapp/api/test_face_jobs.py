"""Face and sequence jobs at upload: photo checks, parameters, and a sequence's per-photo steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from core.database import db
from core.records import Job
from tests.builders import bearer, encode, face_photo, make_user, no_face_photo, submit_job


def photos(count: int) -> list[tuple[bytes, str]]:
    photo = face_photo()
    return [(photo, f"day{index:02d}.jpg") for index in range(count)]


def job_count() -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(Job))


def assert_refused(response, status: int, code: str, media_root: Path) -> None:
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code
    assert job_count() == 0
    assert not any(path.is_file() for path in media_root.rglob("*"))


def test_face_extraction_records_its_parameters_with_defaults(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    files = [(face_photo(), "a.jpg"), (no_face_photo(), "b.jpg")]
    response = submit_job(client, headers, files, {"crop_size": 112}, "face_extraction")
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert job["params"] == {
        "min_confidence": 0.9,
        "min_face_size": 40,
        "crop_size": 112,
        "largest_only": False,
    }
    assert [item["filename"] for item in job["inputs"]] == ["a.jpg", "b.jpg"]


@pytest.mark.parametrize(
    "params",
    [
        {"crop_size": 16},
        {"crop_size": 160.5},
        {"min_confidence": 1.5},
        {"largest_only": "yes"},
        {"min_face_size": 0},
        {"taken_at": ["2026-01-01"]},
    ],
)
def test_bad_face_parameters_are_refused(
    client: FlaskClient, headers: dict[str, str], media_root: Path, params: dict
) -> None:
    response = submit_job(client, headers, [(face_photo(), "a.jpg")], params, "face_extraction")
    assert_refused(response, 400, "invalid_params", media_root)


def test_a_photo_that_cannot_be_decoded_is_refused(
    client: FlaskClient, headers: dict[str, str], media_root: Path
) -> None:
    broken = face_photo()[:2000]
    files = [(face_photo(), "good.jpg"), (broken, "broken.jpg")]
    response = submit_job(client, headers, files, {}, "face_extraction")
    assert response.status_code == 422
    assert "broken.jpg" in response.get_json()["error"]["message"]
    assert job_count() == 0
    assert not any(path.is_file() for path in media_root.rglob("*"))


def test_a_sequence_makes_one_face_step_per_photo_listed_under_the_job(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    taken_at = ["2026-03-01", "2026-01-01", "2026-02-01T09:30:00+01:00"]
    response = submit_job(client, headers, photos(3), {"taken_at": taken_at}, "sequence_inference")
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert job["params"]["taken_at"] == taken_at
    assert [child["position"] for child in job["children"]] == [0, 1, 2]
    assert {child["type"] for child in job["children"]} == {"face_extraction"}

    child = client.get(job["children"][1]["url"], headers=headers).get_json()
    assert child["parent"]["id"] == job["id"]
    assert child["params"]["largest_only"] is True
    assert child["inputs"][0]["filename"] == "day01.jpg"
    listed = client.get("/api/v1/jobs", headers=headers).get_json()
    assert [item["id"] for item in listed["items"]] == [job["id"]]


def test_31_photos_are_refused(
    client: FlaskClient, headers: dict[str, str], media_root: Path
) -> None:
    response = submit_job(client, headers, photos(31), {}, "sequence_inference")
    assert_refused(response, 400, "too_many_files", media_root)


@pytest.mark.parametrize(
    ("taken_at", "code"),
    [
        (["2026-01-01", "2026-01-02"], "taken_at_mismatch"),
        (["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"], "taken_at_mismatch"),
        (["2026-01-01", "yesterday", "2026-01-03"], "invalid_params"),
        ("2026-01-01", "invalid_params"),
    ],
)
def test_mismatched_or_bad_dates_are_refused(
    client: FlaskClient, headers: dict[str, str], media_root: Path, taken_at: object, code: str
) -> None:
    response = submit_job(client, headers, photos(3), {"taken_at": taken_at}, "sequence_inference")
    assert_refused(response, 400, code, media_root)


def test_cancelling_a_sequence_cancels_its_steps_and_a_step_alone_cannot_be(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    job = submit_job(client, headers, photos(2), {}, "sequence_inference").get_json()
    step = client.delete(job["children"][0]["url"], headers=headers)
    assert step.status_code == 409 and step.get_json()["error"]["code"] == "part_of_job"

    cancelled = client.delete(job["url"], headers=headers).get_json()
    assert cancelled["status"] == "cancelled"
    assert {child["status"] for child in cancelled["children"]} == {"cancelled"}


def test_another_users_sequence_step_is_404(client: FlaskClient, headers: dict[str, str]) -> None:
    job = submit_job(client, headers, photos(2), {}, "sequence_inference").get_json()
    other = bearer(client, make_user().email)
    assert client.get(job["children"][0]["url"], headers=other).status_code == 404


def test_png_photos_are_accepted_and_tiff_is_not(
    client: FlaskClient, headers: dict[str, str], media_root: Path
) -> None:
    from PIL import Image

    tiff = encode(Image.new("RGB", (64, 64)), "TIFF")
    response = submit_job(client, headers, [(tiff, "a.tif")], {}, "face_extraction")
    assert_refused(response, 415, "unsupported_media_type", media_root)
    png = face_photo("PNG")
    response = submit_job(client, headers, [(png, "a.png")], json.dumps({}), "face_extraction")
    assert response.status_code == 202
