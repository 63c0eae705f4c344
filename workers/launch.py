"""Start and stop ``celery worker`` processes (used by the integration tests and the benchmarks)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from core.config import PROJECT_ROOT

READY_MARKER = " ready."


def spawn_worker(
    env: dict[str, str],
    log_path: Path,
    *,
    queues: str = "gpu,cpu",
    concurrency: int = 2,
    pool: str = "prefork",
    node: str | None = None,
    app: str = "workers.celery_app",
) -> subprocess.Popen[bytes]:
    """Start a worker on the queues, logging to ``log_path``; it is not ready yet."""
    command = [
        sys.executable, "-m", "celery", "-A", app, "worker",
        "-Q", queues, "--concurrency", str(concurrency), "--pool", pool,
        "-n", node or f"w-{uuid.uuid4().hex[:8]}@%h", "--without-gossip", "--without-mingle",
        "--loglevel", "INFO",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )


def wait_until_ready(
    process: subprocess.Popen[bytes], log_path: Path, ready_timeout: float = 90.0
) -> None:
    """Return once the spawned worker logs that it is ready (kill it if it does not in time)."""
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        output = log_path.read_text(errors="replace")
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode}:\n{output}")
        if READY_MARKER in output:
            return
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"worker not ready after {ready_timeout} s:\n{log_path.read_text()}")


def start_worker(
    env: dict[str, str],
    log_path: Path,
    *,
    queues: str = "gpu,cpu",
    concurrency: int = 2,
    pool: str = "prefork",
    ready_timeout: float = 90.0,
    node: str | None = None,
    app: str = "workers.celery_app",
) -> subprocess.Popen[bytes]:
    """Start a worker on the queues and return once it logs that it is ready."""
    process = spawn_worker(
        env, log_path, queues=queues, concurrency=concurrency, pool=pool, node=node, app=app
    )
    wait_until_ready(process, log_path, ready_timeout)
    return process


def stop_worker(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Warm shutdown (finish the current task), then kill if it does not exit in time."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
