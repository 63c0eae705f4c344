"""Fan-out bookkeeping: a parent is handed on exactly once, when its last child has ended."""

from __future__ import annotations

import threading
import uuid

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from core import job_state
from core.database import db
from core.records import Job, JobStatus
from tests.builders import bearer, face_photo, make_user, submit_job


def sequence_job(client: FlaskClient, photos: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    headers = bearer(client, make_user().email)
    files = [(face_photo(), f"{index}.jpg") for index in range(photos)]
    body = submit_job(client, headers, files, {}, "sequence_inference").get_json()
    return uuid.UUID(body["id"]), [uuid.UUID(child["id"]) for child in body["children"]]


def set_status(job_ids: list[uuid.UUID], status: JobStatus) -> None:
    db.session.execute(sa.update(Job).where(Job.id.in_(job_ids)).values(status=status.value))
    db.session.commit()


def parent_row(job_id: uuid.UUID) -> Job:
    db.session.expire_all()
    return db.session.get(Job, job_id)


def test_progress_follows_the_children_until_the_last_one_hands_on(client: FlaskClient) -> None:
    parent, children = sequence_job(client, 4)
    job_state.start_parent(parent, "w1")
    assert parent_row(parent).status == "running"

    set_status(children[:1], JobStatus.SUCCEEDED)
    assert job_state.advance_parent(parent) is False
    assert parent_row(parent).progress == 20
    set_status(children[1:3], JobStatus.FAILED)
    assert job_state.advance_parent(parent) is False
    assert parent_row(parent).progress == 60

    set_status(children[3:], JobStatus.SUCCEEDED)
    assert job_state.advance_parent(parent) is True
    assert parent_row(parent).progress == job_state.CHILDREN_DONE_PROGRESS
    assert job_state.advance_parent(parent) is False  # a redelivered child changes nothing


def test_children_ending_together_on_many_workers_hand_on_once(
    app: Flask, client: FlaskClient
) -> None:
    parent, children = sequence_job(client, 3)
    job_state.start_parent(parent, "w1")
    set_status(children, JobStatus.SUCCEEDED)
    results: list[bool] = []
    start = threading.Barrier(8)

    def worker() -> None:
        with app.app_context():
            start.wait()
            results.append(job_state.advance_parent(parent))
            db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]


def test_a_cancelled_parent_is_never_handed_on(client: FlaskClient) -> None:
    parent, children = sequence_job(client, 2)
    job_state.start_parent(parent, "w1")
    job_state.cancel(parent)
    set_status(children, JobStatus.SUCCEEDED)
    assert job_state.advance_parent(parent) is False
    assert parent_row(parent).status == "cancelled"


def test_only_the_newest_claim_of_a_job_reports_and_stores(client: FlaskClient) -> None:
    from core.settings_access import current_settings
    from core.storage import MediaStorage
    from pipelines.base import PipelineOutput

    storage = MediaStorage(current_settings().MEDIA_ROOT)
    job_id = uuid.UUID(submit_job(client, bearer(client, make_user().email)).get_json()["id"])
    first = job_state.claim(job_id, "a@host").attempts
    # The same message delivered again while worker a still runs it: b claims the job too.
    second = job_state.claim(job_id, "b@host").attempts
    assert (first, second) == (1, 2)

    assert not job_state.report_progress(job_id, 50, first)  # a stops here
    assert not job_state.succeed(job_id, PipelineOutput({"run": "a"}), storage, first)
    assert not job_state.checkpoint(job_id, PipelineOutput({"run": "a"}), storage, 60, first)
    assert not job_state.fail(job_id, "internal_error", "a", first)
    job = parent_row(job_id)
    assert (job.status, job.progress, job.result) == ("running", 0, None)

    assert job_state.report_progress(job_id, 50, second)
    assert job_state.succeed(job_id, PipelineOutput({"run": "b"}), storage, second)
    job = parent_row(job_id)
    assert (job.status, job.result, job.worker) == ("succeeded", {"run": "b"}, "b@host")
