"""The registry of versioned model weights: ``<MODEL_DIR>/<name>/<version>/manifest.json``.

A manifest names the weights file and its sha256, the task the model does, the input size and
channels, the input scale, the output classes and the validation metrics; ``MODEL_CARD.md``
beside it explains them. Models enter with ``flask --app webapp models import`` (or the
trainers' ``lab.release``); versions are never changed in place. Weights whose hash does not
match are refused. Plain files and JSON: the web reads it without any model code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.model_input import INPUT_SCALES
from pipelines.postprocessing_names import FITS, TEST_TIME_FLIPS

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
CARD_NAME = "MODEL_CARD.md"
# A card is shown on a page and in the API: one longer than this is cut.
MAX_CARD_CHARS = 200_000
# No leading zeros: 1.0.0 and 01.0.0 would be two folders of one version number.
VERSION = re.compile(r"^(0|[1-9]\d{0,5})(\.(0|[1-9]\d{0,5})){0,3}$")
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# What a model does; each job type that takes a model names the task it needs.
TASKS = ("classification", "segmentation", "sequence")
# The input scale a manifest without one means (what the pipelines did before it was named).
DEFAULT_INPUT_SCALE = {"classification": "unit", "segmentation": "unit", "sequence": "raw"}


class RegistryError(RuntimeError):
    """A model, version or weights file that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class ModelManifest:
    """What the registry knows about one model version."""

    name: str
    version: str
    weights_path: Path
    sha256: str
    task: str
    input_height: int
    input_width: int
    channels: int
    classes: dict[int, str]
    preprocessing: str = ""
    # How pixels become input values (pipelines.model_input.INPUT_SCALES).
    input_scale: str = "unit"
    metrics: dict[str, Any] = field(default_factory=dict)
    # How far (px) the object's true contour lies inside the predicted mask's boundary, when the
    # training masks include an annotation outline (HC18 masks do): measurements subtract it.
    boundary_offset_px: float = 0.0
    # Sequence models take (frames, mask) over at most this many frames; 0 for image models.
    max_frames: int = 0
    # Classifiers: below this top probability the prediction is "uncertain" (None: not set).
    uncertain_below: float | None = None
    # Segmentation: also predict on these flips of the input and average the probabilities
    # (names in pipelines.segmentation.TEST_TIME_FLIPS); empty: the plain prediction only.
    test_time_flips: tuple[str, ...] = ()
    # Head measurement: the ellipse fit stage 2 uses (pipelines.perimeter.FITS).
    ellipse_fit: str = "least_squares"

    @property
    def is_binary(self) -> bool:
        """One foreground class against background: the model outputs one sigmoid channel."""
        return len(self.classes) == 2

    @property
    def class_names(self) -> list[str]:
        """The class names in output order."""
        return [self.classes[index] for index in sorted(self.classes)]

    @property
    def card_path(self) -> Path:
        """The model card beside the manifest."""
        return self.weights_path.parent / CARD_NAME

    def card_text(self) -> str | None:
        """The model card's markdown (cut at MAX_CARD_CHARS), or None without one."""
        try:
            with self.card_path.open(encoding="utf-8", errors="replace") as handle:
                return handle.read(MAX_CARD_CHARS)
        except FileNotFoundError:
            return None


def _known(
    key: str, raw: dict[str, Any], known: Iterable[str], default: str | None = None
) -> tuple[str, ...]:
    """A manifest entry (one name or a list of names) checked against the known names."""
    value = raw.get(key, default)
    names = () if value is None else (value,) if isinstance(value, str) else tuple(value)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"{key}: unknown {unknown}; known: {', '.join(known)}")
    return names


