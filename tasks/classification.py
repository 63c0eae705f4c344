"""Task: classify a set of images of one subject with a registry classifier (queue ``gpu``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Task, shared_task

from core.jobtypes.classification import JOB_TYPE
from core.settings_access import current_settings
from models.serving import job_model
from pipelines.base import PipelineOutput, ProgressCallback
from pipelines.classification import classify_images
from tasks.runner import run_job


def classify_with_model(
    inputs: list[Path], params: dict[str, Any], progress: ProgressCallback
) -> PipelineOutput:
    """Load the chosen classifier (params.model, else CLASSIFICATION_MODEL) and run it."""
    settings = current_settings()
    loaded = job_model(settings, JOB_TYPE, params)
    threshold = params.get("uncertain_below")
    if threshold is None:
        threshold = loaded.manifest.uncertain_below
    if threshold is None:
        threshold = settings.CLASSIFICATION_UNCERTAIN_BELOW
    return classify_images(
        inputs,
        loaded.model,
        loaded.manifest,
        float(threshold),
        progress,
        loaded.identity,
        settings.image_limits,
    )


@shared_task(name=JOB_TYPE.task_name, bind=True)
def classify(self: Task, job_id: str) -> str:
    """Classify the job's images and record the per-image and aggregate probabilities."""
    return run_job(self, job_id, classify_with_model)
