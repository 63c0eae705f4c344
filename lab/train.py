"""Train a model of the registry from its data.

python -m lab.train hc18-unet --data ../shared/datasets/hc18 --out /tmp/hc18-unet
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import keras
import numpy as np

from lab.batching import AugmentedBatches
from lab.hc18 import list_images, load_training_arrays, split_by_subject, write_split
from lab.release import command_line
from lab.training_log import write_training_log
from lab.unet import build_unet

SEED = 18


def augment_pairs(
    xs: np.ndarray, ys: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Flips, small shifts (applied to image and mask alike) and intensity jitter, per image."""
    for i in range(len(xs)):
        if rng.random() < 0.5:
            xs[i], ys[i] = xs[i, :, ::-1], ys[i, :, ::-1]
        if rng.random() < 0.5:
            xs[i], ys[i] = xs[i, ::-1], ys[i, ::-1]
        dy, dx = rng.integers(-12, 13, size=2)
        xs[i], ys[i] = np.roll(xs[i], (dy, dx), (0, 1)), np.roll(ys[i], (dy, dx), (0, 1))
        gamma = math.exp(rng.uniform(-0.3, 0.3))
        gain = rng.uniform(0.8, 1.2)
        xs[i] = np.clip(gain * xs[i] ** gamma, 0.0, 1.0)
    return xs, ys


def dice_coefficient(y_true: keras.KerasTensor, y_pred: keras.KerasTensor) -> keras.KerasTensor:
    """Dice of the thresholded prediction, per batch."""
    ops = keras.ops
    predicted = ops.cast(y_pred >= 0.5, "float32")
    overlap = ops.sum(y_true * predicted)
    return (2 * overlap + 1.0) / (ops.sum(y_true) + ops.sum(predicted) + 1.0)


def dice_bce_loss(y_true: keras.KerasTensor, y_pred: keras.KerasTensor) -> keras.KerasTensor:
    """Binary cross-entropy plus soft Dice loss."""
    ops = keras.ops
    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
    overlap = ops.sum(y_true * y_pred)
    soft_dice = (2 * overlap + 1.0) / (ops.sum(y_true) + ops.sum(y_pred) + 1.0)
    return bce + 1.0 - soft_dice


def train_hc18_unet(args: argparse.Namespace) -> None:
    """Train the fetal-head U-Net on the HC18 training split, keep the best validation epoch."""
    keras.utils.set_random_seed(SEED)
    train, validation = split_by_subject(list_images(args.data))
    write_split(train, validation)
    height, width = args.input_height, args.input_width
    x_train, y_train = load_training_arrays(train, height, width, args.soft_targets)
    print(f"train {len(train)} images, validation {len(validation)}; input {height}x{width}")

    model = build_unet((height, width, 1), base_filters=args.base_filters, depth=args.depth)
    if args.init_weights:
        # The U-Net is fully convolutional: a model of the same filters and depth trained at
        # another input size has the same weight shapes, and is a head start at this one.
        model.set_weights(keras.models.load_model(args.init_weights, compile=False).get_weights())
        print(f"initial weights from {args.init_weights}")
    steps = args.epochs * math.ceil(len(x_train) / args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, steps, alpha=0.05)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule), loss=dice_bce_loss, metrics=[dice_coefficient]
    )
    print(f"parameters: {model.count_params()}")
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / f"{args.model_name}.keras"
    batches = AugmentedBatches(x_train, y_train, args.batch_size, SEED, augment_pairs)
    started = time.perf_counter()
    if args.keep == "last":
        # Nothing is chosen on the validation split: it stays unseen until the evaluation.
        history = model.fit(batches, epochs=args.epochs, verbose=2)
        model.save(weights)
        best = args.epochs - 1
    else:
        x_val, y_val = load_training_arrays(validation, height, width, args.soft_targets)
        history = model.fit(
            batches,
            validation_data=(x_val, y_val),
            epochs=args.epochs,
            verbose=2,
            callbacks=[
                keras.callbacks.ModelCheckpoint(
                    weights, monitor="val_dice_coefficient", mode="max", save_best_only=True
                )
            ],
        )
        best = int(np.argmax(history.history["val_dice_coefficient"]))
    seconds = time.perf_counter() - started
    write_training_log(
        args.out,
        history.history,
        model=args.model_name,
        command=args.command_line,
        epochs=args.epochs,
        best_epoch=best + 1,
        kept=args.keep,
        soft_targets=args.soft_targets,
        init_weights=str(args.init_weights) if args.init_weights else None,
        input_height=height,
        input_width=width,
        base_filters=args.base_filters,
        depth=args.depth,
        parameters=model.count_params(),
        wall_time_s=round(seconds),
    )
    print(f"best epoch {best + 1}; wall time {seconds:.0f} s; weights {weights}")


TRAINERS = {"hc18-unet": train_hc18_unet}


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Train a ScanQueue model.")
    parser.add_argument("model_name", choices=sorted(TRAINERS))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--input-height", type=int, default=176)
    parser.add_argument("--input-width", type=int, default=256)
    parser.add_argument("--base-filters", type=int, default=12)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument(
        "--init-weights", type=Path, help="start from this .keras model's weights (same filters)"
    )
    parser.add_argument(
        "--soft-targets", action="store_true", help="area-resampled masks instead of 0/1"
    )
    parser.add_argument(
        "--keep",
        choices=("best", "last"),
        default="best",
        help="best validation Dice per epoch (uses the validation split to choose), or the "
        "last epoch (validation unseen)",
    )
    args = parser.parse_args()
    args.command_line = command_line("lab.train")
    TRAINERS[args.model_name](args)


if __name__ == "__main__":
    main()
