"""How 8-bit pixels become a model's input values: the scales a manifest's ``input_scale`` names.

A model trained on intensities / 255 needs exactly that at inference; one that rescales inside
itself (a Rescaling layer) takes raw 0-255 values; ImageNet-style networks take [-1, 1].
"""

from __future__ import annotations

import numpy as np

# name -> (divisor, offset): value = pixel / divisor + offset.
INPUT_SCALES: dict[str, tuple[float, float]] = {
    "unit": (255.0, 0.0),
    "raw": (1.0, 0.0),
    "symmetric": (127.5, -1.0),
}
SCALE_DESCRIPTIONS: dict[str, str] = {
    "unit": "intensities / 255 (0 to 1)",
    "raw": "intensities 0 to 255 as floats (the model rescales)",
    "symmetric": "intensities / 127.5 - 1 (-1 to 1)",
}


def scale_pixels(pixels: np.ndarray, input_scale: str) -> np.ndarray:
    """8-bit pixels as float32 model input on the named scale."""
    divisor, offset = INPUT_SCALES[input_scale]
    scaled = pixels.astype(np.float32) / np.float32(divisor)
    return scaled + np.float32(offset) if offset else scaled