def version_key(version: str) -> tuple[int, ...]:
    """Sort key of a version number: 1.10.0 after 1.9.3."""
    return tuple(int(part) for part in version.split("."))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_manifest(raw: dict[str, Any], name: str, version: str, folder: Path) -> ModelManifest:
    """A manifest's JSON as a ModelManifest; KeyError, TypeError or ValueError if it is bad."""
    task = raw["task"]
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}")
    input_scale = raw.get("input_scale") or DEFAULT_INPUT_SCALE[task]
    if input_scale not in INPUT_SCALES:
        raise ValueError(f"input_scale {input_scale!r} is not one of {', '.join(INPUT_SCALES)}")
    classes = {int(index): str(label) for index, label in raw["classes"].items()}
    if len(classes) < 2 or sorted(classes) != list(range(len(classes))):
        raise ValueError("classes must be numbered 0, 1, ... and be at least two")
    return ModelManifest(
        name=name,
        version=version,
        weights_path=folder / raw["file"],
        sha256=raw["sha256"],
        task=task,
        input_height=int(raw["input_height"]),
        input_width=int(raw["input_width"]),
        channels=int(raw["channels"]),
        classes=classes,
        preprocessing=raw.get("preprocessing", ""),
        input_scale=input_scale,
        metrics=raw.get("metrics", {}),
        boundary_offset_px=float(raw.get("boundary_offset_px", 0.0)),
        max_frames=int(raw.get("max_frames", 0)),
        uncertain_below=(
            float(raw["uncertain_below"]) if raw.get("uncertain_below") is not None else None
        ),
        test_time_flips=_known("test_time_flips", raw, TEST_TIME_FLIPS),
        ellipse_fit=_known("ellipse_fit", raw, FITS, "least_squares")[0],
    )


class ModelRegistry:
    """Look models up by name and version in a directory tree."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        """The models that have at least one version, by name (import scratch folders skipped)."""
        if not self.root.is_dir():
            return []
        return sorted(
            path.name
            for path in self.root.iterdir()
            if path.is_dir() and MODEL_NAME.match(path.name) and self.versions(path.name)
        )

    def versions(self, name: str) -> list[str]:
        """The versions of a model that have a manifest, oldest first."""
        folder = self.root / name
        found = [
            path.parent.name
            for path in folder.glob(f"*/{MANIFEST_NAME}")
            if VERSION.match(path.parent.name)
        ]
        return sorted(found, key=version_key)

    def manifest(self, name: str, version: str | None = None) -> ModelManifest:
        """The manifest of the given version, or of the newest one when version is None."""
        versions = self.versions(name) if MODEL_NAME.match(name) else []
        if not versions:
            raise RegistryError(f"no model {name!r} in {self.root}")
        chosen = version or versions[-1]
        if chosen not in versions:
            raise RegistryError(
                f"model {name!r} has no version {chosen!r}; available: {', '.join(versions)}"
            )
        folder = self.root / name / chosen
        try:
            raw = json.loads((folder / MANIFEST_NAME).read_text())
            return parse_manifest(raw, name, chosen, folder)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RegistryError(f"manifest of {name} {chosen} is invalid: {exc!r}") from None

    def catalogue(self) -> dict[str, list[ModelManifest]]:
        """Every readable version of every model, oldest first; unreadable ones are logged and
        left out (one bad folder must not hide the others)."""
        found: dict[str, list[ModelManifest]] = {}
        for name in self.names():
            manifests = []
            for version in self.versions(name):
                try:
                    manifests.append(self.manifest(name, version))
                except RegistryError as exc:
                    log.warning("skipping %s", exc)
            if manifests:
                found[name] = manifests
        return found

    def verified(self, name: str, version: str | None = None) -> ModelManifest:
        """The manifest, after checking that the weights file exists and matches its sha256."""
        manifest = self.manifest(name, version)
        if not manifest.weights_path.is_file():
            raise RegistryError(
                f"weights of {name} {manifest.version} missing: {manifest.weights_path}"
            )
        actual = file_sha256(manifest.weights_path)
        if actual != manifest.sha256:
            raise RegistryError(
                f"weights of {name} {manifest.version} do not match the manifest "
                f"(sha256 {actual}, expected {manifest.sha256}); refusing to load them"
            )
        return manifest
