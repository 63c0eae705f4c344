"""Segmentation with a registry model: scan in, class map at the scan's resolution out.

The model is passed in (loaded once per worker process); this module never imports a framework:
it only calls ``model.predict_on_batch`` on a float32 batch of shape (1, H, W, C) on the
manifest's input scale (``pipelines.model_input``).
A binary model (two classes in its manifest) outputs one sigmoid channel; a multi-class model
outputs one softmax channel per class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from pipelines.base import (
    ArtifactData,
    PipelineError,
    PipelineOutput,
    ProgressCallback,
    no_progress,
    png_bytes,
)
from pipelines.limits import DEFAULT_LIMITS, ImageLimits
from pipelines.model_input import scale_pixels
from pipelines.postprocessing_names import TEST_TIME_FLIPS
from pipelines.scans import Scan, read_scan, row_blocks

# Overlay colours by class index (background, then foreground classes).
PALETTE = np.array(
    [(0, 0, 0), (255, 80, 80), (80, 200, 255), (120, 230, 90), (250, 200, 60), (200, 120, 255)],
    dtype=np.uint16,
)
# Tint weight of the class colour, in tenths (integer arithmetic keeps the overlay cheap).
OVERLAY_TENTHS = 4


class SegmentationModelSpec(Protocol):
    """What the pipeline reads from a model's manifest (models.model_registry.ModelManifest)."""

    name: str
    version: str
    input_height: int
    input_width: int
    channels: int
    classes: dict[int, str]
    test_time_flips: tuple[str, ...]
    input_scale: str

    @property
    def is_binary(self) -> bool: ...


class BatchPredictor(Protocol):
    """What the pipeline needs of a model (a Keras model satisfies it)."""

    def predict_on_batch(self, x: np.ndarray) -> Any: ...


def preprocess(pixels: np.ndarray, manifest: SegmentationModelSpec) -> np.ndarray:
    """Grayscale 8-bit (H, W) to the model's input: resized bilinearly, on its input scale."""
    size = (manifest.input_width, manifest.input_height)
    resized = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))
    batch = scale_pixels(resized, manifest.input_scale)[None, :, :, None]
    return np.repeat(batch, manifest.channels, axis=-1) if manifest.channels > 1 else batch


def _resize_probabilities(channel: np.ndarray, width: int, height: int) -> np.ndarray:
    image = Image.fromarray(channel.astype(np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))


def binary_class_map(channel: np.ndarray, width: int, height: int) -> np.ndarray:
    """A binary model's probability map resized bilinearly to width x height, then >= 0.5."""
    return (_resize_probabilities(channel, width, height) >= 0.5).astype(np.uint8)


def predict_averaged(
    model: BatchPredictor, batch: np.ndarray, flips: tuple[str, ...] = ()
) -> np.ndarray:
    """The model's (N, H, W, C) output, averaged with its output on each flip of the batch.

    Each flipped prediction is flipped back before averaging; all variants go through the model
    in one call. The flips are names from TEST_TIME_FLIPS (the manifest's ``test_time_flips``).
    """
    variants = [batch, *(np.flip(batch, TEST_TIME_FLIPS[flip]) for flip in flips)]
    output = np.asarray(model.predict_on_batch(np.concatenate(variants)))
    if output.ndim == 3:
        output = output[..., None]
    count = len(batch)
    total = output[:count].astype(np.float32)
    for k, flip in enumerate(flips, start=1):
        total += np.flip(output[k * count : (k + 1) * count], TEST_TIME_FLIPS[flip])
    return total / (1 + len(flips))


def predict_class_map(
    model: BatchPredictor, manifest: SegmentationModelSpec, pixels: np.ndarray
) -> np.ndarray:
    """Class index per pixel at the scan's own resolution (probabilities resized, then decided)."""
    height, width = pixels.shape
    batch = preprocess(pixels, manifest)
    output = predict_averaged(model, batch, manifest.test_time_flips)[0]
    if manifest.is_binary:
        return binary_class_map(output[..., 0], width, height)
    if output.shape[-1] != len(manifest.classes):
        raise PipelineError(
            "model_mismatch",
            f"{manifest.name} {manifest.version} outputs {output.shape[-1]} channels for "
            f"{len(manifest.classes)} classes.",
        )
    stacked = np.stack(
        [_resize_probabilities(output[..., k], width, height) for k in range(output.shape[-1])]
    )
    return np.argmax(stacked, axis=0).astype(np.uint8)


def class_areas(
    class_map: np.ndarray, classes: dict[int, str], pixel_spacing_mm: float | None
) -> dict[str, dict[str, float | int | None]]:
    """Pixels, fraction of the image and (with a pixel size) mm² of every class."""
    counts = np.bincount(class_map.ravel(), minlength=max(classes) + 1)
    total = class_map.size
    pixel_area = pixel_spacing_mm**2 if pixel_spacing_mm else None
    return {
        label: {
            "pixels": int(counts[index]),
            "fraction": round(float(counts[index]) / total, 5),
            "area_mm2": round(float(counts[index]) * pixel_area, 3) if pixel_area else None,
        }
        for index, label in sorted(classes.items())
    }


def mask_png(class_map: np.ndarray, binary: bool) -> bytes:
    """The class map as a PNG: 0/255 for a binary model, class indices otherwise."""
    values = class_map * 255 if binary else class_map
    return png_bytes(Image.fromarray(values.astype(np.uint8)))


def overlay_png(pixels: np.ndarray, class_map: np.ndarray) -> bytes:
    """The scan in grey with every foreground class tinted in its colour."""
    tinted = np.empty((*pixels.shape, 3), dtype=np.uint8)
    # A block of rows at a time: the uint16 temporaries of a whole 40 Mpx scan would take ~1 GB.
    for rows in row_blocks(*pixels.shape):
        grey = np.repeat(pixels[rows, :, None].astype(np.uint16), 3, axis=-1)
        classes = class_map[rows]
        colours = PALETTE[classes % len(PALETTE)]
        blended = ((10 - OVERLAY_TENTHS) * grey + OVERLAY_TENTHS * colours) // 10
        tinted[rows] = np.where((classes > 0)[..., None], blended, grey)
    return png_bytes(Image.fromarray(tinted))


def scan_spacing(scan: Scan, params: dict[str, Any]) -> float | None:
    """Pixel size: the job's ``pixel_spacing_mm`` if given, else the file's (DICOM)."""
    return params.get("pixel_spacing_mm") or scan.pixel_spacing_mm


def segmentation_pipeline(
    inputs: list[Path],
    params: dict[str, Any],
    progress: ProgressCallback = no_progress,
    *,
    model: BatchPredictor,
    manifest: SegmentationModelSpec,
    with_overlay: bool = True,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> PipelineOutput:
    """One scan in; its mask (and overlay) PNGs and per-class areas out."""
    if len(inputs) != 1:
        raise PipelineError("invalid_inputs", f"segmentation takes one image, got {len(inputs)}.")
    scan = read_scan(inputs[0], limits)
    progress(10)
    class_map = predict_class_map(model, manifest, scan.pixels)
    progress(70)
    spacing = scan_spacing(scan, params)
    height, width = class_map.shape
    result = {
        "image_width": width,
        "image_height": height,
        "pixel_spacing_mm": spacing,
        "classes": class_areas(class_map, manifest.classes, spacing),
    }
    artifacts = [ArtifactData("mask.png", "image/png", mask_png(class_map, manifest.is_binary))]
    if with_overlay:
        artifacts.append(
            ArtifactData("overlay.png", "image/png", overlay_png(scan.pixels, class_map))
        )
    return PipelineOutput(result=result, artifacts=artifacts)
