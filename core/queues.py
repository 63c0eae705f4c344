"""Celery configuration: queues, routes by task name, reliability and time limits.

Pure data: the web process imports it to publish, so it must stay free of task and model imports.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from core.jobtypes import job_task_routes
from core.queue_names import CPU_QUEUE, GPU_QUEUE, QUEUES

# Routes by explicit task name: producers (the web) publish by name without importing the tasks.
# Job tasks are routed as their job type declares their stages; the rest are listed here.
TASK_ROUTES: dict[str, dict[str, str]] = {
    **job_task_routes(),
    "scanqueue.send_email": {"queue": CPU_QUEUE},
    "scanqueue.outbox.sweep": {"queue": CPU_QUEUE},
    "scanqueue.followups.request_due": {"queue": CPU_QUEUE},
    "scanqueue.jobs.sweep_stale": {"queue": CPU_QUEUE},
    "scanqueue.artifacts.purge_old": {"queue": CPU_QUEUE},
}


__all__ = ["CPU_QUEUE", "GPU_QUEUE", "QUEUES", "TASK_ROUTES", "build_celery_config"]


def build_celery_config(
    *,
    broker_url: str,
    soft_time_limit: int,
    time_limit: int,
    visibility_timeout: int,
    proc_alive_timeout: float = 180.0,
    beat_schedule: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The Celery settings for one deployment."""
    return {
        "broker_url": broker_url,
        "broker_connection_retry_on_startup": True,
        # Redis re-delivers an unacknowledged message after this long; it must outlast the
        # hard time limit or a slow task would run twice at the same time.
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout,
            "socket_connect_timeout": 3,
        },
        # Postgres holds job state; Celery results would be a second, stale copy.
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        # Each queue gets its own exchange and routing key: left implicit, Celery binds every queue
        # to the default exchange and key, and a message for one queue would land in both.
        "task_queues": [Queue(name, Exchange(name), routing_key=name) for name in QUEUES],
        "task_default_queue": CPU_QUEUE,
        "task_routes": TASK_ROUTES,
        "task_create_missing_queues": False,
        # Acknowledge after the task ran, and give the message back if the worker process dies,
        # so a crash or a kill never loses a job (tasks are idempotent for that reason).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One message at a time per process: a GPU job never waits behind another in a prefetch
        # buffer while an idle worker could take it.
        "worker_prefetch_multiplier": 1,
        # A new pool process loads and warms the models before it reports up; Celery kills one
        # that takes longer than this (default 4 s) and its replacement meets the same fate.
        "worker_proc_alive_timeout": proc_alive_timeout,
        "task_soft_time_limit": soft_time_limit,
        "task_time_limit": time_limit,
        # Fail fast when the broker is down so the API can answer 503 instead of hanging.
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        "worker_hijack_root_logger": False,
        "beat_schedule": beat_schedule or {},
    }
