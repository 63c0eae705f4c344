"""Evaluate a model on its validation split, measuring the way the job does.

    python -m lab.evaluate hc18-unet --data ../shared/datasets/hc18 --weights FILE
        [--version 1.0.0] [--test-time-flips horizontal ...] [--fit least_squares|robust]
        [--release models/registry/hc18-unet/1.0.0]

For each validation image: predict, bring the probabilities back to 800x540, threshold, fit the
ellipse there (pipelines.perimeter) and multiply by the pixel size; compare with the CSV value.
The HC error is reported four ways: the model as the job measures it (ellipse inset by the model's
boundary offset, calibrated on the training split only), the model with measure_perimeter alone,
and the ground-truth masks both ways (the floor: what a perfect mask would score).
``--test-time-flips`` and ``--fit`` are the postprocessing the manifest records (stage 1 averages
the flipped predictions, stage 2 fits the ellipse that way); the offset is calibrated with them.
``--release`` saves the model (no optimizer state) into a registry folder with a manifest holding
these metrics.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from lab.hc18 import Hc18Image, list_images, load_gray, load_mask, split_by_subject
from lab.release import release
from models.model_registry import ModelManifest, file_sha256
from pipelines.base import PipelineError
from pipelines.head_circumference import inset
from pipelines.perimeter import FITS, measure_perimeter
from pipelines.segmentation import TEST_TIME_FLIPS, predict_class_map

HEAD_CLASSES = {0: "background", 1: "head"}
PREPROCESSING = "grayscale 8-bit, bilinear resize to input size, intensities / 255"


@dataclass(frozen=True)
class ImageScore:
    """Agreement on one image; every circumference is None where no ellipse could be fitted."""

    name: str
    dice: float
    reference_mm: float
    measured_mm: float | None  # as the job measures: the fitted ellipse inset by the model offset
    measured_raw_mm: float | None  # measure_perimeter on the predicted mask, nothing subtracted
    mask_raw_mm: float | None  # the ground-truth mask measured by measure_perimeter alone
    mask_mm: float | None  # the ground-truth mask inset by the annotation offset

    @property
    def error_mm(self) -> float | None:
        """Measured (as the job does) minus reference."""
        return None if self.measured_mm is None else self.measured_mm - self.reference_mm


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice overlap of two bool masks."""
    total = predicted.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(predicted, truth).sum() / total)


def hc_or_none(
    mask: np.ndarray, spacing: float, offset_px: float = 0.0, fit: str = "least_squares"
) -> float | None:
    """Circumference in mm as the job measures it (ellipse inset by offset_px), None if no fit."""
    return hc_pair(mask, spacing, offset_px, fit)[1]


def hc_pair(
    mask: np.ndarray, spacing: float, offset_px: float, fit: str = "least_squares"
) -> tuple[float | None, float | None]:
    """(raw, inset by offset_px) circumference in mm from one ellipse fit; Nones if none fits."""
    try:
        measurement = measure_perimeter(mask, spacing, fit)
    except PipelineError:
        return None, None
    return measurement.circumference_mm, inset(measurement, offset_px).circumference_mm


def boundary_offset_px(
    mask: np.ndarray, image: Hc18Image, fit: str = "least_squares"
) -> float | None:
    """How far (px) the mask's fitted ellipse lies outside the reference one.

    A perimeter grows by 2π per pixel of outward offset: (HC_mask - HC_reference) / (2π · size).
    """
    measured = hc_or_none(mask, image.pixel_size_mm, fit=fit)
    if measured is None:
        return None
    return (measured - image.head_circumference_mm) / (2 * math.pi * image.pixel_size_mm)


def median_offset(offsets: list[float | None]) -> float:
    """Median of the offsets that could be measured, rounded to 1/1000 px."""
    return round(float(np.median([o for o in offsets if o is not None])), 3)


def predict_mask(model: object, spec: ModelManifest, image: Hc18Image) -> np.ndarray:
    """The model's head mask at the image's full resolution."""
    return predict_class_map(model, spec, load_gray(image.image_path)).astype(bool)


