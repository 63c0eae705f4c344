"""The one life cycle every job task shares: claim, run the pipeline, record success or failure."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from core import job_state
from core.database import db
from core.jobtypes import JOB_TYPES, stage_of
from core.records import Job
from core.settings_access import current_settings
from core.storage import MediaStorage
from models.isolation import process_gate
from pipelines.base import JobCancelled, PipelineError, PipelineOutput, ProgressCallback
from tasks.backoff import retry_delay

log = logging.getLogger(__name__)

Pipeline = Callable[[list[Path], dict[str, Any], ProgressCallback], PipelineOutput]


class TaskOutcome(StrEnum):
    """What a job task did, its return value (logged by Celery; tests read it)."""

    SUCCEEDED = "succeeded"  # the job's last stage stored its result
    FAILED = "failed"  # the job failed, with its reason recorded
    CANCELLED = "cancelled"  # the job was cancelled while this task ran; nothing recorded
    SKIPPED = "skipped"  # the job was already final or gone; nothing done
    CONTINUED = "continued"  # this stage stored its part and queued the job's next stage


@dataclass(frozen=True)
class Stage:
    """A task's place in its job: whether it claims the job (a job's opening task) or resumes
    a job an earlier stage or its children started; which task it hands on to, at what
    progress."""

    claims_job: bool = True
    next_task: str | None = None
    progress_after: int = 100


WHOLE_JOB = Stage()


def stage_for(task_name: str) -> Stage:
    """The place of a task in its job, from the job type's declared stages.

    The first stage claims the job, except a fan-out type's: its children started it. A stage
    followed by another hands the job on.
    """
    found = stage_of(task_name)
    if found is None:
        return WHOLE_JOB
    job_type, index = found
    following = job_type.stages[index + 1] if index + 1 < len(job_type.stages) else None
    return Stage(
        claims_job=index == 0 and job_type.child_type is None,
        next_task=following.task_name if following else None,
        progress_after=job_type.stages[index].progress_after,
    )


def run_job(task: Task, job_id: str, pipeline: Pipeline, stage: Stage | None = None) -> str:
    """Run ``pipeline`` for the job (or one stage of it) and record the outcome.

    The stage is the task's place in its job type's declared stages unless given.
    """
    job_uuid = uuid.UUID(job_id)
    try:
        return _run(task, job_uuid, pipeline, stage or stage_for(task.name))
    except OperationalError as exc:
        # Database outages are worth waiting out (a bad input is not): capped exponential
        # backoff, so a long outage is ridden out and the job resumes soon after it ends.
        settings = current_settings()
        delay = retry_delay(
            task.request.retries,
            settings.DB_RETRY_BASE_SECONDS,
            settings.DB_RETRY_MAX_DELAY_SECONDS,
        )
        log.warning("database unavailable for job %s, retrying in %d s: %s", job_id, delay, exc)
        raise task.retry(exc=exc, countdown=delay, max_retries=settings.TASK_MAX_RETRIES) from exc


def _run(task: Task, job_id: uuid.UUID, pipeline: Pipeline, stage: Stage) -> TaskOutcome:
    redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
    if stage.claims_job or redelivered:
        # Counted where deliveries happen: a job whose process died under it MAX_ATTEMPTS times
        # is delivered once more and failed here, and its message is acknowledged.
        # A database-outage retry (task.request.retries) ended its attempt without dying, so
        # each one allows one more claim: only deaths count towards the limit.
        allowed = current_settings().MAX_ATTEMPTS + task.request.retries
        lost = job_state.give_up_if_exhausted(job_id, allowed)
        if lost is not None:
            log.error("job %s: %s", job_id, lost.error_message)
            if lost.parent_id is not None:
                _advance_parent(task, lost.parent_id)
            return TaskOutcome.FAILED
    # A delivery whose job may have killed a process before runs alone in a threads-pool worker
    # (models.isolation). Through the gate before the claim counts an attempt: a job waiting
    # there while the suspect runs loses nothing if the suspect kills the process.
    suspect = process_gate.enabled and (
        redelivered or _claimed_by_more_than_retries(task, job_id, stage)
    )
    with process_gate.entered(
        suspect,
        still_wanted=partial(job_state.still_waiting, job_id),
        check_every_s=current_settings().WORKER_HEARTBEAT_SECONDS,
    ) as entered:
        if not entered:
            log.info("job %s was cancelled while it waited for its turn", job_id)
            return TaskOutcome.SKIPPED
        return _claim_and_run(task, job_id, pipeline, stage, redelivered)


def _claimed_by_more_than_retries(task: Task, job_id: uuid.UUID, stage: Stage) -> bool:
    """Whether a claiming stage's job was claimed by more runs than its database-outage retries
    account for: an earlier run may have died with its process, though this message is not a
    redelivery (the stale-job sweep queues a new one)."""
    return stage.claims_job and job_state.attempts_so_far(job_id) > task.request.retries


def _claim_and_run(
    task: Task, job_id: uuid.UUID, pipeline: Pipeline, stage: Stage, redelivered: bool
) -> TaskOutcome:
    worker = task.request.hostname or "unknown"
    if stage.claims_job:
        job = job_state.claim(job_id, worker)
    else:
        # A later stage counts only its redeliveries (the claim counted the job's first run).
        job = job_state.resume(job_id, count_attempt=redelivered)
    if job is None:
        log.info("job %s is final or gone; nothing to do", job_id)
        return TaskOutcome.SKIPPED
    parent_id = job.parent_id
    if parent_id is None:
        return _run_claimed(task, job, pipeline, stage)
    job_state.start_parent(parent_id, worker)
    outcome = _run_claimed(task, job, pipeline, stage)
    if outcome in (TaskOutcome.SUCCEEDED, TaskOutcome.FAILED):
        _advance_parent(task, parent_id)
    return outcome


def _advance_parent(task: Task, parent_id: uuid.UUID) -> None:
    """After a child ended: if it was the last one, queue the parent's own task."""
    if not job_state.advance_parent(parent_id):
        return
    parent = db.session.get(Job, parent_id)
    if parent is None:
        return
    _hand_on(task, parent_id, JOB_TYPES[parent.type].task_name)


