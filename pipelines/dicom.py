"""Read DICOM files header first: the declared size is checked before any pixel data is inflated.

A Deflated Explicit VR Little Endian file compresses its whole dataset, pixel data included, so
a few hundred kB can inflate to gigabytes; pydicom inflates it all at once, even for
``stop_before_pixels``. Here a deflated body is inflated only as far as the header (at most
``HEADER_INFLATE_LIMIT`` bytes), the header's rows x columns x frames x samples x bytes is checked
against the limits, and only then is the rest inflated, never beyond what the header declared.
Frames are decoded one at a time.

Only the dataset up to and including the pixel data is read: an element after it (a second
NumberOfFrames, Rows...) would otherwise replace the one the header check saw. Compressed
(encapsulated) pixel data can expand far beyond the file, so before any frame is decoded each
encoded frame's own size is checked against the header: a JPEG or JPEG 2000 frame's dimensions
and components are read from its markers, an RLE frame's segment lengths are counted from its
runs. A compressed transfer syntax that cannot be checked or decoded here is refused.
"""

from __future__ import annotations

import io
import itertools
import re
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset, read_partial, read_preamble
from pydicom.pixels import get_decoder, iter_pixels
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    RLELossless,
)

from pipelines.base import PipelineError
from pipelines.limits import ImageLimits

# A header (everything before the pixel data) larger than this is refused: real ones are a few kB.
HEADER_INFLATE_LIMIT = 1 << 20
PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
FILE_META_GROUP = 0x0002
# Compressed syntaxes whose frames' sizes can be read without decoding them: by Pillow from the
# JPEG (SOF) or JPEG 2000 (SIZ) markers. Only those pydicom can also decode here are accepted.
PILLOW_FORMATS = {
    JPEGBaseline8Bit: "JPEG",
    JPEGExtended12Bit: "JPEG",
    JPEGLossless: "JPEG",
    JPEGLosslessSV1: "JPEG",
    JPEG2000Lossless: "JPEG2000",
    JPEG2000: "JPEG2000",
}
RLE_HEADER_BYTES = 64
RLE_MAX_SEGMENTS = 15
# PackBits, by control byte: 0-127 copy the next control + 1 bytes; 129-255 repeat the next byte
# 257 - control times; 128 is a no-op. Bytes read (control included) and bytes written.
RLE_STEP = tuple(c + 2 if c < 128 else 2 if c > 128 else 1 for c in range(256))
RLE_NO_OP = 128
RLE_NO_OPS = re.compile(b"\x80+")
RLE_OUTPUT = tuple(c + 1 if c < 128 else 257 - c if c > 128 else 0 for c in range(256))


def _past_file_meta(tag: Any, _vr: str | None, _length: int) -> bool:
    return tag.group != FILE_META_GROUP


def _at_pixel_data(tag: Any, _vr: str | None, _length: int) -> bool:
    return int(tag) in PIXEL_DATA_TAGS


def _past_pixel_data() -> Callable[[Any, str | None, int], bool]:
    """A ``stop_when`` that reads the pixel data element, then stops at the next element."""
    seen = False

    def stop(tag: Any, _vr: str | None, _length: int) -> bool:
        nonlocal seen
        if seen:
            return True
        seen = int(tag) in PIXEL_DATA_TAGS
        return False

    return stop


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
    dataset = read_dataset(body, False, True, stop_when=_past_pixel_data())
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
                dataset = _read_deflated(fp, meta, limits)
            else:
                header = read_dataset(
                    fp, syntax.is_implicit_VR, syntax.is_little_endian, stop_when=_at_pixel_data
                )
                check_dicom_header(header, limits)
                # Not deflated: the stored pixel data is no larger than the file itself (its
                # decoded size is checked below). Nothing after the pixel data is read.
                fp.seek(0)
                dataset = read_partial(fp, stop_when=_past_pixel_data())
        # The dataset decoders will see: the header check again, then the encoded frames.
        check_dicom_header(dataset, limits)
        check_encoded_frames(dataset)
        return dataset
    except PipelineError:
        raise
    except (InvalidDicomError, AttributeError, ValueError, OSError, KeyError, EOFError) as exc:
        raise PipelineError("invalid_image", f"The DICOM file could not be read: {exc}") from None


def _frame_count(dataset: Dataset) -> int:
    return int(dataset.get("NumberOfFrames") or 1)


def _encoded_frames(dataset: Dataset) -> Iterator[bytes]:
    """The encoded frames, split exactly as pydicom's decoders split them, at most as many as
    the header declares."""
    extended = None
    if "ExtendedOffsetTable" in dataset and "ExtendedOffsetTableLengths" in dataset:
        extended = (dataset.ExtendedOffsetTable, dataset.ExtendedOffsetTableLengths)
    frames = _frame_count(dataset)
    found = generate_frames(dataset.PixelData, number_of_frames=frames, extended_offsets=extended)
    return itertools.islice(found, frames)


