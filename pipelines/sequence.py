"""Sequence inference: face crops of a time-ordered series -> P(condition improving).

Pure functions: the frames (crops found by the face-extraction step) and the model come in as
arguments. Photos without a usable face are masked out; the model never sees their pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from pipelines.base import (
    ArtifactData,
    ModelIdentity,
    PipelineError,
    PipelineOutput,
    ProgressCallback,
    png_bytes,
)
from pipelines.model_input import scale_pixels

# Input names of the sequence model (lab.sequence_net); kept here so pipelines stay Keras-free.
FRAMES_INPUT = "frames"
MASK_INPUT = "mask"
# Fewer usable frames than this show a level, not a trend.
MIN_TREND_FRAMES = 2
STRIP_TILE = 96


class SequenceModelSpec(Protocol):
    """What the pipeline needs to know of the model (a registry manifest has it)."""

    input_height: int
    input_width: int
    max_frames: int
    classes: dict[int, str]
    input_scale: str


class SequencePredictor(Protocol):
    """A Keras-like model called on {"frames": (1, T, H, W, C), "mask": (1, T)}."""

    def predict_on_batch(self, x: dict[str, np.ndarray]) -> Any: ...


@dataclass(frozen=True)
class Frame:
    """One photo of the series: where it was uploaded, when taken, and its face crop if any."""

    position: int
    taken_at: str | None
    crop: Path | None
    # Why there is no crop: "no_face", or the face-extraction failure code.
    missing_reason: str | None = None


def load_crop(path: Path, size: tuple[int, int]) -> np.ndarray:
    """An aligned face crop as RGB uint8 at the model's frame size."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize(size, Image.Resampling.BILINEAR))


def frames_tensor(
    frames: Sequence[Frame], spec: SequenceModelSpec
) -> tuple[np.ndarray, np.ndarray]:
    """(1, max_frames, H, W, 3) float32 frames and the bool mask; masked frames hold zeros.

    Every series is padded (masked) to the model's maximum: one input shape means one compiled
    graph per worker, where each new length would otherwise be traced again (~0.3 s).
    """
    size = (spec.input_width, spec.input_height)
    shape = (1, spec.max_frames, spec.input_height, spec.input_width, 3)
    pixels = np.zeros(shape, dtype=np.float32)
    mask = np.zeros((1, spec.max_frames), dtype=bool)
    for step, frame in enumerate(frames):
        if frame.crop is not None:
            pixels[0, step] = scale_pixels(load_crop(frame.crop, size), spec.input_scale)
            mask[0, step] = True
    return pixels, mask


def strip_png(frames: Sequence[Frame]) -> bytes:
    """The series as one strip of tiles in time order; masked photos are grey tiles."""
    strip = Image.new("RGB", (STRIP_TILE * len(frames), STRIP_TILE), (90, 90, 90))
    for step, frame in enumerate(frames):
        if frame.crop is not None:
            tile = Image.fromarray(load_crop(frame.crop, (STRIP_TILE, STRIP_TILE)))
            strip.paste(tile, (step * STRIP_TILE, 0))
    return png_bytes(strip)


def predict_trend(
    frames: Sequence[Frame],
    model: SequencePredictor,
    spec: SequenceModelSpec,
    progress: ProgressCallback,
    identity: ModelIdentity | None = None,
) -> PipelineOutput:
    """P(improving) for the frames in the given (time) order, with which frames were used."""
    if len(frames) > spec.max_frames:
        raise PipelineError(
            "too_many_frames",
            f"The model takes at most {spec.max_frames} photos; the series has {len(frames)}.",
        )
    used = [frame.position for frame in frames if frame.crop is not None]
    if not used:
        raise PipelineError(
            "no_faces_found",
            f"No usable face in any of the {len(frames)} photo(s); nothing to compare.",
        )
    pixels, mask = frames_tensor(frames, spec)
    probability = float(
        np.asarray(model.predict_on_batch({FRAMES_INPUT: pixels, MASK_INPUT: mask})).ravel()[0]
    )
    progress(95)
    flags = [] if len(used) >= MIN_TREND_FRAMES else ["insufficient_frames"]
    if flags:
        outcome = "undetermined"
    else:
        outcome = spec.classes[1] if probability >= 0.5 else spec.classes[0]
    result = {
        "p_improving": round(probability, 4),
        "outcome": outcome,
        "flags": flags,
        "frames_used": used,
        "frames_masked": [frame.position for frame in frames if frame.crop is None],
        "frames": [
            {
                "position": frame.position,
                "taken_at": frame.taken_at,
                "used": frame.crop is not None,
                "reason": frame.missing_reason,
            }
            for frame in frames
        ],
    }
    artifacts = [ArtifactData("sequence.png", "image/png", strip_png(frames))]
    return PipelineOutput(result, artifacts, identity)
