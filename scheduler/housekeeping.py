"""Periodic upkeep of jobs: re-queue or fail jobs whose worker went silent, publish again jobs
whose broker message was lost, remove old artifacts."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from core.broker_messages import held_task_ids
from core.database import db
from core.job_state import WORKER_LOST
from core.metrics import record_dead_letter
from core.publishing import current_celery, publish_job
from core.queues import QUEUES
from core.records import Job, JobStatus, utcnow
from core.settings_access import current_settings
from core.storage import MediaStorage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StaleSweep:
    """What one sweep did: jobs queued again, and jobs failed for good."""

    requeued: list[uuid.UUID]
    failed: list[uuid.UUID]


def _silent_running_jobs(now: datetime) -> list[Job]:
    settings = current_settings()
    cutoff = now - timedelta(seconds=settings.TASK_TIME_LIMIT + settings.STALE_JOB_GRACE_SECONDS)
    child = aliased(Job)
    waiting_for_children = (
        sa.select(child.id)
        .where(
            child.parent_id == Job.id,
            child.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
        )
        .exists()
    )
    last_sign = sa.func.coalesce(Job.heartbeat_at, Job.started_at, Job.created_at)
    # A fan-out job waits for its children; each of them is watched on its own.
    return list(
        db.session.scalars(
            sa.select(Job).where(
                Job.status == JobStatus.RUNNING.value, last_sign < cutoff, ~waiting_for_children
            )
        )
    )


def sweep_stale_jobs(
    now: datetime | None = None, send_task: Callable[..., object] | None = None
) -> StaleSweep:
    """Re-queue running jobs that have been silent past their time limit (their worker died),
    or fail them with ``worker_lost`` once they have had MAX_ATTEMPTS attempts."""
    now = now or utcnow()
    send = send_task or current_celery().send_task
    settings = current_settings()
    requeued, failed = [], []
    for job in _silent_running_jobs(now):
        if job.attempts >= settings.MAX_ATTEMPTS:
            changed = _update_if_silent(
                job,
                status=JobStatus.FAILED.value,
                error_code=WORKER_LOST,
                error_message=(
                    f"The worker running this job stopped responding; gave up after "
                    f"{job.attempts} attempt(s)."
                ),
                finished_at=now,
            )
            if changed:
                failed.append(job.id)
                record_dead_letter(job.type, WORKER_LOST)
            continue
        # A fan-out job's own stage resumes a running job; any other job starts over (its tasks
        # are idempotent) from its first stage, which claims a queued job.
        fan_out = bool(job.children)
        values = {"heartbeat_at": now} if fan_out else {"status": JobStatus.QUEUED.value}
        if _update_if_silent(job, **values):
            publish_job(job, send)
            requeued.append(job.id)
    if requeued or failed:
        log.warning("stale jobs: re-queued %s, failed %s", requeued, failed)
    return StaleSweep(requeued, failed)


def _queued_jobs(
    among: Iterable[uuid.UUID] | None = None, created_before: datetime | None = None
) -> list[Job]:
    """The queued jobs that publish a task of their own (a fan-out parent waits on its
    children's messages instead), optionally only among some ids or created before a time."""
    child = aliased(Job)
    has_children = sa.select(child.id).where(child.parent_id == Job.id).exists()
    query = sa.select(Job).where(Job.status == JobStatus.QUEUED.value, ~has_children)
    if among is not None:
        query = query.where(Job.id.in_(list(among)))
    if created_before is not None:
        query = query.where(Job.created_at < created_before)
    return list(db.session.scalars(query.order_by(Job.id)))


def _not_held(jobs: list[Job]) -> list[Job]:
    """The jobs among these whose message the broker holds nowhere."""
    if not jobs:
        return []
    held = held_task_ids(current_settings().REDIS_URL, QUEUES)
    return [job for job in jobs if str(job.id) not in held]


def requeue_lost_jobs(
    now: datetime | None = None,
    send_task: Callable[..., object] | None = None,
    settle_seconds: float = 1.0,
) -> list[uuid.UUID]:
    """Publish again every job queued for longer than LOST_MESSAGE_AFTER_SECONDS whose message
    the broker no longer holds, waiting or unacknowledged (found by task id = job id)."""
    now = now or utcnow()
    age = timedelta(seconds=current_settings().LOST_MESSAGE_AFTER_SECONDS)
    lost = _not_held(_queued_jobs(created_before=now - age))
    if lost:
        # A worker takes a message off its list a moment before it records it as unacknowledged:
        # missing from a second look after that moment, and still queued, it is really lost.
        time.sleep(settle_seconds)
        lost = _queued_jobs(among=[job.id for job in _not_held(lost)])
    send = send_task or current_celery().send_task
    for job in lost:
        publish_job(job, send)
    lost_ids = [job.id for job in lost]
    if lost_ids:
        log.warning("queued jobs whose broker message was lost, published again: %s", lost_ids)
    return lost_ids


def _update_if_silent(job: Job, **values: object) -> bool:
    """Apply the values only if the job is still running with the heartbeat the sweep saw (no
    race with a worker that woke up, or with a second sweep)."""
    seen = job.heartbeat_at
    statement = (
        sa.update(Job)
        .where(Job.id == job.id, Job.status == JobStatus.RUNNING.value)
        .where(Job.heartbeat_at.is_(None) if seen is None else Job.heartbeat_at == seen)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    changed = db.session.execute(statement).rowcount == 1
    db.session.commit()
    return changed


def purge_old_artifacts(now: datetime | None = None) -> int:
    """Remove the artifact files of jobs finished more than ARTIFACT_RETENTION_DAYS ago; the
    rows stay, marked ``purged_at``. Returns how many jobs were purged."""
    now = now or utcnow()
    settings = current_settings()
    cutoff = now - timedelta(days=settings.ARTIFACT_RETENTION_DAYS)
    storage = MediaStorage(settings.MEDIA_ROOT)
    jobs = db.session.scalars(
        sa.select(Job).where(Job.finished_at < cutoff, Job.artifacts_purged_at.is_(None))
    ).all()
    for job in jobs:
        for artifact in job.artifacts:
            if artifact.purged_at is None:
                storage.resolve(artifact.storage_path).unlink(missing_ok=True)
                artifact.purged_at = now
        job.artifacts_purged_at = now
        db.session.commit()
    return len(jobs)
