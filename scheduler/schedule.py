"""The beat schedule; periodic jobs (follow-up emails, sweeps, retention) register here."""

from __future__ import annotations

from typing import Any

# Seconds between outbox sweeps (unsent email is queued again; see tasks.mail).
OUTBOX_SWEEP_SECONDS = 600

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "outbox-sweep": {"task": "scanqueue.outbox.sweep", "schedule": OUTBOX_SWEEP_SECONDS},
}
