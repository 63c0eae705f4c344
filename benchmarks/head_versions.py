"""The head_circumference pipeline in-process with each released hc18-unet version, side by side.

    python -m benchmarks.head_versions [--jobs 30]

What ``make bench`` times for the default (newest) version, here for every version on the same
images, interleaved image by image so that a machine busy with other work slows all alike:
segmentation (with the version's test-time flips) then the ellipse fit (with its fit) and the
overlay. The project's budget is 150 ms per image.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.__main__ import hc18_samples, percentiles
from core.config import load_settings
from models.model_registry import ModelRegistry
from models.serving import ModelCache
from pipelines.head_circumference import measure_head
from pipelines.segmentation import segmentation_pipeline

MODEL = "hc18-unet"


def main() -> None:
    """Print p50 / p95 ms per image for every version of the head model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30)
    args = parser.parse_args()
    settings = load_settings()
    cache = ModelCache()
    versions = ModelRegistry(settings.MODEL_DIR).versions(MODEL)
    loaded = {v: cache.get(settings.MODEL_DIR, MODEL, v) for v in versions}
    _masks, images, spacing = hc18_samples(args.jobs)
    mask_path = Path(tempfile.mkdtemp(prefix="scanqueue-bench-")) / "mask.png"

    def run(version: str, image: Path) -> None:
        model, manifest = loaded[version].model, loaded[version].manifest
        params = {"pixel_spacing_mm": spacing[image.name]}
        segmented = segmentation_pipeline(
            [image], params, model=model, manifest=manifest, with_overlay=False
        )
        mask_path.write_bytes(segmented.artifacts[0].data)
        measure_head(
            image, mask_path, params, boundary_offset_px=manifest.boundary_offset_px,
            fit=manifest.ellipse_fit,
        )  # fmt: skip

    timings: dict[str, list[float]] = {v: [] for v in versions}
    for version in versions:  # warm-up, untimed
        run(version, images[0])
    for image in images:
        for version in versions:
            started = time.perf_counter()
            run(version, image)
            timings[version].append(1000 * (time.perf_counter() - started))
    print(f"| {MODEL} version (flips; fit) | p50 ms | p95 ms |\n|---|---|---|")
    for version in versions:
        manifest = loaded[version].manifest
        flips = "+".join(manifest.test_time_flips) or "none"
        p50, p95 = percentiles(timings[version])
        print(f"| {version} ({flips}; {manifest.ellipse_fit}) | {p50:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
