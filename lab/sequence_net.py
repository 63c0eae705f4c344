"""ConvLSTM over a time series of face crops with a frame mask (Keras 3, backend-neutral).

After the SkinCredible design (two ConvLSTM2D layers over face crops and a small dense head), but
the time axis is open: the model takes any number of frames up to the registry's maximum, and a
boolean mask says which frames are real. Masked frames are skipped by both recurrent layers (the
state carries over them), so their pixels cannot influence the output.
"""

from __future__ import annotations

import keras
from keras import layers

from pipelines.sequence import FRAMES_INPUT, MASK_INPUT


def build_sequence_model(
    max_frames: int = 30,
    frame_size: int = 64,
    channels: int = 3,
    filters: int = 16,
    name: str = "skin_trend_convlstm",
) -> keras.Model:
    """Frames (batch, max_frames, H, W, C) in 0-255 plus mask (batch, max_frames) -> P(improving).

    The time axis is fixed at ``max_frames``; shorter series are padded and masked. (An open time
    axis is what the mask makes unnecessary, and Keras 3.15's TimeDistributed under TensorFlow
    returns one time step for every length after a graph traced on a one-frame input.)
    """
    frames = keras.Input((max_frames, frame_size, frame_size, channels), name=FRAMES_INPUT)
    mask = keras.Input((max_frames,), dtype="bool", name=MASK_INPUT)
    x = layers.Rescaling(1.0 / 255.0)(frames)
    # Per-photo normalisation: lighting and exposure differ between photos, the condition does not.
    x = layers.LayerNormalization(axis=(2, 3, 4))(x)
    # A per-frame encoder shrinks each crop to 8x8 so the recurrent layers stay cheap on a CPU.
    for width in (filters, 2 * filters, 2 * filters):
        x = layers.TimeDistributed(
            layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")
        )(x)
    x = layers.ConvLSTM2D(filters, 3, padding="same", return_sequences=True)(x, mask=mask)
    x = layers.ConvLSTM2D(filters, 3, padding="same")(x, mask=mask)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(2 * filters, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    output = layers.Dense(1, activation="sigmoid", dtype="float32", name="p_improving")(x)
    return keras.Model({FRAMES_INPUT: frames, MASK_INPUT: mask}, output, name=name)
