"""Read DICOM files header first: the declared size is checked before any pixel data is inflated.

A Deflated Explicit VR Little Endian file compresses its whole dataset, pixel data included, so
a few hundred kB can inflate to gigabytes; pydicom inflates it all at once, even for
``stop_before_pixels``. Here a deflated body is inflated only as far as the header (at most
``HEADER_INFLATE_LIMIT`` bytes), the header's rows x columns x frames x samples x bytes is checked
against the limits, and only then is the rest inflated, never beyond what the header declared.
Frames are decoded one at a time.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import dcmread, read_dataset, read_preamble
from pydicom.pixels import iter_pixels, pixel_array
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from pipelines.base import PipelineError
from pipelines.limits import ImageLimits

# A header (everything before the pixel data) larger than this is refused: real ones are a few kB.
HEADER_INFLATE_LIMIT = 1 << 20
PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
FILE_META_GROUP = 0x0002


def _past_file_meta(tag: Any, _vr: str | None, _length: int) -> bool:
    return tag.group != FILE_META_GROUP


def _at_pixel_data(tag: Any, _vr: str | None, _length: int) -> bool:
    return int(tag) in PIXEL_DATA_TAGS


def check_dicom_header(header: Dataset, limits: ImageLimits) -> None:
    """Refuse (``image_too_large``) a declared pixel data size over the limits."""
    try:
        rows, columns = int(header.Rows), int(header.Columns)
        frames = int(header.get("NumberOfFrames") or 1)
        samples = int(header.get("SamplesPerPixel") or 1)
        bits = int(header.BitsAllocated)
    except (AttributeError, TypeError, ValueError) as exc:
        raise PipelineError("invalid_image", f"The DICOM header has no image size: {exc}") from None
    if min(rows, columns, frames, samples, bits) < 1:
        raise PipelineError("invalid_image", "The DICOM header declares an empty image.")
    limits.check(columns, rows, frames, samples, (bits + 7) // 8)


def _declared_pixel_bytes(header: Dataset) -> int:
    samples = int(header.get("SamplesPerPixel") or 1)
    frames = int(header.get("NumberOfFrames") or 1)
    bytes_per_sample = (int(header.BitsAllocated) + 7) // 8
    return int(header.Rows) * int(header.Columns) * frames * samples * bytes_per_sample


def _read_deflated(fp: io.BufferedIOBase, meta: FileMetaDataset, limits: ImageLimits) -> Dataset:
    """Inflate the header, check it, then inflate at most the declared pixel bytes more."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    head = inflater.decompress(fp.read(), HEADER_INFLATE_LIMIT)
    header = read_dataset(DicomBytesIO(head), False, True, stop_when=_at_pixel_data)
    check_dicom_header(header, limits)
    # Room for the pixel data element and a header's worth of trailing elements (padding).
    allowed = _declared_pixel_bytes(header) + HEADER_INFLATE_LIMIT
    rest = b"" if inflater.eof else inflater.decompress(inflater.unconsumed_tail, allowed)
    # Input left over after the end of the deflate stream is padding (writers pad to even
    # length); input left over before it would inflate beyond the allowed size.
    if not inflater.eof and inflater.unconsumed_tail:
        raise PipelineError(
            "image_too_large", "The DICOM data inflates to more than its header declares."
        )
    body = DicomBytesIO(head + rest)
    dataset = read_dataset(body, False, True)
    # The body is inflated now: pixel decoders read it as plain Explicit VR Little Endian.
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return FileDataset("", dataset, file_meta=meta, is_implicit_VR=False, is_little_endian=True)


def read_dicom(source: Path | bytes, limits: ImageLimits) -> Dataset:
    """The dataset, its declared size checked against the limits before pixel data is read.

    Raises ``PipelineError``: ``image_too_large`` over the limits, ``invalid_image`` when the
    file is not DICOM or is malformed.
    """
    try:
        with source.open("rb") if isinstance(source, Path) else io.BytesIO(source) as fp:
            read_preamble(fp, force=False)
            meta = FileMetaDataset(read_dataset(fp, False, True, stop_when=_past_file_meta))
            syntax = UID(meta.get("TransferSyntaxUID") or ExplicitVRLittleEndian)
            if syntax == DeflatedExplicitVRLittleEndian:
                return _read_deflated(fp, meta, limits)
            header = read_dataset(
                fp, syntax.is_implicit_VR, syntax.is_little_endian, stop_when=_at_pixel_data
            )
            check_dicom_header(header, limits)
            # Not deflated: the pixel data is no larger than the file itself.
            fp.seek(0)
            return dcmread(fp)
    except PipelineError:
        raise
    except (InvalidDicomError, AttributeError, ValueError, OSError, KeyError, EOFError) as exc:
        raise PipelineError("invalid_image", f"The DICOM file could not be read: {exc}") from None


def first_frame(dataset: Dataset) -> np.ndarray:
    """The first frame only (a multi-frame file is not decoded whole)."""
    try:
        frames = int(dataset.get("NumberOfFrames") or 1)
        return np.asarray(pixel_array(dataset, index=0 if frames > 1 else None))
    except (AttributeError, ValueError, KeyError, NotImplementedError, RuntimeError) as exc:
        raise PipelineError(
            "invalid_image", f"The DICOM pixel data could not be decoded: {exc}"
        ) from None


def decoded_frames(dataset: Dataset) -> Iterator[np.ndarray]:
    """Every frame, decoded one at a time (only one frame is in memory at once)."""
    return iter_pixels(dataset)
