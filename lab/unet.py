"""U-Net in Keras 3 (backend-neutral: runs under TensorFlow here, JAX on a GPU machine)."""

from __future__ import annotations

import keras
from keras import layers


def _conv_block(x: keras.KerasTensor, filters: int) -> keras.KerasTensor:
    """Two 3x3 convolutions with batch norm and ReLU."""
    for _ in range(2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    return x


def build_unet(
    input_shape: tuple[int, int, int],
    base_filters: int = 12,
    depth: int = 4,
    num_classes: int = 1,
    name: str = "unet",
) -> keras.Model:
    """A U-Net: sigmoid output for one foreground class, softmax over classes otherwise.

    Height and width must be divisible by 2**depth.
    """
    height, width = input_shape[:2]
    if height % 2**depth or width % 2**depth:
        raise ValueError(f"input {height}x{width} is not divisible by 2**{depth}")
    inputs = keras.Input(input_shape)
    skips = []
    x = inputs
    for level in range(depth):
        x = _conv_block(x, base_filters * 2**level)
        skips.append(x)
        x = layers.MaxPooling2D()(x)
    x = _conv_block(x, base_filters * 2**depth)
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(base_filters * 2**level, 2, strides=2, padding="same")(x)
        x = layers.Concatenate()([x, skips[level]])
        x = _conv_block(x, base_filters * 2**level)
    activation = "sigmoid" if num_classes == 1 else "softmax"
    outputs = layers.Conv2D(num_classes, 1, activation=activation, dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)
