"""The stale-job sweep, the lost-message sweep (on a real Redis) and artifact retention, with
controlled time."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from flask.testing import FlaskClient

import tasks.perimeter  # noqa: F401  (registers the task with the app's Celery)
from core import job_state
from core.broker_messages import held_task_ids, liveness_key, restore_orphaned_messages
from core.database import db
from core.queues import CPU_QUEUE, QUEUES
from core.records import Artifact, Job, utcnow
from core.settings_access import current_settings
from scheduler.housekeeping import (
    WORKER_LOST,
    purge_old_artifacts,
    requeue_lost_jobs,
    sweep_stale_jobs,
)
from tests.builders import bearer, face_photo, make_user, submit_job
from tests.conftest import build_app


class Sent:
    """Records what the sweep would publish."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.task_ids: list[str | None] = []

    def __call__(self, name: str, args: list[str], task_id: str | None = None) -> None:
        self.calls.append((name, args))
        self.task_ids.append(task_id)


def queued_job(client: FlaskClient, job_type: str = "perimeter") -> uuid.UUID:
    headers = bearer(client, make_user().email)
    if job_type == "sequence_inference":
        files = [(face_photo(), "a.jpg"), (face_photo(), "b.jpg")]
        body = submit_job(client, headers, files, {}, job_type).get_json()
    else:
        body = submit_job(client, headers).get_json()
    return uuid.UUID(body["id"])


def row(job_id: uuid.UUID) -> Job:
    db.session.expire_all()
    return db.session.get(Job, job_id)


def later() -> timedelta:
    settings = current_settings()
    return timedelta(seconds=settings.TASK_TIME_LIMIT + settings.STALE_JOB_GRACE_SECONDS + 1)


def test_a_silent_running_job_is_requeued_then_failed_after_max_attempts(
    client: FlaskClient,
) -> None:
    job_id = queued_job(client)
    job_state.claim(job_id, "dead-worker@host")  # the worker died right after claiming
    sent = Sent()

    assert sweep_stale_jobs(utcnow() + timedelta(seconds=30), sent).requeued == []  # not yet
    swept = sweep_stale_jobs(utcnow() + later(), sent)
    assert swept.requeued == [job_id] and row(job_id).status == "queued"
    assert sent.calls == [("scanqueue.perimeter", [str(job_id)])]
    assert sent.task_ids == [str(job_id)]  # the lost-message sweep finds it by this id

    # Attempts 2 .. max-1 die the same way and are re-queued; the last one is failed.
    for _ in range(current_settings().MAX_ATTEMPTS - 2):
        job_state.claim(job_id, "dead-worker@host")
        assert sweep_stale_jobs(utcnow() + later(), sent).requeued == [job_id]
    job_state.claim(job_id, "dead-worker@host")
    swept = sweep_stale_jobs(utcnow() + later(), sent)
    assert swept.failed == [job_id]
    failed = row(job_id)
    assert failed.status == "failed" and failed.error_code == WORKER_LOST
    assert str(current_settings().MAX_ATTEMPTS) in failed.error_message


def test_a_job_with_a_fresh_heartbeat_is_left_alone(client: FlaskClient) -> None:
    job_id = queued_job(client)
    job_state.claim(job_id, "w@host")
    clock = utcnow() + later()
    db.session.execute(sa.update(Job).where(Job.id == job_id).values(heartbeat_at=clock))
    db.session.commit()
    assert sweep_stale_jobs(clock + timedelta(seconds=5), Sent()).requeued == []
    assert row(job_id).status == "running"


def test_a_sequence_waiting_for_its_photos_is_not_swept_but_a_stuck_last_stage_is(
    client: FlaskClient,
) -> None:
    parent = queued_job(client, "sequence_inference")
    job_state.start_parent(parent, "w@host")
    sent = Sent()
    assert sweep_stale_jobs(utcnow() + later(), sent).requeued == []  # children still queued
    children = [child.id for child in row(parent).children]
    db.session.execute(sa.update(Job).where(Job.id.in_(children)).values(status="succeeded"))
    db.session.commit()
    assert sweep_stale_jobs(utcnow() + later(), sent).requeued == [parent]
    assert sent.calls == [("scanqueue.sequence_inference.predict", [str(parent)])]
    assert row(parent).status == "running"  # its last stage resumes a running job


def test_retention_removes_old_artifact_files_and_marks_the_rows(
    client: FlaskClient, media_root: Path
) -> None:
    headers = bearer(client, make_user().email)
    old, recent = (submit_job(client, headers).get_json()["id"] for _ in range(2))
    task = client.application.extensions["celery"].tasks["scanqueue.perimeter"]
    for job_id in (old, recent):
        assert task.apply(args=[job_id]).get() == "succeeded"
    days = current_settings().ARTIFACT_RETENTION_DAYS
    long_ago = utcnow() - timedelta(days=days + 1)
    db.session.execute(sa.update(Job).where(Job.id == uuid.UUID(old)).values(finished_at=long_ago))
    db.session.commit()
    [old_artifact] = db.session.scalars(sa.select(Artifact).filter_by(job_id=uuid.UUID(old)))
    old_file = media_root / old_artifact.storage_path

    assert purge_old_artifacts() == 1
    assert purge_old_artifacts() == 0  # already done

    assert not old_file.exists()
    db.session.expire_all()
    assert db.session.get(Artifact, old_artifact.id).purged_at is not None
    assert row(uuid.UUID(old)).artifacts_purged_at is not None
    body = client.get(f"/api/v1/jobs/{old}", headers=headers).get_json()
    assert body["artifacts"][0]["purged_at"] is not None
    gone = client.get(body["artifacts"][0]["url"], headers=headers)
    assert gone.status_code == 410 and "retention" in gone.get_json()["error"]["message"]
    kept = client.get(f"/api/v1/jobs/{recent}", headers=headers).get_json()["artifacts"][0]
    assert client.get(kept["url"], headers=headers).status_code == 200


