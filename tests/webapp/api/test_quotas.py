"""Per-user limits on unfinished jobs and their input bytes: 429 with Retry-After, no trace."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

import webapp.quotas
from core.database import db
from core.job_state import cancel
from core.records import Job
from core.settings_access import current_settings
from tests.builders import bearer, ellipse_mask_png, make_user, submit_job


def limit(monkeypatch: pytest.MonkeyPatch, **values: int) -> None:
    """Set quota settings on the running app for this test."""
    for name, value in values.items():
        monkeypatch.setattr(current_settings(), name, value)


def job_count() -> int:
    """Every job row."""
    return db.session.scalar(db.select(db.func.count()).select_from(Job))


def assert_refused(response: TestResponse, status: int, code: str) -> None:
    """A JSON error with this status and code."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.get_json()["error"]["code"] == code


def test_too_many_unfinished_jobs_get_429_until_one_finishes(
    client: FlaskClient,
    headers: dict[str, str],
    media_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit(monkeypatch, MAX_QUEUED_JOBS_PER_USER=2, QUEUE_QUOTA_RETRY_AFTER=17)
    first = submit_job(client, headers).get_json()["id"]
    assert submit_job(client, headers).status_code == 202
    files_before = sorted(media_root.rglob("*"))

    refused = submit_job(client, headers)
    assert_refused(refused, 429, "too_many_queued_jobs")
    assert refused.headers["Retry-After"] == "17"
    assert job_count() == 2 and sorted(media_root.rglob("*")) == files_before
    # Another user has a quota of their own.
    other = bearer(client, make_user().email)
    assert submit_job(client, other).status_code == 202

    assert cancel(uuid.UUID(first))  # a final job no longer counts
    assert submit_job(client, headers).status_code == 202


def test_a_batch_that_would_go_over_the_job_limit_is_refused_whole(
    client: FlaskClient, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    limit(monkeypatch, MAX_QUEUED_JOBS_PER_USER=3)
    assert submit_job(client, headers).status_code == 202
    files = [(ellipse_mask_png(), f"{index}.png") for index in range(3)]
    batch = submit_job(client, headers, files=files, params={}, job_type="segmentation")
    assert_refused(batch, 429, "too_many_queued_jobs")
    assert job_count() == 1


def test_a_sequence_counts_as_one_job_not_one_per_photo(
    client: FlaskClient, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    limit(monkeypatch, MAX_QUEUED_JOBS_PER_USER=2)
    photos = [(ellipse_mask_png(), f"{index}.png") for index in range(3)]
    sequence = submit_job(client, headers, files=photos, params={}, job_type="sequence_inference")
    assert sequence.status_code == 202, sequence.get_json()
    assert submit_job(client, headers).status_code == 202
    assert_refused(submit_job(client, headers), 429, "too_many_queued_jobs")


def test_unfinished_input_bytes_over_the_limit_get_429(
    client: FlaskClient, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    size = len(ellipse_mask_png())
    limit(monkeypatch, MAX_QUEUED_BYTES_PER_USER=size * 3 // 2, QUEUE_QUOTA_RETRY_AFTER=17)
    assert submit_job(client, headers).status_code == 202
    refused = submit_job(client, headers)
    assert_refused(refused, 429, "queue_quota_exceeded")
    assert refused.headers["Retry-After"] == "17"
    assert job_count() == 1


def test_a_submission_over_the_limit_on_its_own_is_413_not_429(
    client: FlaskClient, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    limit(monkeypatch, MAX_QUEUED_BYTES_PER_USER=len(ellipse_mask_png()) - 1)
    refused = submit_job(client, headers)
    assert_refused(refused, 413, "queue_quota_exceeded")
    assert "Retry-After" not in refused.headers
    assert job_count() == 0


# SQLite has no row locks (development only); production runs on Postgres.
@pytest.mark.parametrize("backend_app", ["postgres"], indirect=True)
def test_two_simultaneous_uploads_cannot_both_take_the_last_place(
    app: Flask, client: FlaskClient, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    limit(monkeypatch, MAX_QUEUED_JOBS_PER_USER=1)
    counted = webapp.quotas.queued_usage

    def slow_count(user_id: int) -> tuple[int, int]:
        # Both requests have counted before either inserts, unless the count is serialised.
        usage = counted(user_id)
        time.sleep(0.5)
        return usage

    monkeypatch.setattr(webapp.quotas, "queued_usage", slow_count)
    start = threading.Barrier(2)
    statuses: list[int] = []

    def upload() -> None:
        start.wait()
        statuses.append(submit_job(client, headers).status_code)  # own app context per thread

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [202, 429]
    assert job_count() == 1
