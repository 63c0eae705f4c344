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
from dataclasses import dataclass
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


def estimate_boundary_offset(images: list[Hc18Image]) -> float:
    """How far (px, median) the ground-truth mask's edge lies outside the reference ellipse.

    HC18 masks are the sonographer's ellipse drawn filled with its outline; a perimeter grows by
    2π per pixel of outward offset, so offset = (HC_mask - HC_reference) / (2π · pixel size).
    Estimated on the training split only.
    """
    offsets = [
        (hc_or_none(load_mask(i.mask_path), i.pixel_size_mm) - i.head_circumference_mm)
        / (2 * math.pi * i.pixel_size_mm)
        for i in images
    ]
    return round(float(np.median(offsets)), 3)


def score_images(model: object, spec: ModelManifest, images: list[Hc18Image]) -> list[ImageScore]:
    """Predict each image at full resolution and compare with its mask and reference HC."""
    scores = []
    for image in images:
        predicted = predict_class_map(model, spec, load_gray(image.image_path)).astype(bool)
        truth = load_mask(image.mask_path)
        scores.append(
            ImageScore(
                image.name,
                dice(predicted, truth),
                hc_or_none(predicted, image.pixel_size_mm, spec.boundary_offset_px),
                image.head_circumference_mm,
                hc_or_none(truth, image.pixel_size_mm, spec.boundary_offset_px),
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
    offset = estimate_boundary_offset(train)
    print(f"{'boundary_offset_px (train split)':<32}{offset}")
    spec = spec_for(model, args.model_name, args.version, args.weights, offset)
    started = time.perf_counter()
    scores = score_images(model, spec, validation)
    metrics = summarise(scores)
    metrics["seconds_per_image"] = round((time.perf_counter() - started) / len(scores), 3)
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
