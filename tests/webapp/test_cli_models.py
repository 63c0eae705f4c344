"""``flask --app webapp models list|show|import``: list and show read the manifests; import runs
the importer in a child process (the web never loads Keras) and passes its answer through."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask

from core.settings_access import current_settings
from tests.model_builders import write_manifest_only


def test_list_and_show_read_the_registry(app: Flask, tmp_path: Path) -> None:
    settings = current_settings()
    original, settings.MODEL_DIR = settings.MODEL_DIR, tmp_path
    try:
        for version in ("1.0.0", "1.10.0", "1.9.0"):
            write_manifest_only(tmp_path, "cxr", version, "classification", ("a", "b"), "# card")
        runner = app.test_cli_runner()
        listed = runner.invoke(args=["models", "list"])
        assert listed.exit_code == 0, listed.output
        lines = [line.split("\t")[:4] for line in listed.output.splitlines()]
        assert lines == [
            ["name", "version", "task", "classes"],
            ["cxr", "1.0.0", "classification", "a,b"],
            ["cxr", "1.9.0", "classification", "a,b"],
            ["cxr", "1.10.0 (newest)", "classification", "a,b"],
        ]
        shown = runner.invoke(args=["models", "show", "cxr", "--version", "1.9.0"])
        assert shown.exit_code == 0, shown.output
        manifest_text, card = shown.output.split("\n\n", 1)
        assert json.loads(manifest_text)["classes"] == {"0": "a", "1": "b"}
        assert card.strip() == "# card"
        missing = runner.invoke(args=["models", "show", "nope"])
        assert missing.exit_code != 0 and "no model 'nope'" in missing.output
    finally:
        settings.MODEL_DIR = original


def test_import_passes_the_importers_refusal_through(app: Flask, tmp_path: Path) -> None:
    settings = current_settings()
    original, settings.MODEL_DIR = settings.MODEL_DIR, tmp_path / "registry"
    model = tmp_path / "model.h5"
    model.write_bytes(b"not a model")
    try:
        arguments = ["models", "import", str(model), "--name", "Bad Name", "--version", "1.0.0"]
        arguments += ["--task", "classification", "--classes", "a,b"]
        result = app.test_cli_runner().invoke(args=arguments)
    finally:
        settings.MODEL_DIR = original
    assert result.exit_code == 1
    assert "model.h5 refused: --name 'Bad Name': lower-case letters" in result.stderr
    assert not (tmp_path / "registry").exists() or not any((tmp_path / "registry").iterdir())


def test_import_cannot_be_sent_outside_the_registry(app: Flask, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    for registry in (["--registry", str(elsewhere)], [f"--registry={elsewhere}"]):
        arguments = ["models", "import", str(tmp_path / "model.keras"), "--name", "m", *registry]
        result = app.test_cli_runner().invoke(args=arguments)
        assert result.exit_code == 2
        assert "--registry is not an option here" in result.output
    assert not elsewhere.exists()
