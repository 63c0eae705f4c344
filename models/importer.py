"""Bring your own model: check a Keras file (``.keras``, or a legacy Keras 2 ``.h5``) against what
its owner declares, and add it to the registry as a new version with a manifest and a card.

The model is loaded, run on dummy inputs of the declared shape and scale, and its output checked
against the declared classes (one sigmoid unit is a two-class model; several units must be
probabilities that sum to 1). Anything that does not fit is refused with what and why. The
version folder is built in a scratch folder inside the registry and renamed into place, so a
refused or failed import leaves nothing behind.

A legacy ``.h5`` is stored converted to ``.keras``: workers then load one format only, the
native one, whose loader does not run code from the file (safe mode); the conversion is
checked to give the same outputs, and the manifest keeps the original's name and sha256.

Run as ``flask --app webapp models import ...`` (the web app starts ``models.import_cli`` in a
child process: it never loads Keras itself), or ``python -m models.import_cli --registry DIR``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.model_registry import (
    CARD_NAME,
    DEFAULT_INPUT_SCALE,
    MANIFEST_NAME,
    MAX_CARD_CHARS,
    MODEL_NAME,
    TASKS,
    VERSION,
    ModelManifest,
    ModelRegistry,
    file_sha256,
)
from models.model_checks import (
    ImportRefused,
    InputShape,
    check_output,
    dummy_batch,
    input_shape,
    predict,
)
from pipelines.model_input import INPUT_SCALES, SCALE_DESCRIPTIONS

FORMATS = {".keras": "keras", ".h5": "h5", ".hdf5": "h5"}
STORED_NAME = "model.keras"
# The converted .keras must answer like the .h5 it came from.
CONVERSION_TOLERANCE = 1e-5


@dataclass(frozen=True)
class ImportRequest:
    """What the owner declares about the model file."""

    source: Path
    name: str
    version: str
    task: str
    classes: tuple[str, ...]
    # (height, width); None: take it from the model's input shape.
    input_size: tuple[int, int] | None = None
    channels: int | None = None
    # An input scale (pipelines.model_input); None: the task's default.
    preprocess: str | None = None
    uncertain_below: float | None = None
    card: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def input_scale(self) -> str:
        """The declared input scale, or the task's default."""
        return self.preprocess or DEFAULT_INPUT_SCALE[self.task]


def check_request(request: ImportRequest, registry: ModelRegistry) -> str:
    """Refuse a declaration that cannot describe a registry model; the file's format."""
    if not MODEL_NAME.match(request.name):
        raise ImportRefused(
            f"--name {request.name!r}: lower-case letters, digits, '.', '_' and '-', at most 64, "
            "starting with a letter or digit (it goes into URLs and folder names)"
        )
    if not VERSION.match(request.version):
        raise ImportRefused(f"--version {request.version!r}: numbers and dots, such as 1.0.0")
    if request.version in registry.versions(request.name):
        raise ImportRefused(
            f"{request.name} {request.version} is already in the registry; versions never "
            "change once jobs may have used them: import it as a new version"
        )
    if request.task not in TASKS:
        raise ImportRefused(f"--task {request.task!r}: one of {', '.join(TASKS)}")
    names = [name.strip() for name in request.classes]
    if len(names) < 2 or any(not name for name in names) or len(set(names)) != len(names):
        raise ImportRefused(
            f"--classes {','.join(request.classes)!r}: at least two distinct, non-empty names, "
            "in the order of the model's outputs"
        )
    if request.task == "sequence" and len(names) != 2:
        raise ImportRefused(
            "a sequence model answers one probability (of the second class): give two --classes"
        )
    if request.uncertain_below is not None:
        if request.task != "classification":
            raise ImportRefused("--uncertain-below is for classification models only")
        if not 0 <= request.uncertain_below <= 1:
            raise ImportRefused("--uncertain-below: a probability from 0 to 1")
    if request.input_scale not in INPUT_SCALES:
        raise ImportRefused(f"--preprocess: one of {', '.join(INPUT_SCALES)}")
    if request.card is not None and not request.card.is_file():
        raise ImportRefused(f"--card {request.card}: no such file")
    suffix = request.source.suffix.lower()
    if suffix not in FORMATS:
        raise ImportRefused(
            f"{request.source.name}: a .keras file or a legacy Keras 2 .h5/.hdf5 file is "
            "expected (a SavedModel folder or a weights-only file is not a whole model)"
        )
    if not request.source.is_file():
        raise ImportRefused(f"{request.source}: no such file")
    return FORMATS[suffix]


def load_keras(path: Path) -> Any:
    """The whole model in the file, without its optimizer; ImportRefused if Keras cannot."""
    import keras  # only here: importing the module must stay cheap

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for files it cannot read
        raise ImportRefused(
            f"{path.name} cannot be loaded as a whole Keras model ({type(exc).__name__}: {exc}); "
            "save it with model.save(...) (custom layers or Lambda code are not supported)"
        ) from None


def preprocessing_text(task: str, shape: InputShape, input_scale: str) -> str:
    """The manifest's human description of the input the pipelines build."""
    if task == "sequence":
        source = "aligned face crop (pipelines.faces), RGB"
    elif shape.channels == 1:
        source = "grayscale 8-bit"
    else:
        source = "grayscale 8-bit repeated to 3 channels"
    return (
        f"{source}, bilinear resize to {shape.width}x{shape.height}, "
        f"{SCALE_DESCRIPTIONS[input_scale]}"
    )


