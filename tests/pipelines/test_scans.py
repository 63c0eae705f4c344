"""Reading scans: a DICOM's PixelSpacing must be a usable, finite pixel size."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.base import PipelineError
from pipelines.scans import read_scan
from tests.builders import dicom_with_spacing


@pytest.mark.parametrize("spacing", ["NaN", "inf", "1e308", "-0.2", "1e-9"])
def test_an_unusable_dicom_pixel_spacing_fails_the_read_clearly(
    tmp_path: Path, spacing: str
) -> None:
    path = tmp_path / "scan.dcm"
    path.write_bytes(dicom_with_spacing(spacing))
    with pytest.raises(PipelineError) as error:
        read_scan(path)
    assert error.value.code == "invalid_pixel_spacing"


@pytest.mark.parametrize(("spacing", "expected"), [("0.25", 0.25), ("0", None), ("100", 100.0)])
def test_a_usable_or_absent_dicom_pixel_spacing_is_read(
    tmp_path: Path, spacing: str, expected: float | None
) -> None:
    path = tmp_path / "scan.dcm"
    path.write_bytes(dicom_with_spacing(spacing))
    assert read_scan(path).pixel_spacing_mm == expected
