"""A subject's head measurements: its successful ``head_circumference`` jobs, each with its
gestational age and place on the INTERGROWTH-21st standard (``pipelines.fetal_growth``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from core.database import db
from core.jobtypes.head_circumference import JOB_TYPE
from core.records import Job, JobInput, JobStatus
from pipelines.fetal_growth import GestationalAge, gestational_age_at_scan, head_growth

# The growth fields of a head_circumference result (those head_growth() gives).
GROWTH_FIELDS = tuple(head_growth(None, None))


def utc_date(moment: datetime) -> date:
    """The UTC calendar day of a stored time (SQLite hands times back without a zone: UTC)."""
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()


def job_gestational_age(job: Job) -> GestationalAge | None:
    """The age at the job's scan: its params, else its subject's due date and the scan's date
    (``params.scan_date``, else the day the job was submitted)."""
    due_date = job.subject.due_date if job.subject is not None else None
    return gestational_age_at_scan(job.params or {}, due_date, utc_date(job.created_at))


def growth_fields(job: Job) -> dict[str, Any]:
    """The job's growth fields as stored; for a result from before they existed, worked out now
    from its head circumference and its subject's due date."""
    result = job.result or {}
    if "gestational_age_days" in result:
        return {name: result.get(name) for name in GROWTH_FIELDS}
    return head_growth(result.get("head_circumference_mm"), job_gestational_age(job))


def _measurements() -> sa.Select[tuple[Job]]:
    return sa.select(Job).where(
        Job.type == JOB_TYPE.name,
        Job.status == JobStatus.SUCCEEDED.value,
        Job.parent_id.is_(None),
    )


def subject_measurements(subject_id: int, owner_id: int) -> list[Job]:
    """The owner's successful head measurements of the subject, oldest first."""
    statement = (
        _measurements()
        .where(Job.subject_id == subject_id, Job.owner_id == owner_id)
        .order_by(Job.created_at, Job.id)
    )
    return list(db.session.scalars(statement))


def image_growth(job: Job, sha256: str) -> tuple[Job | None, dict[str, Any]]:
    """For one image of a job on a subject: the head measurement of the same image, if any, and
    its growth fields; without one, only the age at the job's scan (head fields null)."""
    head = (
        measurement_of_image(job.subject_id, job.owner_id, sha256)
        if job.subject_id is not None
        else None
    )
    if head is not None:
        return head, growth_fields(head)
    return None, head_growth(None, job_gestational_age(job))


def measurement_of_image(subject_id: int, owner_id: int, sha256: str) -> Job | None:
    """The owner's newest successful head measurement of the subject made on this very image
    (the same file, by sha256)."""
    statement = (
        _measurements()
        .join(JobInput, JobInput.job_id == Job.id)
        .where(Job.subject_id == subject_id, Job.owner_id == owner_id, JobInput.sha256 == sha256)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(1)
    )
    return db.session.scalar(statement)