def calibrate_offsets(
    model: object, spec: ModelManifest, train: list[Hc18Image]
) -> tuple[float, float]:
    """(model offset, annotation offset) in px, both measured on the training split only.

    The annotation offset is where HC18's drawn masks (ellipse plus outline) put the edge; the
    model offset is where this model's predicted masks put it. The job subtracts the latter.
    """
    annotation = median_offset([boundary_offset_px(load_mask(i.mask_path), i) for i in train])
    model_offset = median_offset(
        [boundary_offset_px(predict_mask(model, spec, i), i, spec.ellipse_fit) for i in train]
    )
    return model_offset, annotation


def score_images(
    model: object, spec: ModelManifest, images: list[Hc18Image], annotation_offset_px: float = 0.0
) -> list[ImageScore]:
    """Predict each image at full resolution and compare with its mask and reference HC."""
    scores = []
    for image in images:
        predicted = predict_mask(model, spec, image)
        truth = load_mask(image.mask_path)
        spacing = image.pixel_size_mm
        measured_raw, measured = hc_pair(
            predicted, spacing, spec.boundary_offset_px, spec.ellipse_fit
        )
        mask_raw, mask = hc_pair(truth, spacing, annotation_offset_px)
        scores.append(
            ImageScore(
                image.name,
                dice(predicted, truth),
                image.head_circumference_mm,
                measured,
                measured_raw,
                mask_raw,
                mask,
            )
        )
    return scores


# Rows of the HC report: metric key prefix, what is measured, ImageScore field.
HC_ROWS = (
    ("hc", "model, as the job measures (inset by model offset)", "measured_mm"),
    ("hc_raw", "model, measure_perimeter only (no offset)", "measured_raw_mm"),
    ("gt_mask_raw_hc", "ground-truth mask, measure_perimeter only", "mask_raw_mm"),
    ("gt_mask_hc", "ground-truth mask, inset by annotation offset", "mask_mm"),
)


def hc_statistics(scores: list[ImageScore], field: str, prefix: str) -> dict[str, float]:
    """Absolute-error statistics and signed bias (mm) of one circumference field vs the CSV."""
    errors = np.array(
        [getattr(s, field) - s.reference_mm for s in scores if getattr(s, field) is not None]
    )
    absolute = np.abs(errors)
    return {
        f"{prefix}_mae_mm": round(float(np.mean(absolute)), 3),
        f"{prefix}_median_ae_mm": round(float(np.median(absolute)), 3),
        f"{prefix}_p95_ae_mm": round(float(np.percentile(absolute, 95)), 3),
        f"{prefix}_max_ae_mm": round(float(np.max(absolute)), 3),
        f"{prefix}_bias_mm": round(float(np.mean(errors)), 3),
    }


# Third-trimester heads, where the error lives: reference HC above this (mm).
LARGE_HEAD_MM = 250.0
LARGE_PREFIX = "hc_over_250mm"


def summarise(scores: list[ImageScore]) -> dict[str, float]:
    """Dice and, for each row of HC_ROWS and for large heads as the job measures, HC errors (mm)."""
    dices = [s.dice for s in scores]
    summary: dict[str, float] = {
        "images": len(scores),
        "no_head_found": sum(s.measured_mm is None for s in scores),
        "dice_mean": round(float(np.mean(dices)), 4),
        "dice_median": round(float(np.median(dices)), 4),
        "dice_min": round(float(np.min(dices)), 4),
    }
    for prefix, _label, field in HC_ROWS:
        summary.update(hc_statistics(scores, field, prefix))
    large = [s for s in scores if s.reference_mm > LARGE_HEAD_MM]
    summary[f"{LARGE_PREFIX}_images"] = len(large)
    if large:
        summary.update(hc_statistics(large, "measured_mm", LARGE_PREFIX))
    return summary


