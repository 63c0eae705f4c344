"""head_circumference: fetal head circumference, segmentation (gpu) then ellipse fit (cpu)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.jobtypes import perimeter, segmentation
from core.jobtypes.growth import AGE_PARAMS_SCHEMA, GROWTH_RESULT_SCHEMA, validate_age_params
from core.jobtypes.params import object_schema, reject_unknown
from core.jobtypes.spec import SCAN_FORMATS, JobType, Stage
from core.queue_names import CPU_QUEUE, GPU_QUEUE

MODULE = "tasks.head_circumference"
NUMBER_OR_NULL = {"type": ["number", "null"]}
PARAMS_SCHEMA = object_schema({**segmentation.PARAMS_SCHEMA["properties"], **AGE_PARAMS_SCHEMA})


def validate_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Segmentation's params (pixel_spacing_mm, optional: a DICOM may carry it), and what dates
    the scan: gestational_age_days, scan_date."""
    reject_unknown(params, set(PARAMS_SCHEMA["properties"]))
    resolved = segmentation.validate_params(
        {name: value for name, value in params.items() if name not in AGE_PARAMS_SCHEMA}
    )
    return resolved | validate_age_params(params)


RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **{
            name: {**schema, "type": ["number", "null"]}
            for name, schema in perimeter.RESULT_SCHEMA["properties"].items()
            if name not in {"circumference_mm", "quality_flags"}
        },
        "head_circumference_mm": {
            "type": ["number", "null"],
            "description": "mm; null when no head was found (flag no_head_found).",
        },
        "boundary_offset_px": NUMBER_OR_NULL,
        **GROWTH_RESULT_SCHEMA,
        "quality_flags": {
            "type": "array",
            "items": {
                "type": "string",
                "enum": [
                    "no_head_found",
                    "multiple_components",
                    "touches_border",
                    "poor_fit",
                    "implausible_size",
                ],
            },
        },
    },
}

JOB_TYPE = JobType(
    name="head_circumference",
    description=(
        "Fetal head circumference from an ultrasound image (PNG, JPEG, TIFF or DICOM): "
        "segmentation on a GPU worker, then an ellipse fit at full resolution: HC, "
        "semi-axes, centre and angle in mm, mask and overlay, quality flags. Needs "
        "pixel_spacing_mm unless the DICOM has PixelSpacing. With the gestational age at the "
        "scan (gestational_age_days, or the subject's due date), the HC's z-score and centile "
        "on the INTERGROWTH-21st standard."
    ),
    stages=(
        Stage(
            "scanqueue.head_circumference.segment",
            GPU_QUEUE,
            MODULE,
            progress_after=60,
            models=("SEGMENTATION_MODEL",),
        ),
        Stage("scanqueue.head_circumference.measure", CPU_QUEUE, MODULE),
    ),
    image_formats=SCAN_FORMATS,
    # Segmentation's params (pixel_spacing_mm optional in the params, required overall) and the
    # scan's age.
    validate_params=validate_params,
    params_schema=PARAMS_SCHEMA,
    result_schema=RESULT_SCHEMA,
    max_files=30,
    one_job_per_file=True,
    needs_pixel_spacing=True,
    summary=("head_circumference_mm", "mm"),
    model_task="segmentation",
)
