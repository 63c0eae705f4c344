"""The registry of versioned model weights: ``<MODEL_DIR>/<name>/<version>/manifest.json``.

A manifest names the weights file and its sha256, the input size and channels, the preprocessing,
the output classes and the validation metrics. An operator drops a new version folder in and
selects it by configuration; no code changes. Weights whose hash does not match are refused.
The trainers write version folders with ``lab.release``; this module only reads them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.perimeter import FITS
from pipelines.segmentation import TEST_TIME_FLIPS

MANIFEST_NAME = "manifest.json"
_VERSION = re.compile(r"^\d+(\.\d+)*$")


class RegistryError(RuntimeError):
    """A model, version or weights file that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class ModelManifest:
    """What the registry knows about one model version."""

    name: str
    version: str
    weights_path: Path
    sha256: str
    input_height: int
    input_width: int
    channels: int
    classes: dict[int, str]
    preprocessing: str = ""
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


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ModelRegistry:
    """Look models up by name and version in a directory tree."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def versions(self, name: str) -> list[str]:
        """The versions of a model that have a manifest, oldest first."""
        folder = self.root / name
        found = [
            path.parent.name
            for path in folder.glob(f"*/{MANIFEST_NAME}")
            if _VERSION.match(path.parent.name)
        ]
        return sorted(found, key=_version_key)

    def manifest(self, name: str, version: str | None = None) -> ModelManifest:
        """The manifest of the given version, or of the newest one when version is None."""
        versions = self.versions(name)
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
            return ModelManifest(
                name=name,
                version=chosen,
                weights_path=folder / raw["file"],
                sha256=raw["sha256"],
                input_height=int(raw["input_height"]),
                input_width=int(raw["input_width"]),
                channels=int(raw["channels"]),
                classes={int(index): label for index, label in raw["classes"].items()},
                preprocessing=raw.get("preprocessing", ""),
                metrics=raw.get("metrics", {}),
                boundary_offset_px=float(raw.get("boundary_offset_px", 0.0)),
                max_frames=int(raw.get("max_frames", 0)),
                uncertain_below=(
                    float(raw["uncertain_below"])
                    if raw.get("uncertain_below") is not None
                    else None
                ),
                test_time_flips=_known("test_time_flips", raw, TEST_TIME_FLIPS),
                ellipse_fit=_known("ellipse_fit", raw, FITS, "least_squares")[0],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RegistryError(f"manifest of {name} {chosen} is invalid: {exc!r}") from None

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
