"""Celery bound to the Flask app (Flask's documented pattern), and publishing jobs by task name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.signals import before_task_publish
from flask import Flask, current_app

from core.config import Settings
from core.jobtypes import JOB_TYPES
from core.queue_metrics import stamp_sent_at
from core.queues import build_celery_config
from core.records import Job


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    """Create the Celery app whose tasks run inside this Flask app's context."""

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(
        build_celery_config(
            broker_url=settings.REDIS_URL,
            soft_time_limit=settings.TASK_SOFT_TIME_LIMIT,
            time_limit=settings.TASK_TIME_LIMIT,
            visibility_timeout=settings.BROKER_VISIBILITY_TIMEOUT,
            proc_alive_timeout=settings.WORKER_PROC_ALIVE_TIMEOUT,
        )
    )
    celery_app.set_default()
    # Every message this process publishes carries its send time (the queue-age gauge reads it).
    before_task_publish.connect(stamp_sent_at, weak=False, dispatch_uid="scanqueue-sent-at")
    app.extensions["celery"] = celery_app
    return celery_app


def current_celery() -> Celery:
    """The Celery app of the current Flask app."""
    return current_app.extensions["celery"]


def publish_job(job: Job, send_task: Callable[..., object] | None = None) -> None:
    """Publish the job's own task. The job id doubles as the Celery task id: revoke, Flower and
    the lost-message sweep find the job's message by it."""
    send = send_task or current_celery().send_task
    send(JOB_TYPES[job.type].task_name, args=[str(job.id)], task_id=str(job.id))


def enqueue_job(job: Job) -> None:
    """Publish the job's task, or its children's for a fan-out job (the last one to end
    publishes the parent's)."""
    for target in job.children or [job]:
        publish_job(target)


def revoke_job(job: Job) -> None:
    """Ask workers to drop the job's message if it has not started yet.

    A running job is never terminated: killing the pool process would make the worker start a
    new one, which spends seconds loading the models, and a user could keep a GPU worker doing
    only that. The job is cancelled in the database, and the running task sees it at its next
    progress report (between stages, photos and batches) and stops there.
    """
    current_celery().control.revoke(str(job.id))
