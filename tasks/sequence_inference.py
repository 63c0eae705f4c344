"""Task: the sequence model over the face crops of a sequence job's children (queue ``gpu``).

Queued by the last of the job's face-extraction children to end (``tasks.runner``).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from celery import Task, shared_task

from core.database import db
from core.jobtypes import order_by_taken_at
from core.jobtypes.sequence_inference import JOB_TYPE
from core.records import Job, JobStatus
from core.settings_access import current_settings
from core.storage import MediaStorage
from models.serving import job_model
from pipelines.base import PipelineOutput, ProgressCallback
from pipelines.faces import crop_artifact_name
from pipelines.sequence import Frame, predict_trend
from tasks.runner import run_job


def _frame(child: Job, taken_at: str | None, storage: MediaStorage) -> Frame:
    """The child's face crop as a frame, or the reason it has none."""
    position = child.parent_position or 0
    if child.status != JobStatus.SUCCEEDED.value:
        return Frame(position, taken_at, None, child.error_code or child.status)
    crop_name = crop_artifact_name(0, 0)
    if not any(artifact.name == crop_name for artifact in child.artifacts):
        return Frame(position, taken_at, None, "no_face")
    return Frame(position, taken_at, storage.resolve(storage.artifact_path(child.id, crop_name)))


def series_frames(job: Job, storage: MediaStorage) -> list[Frame]:
    """The job's photos as frames, in time order."""
    taken_at = job.params.get("taken_at")
    children = {child.parent_position: child for child in job.children}
    frames = []
    for position in order_by_taken_at(taken_at, len(job.inputs)):
        child = children.get(position)
        moment = taken_at[position] if taken_at else None
        if child is None:
            frames.append(Frame(position, moment, None, "missing_step"))
        else:
            frames.append(_frame(child, moment, storage))
    return frames


@shared_task(name=JOB_TYPE.task_name, bind=True)
def predict(self: Task, job_id: str) -> str:
    """Run the sequence model on the job's face crops and record P(improving)."""

    def sequence_stage(
        _inputs: list[Path], params: dict[str, Any], progress: ProgressCallback
    ) -> PipelineOutput:
        settings = current_settings()
        loaded = job_model(settings, JOB_TYPE, params)
        job = db.session.get(Job, uuid.UUID(job_id))
        frames = series_frames(job, MediaStorage(settings.MEDIA_ROOT))
        return predict_trend(frames, loaded.model, loaded.manifest, progress, loaded.identity)

    return run_job(self, job_id, sequence_stage)
