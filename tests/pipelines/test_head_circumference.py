"""Second stage of head circumference: ellipse on the predicted mask, inset, quality flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines import intergrowth
from pipelines.base import PipelineError
from pipelines.fetal_growth import AgeSource, GestationalAge
from pipelines.head_circumference import measure_head
from pipelines.perimeter import ellipse_circumference
from tests.builders import dicom_bytes


def write(path: Path, pixels: np.ndarray) -> Path:
    """Save an 8-bit image."""
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def ellipse_mask(a: float, b: float, shape: tuple[int, int] = (540, 800)) -> np.ndarray:
    """0/255 filled axis-aligned ellipse centred in the frame."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    inside = ((cols - shape[1] / 2) / a) ** 2 + ((rows - shape[0] / 2) / b) ** 2 <= 1
    return inside * 255


@pytest.fixture
def scan(tmp_path: Path) -> Path:
    """A plain grey 800x540 scan."""
    return write(tmp_path / "scan.png", np.full((540, 800), 90))


def test_hc18_fields_in_mm_and_the_inset(scan: Path, tmp_path: Path) -> None:
    mask = write(tmp_path / "mask.png", ellipse_mask(200, 150))
    plain = measure_head(scan, mask, {"pixel_spacing_mm": 0.1}).result
    inset = measure_head(scan, mask, {"pixel_spacing_mm": 0.1}, boundary_offset_px=1.5).result
    assert plain["head_circumference_mm"] == pytest.approx(
        ellipse_circumference(200, 150) * 0.1, rel=0.005
    )
    assert inset["semi_axes_a_mm"] == pytest.approx(plain["semi_axes_a_mm"] - 0.15, abs=1e-3)
    assert inset["semi_axes_b_mm"] == pytest.approx(plain["semi_axes_b_mm"] - 0.15, abs=1e-3)
    assert inset["head_circumference_mm"] < plain["head_circumference_mm"]
    assert inset["boundary_offset_px"] == 1.5 and inset["quality_flags"] == []
    for field in ("center_x_mm", "center_y_mm", "angle_rad"):
        assert field in inset


def test_empty_mask_gives_a_flagged_result_not_a_failure(scan: Path, tmp_path: Path) -> None:
    mask = write(tmp_path / "mask.png", np.zeros((540, 800)))
    output = measure_head(scan, mask, {"pixel_spacing_mm": 0.1})
    assert output.result["head_circumference_mm"] is None
    assert output.result["quality_flags"] == ["no_head_found"]
    assert output.artifacts[0].name == "overlay.png"


def test_the_head_is_placed_on_the_growth_standard_for_its_age(scan: Path, tmp_path: Path) -> None:
    mask = write(tmp_path / "mask.png", ellipse_mask(200, 150))
    age = GestationalAge(161, AgeSource.DUE_DATE)  # 23+0 weeks
    result = measure_head(scan, mask, {"pixel_spacing_mm": 0.1}, age=age).result
    hc = result["head_circumference_mm"]  # about 110 mm: far below the 3rd centile (192.6)
    assert result["gestational_age_days"] == 161
    assert result["hc_z_score"] == pytest.approx(intergrowth.z_score(hc, 161), abs=1e-3)
    assert result["growth_flags"] == ["below_3rd_centile"]
    empty = write(tmp_path / "empty.png", np.zeros((540, 800)))
    nothing = measure_head(scan, empty, {"pixel_spacing_mm": 0.1}, age=age).result
    assert nothing["hc_centile_unavailable"] == "no_head_found"
    assert nothing["gestational_age_days"] == 161
    unknown = measure_head(scan, mask, {"pixel_spacing_mm": 0.1}).result
    assert unknown["hc_centile_unavailable"] == "gestational_age_unknown"


def test_every_result_field_is_documented(scan: Path, tmp_path: Path) -> None:
    """What the pipeline returns is what the OpenAPI document (the declaration) describes."""
    import jsonschema

    from core.jobtypes.head_circumference import RESULT_SCHEMA

    closed = {**RESULT_SCHEMA, "additionalProperties": False}
    mask = write(tmp_path / "mask.png", ellipse_mask(200, 150))
    empty = write(tmp_path / "empty.png", np.zeros((540, 800)))
    for mask_path, days in ((mask, 161), (mask, 300), (empty, 161), (mask, None)):
        age = GestationalAge(days, AgeSource.PARAMS) if days else None
        result = measure_head(scan, mask_path, {"pixel_spacing_mm": 0.1}, age=age).result
        jsonschema.validate(result, closed)


def test_implausible_size_and_border_are_flagged(scan: Path, tmp_path: Path) -> None:
    mask = write(tmp_path / "mask.png", ellipse_mask(30, 20))
    flags = measure_head(scan, mask, {"pixel_spacing_mm": 0.1}).result["quality_flags"]
    assert "implausible_size" in flags  # about 16 mm: smaller than any fetal head
    cut = ellipse_mask(500, 200)
    flags = measure_head(scan, write(tmp_path / "cut.png", cut), {"pixel_spacing_mm": 0.1})
    assert "touches_border" in flags.result["quality_flags"]


def test_spacing_comes_from_the_dicom_when_not_given(tmp_path: Path) -> None:
    scan = tmp_path / "scan.dcm"
    scan.write_bytes(dicom_bytes(np.full((540, 800), 90, dtype=np.uint8), (0.2, 0.2)))
    mask = write(tmp_path / "mask.png", ellipse_mask(200, 150))
    result = measure_head(scan, mask, {}).result
    assert result["pixel_spacing_mm"] == pytest.approx(0.2)
    assert result["semi_axes_a_mm"] == pytest.approx(40, rel=0.01)


def test_no_spacing_at_all_and_mismatched_mask_fail(scan: Path, tmp_path: Path) -> None:
    with pytest.raises(PipelineError) as error:
        measure_head(scan, write(tmp_path / "m.png", ellipse_mask(200, 150)), {})
    assert error.value.code == "missing_pixel_spacing"
    small = write(tmp_path / "small.png", ellipse_mask(20, 15, shape=(100, 100)))
    with pytest.raises(PipelineError) as error:
        measure_head(scan, small, {"pixel_spacing_mm": 0.1})
    assert error.value.code == "mask_mismatch"


def test_the_fit_option_reaches_the_ellipse_fit(scan: Path, tmp_path: Path) -> None:
    # A head cut off by the left border: the robust fit (1.1.0's manifest) leaves the border out.
    clipped = np.roll(ellipse_mask(200, 150), -300, axis=1)
    clipped[:, -100:] = 0  # what np.roll brought round from the left edge
    mask = write(tmp_path / "clipped.png", clipped)
    true_mm = ellipse_circumference(200, 150) * 0.1
    plain = measure_head(scan, mask, {"pixel_spacing_mm": 0.1}).result
    robust = measure_head(scan, mask, {"pixel_spacing_mm": 0.1}, fit="robust").result
    assert plain["head_circumference_mm"] < true_mm - 2.0
    assert robust["head_circumference_mm"] == pytest.approx(true_mm, rel=0.005)
    assert "touches_border" in robust["quality_flags"]
