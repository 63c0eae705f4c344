"""Choose the head model's postprocessing on the TRAINING split only (validation never looked at).

    python -m lab.tune_head_postprocessing --data ../shared/datasets/hc18 \\
        --weights models/registry/hc18-unet/1.0.0/model.keras

Each training image is predicted once per test-time flip; every combination of
flips and ellipse fit is then measured as the job would, and its boundary offset calibrated by
5-fold cross-validation over training subjects (the offset of each fold comes from the other
four), so the table compares configurations on images their calibration did not see.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

import numpy as np

from lab.evaluate import LARGE_HEAD_MM, median_offset, spec_for
from lab.hc18 import Hc18Image, list_images, load_gray, split_by_subject
from models.model_registry import ModelManifest
from pipelines.base import PipelineError
from pipelines.head_circumference import inset
from pipelines.perimeter import FITS, PerimeterMeasurement, measure_perimeter
from pipelines.segmentation import (
    TEST_TIME_FLIPS,
    binary_class_map,
    predict_averaged,
    preprocess,
)

# No flip, each single flip, and all of them (horizontal, vertical and both: four predictions).
FLIP_SETS: tuple[tuple[str, ...], ...] = (
    (),
    ("horizontal",),
    ("vertical",),
    tuple(TEST_TIME_FLIPS),
)
FOLDS = 5


def flipped_outputs(model: object, batch: np.ndarray) -> dict[str, np.ndarray]:
    """The model's probability map for the image and for each flip, flipped back ("" = plain)."""
    outputs = {"": predict_averaged(model, batch)[0, ..., 0]}  # type: ignore[arg-type]
    for name, axes in TEST_TIME_FLIPS.items():
        flipped = predict_averaged(model, np.flip(batch, axes))  # type: ignore[arg-type]
        outputs[name] = np.flip(flipped, axes)[0, ..., 0]
    return outputs


def measure_configurations(
    model: object, spec: ModelManifest, images: list[Hc18Image]
) -> dict[tuple[tuple[str, ...], str], list[PerimeterMeasurement | None]]:
    """For every (flips, fit): the uninset measurement of each image (None where none fits)."""
    found: dict[tuple[tuple[str, ...], str], list[PerimeterMeasurement | None]] = {
        (flips, fit): [] for flips in FLIP_SETS for fit in FITS
    }
    for image in images:
        pixels = load_gray(image.image_path)
        outputs = flipped_outputs(model, preprocess(pixels, spec))
        for flips in FLIP_SETS:
            averaged = np.mean([outputs[""], *(outputs[f] for f in flips)], axis=0)
            mask = binary_class_map(averaged, pixels.shape[1], pixels.shape[0]).astype(bool)
            for fit in FITS:
                try:
                    found[flips, fit].append(measure_perimeter(mask, image.pixel_size_mm, fit))
                except PipelineError:
                    found[flips, fit].append(None)
    return found


def cross_validated_errors(
    measured: list[PerimeterMeasurement | None], images: list[Hc18Image]
) -> np.ndarray:
    """HC minus reference (mm) with the offset of each subject fold fitted on the others."""
    subjects = sorted({image.subject for image in images})
    random.Random(0).shuffle(subjects)
    fold_of = {subject: k % FOLDS for k, subject in enumerate(subjects)}
    errors = np.full(len(images), np.nan)
    for fold in range(FOLDS):
        offsets = [
            (m.circumference_mm - i.head_circumference_mm) / (2 * math.pi * i.pixel_size_mm)
            for m, i in zip(measured, images, strict=True)
            if m is not None and fold_of[i.subject] != fold
        ]
        offset = median_offset(offsets)
        for k, (m, i) in enumerate(zip(measured, images, strict=True)):
            if m is not None and fold_of[i.subject] == fold:
                errors[k] = inset(m, offset).circumference_mm - i.head_circumference_mm
    return errors


def row(errors: np.ndarray) -> str:
    """MAD, median, p95 of |error| and the bias, over the measured images."""
    e = errors[np.isfinite(errors)]
    if not len(e):
        return "     -      -      -      -"
    a = np.abs(e)
    return f"{a.mean():6.3f} {np.median(a):6.3f} {np.percentile(a, 95):6.2f} {e.mean():+6.2f}"


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Compare head postprocessing on training data.")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--limit", type=int, help="only the first N training images (a quick look)")
    args = parser.parse_args()

    import keras

    model = keras.saving.load_model(args.weights, compile=False)
    spec = spec_for(model, "hc18-unet", "tuning", args.weights, 0.0)
    train = split_by_subject(list_images(args.data))[0][: args.limit]
    large = np.array([i.head_circumference_mm > LARGE_HEAD_MM for i in train])
    print(f"training images {len(train)}, heads > {LARGE_HEAD_MM:.0f} mm {large.sum()}")
    print(f"{'flips':<32}{'fit':<15}  MAD    med    p95   bias |  > 250 mm: MAD  med   p95  bias")
    for (flips, fit), measured in measure_configurations(model, spec, train).items():
        errors = cross_validated_errors(measured, train)
        label = "+".join(flips) or "none"
        print(f"{label:<32}{fit:<15}{row(errors)} | {row(errors[large])}")


if __name__ == "__main__":
    main()
