"""Dynamic batching: throughput and latency of gpu jobs with GPU_BATCH_MAX=1 and the default.

    python -m benchmarks.batching [--levels 1 8 32] [--jobs-per-client 1.5] [--batched-max N ...]

(``make bench`` runs it with the defaults.)

Real worker processes (workers/launch.py) on a fresh Postgres database (TEST_DATABASE_URL, as
the tests), the Redis at REDIS_URL (database 7, then 6, 5 ...) and the released registry
models; the app in process submits the jobs. Every configuration has its own Redis database,
gpu worker and cpu worker (prefork, one process: head circumference's second stage), all
started at once; the configurations take turns, cell by cell. The gpu worker is

- batch 1: prefork, one process, GPU_BATCH_MAX=1 (today's compose worker-gpu: one job at a time);
- batched N: threads x GPU_BATCH_MAX=N (the setting's, or each --batched-max), the setting's
  GPU_BATCH_WAIT_MS (workers/batching.py).

Offered concurrency c: c clients, each submitting its next job as soon as its last one is final
(a closed loop), until 1.5 x c jobs (at least 8) ran, after one untimed job per type. Latency
is the job's own record: created_at (upload accepted) to finished_at (last stage stored).
Throughput is jobs over the span from the first upload to the last finish. RSS: the gpu
worker's main and pool processes, the peak seen while the largest level ran. Head
circumference and classification run on HC18 scans, face extraction on 400 px astronaut
portraits (one size, so the detector may batch them).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis
import sqlalchemy as sa

from benchmarks.__main__ import HC18_DIR, face_photos, percentiles, rss_mb
from core.config import load_settings
from core.database import db
from core.records import Job
from lab.hc18 import list_images
from tests.builders import bearer, make_user, submit_job
from tests.conftest import build_app, fresh_postgres_database, redis_url_for_tests
from workers.batching import worker_pool
from workers.launch import start_worker, stop_worker

BENCH_REDIS_DB = 7
JOB_TYPES = ("head_circumference", "classification", "face_extraction")
FINAL = ("succeeded", "failed", "cancelled")
POLL_SECONDS = 0.01
MIN_JOBS = 8
# Jobs per cell: 1.5 x the concurrency (at least MIN_JOBS), so a level runs past its first burst.
JOBS_PER_CLIENT = 1.5
FACE_PHOTO_SIDE = 400


@dataclass(frozen=True)
class Cell:
    """One job type at one offered concurrency under one worker configuration."""

    jobs_per_s: float
    p50_ms: float
    p95_ms: float
    failed: int


def job_inputs(
    folder: Path, job_type: str, count: int
) -> list[tuple[list[tuple[bytes, str]], dict]]:
    """(files, params) of ``count`` distinct jobs of the type."""
    if job_type == "face_extraction":
        photos = face_photos(folder, count, FACE_PHOTO_SIDE)
        return [([(p.read_bytes(), p.name)], {}) for p in photos]
    scans = sorted(list_images(HC18_DIR), key=lambda image: image.name)[:count]
    params = (
        (lambda scan: {"pixel_spacing_mm": scan.pixel_size_mm})
        if job_type == "head_circumference"
        else (lambda scan: {})
    )
    return [([(s.image_path.read_bytes(), s.name)], params(s)) for s in scans]


class RssPeak:
    """The peak RSS of a process tree, sampled every 0.2 s while active."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()

    @contextmanager
    def sampling(self) -> Iterator[None]:
        """Sample in a thread for the duration of the block."""

        def run() -> None:
            while not self._stop.wait(0.2):
                self.peak = max(self.peak, rss_mb(self.pid))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()


