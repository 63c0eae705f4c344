"""Tasks: head circumference as a chain, segmentation on ``gpu`` then measurement on ``cpu``."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from celery import Task, shared_task

from pipelines.base import PipelineOutput, ProgressCallback
from pipelines.head_circumference import measure_head
from tasks.runner import Stage, run_job
from tasks.segmentation import segment_with_model
from webapp.settings_access import current_settings
from webapp.storage import MediaStorage

MEASURE_TASK = "scanqueue.head_circumference.measure"
MASK_ARTIFACT = "mask.png"


@shared_task(name="scanqueue.head_circumference.segment", bind=True)
def segment_head(self: Task, job_id: str) -> str:
    """Stage 1: predict the head mask, keep it as an artifact, hand the job to stage 2."""
    return run_job(
        self, job_id, segment_with_model, Stage(next_task=MEASURE_TASK, progress_after=60)
    )


@shared_task(name=MEASURE_TASK, bind=True)
def measure(self: Task, job_id: str) -> str:
    """Stage 2: fit the ellipse to the stage-1 mask and record the circumference."""
    storage = MediaStorage(current_settings().MEDIA_ROOT)
    mask_path = storage.resolve(storage.artifact_path(uuid.UUID(job_id), MASK_ARTIFACT))

    def measure_stage(
        inputs: list[Path], params: dict[str, Any], progress: ProgressCallback
    ) -> PipelineOutput:
        return measure_head(inputs[0], mask_path, params, progress)

    return run_job(self, job_id, measure_stage, Stage(first=False))
