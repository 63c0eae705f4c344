"""Tiny real Keras models with known behaviour, saved into a registry folder for tests."""

from __future__ import annotations

import json
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


# Models as the apps ScanQueue grows out of saved them, with weights that make every output known.
SEX_CLASSES = ("female", "male")
SEX_INPUT = (16, 24, 1)
TISSUE_CLASSES = ("rest", "muscle", "fat")
TISSUE_INPUT = (32, 48, 1)
CXR_CLASSES = ("normal", "pneumonia", "covid")


def _keras2_layer(class_name: str, name: str, **config: object) -> dict:
    """A layer entry of a Keras 2 (tf.keras 2.x) model_config, in the old serialisation."""
    return {"class_name": class_name, "config": {"name": name, "trainable": True, **config}}


def write_keras2_sequential_h5(path: Path) -> Path:
    """A Sequential CNN with one sigmoid output, in the HDF5 layout Keras 2's ``model.save``
    wrote (written with h5py: no Keras 2 is installed here).

    Conv 3x3 (mean of the patch) -> max pooling -> flatten -> dense sigmoid: on a uniform image
    of intensity v (0..1) the output is sigmoid(40 v - 20), so dark is "female", bright "male".
    """
    import h5py

    height, width, channels = SEX_INPUT
    flat = ((height - 2) // 2) * ((width - 2) // 2)
    initializer = {"class_name": "GlorotUniform", "config": {"seed": None}}
    zeros = {"class_name": "Zeros", "config": {}}
    common = {"dtype": "float32", "kernel_initializer": initializer, "bias_initializer": zeros}
    common |= dict.fromkeys(
        ("kernel_regularizer", "bias_regularizer", "activity_regularizer"), None
    ) | dict.fromkeys(("kernel_constraint", "bias_constraint"), None)
    layers = [
        _keras2_layer(
            "InputLayer",
            "conv2d_input",
            batch_input_shape=[None, height, width, channels],
            dtype="float32",
            sparse=False,
            ragged=False,
        ),
        _keras2_layer(
            "Conv2D",
            "conv2d",
            batch_input_shape=[None, height, width, channels],
            filters=1,
            kernel_size=[3, 3],
            strides=[1, 1],
            padding="valid",
            data_format="channels_last",
            dilation_rate=[1, 1],
            groups=1,
            activation="relu",
            use_bias=True,
            **common,
        ),
        _keras2_layer(
            "MaxPooling2D",
            "max_pooling2d",
            dtype="float32",
            pool_size=[2, 2],
            padding="valid",
            strides=[2, 2],
            data_format="channels_last",
        ),
        _keras2_layer("Flatten", "flatten", dtype="float32", data_format="channels_last"),
        _keras2_layer("Dense", "dense", units=1, activation="sigmoid", use_bias=True, **common),
    ]
    weights = {
        "conv2d": {
            "kernel:0": np.full((3, 3, channels, 1), 1 / 9, dtype=np.float32),
            "bias:0": np.zeros(1, dtype=np.float32),
        },
        "dense": {
            "kernel:0": np.full((flat, 1), 40 / flat, dtype=np.float32),
            "bias:0": np.array([-20.0], dtype=np.float32),
        },
    }
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}
    training = {
        "loss": "binary_crossentropy",
        "metrics": ["accuracy"],
        "optimizer_config": {"class_name": "Adam", "config": {"learning_rate": 0.001}},
    }
    with h5py.File(path, "w") as handle:
        handle.attrs["keras_version"] = "2.4.0"
        handle.attrs["backend"] = "tensorflow"
        handle.attrs["model_config"] = json.dumps(config)
        handle.attrs["training_config"] = json.dumps(training)
        group = handle.create_group("model_weights")
        names = ["conv2d", "max_pooling2d", "flatten", "dense"]
        group.attrs["layer_names"] = [name.encode() for name in names]
        group.attrs["backend"] = "tensorflow"
        group.attrs["keras_version"] = "2.4.0"
        for name in names:
            layer = group.create_group(name)
            values = weights.get(name, {})
            layer.attrs["weight_names"] = [f"{name}/{key}".encode() for key in values]
            for key, value in values.items():
                layer.create_dataset(f"{name}/{key}", data=value)
    return path


def tissue_unet(fat_bias: float = -90.0):
    """A three-class U-Net (rest / muscle / fat) whose decoder reads only the skip connection's
    identity channel, so each pixel's class depends on its intensity x alone: the output is
    softmax([0, 90 x - 30, 180 x + fat_bias]) (rest below 1/3, muscle to 2/3, fat above with the
    default bias; -60 makes everything above 1/3 fat)."""
    import keras

    inputs = keras.Input(TISSUE_INPUT)
    encoder = keras.layers.Conv2D(4, 3, padding="same", activation="relu")
    bottleneck = keras.layers.Conv2D(8, 3, padding="same", activation="relu")
    decoder = keras.layers.Conv2D(4, 3, padding="same", activation="relu")
    head = keras.layers.Conv2D(len(TISSUE_CLASSES), 1, activation="softmax")
    skip = encoder(inputs)
    deep = keras.layers.UpSampling2D(2)(bottleneck(keras.layers.MaxPooling2D(2)(skip)))
    merged = keras.layers.Concatenate()([deep, skip])
    model = keras.Model(inputs, head(decoder(merged)))
    identity = np.zeros((3, 3, 1, 4), dtype=np.float32)
    identity[1, 1, 0, 0] = 1.0  # encoder channel 0 = the intensity
    encoder.set_weights([identity, np.zeros(4, dtype=np.float32)])
    bottleneck.set_weights([np.zeros((3, 3, 4, 8), np.float32), np.zeros(8, np.float32)])
    pass_skip = np.zeros((3, 3, 12, 4), dtype=np.float32)
    pass_skip[1, 1, 8, 0] = 1.0  # decoder channel 0 = the skip's channel 0 (after 8 deep ones)
    decoder.set_weights([pass_skip, np.zeros(4, dtype=np.float32)])
    kernel = np.zeros((1, 1, 4, 3), dtype=np.float32)
    kernel[0, 0, 0] = [0.0, 90.0, 180.0]
    head.set_weights([kernel, np.array([0.0, -30.0, fat_bias], dtype=np.float32)])
    return model


def write_manifest_only(
    root: Path, name: str, version: str, task: str, classes: tuple[str, ...], card: str | None
) -> Path:
    """A registry version whose weights are placeholder bytes: enough for everything that reads
    manifests only (the web), never loaded. Returns its folder."""
    folder = root / name / version
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"placeholder")
    manifest = {
        "file": "model.keras",
        "sha256": "0" * 64,
        "task": task,
        "input_height": INPUT_HEIGHT,
        "input_width": INPUT_WIDTH,
        "channels": 1,
        "classes": {str(index): label for index, label in enumerate(classes)},
        "metrics": {"accuracy": 0.9, "recall": {classes[0]: 0.8}},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    if card is not None:
        (folder / "MODEL_CARD.md").write_text(card)
    return folder
