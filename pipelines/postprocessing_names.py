"""The postprocessing a model's manifest may name, as plain data (no image libraries), so the
registry reader (which the web uses) can check a manifest without loading the pipelines."""

from __future__ import annotations

# Ellipse fits of the head measurement (pipelines.perimeter).
FITS = ("least_squares", "robust")
# Test-time flips: the image axes of an (N, H, W, C) batch each one reverses
# (pipelines.segmentation).
TEST_TIME_FLIPS: dict[str, tuple[int, ...]] = {
    "horizontal": (2,),
    "vertical": (1,),
    "both": (1, 2),
}
