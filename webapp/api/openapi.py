"""The API described as OpenAPI 3.1, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from core.error_codes import describe
from core.jobtypes import JOB_TYPES, JobType
from core.model_registry import TASKS
from core.records import JobStatus
from pipelines.model_input import INPUT_SCALES
from pipelines.scans import PIXEL_SPACING_RANGE_MM
from webapp.api import bp
from webapp.api.jobs import MAX_PARAMS_CHARS, MAX_PARAMS_DEPTH, MAX_SUBJECT_ID


def _error(*codes: str) -> dict[str, Any]:
    """An error response: its codes and their meanings, from the error-code catalogue."""
    return {
        "description": describe(codes),
        "x-error-codes": list(codes),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(schema_name: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}
        },
    }


RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before polling again (only while the job is not final).",
        "schema": {"type": "integer"},
    }
}
ETAG = {
    "ETag": {
        "description": "The job's current version. Send it back in If-None-Match on the next poll: "
        "304 without a body while nothing in the job has changed.",
        "schema": {"type": "string"},
    }
}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of the job as last seen; 304 Not Modified when it is still current.",
    "schema": {"type": "string"},
}
JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
UNAUTHORIZED = _error("missing_token", "invalid_token", "token_expired")
INVALID_CHARACTERS = _error("invalid_characters")
QUOTA_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before submitting again.",
        "schema": {"type": "integer"},
    }
}
NOT_FOUND = _error("job_not_found")


def schema_name(job_type: JobType, part: str) -> str:
    """The component name of a job type's params or result schema (``HeadCircumferenceResult``)."""
    return "".join(word.capitalize() for word in job_type.name.split("_")) + part


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _names(job_types: list[JobType]) -> str:
    return ", ".join(job_type.name for job_type in job_types)


ONE_JOB_PER_FILE = [job_type for job_type in JOB_TYPES.values() if job_type.one_job_per_file]
FAN_OUT = [job_type for job_type in JOB_TYPES.values() if job_type.child_type]

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "examples": ["invalid_params"]},
                    "message": {"type": "string"},
                },
            }
        },
    },
    "Token": {
        "type": "object",
        "properties": {
            "token": {"type": "string"},
            "token_type": {"type": "string", "const": "Bearer"},
            "expires_in": {"type": "integer", "description": "Seconds until the token expires."},
        },
    },
    "Artifact": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "content_type": {"type": "string"},
            "size": {"type": "integer"},
            "sha256": {"type": "string"},
            "url": {"type": "string"},
            "purged_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When the retention policy removed the file (then 410).",
            },
        },
    },
    "Input": {
        "type": "object",
        "properties": {
            "position": {"type": "integer"},
            "filename": {"type": "string"},
            "content_type": {"type": "string"},
            "size": {"type": "integer"},
            "sha256": {"type": "string"},
        },
    },
    "Job": {
        "type": "object",
        "required": ["id", "type", "status", "params", "inputs", "artifacts", "url"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "type": {"type": "string", "enum": sorted(JOB_TYPES)},
            "status": {"type": "string", "enum": [status.value for status in JobStatus]},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "params": {"type": "object"},
            "result": {
                "description": "Type-specific, once the job succeeded; its schema is "
                "<Type>Result (e.g. PerimeterResult) for the job's type.",
                "anyOf": [
                    {"type": "null"},
                    *(_ref(schema_name(job_type, "Result")) for job_type in JOB_TYPES.values()),
                ],
            },
            "error": {
                "type": ["object", "null"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
            "attempts": {"type": "integer"},
            "model": {"type": ["object", "null"]},
            "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/Input"}},
            "artifacts": {"type": "array", "items": {"$ref": "#/components/schemas/Artifact"}},
            "subject": {
                "type": ["object", "null"],
                "description": "The subject the job is attached to: id and name.",
            },
            "parent": {
                "type": ["object", "null"],
                "description": "For a step of a fan-out job: the parent's id, this step's "
                "input position and URL.",
            },
            "children": {
                "type": "array",
                "description": f"The steps of a fan-out job ({_names(FAN_OUT)}): id, type, "
                "position (the input it works on), status and URL of each child job.",
                "items": {"type": "object"},
            },
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "url": {"type": "string"},
        },
    },
    "JobBatch": {
        "type": "object",
        "required": ["jobs"],
        "properties": {"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}},
    },
    "JobPage": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "total": {"type": "integer"},
            "pages": {"type": "integer"},
        },
    },
}

