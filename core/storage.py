"""Files under MEDIA_ROOT: job inputs and artifacts, written atomically, by relative path."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoredBlob:
    """Where a file landed and what it holds."""

    storage_path: str
    size: int
    sha256: str


class MediaStorage:
    """One folder per job: ``jobs/<id>/inputs`` and ``jobs/<id>/artifacts``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def job_dir(self, job_id: uuid.UUID) -> Path:
        """The folder holding everything of one job."""
        return self.root / "jobs" / str(job_id)

    def input_path(self, job_id: uuid.UUID, position: int, extension: str) -> str:
        """Relative path of the job's n-th uploaded file."""
        return f"jobs/{job_id}/inputs/{position:03d}.{extension}"

    def artifact_path(self, job_id: uuid.UUID, name: str) -> str:
        """Relative path of a named artifact; the name is fixed by the pipeline, never by a user."""
        if "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"invalid artifact name {name!r}")
        return f"jobs/{job_id}/artifacts/{name}"

    def resolve(self, storage_path: str) -> Path:
        """Absolute path of a stored file; refuses paths that escape the media root."""
        path = (self.root / storage_path).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"path {storage_path!r} escapes the media root")
        return path

    def write(self, storage_path: str, data: bytes) -> StoredBlob:
        """Write the bytes atomically (temp file + rename), replacing any earlier file."""
        target = self.resolve(storage_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return StoredBlob(storage_path, len(data), hashlib.sha256(data).hexdigest())

    def remove_job(self, job_id: uuid.UUID) -> None:
        """Delete every file of a job (used when an upload is rolled back)."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
