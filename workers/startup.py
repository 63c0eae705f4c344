"""Per-process worker start-up: pin the GPU, fresh database connections, warm the models up.

Models (the MTCNN face detector and the registry's segmentation and sequence models) are
loaded after the fork (``worker_process_init``): TensorFlow state does not survive a
fork, and each pool process must own its copy. Only workers that consume the ``gpu`` queue load
them; a ``cpu`` worker never imports TensorFlow.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery.signals import celeryd_after_setup, worker_process_init
from flask import Flask

from core.database import db
from core.jobtypes import FACE_DETECTOR, models_on
from core.queues import GPU_QUEUE
from core.settings_access import SETTINGS_KEY
from workers import batching, metrics_exporter
from workers.liveness import liveness_step

log = logging.getLogger(__name__)

# Filled in the main process before the pool forks, so every child sees it.
consumed_queues: set[str] = set()


def pin_gpu() -> None:
    """Restrict this process to one GPU when the operator names it (WORKER_GPU=<index>)."""
    gpu = os.environ.get("WORKER_GPU")
    if gpu is not None:
        # Must happen before TensorFlow initialises CUDA in this process, hence after the fork.
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        log.info("worker process pinned to GPU %s", gpu)


def warm_up_models(flask_app: Flask) -> None:
    """Load and warm the default models of the job stages on the gpu queue (as their job types
    declare them), so the first job does not pay for them; a model a job names in its params is
    loaded on first use (models.serving.ModelCache)."""
    from models.face_detector import face_detector
    from models.serving import RegistryError, configured_model

    settings = flask_app.extensions[SETTINGS_KEY]
    for model in models_on(GPU_QUEUE):
        if model == FACE_DETECTOR:
            face_detector()
            continue
        try:
            configured_model(settings, model)
        except RegistryError as exc:
            # Jobs that need it fail with model_unavailable and this reason; the worker lives.
            log.error("%s unavailable: %s", model, exc)


def register(flask_app: Flask) -> None:
    """Connect the start-up signals and the liveness step for this app's worker."""
    settings = flask_app.extensions[SETTINGS_KEY]
    flask_app.extensions["celery"].steps["consumer"].add(liveness_step(settings))
    metrics_exporter.register(settings)
    batching.register(flask_app, warm_up_models)

    @celeryd_after_setup.connect(weak=False)
    def remember_queues(sender: str, instance: Any, **_kwargs: Any) -> None:
        consumed_queues.update(instance.app.amqp.queues.consume_from or {})

    @worker_process_init.connect(weak=False)
    def start_process(**_kwargs: Any) -> None:
        pin_gpu()
        with flask_app.app_context():
            # Connections inherited through the fork belong to the parent; open our own.
            for engine in db.engines.values():
                engine.dispose(close=False)
        delay = flask_app.extensions[SETTINGS_KEY].WORKER_STARTUP_DELAY_SECONDS
        if delay:
            time.sleep(delay)  # tests: a start-up slower than Celery's default allowance
        if GPU_QUEUE in consumed_queues:
            started = time.monotonic()
            warm_up_models(flask_app)
            log.info("models loaded in %.1f s", time.monotonic() - started)
