"""What every pipeline returns, and how it reports a failure the user can act on."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

# Pipelines report progress between stages, photos and batches; the callback may raise
# JobCancelled there, which is how a running job is stopped without killing its process.
ProgressCallback = Callable[[int], None]

# Artifacts are review images: fast compression matters more than a few kB (level 6: 3x slower).
PNG_COMPRESS_LEVEL = 1


def no_progress(_percent: int) -> None:
    """A progress callback that ignores updates (for callers that do not track progress)."""


class JobCancelled(Exception):
    """Raised by a progress callback when the job stopped running (cancelled): the pipeline
    stops at its next progress report and nothing more is recorded."""


class PipelineError(Exception):
    """The input cannot be processed; ``code`` is machine-readable, ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ArtifactData:
    """A file a pipeline produced, not yet stored."""

    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ModelIdentity:
    """Which weights produced an output: recorded on the job."""

    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class PipelineOutput:
    """A JSON-safe result, the files that go with it, and the model that made it (if any)."""

    result: dict[str, Any]
    artifacts: list[ArtifactData] = field(default_factory=list)
    model: ModelIdentity | None = None

    def __post_init__(self) -> None:
        # NaN and infinity are not JSON: Postgres refuses to store them and SQLite would hand
        # back "Infinity" to clients. The job fails saying so instead.
        where = non_finite_number(self.result)
        if where is not None:
            raise PipelineError(
                "non_finite_result",
                f"The computation gave a value that is not a finite number ({where}); the "
                "input is probably degenerate.",
            )


def non_finite_number(value: object, path: str = "result") -> str | None:
    """Where a NaN or infinite float sits in a JSON-like value (``result.a[1] = nan``), or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} = {value}"
    if isinstance(value, dict):
        items: Any = ((f"{path}.{key}", item) for key, item in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for item_path, item in items:
        if (found := non_finite_number(item, item_path)) is not None:
            return found
    return None


def png_bytes(image: Image.Image) -> bytes:
    """Encode an image as PNG with fast compression."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()
