"""Tiny real Keras models with known behaviour, saved into a registry folder for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lab.release import save_release

INPUT_HEIGHT, INPUT_WIDTH = 16, 24


def _pixelwise_model(kernel: list[float], bias: list[float], activation: str):
    """A 1x1 convolution: each output channel is activation(kernel * intensity + bias)."""
    import keras

    inputs = keras.Input((INPUT_HEIGHT, INPUT_WIDTH, 1))
    layer = keras.layers.Conv2D(len(kernel), 1, activation=activation)
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([np.array(kernel, dtype=np.float32).reshape(1, 1, 1, -1), np.array(bias)])
    return model


def bright_pixel_model():
    """Binary: foreground where intensity > 0.5 (sigmoid(40x - 20))."""
    return _pixelwise_model([40.0], [-20.0], "sigmoid")


def three_level_model():
    """Three classes: dark (< 1/3), mid (1/3..2/3), bright (> 2/3), as softmax."""
    return _pixelwise_model([0.0, 90.0, 180.0], [0.0, -30.0, -90.0], "softmax")


def write_registry_model(
    root: Path,
    name: str,
    version: str,
    model,
    classes: dict[int, str],
    task: str = "segmentation",
    **fields: object,
) -> Path:
    """Save the model and a manifest as ``root/name/version``; returns the weights path."""
    return save_release(
        model,
        root / name / version,
        {
            "task": task,
            "input_height": INPUT_HEIGHT,
            "input_width": INPUT_WIDTH,
            "channels": 1,
            "preprocessing": "grayscale, bilinear resize to input size, intensities / 255",
            "classes": {str(index): label for index, label in classes.items()},
            "metrics": {},
            **fields,
        },
    )


SEQUENCE_FRAME = 16
SEQUENCE_MAX_FRAMES = 30
TREND_CLASSES = {0: "deteriorating", 1: "improving"}


def tiny_sequence_model():
    """The real sequence architecture at toy size, with seeded random weights."""
    import keras

    from lab.sequence_net import build_sequence_model

    # A seed whose random weights leave no dead path from the frames to the output.
    keras.utils.set_random_seed(1)
    return build_sequence_model(SEQUENCE_MAX_FRAMES, frame_size=SEQUENCE_FRAME, filters=8)


def write_sequence_model(root: Path, name: str, version: str = "1.0.0") -> Path:
    """Save the tiny sequence model as a registry version with its frame size and maximum."""
    return write_registry_model(
        root,
        name,
        version,
        tiny_sequence_model(),
        TREND_CLASSES,
        "sequence",
        input_height=SEQUENCE_FRAME,
        input_width=SEQUENCE_FRAME,
        channels=3,
        max_frames=SEQUENCE_MAX_FRAMES,
    )


BINARY_CLASSES = {0: "background", 1: "object"}
THREE_CLASSES = {0: "rest", 1: "muscle", 2: "fat"}


TRIMESTER_CLASSES = {0: "first", 1: "second", 2: "third"}


def mean_intensity_classifier():
    """Three classes by mean intensity (dark, mid, bright): softmax of [0, 20m - 8, 40m - 24]."""
    import keras

    inputs = keras.Input((INPUT_HEIGHT, INPUT_WIDTH, 1))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(inputs, dense(mean))
    dense.set_weights(
        [np.array([[0.0, 20.0, 40.0]], dtype=np.float32), np.array([0.0, -8.0, -24.0])]
    )
    return model


def write_classifier(root: Path, name: str, uncertain_below: float | None = 0.6) -> Path:
    """Save the mean-intensity classifier as a registry version."""
    fields: dict[str, object] = (
        {} if uncertain_below is None else {"uncertain_below": uncertain_below}
    )
    return write_registry_model(
        root,
        name,
        "1.0.0",
        mean_intensity_classifier(),
        TRIMESTER_CLASSES,
        "classification",
        **fields,
    )