class Tracker:
    """One thread polling the database for the jobs the clients wait on (not one query each)."""

    def __init__(self) -> None:
        self._waiting: dict[uuid.UUID, threading.Event] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def wait(self, job_id: uuid.UUID) -> None:
        """Block until the job is final."""
        event = threading.Event()
        with self._lock:
            self._waiting[job_id] = event
        event.wait()

    def run(self, app) -> None:
        """Poll until stopped (in its own thread, with its own app context)."""
        with app.app_context():
            while not self._stop.wait(POLL_SECONDS):
                with self._lock:
                    ids = list(self._waiting)
                if not ids:
                    continue
                ended = db.session.scalars(
                    sa.select(Job.id).where(Job.id.in_(ids), Job.status.in_(FINAL))
                ).all()
                db.session.rollback()
                with self._lock:
                    for job_id in ended:
                        self._waiting.pop(job_id).set()

    def stop(self) -> None:
        """End the polling thread's loop."""
        self._stop.set()


def closed_loop(app, headers: dict[str, str], job_type: str, inputs: list, clients: int) -> Cell:
    """Run the jobs with ``clients`` client threads, each submitting its next job once its last
    is final; their latencies and throughput."""
    tracker = Tracker()
    poller = threading.Thread(target=tracker.run, args=(app,), daemon=True)
    poller.start()
    pending = list(reversed(inputs))
    done: list[uuid.UUID] = []
    lock = threading.Lock()

    def client() -> None:
        # No app context of its own: each request's context returns its database connection.
        http = app.test_client()
        while True:
            with lock:
                if not pending:
                    return
                files, params = pending.pop()
            response = submit_job(http, headers, files, params, job_type)
            assert response.status_code == 202, response.get_json()
            job_id = uuid.UUID(response.get_json()["id"])
            tracker.wait(job_id)
            with lock:
                done.append(job_id)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tracker.stop()
    poller.join()
    rows = db.session.execute(
        sa.select(Job.created_at, Job.finished_at, Job.status).where(Job.id.in_(done))
    ).all()
    db.session.rollback()
    latencies = [1000 * (finished - created).total_seconds() for created, finished, _ in rows]
    span = (max(r.finished_at for r in rows) - min(r.created_at for r in rows)).total_seconds()
    p50, p95 = percentiles(latencies)
    failed = sum(1 for row in rows if row.status != "succeeded")
    return Cell(len(rows) / span, p50, p95, failed)


def jobs_at(level: int, per_client: float) -> int:
    """How many jobs a cell runs at this offered concurrency."""
    return max(MIN_JOBS, round(per_client * level))


@dataclass
class Config:
    """One gpu worker configuration: its broker database, app and workers (gpu and cpu)."""

    name: str
    batch_max: int
    app: Any = None
    gpu: Any = None


@contextmanager
def running(config: Config, env: dict[str, str], base: Path, broker: str) -> Iterator[None]:
    """The configuration's gpu and cpu workers on a broker database of its own, started."""
    redis.Redis.from_url(broker).flushdb()
    config_env = {**env, "REDIS_URL": broker, "GPU_BATCH_MAX": str(config.batch_max)}
    config.app = build_app(env["DATABASE_URL"], broker, base / "media")
    pool, threads = worker_pool(config.batch_max, "gpu", 1)
    logs = {queue: base / f"{queue}-{config.batch_max}.log" for queue in ("gpu", "cpu")}
    cpu = start_worker(config_env, logs["cpu"], queues="cpu", concurrency=1)
    try:
        config.gpu = start_worker(
            config_env, logs["gpu"], queues="gpu", concurrency=threads, pool=pool
        )
        try:
            yield
        finally:
            stop_worker(config.gpu)
    finally:
        stop_worker(cpu)


