"""The job types the API accepts: which files, which parameters, which Celery task runs them."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from webapp.errors import ApiError

ParamsValidator = Callable[[Mapping[str, Any]], dict[str, Any]]


def invalid_params(message: str) -> ApiError:
    """The error for parameters that are missing, unknown or out of range."""
    return ApiError(400, "invalid_params", message)


def positive_number(params: Mapping[str, Any], name: str) -> float:
    """A required, finite number greater than zero."""
    if name not in params:
        raise invalid_params(f"'{name}' is required.")
    value = params[name]
    # bool is an int in Python; true/false are not a spacing.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_params(f"'{name}' must be a number, got {value!r}.")
    if not math.isfinite(value) or value <= 0:
        raise invalid_params(f"'{name}' must be a finite number greater than 0, got {value!r}.")
    return float(value)


def reject_unknown(params: Mapping[str, Any], allowed: set[str]) -> None:
    """Refuse parameters the job type does not know, so typos do not pass silently."""
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise invalid_params(
            f"Unknown parameter(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}."
        )


def _perimeter_params(params: Mapping[str, Any]) -> dict[str, Any]:
    reject_unknown(params, {"pixel_spacing_mm"})
    return {"pixel_spacing_mm": positive_number(params, "pixel_spacing_mm")}


def _segmentation_params(params: Mapping[str, Any]) -> dict[str, Any]:
    reject_unknown(params, {"pixel_spacing_mm"})
    if "pixel_spacing_mm" not in params:
        return {}
    return {"pixel_spacing_mm": positive_number(params, "pixel_spacing_mm")}


@dataclass(frozen=True)
class JobType:
    """What a job type accepts and which task (by name; the web never imports tasks) runs it."""

    name: str
    task_name: str
    description: str
    min_files: int
    max_files: int
    image_formats: frozenset[str]
    validate_params: ParamsValidator
    # Several files make several jobs, one per file, instead of one job over all of them.
    one_job_per_file: bool = False
    # pixel_spacing_mm must come from the params or from every file (DICOM PixelSpacing).
    needs_pixel_spacing: bool = False


MASK_FORMATS = frozenset({"PNG", "JPEG", "TIFF"})
SCAN_FORMATS = MASK_FORMATS | {"DICOM"}

JOB_TYPES: dict[str, JobType] = {
    job_type.name: job_type
    for job_type in (
        JobType(
            name="perimeter",
            task_name="scanqueue.perimeter",
            description=(
                "Fit an ellipse to a binary mask (white = object) and report its circumference "
                "in mm, semi-axes, centre and angle, with an overlay PNG."
            ),
            min_files=1,
            max_files=1,
            image_formats=MASK_FORMATS,
            validate_params=_perimeter_params,
        ),
        JobType(
            name="segmentation",
            task_name="scanqueue.segmentation",
            description=(
                "Segment a scan (PNG, JPEG, TIFF or DICOM) with the configured registry model: "
                "mask and overlay PNGs at the scan's resolution, pixel area of every class "
                "(in mm² when pixel_spacing_mm is given or the DICOM has PixelSpacing)."
            ),
            min_files=1,
            max_files=30,
            image_formats=SCAN_FORMATS,
            validate_params=_segmentation_params,
            one_job_per_file=True,
        ),
        JobType(
            name="head_circumference",
            task_name="scanqueue.head_circumference.segment",
            description=(
                "Fetal head circumference from an ultrasound image (PNG, JPEG, TIFF or DICOM): "
                "segmentation on a GPU worker, then an ellipse fit at full resolution: HC, "
                "semi-axes, centre and angle in mm, mask and overlay, quality flags. Needs "
                "pixel_spacing_mm unless the DICOM has PixelSpacing."
            ),
            min_files=1,
            max_files=30,
            image_formats=SCAN_FORMATS,
            validate_params=_segmentation_params,
            one_job_per_file=True,
            needs_pixel_spacing=True,
        ),
    )
}


def get_job_type(name: str | None) -> JobType:
    """The job type by name, or a 400 listing the known ones."""
    if not name or name not in JOB_TYPES:
        raise ApiError(
            400,
            "unknown_job_type",
            f"Unknown job type {name!r}; known types: {', '.join(sorted(JOB_TYPES))}.",
        )
    return JOB_TYPES[name]
