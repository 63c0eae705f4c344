"""Task: measure the ellipse perimeter of a binary mask."""

from __future__ import annotations

from celery import Task, shared_task

from pipelines.perimeter import perimeter_pipeline
from tasks.runner import run_job


@shared_task(name="scanqueue.perimeter", bind=True)
def measure_perimeter(self: Task, job_id: str) -> str:
    """Fit the ellipse and store the measurement and overlay for the job."""
    return run_job(self, job_id, perimeter_pipeline)
