"""Image-set classification: per-image class probabilities, their mean, and "uncertain" below a
confidence threshold. Pure: the model and its manifest come in as arguments."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipelines.base import ModelIdentity, PipelineError, PipelineOutput, ProgressCallback
from pipelines.limits import DEFAULT_LIMITS, ImageLimits
from pipelines.scans import read_scan
from pipelines.segmentation import BatchPredictor, preprocess

UNCERTAIN = "uncertain"


class ClassifierSpec(Protocol):
    """What the pipeline needs to know of the model (a registry manifest has it)."""

    input_height: int
    input_width: int
    channels: int
    classes: dict[int, str]
    input_scale: str


def classify_images(
    inputs: Sequence[Path],
    model: BatchPredictor,
    spec: ClassifierSpec,
    uncertain_below: float,
    progress: ProgressCallback,
    identity: ModelIdentity | None = None,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> PipelineOutput:
    """Probabilities per image and for the set (their mean); the set's prediction is the most
    probable class, or ``uncertain`` when its probability is below ``uncertain_below``."""
    names = [spec.classes[index] for index in sorted(spec.classes)]
    batch = np.concatenate([preprocess(read_scan(path, limits).pixels, spec) for path in inputs])
    progress(40)
    probabilities = np.asarray(model.predict_on_batch(batch), dtype=np.float64)
    if len(names) == 2 and probabilities.shape == (len(inputs), 1):
        # One sigmoid unit: the probability of the second class.
        probabilities = np.concatenate([1.0 - probabilities, probabilities], axis=1)
    if probabilities.shape != (len(inputs), len(names)):
        raise PipelineError(
            "model_mismatch",
            f"The model returned shape {probabilities.shape}; its manifest names "
            f"{len(names)} classes for {len(inputs)} image(s).",
        )
    mean = probabilities.mean(axis=0)
    best = int(mean.argmax())
    confident = float(mean[best]) >= uncertain_below

    def as_dict(row: np.ndarray) -> dict[str, float]:
        return {name: round(float(value), 4) for name, value in zip(names, row, strict=True)}

    result: dict[str, Any] = {
        "prediction": names[best] if confident else UNCERTAIN,
        "most_probable": names[best],
        "confidence": round(float(mean[best]), 4),
        "uncertain_below": uncertain_below,
        "probabilities": as_dict(mean),
        "images": [
            {
                "position": position,
                "probabilities": as_dict(row),
                "most_probable": names[int(row.argmax())],
            }
            for position, row in enumerate(probabilities)
        ],
    }
    return PipelineOutput(result, [], identity)
