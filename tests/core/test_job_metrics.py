"""Job counters and histograms move once per job end, at the transition that ended it."""

from __future__ import annotations

import uuid
from pathlib import Path

from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from core import job_state
from core.storage import MediaStorage
from pipelines.base import PipelineOutput
from tests.builders import bearer, make_user, submit_job

TYPE = "perimeter"


def sample(name: str, **labels: str) -> float:
    """This process's value of a sample (0 if it never moved)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def new_jobs(client: FlaskClient, count: int) -> list[uuid.UUID]:
    headers = bearer(client, make_user().email)
    ids = []
    for _ in range(count):
        response = submit_job(client, headers)
        assert response.status_code == 202
        ids.append(uuid.UUID(response.get_json()["id"]))
    return ids


def test_a_job_counts_its_wait_once_and_its_failure_once(client: FlaskClient) -> None:
    submitted = sample("scanqueue_jobs_submitted_total", type=TYPE)
    waits = sample("scanqueue_job_queue_wait_seconds_count", type=TYPE)
    runs = sample("scanqueue_job_run_seconds_count", type=TYPE)
    failed = sample("scanqueue_jobs_failed_total", type=TYPE, error_code="empty_mask")
    [job_id] = new_jobs(client, 1)
    assert sample("scanqueue_jobs_submitted_total", type=TYPE) == submitted + 1

    first = job_state.claim(job_id, "w@host")
    assert first is not None
    assert job_state.claim(job_id, "w@host") is not None  # a redelivery claims it again
    assert sample("scanqueue_job_queue_wait_seconds_count", type=TYPE) == waits + 1

    assert job_state.fail(job_id, "empty_mask", "The mask is empty.") is True
    assert job_state.fail(job_id, "empty_mask", "The mask is empty.") is False
    assert job_state.cancel(job_id) is False
    assert sample("scanqueue_jobs_failed_total", type=TYPE, error_code="empty_mask") == failed + 1
    assert sample("scanqueue_job_run_seconds_count", type=TYPE) == runs + 1


def test_a_success_counts_once_and_a_fenced_off_run_not_at_all(
    client: FlaskClient, media_root: Path
) -> None:
    succeeded = sample("scanqueue_jobs_succeeded_total", type=TYPE)
    [job_id] = new_jobs(client, 1)
    first = job_state.claim(job_id, "w1@host")
    assert first is not None
    old = first.attempts  # read now: the session hands back the same object for the next claim
    second = job_state.claim(job_id, "w2@host")
    assert second is not None
    new = second.attempts
    output = PipelineOutput({"circumference_mm": 1.0})
    storage = MediaStorage(media_root)

    assert job_state.succeed(job_id, output, storage, old) is False
    assert job_state.succeed(job_id, output, storage, new) is True
    assert job_state.succeed(job_id, output, storage, new) is False
    assert sample("scanqueue_jobs_succeeded_total", type=TYPE) == succeeded + 1


def test_a_job_given_up_on_is_dead_lettered_once(client: FlaskClient) -> None:
    dead = sample("scanqueue_jobs_dead_lettered_total", type=TYPE)
    lost = sample("scanqueue_jobs_failed_total", type=TYPE, error_code=job_state.WORKER_LOST)
    [job_id] = new_jobs(client, 1)
    assert job_state.claim(job_id, "w@host") is not None

    assert job_state.give_up_if_exhausted(job_id, 1) is not None
    assert job_state.give_up_if_exhausted(job_id, 1) is None
    assert sample("scanqueue_jobs_dead_lettered_total", type=TYPE) == dead + 1
    assert (
        sample("scanqueue_jobs_failed_total", type=TYPE, error_code=job_state.WORKER_LOST)
        == lost + 1
    )
