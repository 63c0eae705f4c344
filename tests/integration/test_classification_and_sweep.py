"""Classification through a real worker; the stale-job sweep handing a dead worker's job to a
live one, and the lost-message sweep publishing a job whose message the broker lost."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import redis
from flask.testing import FlaskClient
from PIL import Image

from core import job_state
from core.records import utcnow
from core.settings_access import current_settings
from scheduler.housekeeping import requeue_lost_jobs, sweep_stale_jobs
from tests.builders import DEFAULT_MASK_CIRCUMFERENCE_MM, ellipse_mask_png, encode, submit_job
from tests.conftest import build_app
from tests.integration.conftest import (
    TEST_CLASSIFIER,
    TEST_CLASSIFIER_THRESHOLD,
    WorkerStack,
    succeeded_job,
    wait_for_final,
)
from workers.launch import start_worker

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
    assert job["result"]["uncertain_below"] == TEST_CLASSIFIER_THRESHOLD  # the model card's
    assert len(job["result"]["images"]) == 2


def test_an_unknown_classifier_is_refused_at_upload(stack_client: Client) -> None:
    client, headers = stack_client
    response = submit_job(
        client, headers, [(gray_png(10), "a.png")], {"model": "nope"}, "classification"
    )
    assert response.status_code == 400 and response.json["error"]["code"] == "unknown_model"


def submit_unheard(
    stack: WorkerStack, headers: dict[str, str], redis_url: str
) -> tuple[uuid.UUID, str]:
    """Submit a perimeter job on the stack's database and media, its message sent to a broker
    database no worker listens to; the job id and that broker's URL."""
    unheard_redis = redis_url.rsplit("/", 1)[0] + "/13"
    database_url = stack.app.config["SQLALCHEMY_DATABASE_URI"]
    unheard = build_app(database_url, unheard_redis, current_settings().MEDIA_ROOT)
    with unheard.app_context():
        return uuid.UUID(submit_job(unheard.test_client(), headers).get_json()["id"]), unheard_redis


def silent_too_long() -> timedelta:
    """Longer than the stale-job sweep lets a running job go without a heartbeat."""
    settings = current_settings()
    return timedelta(seconds=settings.TASK_TIME_LIMIT + settings.STALE_JOB_GRACE_SECONDS + 1)


def test_the_sweep_requeues_a_dead_workers_job_and_a_live_worker_finishes_it(
    stack_client: Client, worker_stack: WorkerStack, redis_url: str
) -> None:
    client, headers = stack_client
    # Stored and queued where nobody takes it, then claimed as a worker that was killed at once.
    job_id, _ = submit_unheard(worker_stack, headers, redis_url)
    assert job_state.claim(job_id, "killed@host") is not None

    swept = sweep_stale_jobs(utcnow() + silent_too_long())  # publishes to the live worker's broker

    assert swept.requeued == [job_id]
    done = succeeded_job(worker_stack, client, headers, f"/api/v1/jobs/{job_id}")
    assert done["attempts"] == 2
    assert done["result"]["circumference_mm"] == pytest.approx(
        DEFAULT_MASK_CIRCUMFERENCE_MM, rel=0.005
    )


def test_a_job_whose_message_was_lost_is_published_again_and_a_live_worker_finishes_it(
    stack_client: Client, worker_stack: WorkerStack, redis_url: str
) -> None:
    client, headers = stack_client
    # Its message then goes with the broker database's data, as after a Redis restart without it.
    job_id, lost_redis = submit_unheard(worker_stack, headers, redis_url)
    redis.Redis.from_url(lost_redis).flushdb()
    time.sleep(1)
    assert client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()["status"] == "queued"
    age = timedelta(seconds=current_settings().LOST_MESSAGE_AFTER_SECONDS + 1)

    assert job_id in requeue_lost_jobs(utcnow() + age)  # publishes to the live worker's broker

    done = succeeded_job(worker_stack, client, headers, f"/api/v1/jobs/{job_id}")
    assert done["attempts"] == 1
    assert done["result"]["circumference_mm"] == pytest.approx(
        DEFAULT_MASK_CIRCUMFERENCE_MM, rel=0.005
    )


def kill_worker(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker and its pool processes at once, as the OOM killer or a lost host would."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    for pid in [*map(int, children), process.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_a_job_whose_worker_is_killed_is_requeued_by_the_sweep_and_finished_elsewhere(
    stack_client: Client, worker_stack: WorkerStack, redis_url: str, tmp_path: Path
) -> None:
    client, headers = stack_client
    app = worker_stack.app
    doomed_redis = redis_url.rsplit("/", 1)[0] + "/11"
    redis.Redis.from_url(doomed_redis).flushdb()
    settings = current_settings()
    shared = {
        "SCANQUEUE_ENV": "testing",
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "REDIS_URL": doomed_redis,
    }
    doomed = start_worker(
        {**os.environ, **shared}, tmp_path / "doomed.log", queues="cpu", concurrency=1
    )
    try:
        doomed_app = build_app(shared["DATABASE_URL"], doomed_redis, settings.MEDIA_ROOT)
        # A 6000x6000 mask: a few seconds of work, time enough to kill the worker mid-job.
        big = ellipse_mask_png(width=6000, height=6000, center=(3000, 3000), semi_axes=(2500, 1800))
        with doomed_app.app_context():
            response = submit_job(doomed_app.test_client(), headers, [(big, "big.png")])
            job_id = uuid.UUID(response.get_json()["id"])
        deadline = time.monotonic() + 30
        while (
            client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()["status"] != "running"
        ):
            assert time.monotonic() < deadline, "the doomed worker never started the job"
            time.sleep(0.05)
    finally:
        kill_worker(doomed)
    time.sleep(1)
    assert client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()["status"] == "running"

    swept = sweep_stale_jobs(utcnow() + silent_too_long())  # publishes to the live worker's broker

    assert swept.requeued == [job_id]
    done = succeeded_job(worker_stack, client, headers, f"/api/v1/jobs/{job_id}")
    assert done["attempts"] == 2
