"""The dead-letter list: jobs given up on because their worker kept dying under them."""

from __future__ import annotations

import sqlalchemy as sa

from core.database import db
from core.job_state import WORKER_LOST
from core.records import Job, JobStatus


def dead_letters(limit: int | None = None) -> list[Job]:
    """The jobs given up on because their worker kept dying under them (``worker_lost``),
    newest first: the operators' dead-letter list. Their messages are acknowledged; running
    one again is a new submission."""
    query = (
        sa.select(Job)
        .where(Job.status == JobStatus.FAILED.value, Job.error_code == WORKER_LOST)
        .order_by(Job.finished_at.desc(), Job.id)
    )
    return list(db.session.scalars(query.limit(limit) if limit else query))


def count_dead_letters() -> int:
    """How many jobs are in the dead-letter list."""
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Job)
        .where(Job.status == JobStatus.FAILED.value, Job.error_code == WORKER_LOST)
    )
