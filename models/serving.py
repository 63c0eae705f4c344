"""Models in a worker process: loaded on first use (verified against the registry), warmed up
once, reused, and the least recently used dropped when the process holds more than its budget
(MODEL_CACHE_MAX_MODELS, MODEL_CACHE_MAX_BYTES).

Which version a job gets is decided when it runs, from the manifests: a version dropped into the
registry is used by the next job without restarting the worker (the cache is keyed by version).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.config import Settings
from core.jobtypes import JobType
from core.metrics import MODEL_LOAD_SECONDS
from core.model_choice import chosen_model, default_model_setting
from core.model_registry import ModelManifest, ModelRegistry, RegistryError
from models.batching import BatchedModel
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
    started = time.monotonic()
    manifest = registry.verified(name, version)
    import keras  # workers only: the web process never reaches this module

    model = keras.saving.load_model(manifest.weights_path, compile=False)
    model.predict_on_batch(_warm_up_input(manifest))
    MODEL_LOAD_SECONDS.labels(name, manifest.version).set(time.monotonic() - started)
    log.info("loaded model %s %s (sha256 %s)", name, manifest.version, manifest.sha256[:12])
    # Jobs running at once in this process share its calls (GPU_BATCH_MAX; models.batching).
    return LoadedModel(manifest, BatchedModel(model, f"{name} {manifest.version}"))


def weight_bytes(model: Any) -> int:
    """Bytes the model's weights take in memory (their shapes times their dtypes' sizes)."""
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)


CacheKey = tuple[Path, str, str]


class ModelCache:
    """Loaded models by (registry, name, version), least recently used first out.

    At most ``max_models`` models and ``max_bytes`` of weights (0: no limit); the model a job
    asks for is always kept, even alone over the budget. Before loading, room is made for the
    weights file's size (an estimate); after, the model counts its measured weight bytes.
    """

    def __init__(self, max_models: int = 0, max_bytes: int = 0) -> None:
        self._models: OrderedDict[CacheKey, LoadedModel] = OrderedDict()
        self._bytes: dict[CacheKey, int] = {}
        self._lock = threading.Lock()
        self.limit(max_models, max_bytes)

    def limit(self, max_models: int, max_bytes: int) -> None:
        """Set the budget (0: no limit); it applies from the next load on."""
        self.max_models, self.max_bytes = max_models, max_bytes

    @property
    def held(self) -> list[tuple[str, str]]:
        """(name, version) of the models held, least recently used first."""
        return [(name, version) for _root, name, version in self._models]

    @property
    def held_bytes(self) -> int:
        """The weight bytes of the models held."""
        return sum(self._bytes.values())

    def get(self, registry_root: Path, name: str, version: str = "") -> LoadedModel:
        """The model (its newest version when none is named), loading it on first use;
        RegistryError if it cannot be loaded."""
        registry = ModelRegistry(registry_root)
        resolved = version or registry.manifest(name).version
        key = (Path(registry_root), name, resolved)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            manifest = registry.manifest(name, resolved)
            estimate = (
                manifest.weights_path.stat().st_size if manifest.weights_path.is_file() else 0
            )
            self._evict(room_for=estimate)
            loaded = load_model(registry, name, resolved)
            self._models[key] = loaded
            self._bytes[key] = weight_bytes(loaded.model)
            self._evict()
            return loaded

    def _evict(self, room_for: int = 0) -> None:
        """Drop least recently used models until one more (or the newest) fits the budget."""
        extra = 1 if room_for else 0
        while self._models and (
            (self.max_models and len(self._models) + extra > self.max_models)
            or (self.max_bytes and self.held_bytes + room_for > self.max_bytes)
        ):
            if not room_for and len(self._models) == 1:
                return  # the model just loaded stays, even alone over the budget
            key, _model = self._models.popitem(last=False)
            size = self._bytes.pop(key)
            log.info("dropped model %s %s (%d bytes, least recently used)", key[1], key[2], size)
            gc.collect()  # give the weights back now, not at some later collection


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


def configured_model(
    settings: Settings,
    setting: str,
    params: Mapping[str, Any] | None = None,
    task: str | None = None,
) -> LoadedModel:
    """The registry model a job uses: the params' choice, else the one the setting names (e.g.
    SEGMENTATION_MODEL, pinned by SEGMENTATION_MODEL_VERSION), at the version the manifests give
    now; RegistryError if it cannot be loaded or does another task than ``task``."""
    name, version = chosen_model(
        params or {}, getattr(settings, setting), getattr(settings, f"{setting}_VERSION")
    )
    if task is not None:
        manifest = ModelRegistry(settings.MODEL_DIR).manifest(name, version or None)
        if manifest.task != task:
            raise RegistryError(
                f"{name} {manifest.version} is a {manifest.task} model, not a {task} model"
            )
        version = manifest.version
    process_models.limit(settings.MODEL_CACHE_MAX_MODELS, settings.MODEL_CACHE_MAX_BYTES)
    return process_models.get(settings.MODEL_DIR, name, version)


def job_model(settings: Settings, job_type: JobType, params: Mapping[str, Any]) -> LoadedModel:
    """The model a job of this type runs; a registry problem becomes the job failure
    ``model_unavailable``."""
    with model_unavailable():
        return configured_model(
            settings, default_model_setting(job_type), params, job_type.model_task
        )


def segmentation_model(settings: Settings) -> LoadedModel:
    """This process's configured segmentation model; RegistryError if it cannot be loaded."""
    return configured_model(settings, "SEGMENTATION_MODEL")


def sequence_model(settings: Settings) -> LoadedModel:
    """This process's configured sequence model; RegistryError if it cannot be loaded."""
    return configured_model(settings, "SEQUENCE_MODEL")


def classification_model(settings: Settings) -> LoadedModel:
    """This process's default classifier; RegistryError if it cannot be loaded."""
    return configured_model(settings, "CLASSIFICATION_MODEL")


__all__ = [
    "LoadedModel",
    "ModelCache",
    "RegistryError",
    "classification_model",
    "configured_model",
    "job_model",
    "load_model",
    "model_unavailable",
    "process_models",
    "segmentation_model",
    "sequence_model",
]
