"""Beat tasks (queue ``cpu``): outcome follow-ups, the stale and lost job sweep, artifact retention.

Each is safe to run twice at once: the database decides (unique follow-ups, guarded updates).
"""

from __future__ import annotations

from datetime import date

from celery import Task, shared_task

from webapp.followups import request_due_followups
from webapp.housekeeping import purge_old_artifacts, requeue_lost_jobs, sweep_stale_jobs


@shared_task(name="scanqueue.followups.request_due")
def request_followups() -> int:
    """Email every subject owner whose follow-up is due; how many requests were created."""
    return len(request_due_followups(date.today()))


@shared_task(name="scanqueue.jobs.sweep_stale", bind=True)
def sweep_stale(self: Task) -> dict[str, int]:
    """Re-queue or fail running jobs whose worker went silent; publish again queued jobs whose
    broker message was lost."""
    swept = sweep_stale_jobs(send_task=self.app.send_task)
    lost = requeue_lost_jobs(send_task=self.app.send_task)
    return {"requeued": len(swept.requeued), "failed": len(swept.failed), "republished": len(lost)}


@shared_task(name="scanqueue.artifacts.purge_old")
def purge_artifacts() -> int:
    """Remove artifacts past the retention age; how many jobs were purged."""
    return purge_old_artifacts()
