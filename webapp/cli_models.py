"""``flask --app webapp models ...``: import a Keras model into the registry, list, show.

``list`` and ``show`` read the manifests. ``import`` needs Keras, which the web process never
loads: it runs ``python -m models.import_cli`` in a child process (with this app's MODEL_DIR), as
the web hands jobs to workers by name, and passes its output and exit status through.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
from flask.cli import AppGroup

from core.model_registry import MANIFEST_NAME, ModelManifest, ModelRegistry, RegistryError
from core.settings_access import current_settings

models_cli = AppGroup("models", help="The model registry: import Keras models, list, show.")

IMPORTER = "models.import_cli"


def registry() -> ModelRegistry:
    """The app's registry (MODEL_DIR)."""
    return ModelRegistry(current_settings().MODEL_DIR)


@models_cli.command(
    "import",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def import_model(arguments: tuple[str, ...]) -> None:
    """Check a .keras or legacy .h5 model and add it as a new version (--help for options)."""
    if any(arg == "--registry" or arg.startswith("--registry=") for arg in arguments):
        raise click.UsageError("--registry is not an option here: models go to MODEL_DIR")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    # The configured registry goes last: Click keeps an option's last value, so an operator's own
    # --registry cannot send the model elsewhere.
    command = [sys.executable, "-m", IMPORTER, *arguments, "--registry", str(registry().root)]
    child = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if child.stdout:
        click.echo(child.stdout, nl=False)
    if child.stderr:
        # Keras's own start-up chatter is not the message; the importer's is its last lines.
        click.echo(child.stderr, nl=False, err=True)
    if child.returncode:
        sys.exit(child.returncode)


def manifest_line(manifest: ModelManifest, newest: str) -> str:
    """One tab-separated line of ``models list``."""
    return "\t".join(
        [
            manifest.name,
            manifest.version + (" (newest)" if manifest.version == newest else ""),
            manifest.task,
            ",".join(manifest.class_names),
            f"{manifest.input_height}x{manifest.input_width}x{manifest.channels}",
            manifest.sha256[:12],
        ]
    )


@models_cli.command("list")
def list_models() -> None:
    """Every model version in the registry, tab-separated."""
    click.echo("name\tversion\ttask\tclasses\tinput\tsha256")
    for manifests in registry().catalogue().values():
        for manifest in manifests:
            click.echo(manifest_line(manifest, manifests[-1].version))


@models_cli.command("show")
@click.argument("name")
@click.option("--version", "version", help="Default: the newest.")
def show_model(name: str, version: str | None) -> None:
    """A model version's manifest (JSON) and its model card."""
    try:
        manifest = registry().manifest(name, version)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    raw = json.loads((manifest.weights_path.parent / MANIFEST_NAME).read_text())
    click.echo(json.dumps(raw, indent=2))
    card = manifest.card_text()
    click.echo(f"\n{card}" if card is not None else "\n(no model card)")
