"""The perimeter's memory-saving path (bounding-box window, 16-bit labels, uint8 contours) gives
the measurements of the straightforward full-image computation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.perimeter import load_mask, measure_perimeter, render_overlay
from tests.conftest import hc18_images
from tests.pipelines.test_perimeter import HC18_SAMPLE, drawn_ellipse

# as_result() of the HC18 sample masks, recorded with the pipeline before it worked on windows.
REFERENCE = Path(__file__).parent / "data" / "perimeter_hc18_reference.json"


def test_hc18_results_are_unchanged() -> None:
    images = hc18_images()
    reference = json.loads(REFERENCE.read_text())
    for name in HC18_SAMPLE:
        image = images[name]
        result = measure_perimeter(load_mask(image.mask_path), image.pixel_size_mm).as_result()
        assert result == reference[name], name


def test_a_small_object_in_a_large_frame_measures_as_in_a_tight_frame() -> None:
    tight = drawn_ellipse(60, 35, shape=(200, 240), angle=0.4)
    large = np.zeros((3000, 2600), dtype=bool)
    large[1700:1900, 900:1140] = tight
    small, big = measure_perimeter(tight, 0.1), measure_perimeter(large, 0.1)
    assert big.center_x_px == pytest.approx(small.center_x_px + 900, abs=1e-6)
    assert big.center_y_px == pytest.approx(small.center_y_px + 1700, abs=1e-6)
    for field in ("semi_axis_a_px", "semi_axis_b_px", "angle_rad", "fit_residual_px"):
        assert getattr(big, field) == pytest.approx(getattr(small, field), abs=1e-9), field
    assert big.boundary_points == small.boundary_points
    assert big.object_area_px == small.object_area_px
    assert big.quality_flags == small.quality_flags == ()


@pytest.mark.parametrize("side", ["top", "bottom", "left", "right"])
def test_touching_the_image_border_is_still_flagged(side: str) -> None:
    mask = drawn_ellipse(80, 50, shape=(400, 400))
    shift = {"top": (-170, 0), "bottom": (170, 0), "left": (0, -140), "right": (0, 140)}[side]
    cut = np.roll(mask, shift, axis=(0, 1))
    assert "touches_border" in measure_perimeter(cut, 0.1).quality_flags


def test_more_blobs_than_16_bits_can_label_still_measure() -> None:
    mask = np.zeros((1200, 1200), dtype=bool)
    mask[2:-2:4, 2:-2:4] = True  # ~89,000 single-pixel specks, beyond uint16 labels
    mask[300:900, 200:1000] = drawn_ellipse(390, 290, shape=(600, 800))
    measurement = measure_perimeter(mask, 0.1)
    assert measurement.semi_axis_a_px == pytest.approx(390, abs=2)
    assert "touches_border" not in measurement.quality_flags


def test_overlay_of_a_mask_is_grey_levels_of_the_mask() -> None:
    import io

    from PIL import Image

    mask = drawn_ellipse(100, 60, shape=(300, 300))
    image = Image.open(io.BytesIO(render_overlay(mask, measure_perimeter(mask, 0.1))))
    pixels = np.asarray(image.convert("RGB"))
    assert tuple(pixels[5, 5]) == (20, 20, 20) and tuple(pixels[150, 120]) == (140, 140, 140)
