"""sequence_inference: a series of face photos -> P(skin condition improving); fans out one
face_extraction job per photo, then the sequence model over the crops (gpu)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.jobtypes.params import (
    FACE_PARAM_SCHEMAS,
    MODEL_PARAM_SCHEMAS,
    face_params,
    invalid_params,
    model_params,
    object_schema,
    parse_taken_at,
    reject_unknown,
)
from core.jobtypes.spec import PHOTO_FORMATS, JobRequestError, JobType, Stage
from core.queue_names import GPU_QUEUE
from pipelines.faces import DEFAULTS as FACE_DEFAULTS

MAX_SEQUENCE_PHOTOS = 30
FACE_PARAMS = ("min_confidence", "min_face_size")

PARAMS_SCHEMA = object_schema(
    {
        **{name: FACE_PARAM_SCHEMAS[name] for name in FACE_PARAMS},
        **MODEL_PARAM_SCHEMAS,
        "taken_at": {
            "type": "array",
            "items": {"type": "string", "description": "ISO 8601 date or date-time."},
            "maxItems": MAX_SEQUENCE_PHOTOS,
            "description": "When each photo was taken, one per photo in upload order; the "
            "series is ordered by them (dates without a zone are UTC), else by upload order.",
        },
    }
)

RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "p_improving": {"type": "number", "minimum": 0, "maximum": 1},
        "outcome": {"type": "string", "enum": ["improving", "deteriorating", "undetermined"]},
        "flags": {"type": "array", "items": {"type": "string", "enum": ["insufficient_frames"]}},
        "frames_used": {"type": "integer"},
        "frames_masked": {"type": "array", "items": {"type": "integer"}},
        "frames": {
            "type": "array",
            "description": "In time order.",
            "items": {
                "type": "object",
                "properties": {
                    "position": {"type": "integer", "description": "Upload order."},
                    "taken_at": {"type": ["string", "null"]},
                    "used": {"type": "boolean"},
                    "reason": {
                        "type": ["string", "null"],
                        "description": "Why the frame was masked: no_face, or the photo's "
                        "error code.",
                    },
                },
            },
        },
    },
}


def validate_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Detection thresholds for the photos, optionally their dates, model and version."""
    reject_unknown(params, set(PARAMS_SCHEMA["properties"]))
    resolved = {**face_params(params, set(FACE_PARAMS)), **model_params(params)}
    if "taken_at" in params:
        taken_at = params["taken_at"]
        if not isinstance(taken_at, list):
            raise invalid_params("'taken_at' must be a list of ISO 8601 dates, one per photo.")
        for value in taken_at:
            parse_taken_at(value)
        resolved["taken_at"] = taken_at
    return resolved


def taken_at_matches_files(params: Mapping[str, Any], file_count: int) -> None:
    """One date per photo, when dates are given."""
    taken_at = params.get("taken_at")
    if taken_at is not None and len(taken_at) != file_count:
        raise JobRequestError(
            "taken_at_mismatch",
            f"'taken_at' has {len(taken_at)} date(s) for {file_count} photo(s); give one per "
            "photo, in upload order.",
        )


def child_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The face-extraction params of one photo of a sequence: its largest face, default crop."""
    return {
        **{name: params[name] for name in FACE_PARAMS if name in params},
        "crop_size": FACE_DEFAULTS["crop_size"],
        "largest_only": True,
    }


JOB_TYPE = JobType(
    name="sequence_inference",
    description=(
        "A time-ordered series of 1 to 30 face photos of one person (order from "
        "taken_at, else upload order) -> probability that the skin condition improved "
        "rather than deteriorated. Runs a face_extraction job per photo in parallel, "
        "then the sequence model on the face crops; photos without a face are masked "
        "out and named in the result."
    ),
    stages=(
        Stage(
            "scanqueue.sequence_inference.predict",
            GPU_QUEUE,
            "tasks.sequence_inference",
            models=("SEQUENCE_MODEL",),
        ),
    ),
    image_formats=PHOTO_FORMATS,
    validate_params=validate_params,
    params_schema=PARAMS_SCHEMA,
    result_schema=RESULT_SCHEMA,
    max_files=MAX_SEQUENCE_PHOTOS,
    check_file_count=taken_at_matches_files,
    child_type="face_extraction",
    child_params=child_params,
    summary=("outcome", ""),
    model_task="sequence",
)
