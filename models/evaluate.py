"""Evaluate a model on its validation split, measuring the way the job does.

    python -m models.evaluate hc18-unet --data ../shared/datasets/hc18 --weights FILE
        [--release models/registry/hc18-unet/1.0.0]

For each validation image: predict, bring the probabilities back to 800x540, threshold, fit the
ellipse there (pipelines.perimeter) and multiply by the pixel size; compare with the CSV value.
``--release`` copies the weights into a registry folder with a manifest holding these metrics.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from models.hc18 import Hc18Image, list_images, load_gray, load_mask, split_by_subject
from models.model_registry import ModelManifest, file_sha256
from pipelines.base import PipelineError
from pipelines.head_circumference import inset
from pipelines.perimeter import measure_perimeter
from pipelines.segmentation import predict_class_map

HEAD_CLASSES = {0: "background", 1: "head"}
PREPROCESSING = "grayscale 8-bit, bilinear resize to input size, intensities / 255"


@dataclass(frozen=True)
class ImageScore:
    """Agreement on one image."""

    name: str
    dice: float
    measured_mm: float | None
    reference_mm: float
    mask_mm: float | None  # the ground-truth mask measured the same way

    @property
    def error_mm(self) -> float | None:
        """Measured minus reference."""
        return None if self.measured_mm is None else self.measured_mm - self.reference_mm


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice overlap of two bool masks."""
    total = predicted.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(predicted, truth).sum() / total)


def hc_or_none(mask: np.ndarray, spacing: float, offset_px: float = 0.0) -> float | None:
    """Circumference in mm as the job measures it (ellipse inset by offset_px), None if no fit."""
    try:
        return inset(measure_perimeter(mask, spacing), offset_px).circumference_mm
    except PipelineError:
        return None


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
        scores.append(
            ImageScore(
                image.name,
                dice(predicted, truth),
                hc_or_none(predicted, image.pixel_size_mm, spec.boundary_offset_px),
                image.head_circumference_mm,
                hc_or_none(truth, image.pixel_size_mm, annotation_offset_px),
            )
        )
    return scores


def summarise(scores: list[ImageScore]) -> dict[str, float]:
    """Dice and HC error statistics (mm)."""
    errors = np.array([s.error_mm for s in scores if s.error_mm is not None])
    floor = np.array([s.mask_mm - s.reference_mm for s in scores if s.mask_mm is not None])
    return {
        "images": len(scores),
        "no_head_found": sum(s.measured_mm is None for s in scores),
        "dice_mean": round(float(np.mean([s.dice for s in scores])), 4),
        "dice_median": round(float(np.median([s.dice for s in scores])), 4),
        "hc_mae_mm": round(float(np.mean(np.abs(errors))), 3),
        "hc_median_ae_mm": round(float(np.median(np.abs(errors))), 3),
        "hc_p95_ae_mm": round(float(np.percentile(np.abs(errors), 95)), 3),
        "hc_bias_mm": round(float(np.mean(errors)), 3),
        "ground_truth_mask_hc_mae_mm": round(float(np.mean(np.abs(floor))), 3),
        "ground_truth_mask_hc_bias_mm": round(float(np.mean(floor)), 3),
    }


def spec_for(
    model: object, name: str, version: str, weights: Path, boundary_offset_px: float
) -> ModelManifest:
    """A manifest for a weights file not yet in the registry (input size from the model)."""
    _, height, width, channels = model.input_shape  # type: ignore[attr-defined]
    return ModelManifest(
        name, version, weights, file_sha256(weights), height, width, channels, HEAD_CLASSES,
        PREPROCESSING, boundary_offset_px=boundary_offset_px,
    )  # fmt: skip


def release(spec: ModelManifest, metrics: dict[str, float], folder: Path) -> None:
    """Copy the weights into a registry folder and write its manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(spec.weights_path, folder / "model.keras")
    manifest = {
        "file": "model.keras",
        "sha256": file_sha256(folder / "model.keras"),
        "input_height": spec.input_height,
        "input_width": spec.input_width,
        "channels": spec.channels,
        "preprocessing": spec.preprocessing,
        "classes": {str(k): v for k, v in spec.classes.items()},
        "boundary_offset_px": spec.boundary_offset_px,
        "metrics": {"split": "validation (models/hc18_split.json)", **metrics},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


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
    raw = summarise(score_images(model, uncalibrated, validation, annotation_offset))
    metrics = {
        "boundary_offset_px": model_offset,
        "annotation_offset_px": annotation_offset,
        **summarise(scores),
        "hc_mae_mm_without_offset": raw["hc_mae_mm"],
        "hc_bias_mm_without_offset": raw["hc_bias_mm"],
    }
    metrics["seconds_per_image"] = seconds_per_image
    for key, value in metrics.items():
        print(f"{key:<32}{value}")
    print("worst HC errors:")
    ranked = sorted(scores, key=lambda s: -abs(s.error_mm if s.error_mm is not None else 1e9))
    for s in ranked[:5]:
        measured = "none" if s.measured_mm is None else f"{s.measured_mm:.2f}"
        print(f"  {s.name:<13} measured {measured}  reference {s.reference_mm}  dice {s.dice:.3f}")
    if args.release:
        release(spec, metrics, args.release)
        print(f"released to {args.release}")


if __name__ == "__main__":
    main()
