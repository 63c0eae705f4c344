"""Header-first DICOM reading in the worker: declared size checked before inflating or decoding."""

from __future__ import annotations

import functools
import io
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.uid import JPEGBaseline8Bit, JPEGLSLossless, RLELossless

from pipelines.base import PipelineError
from pipelines.dicom import decoded_frames, read_dicom
from pipelines.faces import load_photo
from pipelines.limits import DEFAULT_LIMITS, ImageLimits
from pipelines.perimeter import load_mask
from pipelines.scans import LUMA, read_scan, to_uint8
from tests.builders import (
    deflated_dicom,
    dicom_bytes,
    encapsulated_dicom,
    encode,
    multiframe_dicom,
    rgb_dicom,
    rle_bomb_dicom,
    rle_frame,
    with_trailing_elements,
)

# The reported bomb: ~350 kB that inflates to 6000 x 6000 x 10 bytes (360 MB).
BOMB_SHAPE = (6000, 6000, 10)


@functools.cache
def bomb() -> bytes:
    """The deflated DICOM bomb, built once (about a second)."""
    return deflated_dicom(*BOMB_SHAPE)


def write(tmp_path: Path, data: bytes, name: str = "scan.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_the_bomb_is_small_and_declares_360_mb() -> None:
    assert len(bomb()) < 400_000


def test_the_bomb_is_refused_from_its_header_without_inflating_it(tmp_path: Path) -> None:
    path = write(tmp_path, bomb())
    tracemalloc.start()
    try:
        with pytest.raises(PipelineError) as error:
            read_scan(path)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.value.code == "image_too_large"
    assert "10 frame(s)" in error.value.message
    # The header is inflated (at most 1 MiB), the 360 MB of pixel data never is.
    assert peak < 8_000_000


def test_pixel_data_larger_than_the_header_declares_is_refused(tmp_path: Path) -> None:
    liar = deflated_dicom(10, 10, pixel_bytes=200_000_000)
    assert len(liar) < 400_000
    with pytest.raises(PipelineError) as error:
        read_scan(write(tmp_path, liar))
    assert error.value.code == "image_too_large"


def test_too_many_frames_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, deflated_dicom(8, 8, frames=DEFAULT_LIMITS.max_frames + 1))
    with pytest.raises(PipelineError) as error:
        read_scan(path)
    assert error.value.code == "image_too_large" and "frames" in error.value.message


@pytest.mark.parametrize("deflated", [True, False])
def test_a_multi_frame_file_within_limits_gives_its_first_frame(
    tmp_path: Path, deflated: bool
) -> None:
    frames = np.stack([np.full((30, 40), 10 * (k + 1), dtype=np.uint8) for k in range(3)])
    frames[0, 5:10, 5:10] = 200
    scan = read_scan(write(tmp_path, multiframe_dicom(frames, deflated)))
    assert np.array_equal(scan.pixels, frames[0])


def test_a_deflated_file_larger_than_its_header_window_reads_whole(tmp_path: Path) -> None:
    """pydicom pads the deflate stream to an even length: padding is not extra data."""
    frames = np.zeros((2, 1000, 700), dtype=np.uint8)  # 1.4 MB inflated: beyond the 1 MiB head
    frames[0, 100:200, 50:60] = 255
    scan = read_scan(write(tmp_path, multiframe_dicom(frames)))
    assert np.array_equal(scan.pixels, frames[0])


def test_the_worker_applies_its_own_limits(tmp_path: Path) -> None:
    """Defence in depth: a stored file over the worker's limits fails, whatever the web let in."""
    small = ImageLimits(max_pixels=1000)
    scan = write(tmp_path, dicom_bytes(np.zeros((120, 160), dtype=np.uint8), (0.2, 0.2)))
    png = tmp_path / "mask.png"
    Image.new("L", (160, 120)).save(png)
    jpeg = tmp_path / "photo.jpg"
    Image.new("RGB", (160, 120)).save(jpeg)
    for load in (
        lambda: read_scan(scan, small),
        lambda: read_scan(png, small),
        lambda: load_mask(png, small),
        lambda: load_photo(jpeg, small),
    ):
        with pytest.raises(PipelineError) as error:
            load()
        assert error.value.code == "image_too_large"
    assert read_scan(scan).pixels.shape == (120, 160)


