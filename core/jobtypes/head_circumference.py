"""head_circumference: fetal head circumference, segmentation (gpu) then ellipse fit (cpu)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from core.jobtypes import perimeter, segmentation
from core.jobtypes.params import integer_in, invalid_params, object_schema, reject_unknown
from core.jobtypes.spec import SCAN_FORMATS, JobType, Stage
from core.queue_names import CPU_QUEUE, GPU_QUEUE
from pipelines import intergrowth
from pipelines.fetal_growth import (
    GESTATIONAL_AGE_PARAM_RANGE_DAYS,
    AgeSource,
    GrowthFlag,
    NoCentile,
)

MODULE = "tasks.head_circumference"
NUMBER_OR_NULL = {"type": ["number", "null"]}
STANDARD = "the INTERGROWTH-21st fetal head circumference standard (Papageorghiou 2014)"

# The params that date the scan, on top of segmentation's.
AGE_PARAMS_SCHEMA: dict[str, Any] = {
    "gestational_age_days": {
        "type": "integer",
        "minimum": GESTATIONAL_AGE_PARAM_RANGE_DAYS[0],
        "maximum": GESTATIONAL_AGE_PARAM_RANGE_DAYS[1],
        "description": "Gestational age at the scan in days (e.g. 20+3 weeks = 143). "
        "Default: from the subject's due date (280 days on the due date).",
    },
    "scan_date": {
        "type": "string",
        "format": "date",
        "description": "The day of the scan (ISO 8601, e.g. 2026-11-25), for the age from the "
        "subject's due date. Default: the day the job is submitted (UTC).",
    },
}
PARAMS_SCHEMA = object_schema({**segmentation.PARAMS_SCHEMA["properties"], **AGE_PARAMS_SCHEMA})


def _scan_date(value: object) -> str:
    try:
        if not isinstance(value, str):
            raise ValueError
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise invalid_params(
            f"'scan_date' must be an ISO 8601 date such as 2026-11-25, got {value!r}."
        ) from None


def validate_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Segmentation's params (pixel_spacing_mm, optional: a DICOM may carry it), and what dates
    the scan: gestational_age_days, scan_date."""
    reject_unknown(params, set(PARAMS_SCHEMA["properties"]))
    resolved = segmentation.validate_params(
        {name: value for name, value in params.items() if name not in AGE_PARAMS_SCHEMA}
    )
    if "gestational_age_days" in params:
        low, high = GESTATIONAL_AGE_PARAM_RANGE_DAYS
        resolved["gestational_age_days"] = integer_in(params, "gestational_age_days", low, high)
    if "scan_date" in params:
        resolved["scan_date"] = _scan_date(params["scan_date"])
    return resolved


def _nullable(kind: str, description: str) -> dict[str, Any]:
    return {"type": [kind, "null"], "description": description}


# Where the measured head falls for the pregnancy's age (pipelines.fetal_growth.head_growth).
GROWTH_RESULT_SCHEMA: dict[str, Any] = {
    "gestational_age_days": _nullable(
        "integer",
        "Age at the scan in days: params.gestational_age_days, else 280 minus the days from "
        "the scan (params.scan_date, else the day the job was submitted) to the subject's due "
        "date; null when neither is known.",
    ),
    "gestational_age_source": {
        "type": ["string", "null"],
        "enum": [*(source.value for source in AgeSource), None],
        "description": "Where gestational_age_days came from.",
    },
    "gestational_age_from_hc_days": _nullable(
        "integer",
        "The age this head circumference implies by Hadlock's formula (Radiology 1984): "
        "8.96 + 0.540 HC + 0.0003 HC^3 weeks, HC in cm.",
    ),
    "hc_expected_mm": _nullable(
        "number", f"The median head circumference for the age, of {STANDARD}."
    ),
    "hc_sd_mm": _nullable("number", "The standard's SD of head circumference for the age, mm."),
    "hc_z_score": _nullable("number", "(HC - expected) / SD."),
    "hc_centile": _nullable(
        "number",
        f"Centile (0-100) of the head circumference for the age on {STANDARD}; null outside "
        f"{intergrowth.RANGE_DAYS[0]}-{intergrowth.RANGE_DAYS[1]} days (14+0 to 40+0 weeks), "
        "which the standard does not cover.",
    ),
    "hc_centile_unavailable": {
        "type": ["string", "null"],
        "enum": [*(reason.value for reason in NoCentile), None],
        "description": "Why hc_centile is null (null when it is given).",
    },
    "growth_flags": {
        "type": "array",
        "items": {"type": "string", "enum": [flag.value for flag in GrowthFlag]},
        "description": "below_3rd_centile (centile < 3) or above_97th_centile (centile > 97).",
    },
}

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
)
