"""Task: find, align and crop the faces in a job's photos (queue ``gpu``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Task, shared_task

from core.jobtypes.face_extraction import JOB_TYPE
from core.settings_access import current_settings
from models.face_detector import face_detector
from pipelines.base import PipelineOutput, ProgressCallback
from pipelines.faces import extract_faces
from tasks.runner import run_job


def extract_with_detector(
    inputs: list[Path], params: dict[str, Any], progress: ProgressCallback
) -> PipelineOutput:
    """Run face extraction with this process's MTCNN."""
    loaded = face_detector()
    limits = current_settings().image_limits
    return extract_faces(loaded.detector, inputs, params, progress, loaded.identity, limits)


@shared_task(name=JOB_TYPE.task_name, bind=True)
def extract(self: Task, job_id: str) -> str:
    """Detect the faces of the job's photos and store crops, overlays and the result."""
    return run_job(self, job_id, extract_with_detector)
