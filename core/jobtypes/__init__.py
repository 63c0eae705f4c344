"""The job types, each declared once in its own module here (``JOB_TYPE = JobType(...)``).

Everything else is derived from the declarations: the API's validation and the OpenAPI
document, the Celery routes and the workers' task modules and warm-up, the upload form and the
job page. Plain data: the web imports it and stays free of task and model code.
"""

from __future__ import annotations

import importlib
import pkgutil

from core.jobtypes.params import invalid_params, order_by_taken_at, parse_taken_at
from core.jobtypes.spec import FACE_DETECTOR, JobRequestError, JobType, Stage

# Modules of this package that hold building blocks, not a job type.
_NOT_TYPES = {"growth", "params", "spec"}


def _declared() -> dict[str, JobType]:
    """Every ``JOB_TYPE`` declared in a module of this package, by name, in name order."""
    found: dict[str, JobType] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if module_info.name in _NOT_TYPES:
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        declared = getattr(module, "JOB_TYPE", None)
        if not isinstance(declared, JobType):
            raise TypeError(f"{module.__name__} declares no JOB_TYPE")
        if declared.name in found:
            raise ValueError(f"job type {declared.name!r} is declared twice")
        found[declared.name] = declared
    for job_type in found.values():
        if job_type.child_type is not None and job_type.child_type not in found:
            raise ValueError(f"{job_type.name}: unknown child type {job_type.child_type!r}")
    return found


JOB_TYPES: dict[str, JobType] = _declared()


def get_job_type(name: str | None) -> JobType:
    """The job type by name, or a JobRequestError listing the known ones."""
    if not name or name not in JOB_TYPES:
        raise JobRequestError(
            "unknown_job_type",
            f"Unknown job type {name!r}; known types: {', '.join(sorted(JOB_TYPES))}.",
        )
    return JOB_TYPES[name]


def all_stages() -> list[tuple[JobType, Stage]]:
    """Every stage of every job type, with its type."""
    return [(job_type, stage) for job_type in JOB_TYPES.values() for stage in job_type.stages]


def stage_of(task_name: str) -> tuple[JobType, int] | None:
    """The job type a task runs a stage of, and the stage's index; None for other tasks."""
    for job_type in JOB_TYPES.values():
        for index, stage in enumerate(job_type.stages):
            if stage.task_name == task_name:
                return job_type, index
    return None


def job_task_routes() -> dict[str, dict[str, str]]:
    """Celery routes of every stage's task, by name."""
    return {stage.task_name: {"queue": stage.queue} for _type, stage in all_stages()}


def job_task_modules() -> list[str]:
    """The worker modules defining the stages' tasks, in declaration order, once each."""
    return list(dict.fromkeys(stage.module for _type, stage in all_stages()))


def models_on(queue: str) -> list[str]:
    """The models the stages on this queue use (setting names, or FACE_DETECTOR), once each."""
    return list(
        dict.fromkeys(
            model for _type, stage in all_stages() if stage.queue == queue for model in stage.models
        )
    )


__all__ = [
    "FACE_DETECTOR",
    "JOB_TYPES",
    "JobRequestError",
    "JobType",
    "Stage",
    "all_stages",
    "get_job_type",
    "invalid_params",
    "job_task_modules",
    "job_task_routes",
    "models_on",
    "order_by_taken_at",
    "parse_taken_at",
    "stage_of",
]
