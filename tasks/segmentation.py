"""Task: segment a scan with a registry segmentation model (queue ``gpu``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from celery import Task, shared_task

from core.jobtypes.segmentation import JOB_TYPE
from core.settings_access import current_settings
from models.serving import job_model
from pipelines.base import PipelineOutput, ProgressCallback
from pipelines.segmentation import segmentation_pipeline
from tasks.runner import run_job


def segment_with_model(
    inputs: list[Path],
    params: dict[str, Any],
    progress: ProgressCallback,
    with_overlay: bool = True,
) -> PipelineOutput:
    """Run the segmentation pipeline with the job's model and name the model in the output."""
    loaded = job_model(current_settings(), JOB_TYPE, params)
    output = segmentation_pipeline(
        inputs,
        params,
        progress,
        model=loaded.model,
        manifest=loaded.manifest,
        with_overlay=with_overlay,
        limits=current_settings().image_limits,
    )
    return dataclasses.replace(output, model=loaded.identity)


@shared_task(name=JOB_TYPE.task_name, bind=True)
def segment(self: Task, job_id: str) -> str:
    """Segment the job's scan and store its mask, overlay and class areas."""
    return run_job(self, job_id, segment_with_model)