SCHEMAS["ModelVersion"] = {
    "type": "object",
    "description": "One version of a registry model, from its manifest and model card.",
    "properties": {
        "version": {"type": "string"},
        "classes": {"type": "array", "items": {"type": "string"}, "description": "Output order."},
        "input": {
            "type": "object",
            "properties": {
                name: {"type": "integer"} for name in ("height", "width", "channels", "max_frames")
            },
            "description": "Pixels and channels the model takes; max_frames for sequence models "
            "(0 otherwise).",
        },
        "preprocessing": {
            "type": "object",
            "properties": {
                "input_scale": {"type": "string", "enum": sorted(INPUT_SCALES)},
                "description": {"type": "string"},
            },
        },
        "uncertain_below": {"type": ["number", "null"]},
        "metrics": {"type": "object", "description": "Validation metrics, as the owner gave them."},
        "sha256": {"type": "string"},
        "card": {"type": ["string", "null"], "description": "The model card, markdown."},
    },
}
SCHEMAS["Model"] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "What params.model takes."},
        "task": {"type": "string", "enum": list(TASKS)},
        "newest": {"type": "string", "description": "The version a job gets by default."},
        "job_types": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The job types that can use it (their model task is its task).",
        },
        "default_for": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The job types that use it when params.model is not given.",
        },
        "versions": {
            "type": "array",
            "items": _ref("ModelVersion"),
            "description": "Oldest first.",
        },
    },
}
SCHEMAS["ModelList"] = {
    "type": "object",
    "properties": {"models": {"type": "array", "items": _ref("Model")}},
}

for _job_type in JOB_TYPES.values():
    SCHEMAS[schema_name(_job_type, "Params")] = {
        **_job_type.params_schema,
        "description": f"The params of a {_job_type.name} job.",
    }
    SCHEMAS[schema_name(_job_type, "Result")] = {
        **_job_type.result_schema,
        "description": f"The result of a {_job_type.name} job.",
    }

JOB_TYPE_TEXT = "; ".join(
    f"`{t.name}`: {t.description} Params: {schema_name(t, 'Params')}." for t in JOB_TYPES.values()
)

