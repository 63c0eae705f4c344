"""Which registry model a job uses: ``params.model`` / ``params.model_version``, else the type's
configured default. The web checks the choice against the manifests at upload (a wrong one is a
400, not a failed job); the worker resolves the same choice when the job runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.config import Settings
from core.jobtypes import JobRequestError, JobType
from core.model_registry import ModelRegistry, RegistryError


def chosen_model(
    params: Mapping[str, Any], default_name: str, default_version: str
) -> tuple[str, str]:
    """(name, version) the params ask for; version "" means the newest when the job runs.

    ``params.model`` names another model, taken at ``params.model_version`` or its newest; without
    it, ``params.model_version`` picks a version of the default model, else the default's pinned
    version (the ``<SETTING>_VERSION``) holds.
    """
    if params.get("model"):
        return params["model"], params.get("model_version", "")
    return default_name, params.get("model_version") or default_version


def default_model_setting(job_type: JobType) -> str:
    """The setting that names the type's default model (e.g. CLASSIFICATION_MODEL)."""
    return job_type.models[0]


def job_model_choice(
    job_type: JobType, params: Mapping[str, Any], settings: Settings
) -> tuple[str, str]:
    """(name, version) a job of this type with these params uses."""
    setting = default_model_setting(job_type)
    return chosen_model(params, getattr(settings, setting), getattr(settings, f"{setting}_VERSION"))


def check_model_choice(job_type: JobType, params: Mapping[str, Any], settings: Settings) -> None:
    """Refuse, before anything is stored, a chosen model that is not in the registry, lacks the
    version, or does another task than the job type needs."""
    if job_type.model_task is None or not ({"model", "model_version"} & set(params)):
        return
    name, version = job_model_choice(job_type, params, settings)
    registry = ModelRegistry(settings.MODEL_DIR)
    versions = registry.versions(name)
    # Messages name the model, never the server's paths.
    if not versions:
        raise JobRequestError(
            "unknown_model", f"No model {name!r}; GET /api/v1/models lists the models."
        )
    if version and version not in versions:
        raise JobRequestError(
            "unknown_model",
            f"Model {name!r} has no version {version!r}; available: {', '.join(versions)}.",
        )
    try:
        manifest = registry.manifest(name, version or None)
    except RegistryError as exc:
        raise JobRequestError("unknown_model", str(exc)) from None
    if manifest.task != job_type.model_task:
        raise JobRequestError(
            "wrong_model_task",
            f"{name} {manifest.version} is a {manifest.task} model; a {job_type.name} job needs "
            f"a {job_type.model_task} model.",
        )
