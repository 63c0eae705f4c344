"""What a job-type declaration says: plain data the web, the workers and the docs all read.

Nothing here imports task, model or HTTP code: the web validates and publishes from it, the
workers derive their routes, task modules and warm-up from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ParamsValidator = Callable[[Mapping[str, Any]], dict[str, Any]]
JsonSchema = dict[str, Any]

MASK_FORMATS = frozenset({"PNG", "JPEG", "TIFF"})
PHOTO_FORMATS = frozenset({"PNG", "JPEG"})
SCAN_FORMATS = MASK_FORMATS | {"DICOM"}

# A model a worker loads and warms up for a type: a registry model named by a setting
# (e.g. "SEGMENTATION_MODEL", its version in "<setting>_VERSION"), or the built-in face detector.
FACE_DETECTOR = "mtcnn"


class JobRequestError(ValueError):
    """A job request the declarations refuse, with a stable code and a readable message; the web
    answers it as a 400."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Stage:
    """One Celery task of a job type: its explicit name, the queue it runs on, and the worker
    module that defines it (imported by workers only; the web publishes by name)."""

    task_name: str
    queue: str
    module: str
    # The job's progress once this stage has handed the job to the next one.
    progress_after: int = 100
    # The models this stage runs: setting names of registry models (the version in
    # "<setting>_VERSION"), or FACE_DETECTOR. Workers on its queue load them at start-up.
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobType:
    """One job type: what it accepts, how it runs (its stages, in order) and how its result
    looks. Declared once, in its own module of this package."""

    name: str
    description: str
    # Run in order on one job row: the first is published when the job is created; each hands
    # the job to the next. A fan-out type's stages run after all its children have ended.
    stages: tuple[Stage, ...]
    image_formats: frozenset[str]
    validate_params: ParamsValidator
    # The accepted params as JSON Schema: the API documents it, the upload page shows its fields.
    params_schema: JsonSchema
    # The result's JSON Schema (documented per type in the OpenAPI document).
    result_schema: JsonSchema
    min_files: int = 1
    max_files: int = 1
    # Several files make several jobs, one per file, instead of one job over all of them.
    one_job_per_file: bool = False
    # pixel_spacing_mm must come from the params or from every file (DICOM PixelSpacing).
    needs_pixel_spacing: bool = False
    # Checks the params against the number of files (after both were validated on their own).
    check_file_count: Callable[[Mapping[str, Any], int], None] | None = None
    # A fan-out type runs one job of this type per file first (its children, in parallel), and
    # its own stages once they have all ended.
    child_type: str | None = None
    child_params: ParamsValidator | None = None
    # The task (core.model_registry.TASKS) of the registry model its first declared model
    # setting names; params.model may pick another model of this task. None: no registry model.
    model_task: str | None = None
    # The job page shows the result with templates/jobs/_result_<result_partial>.html (default:
    # the type's name).
    result_partial: str = ""
    # The result's one-line summary on the upload page: (result key, unit), e.g. a number in mm.
    summary: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError(f"job type {self.name!r} declares no stage")
        if not self.result_partial:
            object.__setattr__(self, "result_partial", self.name)

    @property
    def task_name(self) -> str:
        """The task published when a job of this type is queued (or its children have ended)."""
        return self.stages[0].task_name

    @property
    def models(self) -> tuple[str, ...]:
        """The models its stages run (setting names, or FACE_DETECTOR)."""
        return tuple(dict.fromkeys(model for stage in self.stages for model in stage.models))

    @property
    def param_names(self) -> frozenset[str]:
        """The params this type accepts."""
        return frozenset(self.params_schema.get("properties", {}))
