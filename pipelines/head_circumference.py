"""Fetal head circumference from a scan and its predicted head mask (second stage of the job).

The first stage is ``pipelines.segmentation`` with the head model; this stage fits the ellipse
to the mask at the scan's full resolution and reports the HC18 fields in mm. A mask that is not a
plausible head still gives a result, with quality flags saying why it should not be trusted:
``no_head_found`` (empty or too small to fit), ``multiple_components``, ``touches_border``,
``poor_fit`` (not elliptical), ``implausible_size`` (outside 30-400 mm, beyond any fetal head).
Given the gestational age at the scan, the result also places the head on the INTERGROWTH-21st
standard (``pipelines.fetal_growth``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pipelines.base import (
    ArtifactData,
    PipelineError,
    PipelineOutput,
    ProgressCallback,
    no_progress,
)
from pipelines.fetal_growth import GestationalAge, head_growth
from pipelines.limits import DEFAULT_LIMITS, ImageLimits
from pipelines.perimeter import (
    PerimeterMeasurement,
    load_mask,
    measure_perimeter,
    render_overlay,
)
from pipelines.scans import read_scan
from pipelines.segmentation import overlay_png, scan_spacing

PLAUSIBLE_HC_MM = (30.0, 400.0)
HC18_FIELDS = ("center_x_mm", "center_y_mm", "semi_axes_a_mm", "semi_axes_b_mm", "angle_rad")


def inset(measurement: PerimeterMeasurement, offset_px: float) -> PerimeterMeasurement:
    """The ellipse moved ``offset_px`` inwards (both semi-axes shortened), never below 1 px."""
    if not offset_px:
        return measurement
    return replace(
        measurement,
        semi_axis_a_px=max(1.0, measurement.semi_axis_a_px - offset_px),
        semi_axis_b_px=max(1.0, measurement.semi_axis_b_px - offset_px),
    )


def measure_head(
    scan_path: Path,
    mask_path: Path,
    params: dict[str, Any],
    progress: ProgressCallback = no_progress,
    boundary_offset_px: float = 0.0,
    limits: ImageLimits = DEFAULT_LIMITS,
    age: GestationalAge | None = None,
    fit: str = "least_squares",
) -> PipelineOutput:
    """HC in mm with the fitted ellipse over the scan, or a flagged empty result; both with the
    growth fields for the gestational age ``age`` (unknown when None).

    ``boundary_offset_px`` (from the model's manifest) moves the fitted ellipse inwards: a model
    trained on masks drawn with their outline predicts a boundary that far outside the contour.
    ``fit`` (also the manifest's, ``ellipse_fit``) is the ellipse fit of ``measure_perimeter``.
    """
    scan = read_scan(scan_path, limits)
    spacing = scan_spacing(scan, params)
    if not spacing:
        raise PipelineError(
            "missing_pixel_spacing", "No pixel_spacing_mm and no DICOM PixelSpacing."
        )
    mask = load_mask(mask_path, limits)
    if mask.shape != scan.pixels.shape:
        raise PipelineError(
            "mask_mismatch", f"Mask {mask.shape} does not match the scan {scan.pixels.shape}."
        )
    progress(80)
    try:
        measurement = inset(measure_perimeter(mask, spacing, fit), boundary_offset_px)
    except PipelineError as exc:
        if exc.code not in {"empty_mask", "degenerate_mask"}:
            raise
        result = {"head_circumference_mm": None, "pixel_spacing_mm": spacing}
        result |= dict.fromkeys(HC18_FIELDS)
        result["quality_flags"] = ["no_head_found"]
        result |= head_growth(None, age)
        overlay = overlay_png(scan.pixels, mask.astype("uint8"))
        return PipelineOutput(result, [ArtifactData("overlay.png", "image/png", overlay)])
    fields = measurement.as_result()
    flags = list(fields["quality_flags"])
    low, high = PLAUSIBLE_HC_MM
    if not low <= measurement.circumference_mm <= high:
        flags.append("implausible_size")
    result = {
        "head_circumference_mm": fields["circumference_mm"],
        **{name: fields[name] for name in HC18_FIELDS},
        **{name: value for name, value in fields.items() if name not in HC18_FIELDS},
        "boundary_offset_px": boundary_offset_px,
        "quality_flags": flags,
    }
    del result["circumference_mm"]
    result |= head_growth(result["head_circumference_mm"], age)
    overlay = render_overlay(mask, measurement, background=scan.pixels)
    return PipelineOutput(result, [ArtifactData("overlay.png", "image/png", overlay)])
