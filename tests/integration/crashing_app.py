"""A worker app whose perimeter pipeline dies like an out-of-memory kill on large masks.

Tests start a worker with ``-A tests.integration.crashing_app``: a mask above
``DEADLY_PIXELS`` SIGKILLs the pool process, as the kernel's OOM killer does to a perimeter job
that needs more memory than its container has; smaller masks are measured as usual.
"""

from __future__ import annotations

import os
import signal
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


def pipeline_or_death(
    inputs: list[Path],
    params: dict[str, Any],
    progress: ProgressCallback,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> PipelineOutput:
    """Die on a large mask (after a progress report, as a real job would), measure otherwise."""
    with Image.open(inputs[0]) as mask:
        deadly = mask.width * mask.height > DEADLY_PIXELS
    if deadly:
        progress(10)
        os.kill(os.getpid(), signal.SIGKILL)
    return perimeter_pipeline(inputs, params, progress, limits)


tasks.perimeter.perimeter_pipeline = pipeline_or_death
