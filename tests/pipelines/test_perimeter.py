"""The perimeter pipeline as a plain function: known ellipses, bad masks, real HC18 masks."""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.draw import ellipse
from skimage.measure import EllipseModel

from pipelines.base import PipelineError
from pipelines.perimeter import (
    _geometric_residual,
    ellipse_circumference,
    load_mask,
    measure_perimeter,
    perimeter_pipeline,
    render_overlay,
)
from tests.conftest import hc18_images


def drawn_ellipse(
    a: float, b: float, angle: float = 0.0, shape: tuple[int, int] = (600, 900)
) -> np.ndarray:
    """A filled ellipse with semi-axes a (along x at angle 0) and b, centred in the image."""
    mask = np.zeros(shape, dtype=bool)
    centre_row, centre_col = shape[0] / 2 + 0.3, shape[1] / 2 - 0.2
    # skimage's rotation turns counter-clockwise on screen, i.e. towards -y in image coordinates.
    rr, cc = ellipse(centre_row, centre_col, b, a, shape=shape, rotation=-angle)
    mask[rr, cc] = True
    return mask


def save(mask: np.ndarray, path: Path, image_format: str = "PNG", **options: object) -> Path:
    """Write a bool mask as an 8-bit image."""
    Image.fromarray((mask * 255).astype(np.uint8)).save(path, format=image_format, **options)
    return path


@pytest.mark.parametrize(
    ("a", "b", "angle", "spacing"),
    [
        (20, 14, 0.0, 1.0),
        (60, 35, 0.5, 0.1),
        (150, 90, 1.2, 0.07),
        (250, 160, 2.6, 0.15),
        (400, 280, 0.3, 0.05),
        (120, 120, 0.0, 0.2),
    ],
)
def test_known_ellipse_gives_the_analytic_circumference(
    a: float, b: float, angle: float, spacing: float
) -> None:
    measurement = measure_perimeter(drawn_ellipse(a, b, angle), spacing)
    expected = ellipse_circumference(a, b) * spacing
    assert measurement.circumference_mm == pytest.approx(expected, rel=0.005)
    assert measurement.semi_axis_a_px == pytest.approx(a, rel=0.01, abs=0.5)
    assert measurement.semi_axis_b_px == pytest.approx(b, rel=0.01, abs=0.5)
    assert measurement.center_x_px == pytest.approx(450 - 0.2, abs=0.5)
    assert measurement.center_y_px == pytest.approx(300 + 0.3, abs=0.5)
    if a != b:
        turn = abs(measurement.angle_rad - angle) % math.pi
        assert min(turn, math.pi - turn) < 0.02
    assert measurement.fit_residual_px < 0.6
    assert measurement.quality_flags == ()


def test_robust_fit_equals_least_squares_on_a_whole_ellipse() -> None:
    for a, b, angle in ((20, 14, 0.0), (150, 90, 1.2), (250, 160, 2.6)):
        mask = drawn_ellipse(a, b, angle)
        plain, robust = measure_perimeter(mask, 1.0), measure_perimeter(mask, 1.0, "robust")
        assert robust.circumference_mm == pytest.approx(plain.circumference_mm, rel=1e-3)


def shadowed_ellipse() -> np.ndarray:
    """A 200 x 140 px ellipse whose right end (beyond 0.7 of the semi-axis) is lost in shadow."""
    mask = drawn_ellipse(200, 140)
    mask[:, round(450 + 0.7 * 200) :] = False
    return mask


def clipped_ellipse() -> np.ndarray:
    """A 200 x 140 px ellipse, turned 0.3 rad, a fifth of its width beyond the left border."""
    mask = np.zeros((600, 900), dtype=bool)
    rr, cc = ellipse(300.3, 150.0, 140, 200, shape=mask.shape, rotation=-0.3)
    mask[rr, cc] = True
    return mask


