"""face_extraction: every face in one or more photos, with MTCNN (gpu)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.jobtypes.params import FACE_PARAM_SCHEMAS, face_params, object_schema, reject_unknown
from core.jobtypes.spec import FACE_DETECTOR, PHOTO_FORMATS, JobType, Stage
from core.queue_names import GPU_QUEUE

PARAMS_SCHEMA = object_schema(FACE_PARAM_SCHEMAS)
POINT = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}

RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "photos": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "position": {"type": "integer", "description": "Upload order."},
                    "width": {"type": "integer"},
                    "height": {"type": "integer"},
                    "face_found": {"type": "boolean"},
                    "overlay": {"type": "string", "description": "Artifact name."},
                    "faces": {
                        "type": "array",
                        "description": "Largest first.",
                        "items": {
                            "type": "object",
                            "properties": {
                                "box": {
                                    "type": "object",
                                    "properties": {
                                        key: {"type": "number"}
                                        for key in ("x", "y", "width", "height")
                                    },
                                },
                                "confidence": {"type": "number"},
                                "landmarks": {
                                    "type": "object",
                                    "properties": {
                                        key: POINT
                                        for key in (
                                            "left_eye",
                                            "right_eye",
                                            "nose",
                                            "mouth_left",
                                            "mouth_right",
                                        )
                                    },
                                },
                                "crop": {"type": "string", "description": "Artifact name."},
                            },
                        },
                    },
                },
            },
        },
        "faces_total": {"type": "integer"},
        "photos_without_faces": {"type": "array", "items": {"type": "integer"}},
        **{name: {"type": schema["type"]} for name, schema in FACE_PARAM_SCHEMAS.items()},
    },
}


def validate_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Detection thresholds and crop size, defaults filled in."""
    allowed = set(PARAMS_SCHEMA["properties"])
    reject_unknown(params, allowed)
    return face_params(params, allowed)


JOB_TYPE = JobType(
    name="face_extraction",
    description=(
        "Find the faces in one or more photos (PNG or JPEG, EXIF orientation applied) "
        "with MTCNN: per photo every face's box, confidence and five landmarks, an "
        "aligned square crop (crop_size px) and an overlay. A photo without a face is "
        "reported as such, not an error."
    ),
    stages=(
        Stage(
            "scanqueue.face_extraction",
            GPU_QUEUE,
            "tasks.face_extraction",
            models=(FACE_DETECTOR,),
        ),
    ),
    image_formats=PHOTO_FORMATS,
    validate_params=validate_params,
    params_schema=PARAMS_SCHEMA,
    result_schema=RESULT_SCHEMA,
    max_files=30,
    summary=("faces_total", "face(s)"),
)
