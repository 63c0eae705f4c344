"""Per-process worker start-up: pin the GPU before any framework starts, then warm up the models.

Model loading itself arrives with the model-serving task types; until then there is nothing to warm.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery.signals import worker_process_init

log = logging.getLogger(__name__)


def pin_gpu() -> None:
    """Restrict this process to one GPU when the operator names it (WORKER_GPU=<index>)."""
    gpu = os.environ.get("WORKER_GPU")
    if gpu is not None:
        # Must happen before TensorFlow initialises CUDA in this process, hence after the fork.
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        log.info("worker process pinned to GPU %s", gpu)


@worker_process_init.connect
def on_worker_process_init(**_kwargs: Any) -> None:
    """Runs in each pool process after the fork."""
    pin_gpu()
