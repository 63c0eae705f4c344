"""Train and evaluate the skin-trend ConvLSTM on synthetic series, and release it to the registry.

python -m lab.train_sequence --out /tmp/skin-trend \
    --release models/registry/skin-trend-convlstm/1.0.0

Training, validation (checkpoint choice) and test (the reported metrics) series come from three
different seeds of ``lab.skin_sequences``; none of the test series was seen in training.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from lab.release import command_line, release
from lab.sequence_net import FRAMES_INPUT, MASK_INPUT, build_sequence_model
from lab.skin_sequences import FRAME_SIZE, MAX_FRAMES, SequenceBatch, base_faces, make_sequences
from lab.training_log import write_training_log

MODEL_NAME = "skin-trend-convlstm"
SEED = 30
CLASSES = {0: "deteriorating", 1: "improving"}
PREPROCESSING = (
    "aligned face crop (pipelines.faces, ArcFace 5-point template), RGB, bilinear resize to "
    f"{FRAME_SIZE}x{FRAME_SIZE}, uint8 0-255 (the model rescales); frames in time order, "
    "mask marks usable frames"
)
LENGTH_BUCKETS = ((1, 1), (2, 5), (6, 15), (16, 30))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positives) * len(negatives)))


def predict(model: keras.Model, batch: SequenceBatch, size: int = 32) -> np.ndarray:
    """P(improving) for every series."""
    out = [
        model.predict_on_batch(
            {FRAMES_INPUT: batch.frames[i : i + size], MASK_INPUT: batch.mask[i : i + size]}
        )
        for i in range(0, len(batch.labels), size)
    ]
    return np.concatenate(out).ravel()


def _scores(labels: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    return {
        "series": len(labels),
        "auc": round(roc_auc(labels, probability), 4),
        "accuracy": round(float(((probability >= 0.5) == labels).mean()), 4),
    }


def evaluate(model: keras.Model, test: SequenceBatch) -> dict[str, Any]:
    """AUC and accuracy overall and by number of usable frames, plus the one-frame case."""
    probability = predict(model, test)
    usable = test.mask.sum(axis=1)
    metrics: dict[str, Any] = {"test": _scores(test.labels, probability), "by_usable_frames": {}}
    for low, high in LENGTH_BUCKETS[1:]:
        picked = (usable >= low) & (usable <= high)
        metrics["by_usable_frames"][f"{low}-{high}"] = _scores(
            test.labels[picked], probability[picked]
        )
    # One usable frame shows a level, not a trend: keep only each series' first usable frame.
    single_mask = np.zeros_like(test.mask)
    single_mask[np.arange(len(usable)), test.mask.argmax(axis=1)] = True
    single = SequenceBatch(test.frames, single_mask, test.labels, test.lengths)
    metrics["by_usable_frames"]["1"] = _scores(test.labels, predict(model, single))
    return metrics


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Train the skin-trend ConvLSTM.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--validation", type=int, default=600)
    parser.add_argument("--test", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--release", type=Path, help="registry version folder to write")
    args = parser.parse_args()
    command = command_line("lab.train_sequence")

    keras.utils.set_random_seed(SEED)
    faces = base_faces()
    started = time.perf_counter()
    train = make_sequences(args.train, SEED, faces)
    validation = make_sequences(args.validation, SEED + 1, faces)
    test = make_sequences(args.test, SEED + 2, faces)
    print(
        f"generated {args.train}/{args.validation}/{args.test} series in "
        f"{time.perf_counter() - started:.0f} s"
    )

    model = build_sequence_model(MAX_FRAMES, FRAME_SIZE, 3, args.filters)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.out / "best.keras"
    started = time.perf_counter()
    history = model.fit(
        {FRAMES_INPUT: train.frames, MASK_INPUT: train.mask},
        train.labels,
        validation_data=(
            {FRAMES_INPUT: validation.frames, MASK_INPUT: validation.mask},
            validation.labels,
        ),
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=2,
        callbacks=[
            keras.callbacks.ModelCheckpoint(
                checkpoint, monitor="val_auc", mode="max", save_best_only=True
            ),
            keras.callbacks.ReduceLROnPlateau(monitor="val_auc", mode="max", patience=2),
        ],
    )
    seconds = time.perf_counter() - started
    best = keras.saving.load_model(checkpoint, compile=False)
    metrics = evaluate(best, test)
    write_training_log(
        args.out,
        history.history,
        command=command,
        wall_time_s=round(seconds),
        best_epoch=int(np.argmax(history.history["val_auc"])) + 1,
        parameters=best.count_params(),
        **metrics,
    )
    print(json.dumps(metrics, indent=1))
    release(
        best,
        args.release,
        {
            "name": MODEL_NAME,
            "version": args.version,
            "task": "sequence",
            "input_height": FRAME_SIZE,
            "input_width": FRAME_SIZE,
            "channels": 3,
            "max_frames": MAX_FRAMES,
            "preprocessing": PREPROCESSING,
            "classes": {str(k): v for k, v in CLASSES.items()},
            "metrics": {
                "data": "synthetic series (lab/skin_sequences.py), seeds "
                f"{SEED}/{SEED + 1}/{SEED + 2} for train/validation/test",
                **metrics,
            },
        },
    )


if __name__ == "__main__":
    main()