def check_encoded_frames(dataset: Dataset) -> None:
    """Refuse compressed pixel data whose frames decode to more (or other) than the header says,
    or that cannot be checked and decoded here, before any frame is decoded."""
    syntax = UID(dataset.file_meta.get("TransferSyntaxUID") or ExplicitVRLittleEndian)
    if not syntax.is_encapsulated or "PixelData" not in dataset:
        return
    image_format = PILLOW_FORMATS.get(syntax)
    if (syntax != RLELossless and not image_format) or not _decodable(syntax):
        raise PipelineError(
            "unsupported_media_type",
            f"DICOM pixel data compressed as {syntax.name} ({syntax}) cannot be decoded here.",
        )
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    samples = int(dataset.get("SamplesPerPixel") or 1)
    bytes_per_sample = (int(dataset.BitsAllocated) + 7) // 8
    for index, frame in enumerate(_encoded_frames(dataset)):
        if image_format:
            _check_pillow_frame(frame, image_format, index, rows, columns, samples)
        else:
            _check_rle_frame(frame, index, rows * columns, samples * bytes_per_sample)


def _decodable(syntax: UID) -> bool:
    try:
        return bool(get_decoder(syntax).is_available)
    except NotImplementedError:  # pydicom has no decoder at all for it
        return False


def _check_pillow_frame(
    frame: bytes, image_format: str, index: int, rows: int, columns: int, samples: int
) -> None:
    """A JPEG or JPEG 2000 frame's size and components, from its markers (nothing decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(frame), formats=[image_format]) as image:
                size, bands = image.size, len(image.getbands())
    except Image.DecompressionBombError as exc:
        raise PipelineError("image_too_large", f"Frame {index}: {exc}") from None
    except Exception as exc:  # Pillow raises many types for malformed data
        raise PipelineError(
            "invalid_image", f"Frame {index} is not a readable {image_format} image: {exc}"
        ) from None
    if size != (columns, rows) or bands != samples:
        raise PipelineError(
            "image_too_large"
            if size[0] * size[1] * bands > rows * columns * samples
            else "invalid_image",
            f"Frame {index} is {size[0]}x{size[1]} with {bands} component(s); the header "
            f"declares {columns}x{rows} with {samples}.",
        )


def _check_rle_frame(frame: bytes, index: int, segment_length: int, segments: int) -> None:
    """Each RLE segment's decoded length, counted from its runs, is at most rows x columns."""
    if len(frame) < RLE_HEADER_BYTES:
        raise PipelineError("invalid_image", f"RLE frame {index} has no header.")
    header = struct.unpack(f"<{RLE_MAX_SEGMENTS + 1}L", frame[:RLE_HEADER_BYTES])
    if header[0] != segments or segments > RLE_MAX_SEGMENTS:
        raise PipelineError(
            "invalid_image",
            f"RLE frame {index} has {header[0]} segments; the header declares {segments}.",
        )
    bounds = [*header[1 : segments + 1], len(frame)]
    # Segments follow one another (as every encoder writes them): each byte is scanned once.
    if bounds[0] < RLE_HEADER_BYTES or any(a >= b for a, b in itertools.pairwise(bounds)):
        raise PipelineError(
            "invalid_image", f"RLE frame {index} has overlapping or out of range segments."
        )
    for start, end in itertools.pairwise(bounds):
        decoded = rle_segment_length(frame, start, end, segment_length)
        if decoded > segment_length:
            raise PipelineError(
                "image_too_large",
                f"RLE frame {index} decodes to more than the {segment_length} bytes a "
                "segment of the declared rows x columns holds.",
            )


def rle_segment_length(data: bytes, start: int, end: int, limit: int) -> int:
    """The decoded length of the RLE (PackBits) segment ``data[start:end]``, counted as
    pydicom's decoder would produce it, without producing it; the count stops once over
    ``limit``, so the work is bounded by the smaller of the segment and the limit."""
    # A segment sliced past the frame decodes like its present part, as pydicom slices it.
    end = min(end, len(data))
    position, decoded = start, 0
    while position < end and decoded <= limit:
        control = data[position]
        if control == RLE_NO_OP:  # skipped at C speed: a segment of no-ops produces nothing
            skipped = RLE_NO_OPS.match(data, position, end)
            position = skipped.end() if skipped else end
            continue
        following = position + RLE_STEP[control]
        if following > end:  # the last run is cut short: a literal keeps the bytes present
            if control < 128:
                decoded += end - position - 1
            break
        decoded += RLE_OUTPUT[control]
        position = following
    return decoded


def first_frame(dataset: Dataset) -> np.ndarray:
    """The first frame only (a multi-frame file is not decoded whole)."""
    try:
        return np.asarray(next(decoded_frames(dataset)))
    except (
        AttributeError,
        ValueError,
        KeyError,
        NotImplementedError,
        RuntimeError,
        StopIteration,
    ) as exc:
        raise PipelineError(
            "invalid_image", f"The DICOM pixel data could not be decoded: {exc}"
        ) from None


def decoded_frames(dataset: Dataset) -> Iterator[np.ndarray]:
    """Every declared frame, decoded one at a time (only one frame is in memory at once); call
    on a dataset from ``read_dicom``, whose encoded frames are checked."""
    frames = _frame_count(dataset)
    return itertools.islice(iter_pixels(dataset, allow_excess_frames=False), frames)
