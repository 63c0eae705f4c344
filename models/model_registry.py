"""The model registry, as the workers and the lab import it; it lives in ``core.model_registry``
because the web reads manifests too (without any model code)."""

from core.model_registry import (  # noqa: F401  (re-exported)
    CARD_NAME,
    MANIFEST_NAME,
    TASKS,
    ModelManifest,
    ModelRegistry,
    RegistryError,
    file_sha256,
)
