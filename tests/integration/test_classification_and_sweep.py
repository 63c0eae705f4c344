"""Classification through a real worker, and the stale-job sweep handing a dead worker's job to
a live one."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image

from tests.builders import encode, submit_job
from tests.conftest import build_app
from tests.integration.conftest import TEST_CLASSIFIER, WorkerStack, wait_for_final
from webapp import job_state
from webapp.housekeeping import sweep_stale_jobs
from webapp.records import utcnow
from webapp.settings_access import current_settings

pytestmark = pytest.mark.integration

Client = tuple[FlaskClient, dict[str, str]]


def gray_png(level: int) -> bytes:
    return encode(Image.fromarray(np.full((60, 90), level, dtype=np.uint8)), "PNG")


def test_a_classification_job_runs_through_the_worker(stack_client: Client) -> None:
    client, headers = stack_client
    files = [(gray_png(240), "a.png"), (gray_png(235), "b.png")]
    response = submit_job(client, headers, files, {}, "classification")
    assert response.status_code == 202, response.get_json()
    job = wait_for_final(client, headers, response.headers["Location"])
    assert job["status"] == "succeeded", job["error"]
    assert job["model"]["name"] == TEST_CLASSIFIER
    assert job["result"]["prediction"] == "third"
    assert job["result"]["uncertain_below"] == 0.6  # from the model's manifest
    assert len(job["result"]["images"]) == 2


def test_an_unknown_classifier_fails_the_job_with_the_reason(stack_client: Client) -> None:
    client, headers = stack_client
    response = submit_job(
        client, headers, [(gray_png(10), "a.png")], {"model": "nope"}, "classification"
    )
    job = wait_for_final(client, headers, response.headers["Location"])
    assert job["status"] == "failed" and job["error"]["code"] == "model_unavailable"


def test_the_sweep_requeues_a_dead_workers_job_and_a_live_worker_finishes_it(
    stack_client: Client, worker_stack: WorkerStack, redis_url: str
) -> None:
    client, headers = stack_client
    app = worker_stack.app
    # The same database and media, but a broker database no worker listens to: the job is
    # stored and queued where nobody takes it, then claimed as a worker that was killed at once.
    unheard = build_app(
        app.config["SQLALCHEMY_DATABASE_URI"],
        redis_url.rsplit("/", 1)[0] + "/13",
        current_settings().MEDIA_ROOT,
    )
    with unheard.app_context():
        job_id = uuid.UUID(submit_job(unheard.test_client(), headers).get_json()["id"])
        assert job_state.claim(job_id, "killed@host") is not None
    settings = current_settings()
    silent = timedelta(seconds=settings.TASK_TIME_LIMIT + settings.STALE_JOB_GRACE_SECONDS + 1)

    swept = sweep_stale_jobs(utcnow() + silent)  # publishes to the live worker's broker

    assert swept.requeued == [job_id]
    done = wait_for_final(client, headers, f"/api/v1/jobs/{job_id}")
    assert done["status"] == "succeeded", (done, worker_stack.log())
    assert done["attempts"] == 2
    assert done["result"]["circumference_mm"] > 0
