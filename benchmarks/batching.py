"""Dynamic batching: throughput and latency of gpu jobs with GPU_BATCH_MAX=1 and the default.

    python -m benchmarks.batching [--levels 1 8 32] [--jobs-per-client 1.5] [--batched-max N]

(``make bench`` runs it with the defaults.)

Real worker processes (workers/launch.py) on a fresh Postgres database (TEST_DATABASE_URL, as
the tests), the Redis at REDIS_URL (database 7) and the released registry models; the app in
process submits the jobs. One cpu worker (prefork, one process: head circumference's second
stage) serves both configurations; the gpu worker is

- batch 1: prefork, one process, GPU_BATCH_MAX=1 (today's compose worker-gpu: one job at a time);
- batched: threads x GPU_BATCH_MAX (the setting's, or --batched-max), GPU_BATCH_WAIT_MS's
  (workers/batching.py).

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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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


def run(levels: list[int], per_client: float, batched_max: int | None) -> None:
    """Measure every cell and print the table."""
    settings = load_settings()
    batched = {"GPU_BATCH_MAX": str(batched_max)} if batched_max else {}
    configs = {"batch 1": {"GPU_BATCH_MAX": "1"}, "batched": batched}
    broker = redis_url_for_tests().rsplit("/", 1)[0] + f"/{BENCH_REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    results: dict[tuple[str, str, int], Cell] = {}
    rss: dict[str, float] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, fresh_postgres_database() as database_url:
        base = Path(tmp)
        app = build_app(database_url, broker, base / "media")
        env = {
            **os.environ,
            "SCANQUEUE_ENV": "testing",
            "DATABASE_URL": database_url,
            "REDIS_URL": broker,
            "MEDIA_ROOT": str(base / "media"),
            "PYTHONUNBUFFERED": "1",
        }
        with app.app_context():
            client = app.test_client()
            headers = bearer(client, make_user().email)
            most = max(jobs_at(level, per_client) for level in levels)
            inputs = {t: job_inputs(base, t, most) for t in JOB_TYPES}
            cpu = start_worker(env, base / "cpu.log", queues="cpu", concurrency=1)
            try:
                for name, extra in configs.items():
                    config_env = {**env, **extra}
                    batch_max = int(config_env.get("GPU_BATCH_MAX", settings.GPU_BATCH_MAX))
                    pool, threads = worker_pool(batch_max, "gpu", 1)
                    gpu = start_worker(
                        config_env,
                        base / f"gpu-{pool}.log",
                        queues="gpu",
                        concurrency=threads,
                        pool=pool,
                    )
                    try:
                        for job_type in JOB_TYPES:
                            # One untimed job first: the workers' first run of a type is slower.
                            closed_loop(app, headers, job_type, inputs[job_type][:1], 1)
                            for level in levels:
                                count = jobs_at(level, per_client)
                                peak = RssPeak(gpu.pid)
                                with peak.sampling():
                                    results[name, job_type, level] = closed_loop(
                                        app, headers, job_type, inputs[job_type][:count], level
                                    )
                                if level == max(levels):
                                    rss[name] = max(rss.get(name, 0.0), peak.peak)
                    finally:
                        stop_worker(gpu)
            finally:
                stop_worker(cpu)
            db.engine.dispose()
    batch_max = batched_max or settings.GPU_BATCH_MAX
    print_table(results, rss, levels, batch_max, settings.GPU_BATCH_WAIT_MS)
    print(f"\n({time.monotonic() - started:.0f} s in all)")


def print_table(
    results: dict[tuple[str, str, int], Cell],
    rss: dict[str, float],
    levels: list[int],
    batch_max: int,
    wait_ms: float,
) -> None:
    """Markdown rows: per type and level, both configurations and the throughput ratio."""
    print(
        f"\n### Dynamic batching ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; batched = threads x GPU_BATCH_MAX={batch_max}, "
        f"GPU_BATCH_WAIT_MS={wait_ms:g})\n"
    )
    print(
        "| job type | concurrency | batch 1 jobs/s | batch 1 p50 / p95 ms | batched jobs/s "
        "| batched p50 / p95 ms | throughput ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for job_type in JOB_TYPES:
        for level in levels:
            one, many = results["batch 1", job_type, level], results["batched", job_type, level]
            failed = (
                "" if not (one.failed or many.failed) else f" ({one.failed}/{many.failed} failed)"
            )
            print(
                f"| {job_type} | {level} | {one.jobs_per_s:.2f} | {one.p50_ms:.0f} / "
                f"{one.p95_ms:.0f} | {many.jobs_per_s:.2f} | {many.p50_ms:.0f} / "
                f"{many.p95_ms:.0f} | {many.jobs_per_s / one.jobs_per_s:.2f}x{failed} |"
            )
    print(
        f"\nGPU worker RSS at concurrency {max(levels)} (peak): batch 1 "
        f"{rss.get('batch 1', 0):.0f} MB (one process), batched {rss.get('batched', 0):.0f} MB"
    )


def main() -> None:
    """Command line: the concurrency levels and how many jobs each client submits."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--jobs-per-client", type=float, default=JOBS_PER_CLIENT)
    parser.add_argument(
        "--batched-max", type=int, default=None, help="GPU_BATCH_MAX of the batched worker"
    )
    args = parser.parse_args()
    run(args.levels, args.jobs_per_client, args.batched_max)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
