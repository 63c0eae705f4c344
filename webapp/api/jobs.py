"""Jobs: submit (validated before anything is stored), read, list, cancel, download artifacts."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from flask import Response, g, jsonify, request, send_file, url_for
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.interfaces import ORMOption

from core.database import db
from core.job_state import cancel
from core.jobtypes import JobType, get_job_type, invalid_params
from core.metrics import record_submitted
from core.model_choice import check_model_choice
from core.publishing import enqueue_job, revoke_job
from core.records import Artifact, Job, JobInput, JobStatus, Subject
from core.settings_access import current_settings
from core.storage import MediaStorage
from webapp import strict_json
from webapp.api import bp
from webapp.api.job_etags import has_steps, job_etag, not_modified
from webapp.api.job_reads import read_files, read_owned_job
from webapp.auth import token_required
from webapp.errors import ApiError
from webapp.quotas import check_queue_quota
from webapp.request_guards import refuse_nul_characters
from webapp.uploads import CheckedImage, check_image

log = logging.getLogger(__name__)

FILES_FIELD = "files"
FORM_FIELDS = {"type", "params", "subject_id"}
MAX_PER_PAGE = 100
# The largest params (30 taken_at dates) are about 1 kB and nest two levels deep.
MAX_PARAMS_CHARS = 16_384
MAX_PARAMS_DEPTH = 8
# Ids are Postgres integers: a longer number is no subject, not a database error.
SUBJECT_ID = re.compile(r"[0-9]{1,10}")
MAX_SUBJECT_ID = 2**31 - 1


def media_storage() -> MediaStorage:
    """Storage rooted at MEDIA_ROOT."""
    return MediaStorage(current_settings().MEDIA_ROOT)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    # SQLite hands timestamps back without a zone; they were written in UTC.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def job_to_json(job: Job) -> dict[str, Any]:
    """The public view of a job."""
    subject = None if job.subject is None else (job.subject.id, job.subject.label)
    # Only a fan-out type has steps: other jobs skip the query.
    children = job.children if has_steps(job) else []
    return job_json(job, subject, job.inputs, job.artifacts, children)


def job_json(
    job: Any,
    subject: tuple[int, str] | None,
    inputs: Iterable[Any],
    artifacts: Iterable[Any],
    children: Iterable[Any],
) -> dict[str, Any]:
    """The public view of a job from its row (a ``Job`` or a Core row) and what it lists."""
    return {
        "id": str(job.id),
        "type": job.type,
        "status": job.status,
        "progress": job.progress,
        "params": job.params,
        "result": job.result,
        "error": (
            {"code": job.error_code, "message": job.error_message} if job.error_code else None
        ),
        "attempts": job.attempts,
        "model": (
            {"name": job.model_name, "version": job.model_version, "sha256": job.model_sha256}
            if job.model_name
            else None
        ),
        "inputs": [
            {
                "position": item.position,
                "filename": item.filename,
                "content_type": item.content_type,
                "size": item.size,
                "sha256": item.sha256,
            }
            for item in inputs
        ],
        "artifacts": [
            {
                "name": artifact.name,
                "content_type": artifact.content_type,
                "size": artifact.size,
                "sha256": artifact.sha256,
                "url": url_for("api.get_artifact", job_id=job.id, name=artifact.name),
                "purged_at": _iso(artifact.purged_at),
            }
            for artifact in artifacts
        ],
        "subject": None if subject is None else {"id": subject[0], "name": subject[1]},
        "parent": (
            {
                "id": str(job.parent_id),
                "position": job.parent_position,
                "url": url_for("api.get_job", job_id=job.parent_id),
            }
            if job.parent_id
            else None
        ),
        "children": [
            {
                "id": str(child.id),
                "type": child.type,
                "position": child.parent_position,
                "status": child.status,
                "url": url_for("api.get_job", job_id=child.id),
            }
            for child in children
        ],
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "url": url_for("api.get_job", job_id=job.id),
    }


# Everything job_to_json reads beyond the row, one query per relationship for any number of jobs
# (a list page would otherwise read each job's inputs, artifacts and steps one job at a time).
JOB_JSON_LOADS: tuple[ORMOption, ...] = (
    joinedload(Job.subject),
    selectinload(Job.inputs),
    selectinload(Job.artifacts),
    selectinload(Job.children),
)


def _poll_headers(response: Response, job: Any, etag: str | None = None) -> Response:
    """``Retry-After`` while the job (a ``Job`` or a Core row) is not final; its ``ETag`` when
    given."""
    if not JobStatus(job.status).is_final:
        response.headers["Retry-After"] = str(current_settings().POLL_RETRY_AFTER)
    if etag is not None:
        response.headers["ETag"] = etag
    return response


def _job_response(job: Job, status: int = 200) -> tuple[Response, int]:
    return _poll_headers(jsonify(job_to_json(job)), job), status


def _owned_job(job_id: uuid.UUID, *options: ORMOption) -> Job:
    """The caller's job, read with the owner check in one query; someone else's job is
    indistinguishable from a missing one (404)."""
    job = db.session.scalar(
        db.select(Job).where(Job.id == job_id, Job.owner_id == g.user.id).options(*options)
    )
    if job is None:
        raise _job_not_found(job_id)
    return job


def _job_not_found(job_id: uuid.UUID) -> ApiError:
    return ApiError(404, "job_not_found", f"No job {job_id}.")


def _parse_params(raw: str | None, job_type: JobType) -> dict[str, Any]:
    if raw is None or not raw.strip():
        params: Any = {}
    else:
        try:
            params = strict_json.loads(raw, max_chars=MAX_PARAMS_CHARS, max_depth=MAX_PARAMS_DEPTH)
        except ValueError as exc:
            raise invalid_params(f"'params' is not valid JSON: {exc}.") from None
    if not isinstance(params, dict):
        raise invalid_params("'params' must be a JSON object.")
    return job_type.validate_params(params)


def _checked_files(job_type: JobType) -> list[CheckedImage]:
    unexpected = (set(request.files) - {FILES_FIELD}) | (set(request.form) - FORM_FIELDS)
    # A multipart part without a name is filed under None.
    extra_fields = sorted("(no name)" if name is None else name for name in unexpected)
    if extra_fields:
        raise ApiError(
            400, "unexpected_field", f"Unexpected form field(s): {', '.join(extra_fields)}."
        )
    uploads = [item for item in request.files.getlist(FILES_FIELD) if item.filename]
    settings = current_settings()
    max_files = min(job_type.max_files, settings.MAX_FILES_PER_JOB)
    if len(uploads) < job_type.min_files:
        raise ApiError(
            400,
            "missing_files",
            f"'{job_type.name}' needs at least {job_type.min_files} file(s) in '{FILES_FIELD}'.",
        )
    if len(uploads) > max_files:
        raise ApiError(
            400,
            "too_many_files",
            f"'{job_type.name}' takes at most {max_files} file(s); got {len(uploads)}.",
        )
    return [
        check_image(
            upload,
            formats=job_type.image_formats,
            max_bytes=settings.MAX_UPLOAD_BYTES,
            limits=settings.image_limits,
        )
        for upload in uploads
    ]


def _input_row(
    position: int, checked: CheckedImage, size: int, sha256: str, storage_path: str
) -> JobInput:
    return JobInput(
        position=position,
        filename=checked.filename,
        content_type=checked.content_type,
        size=size,
        sha256=sha256,
        storage_path=storage_path,
    )


def _subject_id(raw: str | None) -> int | None:
    """The caller's (not deleted) subject named by the form, or None when none is named."""
    if raw is None or not raw.strip():
        return None
    number = int(raw) if SUBJECT_ID.fullmatch(raw.strip()) else None
    valid = number is not None and 0 < number <= MAX_SUBJECT_ID
    subject = db.session.get(Subject, number) if valid else None
    if subject is None or subject.owner_id != g.user.id or subject.deleted_at is not None:
        raise ApiError(404, "subject_not_found", f"No subject {raw.strip()!r}.")
    return subject.id