@pytest.mark.parametrize("make_mask", [shadowed_ellipse, clipped_ellipse])
def test_robust_fit_recovers_a_partly_hidden_ellipse(make_mask: Callable[[], np.ndarray]) -> None:
    """Least squares pulls the ellipse onto the straight cut (3 % short or worse); the robust fit
    leaves the cut out and recovers the whole ellipse within 0.2 %."""
    true = ellipse_circumference(200, 140)
    mask = make_mask()
    plain = measure_perimeter(mask, 1.0).circumference_mm
    robust = measure_perimeter(mask, 1.0, "robust")
    assert plain < 0.97 * true
    assert robust.circumference_mm == pytest.approx(true, rel=0.002)
    assert robust.semi_axis_a_px == pytest.approx(200, abs=1.0)
    assert robust.semi_axis_b_px == pytest.approx(140, abs=1.0)


def test_unknown_fit_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown ellipse fit"):
        measure_perimeter(drawn_ellipse(50, 40), 1.0, "ransac")


def test_angle_runs_from_x_towards_y() -> None:
    """An ellipse along the top-left to bottom-right diagonal has angle π/4 (x right, y down)."""
    rows, cols = np.mgrid[0:300, 0:300]
    u = ((cols - 150) + (rows - 150)) / math.sqrt(2)  # along +x+y
    v = ((rows - 150) - (cols - 150)) / math.sqrt(2)
    mask = (u / 120) ** 2 + (v / 50) ** 2 <= 1
    measurement = measure_perimeter(mask, 1.0)
    assert measurement.angle_rad == pytest.approx(math.pi / 4, abs=0.01)
    assert measurement.semi_axis_a_px > measurement.semi_axis_b_px


def test_no_deprecation_warning(tmp_path: Path) -> None:
    path = save(drawn_ellipse(100, 60, 0.4), tmp_path / "m.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        perimeter_pipeline([path], {"pixel_spacing_mm": 0.1})


def test_residual_matches_the_exact_point_to_ellipse_distance() -> None:
    model = EllipseModel((50.0, 40.0), (30.0, 12.0), 0.6)
    t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    offsets = np.random.default_rng(0).uniform(-1.5, 1.5, (60, 2))
    points = model.predict_xy(t) + offsets
    exact = float(np.sqrt(np.mean(model.residuals(points) ** 2)))
    assert _geometric_residual(points, model) == pytest.approx(exact, rel=0.05)


def test_non_elliptical_object_is_flagged_as_a_poor_fit() -> None:
    mask = np.zeros((300, 300), dtype=bool)
    mask[100:200, 100:200] = True
    measurement = measure_perimeter(mask, 1.0)
    assert measurement.quality_flags == ("poor_fit",)
    assert measurement.fit_residual_px > 2


def test_ramanujan_matches_the_circle_and_a_numeric_integral() -> None:
    assert ellipse_circumference(10, 10) == pytest.approx(2 * math.pi * 10)
    t = np.linspace(0, 2 * np.pi, 200_001)
    numeric = np.trapezoid(np.hypot(300 * np.sin(t), 100 * np.cos(t)), t)
    assert ellipse_circumference(300, 100) == pytest.approx(numeric, rel=1e-6)


def test_result_is_in_mm_and_json_safe() -> None:
    result = measure_perimeter(drawn_ellipse(100, 50), 0.2).as_result()
    assert result["semi_axes_a_mm"] == pytest.approx(20, rel=0.01)
    assert result["semi_axes_b_mm"] == pytest.approx(10, rel=0.01)
    assert result["center_x_mm"] == pytest.approx(449.8 * 0.2, abs=0.1)
    assert result["image_width"] == 900 and result["image_height"] == 600
    assert result["object_area_px"] == pytest.approx(math.pi * 100 * 50, rel=0.01)
    assert all(isinstance(v, int | float | list) for v in result.values())


def test_holes_are_filled() -> None:
    mask = drawn_ellipse(100, 60)
    mask[280:320, 430:470] = False
    whole = measure_perimeter(drawn_ellipse(100, 60), 1.0)
    assert measure_perimeter(mask, 1.0).circumference_mm == pytest.approx(whole.circumference_mm)


def test_jpeg_compressed_mask(tmp_path: Path) -> None:
    path = save(drawn_ellipse(150, 100, 0.7), tmp_path / "m.jpg", "JPEG", quality=75)
    measurement = measure_perimeter(load_mask(path), 0.1)
    assert measurement.circumference_mm == pytest.approx(
        ellipse_circumference(150, 100) * 0.1, rel=0.005
    )
    assert measurement.components == 1


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [("RGB", "png"), ("RGBA", "png"), ("LA", "png"), ("P", "png"), ("1", "png"), ("L", "tif")],
)
def test_image_modes_decode_to_the_same_mask(tmp_path: Path, mode: str, suffix: str) -> None:
    mask = drawn_ellipse(80, 50, shape=(200, 300))
    path = tmp_path / f"m.{suffix}"
    Image.fromarray((mask * 255).astype(np.uint8)).convert(mode).save(path)
    assert np.array_equal(load_mask(path), mask)


