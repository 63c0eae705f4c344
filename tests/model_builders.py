"""Tiny real Keras models with known behaviour, saved into a registry folder for tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from models.model_registry import MANIFEST_NAME, file_sha256

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
    root: Path, name: str, version: str, model, classes: dict[int, str]
) -> Path:
    """Save the model and a manifest as ``root/name/version``; returns the weights path."""
    folder = root / name / version
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "model.keras"
    model.save(weights)
    manifest = {
        "file": weights.name,
        "sha256": file_sha256(weights),
        "input_height": INPUT_HEIGHT,
        "input_width": INPUT_WIDTH,
        "channels": 1,
        "preprocessing": "grayscale, bilinear resize to input size, intensities / 255",
        "classes": {str(index): label for index, label in classes.items()},
        "metrics": {},
    }
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    return weights


BINARY_CLASSES = {0: "background", 1: "object"}
THREE_CLASSES = {0: "rest", 1: "muscle", 2: "fat"}