def _store_jobs(
    job_type: JobType,
    params: dict[str, Any],
    groups: list[list[CheckedImage]],
    subject_id: int | None = None,
) -> list[Job]:
    """Create the jobs, their input rows and files in one transaction; on failure none remain."""
    storage = media_storage()
    # Before the jobs exist in the session (autoflush would count them); holds the lock to commit.
    check_queue_quota(g.user.id, len(groups), sum(len(c.data) for files in groups for c in files))
    jobs = [
        Job(
            id=uuid.uuid4(),
            owner_id=g.user.id,
            type=job_type.name,
            params=params,
            subject_id=subject_id,
        )
        for _ in groups
    ]
    try:
        for job, files in zip(jobs, groups, strict=True):
            for position, checked in enumerate(files):
                blob = storage.write(
                    storage.input_path(job.id, position, checked.extension), checked.data
                )
                job.inputs.append(
                    _input_row(position, checked, blob.size, blob.sha256, blob.storage_path)
                )
                if job_type.child_type and job_type.child_params:
                    # One child job per file; it reads the parent's copy of the file.
                    child = Job(
                        id=uuid.uuid4(),
                        owner_id=g.user.id,
                        type=job_type.child_type,
                        params=job_type.child_params(params),
                        parent_position=position,
                        subject_id=subject_id,
                    )
                    child.inputs.append(
                        _input_row(0, checked, blob.size, blob.sha256, blob.storage_path)
                    )
                    job.children.append(child)
            db.session.add(job)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        for job in jobs:
            storage.remove_job(job.id)
        raise
    return jobs