@pytest.fixture
def quiet_client(tmp_path: Path, redis_url: str) -> Iterator[FlaskClient]:
    """An app whose broker is a Redis database no test worker consumes from, emptied around."""
    # The session's integration worker consumes the test database's queues; the messages these
    # tests look for must stay where they were put.
    quiet_url = redis_url.rsplit("/", 1)[0] + "/14"
    broker = redis.Redis.from_url(quiet_url)
    broker.flushdb()
    app = build_app(f"sqlite:///{tmp_path / 'quiet.db'}", quiet_url, tmp_path / "media")
    with app.app_context():
        yield app.test_client()
        db.session.remove()
        db.engine.dispose()
    broker.flushdb()
    broker.close()


def lost_after() -> timedelta:
    return timedelta(seconds=current_settings().LOST_MESSAGE_AFTER_SECONDS + 1)


def flush_broker() -> None:
    """What a Redis restarted without its data looks like to the system."""
    redis.Redis.from_url(current_settings().REDIS_URL).flushdb()


def test_a_queued_job_whose_message_was_lost_is_published_once_more(
    quiet_client: FlaskClient,
) -> None:
    job_id = queued_job(quiet_client)
    broker_url = current_settings().REDIS_URL
    assert str(job_id) in held_task_ids(broker_url, QUEUES)
    assert requeue_lost_jobs(utcnow() + lost_after(), settle_seconds=0) == []  # still held

    flush_broker()
    assert requeue_lost_jobs(utcnow(), settle_seconds=0) == []  # too young to be looked at
    assert requeue_lost_jobs(utcnow() + lost_after(), settle_seconds=0) == [job_id]
    assert str(job_id) in held_task_ids(broker_url, QUEUES)
    # The next sweep finds the new message: no second copy.
    assert requeue_lost_jobs(utcnow() + lost_after(), settle_seconds=0) == []
    assert redis.Redis.from_url(broker_url).llen(CPU_QUEUE) == 1
    assert row(job_id).status == "queued"


def test_a_message_a_worker_holds_unacknowledged_is_not_lost(quiet_client: FlaskClient) -> None:
    job_id = queued_job(quiet_client)
    celery_app = quiet_client.application.extensions["celery"]
    with celery_app.connection_for_read() as connection, connection.SimpleQueue(CPU_QUEUE) as queue:
        message = queue.get(timeout=5)  # taken off the queue, not acknowledged (acks_late)
        assert message.headers["id"] == str(job_id)
        assert redis.Redis.from_url(current_settings().REDIS_URL).llen(CPU_QUEUE) == 0
        assert requeue_lost_jobs(utcnow() + lost_after(), settle_seconds=0) == []


def test_a_lost_sequence_publishes_its_photos_jobs_not_the_parent(
    quiet_client: FlaskClient,
) -> None:
    parent = queued_job(quiet_client, "sequence_inference")
    children = sorted(child.id for child in row(parent).children)
    flush_broker()
    assert requeue_lost_jobs(utcnow() + lost_after(), settle_seconds=0) == children
    assert held_task_ids(current_settings().REDIS_URL, QUEUES) == {str(c) for c in children}


def test_a_message_held_by_no_live_worker_is_restored_once(quiet_client: FlaskClient) -> None:
    job_id = queued_job(quiet_client)
    celery_app = quiet_client.application.extensions["celery"]
    broker = redis.Redis.from_url(current_settings().REDIS_URL)
    with celery_app.connection_for_read() as connection, connection.SimpleQueue(CPU_QUEUE) as queue:
        message = queue.get(timeout=5)  # delivered, never acknowledged: its worker is gone
        tag = message.delivery_tag
        with celery_app.connection_for_write() as sweeper:

            def sweep(grace: float = 0) -> list[str]:
                return restore_orphaned_messages(sweeper, grace_seconds=grace, confirm_seconds=0)

            assert sweep(grace=60) == [] and sweep(grace=60) == []  # too recent
            # A live worker's record lists it: it holds the message, nothing to restore.
            broker.set(liveness_key("alive@host"), json.dumps({"held": [tag]}), ex=30)
            assert sweep() == [] and sweep() == []
            broker.delete(liveness_key("alive@host"))

            assert sweep() == []  # first seen unheld: noted, not yet restored
            assert sweep() == [tag]
            assert sweep() == [] and sweep() == []  # no second copy
        assert broker.llen(CPU_QUEUE) == 1 and broker.hlen("unacked") == 0
        assert str(job_id) in held_task_ids(current_settings().REDIS_URL, QUEUES)
    # Closing the dead consumer's channel gives nothing back twice either.
    assert broker.llen(CPU_QUEUE) == 1
    broker.close()
