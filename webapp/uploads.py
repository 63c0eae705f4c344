"""Check uploads before anything is stored: size, real (decoded) image format, pixel count."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError
from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from core.records import JobInput
from pipelines.base import PipelineError
from pipelines.limits import ImageLimits
from webapp.errors import ApiError

CONTENT_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "TIFF": "image/tiff",
    "DICOM": "application/dicom",
}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "TIFF": "tif", "DICOM": "dcm"}
DICOM_PREAMBLE = 128
# Postgres refuses a file name longer than its column.
MAX_FILENAME_LENGTH: int = JobInput.__table__.c.filename.type.length
MAX_EXTENSION_LENGTH = 16


@dataclass(frozen=True)
class CheckedImage:
    """An upload that decoded as an accepted image; held in memory until the job is stored."""

    filename: str
    data: bytes
    image_format: str
    width: int
    height: int
    pixel_spacing_mm: float | None = None

    @property
    def content_type(self) -> str:
        """MIME type from the decoded format, never from the client's claim."""
        return CONTENT_TYPES[self.image_format]

    @property
    def extension(self) -> str:
        """File extension used on disk."""
        return EXTENSIONS[self.image_format]


def read_limited(upload: FileStorage, max_bytes: int) -> bytes:
    """The upload's bytes, or a 413 if it is larger than max_bytes."""
    data = upload.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiError(
            413,
            "file_too_large",
            f"{_display_name(upload)} is larger than the limit of {max_bytes} bytes.",
        )
    return data


def check_image(
    upload: FileStorage, *, formats: frozenset[str], max_bytes: int, limits: ImageLimits
) -> CheckedImage:
    """Decode the whole image to prove what it is; refuse bombs, corrupt and foreign files."""
    name = _display_name(upload)
    max_pixels = limits.max_pixels
    data = read_limited(upload, max_bytes)
    # Pillow may fail inside Image.open, before the format is known.
    image_format = "an image"
    if not data:
        raise ApiError(400, "empty_file", f"{name} is empty.")
    if data[DICOM_PREAMBLE : DICOM_PREAMBLE + 4] == b"DICM":
        if "DICOM" not in formats:
            raise _unsupported(name, "DICOM", formats)
        return _check_dicom(name, data, limits)
    try:
        with warnings.catch_warnings():
            # Pillow only warns below 2x MAX_IMAGE_PIXELS; the size is checked explicitly below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image_format = image.format or "unknown"
                width, height = image.size
                if image_format not in formats:
                    raise _unsupported(name, image_format, formats)
                if width * height > max_pixels:
                    raise _too_many_pixels(name, width, height, max_pixels)
                image.load()
    except Image.DecompressionBombError:
        raise _too_many_pixels(name, 0, 0, max_pixels) from None
    except UnidentifiedImageError:
        raise _unsupported(name, "not an image", formats) from None
    except ApiError:
        raise
    except Exception as exc:  # Pillow raises many types for truncated or malformed data.
        raise ApiError(
            422, "corrupt_image", f"{name} could not be decoded as {image_format}: {exc}"
        ) from None
    return CheckedImage(name, data, image_format, width, height)


def _display_name(upload: FileStorage) -> str:
    """A safe file name that fits its column: a long one keeps its start and its extension."""
    name = secure_filename(upload.filename or "") or "upload"
    if len(name) <= MAX_FILENAME_LENGTH:
        return name
    stem, dot, extension = name.rpartition(".")
    suffix = f"{dot}{extension}" if stem and len(extension) <= MAX_EXTENSION_LENGTH else ""
    return name[: MAX_FILENAME_LENGTH - len(suffix)] + suffix


def _unsupported(name: str, found: str, formats: frozenset[str]) -> ApiError:
    return ApiError(
        415,
        "unsupported_media_type",
        f"{name} is {found}; accepted formats: {', '.join(sorted(formats))}.",
    )


def _too_many_pixels(name: str, width: int, height: int, max_pixels: int) -> ApiError:
    size = f" ({width}x{height})" if width else ""
    return ApiError(413, "image_too_large", f"{name}{size} has more than {max_pixels} pixels.")


def _check_dicom(name: str, data: bytes, limits: ImageLimits) -> CheckedImage:
    """Check the DICOM header's declared size first, then decode every frame, one at a time."""
    # numpy and pydicom based; imported only when a DICOM file arrives
    from pipelines.dicom import decoded_frames, read_dicom
    from pipelines.scans import dicom_pixel_spacing

    try:
        dataset = read_dicom(data, limits)
        for _frame in decoded_frames(dataset):
            pass  # decoding is the check; one frame in memory at a time
        spacing = dicom_pixel_spacing(dataset)
        rows, columns = int(dataset.Rows), int(dataset.Columns)
    except PipelineError as exc:
        status = {"image_too_large": 413, "unsupported_media_type": 415}.get(exc.code, 422)
        code = "corrupt_image" if exc.code == "invalid_image" else exc.code
        raise ApiError(status, code, f"{name}: {exc.message}") from None
    except Exception as exc:  # pydicom raises many types for malformed pixel data
        raise ApiError(
            422, "corrupt_image", f"{name} could not be decoded as DICOM: {exc}"
        ) from None
    return CheckedImage(name, data, "DICOM", columns, rows, spacing)
