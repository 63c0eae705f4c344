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

Run as ``flask --app webapp models import ...`` (the web app starts this module in a child
process: it never loads Keras itself), or ``python -m models.importer --registry DIR ...``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
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
from pipelines.model_input import INPUT_SCALES, SCALE_DESCRIPTIONS, scale_pixels
from pipelines.sequence import FRAMES_INPUT, MASK_INPUT

FORMATS = {".keras": "keras", ".h5": "h5", ".hdf5": "h5"}
STORED_NAME = "model.keras"
# Softmax rows and sigmoid outputs are probabilities up to float32 rounding.
PROBABILITY_TOLERANCE = 1e-3
# The converted .keras must answer like the .h5 it came from.
CONVERSION_TOLERANCE = 1e-5
# Scans are read as 8-bit grayscale: one channel, or repeated to three for RGB-trained models.
IMAGE_CHANNELS = (1, 3)
SEQUENCE_CHANNELS = 3


class ImportRefused(Exception):
    """The file or the declaration does not fit; the message says what and why."""


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


@dataclass(frozen=True)
class InputShape:
    """The model's input as ScanQueue feeds it."""

    height: int
    width: int
    channels: int
    max_frames: int = 0


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


def _dimension(what: str, model_value: int | None, declared: int | None, option: str) -> int:
    """One input dimension: the model's, checked against the declaration, or the declared one
    where the model takes any size."""
    if model_value is None:
        if declared is None:
            raise ImportRefused(f"the model takes any {what}: give {option}")
        return declared
    if declared is not None and declared != model_value:
        raise ImportRefused(f"the model's input {what} is {model_value}; {option} says {declared}")
    return int(model_value)


def _image_dimensions(shape: Sequence[int | None], request: ImportRequest) -> tuple[int, int, int]:
    height, width = request.input_size or (None, None)
    return (
        _dimension("height", shape[0], height, "--input-size"),
        _dimension("width", shape[1], width, "--input-size"),
        _dimension("channel count", shape[2], request.channels, "--channels"),
    )


def input_shape(model: Any, request: ImportRequest) -> InputShape:
    """The input the model takes, reconciled with the declaration; ImportRefused if they differ
    or ScanQueue cannot feed it."""
    inputs = {tensor.name.split(":")[0]: tuple(tensor.shape) for tensor in model.inputs}
    if request.task == "sequence":
        frames, mask = inputs.get(FRAMES_INPUT), inputs.get(MASK_INPUT)
        if len(inputs) != 2 or frames is None or mask is None or len(frames) != 5:
            raise ImportRefused(
                f"a sequence model takes two inputs, {FRAMES_INPUT!r} (batch, frames, height, "
                f"width, channels) and {MASK_INPUT!r} (batch, frames); this one takes "
                f"{_describe_inputs(inputs)}"
            )
        if frames[1] is None:
            raise ImportRefused("the model takes any number of frames: it needs a fixed maximum")
        height, width, channels = _image_dimensions(frames[2:], request)
        if channels != SEQUENCE_CHANNELS:
            raise ImportRefused(
                f"a sequence model takes RGB face crops: 3 channels, not {channels}"
            )
        return InputShape(height, width, channels, int(frames[1]))
    if len(inputs) != 1 or len(next(iter(inputs.values()))) != 4:
        raise ImportRefused(
            "an image model takes one input of shape (batch, height, width, channels); this one "
            f"takes {_describe_inputs(inputs)}"
        )
    height, width, channels = _image_dimensions(next(iter(inputs.values()))[1:], request)
    if channels not in IMAGE_CHANNELS:
        raise ImportRefused(
            f"scans are fed as grayscale, 1 channel or repeated to 3; the model takes {channels}"
        )
    return InputShape(height, width, channels)


def _describe_inputs(inputs: dict[str, tuple[int | None, ...]]) -> str:
    return ", ".join(f"{name} {list(shape)}" for name, shape in inputs.items()) or "none"