def test_a_truncated_deflated_file_is_an_invalid_image() -> None:
    data = deflated_dicom(40, 30, fill=9)
    with pytest.raises(PipelineError) as error:
        read_dicom(data[: len(data) // 2], DEFAULT_LIMITS)
    assert error.value.code == "invalid_image"


def test_wide_data_is_stretched_exactly_as_before_in_row_blocks() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(100, 40_000, size=(1500, 1100), dtype=np.uint16)  # > 1 block
    low, high = float(values.min()), float(values.max())
    expected = np.round((values.astype(np.float64) - low) * (255.0 / (high - low)))
    assert np.array_equal(to_uint8(values), expected.astype(np.uint8))


def test_rgb_dicom_is_converted_to_grey(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(1200, 1000, 3), dtype=np.uint8)  # two row blocks
    scan = read_scan(write(tmp_path, rgb_dicom(rgb)))
    grey = rgb.astype(np.float64) @ LUMA  # the whole-frame formula
    expected = np.round((grey - grey.min()) * (255.0 / (grey.max() - grey.min())))
    assert np.array_equal(scan.pixels, expected.astype(np.uint8))


# Compressed (encapsulated) pixel data: each frame's encoded size is checked before decoding.
RLE_BOMB_RUNS = 200_000  # 400 kB of "repeat 0x00 128 times": 25.6 MB decoded, header says 4 kB


def refused_with_peak(path: Path) -> tuple[PipelineError, int]:
    """The error read_scan refuses the file with, and the peak memory allocated meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(PipelineError) as error:
            read_scan(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return error.value, peak


def test_an_rle_bomb_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    data = rle_bomb_dicom(RLE_BOMB_RUNS)
    assert len(data) < 500_000
    raised, peak = refused_with_peak(write(tmp_path, data))
    assert raised.code == "image_too_large" and "RLE frame 0" in raised.message
    # The file is read (400 kB); its 25.6 MB of runs are never expanded.
    assert peak < 3 * len(data)


def test_a_jpeg_frame_larger_than_the_header_is_refused_undecoded(tmp_path: Path) -> None:
    big = encode(Image.new("L", (4000, 4000)), "JPEG", quality=50)  # 16 Mpx in a 64x64 file
    data = encapsulated_dicom([big], JPEGBaseline8Bit)
    raised, peak = refused_with_peak(write(tmp_path, data))
    assert raised.code == "image_too_large"
    assert "4000x4000" in raised.message and "64x64" in raised.message
    assert peak < 4_000_000


def test_a_jpeg_frame_with_other_components_than_the_header_is_refused(tmp_path: Path) -> None:
    colour = encode(Image.new("RGB", (64, 64)), "JPEG")
    with pytest.raises(PipelineError) as error:
        read_scan(write(tmp_path, encapsulated_dicom([colour], JPEGBaseline8Bit)))
    assert error.value.code == "image_too_large" and "3 component(s)" in error.value.message


def test_a_compression_that_cannot_be_decoded_here_is_refused_by_name(tmp_path: Path) -> None:
    data = encapsulated_dicom([b"\xff\xd8\xff\xf7" + bytes(100)], JPEGLSLossless)
    with pytest.raises(PipelineError) as error:
        read_scan(write(tmp_path, data))
    assert error.value.code == "unsupported_media_type"
    assert "JPEG-LS Lossless" in error.value.message


def gradient(rows: int = 48, columns: int = 64) -> np.ndarray:
    return (np.add.outer(np.arange(rows) * 3, np.arange(columns) * 2) % 256).astype(np.uint8)


def test_a_jpeg_baseline_dicom_still_decodes(tmp_path: Path) -> None:
    pixels = gradient()
    frame = encode(Image.fromarray(pixels), "JPEG", quality=95)
    data = encapsulated_dicom([frame], JPEGBaseline8Bit, *pixels.shape)
    scan = read_scan(write(tmp_path, data))
    assert scan.pixels.shape == pixels.shape
    assert np.abs(scan.pixels.astype(int) - to_uint8(pixels).astype(int)).mean() < 3


def test_an_rle_dicom_decodes_exactly(tmp_path: Path) -> None:
    from pydicom import dcmread

    frames = np.stack([gradient(), 255 - gradient()])
    dataset = dcmread(io.BytesIO(multiframe_dicom(frames, deflated=False)))
    dataset.compress(RLELossless, encoding_plugin="pydicom")
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    dataset = read_dicom(buffer.getvalue(), DEFAULT_LIMITS)
    assert np.array_equal(np.stack(list(decoded_frames(dataset))), frames)


def test_rle_segment_lengths_are_counted_as_pydicom_decodes_them() -> None:
    from pydicom.pixels.decoders.rle import _rle_decode_segment

    from pipelines.dicom import rle_segment_length

    random = np.random.default_rng(7)
    crafted = [b"\x80" * 300 + b"\x81\x05", b"\x05abc", b"\xff", b"\x00\x07\x80\xfe\x01"]
    noise = [random.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (1, 3, 50, 5000)]
    for segment in [b"", *crafted, *noise]:
        size = len(segment)
        expected = len(_rle_decode_segment(segment))
        assert rle_segment_length(segment, 0, size, 10**9) == expected
        # Counting stops soon after the limit: the result is over it, not the whole length.
        if expected > 200:
            assert 100 < rle_segment_length(segment, 0, size, 100) <= 100 + 128


def test_an_element_after_the_pixel_data_cannot_replace_the_checked_header() -> None:
    # The header declares 2 frames of 1x1; the file holds 20000 bytes of pixel data and then a
    # second NumberOfFrames of 20000 (over the 64-frame limit), after the pixel data.
    dataset = _dicom_dataset_bytes(rows=1, columns=1, frames=2, pixel_bytes=20_000)
    hostile = with_trailing_elements(dataset, (0x00280008, "IS", "20000"), (0x00280010, "US", 2))
    read = read_dicom(hostile, DEFAULT_LIMITS)
    assert int(read.NumberOfFrames) == 2 and int(read.Rows) == 1
    assert [frame.shape for frame in decoded_frames(read)] == [(1, 1), (1, 1)]


def _dicom_dataset_bytes(rows: int, columns: int, frames: int, pixel_bytes: int) -> bytes:
    """An uncompressed file declaring rows x columns x frames but holding ``pixel_bytes``."""
    from pydicom import dcmread

    dataset = dcmread(io.BytesIO(multiframe_dicom(np.zeros((frames, rows, columns)), False)))
    dataset.PixelData = bytes(pixel_bytes)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_rle_segments_that_overlap_are_refused(tmp_path: Path) -> None:
    # Segments pointing into one another would let one file's bytes be counted many times.
    frame = bytearray(rle_frame(b"\x81\x00" * 32))
    struct.pack_into("<L", frame, 4, 0)  # the first segment starts inside the header
    data = encapsulated_dicom([bytes(frame)], RLELossless)
    with pytest.raises(PipelineError) as error:
        read_scan(write(tmp_path, data))
    assert error.value.code == "invalid_image" and "overlapping" in error.value.message
