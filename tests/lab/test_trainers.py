"""The training commands in the model cards still run: one short epoch each, released and loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from lab.train_classifier import MODEL_NAME as TRIMESTER_MODEL
from lab.train_sequence import MODEL_NAME as SKIN_MODEL
from models.serving import LoadedModel, ModelCache
from tests.conftest import HC18_DIR

ROOT = Path(__file__).resolve().parents[2]


def run_trainer(module: str, *args: str) -> None:
    """Run ``python -m module args`` from the repository root, as the model cards do."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def check_release(work: Path, name: str, module: str) -> LoadedModel:
    """The run logged one epoch and its command; the release loads through the worker's path."""
    log = json.loads((work / "run" / "training.json").read_text())
    assert log["command"].startswith(f"python -m {module} ")
    assert log["best_epoch"] == 1
    assert all(len(values) == 1 for values in log["history"].values())
    # ModelCache checks the manifest's sha256 against the weights before loading them.
    loaded = ModelCache().get(work / "registry", name)
    assert loaded.manifest.version == "0.0.1"
    return loaded


def test_sequence_trainer_releases_a_loadable_model(tmp_path: Path) -> None:
    release = tmp_path / "registry" / SKIN_MODEL / "0.0.1"
    run_trainer(
        "lab.train_sequence",
        *("--out", str(tmp_path / "run"), "--release", str(release), "--version", "0.0.1"),
        *("--train", "16", "--validation", "8", "--test", "16", "--epochs", "1", "--filters", "4"),
    )
    loaded = check_release(tmp_path, SKIN_MODEL, "lab.train_sequence")
    manifest = loaded.manifest
    assert manifest.max_frames == 30
    assert set(manifest.classes.values()) == {"deteriorating", "improving"}
    assert manifest.metrics["test"]["series"] == 16
    frames = np.zeros((1, 30, manifest.input_height, manifest.input_width, 3), "uint8")
    mask = np.zeros((1, 30), "bool")
    mask[0, :3] = True
    p_improving = np.asarray(loaded.model.predict_on_batch({"frames": frames, "mask": mask}))
    assert p_improving.shape == (1, 1) and 0.0 <= float(p_improving[0, 0]) <= 1.0


def test_classifier_trainer_releases_a_loadable_model(tmp_path: Path) -> None:
    release = tmp_path / "registry" / TRIMESTER_MODEL / "0.0.1"
    run_trainer(
        "lab.train_classifier",
        *("--data", str(HC18_DIR), "--out", str(tmp_path / "run"), "--release", str(release)),
        *("--version", "0.0.1", "--epochs", "1", "--input-height", "32", "--input-width", "48"),
    )
    loaded = check_release(tmp_path, TRIMESTER_MODEL, "lab.train_classifier")
    manifest = loaded.manifest
    assert (manifest.input_height, manifest.input_width, manifest.channels) == (32, 48, 1)
    assert list(manifest.classes.values()) == ["first", "second", "third"]
    assert manifest.uncertain_below == 0.6
    # The recorded accuracy is the released model's on the validation split, recomputed here.
    from lab.hc18 import list_images, split_by_subject
    from lab.train_classifier import arrays

    _, validation = split_by_subject(list_images(HC18_DIR))
    x, y = arrays(validation, 32, 48)
    predicted = np.asarray(loaded.model.predict_on_batch(x)).argmax(axis=1)
    assert manifest.metrics["images"] == len(y) > 0
    assert manifest.metrics["accuracy"] == round(float((predicted == y).mean()), 4)
    probabilities = np.asarray(loaded.model.predict_on_batch(np.zeros((2, 32, 48, 1), "float32")))
    assert probabilities.shape == (2, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
