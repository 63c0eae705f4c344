"""Per-user limits on unfinished work: jobs and input bytes not yet final, counted in Postgres."""

from __future__ import annotations

import sqlalchemy as sa

from core.database import db
from core.records import FINAL_STATUSES, Job, JobInput, User
from core.settings_access import current_settings
from webapp.errors import ApiError


def queued_usage(user_id: int) -> tuple[int, int]:
    """The user's jobs that are not final and the bytes of their inputs.

    Only submitted jobs count: a sequence's per-photo steps share their parent's files and are
    part of its one submission.
    """
    unfinished = sa.select(Job.id).where(
        Job.owner_id == user_id,
        Job.parent_id.is_(None),
        Job.status.notin_([status.value for status in FINAL_STATUSES]),
    )
    jobs = db.session.scalar(sa.select(sa.func.count()).select_from(unfinished.subquery()))
    size = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(JobInput.size), 0)).where(
            JobInput.job_id.in_(unfinished)
        )
    )
    return int(jobs or 0), int(size or 0)


def check_queue_quota(user_id: int, new_jobs: int, new_bytes: int, *, lock: bool = True) -> None:
    """Refuse a submission that would take the user over MAX_QUEUED_JOBS/BYTES_PER_USER.

    With ``lock`` (call it in the transaction that inserts the jobs) the user's row is locked
    first, so on Postgres two uploads of one user are counted one after the other and cannot
    both slip under the limit. SQLite (development) has no row locks: simultaneous uploads may
    overshoot by a submission each.
    """
    settings = current_settings()
    if lock:
        db.session.execute(sa.select(User.id).where(User.id == user_id).with_for_update())
    jobs, size = queued_usage(user_id)
    limits = (
        (
            "too_many_queued_jobs",
            "unfinished jobs",
            jobs,
            new_jobs,
            settings.MAX_QUEUED_JOBS_PER_USER,
        ),
        (
            "queue_quota_exceeded",
            "bytes of input to unfinished jobs",
            size,
            new_bytes,
            settings.MAX_QUEUED_BYTES_PER_USER,
        ),
    )
    for code, what, current, new, limit in limits:
        if new > limit:
            # Waiting would not help: this submission alone is over the limit.
            raise ApiError(
                413, code, f"This submission alone ({new}) is over the limit of {limit} {what}."
            )
        if current + new > limit:
            raise ApiError(
                429,
                code,
                f"Over the limit of {limit} {what} per user: you have {current}, this "
                f"submission adds {new}. Retry when some of your jobs have finished.",
                headers={"Retry-After": str(settings.QUEUE_QUOTA_RETRY_AFTER)},
            )