def _discard_jobs(jobs: list[Job]) -> None:
    job_ids = [job.id for job in jobs]
    for job in jobs:
        db.session.delete(job)
    db.session.commit()
    for job_id in job_ids:
        media_storage().remove_job(job_id)


def _require_pixel_spacing(params: dict[str, Any], files: list[CheckedImage]) -> None:
    if "pixel_spacing_mm" in params:
        return
    unknown = [checked.filename for checked in files if checked.pixel_spacing_mm is None]
    if unknown:
        raise ApiError(
            400,
            "missing_pixel_spacing",
            "Give params.pixel_spacing_mm: no pixel size is known for "
            f"{', '.join(unknown)} (only DICOM files carry one, in PixelSpacing).",
        )


@bp.post("/jobs")
@token_required
def create_job() -> tuple[Response, int]:
    """Validate the type, files and params, store them, enqueue, answer 202 with the job(s).

    Types that take one file per job turn several files into a batch: one job per file, answered
    as ``{"jobs": [...]}``.
    """
    if not g.user.is_confirmed:
        raise ApiError(
            403,
            "email_unconfirmed",
            "Confirm your email address (follow the link we sent) before submitting jobs.",
        )
    refuse_nul_characters(parse_multipart=True)
    job_type = get_job_type(request.form.get("type"))
    # A cheap early refusal before the files are decoded; the count that holds is in _store_jobs.
    check_queue_quota(g.user.id, 1, 0, lock=False)
    subject_id = _subject_id(request.form.get("subject_id"))
    params = _parse_params(request.form.get("params"), job_type)
    check_model_choice(job_type, params, current_settings())
    files = _checked_files(job_type)
    if job_type.needs_pixel_spacing:
        _require_pixel_spacing(params, files)
    if job_type.check_file_count:
        job_type.check_file_count(params, len(files))
    groups = [[checked] for checked in files] if job_type.one_job_per_file else [files]
    jobs = _store_jobs(job_type, params, groups, subject_id)
    try:
        for job in jobs:
            enqueue_job(job)
    except Exception as exc:  # kombu raises several types when Redis is unreachable
        log.warning("could not enqueue jobs %s: %s", [str(job.id) for job in jobs], exc)
        _discard_jobs(jobs)
        raise ApiError(
            503, "queue_unavailable", "The job queue is unavailable; nothing was stored. Retry."
        ) from None
    record_submitted(target.type for job in jobs for target in (job, *job.children))
    retry_after = str(current_settings().POLL_RETRY_AFTER)
    if len(jobs) > 1:
        response = jsonify({"jobs": [job_to_json(job) for job in jobs]})
        response.headers["Retry-After"] = retry_after
        return response, 202
    response, status = _job_response(jobs[0], 202)
    response.headers["Location"] = url_for("api.get_job", job_id=jobs[0].id)
    return response, status


