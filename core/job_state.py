"""Job life-cycle transitions, each a guarded update so workers and the web never race."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from core.database import db
from core.metrics import record_dead_letter, record_first_claim, record_job_end
from core.records import Artifact, Job, JobStatus, utcnow
from core.storage import MediaStorage
from pipelines.base import PipelineOutput

# A redelivered message (worker lost mid-task) finds its job still "running": it may take it again.
CLAIMABLE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)

# The error code of a job given up on because its worker (process) kept dying under it.
WORKER_LOST = "worker_lost"


def _guarded(job_id: uuid.UUID, allowed: tuple[str, ...], attempt: int | None = None) -> sa.Update:
    """An update of the job while its status is one of ``allowed`` and, given ``attempt``,
    while that is still its newest claim (a run claimed again elsewhere is fenced off)."""
    statement = sa.update(Job).where(Job.id == job_id, Job.status.in_(allowed))
    if attempt is not None:
        statement = statement.where(Job.attempts == attempt)
    return statement.execution_options(synchronize_session=False)


def _guarded_update(
    job_id: uuid.UUID, allowed: tuple[str, ...], attempt: int | None = None, **values: object
) -> bool:
    """Apply the values only while the job's status is one of ``allowed`` (and ``attempt`` is
    its newest claim, if given); True if it changed."""
    return _transition(job_id, allowed, attempt, **values) is not None


def _transition(
    job_id: uuid.UUID, allowed: tuple[str, ...], attempt: int | None = None, **values: object
) -> sa.Row | None:
    """``_guarded_update``, answering the changed job's type and times (None if unchanged),
    for the metrics that only the one caller that changed it may record."""
    statement = _guarded(job_id, allowed, attempt).values(**values)
    returning = statement.returning(Job.type, Job.created_at, Job.started_at, Job.finished_at)
    row = db.session.execute(returning).first()
    db.session.commit()
    return row


def _count_attempt(job_id: uuid.UUID, allowed: tuple[str, ...], **values: object) -> Job | None:
    """Count one more attempt on the job (guarded as ``_guarded_update``); the job, unless it
    was not changed or another claim overtook this one before it was read back."""
    statement = _guarded(job_id, allowed).values(attempts=Job.attempts + 1, **values)
    attempt = db.session.execute(statement.returning(Job.attempts)).scalar_one_or_none()
    db.session.commit()
    if attempt is None:
        return None
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    # The run fences itself with job.attempts: it must be the value this claim wrote.
    return job if job is not None and job.attempts == attempt else None


def claim(job_id: uuid.UUID, worker: str) -> Job | None:
    """Mark the job running on this worker and count the attempt; None if it is final or gone.

    The job's ``attempts`` then identifies this claim: a message delivered twice (restored
    while its worker still ran it) is claimed twice, and only the newest claim may go on.
    """
    job = _count_attempt(
        job_id,
        CLAIMABLE,
        status=JobStatus.RUNNING.value,
        worker=worker,
        started_at=utcnow(),
        heartbeat_at=utcnow(),
        progress=0,
    )
    if job is not None and job.attempts == 1:
        # The first claim ends the job's wait; a re-run's claim is not a new wait.
        record_first_claim(job.type, job.created_at, job.started_at)
    return job


def give_up_if_exhausted(job_id: uuid.UUID, max_attempts: int) -> Job | None:
    """Fail the job with ``worker_lost`` if it was claimed ``max_attempts`` times already and is
    delivered again (each earlier attempt lost its process); the failed job, else None."""
    job = db.session.get(Job, job_id, populate_existing=True)
    if job is None or job.status not in CLAIMABLE or job.attempts < max_attempts:
        db.session.rollback()
        return None
    seen = job.attempts
    statement = (
        sa.update(Job)
        .where(Job.id == job_id, Job.status.in_(CLAIMABLE), Job.attempts == seen)
        .values(
            status=JobStatus.FAILED.value,
            error_code=WORKER_LOST,
            error_message=(
                f"The job was started {seen} time(s) and never finished: its process died (out "
                f"of memory or killed) or lost the database; gave up after {seen} attempt(s)."
            ),
            finished_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    failed = db.session.execute(statement).rowcount == 1
    db.session.commit()
    if not failed:
        return None
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    if job is not None:
        record_dead_letter(job.type, WORKER_LOST)
    return job


def resume(job_id: uuid.UUID, count_attempt: bool = False) -> Job | None:
    """A running job whose next stage starts now; None if it was cancelled or is gone.

    ``count_attempt``: the stage's message is a redelivery (its process died), which counts as
    an attempt towards MAX_ATTEMPTS. The stage runs as the job's current attempt (its
    ``attempts``), which a newer claim would fence off like a first stage's.
    """
    if count_attempt:
        job = _count_attempt(job_id, (JobStatus.RUNNING.value,), heartbeat_at=utcnow())
    else:
        db.session.expire_all()
        job = db.session.get(Job, job_id)
    return job if job is not None and job.status == JobStatus.RUNNING.value else None


def attempts_so_far(job_id: uuid.UUID) -> int:
    """How many times the job was claimed (0 if it is gone)."""
    attempts = db.session.scalar(sa.select(Job.attempts).where(Job.id == job_id))
    db.session.rollback()  # no transaction left open: the caller may wait at the gate next
    return attempts or 0


def still_waiting(job_id: uuid.UUID) -> bool:
    """A job whose message waits in its worker for its turn: whether it is still to be run
    (queued or running, not cancelled, final or gone). A running job's heartbeat is renewed:
    its message is held, so the stale-job sweep must not take it for lost meanwhile."""
    if _guarded_update(job_id, (JobStatus.RUNNING.value,), heartbeat_at=utcnow()):
        return True
    status = db.session.scalar(sa.select(Job.status).where(Job.id == job_id))
    db.session.rollback()
    return status == JobStatus.QUEUED.value


def report_progress(job_id: uuid.UUID, percent: int, attempt: int | None = None) -> bool:
    """Record progress (0-99) of a running job; False (nothing changed) once it is no longer
    running, e.g. cancelled, or (given ``attempt``) once a newer claim took it over."""
    return _guarded_update(
        job_id,
        (JobStatus.RUNNING.value,),
        attempt,
        progress=max(0, min(99, int(percent))),
        heartbeat_at=utcnow(),
    )


def fail(job_id: uuid.UUID, code: str, message: str, attempt: int | None = None) -> bool:
    """Finish a running job as failed, with the reason; False if it was cancelled meanwhile
    or (given ``attempt``) claimed again by a newer run."""
    row = _transition(
        job_id,
        CLAIMABLE,
        attempt,
        status=JobStatus.FAILED.value,
        error_code=code,
        error_message=message,
        finished_at=utcnow(),
    )
    if row is None:
        return False
    record_job_end(row.type, row.started_at, row.finished_at, code)
    return True


def cancel(job_id: uuid.UUID) -> bool:
    """Cancel a queued or running job; False if it had already finished."""
    return _guarded_update(
        job_id, CLAIMABLE, status=JobStatus.CANCELLED.value, finished_at=utcnow()
    )


def _store_output(job: Job, output: PipelineOutput, storage: MediaStorage) -> None:
    """Write the artifacts (replacing an earlier attempt's), the result and the model on the job."""
    existing = {artifact.name: artifact for artifact in job.artifacts}
    for produced in output.artifacts:
        blob = storage.write(storage.artifact_path(job.id, produced.name), produced.data)
        artifact = existing.get(produced.name) or Artifact(job=job, name=produced.name)
        artifact.content_type = produced.content_type
        artifact.size = blob.size
        artifact.sha256 = blob.sha256
        artifact.storage_path = blob.storage_path
        db.session.add(artifact)
    job.result = output.result
    if output.model is not None:
        job.model_name = output.model.name
        job.model_version = output.model.version
        job.model_sha256 = output.model.sha256


def _running_job_for_update(job_id: uuid.UUID, attempt: int | None) -> Job | None:
    job = db.session.get(Job, job_id, with_for_update=True, populate_existing=True)
    stale = attempt is not None and job is not None and job.attempts != attempt
    if job is None or job.status != JobStatus.RUNNING.value or stale:
        db.session.rollback()
        return None
    return job


def checkpoint(
    job_id: uuid.UUID,
    output: PipelineOutput,
    storage: MediaStorage,
    progress: int,
    attempt: int | None = None,
) -> bool:
    """Store a finished stage's output; the job stays running for its next stage.

    False, with nothing recorded, if the job stopped running meanwhile (cancelled) or (given
    ``attempt``) a newer claim took it over.
    """
    job = _running_job_for_update(job_id, attempt)
    if job is None:
        return False
    _store_output(job, output, storage)
    job.progress = progress
    job.heartbeat_at = utcnow()
    db.session.commit()
    return True


def succeed(
    job_id: uuid.UUID, output: PipelineOutput, storage: MediaStorage, attempt: int | None = None
) -> bool:
    """Store artifacts (replacing an earlier attempt's) and the result in one transaction.

    False, with nothing recorded, if the job stopped running meanwhile (cancelled) or (given
    ``attempt``) a newer claim took it over: of two runs of one job only the newest stores.
    """
    job = _running_job_for_update(job_id, attempt)
    if job is None:
        return False
    _store_output(job, output, storage)
    job.status = JobStatus.SUCCEEDED.value
    job.progress = 100
    job.error_code = None
    job.error_message = None
    job.finished_at = utcnow()
    ended = (job.type, job.started_at, job.finished_at)
    db.session.commit()
    record_job_end(*ended)
    return True


# A fan-out job's progress while its children run stays below this; reaching it means "all
# children ended, the job's own stage was handed on" and happens exactly once.
CHILDREN_DONE_PROGRESS = 80


def start_parent(parent_id: uuid.UUID, worker: str) -> None:
    """Mark a fan-out job running when the first of its children starts."""
    row = _transition(
        parent_id,
        (JobStatus.QUEUED.value,),
        status=JobStatus.RUNNING.value,
        attempts=1,
        worker=worker,
        started_at=utcnow(),
        heartbeat_at=utcnow(),
    )
    if row is not None:
        record_first_claim(row.type, row.created_at, row.started_at)


def advance_parent(parent_id: uuid.UUID) -> bool:
    """Record that a child ended; True for exactly one caller, once every child has ended.

    The final step is one guarded UPDATE (progress below the mark and no child still queued or
    running): however many children end at once, on however many workers, only one caller's
    update changes the row, and only that caller hands the job to its next stage.
    """
    child = aliased(Job)
    counts = db.session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(child.status.notin_(CLAIMABLE)),
        ).where(child.parent_id == parent_id)
    ).one()
    total, ended = int(counts[0]), int(counts[1])
    if total and ended < total:
        progress = min(CHILDREN_DONE_PROGRESS - 1, CHILDREN_DONE_PROGRESS * ended // total)
        statement = (
            sa.update(Job)
            .where(Job.id == parent_id, Job.status == JobStatus.RUNNING.value)
            .where(Job.progress < progress)
            .values(progress=progress, heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        db.session.execute(statement)
        db.session.commit()
        return False
    still_running = (
        sa.select(child.id)
        .where(child.parent_id == parent_id, child.status.in_(CLAIMABLE))
        .exists()
    )
    statement = (
        sa.update(Job)
        .where(
            Job.id == parent_id,
            Job.status == JobStatus.RUNNING.value,
            Job.progress < CHILDREN_DONE_PROGRESS,
            ~still_running,
        )
        .values(progress=CHILDREN_DONE_PROGRESS, heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    handed_on = db.session.execute(statement).rowcount == 1
    db.session.commit()
    return handed_on
