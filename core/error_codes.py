"""Every error code the API answers with or a job fails with: one catalogue, which the README's
table and the OpenAPI document's error descriptions are made from.

``python -m core.error_codes --markdown`` prints the README table. A test reads the code base and
fails on a code that is used but not listed here (or listed with another HTTP status).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass

# Statuses a job-failure code carries in the tables (it is not an HTTP answer).
JOB_FAILURE = "job failure"


@dataclass(frozen=True)
class ErrorCode:
    """One error code: the HTTP statuses a request is refused with, whether a job can fail with
    it, and what it means."""

    code: str
    meaning: str
    http: tuple[int, ...] = ()
    job_failure: bool = False
    # Named by the web framework from the HTTP status (Werkzeug's name), not spelled in our code.
    generic: bool = False

    @property
    def where(self) -> str:
        """``400``, ``413, 429``, ``job failure`` or ``422, job failure``."""
        parts = [str(status) for status in self.http]
        if self.job_failure:
            parts.append(JOB_FAILURE)
        return ", ".join(parts)


def _e(code: str, http: int | tuple[int, ...], meaning: str, job: bool = False) -> ErrorCode:
    statuses = (http,) if isinstance(http, int) else http
    return ErrorCode(code, meaning, statuses, job)


def _job(code: str, meaning: str) -> ErrorCode:
    return ErrorCode(code, meaning, (), True)


CATALOGUE: tuple[ErrorCode, ...] = (
    # 400: the request itself is wrong
    _e("unknown_job_type", 400, "The `type` is not a job type."),
    _e("missing_files", 400, "Fewer files than the job type needs."),
    _e("too_many_files", 400, "More files than the job type (or `MAX_FILES_PER_JOB`) allows."),
    _e("unexpected_field", 400, "A form field the upload does not take (or a nameless part)."),
    _e(
        "invalid_params",
        400,
        "`params` is not a strict JSON object (≤ 16,384 characters, ≤ 8 levels, no NaN or "
        "Infinity), or a parameter is unknown, missing or out of range; a job fails with it "
        "when a stored parameter cannot be used.",
        job=True,
    ),
    _e("empty_file", 400, "A file of zero bytes."),
    _e(
        "missing_pixel_spacing",
        400,
        "The job type needs `pixel_spacing_mm` and neither the params nor the DICOM give it.",
        job=True,
    ),
    _e("taken_at_mismatch", 400, "`taken_at` does not have one date per photo."),
    _e(
        "unknown_model",
        400,
        "`params.model` names no model in the registry, or `params.model_version` no version of "
        "it (`GET /api/v1/models` lists them).",
    ),
    _e(
        "wrong_model_task",
        400,
        "`params.model` does another task than the job type needs (e.g. a classifier for "
        "segmentation).",
    ),
    _e("invalid_characters", 400, "A NUL character in the path, query or form."),
    _e("invalid_query", 400, "A list filter or page number that is not valid."),
    ErrorCode("bad_request", "A request the server cannot parse.", (400,), generic=True),
    # 401, 403: who is asking
    _e("missing_token", 401, "No `Authorization: Bearer` token and no signed-in session."),
    _e("invalid_token", 401, "The token is not valid, was revoked, or its account is inactive."),
    _e("token_expired", 401, "The signed token has expired; ask for a new one."),
    _e("missing_credentials", 401, "`POST /tokens` without HTTP Basic credentials."),
    _e("invalid_credentials", 401, "Wrong email or password."),
    _e("email_unconfirmed", 403, "The account's email address is not confirmed yet."),
    _e("csrf_failed", 403, "A session request without a valid `X-CSRFToken`."),
    # 404, 405, 409, 410: what is asked for
    _e("subject_not_found", 404, "No such subject of yours (deleted, someone else's, not an id)."),
    _e("job_not_found", 404, "No such job of yours (another user's job is also a 404)."),
    _e("artifact_not_found", 404, "The job has no artifact of that name."),
    ErrorCode("not_found", "No such URL.", (404,), generic=True),
    ErrorCode("method_not_allowed", "The URL does not take this method.", (405,), generic=True),
    _e("job_finished", 409, "The job already ended; it cannot be cancelled."),
    _e("part_of_job", 409, "A step of a larger job; cancel the parent, which cancels its steps."),
    _e("artifact_gone", 410, "The artifact's file was removed by the retention policy."),
    # 413, 415, 422: the files
    _e("file_too_large", 413, "A file is larger than `MAX_UPLOAD_BYTES`."),
    _e(
        "image_too_large",
        413,
        "Over `MAX_IMAGE_PIXELS` per frame, `MAX_DICOM_FRAMES`, or `MAX_DECODED_IMAGE_BYTES` "
        "decoded, checked from the header before decoding (the worker checks stored files too).",
        job=True,
    ),
    _e("request_too_large", 413, "The whole request is larger than the server accepts."),
    _e(
        "too_many_queued_jobs",
        (413, 429),
        "Your unfinished jobs would exceed `MAX_QUEUED_JOBS_PER_USER` (429 with `Retry-After`; "
        "413 when this submission alone is over).",
    ),
    _e(
        "queue_quota_exceeded",
        (413, 429),
        "Your unfinished jobs' input bytes would exceed `MAX_QUEUED_BYTES_PER_USER` (429 with "
        "`Retry-After`; 413 when this submission alone is over).",
    ),
    _e("unsupported_media_type", 415, "Not an image format the job type accepts."),
    _e(
        "corrupt_image",
        422,
        "The file does not decode (truncated, or metadata such as a colour profile too large).",
    ),
    _e("anisotropic_pixels", 422, "A DICOM with non-square `PixelSpacing`.", job=True),
    _e(
        "invalid_pixel_spacing",
        422,
        "A DICOM `PixelSpacing` that is not a finite number in range.",
        job=True,
    ),
    # 429, 503: try again later
    _e("too_many_requests", 429, "Too many failed sign-ins or email requests; wait."),
    _e(
        "queue_unavailable",
        503,
        "The broker cannot take the job (nothing was stored); a job fails with it when its next "
        "stage cannot be queued.",
        job=True,
    ),
    _e(
        "database_unavailable", 503, "The database is down for a moment; retry after `Retry-After`."
    ),
    # Job failures only: a job's error.code
    _job("empty_mask", "The mask has no object: every pixel is black."),
    _job("degenerate_mask", "The object is too thin to fit an ellipse (minor semi-axis < 1 px)."),
    _job("invalid_image", "A stored input does not decode as an image."),
    _job("invalid_inputs", "The wrong number of inputs for the job type."),
    _job("input_missing", "An input file is no longer on disk."),
    _job("mask_mismatch", "The stage-1 mask does not match the scan's size."),
    _job(
        "model_unavailable",
        "The model cannot be loaded (unknown, of another task, or its weights' sha256 is wrong).",
    ),
    _job("model_mismatch", "The model's output does not match its manifest (classes, channels)."),
    _job("no_faces_found", "No usable face in any photo of the series."),
    _job("too_many_frames", "More photos than the sequence model takes."),
    _job("non_finite_result", "The result has NaN or infinity (never stored)."),
    _job("time_limit", "The job ran longer than `TASK_SOFT_TIME_LIMIT`."),
    _job("worker_lost", "Its process died (or went silent) `MAX_ATTEMPTS` times."),
    _job("internal_error", "An unexpected error; the message names it."),
)

ERROR_CODES: dict[str, ErrorCode] = {entry.code: entry for entry in CATALOGUE}


def codes_for_status(status: int) -> list[ErrorCode]:
    """The codes a request can be refused with under this HTTP status."""
    return [entry for entry in CATALOGUE if status in entry.http]


def job_failure_codes() -> list[ErrorCode]:
    """The codes a job's ``error.code`` can hold."""
    return [entry for entry in CATALOGUE if entry.job_failure]


def describe(codes: Iterable[str]) -> str:
    """``code: meaning`` for each code, for an OpenAPI response description."""
    return " ".join(f"`{code}`: {ERROR_CODES[code].meaning}" for code in codes)


MARKDOWN_START = "<!-- error-codes:start -->"
MARKDOWN_END = "<!-- error-codes:end -->"


def markdown_table() -> str:
    """The README table of every code, between its markers."""
    rows = [
        MARKDOWN_START,
        "| code | HTTP status / job failure | meaning |",
        "|---|---|---|",
        *(f"| `{entry.code}` | {entry.where} | {entry.meaning} |" for entry in CATALOGUE),
        MARKDOWN_END,
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """Print the catalogue as the README's Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="the README table (default)")
    parser.parse_args(argv)
    print(markdown_table())


if __name__ == "__main__":
    main()
