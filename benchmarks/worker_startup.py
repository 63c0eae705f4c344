"""How long a new worker takes to start taking jobs: the cold start every scale-out pays.

    python -m benchmarks.worker_startup [--runs 3]

For each queue, a real ``celery worker -Q <queue> --concurrency 1`` (as worker-gpu runs) is
started on the Redis at REDIS_URL (database 14) and a temporary SQLite database; the time is
from spawning it until its liveness record reports a pool process that has finished starting
(for ``gpu``: every model loaded and warmed) — what ``python -m workers.health``, and so the
Kubernetes start-up probe, waits for. The record is written every 0.5 s here (10 s by default),
so the figures are good to half a second. Pulling the image and scheduling the pod come on top in
a cluster; they are not measured here.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import redis

from core.broker_messages import live_workers
from workers.launch import start_worker, stop_worker

# Benchmarks use Redis database 14 (as benchmarks/__main__.py), away from tests and development.
BENCH_REDIS_DB = 14
HEARTBEAT_SECONDS = 0.5
QUEUES = ("gpu", "cpu")


def bench_redis_url() -> str:
    """REDIS_URL with the benchmarks' database index."""
    parts = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    return urlunsplit((parts.scheme, parts.netloc, f"/{BENCH_REDIS_DB}", "", ""))


def seconds_to_ready(queue: str, workdir: Path, timeout: float = 300.0) -> float:
    """Seconds from spawning a worker on the queue until a pool process of it is up."""
    redis_url = bench_redis_url()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        "MEDIA_ROOT": str(workdir / "media"),
        "WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
    }
    node = f"startup-{queue}-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    started = time.monotonic()
    process = start_worker(
        env, workdir / f"{node}.log", queues=queue, concurrency=1, node=f"{node}@%h",
        ready_timeout=timeout,
    )  # fmt: skip
    try:
        while time.monotonic() - started < timeout:
            mine = [r for r in live_workers(client) if r.get("node", "").startswith(node)]
            if mine and (mine[0].get("pool") or {}).get("ready"):
                return time.monotonic() - started
            time.sleep(HEARTBEAT_SECONDS / 5)
        raise RuntimeError(f"{queue} worker not ready after {timeout} s")
    finally:
        stop_worker(process)
        client.close()


def main(argv: list[str] | None = None) -> int:
    """Print the start-up time per queue (p50 and max over the runs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    print("| worker (concurrency 1) | runs | start → pool process up, p50 s | max s |")
    print("|---|---|---|---|")
    for queue in QUEUES:
        with tempfile.TemporaryDirectory(prefix="scanqueue-startup-") as tmp:
            timings = [seconds_to_ready(queue, Path(tmp)) for _ in range(args.runs)]
        print(f"| {queue} | {args.runs} | {np.percentile(timings, 50):.1f} | {max(timings):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
