"""The retry policy of a job whose database is unreachable."""

from __future__ import annotations

from core.config import Settings
from tasks.backoff import retry_delay


def test_delays_double_up_to_the_cap() -> None:
    assert [retry_delay(n, 2, 30) for n in range(7)] == [2, 4, 8, 16, 30, 30, 30]


def test_the_default_policy_rides_out_two_minutes_and_resumes_within_the_cap() -> None:
    settings = Settings()
    delays = [
        retry_delay(n, settings.DB_RETRY_BASE_SECONDS, settings.DB_RETRY_MAX_DELAY_SECONDS)
        for n in range(settings.TASK_MAX_RETRIES)
    ]
    # A 60 s outage (issue 10) with room to spare, before the retries run out.
    assert sum(delays) >= 120
    # Once the database is back, the next try is at most this far away (no sweep needed).
    assert max(delays) <= 30
