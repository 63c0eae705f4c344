"""Perimeter of a binary mask: fit an ellipse to the object's boundary and measure it in mm.

Policy for masks that are not one clean object:
- no white pixel at all: the job fails with ``empty_mask``;
- an object too small or too thin to fit an ellipse (minor semi-axis under 1 px): the job
  fails with ``degenerate_mask``;
- several separate blobs: the largest is measured and the result carries the flag
  ``multiple_components`` (blobs under 1 % of the largest one's area, such as JPEG specks, are
  not counted);
- an object that touches the image border (probably cut off): flag ``touches_border``;
- a boundary the ellipse does not follow (RMS residual over 1 px and over 5 % of the minor
  semi-axis, e.g. a square or a crescent): the measurement stands, with the flag ``poor_fit``.
Holes inside the object are filled first: the perimeter is that of the outer boundary.
``pixel_spacing_mm`` must be a finite number > 0 (``invalid_params``); an image that does not
decode is ``invalid_image``.

Decoding: the mask's luminance (alpha ignored) is thresholded at half of the mode's full range
(255 for 8-bit modes, 65535 for ``I;16``). Modes ``I`` and ``F`` have no fixed range, so it is
taken as the smallest of 1, 255, 65535 and the 32-bit maximum that holds the brightest value.

Measurement: the outer boundary is the 0.5 iso-line of the largest component (sub-pixel, on the
pixel edges); scikit-image's direct least-squares ellipse fit (``EllipseModel.from_estimate``,
scikit-image >= 0.26) runs on all its points. The circumference is Ramanujan's second
approximation. ``fit_residual_px`` is the RMS of the first-order (Sampson) point-to-ellipse
distance, within 1 % of the exact distance for points near the curve.

Conventions: x is the column and y the row, from the centre of the top-left pixel; the angle is
that of the major semi-axis ``a`` from the +x axis towards +y (clockwise on screen), in [0, π).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError
from scipy import ndimage
from skimage.measure import EllipseModel, find_contours

from pipelines.base import (
    ArtifactData,
    PipelineError,
    PipelineOutput,
    ProgressCallback,
    no_progress,
    png_bytes,
)
from pipelines.limits import DEFAULT_LIMITS, ImageLimits
from pipelines.postprocessing_names import FITS
from pipelines.scans import open_checked

# Blobs smaller than this fraction of the largest are noise, not a second object.
MIN_COMPONENT_FRACTION = 0.01
MIN_BOUNDARY_POINTS = 6
# A minor semi-axis under one pixel is a line, not an outline worth measuring.
MIN_SEMI_AXIS_PX = 1.0
# A fit is poor when the boundary strays from the ellipse by more than both of these (RMS):
# a pixel-wide wobble is staircase noise; a square scores 11 % of its minor semi-axis, while
# predicted head masks (irregular, upsampled edges) score 1-4 %, so 5 % marks a real shape change.
POOR_FIT_RESIDUAL_PX = 1.0
POOR_FIT_RESIDUAL_FRACTION = 0.05
# The robust fit ("robust"): boundary points lying on the image's own edge are not the object's
# contour (the object was cut off there) and are dropped when most points remain; then points
# further from the fitted ellipse than REJECT_SIGMAS robust standard deviations (1.4826 x the median
# absolute Sampson distance), and never closer than REJECT_FLOOR_PX (staircase noise), are left
# out and the ellipse refitted, until the kept set stops changing. At least MIN_KEPT_FRACTION of
# the points must stay: a boundary that is mostly "outliers" is no ellipse, so nothing is rejected.
REJECT_SIGMAS = 3.0
REJECT_FLOOR_PX = 1.0
MAX_REFITS = 5
MIN_KEPT_FRACTION = 0.5
# Nominal value ranges, smallest first, for modes whose range the mode itself does not fix.
NOMINAL_RANGES = (1.0, 255.0, 65535.0, float(2**32 - 1))
OVERLAY_COLOUR = (255, 64, 64)
CENTRE_COLOUR = (64, 200, 255)


@dataclass(frozen=True)
class PerimeterMeasurement:
    """An ellipse fitted to a mask's object, in pixels, with the pixel size to convert to mm.

    ``object_area_px`` is the measured object's area (largest component, holes filled);
    ``largest_component_fraction`` is that area over the area of all blobs, holes filled.
    """

    center_x_px: float
    center_y_px: float
    semi_axis_a_px: float
    semi_axis_b_px: float
    angle_rad: float
    pixel_spacing_mm: float
    boundary_points: int
    fit_residual_px: float
    object_area_px: int
    components: int
    largest_component_fraction: float
    image_width: int
    image_height: int
    quality_flags: tuple[str, ...]

    @property
    def circumference_mm(self) -> float:
        """Ramanujan's second approximation of the ellipse's perimeter, in mm."""
        return (
            ellipse_circumference(self.semi_axis_a_px, self.semi_axis_b_px) * self.pixel_spacing_mm
        )

    def as_result(self) -> dict[str, Any]:
        """JSON-safe result fields (mm rounded to µm, pixels to 1/100)."""
        mm = self.pixel_spacing_mm
        return {
            "circumference_mm": round(self.circumference_mm, 3),
            "semi_axes_a_mm": round(self.semi_axis_a_px * mm, 3),
            "semi_axes_b_mm": round(self.semi_axis_b_px * mm, 3),
            "center_x_mm": round(self.center_x_px * mm, 3),
            "center_y_mm": round(self.center_y_px * mm, 3),
            "angle_rad": round(self.angle_rad, 5),
            "center_x_px": round(self.center_x_px, 2),
            "center_y_px": round(self.center_y_px, 2),
            "semi_axes_a_px": round(self.semi_axis_a_px, 2),
            "semi_axes_b_px": round(self.semi_axis_b_px, 2),
            "pixel_spacing_mm": mm,
            "boundary_points": self.boundary_points,
            "fit_residual_px": round(self.fit_residual_px, 3),
            "object_area_px": self.object_area_px,
            "components": self.components,
            "largest_component_fraction": round(self.largest_component_fraction, 4),
            "image_width": self.image_width,
            "image_height": self.image_height,
            "quality_flags": list(self.quality_flags),
        }


def ellipse_circumference(a: float, b: float) -> float:
    """Perimeter of an ellipse with semi-axes a and b (Ramanujan II, error ~1e-10 here)."""
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))


def load_mask(path: Path, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode a mask image into a 2-D bool array, white (above half the value range) = object."""
    try:
        with open_checked(path, limits) as image:
            image.load()
            return _binarise(image)
    # Pillow reports corrupt or truncated files through all of these, depending on the format.
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
    ) as exc:
        raise PipelineError("invalid_image", f"The mask could not be decoded: {exc}") from None


