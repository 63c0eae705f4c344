"""A worker's models: loaded on first use, least recently used out over the budget, and a new
version in the registry taken by the next request without a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.serving import ModelCache, weight_bytes
from tests.model_builders import (
    BINARY_CLASSES,
    THREE_CLASSES,
    bright_pixel_model,
    three_level_model,
    write_registry_model,
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small models: a, b (binary, 2 weights) and c (three classes, 6 weights)."""
    root = tmp_path_factory.mktemp("registry")
    for name in ("a", "b"):
        write_registry_model(root, name, "1.0.0", bright_pixel_model(), BINARY_CLASSES)
    write_registry_model(root, "c", "1.0.0", three_level_model(), THREE_CLASSES)
    return root


def test_the_least_recently_used_model_goes_first(registry: Path) -> None:
    cache = ModelCache(max_models=2)
    first_a = cache.get(registry, "a")
    cache.get(registry, "b")
    assert cache.get(registry, "a") is first_a  # a is now the most recently used
    cache.get(registry, "c")
    assert cache.held == [("a", "1.0.0"), ("c", "1.0.0")]
    assert cache.get(registry, "b") is not None and cache.held == [("c", "1.0.0"), ("b", "1.0.0")]
    assert cache.get(registry, "a") is not first_a  # dropped, so loaded again


def test_the_byte_budget_counts_the_weights_and_makes_room_before_loading(
    registry: Path,
) -> None:
    cache = ModelCache()
    small = weight_bytes(cache.get(registry, "a").model)
    assert small == (1 + 1) * 4  # a 1x1 kernel and a bias, float32
    large = weight_bytes(cache.get(registry, "c").model)
    assert large == (3 + 3) * 4 and cache.held_bytes == small + large
    # Before loading, the weights file's size stands for the model: c's file beside a and b
    # (8 bytes each) is over this budget by one model, so the least recently used (a) goes.
    c_file = (registry / "c" / "1.0.0" / "model.keras").stat().st_size
    tight = ModelCache(max_bytes=c_file + small)
    for name in ("a", "b", "c"):
        tight.get(registry, name)
    assert tight.held == [("b", "1.0.0"), ("c", "1.0.0")]


def test_a_model_over_the_budget_alone_is_still_served(registry: Path) -> None:
    cache = ModelCache(max_bytes=1)
    assert cache.get(registry, "c").manifest.name == "c"
    assert cache.held == [("c", "1.0.0")]


def test_a_new_version_is_used_by_the_next_request(tmp_path: Path) -> None:
    write_registry_model(tmp_path, "m", "1.0.0", bright_pixel_model(), BINARY_CLASSES)
    cache = ModelCache()
    assert cache.get(tmp_path, "m").manifest.version == "1.0.0"
    write_registry_model(tmp_path, "m", "1.1.0", bright_pixel_model(), BINARY_CLASSES)
    assert cache.get(tmp_path, "m").manifest.version == "1.1.0"
    assert cache.get(tmp_path, "m", "1.0.0").manifest.version == "1.0.0"
    assert cache.held == [("m", "1.1.0"), ("m", "1.0.0")]  # both kept, by last use
