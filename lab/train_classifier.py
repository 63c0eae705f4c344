"""Train, evaluate and release the HC18 trimester classifier.

python -m lab.train_classifier --data ../shared/datasets/hc18 --out /tmp/hc18-trimester \
    --release models/registry/hc18-trimester/1.0.0

Labels: the trimester of the gestational age that Hadlock's formula gives for the image's
reference head circumference (lab/trimester.py). Split: the HC18 subject-level split of the
segmentation model (lab/hc18_split.json), so no subject is in both sets.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from lab.batching import AugmentedBatches
from lab.classifier_net import build_classifier
from lab.hc18 import Hc18Image, list_images, load_images, split_by_subject
from lab.release import command_line, release
from lab.training_log import write_training_log
from lab.trimester import TRIMESTERS, trimester_index

MODEL_NAME = "hc18-trimester"
SEED = 7
PREPROCESSING = "grayscale 8-bit, bilinear resize to input size, intensities / 255"
UNCERTAIN_BELOW = 0.6


def arrays(images: list[Hc18Image], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Images in [0, 1] as (N, H, W, 1) float32 and trimester labels (N,)."""
    y = np.array([trimester_index(i.head_circumference_mm) for i in images])
    return load_images(images, height, width), y


def augment_images(
    xs: np.ndarray, ys: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Left-right flips, small shifts and intensity jitter per image; labels unchanged."""
    for i in range(len(xs)):
        if rng.random() < 0.5:
            xs[i] = xs[i, :, ::-1]
        dy, dx = rng.integers(-8, 9, size=2)
        xs[i] = np.roll(xs[i], (dy, dx), (0, 1))
        xs[i] = np.clip(rng.uniform(0.8, 1.2) * xs[i] ** math.exp(rng.uniform(-0.3, 0.3)), 0, 1)
    return xs, ys


def confusion(truth: np.ndarray, predicted: np.ndarray, classes: int) -> list[list[int]]:
    """Rows: true class; columns: predicted class."""
    matrix = np.zeros((classes, classes), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        matrix[t, p] += 1
    return matrix.tolist()


def evaluate(model: keras.Model, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Accuracy, balanced accuracy, confusion matrix, and how many fall below the threshold."""
    probabilities = np.concatenate(
        [model.predict_on_batch(x[i : i + 32]) for i in range(0, len(x), 32)]
    )
    predicted = probabilities.argmax(axis=1)
    matrix = np.array(confusion(y, predicted, len(TRIMESTERS)))
    recalls = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    confident = probabilities.max(axis=1) >= UNCERTAIN_BELOW
    return {
        "images": len(y),
        "accuracy": round(float((predicted == y).mean()), 4),
        "balanced_accuracy": round(float(recalls.mean()), 4),
        "recall": {name: round(float(r), 4) for name, r in zip(TRIMESTERS, recalls, strict=True)},
        "confusion_matrix": {
            "rows_true_cols_predicted": list(TRIMESTERS),
            "counts": matrix.tolist(),
        },
        "uncertain_below": UNCERTAIN_BELOW,
        "uncertain_fraction": round(float(1 - confident.mean()), 4),
        "accuracy_when_confident": round(float((predicted == y)[confident].mean()), 4),
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Train the HC18 trimester classifier.")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--input-height", type=int, default=128)
    parser.add_argument("--input-width", type=int, default=192)
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--release", type=Path)
    args = parser.parse_args()
    command = command_line("lab.train_classifier")

    keras.utils.set_random_seed(SEED)
    train, validation = split_by_subject(list_images(args.data))
    x_train, y_train = arrays(train, args.input_height, args.input_width)
    x_val, y_val = arrays(validation, args.input_height, args.input_width)
    counts = np.bincount(y_train, minlength=len(TRIMESTERS))
    # Balanced class weights: the second trimester is five times as common as the others.
    weights = {c: float(len(y_train) / (len(TRIMESTERS) * n)) for c, n in enumerate(counts)}
    print(
        f"train {len(train)} ({counts.tolist()}), validation {len(validation)}; weights {weights}"
    )

    model = build_classifier((args.input_height, args.input_width, 1), len(TRIMESTERS))
    steps = args.epochs * math.ceil(len(x_train) / args.batch_size)
    model.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(args.learning_rate, steps, alpha=0.05)
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.out / "best.keras"
    started = time.perf_counter()
    history = model.fit(
        AugmentedBatches(x_train, y_train, args.batch_size, SEED, augment_images),
        validation_data=(x_val, y_val),
        epochs=args.epochs,
        class_weight=weights,
        verbose=2,
        callbacks=[
            keras.callbacks.ModelCheckpoint(checkpoint, monitor="val_loss", save_best_only=True)
        ],
    )
    seconds = time.perf_counter() - started
    best = keras.saving.load_model(checkpoint, compile=False)
    metrics = evaluate(best, x_val, y_val)
    write_training_log(
        args.out,
        history.history,
        command=command,
        wall_time_s=round(seconds),
        best_epoch=int(np.argmin(history.history["val_loss"])) + 1,
        parameters=best.count_params(),
        train_counts=counts.tolist(),
        class_weights=weights,
        validation=metrics,
    )
    print(json.dumps(metrics, indent=1))
    release(
        best,
        args.release,
        {
            "name": MODEL_NAME,
            "version": args.version,
            "task": "classification",
            "input_height": args.input_height,
            "input_width": args.input_width,
            "channels": 1,
            "preprocessing": PREPROCESSING,
            "classes": {str(i): name for i, name in enumerate(TRIMESTERS)},
            "uncertain_below": UNCERTAIN_BELOW,
            "metrics": {"split": "validation (lab/hc18_split.json)", **metrics},
        },
    )


if __name__ == "__main__":
    main()