@bp.get("/jobs/<uuid:job_id>")
@token_required
def get_job(job_id: uuid.UUID) -> Response:
    """The caller's job with its status, result and artifacts, tagged with an ``ETag``; ``304``
    without a body when ``If-None-Match`` names the current tag.

    The most frequent request (clients poll it every ``Retry-After``), read with Core rather
    than the ORM (``job_reads``): one query reads the job and its subject with the owner check,
    a second its steps for a fan-out type only; inputs and artifacts are read only when the
    answer is not a 304.
    """
    polled = read_owned_job(job_id, g.user.id)
    if polled is None:
        raise _job_not_found(job_id)
    job = polled.row
    etag = job_etag(job, polled.subject, polled.steps)
    if not_modified(etag):
        return _poll_headers(Response(status=304), job, etag)
    inputs, artifacts = read_files(job_id)
    body = job_json(job, polled.subject, inputs, artifacts, polled.steps)
    return _poll_headers(jsonify(body), job, etag)


def _int_arg(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_query", f"'{name}' must be an integer.") from None
    if not minimum <= value <= maximum:
        raise ApiError(400, "invalid_query", f"'{name}' must be between {minimum} and {maximum}.")
    return value


@bp.get("/jobs")
@token_required
def list_jobs() -> Response:
    """The caller's jobs, newest first, paginated, filterable by status and type.

    Jobs that are a step of another job (a sequence's per-photo face extraction) are listed in
    their parent's ``children``, not here.
    """
    page = _int_arg("page", 1, 1, 1_000_000)
    per_page = _int_arg("per_page", 20, 1, MAX_PER_PAGE)
    query = db.select(Job).filter_by(owner_id=g.user.id, parent_id=None).options(*JOB_JSON_LOADS)
    status = request.args.get("status")
    if status is not None:
        if status not in set(JobStatus):
            raise ApiError(400, "invalid_query", f"'status' must be one of {', '.join(JobStatus)}.")
        query = query.filter_by(status=status)
    if (job_type := request.args.get("type")) is not None:
        query = query.filter_by(type=job_type)
    pagination = db.paginate(
        query.order_by(Job.created_at.desc(), Job.id.desc()),
        page=page,
        per_page=per_page,
        error_out=False,
    )
    return jsonify(
        {
            "items": [job_to_json(job) for job in pagination.items],
            "page": page,
            "per_page": per_page,
            "total": pagination.total,
            "pages": pagination.pages,
        }
    )


@bp.delete("/jobs/<uuid:job_id>")
@token_required
def cancel_job(job_id: uuid.UUID) -> tuple[Response, int]:
    """Cancel a queued or running job with its steps; 409 if it already finished."""
    job = _owned_job(job_id)
    if job.parent_id is not None:
        raise ApiError(
            409, "part_of_job", f"Job {job.id} is a step of job {job.parent_id}; cancel that one."
        )
    if not cancel(job.id):
        db.session.refresh(job)
        raise ApiError(409, "job_finished", f"Job {job.id} already {job.status}.")
    stopped = [job, *(child for child in job.children if cancel(child.id))]
    for target in stopped:
        try:
            revoke_job(target)
        except Exception as exc:  # cancelled in the database; the worker checks that too
            log.warning("could not broadcast revoke for job %s: %s", target.id, exc)
    db.session.expire_all()
    return _job_response(_owned_job(job_id))


@bp.get("/jobs/<uuid:job_id>/artifacts/<name>")
@token_required
def get_artifact(job_id: uuid.UUID, name: str) -> Response:
    """Stream one artifact of the caller's job."""
    job = _owned_job(job_id)
    artifact = db.session.scalar(db.select(Artifact).filter_by(job_id=job.id, name=name))
    if artifact is None:
        raise ApiError(404, "artifact_not_found", f"Job {job.id} has no artifact {name!r}.")
    if artifact.purged_at is not None:
        raise ApiError(
            410,
            "artifact_gone",
            f"Artifact {name!r} was removed by the retention policy on {_iso(artifact.purged_at)}.",
        )
    path = media_storage().resolve(artifact.storage_path)
    if not path.is_file():
        raise ApiError(410, "artifact_gone", f"Artifact {name!r} is no longer stored.")
    return send_file(path, mimetype=artifact.content_type, download_name=name, max_age=0)