def _binarise(image: Image.Image) -> np.ndarray:
    """White (above half of the mode's value range) pixels of the image's luminance."""
    if image.mode.startswith("I;16"):
        return np.asarray(image) > 65535 / 2
    if image.mode in {"I", "F"}:
        values = np.asarray(image, dtype=np.float64)
        peak = float(values.max(initial=0.0))
        # No range in the mode: take the nominal one the data fits in, so a dim image stays dark.
        full_range = next((r for r in NOMINAL_RANGES if peak <= r), peak)
        return values > full_range / 2
    # Luminance ignores alpha and resolves palettes; 1-bit images map to 0/255.
    return np.asarray(image.convert("L")) > 255 / 2


def _object_window(mask: np.ndarray) -> tuple[slice, slice]:
    """The bounding box of the white pixels with one background pixel around it, where the
    image has one: filling holes and labelling there gives what they give on the whole image
    (everything outside is background connected to the border), on far fewer pixels."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    return (
        slice(max(0, rows[0] - 1), min(height, rows[-1] + 2)),
        slice(max(0, cols[0] - 1), min(width, cols[-1] + 2)),
    )


def _label(filled: np.ndarray) -> np.ndarray:
    """Component labels, in 16 bits when they fit (half the memory of scipy's default int32)."""
    try:
        labels, _count = ndimage.label(filled, output=np.uint16)
    except RuntimeError:  # more than 65535 blobs: scipy refuses the narrow type
        labels, _count = ndimage.label(filled)
    return labels


def _largest_component(mask: np.ndarray) -> tuple[np.ndarray, int, float]:
    """The largest filled blob, how many blobs count, and the largest's share of the object area."""
    labels = _label(ndimage.binary_fill_holes(mask))
    sizes = np.bincount(labels.ravel())[1:]
    largest = int(np.argmax(sizes))
    significant = int(np.count_nonzero(sizes >= MIN_COMPONENT_FRACTION * sizes[largest]))
    return labels == largest + 1, significant, float(sizes[largest] / sizes.sum())


def _check_spacing(pixel_spacing_mm: object) -> float:
    """The pixel spacing as a float, or ``invalid_params`` unless it is a finite number > 0."""
    # bool is an int to Python, but True is not a pixel size.
    if not isinstance(pixel_spacing_mm, numbers.Real) or isinstance(pixel_spacing_mm, bool):
        raise PipelineError(
            "invalid_params", f"pixel_spacing_mm must be a number, got {pixel_spacing_mm!r}."
        )
    spacing = float(pixel_spacing_mm)
    if not (math.isfinite(spacing) and spacing > 0):
        raise PipelineError(
            "invalid_params", f"pixel_spacing_mm must be finite and > 0, got {spacing}."
        )
    return spacing


def _outer_boundary(component: np.ndarray) -> np.ndarray:
    """Sub-pixel (x, y) points on the component's outer edge (iso-line 0.5 between in and out)."""
    rows, cols = ndimage.find_objects(component.view(np.uint8))[0]
    # uint8, not float: find_contours makes its own float64 copy, exactly 0.0 and 1.0 either way.
    window = np.pad(component[rows, cols].view(np.uint8), 1)
    contour = max(find_contours(window, 0.5), key=len)
    # find_contours gives (row, col) in the padded window; shift back to image coordinates.
    return np.column_stack((contour[:, 1] + cols.start - 1, contour[:, 0] + rows.start - 1))


def _sampson_distances(points: np.ndarray, model: EllipseModel) -> np.ndarray:
    """Signed first-order (Sampson) distance of each point from the ellipse, in px."""
    a, b = model.axis_lengths
    cos_t, sin_t = math.cos(model.theta), math.sin(model.theta)
    dx, dy = points[:, 0] - model.center[0], points[:, 1] - model.center[1]
    u, v = dx * cos_t + dy * sin_t, -dx * sin_t + dy * cos_t
    value = (u / a) ** 2 + (v / b) ** 2 - 1
    return value / (2 * np.hypot(u / a**2, v / b**2))


def _geometric_residual(points: np.ndarray, model: EllipseModel) -> float:
    """RMS distance of the points from the ellipse, by the first-order (Sampson) approximation.

    distance ≈ |F| / |∇F| for F(x, y) = (u/a)² + (v/b)² - 1 in the ellipse's own frame; exact on
    the curve, accurate to well under a pixel for points within a few pixels of it.
    """
    return float(np.sqrt(np.mean(_sampson_distances(points, model) ** 2)))


def _inside_image(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The boundary points that are not on the image's edge (the 0.5 iso-line beyond it)."""
    height, width = shape
    x, y = points[:, 0], points[:, 1]
    keep = (x > 0) & (x < width - 1) & (y > 0) & (y < height - 1)
    return points[keep] if keep.sum() >= MIN_KEPT_FRACTION * len(points) else points


def _fit_ellipse(points: np.ndarray) -> EllipseModel | None:
    """Direct least-squares ellipse, or None when the points do not determine one."""
    return EllipseModel.from_estimate(points) if len(points) >= MIN_BOUNDARY_POINTS else None


def _robust_fit(points: np.ndarray, shape: tuple[int, ...]) -> EllipseModel | None:
    """Least squares without the image-edge points, refitted without outliers (see FITS)."""
    points = _inside_image(points, shape)
    model = _fit_ellipse(points)
    kept = np.ones(len(points), dtype=bool)
    for _ in range(MAX_REFITS):
        if model is None:
            return None
        distances = np.abs(_sampson_distances(points, model))
        spread = 1.4826 * float(np.median(distances[kept]))
        inliers = distances <= max(REJECT_SIGMAS * spread, REJECT_FLOOR_PX)
        if inliers.sum() < MIN_KEPT_FRACTION * len(points) or np.array_equal(inliers, kept):
            break
        refitted = _fit_ellipse(points[inliers])
        if refitted is None or not np.all(np.isfinite(refitted.axis_lengths)):
            break
        model, kept = refitted, inliers
    return model


def measure_perimeter(
    mask: np.ndarray, pixel_spacing_mm: float, fit: str = "least_squares"
) -> PerimeterMeasurement:
    """Fit an ellipse to the largest object's outer boundary at full resolution and measure it.

    ``fit`` is "least_squares" (every boundary point) or "robust" (see FITS).
    """
    if fit not in FITS:
        raise ValueError(f"unknown ellipse fit {fit!r}; known: {', '.join(FITS)}")
    spacing = _check_spacing(pixel_spacing_mm)
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise PipelineError("invalid_image", f"A mask must be a 2-D image, got shape {mask.shape}.")
    if not mask.any():
        raise PipelineError("empty_mask", "The mask has no object: every pixel is black.")

    # Everything runs on the object's bounding box; coordinates are shifted back at the end.
    window_rows, window_cols = _object_window(mask)
    component, components, largest_fraction = _largest_component(mask[window_rows, window_cols])
    points = _outer_boundary(component) + np.array([window_cols.start, window_rows.start])
    model = _robust_fit(points, mask.shape) if fit == "robust" else _fit_ellipse(points)
    axes = np.asarray(model.axis_lengths, dtype=float) if model else np.zeros(2)
    if not model or not np.all(np.isfinite(axes)) or axes.min() < MIN_SEMI_AXIS_PX:
        raise PipelineError(
            "degenerate_mask",
            f"No ellipse fits the object ({int(component.sum())} px, "
            f"{len(points)} boundary points).",
        )

    # Order the semi-axes so that a is the major one, turning the angle with it.
    angle = float(model.theta)
    a, b = float(axes[0]), float(axes[1])
    if a < b:
        a, b, angle = b, a, angle + math.pi / 2
    height, width = mask.shape
    touches_border = bool(
        (window_rows.start == 0 and component[0].any())
        or (window_rows.stop == height and component[-1].any())
        or (window_cols.start == 0 and component[:, 0].any())
        or (window_cols.stop == width and component[:, -1].any())
    )
    residual = _geometric_residual(points, model)
    poor_fit = residual > max(POOR_FIT_RESIDUAL_PX, POOR_FIT_RESIDUAL_FRACTION * b)
    flags = [
        flag
        for flag, raised in (
            ("multiple_components", components > 1),
            ("touches_border", touches_border),
            ("poor_fit", poor_fit),
        )
        if raised
    ]
    return PerimeterMeasurement(
        center_x_px=float(model.center[0]),
        center_y_px=float(model.center[1]),
        semi_axis_a_px=a,
        semi_axis_b_px=b,
        angle_rad=angle % math.pi,
        pixel_spacing_mm=spacing,
        boundary_points=len(points),
        fit_residual_px=residual,
        object_area_px=int(np.count_nonzero(component)),
        components=components,
        largest_component_fraction=largest_fraction,
        image_width=width,
        image_height=height,
        quality_flags=tuple(flags),
    )


def ellipse_points(
    measurement: PerimeterMeasurement, count: int = 720
) -> list[tuple[float, float]]:
    """Points along the fitted ellipse, in image (x, y) pixels."""
    t = np.linspace(0, 2 * np.pi, count, endpoint=False)
    cos_t, sin_t = math.cos(measurement.angle_rad), math.sin(measurement.angle_rad)
    a, b = measurement.semi_axis_a_px, measurement.semi_axis_b_px
    xs = measurement.center_x_px + a * np.cos(t) * cos_t - b * np.sin(t) * sin_t
    ys = measurement.center_y_px + a * np.cos(t) * sin_t + b * np.sin(t) * cos_t
    return list(zip(xs.tolist(), ys.tolist(), strict=True))


def render_overlay(
    mask: np.ndarray, measurement: PerimeterMeasurement, background: np.ndarray | None = None
) -> bytes:
    """A PNG of the mask in grey (or of ``background``, e.g. the scan) with the ellipse drawn."""
    if background is None:
        # uint8 throughout: np.where on the two Python ints would build an int64 image first.
        grey = np.full(mask.shape, 20, dtype=np.uint8)
        grey[np.asarray(mask, dtype=bool)] = 140
    else:
        grey = background
    image = Image.fromarray(grey).convert("RGB")
    draw = ImageDraw.Draw(image)
    points = ellipse_points(measurement)
    draw.line([*points, points[0]], fill=OVERLAY_COLOUR, width=2)
    x, y = measurement.center_x_px, measurement.center_y_px
    arm = max(3.0, min(measurement.semi_axis_b_px / 8, 12.0))
    draw.line([(x - arm, y), (x + arm, y)], fill=CENTRE_COLOUR, width=2)
    draw.line([(x, y - arm), (x, y + arm)], fill=CENTRE_COLOUR, width=2)
    return png_bytes(image)


def perimeter_pipeline(
    inputs: list[Path],
    params: dict[str, Any],
    progress: ProgressCallback = no_progress,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> PipelineOutput:
    """One mask and ``pixel_spacing_mm`` in; the measurement and an overlay PNG out."""
    if len(inputs) != 1:
        raise PipelineError(
            "invalid_inputs", f"perimeter takes exactly one mask, got {len(inputs)}."
        )
    if "pixel_spacing_mm" not in params:
        raise PipelineError("invalid_params", "pixel_spacing_mm is required.")
    mask = load_mask(inputs[0], limits)
    progress(10)
    measurement = measure_perimeter(mask, params["pixel_spacing_mm"])
    progress(60)
    overlay = render_overlay(mask, measurement)
    progress(90)
    return PipelineOutput(
        result=measurement.as_result(),
        artifacts=[ArtifactData("overlay.png", "image/png", overlay)],
    )
