"""Read a scan (PNG, JPEG, TIFF or DICOM) as 8-bit grayscale, with its pixel size if known."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipelines.base import PipelineError

DICOM_MAGIC_OFFSET = 128
# Row and column spacing closer than this are treated as square pixels.
ISOTROPY_TOLERANCE = 0.01
# Pixel sizes accepted (mm), from a DICOM or from a job's params: 0.1 µm to 10 cm. Anything
# outside is a broken header or a typo, and a huge one overflows areas and lengths to infinity.
PIXEL_SPACING_RANGE_MM = (1e-4, 100.0)


def pixel_spacing_problem(value: float) -> str | None:
    """Why a pixel size (mm) is unusable, or None when it is finite and in range."""
    low, high = PIXEL_SPACING_RANGE_MM
    if not math.isfinite(value) or not low <= value <= high:
        return f"must be a number from {low:g} to {high:g} mm, got {value!r}"
    return None


@dataclass(frozen=True)
class Scan:
    """An image as 8-bit grayscale (H, W), and its pixel size in mm when the file carries one."""

    pixels: np.ndarray
    pixel_spacing_mm: float | None = None
    source_format: str = ""


def is_dicom(path: Path) -> bool:
    """Whether the file has the DICOM preamble signature ('DICM' at byte 128)."""
    with path.open("rb") as handle:
        handle.seek(DICOM_MAGIC_OFFSET)
        return handle.read(4) == b"DICM"


def to_uint8(values: np.ndarray) -> np.ndarray:
    """8-bit data as it is; wider data stretched min..max to 0..255 (a constant image: zeros)."""
    if values.dtype == np.uint8:
        return values
    values = values.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)


def _read_dicom(path: Path) -> Scan:
    import pydicom  # only workers read DICOM; keep the import local to where it is needed
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path)
        frame = np.asarray(dataset.pixel_array)
    except (InvalidDicomError, AttributeError, ValueError, OSError, KeyError) as exc:
        raise PipelineError("invalid_image", f"The DICOM file could not be read: {exc}") from None
    if frame.ndim == 3 and frame.shape[-1] in (3, 4):  # colour (RGB) frame
        frame = frame[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    elif frame.ndim == 3:  # several frames: the first one
        frame = frame[0]
    if frame.ndim != 2:
        raise PipelineError("invalid_image", f"Unsupported DICOM pixel data shape {frame.shape}.")
    if getattr(dataset, "PhotometricInterpretation", "") == "MONOCHROME1":
        frame = frame.max() - frame  # MONOCHROME1 stores white as 0
    return Scan(to_uint8(frame), dicom_pixel_spacing(dataset), "DICOM")


def dicom_pixel_spacing(dataset: object) -> float | None:
    """The (square) pixel size in mm from PixelSpacing, else None; non-square pixels are refused."""
    spacing = getattr(dataset, "PixelSpacing", None)
    if spacing is None or len(spacing) != 2:
        return None
    try:
        row, column = float(spacing[0]), float(spacing[1])
    except (TypeError, ValueError, OverflowError):
        raise PipelineError(
            "invalid_pixel_spacing", f"PixelSpacing {spacing!r} is not a pair of numbers."
        ) from None
    if row == 0 and column == 0:
        return None  # some writers put zeros for "unknown"
    for value in (row, column):
        if problem := pixel_spacing_problem(value):
            raise PipelineError("invalid_pixel_spacing", f"PixelSpacing {problem}.")
    if abs(row - column) > ISOTROPY_TOLERANCE * max(row, column):
        raise PipelineError(
            "anisotropic_pixels",
            f"PixelSpacing {row} x {column} mm is not square; square pixels are required.",
        )
    return (row + column) / 2


def read_scan(path: Path) -> Scan:
    """Decode the file (EXIF orientation applied for photos) to 8-bit grayscale."""
    if is_dicom(path):
        return _read_dicom(path)
    try:
        with Image.open(path) as image:
            image_format = image.format or ""
            image = ImageOps.exif_transpose(image)
            if image.mode in {"I;16", "I;16B", "I;16L", "I", "F"}:
                return Scan(to_uint8(np.asarray(image)), None, image_format)
            return Scan(np.asarray(image.convert("L")), None, image_format)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PipelineError("invalid_image", f"The image could not be decoded: {exc}") from None