def print_report(metrics: dict[str, Any], scores: list[ImageScore], worst: int = 5) -> None:
    """The metrics as a table, then the images with the largest HC errors."""
    print(f"images {metrics['images']}, no head found {metrics['no_head_found']}")
    print(
        f"Dice at 800x540 vs ground-truth mask: mean {metrics['dice_mean']:.4f}, "
        f"median {metrics['dice_median']:.4f}, min {metrics['dice_min']:.4f}"
    )
    print(
        f"offsets from the training split: model {metrics['boundary_offset_px']} px, "
        f"annotation {metrics['annotation_offset_px']} px"
    )
    print("HC minus CSV reference (mm)                          MAD  median   p95    max   bias")
    large = f"model, as the job measures, heads > 250 mm ({metrics[f'{LARGE_PREFIX}_images']})"
    for prefix, label in [(p, label) for p, label, _field in HC_ROWS] + [(LARGE_PREFIX, large)]:
        if f"{prefix}_mae_mm" not in metrics:
            continue
        keys = ("mae_mm", "median_ae_mm", "p95_ae_mm", "max_ae_mm", "bias_mm")
        row = [metrics[f"{prefix}_{key}"] for key in keys]
        print(f"  {label:<50}" + "".join(f"{value:>7.2f}" for value in row))
    print(f"seconds per image {metrics['seconds_per_image']}")
    print(f"worst {worst} HC errors (as the job measures):")
    ranked = sorted(scores, key=lambda s: -abs(s.error_mm if s.error_mm is not None else 1e9))
    for s in ranked[:worst]:
        measured = "none" if s.measured_mm is None else f"{s.measured_mm:.2f}"
        print(f"  {s.name:<13} measured {measured}  reference {s.reference_mm}  dice {s.dice:.3f}")


def spec_for(
    model: object,
    name: str,
    version: str,
    weights: Path,
    boundary_offset_px: float,
    test_time_flips: tuple[str, ...] = (),
    ellipse_fit: str = "least_squares",
) -> ModelManifest:
    """A manifest for a weights file not yet in the registry (input size from the model)."""
    _, height, width, channels = model.input_shape  # type: ignore[attr-defined]
    return ModelManifest(
        name, version, weights, file_sha256(weights), "segmentation", height, width, channels,
        HEAD_CLASSES, PREPROCESSING, boundary_offset_px=boundary_offset_px,
        test_time_flips=test_time_flips, ellipse_fit=ellipse_fit,
    )  # fmt: skip


def release_fields(spec: ModelManifest, metrics: dict[str, float]) -> dict[str, Any]:
    """The manifest fields of a calibrated U-Net release."""
    return {
        "name": spec.name,
        "version": spec.version,
        "task": spec.task,
        "input_height": spec.input_height,
        "input_width": spec.input_width,
        "channels": spec.channels,
        "preprocessing": spec.preprocessing,
        "classes": {str(k): v for k, v in spec.classes.items()},
        "boundary_offset_px": spec.boundary_offset_px,
        # Only where set: a manifest without them measures exactly as 1.0.0 did.
        **({"test_time_flips": list(spec.test_time_flips)} if spec.test_time_flips else {}),
        **({"ellipse_fit": spec.ellipse_fit} if spec.ellipse_fit != "least_squares" else {}),
        "metrics": {"split": "validation (lab/hc18_split.json)", **metrics},
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Evaluate a ScanQueue model on validation data.")
    parser.add_argument("model_name", choices=["hc18-unet"])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument(
        "--test-time-flips", nargs="*", default=[], choices=sorted(TEST_TIME_FLIPS),
        help="also predict on these flips of the input and average the probabilities",
    )  # fmt: skip
    parser.add_argument("--fit", choices=FITS, default="least_squares", help="ellipse fit")
    parser.add_argument("--release", type=Path, help="registry folder to write")
    args = parser.parse_args()

    import keras

    model = keras.saving.load_model(args.weights, compile=False)
    train, validation = split_by_subject(list_images(args.data))
    uncalibrated = spec_for(
        model, args.model_name, args.version, args.weights, 0.0,
        tuple(args.test_time_flips), args.fit,
    )  # fmt: skip
    model_offset, annotation_offset = calibrate_offsets(model, uncalibrated, train)
    spec = replace(uncalibrated, boundary_offset_px=model_offset)
    started = time.perf_counter()
    scores = score_images(model, spec, validation, annotation_offset)
    seconds_per_image = round((time.perf_counter() - started) / len(scores), 3)
    metrics = {
        "boundary_offset_px": model_offset,
        "annotation_offset_px": annotation_offset,
        **summarise(scores),
        "seconds_per_image": seconds_per_image,
    }
    flips = ", ".join(spec.test_time_flips) or "none"
    print(f"postprocessing: test-time flips {flips}; ellipse fit {spec.ellipse_fit}")
    print_report(metrics, scores)
    release(model, args.release, release_fields(spec, metrics))


if __name__ == "__main__":
    main()
