"""perimeter: the ellipse fitted to a binary mask, its circumference in mm (cpu)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.jobtypes.params import (
    PIXEL_SPACING_SCHEMA,
    object_schema,
    pixel_spacing_mm,
    reject_unknown,
)
from core.jobtypes.spec import MASK_FORMATS, JobType, Stage
from core.queue_names import CPU_QUEUE

PARAMS_SCHEMA = object_schema({"pixel_spacing_mm": PIXEL_SPACING_SCHEMA}, ("pixel_spacing_mm",))

MM = {"type": "number", "description": "Millimetres."}
PX = {"type": "number", "description": "Pixels."}

RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "circumference_mm": {**MM, "description": "Ramanujan's second approximation, mm."},
        "semi_axes_a_mm": MM,
        "semi_axes_b_mm": MM,
        "center_x_mm": MM,
        "center_y_mm": MM,
        "angle_rad": {"type": "number", "description": "Major axis from +x towards +y, [0, π)."},
        "center_x_px": PX,
        "center_y_px": PX,
        "semi_axes_a_px": PX,
        "semi_axes_b_px": PX,
        "pixel_spacing_mm": MM,
        "boundary_points": {"type": "integer"},
        "fit_residual_px": {**PX, "description": "RMS Sampson distance of the boundary, px."},
        "object_area_px": {"type": "integer"},
        "components": {"type": "integer"},
        "largest_component_fraction": {"type": "number"},
        "image_width": {"type": "integer"},
        "image_height": {"type": "integer"},
        "quality_flags": {
            "type": "array",
            "items": {"type": "string", "enum": ["multiple_components", "touches_border"]},
        },
    },
}


def validate_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """pixel_spacing_mm, required."""
    reject_unknown(params, set(PARAMS_SCHEMA["properties"]))
    return {"pixel_spacing_mm": pixel_spacing_mm(params)}


JOB_TYPE = JobType(
    name="perimeter",
    description=(
        "Fit an ellipse to a binary mask (white = object) and report its circumference "
        "in mm, semi-axes, centre and angle, with an overlay PNG."
    ),
    stages=(Stage("scanqueue.perimeter", CPU_QUEUE, "tasks.perimeter"),),
    image_formats=MASK_FORMATS,
    validate_params=validate_params,
    params_schema=PARAMS_SCHEMA,
    result_schema=RESULT_SCHEMA,
    summary=("circumference_mm", "mm"),
)
