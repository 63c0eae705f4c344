"""Evaluate a model on its validation split, measuring the way the job does.

    python -m lab.evaluate hc18-unet --data ../shared/datasets/hc18 --weights FILE
        [--release models/registry/hc18-unet/1.0.0]

For each validation image: predict, bring the probabilities back to 800x540, threshold, fit the
ellipse there (pipelines.perimeter) and multiply by the pixel size; compare with the CSV value.
The HC error is reported four ways: the model as the job measures it (ellipse inset by the model's
boundary offset, calibrated on the training split only), the model with measure_perimeter alone,
and the ground-truth masks both ways (the floor: what a perfect mask would score).
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
from pipelines.perimeter import measure_perimeter
from pipelines.segmentation import predict_class_map

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


def hc_or_none(mask: np.ndarray, spacing: float, offset_px: float = 0.0) -> float | None:
    """Circumference in mm as the job measures it (ellipse inset by offset_px), None if no fit."""
    return hc_pair(mask, spacing, offset_px)[1]


def hc_pair(
    mask: np.ndarray, spacing: float, offset_px: float
) -> tuple[float | None, float | None]:
    """(raw, inset by offset_px) circumference in mm from one ellipse fit; Nones if none fits."""
    try:
        measurement = measure_perimeter(mask, spacing)
    except PipelineError:
        return None, None
    return measurement.circumference_mm, inset(measurement, offset_px).circumference_mm


def boundary_offset_px(mask: np.ndarray, image: Hc18Image) -> float | None:
    """How far (px) the mask's fitted ellipse lies outside the reference one.

    A perimeter grows by 2π per pixel of outward offset: (HC_mask - HC_reference) / (2π · size).
    """
    measured = hc_or_none(mask, image.pixel_size_mm)
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
        [boundary_offset_px(predict_mask(model, spec, i), i) for i in train]
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
        measured_raw, measured = hc_pair(predicted, spacing, spec.boundary_offset_px)
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


def summarise(scores: list[ImageScore]) -> dict[str, float]:
    """Dice and, for each row of HC_ROWS, HC error statistics (mm)."""
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
    for prefix, label, _field in HC_ROWS:
        row = [metrics[f"{prefix}_{key}"] for key in ("mae_mm", "median_ae_mm", "p95_ae_mm")]
        row += [metrics[f"{prefix}_max_ae_mm"], metrics[f"{prefix}_bias_mm"]]
        print(f"  {label:<50}" + "".join(f"{value:>7.2f}" for value in row))
    print(f"seconds per image {metrics['seconds_per_image']}")
    print(f"worst {worst} HC errors (as the job measures):")
    ranked = sorted(scores, key=lambda s: -abs(s.error_mm if s.error_mm is not None else 1e9))
    for s in ranked[:worst]:
        measured = "none" if s.measured_mm is None else f"{s.measured_mm:.2f}"
        print(f"  {s.name:<13} measured {measured}  reference {s.reference_mm}  dice {s.dice:.3f}")


def spec_for(
    model: object, name: str, version: str, weights: Path, boundary_offset_px: float
) -> ModelManifest:
    """A manifest for a weights file not yet in the registry (input size from the model)."""
    _, height, width, channels = model.input_shape  # type: ignore[attr-defined]
    return ModelManifest(
        name, version, weights, file_sha256(weights), "segmentation", height, width, channels,
        HEAD_CLASSES, PREPROCESSING, boundary_offset_px=boundary_offset_px,
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
        "metrics": {"split": "validation (lab/hc18_split.json)", **metrics},
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Evaluate a ScanQueue model on validation data.")
    parser.add_argument("model_name", choices=["hc18-unet"])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--release", type=Path, help="registry folder to write")
    args = parser.parse_args()

    import keras

    model = keras.saving.load_model(args.weights, compile=False)
    train, validation = split_by_subject(list_images(args.data))
    uncalibrated = spec_for(model, args.model_name, args.version, args.weights, 0.0)
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
    print_report(metrics, scores)
    release(model, args.release, release_fields(spec, metrics))


if __name__ == "__main__":
    main()
