"""ETags of a job's JSON, computed from what was read for the owner check, before the rest.

A poll whose ``If-None-Match`` holds the current tag gets ``304 Not Modified`` without the job's
inputs and artifacts ever being read. The tag is a digest of everything the JSON is built from
apart from those two lists: every column of the job's row, its subject's id and label, and its
steps' ids, types, positions and statuses. The two lists are covered by the row: inputs never
change after the upload, and every write of a job's artifacts writes its row too
(``core.job_state`` stores them with a new status or progress and heartbeat,
``scheduler.housekeeping`` marks ``artifacts_purged_at``). ``tests/webapp/api/test_job_etags.py``
changes a job in each of these ways and checks that its tag changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import request

from core.jobtypes import JOB_TYPES
from core.records import Job

# Part of every tag: change it whenever the JSON's shape changes (a field added, renamed or
# formatted differently), so that no client keeps a body of the old shape on a 304.
JSON_FORMAT = "job-json-1"
# Every column of the job's row; each mapped attribute of Job is named as its column.
JOB_COLUMNS = tuple(column.key for column in Job.__table__.columns)


def has_steps(job: Any) -> bool:
    """Whether the job's type fans out into step jobs (listed as its ``children``); a type no
    longer declared counts as one, so its steps are never left out of the tag."""
    job_type = JOB_TYPES.get(job.type)
    return job_type is None or job_type.child_type is not None


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


def job_etag(job: Any, subject: tuple[int, str] | None, steps: Iterable[Any]) -> str:
    """The job's current strong entity tag, quoted as in the header, from its row (a ``Job`` or a
    Core row of the jobs table), its subject's id and label, and its steps."""
    parts = [JSON_FORMAT]
    parts += [f"{name}={_text(getattr(job, name))}" for name in JOB_COLUMNS]
    if subject is not None:
        parts.append(f"subject={subject[0]}:{subject[1]}")
    if has_steps(job):
        parts += [
            f"step={child.id}:{child.type}:{child.parent_position}:{child.status}"
            for child in steps
        ]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return f'"{digest}"'


def not_modified(etag: str) -> bool:
    """Whether the request's ``If-None-Match`` names this tag (or ``*``), by weak comparison as
    RFC 9110 asks for that header."""
    return request.if_none_match.contains_weak(etag.strip('"'))
