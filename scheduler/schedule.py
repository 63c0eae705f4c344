"""The beat schedule; periodic jobs (follow-up emails, sweeps, retention) register here."""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {}
