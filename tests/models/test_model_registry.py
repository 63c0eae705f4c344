"""The model registry: versions by number, hash verification, loading real Keras weights once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.model_registry import ModelRegistry, RegistryError
from models.serving import ModelCache, load_model, model_unavailable
from pipelines.base import PipelineError
from tests.model_builders import (
    BINARY_CLASSES,
    INPUT_HEIGHT,
    INPUT_WIDTH,
    bright_pixel_model,
    write_registry_model,
)


@pytest.fixture(scope="module")
def registry_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with versions 1.2.0, 1.10.0 and 1.9.3 of one model."""
    root = tmp_path_factory.mktemp("registry")
    for version in ("1.2.0", "1.10.0", "1.9.3"):
        write_registry_model(root, "seg", version, bright_pixel_model(), BINARY_CLASSES)
    return root


def test_versions_sort_numerically_and_the_newest_is_the_default(registry_root: Path) -> None:
    registry = ModelRegistry(registry_root)
    assert registry.versions("seg") == ["1.2.0", "1.9.3", "1.10.0"]
    assert registry.manifest("seg").version == "1.10.0"
    manifest = registry.manifest("seg", "1.2.0")
    assert manifest.version == "1.2.0" and manifest.is_binary
    assert (manifest.input_height, manifest.input_width, manifest.channels) == (16, 24, 1)


def test_a_version_number_has_one_spelling(registry_root: Path, tmp_path: Path) -> None:
    # 01.2.0 would be a second folder of version 1.2.0, and which is "newest" would depend on
    # the order the file system lists them in.
    shutil.copytree(registry_root / "seg" / "1.2.0", tmp_path / "seg" / "1.2.0")
    shutil.copytree(registry_root / "seg" / "1.2.0", tmp_path / "seg" / "01.2.0")
    assert ModelRegistry(tmp_path).versions("seg") == ["1.2.0"]
    with pytest.raises(RegistryError):
        ModelRegistry(tmp_path).manifest("seg", "01.2.0")


def test_unknown_model_or_version_is_a_clear_error(registry_root: Path) -> None:
    registry = ModelRegistry(registry_root)
    with pytest.raises(RegistryError, match="no model 'other'"):
        registry.manifest("other")
    with pytest.raises(RegistryError, match=r"no version '2\.0\.0'.*1\.2\.0"):
        registry.manifest("seg", "2.0.0")


def test_a_registry_error_fails_the_job_as_model_unavailable(registry_root: Path) -> None:
    with pytest.raises(PipelineError, match="no model 'other'") as failure, model_unavailable():
        ModelCache().get(registry_root, "other")
    assert failure.value.code == "model_unavailable"


def test_weights_with_a_wrong_hash_are_refused(tmp_path: Path) -> None:
    weights = write_registry_model(tmp_path, "seg", "1.0.0", bright_pixel_model(), BINARY_CLASSES)
    with weights.open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(RegistryError, match="do not match the manifest"):
        ModelRegistry(tmp_path).verified("seg")
    with pytest.raises(RegistryError):
        load_model(ModelRegistry(tmp_path), "seg")


def test_invalid_manifest_is_a_clear_error(tmp_path: Path) -> None:
    write_registry_model(tmp_path, "seg", "1.0.0", bright_pixel_model(), BINARY_CLASSES)
    manifest = tmp_path / "seg" / "1.0.0" / "manifest.json"
    manifest.write_text(json.dumps({"file": "model.keras"}))
    with pytest.raises(RegistryError, match="invalid"):
        ModelRegistry(tmp_path).manifest("seg")


def test_postprocessing_options_default_to_the_plain_measurement(registry_root: Path) -> None:
    manifest = ModelRegistry(registry_root).manifest("seg")
    assert manifest.test_time_flips == () and manifest.ellipse_fit == "least_squares"


def test_postprocessing_options_are_read_and_checked(tmp_path: Path) -> None:
    fields = {"test_time_flips": ["horizontal", "both"], "ellipse_fit": "robust"}
    write_registry_model(tmp_path, "seg", "1.0.0", bright_pixel_model(), BINARY_CLASSES, **fields)
    manifest = ModelRegistry(tmp_path).manifest("seg")
    assert manifest.test_time_flips == ("horizontal", "both") and manifest.ellipse_fit == "robust"
    for bad in ({"test_time_flips": ["sideways"]}, {"ellipse_fit": "ransac"}):
        write_registry_model(tmp_path, "seg", "2.0.0", bright_pixel_model(), BINARY_CLASSES, **bad)
        with pytest.raises(RegistryError, match=f"invalid.*{next(iter(bad))}"):
            ModelRegistry(tmp_path).manifest("seg", "2.0.0")


def test_loaded_model_predicts_and_is_cached(registry_root: Path) -> None:
    cache = ModelCache()
    loaded = cache.get(registry_root, "seg")
    assert cache.get(registry_root, "seg") is loaded
    assert loaded.identity.version == "1.10.0" and len(loaded.identity.sha256) == 64
    batch = np.zeros((1, INPUT_HEIGHT, INPUT_WIDTH, 1), dtype=np.float32)
    batch[0, :, 12:] = 1.0
    output = np.asarray(loaded.model.predict_on_batch(batch))[0, ..., 0]
    assert output[:, :12].max() < 0.01 and output[:, 12:].min() > 0.99
