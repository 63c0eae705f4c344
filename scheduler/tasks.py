"""Beat tasks (queue ``cpu``): outcome follow-ups, the stale and lost job sweep, artifact retention,
the outbox sweep.

Each is safe to run twice at once: the database decides (unique follow-ups, guarded updates).
"""

from __future__ import annotations

from datetime import date, timedelta

from celery import Task, shared_task

from core.mailer import SEND_EMAIL_TASK, unsent_ids
from core.settings_access import current_settings
from scheduler.followups import request_due_followups
from scheduler.housekeeping import purge_old_artifacts, requeue_lost_jobs, sweep_stale_jobs


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


# The sweep leaves a message alone while its own retries may still be under way.
SWEEP_GRACE = timedelta(minutes=5)


@shared_task(name="scanqueue.outbox.sweep", bind=True)
def sweep_outbox(self: Task) -> int:
    """Queue every unsent message whose last try is old: none is lost to a broker outage or to
    retries that ran out. Returns how many were queued."""
    settings = current_settings()
    stale = unsent_ids(timedelta(seconds=settings.MAIL_RETRY_MAX_DELAY_SECONDS) + SWEEP_GRACE)
    for email_id in stale:
        self.app.send_task(SEND_EMAIL_TASK, args=[email_id])
    return len(stale)
