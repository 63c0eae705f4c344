"""Face extraction and sequence inference through the API and a real worker (real MTCNN)."""

from __future__ import annotations

import io

import pytest
from flask.testing import FlaskClient
from PIL import Image

from tests.builders import face_photo, no_face_photo, submit_job
from tests.integration.conftest import TEST_SEQUENCE_MODEL, WorkerStack, wait_for_final

pytestmark = pytest.mark.integration

Client = tuple[FlaskClient, dict[str, str]]


def test_face_extraction_finds_the_face_crops_it_and_reports_the_photo_without(
    stack_client: Client, worker_stack: WorkerStack
) -> None:
    client, headers = stack_client
    files = [(face_photo(exif_rotated=True), "portrait.jpg"), (no_face_photo(), "coffee.jpg")]
    response = submit_job(client, headers, files, {"crop_size": 128}, "face_extraction")
    assert response.status_code == 202, response.get_json()

    job = wait_for_final(client, headers, response.headers["Location"])

    assert job["status"] == "succeeded", (job, worker_stack.log())
    assert job["model"]["name"] == "mtcnn"
    portrait, coffee = job["result"]["photos"]
    assert portrait["face_found"] and len(portrait["faces"]) == 1
    assert portrait["faces"][0]["confidence"] > 0.95
    assert not coffee["face_found"] and coffee["faces"] == []
    urls = {artifact["name"]: artifact["url"] for artifact in job["artifacts"]}
    assert set(urls) == {"face-00-0.png", "faces-00.png", "faces-01.png"}
    crop = Image.open(io.BytesIO(client.get(urls["face-00-0.png"], headers=headers).data))
    assert crop.size == (128, 128)
    assert "loaded face detector mtcnn" in worker_stack.log()  # warmed up after the fork


@pytest.mark.parametrize("length", [1, 7, 30])
def test_sequences_of_any_length_run_as_a_chain(stack_client: Client, length: int) -> None:
    client, headers = stack_client
    photo = face_photo()
    files = [(photo, f"day{index:02d}.jpg") for index in range(length)]
    response = submit_job(client, headers, files, {}, "sequence_inference")
    assert response.status_code == 202, response.get_json()

    job = wait_for_final(client, headers, response.headers["Location"])

    assert job["status"] == "succeeded", job["error"]
    assert job["model"]["name"] == TEST_SEQUENCE_MODEL
    result = job["result"]
    assert 0.0 <= result["p_improving"] <= 1.0
    assert result["frames_used"] == list(range(length))
    assert result["frames_masked"] == []
    assert result["flags"] == ([] if length > 1 else ["insufficient_frames"])
    assert {child["status"] for child in job["children"]} == {"succeeded"}
    assert [artifact["name"] for artifact in job["artifacts"]] == ["sequence.png"]


def test_photos_without_a_face_are_masked_out_and_named(stack_client: Client) -> None:
    client, headers = stack_client
    files = [
        (face_photo(), "a.jpg"),
        (no_face_photo(), "b.jpg"),
        (face_photo("PNG"), "c.png"),
        (no_face_photo(), "d.jpg"),
    ]
    # Upload order b, a, d, c in time; the result lists frames in time order.
    taken_at = ["2026-02-01", "2026-01-01", "2026-04-01", "2026-03-01"]
    response = submit_job(client, headers, files, {"taken_at": taken_at}, "sequence_inference")
    job = wait_for_final(client, headers, response.headers["Location"])

    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert [frame["position"] for frame in result["frames"]] == [1, 0, 3, 2]
    assert result["frames_used"] == [0, 2]
    assert result["frames_masked"] == [1, 3]
    assert [frame["reason"] for frame in result["frames"]] == ["no_face", None, "no_face", None]


def test_a_series_without_any_face_fails_with_the_reason(stack_client: Client) -> None:
    client, headers = stack_client
    files = [(no_face_photo(), "a.jpg"), (no_face_photo(), "b.jpg")]
    response = submit_job(client, headers, files, {}, "sequence_inference")
    job = wait_for_final(client, headers, response.headers["Location"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "no_faces_found"