def _hand_on(task: Task, job_id: uuid.UUID, task_name: str) -> bool:
    """Queue the job's next task; if the broker is gone, fail the job rather than leave it."""
    try:
        task.app.send_task(task_name, args=[str(job_id)])
    except Exception as exc:
        job_state.fail(job_id, "queue_unavailable", f"Could not queue the next stage: {exc}")
        return False
    return True


def _run_claimed(task: Task, job: Job, pipeline: Pipeline, stage: Stage) -> TaskOutcome:
    job_id = job.id
    # This run's claim: a newer one (the message delivered again while this run still held it)
    # fences this run off, so that of two runs at once only the newest reports or stores.
    attempt = job.attempts
    storage = MediaStorage(current_settings().MEDIA_ROOT)
    inputs = [storage.resolve(item.storage_path) for item in job.inputs]
    params = dict(job.params or {})

    # Celery's threads pool (a batching gpu worker) enforces no time limit: a run past its soft
    # limit stops at its next progress report instead, failing as Celery's soft limit fails it.
    over_at = time.monotonic() + current_settings().TASK_SOFT_TIME_LIMIT

    def progress(percent: int) -> None:
        if time.monotonic() > over_at:
            raise SoftTimeLimitExceeded()
        # The progress update doubles as the cancel check: it changes nothing once the job is
        # no longer running (or claimed again), and the pipeline stops here, not at its end.
        if not job_state.report_progress(job_id, percent, attempt):
            raise JobCancelled(str(job_id))

    try:
        missing = [path.name for path in inputs if not path.is_file()]
        if missing:
            raise PipelineError("input_missing", f"Input file(s) missing: {', '.join(missing)}.")
        output = pipeline(inputs, params, progress)
    except JobCancelled:
        log.info("job %s was cancelled or claimed again while it ran; stopped", job_id)
        return TaskOutcome.CANCELLED
    except PipelineError as exc:
        job_state.fail(job_id, exc.code, exc.message, attempt)
        return TaskOutcome.FAILED
    except SoftTimeLimitExceeded:
        limit = current_settings().TASK_SOFT_TIME_LIMIT
        job_state.fail(
            job_id, "time_limit", f"The job ran longer than its {limit} s limit.", attempt
        )
        return TaskOutcome.FAILED
    except OperationalError:
        raise
    except Exception as exc:
        # A bug or an input the pipeline did not foresee: the job says so, the worker lives on.
        log.exception("job %s failed unexpectedly", job_id)
        job_state.fail(job_id, "internal_error", f"{type(exc).__name__}: {exc}", attempt)
        return TaskOutcome.FAILED
    if stage.next_task is None:
        stored = job_state.succeed(job_id, output, storage, attempt)
        return TaskOutcome.SUCCEEDED if stored else TaskOutcome.CANCELLED
    if not job_state.checkpoint(job_id, output, storage, stage.progress_after, attempt):
        return TaskOutcome.CANCELLED
    handed_on = _hand_on(task, job_id, stage.next_task)
    return TaskOutcome.CONTINUED if handed_on else TaskOutcome.FAILED