def dummy_batch(shape: InputShape, input_scale: str) -> Any:
    """Three inputs of the declared shape on the declared scale: black, white and noise."""
    frame = (shape.height, shape.width, shape.channels)
    noise = np.random.default_rng(14).integers(0, 256, frame, dtype=np.uint8)
    images = np.stack([np.zeros(frame, np.uint8), np.full(frame, 255, np.uint8), noise])
    if not shape.max_frames:
        return scale_pixels(images, input_scale)
    frames = np.repeat(images[:, None], shape.max_frames, axis=1)
    mask = np.ones((3, shape.max_frames), dtype=bool)
    mask[2, shape.max_frames // 2 :] = False  # a series shorter than the maximum
    return {FRAMES_INPUT: scale_pixels(frames, input_scale), MASK_INPUT: mask}


def predict(model: Any, batch: Any) -> np.ndarray:
    """The model's one output for the batch; ImportRefused for several outputs."""
    output = model.predict_on_batch(batch)
    if isinstance(output, list | tuple | dict):
        raise ImportRefused(f"the model has {len(output)} outputs; ScanQueue reads one")
    return np.asarray(output, dtype=np.float64)


def check_output(output: np.ndarray, task: str, classes: Sequence[str]) -> None:
    """The output must be probabilities of the declared classes, shaped as the task reads them."""
    count = len(classes)
    if not np.isfinite(output).all():
        raise ImportRefused("the model's output on a dummy input is not finite (NaN or infinity)")
    if task == "segmentation" and output.ndim == 3:
        output = output[..., None]
    expected = {"classification": 2, "segmentation": 4, "sequence": 2}[task]
    if output.ndim != expected:
        layout = {
            "classification": "(batch, classes)",
            "segmentation": "(batch, height, width, classes)",
            "sequence": "(batch, 1)",
        }[task]
        raise ImportRefused(
            f"a {task} model outputs {layout}; this one outputs shape {list(output.shape[1:])} "
            "per input"
        )
    units = output.shape[-1]
    if task == "sequence" and units != 1:
        raise ImportRefused(
            f"a sequence model outputs one sigmoid unit (the probability of {classes[1]!r}); "
            f"this one outputs {units}"
        )
    if units != count and not (units == 1 and count == 2):
        where = "pixel" if task == "segmentation" else "input"
        raise ImportRefused(
            f"the model outputs {units} unit(s) per {where}"
            f" but {count} classes are declared ({', '.join(classes)}); one sigmoid unit means "
            "two classes, otherwise one softmax unit per class"
        )
    low, high = float(output.min()), float(output.max())
    if low < -PROBABILITY_TOLERANCE or high > 1 + PROBABILITY_TOLERANCE:
        raise ImportRefused(
            f"the outputs range from {low:.4g} to {high:.4g}: not probabilities (is the last "
            "activation missing? logits need a sigmoid or softmax)"
        )
    if units > 1:
        sums = output.sum(axis=-1)
        worst = float(np.abs(sums - 1).max())
        if worst > PROBABILITY_TOLERANCE:
            raise ImportRefused(
                f"the {units} outputs do not sum to 1 (off by up to {worst:.4g}): one softmax "
                "over the classes is expected, not independent sigmoids"
            )


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


def parse_input_size(value: str | None) -> tuple[int, int] | None:
    """``HEIGHTxWIDTH`` (e.g. 128x192) as (height, width)."""
    if value is None:
        return None
    height, sep, width = value.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit() or not int(height) or not int(width):
        raise click.BadParameter("HEIGHTxWIDTH in pixels, e.g. 128x192", param_hint="--input-size")
    return int(height), int(width)


def read_metrics(path: Path | None) -> dict[str, Any]:
    """The --metrics file: a JSON object of validation metrics."""
    if path is None:
        return {}
    try:
        metrics = json.loads(path.read_text())
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--metrics") from None
    if not isinstance(metrics, dict):
        raise click.BadParameter("a JSON object is expected", param_hint="--metrics")
    return metrics


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--name", required=True, help="Registry name, e.g. chest-xray.")
@click.option("--version", "version", required=True, help="A new version number, e.g. 1.0.0.")
@click.option("--task", type=click.Choice(TASKS), required=True)
@click.option("--classes", required=True, help="Class names in output order, comma-separated.")
@click.option("--input-size", help="HEIGHTxWIDTH the model takes (default: its input shape).")
@click.option("--channels", type=int, help="Input channels (default: the model's).")
@click.option(
    "--preprocess",
    type=click.Choice(sorted(INPUT_SCALES)),
    help="Input scale: unit = /255, raw = 0-255, symmetric = -1..1 "
    "(default: unit; raw for sequence models).",
)
@click.option("--uncertain-below", type=float, help="Classifiers: 'uncertain' below this.")
@click.option(
    "--card", type=click.Path(dir_okay=False, path_type=Path), help="Model card (markdown)."
)
@click.option(
    "--metrics",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Validation metrics (a JSON object) for the manifest.",
)
def import_command(
    file: Path,
    registry: Path,
    name: str,
    version: str,
    task: str,
    classes: str,
    input_size: str | None,
    channels: int | None,
    preprocess: str | None,
    uncertain_below: float | None,
    card: Path | None,
    metrics: Path | None,
) -> None:
    """Check a Keras model file and add it to the registry as a new version."""
    request = ImportRequest(
        source=file,
        name=name,
        version=version,
        task=task,
        classes=tuple(classes.split(",")),
        input_size=parse_input_size(input_size),
        channels=channels,
        preprocess=preprocess,
        uncertain_below=uncertain_below,
        card=card,
        metrics=read_metrics(metrics),
    )
    try:
        manifest = import_model(request, registry)
    except ImportRefused as exc:
        raise click.ClickException(f"{file.name} refused: {exc}") from None
    folder = manifest.weights_path.parent
    click.echo(
        f"imported {manifest.name} {manifest.version}: {manifest.task}, classes "
        f"{', '.join(manifest.class_names)}, input {manifest.input_height}x"
        f"{manifest.input_width}x{manifest.channels} ({manifest.input_scale}), sha256 "
        f"{manifest.sha256[:12]}… in {folder}"
    )
    if card is None:
        click.echo(f"complete its model card: {manifest.card_path}")


if __name__ == "__main__":
    import_command()
