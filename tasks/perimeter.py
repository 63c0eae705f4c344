"""Task: measure the ellipse perimeter of a binary mask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Task, shared_task

from core.jobtypes.perimeter import JOB_TYPE
from core.settings_access import current_settings
from pipelines.base import PipelineOutput, ProgressCallback
from pipelines.perimeter import perimeter_pipeline
from tasks.runner import run_job


def perimeter_within_limits(
    inputs: list[Path], params: dict[str, Any], progress: ProgressCallback
) -> PipelineOutput:
    """The perimeter pipeline, the mask's size checked against the upload limits first."""
    return perimeter_pipeline(inputs, params, progress, current_settings().image_limits)


@shared_task(name=JOB_TYPE.task_name, bind=True)
def measure_perimeter(self: Task, job_id: str) -> str:
    """Fit the ellipse and store the measurement and overlay for the job."""
    return run_job(self, job_id, perimeter_within_limits)
