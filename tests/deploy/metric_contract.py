"""The metric names the app exports (issue 12's contract), and the ones a PromQL query uses.

Dashboards and alert rules may only use these: a misspelt or renamed metric makes a panel empty
and an alert silent without any error, so the tests hold every query to this list.
"""

from __future__ import annotations

import re

CONTRACT_METRICS = frozenset(
    {
        # web target: queues, broker, jobs (computed at scrape time)
        "scanqueue_queue_messages",
        "scanqueue_queue_oldest_message_age_seconds",
        "scanqueue_queue_consumers",
        "scanqueue_broker_up",
        "scanqueue_jobs",
        "scanqueue_dead_letter_jobs",
        "scanqueue_workers",
        "scanqueue_worker_processes_ready",
        "scanqueue_jobs_submitted_total",
        "scanqueue_http_request_duration_seconds",
        # worker targets
        "scanqueue_jobs_succeeded_total",
        "scanqueue_jobs_failed_total",
        "scanqueue_jobs_dead_lettered_total",
        "scanqueue_job_queue_wait_seconds",
        "scanqueue_job_run_seconds",
        "scanqueue_worker_up",
        "scanqueue_worker_busy_processes",
        "scanqueue_model_load_seconds",
        "scanqueue_batch_size",
    }
)

# Series a histogram (or a counter, for clients that add the suffix) is exposed as.
SERIES_SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")

_NAME = re.compile(r"\bscanqueue_[a-z_]+")


def metric_names_in(expr: str) -> set[str]:
    """Every ``scanqueue_*`` name a query mentions, exactly as written."""
    return set(_NAME.findall(expr))


def is_contract_series(name: str) -> bool:
    """Whether ``name`` is a contract metric, or one of a contract metric's suffixed series."""
    if name in CONTRACT_METRICS:
        return True
    return any(name.endswith(s) and name[: -len(s)] in CONTRACT_METRICS for s in SERIES_SUFFIXES)
