"""A small image classifier in Keras 3 (backend-neutral): convolution blocks, pooling, softmax."""

from __future__ import annotations

import keras
from keras import layers


def build_classifier(
    input_shape: tuple[int, int, int],
    num_classes: int,
    base_filters: int = 16,
    blocks: int = 4,
    name: str = "image_classifier",
) -> keras.Model:
    """Conv-ReLU x2 and max pooling per block, global average pooling, softmax.

    No batch normalisation: with ~600 training images its moving statistics lag the weights,
    and the first version of this model predicted one class for every validation image.
    """
    inputs = keras.Input(input_shape)
    x = inputs
    for block in range(blocks):
        for _ in range(2):
            x = layers.Conv2D(
                base_filters * 2**block, 3, padding="same", activation="relu",
                kernel_initializer="he_normal",
            )(x)  # fmt: skip
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)
