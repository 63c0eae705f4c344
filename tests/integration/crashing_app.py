"""A worker app whose perimeter pipeline dies like an out-of-memory kill on large masks.

Tests start a worker with ``-A tests.integration.crashing_app``: a mask above
``DEADLY_PIXELS`` SIGKILLs the pool process, as the kernel's OOM killer does to a perimeter job
that needs more memory than its container has; smaller masks are measured as usual.

``CRASHING_APP_WORK_SECONDS`` (default 0) makes every job work that long before it measures
(reporting progress), and a deadly one die halfway through: jobs that share a threads-pool
worker's process are then still running when one of them kills it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from PIL import Image

import tasks.perimeter
from pipelines.base import PipelineOutput, ProgressCallback
from pipelines.limits import DEFAULT_LIMITS, ImageLimits
from pipelines.perimeter import perimeter_pipeline
from workers.celery_app import celery, flask_app

__all__ = ["celery", "flask_app"]

DEADLY_PIXELS = 3000 * 3000
WORK_SECONDS = float(os.environ.get("CRASHING_APP_WORK_SECONDS", "0"))


def pipeline_or_death(
    inputs: list[Path],
    params: dict[str, Any],
    progress: ProgressCallback,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> PipelineOutput:
    """Die on a large mask (after a progress report, as a real job would), measure otherwise."""
    with Image.open(inputs[0]) as mask:
        deadly = mask.width * mask.height > DEADLY_PIXELS
    progress(10)
    if deadly:
        time.sleep(WORK_SECONDS / 2)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(WORK_SECONDS)
    return perimeter_pipeline(inputs, params, progress, limits)


tasks.perimeter.perimeter_pipeline = pipeline_or_death
