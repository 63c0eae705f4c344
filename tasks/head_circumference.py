"""Tasks: head circumference as a chain, segmentation on ``gpu`` then measurement on ``cpu``."""

from __future__ import annotations

import uuid
from functools import partial
from pathlib import Path
from typing import Any

from celery import Task, shared_task

from core.database import db
from core.head_measurements import job_gestational_age
from core.jobtypes.head_circumference import JOB_TYPE
from core.records import Job
from core.settings_access import current_settings
from core.storage import MediaStorage
from models.model_registry import ModelRegistry
from models.serving import model_unavailable
from pipelines.base import PipelineOutput, ProgressCallback
from pipelines.head_circumference import measure_head
from tasks.runner import run_job
from tasks.segmentation import segment_with_model

SEGMENT, MEASURE = JOB_TYPE.stages
MASK_ARTIFACT = "mask.png"


def head_fit(model_dir: Path, job_id: uuid.UUID) -> tuple[float, str]:
    """(boundary offset px, ellipse fit) of the model version that segmented this job.

    Unknown model: (0, least squares), the plain measurement.
    """
    job = db.session.get(Job, job_id)
    if job is None or not job.model_name or not job.model_version:
        return 0.0, "least_squares"
    with model_unavailable():
        manifest = ModelRegistry(model_dir).manifest(job.model_name, job.model_version)
    return manifest.boundary_offset_px, manifest.ellipse_fit


@shared_task(name=SEGMENT.task_name, bind=True)
def segment_head(self: Task, job_id: str) -> str:
    """Stage 1: predict the head mask, keep it as an artifact, hand the job to stage 2."""
    # Stage 2 draws the overlay that matters (the ellipse on the scan); skip the mask tint here.
    mask_only = partial(segment_with_model, with_overlay=False)
    return run_job(self, job_id, mask_only)


@shared_task(name=MEASURE.task_name, bind=True)
def measure(self: Task, job_id: str) -> str:
    """Stage 2: fit the ellipse to the stage-1 mask and record the circumference, placed on the
    growth standard for the gestational age at the scan."""
    settings = current_settings()
    storage = MediaStorage(settings.MEDIA_ROOT)
    mask_path = storage.resolve(storage.artifact_path(uuid.UUID(job_id), MASK_ARTIFACT))

    def measure_stage(
        inputs: list[Path], params: dict[str, Any], progress: ProgressCallback
    ) -> PipelineOutput:
        offset, fit = head_fit(settings.MODEL_DIR, uuid.UUID(job_id))
        job = db.session.get(Job, uuid.UUID(job_id))
        age = job_gestational_age(job) if job is not None else None
        return measure_head(
            inputs[0], mask_path, params, progress, offset, settings.image_limits, age, fit
        )

    return run_job(self, job_id, measure_stage)
