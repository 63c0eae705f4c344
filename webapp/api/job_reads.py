"""One job read for a status poll with SQLAlchemy Core: rows, no ORM objects.

A poll is the most frequent request, and the ORM's per-statement bookkeeping (identity map,
instrumented attributes, loader machinery) cost it more CPU than its queries. Each statement
stands alone, so they run on the autocommit connection (``core.database.autocommit_connection``).
The rows carry the same attribute names as the ORM objects, so ``job_json`` and ``job_etag`` read
either.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from core.database import autocommit_connection
from core.records import Artifact, Job, JobInput, Subject, subject_label
from webapp.api.job_etags import has_steps

_JOBS = Job.__table__
_SUBJECTS = Subject.__table__
_INPUTS = JobInput.__table__
_ARTIFACTS = Artifact.__table__

# Built once with bound parameters: building a statement and its cache key on every poll cost
# more than running it.
_JOB_WITH_SUBJECT = (
    sa.select(
        _JOBS,
        _SUBJECTS.c.id.label("subject_found_id"),
        _SUBJECTS.c.name.label("subject_name"),
    )
    .outerjoin(_SUBJECTS, _SUBJECTS.c.id == _JOBS.c.subject_id)
    .where(_JOBS.c.id == sa.bindparam("job_id"), _JOBS.c.owner_id == sa.bindparam("owner_id"))
)
_STEPS = (
    sa.select(_JOBS.c.id, _JOBS.c.type, _JOBS.c.parent_position, _JOBS.c.status)
    .where(_JOBS.c.parent_id == sa.bindparam("job_id"))
    .order_by(_JOBS.c.parent_position)
)


def _null(column: sa.Column[Any]) -> sa.Cast[Any]:
    """A NULL typed as the column, so that a union's rows are typed (SQLite dates parsed)."""
    return sa.cast(sa.null(), column.type)


# Inputs and artifacts in one statement (a union, portable to SQLite): each row is one or the
# other by ``kind``, with the other's columns NULL.
_FILE_ROWS = sa.union_all(
    sa.select(
        sa.literal_column("'input'", sa.String).label("kind"),
        _INPUTS.c.position,
        _INPUTS.c.filename,
        _null(_ARTIFACTS.c.name).label("name"),
        _INPUTS.c.content_type,
        _INPUTS.c.size,
        _INPUTS.c.sha256,
        _null(_ARTIFACTS.c.purged_at).label("purged_at"),
    ).where(_INPUTS.c.job_id == sa.bindparam("job_id")),
    sa.select(
        sa.literal_column("'artifact'", sa.String),
        _null(_INPUTS.c.position),
        _null(_INPUTS.c.filename),
        _ARTIFACTS.c.name,
        _ARTIFACTS.c.content_type,
        _ARTIFACTS.c.size,
        _ARTIFACTS.c.sha256,
        _ARTIFACTS.c.purged_at,
    ).where(_ARTIFACTS.c.job_id == sa.bindparam("job_id")),
).order_by(sa.column("position"), sa.column("name"))


@dataclass(frozen=True)
class PolledJob:
    """A job's row, its subject as (id, label), and its steps (empty for a type without)."""

    row: Any
    subject: tuple[int, str] | None
    steps: Sequence[Any]


def read_owned_job(job_id: uuid.UUID, owner_id: int) -> PolledJob | None:
    """The job with its subject, the owner check in SQL (one query), and its steps for a type
    that fans out (a second); None when the caller owns no such job."""
    connection = autocommit_connection()
    key = {"job_id": job_id}
    row = connection.execute(_JOB_WITH_SUBJECT, {**key, "owner_id": owner_id}).one_or_none()
    if row is None:
        return None
    subject = None
    if row.subject_found_id is not None:
        subject = (row.subject_found_id, subject_label(row.subject_found_id, row.subject_name))
    steps: Sequence[Any] = ()
    if has_steps(row):
        steps = connection.execute(_STEPS, key).all()
    return PolledJob(row=row, subject=subject, steps=steps)


def read_files(job_id: uuid.UUID) -> tuple[list[Any], list[Any]]:
    """The job's inputs (by position) and artifacts (by name), read in one query."""
    rows = autocommit_connection().execute(_FILE_ROWS, {"job_id": job_id}).all()
    return [row for row in rows if row.kind == "input"], [
        row for row in rows if row.kind == "artifact"
    ]
