"""The jobs API on SQLite and Postgres: submission, validation, listing, ownership, cancel."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.test import TestResponse

from core.database import db
from core.records import Artifact, Job, JobInput, JobStatus
from tests.builders import bearer, blank_png, ellipse_mask_png, encode, make_user, submit_job
from tests.conftest import build_app


def stored_files(media_root: Path) -> list[Path]:
    """Every file under the media root."""
    return [path for path in media_root.rglob("*") if path.is_file()]


def assert_nothing_stored(media_root: Path) -> None:
    """No job row, no input row, no file."""
    assert db.session.scalar(db.select(db.func.count()).select_from(Job)) == 0
    assert db.session.scalar(db.select(db.func.count()).select_from(JobInput)) == 0
    assert stored_files(media_root) == []


def test_submit_returns_202_with_location_and_stores_the_input(
    client: FlaskClient, headers: dict[str, str], media_root: Path
) -> None:
    png = ellipse_mask_png()
    response = submit_job(client, headers, files=[(png, "mask.png")])

    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status"] == "queued"
    assert body["type"] == "perimeter"
    assert body["params"] == {"pixel_spacing_mm": 0.1}
    assert response.headers["Location"] == f"/api/v1/jobs/{body['id']}"
    assert int(response.headers["Retry-After"]) >= 1
    [item] = body["inputs"]
    assert item["content_type"] == "image/png"
    assert item["size"] == len(png)
    job_input = db.session.scalar(db.select(JobInput))
    assert (media_root / job_input.storage_path).read_bytes() == png


def test_content_type_comes_from_the_decoded_image_not_the_name(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    jpeg = ellipse_mask_png(image_format="JPEG")
    response = submit_job(client, headers, files=[(jpeg, "looks-like.png")])
    assert response.status_code == 202
    assert response.get_json()["inputs"][0]["content_type"] == "image/jpeg"


def _bomb_png() -> bytes:
    # 10000 x 10000 black pixels compress to a few kB: a decompression bomb for a 40 MP limit.
    return encode(Image.new("1", (10_000, 10_000), 0), "PNG")


def _truncated_png() -> bytes:
    return ellipse_mask_png()[:200]


BAD_SUBMISSIONS = {
    "unknown type": (dict(job_type="teleport"), 400, "unknown_job_type"),
    "no files": (dict(files=[]), 400, "missing_files"),
    "too many files": (
        dict(files=[(ellipse_mask_png(), "a.png"), (ellipse_mask_png(), "b.png")]),
        400,
        "too_many_files",
    ),
    "params not json": (dict(params="{pixel"), 400, "invalid_params"),
    "params not an object": (dict(params="[1, 2]"), 400, "invalid_params"),
    "missing spacing": (dict(params={}), 400, "invalid_params"),
    "zero spacing": (dict(params={"pixel_spacing_mm": 0}), 400, "invalid_params"),
    "negative spacing": (dict(params={"pixel_spacing_mm": -0.1}), 400, "invalid_params"),
    "spacing as text": (dict(params={"pixel_spacing_mm": "0.1"}), 400, "invalid_params"),
    "spacing as bool": (dict(params={"pixel_spacing_mm": True}), 400, "invalid_params"),
    "unknown param": (
        dict(params={"pixel_spacing_mm": 0.1, "colour": "red"}),
        400,
        "invalid_params",
    ),
    "extra form field": (dict(surprise="1"), 400, "unexpected_field"),
    "text file named png": (
        dict(files=[(b"hello, world" * 10, "x.png")]),
        415,
        "unsupported_media_type",
    ),
    "gif": (
        dict(files=[(encode(Image.new("L", (8, 8)), "GIF"), "x.gif")]),
        415,
        "unsupported_media_type",
    ),
    "empty file": (dict(files=[(b"", "x.png")]), 400, "empty_file"),
    "truncated png": (dict(files=[(_truncated_png(), "x.png")]), 422, "corrupt_image"),
    "decompression bomb": (dict(files=[(_bomb_png(), "bomb.png")]), 413, "image_too_large"),
}


@pytest.mark.parametrize("case", BAD_SUBMISSIONS, ids=list(BAD_SUBMISSIONS))
def test_bad_submissions_are_refused_and_leave_nothing_behind(
    case: str, client: FlaskClient, headers: dict[str, str], media_root: Path
) -> None:
    kwargs, status, code = BAD_SUBMISSIONS[case]
    response = submit_job(client, headers, **kwargs)

    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert_nothing_stored(media_root)


def submit_to_separate_app(tmp_path: Path, redis_url: str, **settings: object) -> TestResponse:
    """Submit a valid job to an app of its own (SQLite) with the given settings."""
    app = build_app(f"sqlite:///{tmp_path / 'own.db'}", redis_url, tmp_path / "media", **settings)
    with app.app_context():
        client = app.test_client()
        response = submit_job(client, bearer(client, make_user().email))
        assert_nothing_stored(tmp_path / "media")
    return response


def test_file_over_the_size_limit_is_refused(tmp_path: Path, redis_url: str) -> None:
    response = submit_to_separate_app(tmp_path, redis_url, MAX_UPLOAD_BYTES=1000)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "file_too_large"


def test_unreachable_queue_answers_503_and_keeps_nothing(tmp_path: Path) -> None:
    response = submit_to_separate_app(tmp_path, "redis://127.0.0.1:1/0")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "queue_unavailable"


def test_get_job_and_retry_after_until_final(client: FlaskClient, headers: dict[str, str]) -> None:
    job_id = submit_job(client, headers).get_json()["id"]
    response = client.get(f"/api/v1/jobs/{job_id}", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["id"] == job_id
    assert "Retry-After" in response.headers

    job = db.session.get(Job, uuid.UUID(job_id))
    job.status = JobStatus.SUCCEEDED.value
    db.session.commit()
    response = client.get(f"/api/v1/jobs/{job_id}", headers=headers)
    assert "Retry-After" not in response.headers


def test_list_is_newest_first_paginated_and_filtered(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    ids = [submit_job(client, headers).get_json()["id"] for _ in range(3)]
    db.session.get(Job, uuid.UUID(ids[0])).status = JobStatus.FAILED.value
    db.session.commit()

    page1 = client.get("/api/v1/jobs?per_page=2", headers=headers).get_json()
    page2 = client.get("/api/v1/jobs?per_page=2&page=2", headers=headers).get_json()
    assert [j["id"] for j in page1["items"] + page2["items"]] == list(reversed(ids))
    assert page1["total"] == 3 and page1["pages"] == 2

    failed = client.get("/api/v1/jobs?status=failed", headers=headers).get_json()
    assert [j["id"] for j in failed["items"]] == [ids[0]]
    assert client.get("/api/v1/jobs?type=other", headers=headers).get_json()["total"] == 0
    bad = client.get("/api/v1/jobs?status=lost", headers=headers)
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid_query"


def test_another_users_job_and_artifacts_are_404(
    client: FlaskClient, headers: dict[str, str], media_root: Path
) -> None:
    job_id = submit_job(client, headers).get_json()["id"]
    job = db.session.get(Job, uuid.UUID(job_id))
    path = f"jobs/{job_id}/artifacts/overlay.png"
    (media_root / path).parent.mkdir(parents=True)
    (media_root / path).write_bytes(b"png")
    db.session.add(
        Artifact(
            job=job,
            name="overlay.png",
            content_type="image/png",
            size=3,
            sha256="0" * 64,
            storage_path=path,
        )
    )
    db.session.commit()
    assert (
        client.get(f"/api/v1/jobs/{job_id}/artifacts/overlay.png", headers=headers).data == b"png"
    )

    intruder = bearer(client, make_user().email)
    for method, url in [
        ("get", f"/api/v1/jobs/{job_id}"),
        ("delete", f"/api/v1/jobs/{job_id}"),
        ("get", f"/api/v1/jobs/{job_id}/artifacts/overlay.png"),
    ]:
        response = getattr(client, method)(url, headers=intruder)
        assert response.status_code == 404, (method, url)
        assert response.get_json()["error"]["code"] == "job_not_found"
    assert client.get("/api/v1/jobs", headers=intruder).get_json()["total"] == 0
    assert db.session.get(Job, uuid.UUID(job_id)).status == "queued"


def test_cancel_a_queued_job_then_409(client: FlaskClient, headers: dict[str, str]) -> None:
    job_id = submit_job(client, headers).get_json()["id"]
    response = client.delete(f"/api/v1/jobs/{job_id}", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"
    assert response.get_json()["finished_at"] is not None
    again = client.delete(f"/api/v1/jobs/{job_id}", headers=headers)
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "job_finished"


def test_unknown_job_and_artifact_are_404(client: FlaskClient, headers: dict[str, str]) -> None:
    assert client.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=headers).status_code == 404
    job_id = submit_job(client, headers).get_json()["id"]
    response = client.get(f"/api/v1/jobs/{job_id}/artifacts/nothing.png", headers=headers)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "artifact_not_found"


def test_every_route_needs_a_token(client: FlaskClient) -> None:
    job_id = uuid.uuid4()
    for method, url in [
        ("get", "/api/v1/jobs"),
        ("post", "/api/v1/jobs"),
        ("get", f"/api/v1/jobs/{job_id}"),
        ("delete", f"/api/v1/jobs/{job_id}"),
        ("get", f"/api/v1/jobs/{job_id}/artifacts/overlay.png"),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 401, url
        assert response.get_json()["error"]["code"] == "missing_token"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_empty_mask_is_accepted_at_upload(client: FlaskClient, headers: dict[str, str]) -> None:
    # Validity of the object is the pipeline's call (it fails the job with a reason), not upload's.
    assert submit_job(client, headers, files=[(blank_png(), "empty.png")]).status_code == 202