PATHS: dict[str, Any] = {
    "/api/v1/tokens": {
        "post": {
            "summary": "Get a bearer token with HTTP Basic (email, password).",
            "security": [{"basic": []}],
            "responses": {
                "201": _json("Token", "A signed token that expires."),
                "401": _error("missing_credentials", "invalid_credentials"),
                "403": _error("email_unconfirmed"),
                "429": _error("too_many_requests"),
            },
        }
    },
    "/api/v1/jobs": {
        "post": {
            "summary": "Submit a job. Everything is validated before anything is stored.",
            "description": f"Job types: {JOB_TYPE_TEXT}",
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["type", "files"],
                            "properties": {
                                "type": {"type": "string", "enum": sorted(JOB_TYPES)},
                                "files": {
                                    "type": "array",
                                    "items": {"type": "string", "format": "binary"},
                                },
                                "subject_id": {
                                    "type": "integer",
                                    "minimum": 1,
                                    "maximum": MAX_SUBJECT_ID,
                                    "description": "Attach the job to one of your subjects.",
                                },
                                "params": {
                                    "type": "string",
                                    "maxLength": MAX_PARAMS_CHARS,
                                    "description": "A JSON object, the job type's "
                                    "<Type>Params schema (e.g. PerimeterParams: "
                                    '{"pixel_spacing_mm": 0.15}). Strict JSON: at most '
                                    f"{MAX_PARAMS_CHARS} characters, nested at most "
                                    f"{MAX_PARAMS_DEPTH} levels, no NaN or Infinity. "
                                    "pixel_spacing_mm (mm per pixel) must be from "
                                    f"{PIXEL_SPACING_RANGE_MM[0]:g} to "
                                    f"{PIXEL_SPACING_RANGE_MM[1]:g}; so must a DICOM's "
                                    "PixelSpacing.",
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "202": {
                    "description": "Accepted and queued: the job, or for several files of a "
                    f"one-job-per-file type ({_names(ONE_JOB_PER_FILE)}) "
                    '{"jobs": [...]}, one job per file.',
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/Job"},
                                    {"$ref": "#/components/schemas/JobBatch"},
                                ]
                            }
                        }
                    },
                    "headers": {
                        "Location": {"description": "The job's URL.", "schema": {"type": "string"}},
                        **RETRY_AFTER,
                    },
                },
                "400": _error(
                    "unknown_job_type",
                    "missing_files",
                    "too_many_files",
                    "unexpected_field",
                    "invalid_params",
                    "empty_file",
                    "missing_pixel_spacing",
                    "taken_at_mismatch",
                    "invalid_characters",
                    "unknown_model",
                    "wrong_model_task",
                ),
                "401": UNAUTHORIZED,
                "403": _error("email_unconfirmed", "csrf_failed"),
                "404": _error("subject_not_found"),
                "413": _error(
                    "file_too_large",
                    "image_too_large",
                    "request_too_large",
                    "too_many_queued_jobs",
                    "queue_quota_exceeded",
                ),
                "415": _error("unsupported_media_type"),
                "422": _error("corrupt_image", "anisotropic_pixels", "invalid_pixel_spacing"),
                "429": {
                    **_error("too_many_queued_jobs", "queue_quota_exceeded"),
                    "headers": QUOTA_RETRY_AFTER,
                },
                "503": _error("queue_unavailable", "database_unavailable"),
            },
        },
        "get": {
            "summary": "List your jobs, newest first.",
            "parameters": [
                {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                {
                    "name": "per_page",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                },
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "enum": [s.value for s in JobStatus]},
                },
                {"name": "type", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": _json("JobPage", "One page of jobs."),
                "400": _error("invalid_query", "invalid_characters"),
                "401": UNAUTHORIZED,
            },
        },
    },
    "/api/v1/jobs/{job_id}": {
        "get": {
            "summary": "A job's status, progress, result and artifacts.",
            "description": "Poll it every Retry-After seconds until the job is final, sending the "
            "last ETag as If-None-Match: an unchanged job then costs a 304 without a body.",
            "parameters": [JOB_ID, IF_NONE_MATCH],
            "responses": {
                "200": {**_json("Job", "The job."), "headers": {**RETRY_AFTER, **ETAG}},
                "304": {
                    "description": "Not Modified: the job is as the If-None-Match ETag names it.",
                    "headers": {**RETRY_AFTER, **ETAG},
                },
                "400": INVALID_CHARACTERS,
                "401": UNAUTHORIZED,
                "404": NOT_FOUND,
            },
        },
        "delete": {
            "summary": "Cancel a queued or running job.",
            "parameters": [JOB_ID],
            "responses": {
                "200": _json("Job", "The cancelled job."),
                "400": INVALID_CHARACTERS,
                "401": UNAUTHORIZED,
                "404": NOT_FOUND,
                "409": _error("job_finished", "part_of_job"),
            },
        },
    },
    "/api/v1/jobs/{job_id}/artifacts/{name}": {
        "get": {
            "summary": "Download one artifact of your job.",
            "parameters": [
                JOB_ID,
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {"description": "The file.", "content": {"application/octet-stream": {}}},
                "400": INVALID_CHARACTERS,
                "401": UNAUTHORIZED,
                "404": _error("job_not_found", "artifact_not_found"),
                "410": _error("artifact_gone"),
            },
        }
    },
    "/api/v1/models": {
        "get": {
            "summary": "The registry's models: what params.model and params.model_version of "
            "each model job type may name.",
            "parameters": [
                {
                    "name": "task",
                    "in": "query",
                    "description": "Only the models of this task.",
                    "schema": {"type": "string", "enum": list(TASKS)},
                }
            ],
            "responses": {
                "200": _json("ModelList", "Every model and its versions, by name."),
                "400": _error("invalid_query", "invalid_characters"),
                "401": UNAUTHORIZED,
            },
        }
    },
    "/api/v1/openapi.json": {
        "get": {
            "summary": "This document.",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1 document."}},
        }
    },
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "ScanQueue API",
        "version": "1",
        "description": "Submit medical-image jobs, poll their status, download their results.",
    },
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A signed token from POST /tokens (expires after "
                "TOKEN_TTL_SECONDS), or a personal token (sq_...) made on the website's API "
                "tokens page (works until revoked). Both stop working when the password is reset "
                "or changed. The website's own pages call the API with "
                "their session cookie instead, sending the CSRF token in X-CSRFToken on POST "
                "and DELETE.",
            },
            "basic": {"type": "http", "scheme": "basic"},
        },
        "schemas": SCHEMAS,
    },
    "security": [{"bearer": []}],
    "paths": PATHS,
}


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """Serve the OpenAPI document (no token needed)."""
    return jsonify(SPEC)
