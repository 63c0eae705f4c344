"""segmentation: a scan segmented by a registry model, class areas (gpu)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.jobtypes.params import (
    MODEL_PARAM_SCHEMAS,
    PIXEL_SPACING_SCHEMA,
    model_params,
    object_schema,
    pixel_spacing_mm,
    reject_unknown,
)
from core.jobtypes.spec import SCAN_FORMATS, JobType, Stage
from core.queue_names import GPU_QUEUE

PARAMS_SCHEMA = object_schema({"pixel_spacing_mm": PIXEL_SPACING_SCHEMA, **MODEL_PARAM_SCHEMAS})

RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "image_width": {"type": "integer"},
        "image_height": {"type": "integer"},
        "pixel_spacing_mm": {"type": ["number", "null"]},
        "classes": {
            "type": "object",
            "description": "Per class name: its pixels, fraction of the image and area in mm² "
            "(null without a pixel size).",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "pixels": {"type": "integer"},
                    "fraction": {"type": "number"},
                    "area_mm2": {"type": ["number", "null"]},
                },
            },
        },
    },
}


def validate_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """pixel_spacing_mm, optional (a DICOM may carry it); an optional model and version."""
    reject_unknown(params, set(PARAMS_SCHEMA["properties"]))
    resolved = model_params(params)
    if "pixel_spacing_mm" in params:
        resolved["pixel_spacing_mm"] = pixel_spacing_mm(params)
    return resolved


JOB_TYPE = JobType(
    name="segmentation",
    description=(
        "Segment a scan (PNG, JPEG, TIFF or DICOM) with a registry segmentation model "
        "(default SEGMENTATION_MODEL; params.model names another): "
        "mask and overlay PNGs at the scan's resolution, pixel area of every class "
        "(in mm² when pixel_spacing_mm is given or the DICOM has PixelSpacing)."
    ),
    stages=(
        Stage(
            "scanqueue.segmentation",
            GPU_QUEUE,
            "tasks.segmentation",
            models=("SEGMENTATION_MODEL",),
        ),
    ),
    image_formats=SCAN_FORMATS,
    validate_params=validate_params,
    params_schema=PARAMS_SCHEMA,
    result_schema=RESULT_SCHEMA,
    max_files=30,
    one_job_per_file=True,
    model_task="segmentation",
)
