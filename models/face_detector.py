"""The MTCNN face detector of a worker process: created after the fork, warmed up, reused.

Its weights ship inside the ``mtcnn`` package (nothing is downloaded); their combined sha256 is
recorded on every job, like a registry model's.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from models.batching import BatchedDetector
from models.model_registry import file_sha256
from pipelines.base import ModelIdentity

log = logging.getLogger(__name__)

DETECTOR_NAME = "mtcnn"
# A mid-grey frame runs every network once (no face found), compiling the graphs.
WARM_UP_SIZE = 160


@dataclass(frozen=True)
class LoadedDetector:
    """An MTCNN instance and the identity of its weights."""

    detector: Any
    identity: ModelIdentity


def _weights_sha256(package_dir: Path) -> str:
    """One digest over the package's weight files, in name order."""
    digest = hashlib.sha256()
    for path in sorted((package_dir / "assets" / "weights").glob("*")):
        digest.update(path.name.encode())
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def load_detector() -> LoadedDetector:
    """Create MTCNN on this process's device and run it once."""
    import mtcnn  # workers only: imports TensorFlow

    detector = mtcnn.MTCNN(stages="face_and_landmarks_detection")
    warm_up = np.full((WARM_UP_SIZE, WARM_UP_SIZE, 3), 128, dtype=np.uint8)
    detector.detect_faces([warm_up])
    identity = ModelIdentity(
        DETECTOR_NAME, metadata.version("mtcnn"), _weights_sha256(Path(mtcnn.__file__).parent)
    )
    log.info("loaded face detector %s %s", identity.name, identity.version)
    # Jobs running at once in this process share its calls (GPU_BATCH_MAX; models.batching).
    return LoadedDetector(BatchedDetector(detector, DETECTOR_NAME), identity)


_process_detector: LoadedDetector | None = None
# A threads-pool worker's jobs share the detector: it is created once, not per thread.
_creating = threading.Lock()


def face_detector() -> LoadedDetector:
    """This process's detector, created on first use (at warm-up in a gpu worker)."""
    global _process_detector
    with _creating:
        if _process_detector is None:
            _process_detector = load_detector()
    return _process_detector
