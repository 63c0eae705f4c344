"""A gpu worker that batches: the threads pool, one thread per job, their model calls merged.

``celery worker -Q gpu --pool threads --concurrency $GPU_BATCH_MAX`` (``worker_pool``
chooses it): every job keeps its own Celery task, so late acks, redelivery of a lost worker's
messages, the attempt limit, cancel and progress stay as they are; ``models.batching`` merges
the model calls of the threads. With the prefork pool (or GPU_BATCH_MAX=1) nothing is batched.
Jobs sharing a process share its death: ``models.isolation`` runs a job that may have killed a
process before alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery.signals import celeryd_after_setup, worker_ready
from flask import Flask

from core.config import Settings
from core.queues import GPU_QUEUE
from core.settings_access import SETTINGS_KEY
from models.batching import process_batching
from models.isolation import process_gate
from workers.liveness import THREADS_POOL_MODULE

log = logging.getLogger(__name__)


def worker_pool(batch_max: int, queues: str, concurrency: int) -> tuple[str, int]:
    """The pool and concurrency of a worker on these queues: threads x GPU_BATCH_MAX when it
    serves the gpu queue and batches, else prefork with the given concurrency."""
    if GPU_QUEUE in queues.split(",") and batch_max > 1:
        return "threads", batch_max
    return "prefork", concurrency


def _runs_threads(instance: Any) -> bool:
    return getattr(instance.pool_cls, "__module__", "") == THREADS_POOL_MODULE


def register(flask_app: Flask, warm_up: Callable[[Flask], None]) -> None:
    """Batch in a threads-pool gpu worker: settings, model warm-up; isolate suspect jobs in any
    threads-pool worker (the gate also counts the running jobs)."""
    settings: Settings = flask_app.extensions[SETTINGS_KEY]
    threads = {"gpu": False}

    @celeryd_after_setup.connect(weak=False)
    def enable(sender: str, instance: Any, **_kwargs: Any) -> None:
        if not _runs_threads(instance):
            return
        # Jobs share this process: one that may have killed a process before runs alone. A job
        # inside past the hard limit is hung (the soft limit stops any job that reports).
        process_gate.enable(stuck_after_s=settings.TASK_TIME_LIMIT)
        if GPU_QUEUE not in set(instance.app.amqp.queues.consume_from or {}):
            return
        threads["gpu"] = True
        process_batching.max_rows = settings.GPU_BATCH_MAX
        process_batching.wait_s = settings.GPU_BATCH_WAIT_MS / 1000
        process_batching.call_timeout_s = settings.TASK_SOFT_TIME_LIMIT
        log.info(
            "batching model calls: up to %d rows, waiting up to %.0f ms",
            settings.GPU_BATCH_MAX,
            settings.GPU_BATCH_WAIT_MS,
        )

    @worker_ready.connect(weak=False)
    def load_models(**_kwargs: Any) -> None:
        # No worker_process_init in the threads pool: the one process loads its models here,
        # before its event loop takes the first message.
        if threads["gpu"]:
            warm_up(flask_app)
