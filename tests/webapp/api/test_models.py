"""GET /api/v1/models, and params.model / params.model_version checked at upload against the
manifests (the web never loads a model)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from core.database import db
from core.records import Job
from core.settings_access import current_settings
from tests.model_builders import write_manifest_only


@pytest.fixture
def registry(app: Flask, tmp_path: Path) -> Iterator[Path]:
    """The app's MODEL_DIR for the test: a classifier in two versions and a segmenter."""
    settings = current_settings()
    original = settings.MODEL_DIR
    for version in ("1.0.0", "1.2.0"):
        write_manifest_only(tmp_path, "cxr", version, "classification", ("a", "b", "c"), "# X")
    write_manifest_only(tmp_path, "tissue", "2.0.0", "segmentation", ("r", "m", "f"), None)
    settings.MODEL_DIR = tmp_path
    yield tmp_path
    settings.MODEL_DIR = original


def test_the_models_are_listed_with_versions_classes_input_metrics_and_cards(
    client: FlaskClient, headers: dict[str, str], registry: Path
) -> None:
    assert client.get("/api/v1/models").status_code == 401
    response = client.get("/api/v1/models", headers=headers)
    assert response.status_code == 200
    models = {model["name"]: model for model in response.get_json()["models"]}
    assert set(models) == {"cxr", "tissue"}
    cxr = models["cxr"]
    assert (cxr["task"], cxr["newest"], cxr["job_types"]) == (
        "classification",
        "1.2.0",
        ["classification"],
    )
    assert [version["version"] for version in cxr["versions"]] == ["1.0.0", "1.2.0"]
    newest = cxr["versions"][-1]
    assert newest["classes"] == ["a", "b", "c"] and newest["card"] == "# X"
    assert newest["input"] == {"height": 16, "width": 24, "channels": 1, "max_frames": 0}
    assert newest["preprocessing"]["input_scale"] == "unit"
    assert newest["metrics"] == {"accuracy": 0.9, "recall": {"a": 0.8}}
    tissue = models["tissue"]
    assert tissue["job_types"] == ["head_circumference", "segmentation"]
    assert tissue["versions"][0]["card"] is None and tissue["default_for"] == []
    only = client.get("/api/v1/models?task=segmentation", headers=headers).json["models"]
    assert [model["name"] for model in only] == ["tissue"]
    wrong = client.get("/api/v1/models?task=nope", headers=headers)
    assert (wrong.status_code, wrong.json["error"]["code"]) == (400, "invalid_query")


def test_the_committed_models_are_the_defaults(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    models = {m["name"]: m for m in client.get("/api/v1/models", headers=headers).json["models"]}
    assert models["hc18-unet"]["default_for"] == ["head_circumference", "segmentation"]
    assert models["hc18-trimester"]["default_for"] == ["classification"]
    assert models["skin-trend-convlstm"]["default_for"] == ["sequence_inference"]


def submit(client: FlaskClient, headers: dict[str, str], job_type: str, params: dict) -> dict:
    """Upload one small PNG as a job of the type; the JSON answer and its HTTP status."""
    png = io.BytesIO()
    Image.new("L", (24, 16), 128).save(png, "PNG")
    response = client.post(
        "/api/v1/jobs",
        headers=headers,
        content_type="multipart/form-data",
        data={
            "type": job_type,
            "params": json.dumps(params),
            "files": [(io.BytesIO(png.getvalue()), "scan.png")],
        },
    )
    return {**response.get_json(), "http": response.status_code}


@pytest.mark.parametrize(
    ("job_type", "params", "code", "words"),
    [
        ("classification", {"model": "nope"}, "unknown_model", "No model 'nope'"),
        ("classification", {"model": "cxr", "model_version": "9.0"}, "unknown_model", "1.2.0"),
        ("segmentation", {"model": "cxr"}, "wrong_model_task", "a classification model"),
        ("head_circumference", {"model": "cxr", "pixel_spacing_mm": 0.1}, "wrong_model_task", ""),
        ("classification", {"model": "tissue"}, "wrong_model_task", "needs a classification"),
        ("sequence_inference", {"model": "cxr"}, "wrong_model_task", "a sequence model"),
        ("classification", {"model": "Bad Name"}, "invalid_params", "registry model name"),
        ("segmentation", {"model_version": "latest"}, "invalid_params", "version number"),
    ],
)
def test_a_model_that_does_not_exist_or_fit_is_a_400_and_nothing_is_stored(
    client: FlaskClient,
    headers: dict[str, str],
    registry: Path,
    media_root: Path,
    job_type: str,
    params: dict,
    code: str,
    words: str,
) -> None:
    answer = submit(client, headers, job_type, params)
    assert (answer["http"], answer["error"]["code"]) == (400, code)
    assert words in answer["error"]["message"] and str(registry) not in answer["error"]["message"]
    assert db.session.scalar(db.select(db.func.count()).select_from(Job)) == 0
    assert not any(media_root.rglob("*.png"))


def test_a_model_that_fits_is_accepted_and_kept_in_the_params(
    client: FlaskClient, headers: dict[str, str], registry: Path
) -> None:
    answer = submit(client, headers, "classification", {"model": "cxr", "model_version": "1.0.0"})
    assert answer["http"] == 202, answer
    assert answer["params"] == {"model": "cxr", "model_version": "1.0.0"}
    assert submit(client, headers, "segmentation", {"model": "tissue"})["http"] == 202
