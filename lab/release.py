"""The trainers' release step: a registry version folder (weights, manifest) and the command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from models.model_registry import MANIFEST_NAME, file_sha256


def command_line(module: str) -> str:
    """How this run was started, as the model cards write it: ``python -m module args``."""
    return f"python -m {module} " + " ".join(sys.argv[1:])


def save_release(model: Any, folder: Path, fields: dict[str, Any]) -> Path:
    """Save a Keras model (no optimizer state) and its manifest as a registry version folder.

    ``fields`` holds everything but the file name and hash, which are filled in here. The model
    card is written by hand beside them (it explains the metrics; no trainer can).
    """
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "model.keras"
    model.save(weights)
    manifest = {"file": weights.name, "sha256": file_sha256(weights), **fields}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return weights


def release(model: Any, folder: Path | None, fields: dict[str, Any]) -> None:
    """Save the release when ``--release`` named a folder, and say where it went."""
    if folder is None:
        return
    save_release(model, folder, fields)
    print(f"released to {folder}")
