"""Models in a worker process: loaded once (verified against the registry), warmed up, reused."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.config import Settings
from models.batching import BatchedModel
from models.model_registry import ModelManifest, ModelRegistry, RegistryError
from pipelines.base import ModelIdentity, PipelineError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A Keras model with the manifest it was loaded from."""

    manifest: ModelManifest
    model: Any

    @property
    def identity(self) -> ModelIdentity:
        """Name, version and weights hash, for the job record."""
        return ModelIdentity(self.manifest.name, self.manifest.version, self.manifest.sha256)


def _warm_up_input(manifest: ModelManifest) -> Any:
    """A blank input of the model's shape: one image, or a full-length series and its mask."""
    frame = (manifest.input_height, manifest.input_width, manifest.channels)
    if manifest.max_frames:
        from pipelines.sequence import FRAMES_INPUT, MASK_INPUT

        return {
            FRAMES_INPUT: np.zeros((1, manifest.max_frames, *frame), dtype=np.float32),
            MASK_INPUT: np.ones((1, manifest.max_frames), dtype=bool),
        }
    return np.zeros((1, *frame), dtype=np.float32)


def load_model(registry: ModelRegistry, name: str, version: str | None = None) -> LoadedModel:
    """Verify the weights' hash, load them with Keras and run one warm-up prediction."""
    manifest = registry.verified(name, version)
    import keras  # workers only: the web process never reaches this module

    model = keras.saving.load_model(manifest.weights_path, compile=False)
    model.predict_on_batch(_warm_up_input(manifest))
    log.info("loaded model %s %s (sha256 %s)", name, manifest.version, manifest.sha256[:12])
    # Jobs running at once in this process share its calls (GPU_BATCH_MAX; models.batching).
    return LoadedModel(manifest, BatchedModel(model, f"{name} {manifest.version}"))


class ModelCache:
    """One loaded model per (registry, name, version) for the life of the process."""

    def __init__(self) -> None:
        self._models: dict[tuple[Path, str, str], LoadedModel] = {}
        # A threads-pool worker's jobs share the cache: a model is loaded once, not per thread.
        self._loading = threading.Lock()

    def get(self, registry_root: Path, name: str, version: str = "") -> LoadedModel:
        """The cached model, loading it on first use; RegistryError if it cannot be loaded."""
        key = (Path(registry_root), name, version)
        with self._loading:
            if key not in self._models:
                self._models[key] = load_model(ModelRegistry(registry_root), name, version or None)
            return self._models[key]


@contextmanager
def model_unavailable() -> Iterator[None]:
    """Turn a RegistryError inside the block into the job failure ``model_unavailable``."""
    try:
        yield
    except RegistryError as exc:
        # The registry's message names the model, version and reason; the job record keeps it.
        raise PipelineError("model_unavailable", str(exc)) from None


# The worker process's models (filled at warm-up after the fork, or on first use).
process_models = ModelCache()


def configured_model(settings: Settings, setting: str) -> LoadedModel:
    """The registry model a setting names (e.g. SEGMENTATION_MODEL, its version in
    SEGMENTATION_MODEL_VERSION); RegistryError if it cannot be loaded."""
    return process_models.get(
        settings.MODEL_DIR, getattr(settings, setting), getattr(settings, f"{setting}_VERSION")
    )


def segmentation_model(settings: Settings) -> LoadedModel:
    """This process's configured segmentation model; RegistryError if it cannot be loaded."""
    return process_models.get(
        settings.MODEL_DIR, settings.SEGMENTATION_MODEL, settings.SEGMENTATION_MODEL_VERSION
    )


def sequence_model(settings: Settings) -> LoadedModel:
    """This process's configured sequence model; RegistryError if it cannot be loaded."""
    return process_models.get(
        settings.MODEL_DIR, settings.SEQUENCE_MODEL, settings.SEQUENCE_MODEL_VERSION
    )


def classification_model(settings: Settings) -> LoadedModel:
    """This process's default classifier; RegistryError if it cannot be loaded."""
    return process_models.get(
        settings.MODEL_DIR, settings.CLASSIFICATION_MODEL, settings.CLASSIFICATION_MODEL_VERSION
    )


__all__ = [
    "LoadedModel",
    "ModelCache",
    "RegistryError",
    "classification_model",
    "configured_model",
    "load_model",
    "model_unavailable",
    "process_models",
    "segmentation_model",
    "sequence_model",
]