def manifest_fields(
    request: ImportRequest, shape: InputShape, weights: Path, source_format: str, model: Any
) -> dict[str, Any]:
    """The manifest of the imported version."""
    import keras

    fields: dict[str, Any] = {
        "name": request.name,
        "version": request.version,
        "task": request.task,
        "file": weights.name,
        "sha256": file_sha256(weights),
        "input_height": shape.height,
        "input_width": shape.width,
        "channels": shape.channels,
        "input_scale": request.input_scale,
        "preprocessing": preprocessing_text(request.task, shape, request.input_scale),
        "classes": {str(index): name.strip() for index, name in enumerate(request.classes)},
        "metrics": request.metrics,
        "parameters": int(model.count_params()),
        "imported": {
            "from": request.source.name,
            "format": "legacy Keras 2 HDF5, converted to .keras"
            if source_format == "h5"
            else ".keras, stored unchanged",
            "sha256": file_sha256(request.source),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "keras": keras.__version__,
        },
    }
    if shape.max_frames:
        fields["max_frames"] = shape.max_frames
    if request.uncertain_below is not None:
        fields["uncertain_below"] = request.uncertain_below
    return fields


def card_template(fields: dict[str, Any]) -> str:
    """A model card with what the import knows, and the sections only the owner can write."""
    classes = ", ".join(f"`{name}`" for name in fields["classes"].values())
    size = f"{fields['input_width']}x{fields['input_height']}x{fields['channels']}"
    frames = f", up to {fields['max_frames']} frames" if fields.get("max_frames") else ""
    threshold = (
        f" Below {fields['uncertain_below']} the prediction is `uncertain`."
        if "uncertain_below" in fields
        else ""
    )
    return f"""# {fields["name"]} {fields["version"]}

> **To complete by the model's owner.** The import filled in what it could check; the sections
> marked *to complete* are what a reader needs before trusting the model.

**What it does.** A {fields["task"]} model; classes, in output order: {classes}.{threshold}
*To complete: the question it answers, for whom, and the images it expects.*

**Input.** {size}{frames}; {fields["preprocessing"]}.

**Weights.** `{fields["file"]}`, {fields["parameters"]:,} parameters, sha256
`{fields["sha256"]}`; imported from `{fields["imported"]["from"]}`
({fields["imported"]["format"]}).

## Data

*To complete: the source of the training images, their licence, how they were labelled, and the
split (subjects never in both training and validation).*

## Training

*To complete: the architecture, the command or notebook, epochs, augmentation.*

## Validation metrics

*To complete: the numbers on held-out data (accuracy, per-class recall, a confusion matrix), and
the same numbers in the manifest's `metrics`.*

## What it can and cannot be trusted for

*To complete: populations, devices and image types it was not trained on; not validated for
clinical use unless it was.*
"""


def card_text(request: ImportRequest, fields: dict[str, Any]) -> str:
    """The owner's card (--card), else the template to complete."""
    if request.card is None:
        return card_template(fields)
    text = request.card.read_text(encoding="utf-8", errors="strict")
    if len(text) > MAX_CARD_CHARS:
        raise ImportRefused(f"--card is longer than {MAX_CARD_CHARS} characters")
    return text


def build_version(request: ImportRequest, source_format: str, folder: Path) -> None:
    """Write the weights, manifest and card of the version into ``folder``."""
    weights = folder / STORED_NAME
    original = None
    if source_format == "h5":
        original = load_keras(request.source)
        original.save(weights)
    else:
        shutil.copyfile(request.source, weights)
    # Everything below is checked on the stored file: what the workers will load.
    model = load_keras(weights)
    shape = input_shape(model, request)
    batch = dummy_batch(shape, request.input_scale)
    output = predict(model, batch)
    check_output(output, request.task, request.classes)
    if original is not None:
        drift = float(np.abs(predict(original, batch) - output).max())
        if drift > CONVERSION_TOLERANCE:
            raise ImportRefused(f"the converted model's outputs differ by {drift:.3g}")
    fields = manifest_fields(request, shape, weights, source_format, model)
    (folder / MANIFEST_NAME).write_text(json.dumps(fields, indent=2) + "\n")
    (folder / CARD_NAME).write_text(card_text(request, fields), encoding="utf-8")


def import_model(request: ImportRequest, registry_root: Path) -> ModelManifest:
    """Check the model and add it to the registry as ``<root>/<name>/<version>``, all or
    nothing; ImportRefused says what does not fit and why."""
    registry = ModelRegistry(registry_root)
    source_format = check_request(request, registry)
    registry.root.mkdir(parents=True, exist_ok=True)
    model_folder = registry.root / request.name
    created = not model_folder.exists()
    # A dot-folder beside the models: the registry never lists it, and the rename is atomic.
    scratch = Path(tempfile.mkdtemp(prefix=".import-", dir=registry.root))
    try:
        build_version(request, source_format, scratch)
        model_folder.mkdir(exist_ok=True)
        target = model_folder / request.version
        try:
            os.rename(scratch, target)
        except OSError as exc:
            raise ImportRefused(f"cannot place the version at {target}: {exc}") from None
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        if created and model_folder.is_dir() and not any(model_folder.iterdir()):
            model_folder.rmdir()
        raise
    return registry.manifest(request.name, request.version)
