"""The beat schedule: periodic jobs and how often they run (intervals from the settings)."""

from __future__ import annotations

from typing import Any

from core.config import Settings

# Seconds between outbox sweeps (unsent email is queued again; see scheduler.tasks).
OUTBOX_SWEEP_SECONDS = 600


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Task name and interval of every periodic job."""
    return {
        "outbox-sweep": {"task": "scanqueue.outbox.sweep", "schedule": OUTBOX_SWEEP_SECONDS},
        "outcome-followups": {
            "task": "scanqueue.followups.request_due",
            "schedule": settings.FOLLOWUP_CHECK_SECONDS,
        },
        "stale-job-sweep": {
            "task": "scanqueue.jobs.sweep_stale",
            "schedule": settings.STALE_SWEEP_SECONDS,
        },
        "artifact-retention": {
            "task": "scanqueue.artifacts.purge_old",
            "schedule": settings.RETENTION_SWEEP_SECONDS,
        },
    }
