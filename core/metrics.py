"""The metrics ScanQueue's processes record, as Prometheus counters, gauges and histograms.

Defined once here, so the web, the workers and the model code share one set of names (the
operators' contract: README "Metrics"). Labels carry only bounded, non-personal values: a job
type, an error code from the catalogue, a model's registry name and version, a route template.
Never a job id, a user, a file name or a raw path.

In multiprocess mode (PROMETHEUS_MULTIPROC_DIR set when the process starts) every process writes
its values to files there, and one exporter per node sums them (core/metrics_export.py). No
metric here is unlabelled, so merely importing this module creates no file: a worker can still
choose its own fresh directory at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

# Seconds to an hour: a job waits from under a second (idle workers) to an hour of backlog, and
# runs from a fraction of a second to the task time limit (150 s by default).
JOB_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# Milliseconds to a minute, with 20 ms (the status-poll goal) as a bucket edge.
HTTP_SECONDS_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

JOBS_SUBMITTED = Counter(
    "scanqueue_jobs_submitted_total",
    "Jobs accepted by the web (a batch counts each job, a fan-out job its children too)",
    ["type"],
)
JOBS_SUCCEEDED = Counter(
    "scanqueue_jobs_succeeded_total", "Jobs that ended succeeded, once per job", ["type"]
)
JOBS_FAILED = Counter(
    "scanqueue_jobs_failed_total",
    "Jobs that ended failed, once per job, by error code (worker_lost included)",
    ["type", "error_code"],
)
JOBS_DEAD_LETTERED = Counter(
    "scanqueue_jobs_dead_lettered_total",
    "Jobs given up on because their process died MAX_ATTEMPTS times (failed worker_lost)",
    ["type"],
)
JOB_QUEUE_WAIT = Histogram(
    "scanqueue_job_queue_wait_seconds",
    "From a job's creation to its first claim by a worker",
    ["type"],
    buckets=JOB_SECONDS_BUCKETS,
)
JOB_RUN = Histogram(
    "scanqueue_job_run_seconds",
    "From a job's (last) claim to its end, succeeded or failed (worker_lost excluded)",
    ["type"],
    buckets=JOB_SECONDS_BUCKETS,
)
HTTP_REQUEST_DURATION = Histogram(
    "scanqueue_http_request_duration_seconds",
    "Web request latency by Flask URL rule (not the raw path), method and status",
    ["route", "method", "status"],
    buckets=HTTP_SECONDS_BUCKETS,
)
# The newest load in any process of the node wins: "how long did loading this model take".
MODEL_LOAD_SECONDS = Gauge(
    "scanqueue_model_load_seconds",
    "How long the last load (and warm-up) of a registry model took",
    ["model", "version"],
    multiprocess_mode="mostrecent",
)
BATCH_SIZE = Histogram(
    "scanqueue_batch_size",
    "Jobs per model call",
    ["model"],
    buckets=BATCH_SIZE_BUCKETS,
)


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time we store is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (_utc(end) - _utc(start)).total_seconds())


def record_submitted(job_types: Iterable[str]) -> None:
    """Count accepted jobs, one per type name given."""
    for job_type in job_types:
        JOBS_SUBMITTED.labels(job_type).inc()


def record_first_claim(job_type: str, created_at: datetime, claimed_at: datetime | None) -> None:
    """Observe how long a job waited for its first claim."""
    waited = _seconds(created_at, claimed_at)
    if waited is not None:
        JOB_QUEUE_WAIT.labels(job_type).observe(waited)


def record_job_end(
    job_type: str,
    started_at: datetime | None,
    finished_at: datetime | None,
    error_code: str | None = None,
) -> None:
    """Count a job's end (succeeded, or failed with ``error_code``) and observe its run time.

    Called exactly once per job: by the guarded transition that made the job final.
    """
    if error_code is None:
        JOBS_SUCCEEDED.labels(job_type).inc()
    else:
        JOBS_FAILED.labels(job_type, error_code).inc()
    ran = _seconds(started_at, finished_at)
    if ran is not None:
        JOB_RUN.labels(job_type).observe(ran)


def record_dead_letter(job_type: str, error_code: str) -> None:
    """Count a job given up on (its process kept dying): failed with the code, and dead-lettered.

    Its run time is not observed: the process died at some unknown point before the give-up.
    """
    JOBS_FAILED.labels(job_type, error_code).inc()
    JOBS_DEAD_LETTERED.labels(job_type).inc()
