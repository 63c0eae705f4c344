"""Read a scan (PNG, JPEG, TIFF or DICOM) as 8-bit grayscale, with its pixel size if known."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipelines.base import PipelineError
from pipelines.limits import DEFAULT_LIMITS, ImageLimits

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


# Float arithmetic on wide images runs over blocks of rows of about this many pixels, so its
# float64 temporaries stay near 8 MB instead of 8 bytes for every pixel of a 40 Mpx scan.
BLOCK_PIXELS = 1 << 20
LUMA = np.array([0.299, 0.587, 0.114])


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


def row_blocks(height: int, width: int) -> list[slice]:
    """Slices of rows of about BLOCK_PIXELS pixels each, covering the image."""
    step = max(1, BLOCK_PIXELS // max(1, width))
    return [slice(start, start + step) for start in range(0, height, step)]


def _stretch(shape: tuple[int, ...], values: Callable[[slice], np.ndarray]) -> np.ndarray:
    """uint8 of float values stretched min..max to 0..255, computed a block of rows at a time
    (``values(rows)`` gives a block as float64); a constant image gives zeros."""
    blocks = row_blocks(shape[0], int(np.prod(shape[1:], dtype=np.int64)))
    low = min(float(values(rows).min()) for rows in blocks)
    high = max(float(values(rows).max()) for rows in blocks)
    out = np.zeros(shape, dtype=np.uint8)
    if high <= low:
        return out
    scale = 255.0 / (high - low)
    for rows in blocks:
        out[rows] = np.round((values(rows) - low) * scale)
    return out


def to_uint8(values: np.ndarray) -> np.ndarray:
    """8-bit data as it is; wider data stretched min..max to 0..255 (a constant image: zeros)."""
    if values.dtype == np.uint8:
        return values
    return _stretch(values.shape, lambda rows: values[rows].astype(np.float64))


def _luminance_uint8(rgb: np.ndarray) -> np.ndarray:
    """Grey levels of an RGB(A) frame, stretched to 8 bits, never a float copy of the whole."""
    return _stretch(rgb.shape[:2], lambda rows: rgb[rows, :, :3].astype(np.float64) @ LUMA)


def _read_dicom(path: Path, limits: ImageLimits) -> Scan:
    """The first frame, its declared size checked before any pixel data is inflated."""
    from pipelines.dicom import first_frame, read_dicom  # pydicom: only where DICOM is read

    dataset = read_dicom(path, limits)
    spacing = dicom_pixel_spacing(dataset)
    monochrome1 = getattr(dataset, "PhotometricInterpretation", "") == "MONOCHROME1"
    frame = first_frame(dataset)
    del dataset  # the raw pixel data: as large as every frame together
    if frame.ndim == 3 and frame.shape[-1] in (3, 4):  # colour (RGB) frame
        return Scan(_luminance_uint8(frame), spacing, "DICOM")
    if frame.ndim != 2:
        raise PipelineError("invalid_image", f"Unsupported DICOM pixel data shape {frame.shape}.")
    if monochrome1:
        frame = frame.max() - frame  # MONOCHROME1 stores white as 0
    return Scan(to_uint8(frame), spacing, "DICOM")


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


def open_checked(path: Path, limits: ImageLimits) -> Image.Image:
    """Open an image lazily and refuse (``image_too_large``) one over the limits, undecoded."""
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise PipelineError("image_too_large", str(exc)) from None
    try:
        limits.check(*image.size, samples=len(image.getbands()))
    except PipelineError:
        image.close()
        raise
    return image


def read_scan(path: Path, limits: ImageLimits = DEFAULT_LIMITS) -> Scan:
    """Decode the file (EXIF orientation applied for photos) to 8-bit grayscale."""
    if is_dicom(path):
        return _read_dicom(path, limits)
    try:
        with open_checked(path, limits) as image:
            image_format = image.format or ""
            image = ImageOps.exif_transpose(image)
            if image.mode in {"I;16", "I;16B", "I;16L", "I", "F"}:
                return Scan(to_uint8(np.asarray(image)), None, image_format)
            return Scan(np.asarray(image.convert("L")), None, image_format)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PipelineError("invalid_image", f"The image could not be decoded: {exc}") from None
