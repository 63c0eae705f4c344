"""Importing a Keras file into the registry: what fits is stored with a manifest and a card,
what does not is refused with what and why, and a refusal leaves nothing behind."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.model_registry import ModelRegistry
from models.importer import ImportRefused, ImportRequest, import_model
from tests.model_builders import (
    CXR_CLASSES,
    SEX_CLASSES,
    TISSUE_CLASSES,
    mean_intensity_classifier,
    tiny_sequence_model,
    tissue_unet,
    write_keras2_sequential_h5,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The model files an owner brings: a Keras 2 .h5 CNN, a softmax classifier, a U-Net, a
    sequence model, and a classifier without its softmax (logits)."""
    import keras

    folder = tmp_path_factory.mktemp("files")
    found = {"sex": write_keras2_sequential_h5(folder / "sex.h5")}
    for name, model in (
        ("cxr", mean_intensity_classifier()),
        ("unet", tissue_unet()),
        ("trend", tiny_sequence_model()),
    ):
        found[name] = folder / f"{name}.keras"
        model.save(found[name])
    logits = mean_intensity_classifier()
    logits.layers[-1].activation = keras.activations.linear
    found["logits"] = folder / "logits.keras"
    logits.save(found["logits"])
    return found


def request(source: Path, task: str, classes: tuple[str, ...], **extra: object) -> ImportRequest:
    """An import of the file as model 'm' 1.0.0."""
    return ImportRequest(source, "m", "1.0.0", task, classes, **extra)  # type: ignore[arg-type]


def test_a_legacy_keras2_h5_is_converted_and_answers_as_before(
    files: dict[str, Path], tmp_path: Path
) -> None:
    manifest = import_model(request(files["sex"], "classification", SEX_CLASSES), tmp_path)
    assert (manifest.task, manifest.class_names) == ("classification", list(SEX_CLASSES))
    assert (manifest.input_height, manifest.input_width, manifest.channels) == (16, 24, 1)
    assert manifest.weights_path.name == "model.keras"
    raw = json.loads((manifest.weights_path.parent / "manifest.json").read_text())
    assert raw["imported"]["from"] == "sex.h5" and "converted" in raw["imported"]["format"]
    assert "To complete" in manifest.card_text()
    # The stored weights pass the registry's hash check, and the model is the CNN: dark female.
    verified = ModelRegistry(tmp_path).verified("m")
    import keras

    model = keras.saving.load_model(verified.weights_path)
    dark = np.full((1, 16, 24, 1), 10 / 255, dtype=np.float32)
    assert float(model.predict_on_batch(dark)[0, 0]) == pytest.approx(
        1 / (1 + np.exp(20 - 40 / 25.5))
    )


def test_keras_files_of_each_task_are_imported(files: dict[str, Path], tmp_path: Path) -> None:
    card = tmp_path / "card.md"
    card.write_text("# chest X-ray\n\nOurs.")
    cxr = import_model(
        replace(
            request(files["cxr"], "classification", CXR_CLASSES),
            name="cxr",
            uncertain_below=0.6,
            card=card,
        ),
        tmp_path / "registry",
    )
    assert cxr.uncertain_below == 0.6 and cxr.card_text() == "# chest X-ray\n\nOurs."
    unet = import_model(
        replace(request(files["unet"], "segmentation", TISSUE_CLASSES), name="tissue"),
        tmp_path / "registry",
    )
    assert unet.class_names == list(TISSUE_CLASSES) and unet.input_scale == "unit"
    trend = import_model(
        replace(request(files["trend"], "sequence", ("worse", "better")), name="trend"),
        tmp_path / "registry",
    )
    assert (trend.max_frames, trend.channels, trend.input_scale) == (30, 3, "raw")
    assert ModelRegistry(tmp_path / "registry").names() == ["cxr", "tissue", "trend"]


@pytest.mark.parametrize(
    ("file", "task", "classes", "extra", "reason"),
    [
        ("cxr", "classification", ("a", "b"), {}, r"outputs 3 unit\(s\) per input but 2 classes"),
        ("cxr", "segmentation", CXR_CLASSES, {}, r"outputs \(batch, height, width, classes\)"),
        ("logits", "classification", CXR_CLASSES, {}, "not probabilities|do not sum to 1"),
        ("unet", "segmentation", TISSUE_CLASSES, {"input_size": (64, 64)}, "height is 32"),
        ("unet", "segmentation", TISSUE_CLASSES, {"channels": 3}, "channel count is 1"),
        ("sex", "sequence", SEX_CLASSES, {}, "a sequence model takes two inputs"),
        ("sex", "classification", ("x", "x"), {}, "distinct"),
        ("unet", "segmentation", TISSUE_CLASSES, {"uncertain_below": 0.5}, "classification"),
    ],
)
def test_what_does_not_fit_is_refused_with_the_reason_and_leaves_nothing(
    files: dict[str, Path],
    tmp_path: Path,
    file: str,
    task: str,
    classes: tuple[str, ...],
    extra: dict[str, object],
    reason: str,
) -> None:
    with pytest.raises(ImportRefused, match=reason):
        import_model(request(files[file], task, classes, **extra), tmp_path)
    assert list(tmp_path.iterdir()) == []  # no scratch folder, no model folder


def test_a_weights_only_file_or_another_format_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "only.weights.h5"
    mean_intensity_classifier().save_weights(weights)
    registry = tmp_path / "registry"
    with pytest.raises(ImportRefused, match="cannot be loaded as a whole Keras model"):
        import_model(request(weights, "classification", CXR_CLASSES), registry)
    saved_model = tmp_path / "model.pb"
    saved_model.write_bytes(b"\x00")
    with pytest.raises(ImportRefused, match=r"a \.keras file or a legacy Keras 2"):
        import_model(request(saved_model, "classification", CXR_CLASSES), registry)
    assert [path.name for path in registry.iterdir()] == []


def test_a_version_is_never_replaced(files: dict[str, Path], tmp_path: Path) -> None:
    first = import_model(request(files["cxr"], "classification", CXR_CLASSES), tmp_path)
    with pytest.raises(ImportRefused, match="already in the registry"):
        import_model(request(files["cxr"], "classification", CXR_CLASSES), tmp_path)
    assert ModelRegistry(tmp_path).verified("m").sha256 == first.sha256