def run(levels: list[int], per_client: float, batched_max: list[int]) -> None:
    """Measure every cell, the configurations taking turns (a machine whose load drifts then
    drifts under all of them alike), and print the table."""
    settings = load_settings()
    configs = [Config("batch 1", 1)] + [
        Config(f"batched {n}", n) for n in batched_max or [settings.GPU_BATCH_MAX]
    ]
    results: dict[tuple[str, str, int], Cell] = {}
    rss: dict[str, float] = {}
    started = time.monotonic()
    base_url = redis_url_for_tests().rsplit("/", 1)[0]
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_postgres_database() as database_url,
        ExitStack() as stack,
    ):
        base = Path(tmp)
        env = {
            **os.environ,
            "SCANQUEUE_ENV": "testing",
            "DATABASE_URL": database_url,
            "MEDIA_ROOT": str(base / "media"),
            "PYTHONUNBUFFERED": "1",
        }
        for index, config in enumerate(configs):
            broker = f"{base_url}/{BENCH_REDIS_DB - index}"
            stack.enter_context(running(config, env, base, broker))
        app = configs[0].app
        with app.app_context():
            headers = bearer(app.test_client(), make_user().email)
            most = max(jobs_at(level, per_client) for level in levels)
            inputs = {t: job_inputs(base, t, most) for t in JOB_TYPES}
            for job_type in JOB_TYPES:
                for config in configs:
                    # One untimed job first: the workers' first run of a type is slower.
                    closed_loop(config.app, headers, job_type, inputs[job_type][:1], 1)
                for level in levels:
                    jobs = inputs[job_type][: jobs_at(level, per_client)]
                    for config in configs:
                        peak = RssPeak(config.gpu.pid)
                        with peak.sampling():
                            cell = closed_loop(config.app, headers, job_type, jobs, level)
                        results[config.name, job_type, level] = cell
                        if level == max(levels):
                            rss[config.name] = max(rss.get(config.name, 0.0), peak.peak)
            db.engine.dispose()
    print_table(results, rss, levels, configs, settings.GPU_BATCH_WAIT_MS)
    print(f"\n({time.monotonic() - started:.0f} s in all)")


def print_table(
    results: dict[tuple[str, str, int], Cell],
    rss: dict[str, float],
    levels: list[int],
    configs: list[Config],
    wait_ms: float,
) -> None:
    """Markdown rows: per type and level, every configuration and its ratio to batch 1."""
    batched = [config.name for config in configs[1:]]
    print(
        f"\n### Dynamic batching ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; batched N = threads x GPU_BATCH_MAX=N, "
        f"GPU_BATCH_WAIT_MS={wait_ms:g})\n"
    )
    header = "| job type | concurrency | batch 1 jobs/s | batch 1 p50 / p95 ms |"
    for name in batched:
        header += f" {name} jobs/s | {name} p50 / p95 ms | {name} ratio |"
    print(header)
    print("|---|---:|" + "---:|" * (2 + 3 * len(batched)))
    for job_type in JOB_TYPES:
        for level in levels:
            one = results["batch 1", job_type, level]
            row = f"| {job_type} | {level} | {one.jobs_per_s:.2f} | "
            row += f"{one.p50_ms:.0f} / {one.p95_ms:.0f} |"
            for name in batched:
                many = results[name, job_type, level]
                failed = f" ({many.failed} failed)" if many.failed else ""
                row += (
                    f" {many.jobs_per_s:.2f} | {many.p50_ms:.0f} / {many.p95_ms:.0f} | "
                    f"{many.jobs_per_s / one.jobs_per_s:.2f}x{failed} |"
                )
            print(row + (f" ({one.failed} failed at batch 1)" if one.failed else ""))
    sizes = ", ".join(f"{name} {peak:.0f} MB" for name, peak in rss.items())
    print(f"\nGPU worker RSS at concurrency {max(levels)} (peak, main + pool processes): {sizes}")


def main() -> None:
    """Command line: the concurrency levels and how many jobs each client submits."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--jobs-per-client", type=float, default=JOBS_PER_CLIENT)
    parser.add_argument(
        "--batched-max",
        type=int,
        nargs="*",
        default=[],
        help="GPU_BATCH_MAX of each batched worker (default: the setting's)",
    )
    args = parser.parse_args()
    run(args.levels, args.jobs_per_client, args.batched_max)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
