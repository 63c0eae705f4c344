"""Header-first DICOM reading in the worker: declared size checked before inflating or decoding."""

from __future__ import annotations

import functools
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.base import PipelineError
from pipelines.dicom import read_dicom
from pipelines.faces import load_photo
from pipelines.limits import DEFAULT_LIMITS, ImageLimits
from pipelines.perimeter import load_mask
from pipelines.scans import LUMA, read_scan, to_uint8
from tests.builders import deflated_dicom, dicom_bytes, multiframe_dicom, rgb_dicom

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
