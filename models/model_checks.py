"""What the importer checks of a loaded Keras model: the input it takes (reconciled with what
its owner declares), and its output on dummy inputs (probabilities of the declared classes,
shaped as the task's pipeline reads them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from pipelines.model_input import scale_pixels
from pipelines.sequence import FRAMES_INPUT, MASK_INPUT

# Softmax rows and sigmoid outputs are probabilities up to float32 rounding.
PROBABILITY_TOLERANCE = 1e-3
# Scans are read as 8-bit grayscale: one channel, or repeated to three for RGB-trained models.
IMAGE_CHANNELS = (1, 3)
SEQUENCE_CHANNELS = 3


class Declared(Protocol):
    """What the owner declares of the input (models.importer.ImportRequest has it)."""

    task: str
    input_size: tuple[int, int] | None
    channels: int | None


class ImportRefused(Exception):
    """The file or the declaration does not fit; the message says what and why."""


@dataclass(frozen=True)
class InputShape:
    """The model's input as ScanQueue feeds it."""

    height: int
    width: int
    channels: int
    max_frames: int = 0


def _dimension(what: str, model_value: int | None, declared: int | None, option: str) -> int:
    """One input dimension: the model's, checked against the declaration, or the declared one
    where the model takes any size."""
    if model_value is None:
        if declared is None:
            raise ImportRefused(f"the model takes any {what}: give {option}")
        return declared
    if declared is not None and declared != model_value:
        raise ImportRefused(f"the model's input {what} is {model_value}; {option} says {declared}")
    return int(model_value)


def _image_dimensions(shape: Sequence[int | None], declared: Declared) -> tuple[int, int, int]:
    height, width = declared.input_size or (None, None)
    return (
        _dimension("height", shape[0], height, "--input-size"),
        _dimension("width", shape[1], width, "--input-size"),
        _dimension("channel count", shape[2], declared.channels, "--channels"),
    )


def input_shape(model: Any, declared: Declared) -> InputShape:
    """The input the model takes, reconciled with the declaration; ImportRefused if they differ
    or ScanQueue cannot feed it."""
    inputs = {tensor.name.split(":")[0]: tuple(tensor.shape) for tensor in model.inputs}
    if declared.task == "sequence":
        frames, mask = inputs.get(FRAMES_INPUT), inputs.get(MASK_INPUT)
        if len(inputs) != 2 or frames is None or mask is None or len(frames) != 5:
            raise ImportRefused(
                f"a sequence model takes two inputs, {FRAMES_INPUT!r} (batch, frames, height, "
                f"width, channels) and {MASK_INPUT!r} (batch, frames); this one takes "
                f"{_describe_inputs(inputs)}"
            )
        if frames[1] is None:
            raise ImportRefused("the model takes any number of frames: it needs a fixed maximum")
        height, width, channels = _image_dimensions(frames[2:], declared)
        if channels != SEQUENCE_CHANNELS:
            raise ImportRefused(
                f"a sequence model takes RGB face crops: 3 channels, not {channels}"
            )
        return InputShape(height, width, channels, int(frames[1]))
    if len(inputs) != 1 or len(next(iter(inputs.values()))) != 4:
        raise ImportRefused(
            "an image model takes one input of shape (batch, height, width, channels); this one "
            f"takes {_describe_inputs(inputs)}"
        )
    height, width, channels = _image_dimensions(next(iter(inputs.values()))[1:], declared)
    if channels not in IMAGE_CHANNELS:
        raise ImportRefused(
            f"scans are fed as grayscale, 1 channel or repeated to 3; the model takes {channels}"
        )
    return InputShape(height, width, channels)


def _describe_inputs(inputs: dict[str, tuple[int | None, ...]]) -> str:
    return ", ".join(f"{name} {list(shape)}" for name, shape in inputs.items()) or "none"


def dummy_batch(shape: InputShape, input_scale: str) -> Any:
    """Three inputs of the declared shape on the declared scale: black, white and noise."""
    frame = (shape.height, shape.width, shape.channels)
    noise = np.random.default_rng(14).integers(0, 256, frame, dtype=np.uint8)
    images = np.stack([np.zeros(frame, np.uint8), np.full(frame, 255, np.uint8), noise])
    if not shape.max_frames:
        return scale_pixels(images, input_scale)
    frames = np.repeat(images[:, None], shape.max_frames, axis=1)
    mask = np.ones((3, shape.max_frames), dtype=bool)
    mask[2, shape.max_frames // 2 :] = False  # a series shorter than the maximum
    return {FRAMES_INPUT: scale_pixels(frames, input_scale), MASK_INPUT: mask}


def predict(model: Any, batch: Any) -> np.ndarray:
    """The model's one output for the batch; ImportRefused for several outputs."""
    output = model.predict_on_batch(batch)
    if isinstance(output, list | tuple | dict):
        raise ImportRefused(f"the model has {len(output)} outputs; ScanQueue reads one")
    return np.asarray(output, dtype=np.float64)


def check_output(output: np.ndarray, task: str, classes: Sequence[str]) -> None:
    """The output must be probabilities of the declared classes, shaped as the task reads them."""
    count = len(classes)
    if not np.isfinite(output).all():
        raise ImportRefused("the model's output on a dummy input is not finite (NaN or infinity)")
    if task == "segmentation" and output.ndim == 3:
        output = output[..., None]
    expected = {"classification": 2, "segmentation": 4, "sequence": 2}[task]
    if output.ndim != expected:
        layout = {
            "classification": "(batch, classes)",
            "segmentation": "(batch, height, width, classes)",
            "sequence": "(batch, 1)",
        }[task]
        raise ImportRefused(
            f"a {task} model outputs {layout}; this one outputs shape {list(output.shape[1:])} "
            "per input"
        )
    units = output.shape[-1]
    if task == "sequence" and units != 1:
        raise ImportRefused(
            f"a sequence model outputs one sigmoid unit (the probability of {classes[1]!r}); "
            f"this one outputs {units}"
        )
    if units != count and not (units == 1 and count == 2):
        where = "pixel" if task == "segmentation" else "input"
        raise ImportRefused(
            f"the model outputs {units} unit(s) per {where}"
            f" but {count} classes are declared ({', '.join(classes)}); one sigmoid unit means "
            "two classes, otherwise one softmax unit per class"
        )
    low, high = float(output.min()), float(output.max())
    if low < -PROBABILITY_TOLERANCE or high > 1 + PROBABILITY_TOLERANCE:
        raise ImportRefused(
            f"the outputs range from {low:.4g} to {high:.4g}: not probabilities (is the last "
            "activation missing? logits need a sigmoid or softmax)"
        )
    if units > 1:
        sums = output.sum(axis=-1)
        worst = float(np.abs(sums - 1).max())
        if worst > PROBABILITY_TOLERANCE:
            raise ImportRefused(
                f"the {units} outputs do not sum to 1 (off by up to {worst:.4g}): one softmax "
                "over the classes is expected, not independent sigmoids"
            )
