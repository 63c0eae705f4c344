"""``python -m models.import_cli --registry DIR FILE --name ... --version ... --task ...``: the
command line of the importer (``flask --app webapp models import`` runs it in a child process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from core.model_registry import TASKS
from models.importer import ImportRefused, ImportRequest, import_model
from pipelines.model_input import INPUT_SCALES


def parse_input_size(value: str | None) -> tuple[int, int] | None:
    """``HEIGHTxWIDTH`` (e.g. 128x192) as (height, width)."""
    if value is None:
        return None
    height, sep, width = value.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit() or not int(height) or not int(width):
        raise click.BadParameter("HEIGHTxWIDTH in pixels, e.g. 128x192", param_hint="--input-size")
    return int(height), int(width)


def read_metrics(path: Path | None) -> dict[str, Any]:
    """The --metrics file: a JSON object of validation metrics."""
    if path is None:
        return {}
    try:
        metrics = json.loads(path.read_text())
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--metrics") from None
    if not isinstance(metrics, dict):
        raise click.BadParameter("a JSON object is expected", param_hint="--metrics")
    return metrics


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--registry", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--name", required=True, help="Registry name, e.g. chest-xray.")
@click.option("--version", "version", required=True, help="A new version number, e.g. 1.0.0.")
@click.option("--task", type=click.Choice(TASKS), required=True)
@click.option("--classes", required=True, help="Class names in output order, comma-separated.")
@click.option("--input-size", help="HEIGHTxWIDTH the model takes (default: its input shape).")
@click.option("--channels", type=int, help="Input channels (default: the model's).")
@click.option(
    "--preprocess",
    type=click.Choice(sorted(INPUT_SCALES)),
    help="Input scale: unit = /255, raw = 0-255, symmetric = -1..1 "
    "(default: unit; raw for sequence models).",
)
@click.option("--uncertain-below", type=float, help="Classifiers: 'uncertain' below this.")
@click.option(
    "--card", type=click.Path(dir_okay=False, path_type=Path), help="Model card (markdown)."
)
@click.option(
    "--metrics",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Validation metrics (a JSON object) for the manifest.",
)
def import_command(
    file: Path,
    registry: Path,
    name: str,
    version: str,
    task: str,
    classes: str,
    input_size: str | None,
    channels: int | None,
    preprocess: str | None,
    uncertain_below: float | None,
    card: Path | None,
    metrics: Path | None,
) -> None:
    """Check a Keras model file and add it to the registry as a new version."""
    request = ImportRequest(
        source=file,
        name=name,
        version=version,
        task=task,
        classes=tuple(classes.split(",")),
        input_size=parse_input_size(input_size),
        channels=channels,
        preprocess=preprocess,
        uncertain_below=uncertain_below,
        card=card,
        metrics=read_metrics(metrics),
    )
    try:
        manifest = import_model(request, registry)
    except ImportRefused as exc:
        raise click.ClickException(f"{file.name} refused: {exc}") from None
    folder = manifest.weights_path.parent
    click.echo(
        f"imported {manifest.name} {manifest.version}: {manifest.task}, classes "
        f"{', '.join(manifest.class_names)}, input {manifest.input_height}x"
        f"{manifest.input_width}x{manifest.channels} ({manifest.input_scale}), sha256 "
        f"{manifest.sha256[:12]}… in {folder}"
    )
    if card is None:
        click.echo(f"complete its model card: {manifest.card_path}")


if __name__ == "__main__":
    import_command()
