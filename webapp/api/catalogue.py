"""GET /api/v1/models: the registry's models, read from their manifests and cards."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from core.jobtypes import JOB_TYPES
from core.model_choice import default_model_setting
from core.model_registry import TASKS, ModelManifest, ModelRegistry
from core.settings_access import current_settings
from webapp.api import bp
from webapp.auth import token_required
from webapp.errors import ApiError


def version_to_json(manifest: ModelManifest) -> dict[str, Any]:
    """One version: classes, input, preprocessing, metrics, hash and card."""
    return {
        "version": manifest.version,
        "classes": manifest.class_names,
        "input": {
            "height": manifest.input_height,
            "width": manifest.input_width,
            "channels": manifest.channels,
            "max_frames": manifest.max_frames,
        },
        "preprocessing": {
            "input_scale": manifest.input_scale,
            "description": manifest.preprocessing,
        },
        "uncertain_below": manifest.uncertain_below,
        "metrics": manifest.metrics,
        "sha256": manifest.sha256,
        "card": manifest.card_text(),
    }


def model_catalogue(task: str | None = None) -> list[dict[str, Any]]:
    """Every model (of the task, if given) with its versions (oldest first), the job types that
    can use it and the ones it is the default of."""
    settings = current_settings()
    defaults = {
        job_type.name: getattr(settings, default_model_setting(job_type))
        for job_type in JOB_TYPES.values()
        if job_type.model_task
    }
    found = []
    for name, manifests in ModelRegistry(settings.MODEL_DIR).catalogue().items():
        if task is not None and manifests[-1].task != task:
            continue
        found.append(
            {
                "name": name,
                "task": manifests[-1].task,
                "newest": manifests[-1].version,
                "job_types": sorted(
                    t.name for t in JOB_TYPES.values() if t.model_task == manifests[-1].task
                ),
                "default_for": sorted(t for t, model in defaults.items() if model == name),
                "versions": [version_to_json(manifest) for manifest in manifests],
            }
        )
    return found


@bp.get("/models")
@token_required
def list_models() -> Response:
    """The models jobs can name in params.model, with their versions and cards; ``?task=``
    keeps the models of one task."""
    task = request.args.get("task")
    if task is not None and task not in TASKS:
        raise ApiError(400, "invalid_query", f"'task' must be one of {', '.join(TASKS)}.")
    return jsonify({"models": model_catalogue(task)})
