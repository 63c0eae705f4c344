"""DICOM uploads are checked from their header before any pixel data is inflated or decoded."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image
from pydicom.uid import JPEGBaseline8Bit, JPEGLSLossless

from pipelines.limits import DEFAULT_MAX_FRAMES
from tests.builders import (
    deflated_dicom,
    encapsulated_dicom,
    encode,
    multiframe_dicom,
    rle_bomb_dicom,
    submit_job,
    with_trailing_elements,
)
from tests.webapp.api.test_jobs import assert_nothing_stored


@functools.cache
def bomb() -> bytes:
    """The reported bomb: ~350 kB, 6000 x 6000 x 10 frames declared and really deflated in it."""
    return deflated_dicom(6000, 6000, 10)


REFUSED = {
    # 36 Mpx per frame passes the pixel limit; all frames together decode to 360 MB.
    "deflated bomb": (bomb, "decodes to 360000000 bytes"),
    "more pixel data than declared": (
        lambda: deflated_dicom(16, 16, pixel_bytes=200_000_000),
        "more than its header declares",
    ),
    "too many frames": (
        lambda: deflated_dicom(8, 8, frames=DEFAULT_MAX_FRAMES + 1),
        f"at most {DEFAULT_MAX_FRAMES}",
    ),
    "too many pixels in a frame": (lambda: deflated_dicom(7000, 6000), "pixels"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_oversized_dicom_is_refused_with_413_and_nothing_stored(
    case: str, client: FlaskClient, headers: dict[str, str], media_root: Path
) -> None:
    build, words = REFUSED[case]
    response = submit_job(client, headers, [(build(), "scan.dcm")], {}, "segmentation")
    assert response.status_code == 413, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "image_too_large"
    assert "scan.dcm" in error["message"] and words in error["message"]
    assert_nothing_stored(media_root)


def test_a_bomb_among_good_files_refuses_the_whole_request(
    client: FlaskClient, headers: dict[str, str], media_root: Path
) -> None:
    good = multiframe_dicom(np.zeros((2, 40, 30), dtype=np.uint8))
    files = [(good, "a.dcm"), (bomb(), "b.dcm")]
    response = submit_job(client, headers, files, {}, "classification")
    assert response.status_code == 413
    assert_nothing_stored(media_root)


def test_multi_frame_dicom_within_limits_is_accepted(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    frames = np.stack([np.full((120, 160), 40 * k, dtype=np.uint8) for k in range(4)])
    response = submit_job(
        client, headers, [(multiframe_dicom(frames), "cine.dcm")], {}, "segmentation"
    )
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["inputs"][0]["content_type"] == "application/dicom"


def black_jpeg(width: int, height: int, mode: str = "L") -> bytes:
    """A plain black JPEG of this size."""
    return encode(Image.new(mode, (width, height)), "JPEG", quality=50)


COMPRESSED_REFUSED = {
    # 400 kB that pydicom's RLE decoder would expand to 25.6 MB, in a file declaring 64 x 64.
    "rle bomb": (lambda: rle_bomb_dicom(200_000), 413, "image_too_large", "RLE frame 0"),
    "jpeg larger than its header": (
        lambda: encapsulated_dicom([black_jpeg(4000, 4000)], JPEGBaseline8Bit),
        413,
        "image_too_large",
        "4000x4000",
    ),
    "compression not decodable here": (
        lambda: encapsulated_dicom([b"\xff\xd8" + bytes(64)], JPEGLSLossless),
        415,
        "unsupported_media_type",
        "JPEG-LS Lossless",
    ),
}


@pytest.mark.parametrize("case", COMPRESSED_REFUSED, ids=list(COMPRESSED_REFUSED))
def test_compressed_dicom_is_checked_frame_by_frame_before_decoding(
    case: str, client: FlaskClient, headers: dict[str, str], media_root: Path
) -> None:
    build, status, code, words = COMPRESSED_REFUSED[case]
    response = submit_job(client, headers, [(build(), "scan.dcm")], {}, "segmentation")
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code and words in error["message"]
    assert_nothing_stored(media_root)


def test_a_jpeg_baseline_dicom_is_accepted(client: FlaskClient, headers: dict[str, str]) -> None:
    data = encapsulated_dicom([black_jpeg(80, 60)], JPEGBaseline8Bit, rows=60, columns=80)
    response = submit_job(client, headers, [(data, "scan.dcm")], {}, "segmentation")
    assert response.status_code == 202, response.get_json()


def test_a_frame_count_after_the_pixel_data_is_ignored(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    # 2 frames of 40x30 declared, then NumberOfFrames = limit + 1 after the pixel data.
    good = multiframe_dicom(np.zeros((2, 40, 30), dtype=np.uint8), deflated=False)
    hostile = with_trailing_elements(good, (0x00280008, "IS", str(DEFAULT_MAX_FRAMES + 1)))
    response = submit_job(client, headers, [(hostile, "scan.dcm")], {}, "segmentation")
    assert response.status_code == 202, response.get_json()