@pytest.mark.parametrize(
    ("dtype", "on", "suffix"),
    [
        (np.uint16, 65535, "png"),  # 16-bit: 255 would be dark, so "on" must be high
        (np.uint16, 40000, "tif"),
        (np.int32, 255, "tif"),  # mode I with 8-bit values
        (np.float32, 1.0, "tif"),  # mode F in [0, 1]
    ],
)
def test_wide_modes_threshold_at_half_their_range(
    tmp_path: Path, dtype: type, on: float, suffix: str
) -> None:
    mask = drawn_ellipse(80, 50, shape=(200, 300))
    values = np.where(mask, on, 0).astype(dtype)
    values[0, 0] = on * 0.4  # below half: background
    path = tmp_path / f"m.{suffix}"
    Image.fromarray(values).save(path)
    assert np.array_equal(load_mask(path), mask)


def test_sixteen_bit_low_values_are_background(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    Image.fromarray(np.full((20, 30), 255, dtype=np.uint16)).save(path)
    assert not load_mask(path).any()


def test_rgb_mask_uses_luminance_and_ignores_alpha(tmp_path: Path) -> None:
    mask = drawn_ellipse(80, 50, shape=(200, 300))
    rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
    rgba[mask] = (255, 255, 255, 255)
    rgba[~mask] = (0, 0, 255, 255)  # pure blue: luminance 29, background
    rgba[:10, :10, 3] = 0  # transparent corner keeps its (dark) colour
    path = tmp_path / "m.png"
    Image.fromarray(rgba).save(path)
    assert np.array_equal(load_mask(path), mask)


def test_undecodable_file_is_a_pipeline_error(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    path.write_bytes(b"not an image")
    with pytest.raises(PipelineError) as error:
        load_mask(path)
    assert error.value.code == "invalid_image"


def test_empty_mask_fails() -> None:
    with pytest.raises(PipelineError) as error:
        measure_perimeter(np.zeros((50, 50), dtype=bool), 0.1)
    assert error.value.code == "empty_mask"


@pytest.mark.parametrize("pixels", [[(10, 10)], [(10, 10), (10, 11), (10, 12), (10, 13)]])
def test_degenerate_object_fails(pixels: list[tuple[int, int]]) -> None:
    mask = np.zeros((50, 50), dtype=bool)
    for row, col in pixels:
        mask[row, col] = True
    with pytest.raises(PipelineError) as error:
        measure_perimeter(mask, 0.1)
    assert error.value.code == "degenerate_mask"


def test_two_blobs_measure_the_largest_and_flag_it() -> None:
    mask = drawn_ellipse(150, 100)
    mask[20:60, 20:60] = True
    mask[590, 890] = True  # a speck: too small to count as a component
    measurement = measure_perimeter(mask, 1.0)
    assert measurement.quality_flags == ("multiple_components",)
    assert measurement.components == 2
    assert 0.9 < measurement.largest_component_fraction < 1.0
    assert measurement.circumference_mm == pytest.approx(ellipse_circumference(150, 100), rel=0.005)


def test_object_cut_by_the_border_is_flagged() -> None:
    mask = np.zeros((200, 200), dtype=bool)
    rr, cc = ellipse(100, 10, 60, 40, shape=mask.shape)
    mask[rr, cc] = True
    assert "touches_border" in measure_perimeter(mask, 1.0).quality_flags


@pytest.mark.parametrize("spacing", [0, -0.1, float("nan"), float("inf"), "0.1", True, None])
def test_invalid_spacing(spacing: object) -> None:
    with pytest.raises(PipelineError) as error:
        measure_perimeter(drawn_ellipse(50, 40), spacing)  # type: ignore[arg-type]
    assert error.value.code == "invalid_params"


def test_overlay_is_a_png_of_the_mask_size_with_the_ellipse_drawn() -> None:
    mask = drawn_ellipse(150, 100, shape=(300, 400))
    png = render_overlay(mask, measure_perimeter(mask, 1.0))
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (400, 300)
    pixels = np.asarray(image)
    assert np.all(pixels[150, 200 + 150 - 1 : 200 + 150 + 1] == [255, 64, 64], axis=-1).any()


def test_pipeline_runs_end_to_end_and_reports_progress(tmp_path: Path) -> None:
    path = save(drawn_ellipse(100, 70), tmp_path / "m.png")
    seen: list[int] = []
    output = perimeter_pipeline([path], {"pixel_spacing_mm": 0.1}, seen.append)
    assert seen == sorted(seen) and seen[-1] < 100
    assert output.result["circumference_mm"] == pytest.approx(
        ellipse_circumference(100, 70) * 0.1, rel=0.005
    )
    [artifact] = output.artifacts
    assert artifact.name == "overlay.png" and artifact.data.startswith(b"\x89PNG")


def test_numpy_spacing_is_accepted() -> None:
    measurement = measure_perimeter(drawn_ellipse(50, 40), np.float32(0.5))
    assert measurement.pixel_spacing_mm == pytest.approx(0.5)


def test_pipeline_requires_pixel_spacing(tmp_path: Path) -> None:
    path = save(drawn_ellipse(50, 40), tmp_path / "m.png")
    with pytest.raises(PipelineError) as error:
        perimeter_pipeline([path], {})
    assert error.value.code == "invalid_params"


@pytest.mark.parametrize("count", [0, 2])
def test_pipeline_takes_exactly_one_mask(tmp_path: Path, count: int) -> None:
    paths = [save(drawn_ellipse(50, 40), tmp_path / f"{i}.png") for i in range(count)]
    with pytest.raises(PipelineError) as error:
        perimeter_pipeline(paths, {"pixel_spacing_mm": 0.1})
    assert error.value.code == "invalid_inputs"


HC18_SAMPLE = [
    "000_HC.png",
    "010_HC.png",
    "010_2HC.png",
    "100_HC.png",
    "250_HC.png",
    "346_HC.png",  # head cut by the image border
    "500_HC.png",
    "700_HC.png",
    "799_HC.png",
]


def test_hc18_masks_match_the_reference_circumference() -> None:
    images = hc18_images()
    sample = [images[name] for name in HC18_SAMPLE if name in images]
    assert len(sample) >= 6, f"expected most of {HC18_SAMPLE} in the CSV"
    for image in sample:
        measured = measure_perimeter(load_mask(image.mask_path), image.pixel_size_mm)
        # The filled mask's outer edge runs ~1 mm longer than the reference (dataset README).
        assert measured.circumference_mm == pytest.approx(image.head_circumference_mm, abs=3.0), (
            image.name
        )
