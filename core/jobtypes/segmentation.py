"""segmentation: a scan segmented by the configured registry model, class areas (gpu)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.jobtypes.params import (
    PIXEL_SPACING_SCHEMA,
    object_schema,
    pixel_spacing_mm,
    reject_unknown,
)
from core.jobtypes.spec import SCAN_FORMATS, JobType, Stage
from core.queue_names import GPU_QUEUE

PARAMS_SCHEMA = object_schema({"pixel_spacing_mm": PIXEL_SPACING_SCHEMA})

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
    """pixel_spacing_mm, optional (a DICOM may carry it)."""
    reject_unknown(params, set(PARAMS_SCHEMA["properties"]))
    if "pixel_spacing_mm" not in params:
        return {}
    return {"pixel_spacing_mm": pixel_spacing_mm(params)}


JOB_TYPE = JobType(
    name="segmentation",
    description=(
        "Segment a scan (PNG, JPEG, TIFF or DICOM) with the configured registry model: "
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
)
