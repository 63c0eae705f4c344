"""The segmentation overlay, built a block of rows at a time, equals the whole-image formula."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from pipelines.segmentation import OVERLAY_TENTHS, PALETTE, overlay_png


def test_overlay_in_row_blocks_equals_the_whole_image_formula() -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(1500, 1100), dtype=np.uint8)  # more than one block
    class_map = rng.integers(0, 4, size=pixels.shape, dtype=np.uint8)
    grey = np.repeat(pixels[..., None].astype(np.uint16), 3, axis=-1)
    blended = ((10 - OVERLAY_TENTHS) * grey + OVERLAY_TENTHS * PALETTE[class_map]) // 10
    expected = np.where((class_map > 0)[..., None], blended, grey).astype(np.uint8)
    overlay = np.asarray(Image.open(io.BytesIO(overlay_png(pixels, class_map))))
    assert np.array_equal(overlay, expected)
