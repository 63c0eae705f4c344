"""Segmentation pipeline with tiny real Keras models: binary and multi-class, PNG and DICOM."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.model_registry import ModelManifest
from models.serving import ModelCache
from pipelines.base import PipelineError
from pipelines.segmentation import predict_averaged, predict_class_map, segmentation_pipeline
from tests.builders import dicom_bytes, encode
from tests.model_builders import (
    BINARY_CLASSES,
    THREE_CLASSES,
    bright_pixel_model,
    three_level_model,
    write_registry_model,
)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    """A binary and a three-class model from a temporary registry."""
    root = tmp_path_factory.mktemp("registry")
    write_registry_model(root, "binary", "1.0.0", bright_pixel_model(), BINARY_CLASSES)
    write_registry_model(root, "tissue", "1.0.0", three_level_model(), THREE_CLASSES)
    cache = ModelCache()
    return cache.get(root, "binary"), cache.get(root, "tissue")


def three_bands(height: int = 120, width: int = 300) -> np.ndarray:
    """Vertical bands: dark, mid-grey and bright, a third of the width each."""
    pixels = np.zeros((height, width), dtype=np.uint8)
    pixels[:, width // 3 : 2 * width // 3] = 128
    pixels[:, 2 * width // 3 :] = 250
    return pixels


def run(loaded, path: Path, params: dict | None = None):
    """The pipeline with a loaded test model."""
    return segmentation_pipeline([path], params or {}, model=loaded.model, manifest=loaded.manifest)


def decode(png: bytes) -> np.ndarray:
    """PNG bytes to an array."""
    return np.asarray(Image.open(io.BytesIO(png)))


def test_binary_model_gives_a_mask_at_the_scan_resolution(models, tmp_path: Path) -> None:
    binary, _ = models
    path = tmp_path / "scan.png"
    pixels = np.full((120, 300), 250, dtype=np.uint8)
    pixels[:, :100] = 0
    path.write_bytes(encode(Image.fromarray(pixels), "PNG"))
    output = run(binary, path, {"pixel_spacing_mm": 0.5})

    mask = decode(output.artifacts[0].data)
    assert output.artifacts[0].name == "mask.png" and mask.shape == (120, 300)
    assert set(np.unique(mask)) == {0, 255}
    # The bright two thirds are foreground; the edge may move by half a model pixel (6 px).
    assert mask[:, :94].max() == 0 and mask[:, 106:].min() == 255
    areas = output.result["classes"]
    assert areas["object"]["fraction"] == pytest.approx(2 / 3, abs=0.02)
    assert areas["object"]["area_mm2"] == pytest.approx(areas["object"]["pixels"] * 0.25)
    assert decode(output.artifacts[1].data).shape == (120, 300, 3)


def test_multi_class_model_uses_the_class_map_from_the_manifest(models, tmp_path: Path) -> None:
    _, tissue = models
    path = tmp_path / "scan.png"
    path.write_bytes(encode(Image.fromarray(three_bands()), "PNG"))
    output = run(tissue, path)

    classes = output.result["classes"]
    assert list(classes) == ["rest", "muscle", "fat"]
    for label in classes:
        assert classes[label]["fraction"] == pytest.approx(1 / 3, abs=0.02)
        assert classes[label]["area_mm2"] is None  # no pixel size known
    mask = decode(output.artifacts[0].data)
    assert (mask[:, 10], mask[:, 150], mask[:, 290]) == pytest.approx((0, 1, 2))


def test_dicom_gives_the_same_mask_as_png_and_its_pixel_spacing(models, tmp_path: Path) -> None:
    binary, _ = models
    pixels = three_bands()
    png, dcm = tmp_path / "scan.png", tmp_path / "scan.dcm"
    png.write_bytes(encode(Image.fromarray(pixels), "PNG"))
    dcm.write_bytes(dicom_bytes(pixels, (0.3, 0.3)))
    from_png, from_dicom = run(binary, png), run(binary, dcm)
    assert from_png.artifacts[0].data == from_dicom.artifacts[0].data
    assert from_dicom.result["pixel_spacing_mm"] == pytest.approx(0.3)


def test_non_square_dicom_pixels_and_corrupt_files_fail_clearly(models, tmp_path: Path) -> None:
    binary, _ = models
    skewed = tmp_path / "skewed.dcm"
    skewed.write_bytes(dicom_bytes(three_bands(), (0.3, 0.2)))
    corrupt = tmp_path / "corrupt.dcm"
    corrupt.write_bytes(dicom_bytes(three_bands(), None)[:400])
    for path, code in ((skewed, "anisotropic_pixels"), (corrupt, "invalid_image")):
        with pytest.raises(PipelineError) as error:
            run(binary, path)
        assert error.value.code == code


class RampModel:
    """Head probability = intensity x column ramp (0 left, 1 right): not flip-equivariant."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(x))
        return x * np.linspace(0.0, 1.0, x.shape[2])[None, None, :, None]


def test_test_time_flips_average_the_flipped_back_predictions_in_one_call() -> None:
    model = RampModel()
    x = np.full((1, 4, 5, 1), 0.8, dtype=np.float32)
    plain = predict_averaged(model, x)
    np.testing.assert_allclose(plain[0, 0, :, 0], 0.8 * np.linspace(0, 1, 5), atol=1e-6)
    # The ramp and its mirror average to 0.5 everywhere; a vertical flip leaves it unchanged.
    np.testing.assert_allclose(predict_averaged(model, x, ("horizontal",)), 0.4, atol=1e-6)
    np.testing.assert_allclose(predict_averaged(model, x, ("vertical",)), plain, atol=1e-6)
    np.testing.assert_allclose(predict_averaged(model, x, ("both",)), 0.4, atol=1e-6)
    assert model.batch_sizes == [1, 2, 2, 2]


def test_manifest_flips_change_the_predicted_mask() -> None:
    classes = {0: "background", 1: "head"}
    plain = ModelManifest("ramp", "1.0.0", Path("none"), "", "segmentation", 8, 10, 1, classes)
    flipped = dataclasses.replace(plain, test_time_flips=("horizontal",))
    pixels = np.full((16, 20), 204, dtype=np.uint8)  # 0.8 after scaling
    # Plain: only the right part reaches 0.5; averaged with the mirror: 0.4 everywhere, no head.
    assert 0 < predict_class_map(RampModel(), plain, pixels).mean() < 0.5
    assert not predict_class_map(RampModel(), flipped, pixels).any()
