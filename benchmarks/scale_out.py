"""Scale-out, measured: one backlog of head_circumference jobs drained by 1, 2 and 4 worker nodes.

    python -m benchmarks.scale_out [--jobs 120] [--nodes 1 2 4] [--concurrency 1]
    python -m benchmarks --scale-out          (the same table, from `make bench`)

Each node is a separate ``celery worker -Q gpu,cpu --concurrency 1 -n nodeK@<host>`` process
(tests/integration/scale_fleet.py), as a GPU host runs one process per GPU, with the committed
models; all share one fresh Postgres database (TEST_DATABASE_URL's server, as the tests) and the
Redis at REDIS_URL (database 5). Nodes are added between rounds (1, then 1 more, then 2 more),
so each round starts with warm, idle nodes.

A round submits ``--jobs`` jobs back to back through the API (in process: the real validation,
storage and publishing), cycling over the HC18 sample images (tests/data/hc18, or HC18_DIR) with
each image's own pixel size, into a staging Redis database (4) no node listens to; then releases
the whole backlog at once (``MOVE`` of the queue lists into database 5, one transaction) and
waits until every job has ended. Submitting while the nodes drain would share the same two cores
with them, and with 4 nodes the submissions themselves became the bottleneck.

Why head_circumference: it is the job a GPU fleet is scaled for — a U-Net forward pass (about
0.1 s here, on the CPU) and an ellipse fit, over both queues (stage 1 on ``gpu``, stage 2 on
``cpu``) — long enough that a node's work, not the hand-over, dominates, short enough for a
backlog of a hundred jobs to drain in seconds.

From the job records in Postgres, counted from the release (every job's created_at is before
it): drain = last finished_at - release; throughput = jobs / drain; queue wait = started_at (the
claim) - release; run = finished_at - started_at (both stages and the hand-over between them).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from flask.testing import FlaskClient

from benchmarks.measures import cpu_seconds, machine_busy_seconds, percentiles, rss_mb
from tests.builders import bearer, make_user, submit_job
from tests.conftest import build_app, fresh_postgres_database, hc18_images, redis_url_for_tests
from tests.integration.scale_fleet import NodeGroup, wait_for_jobs

BENCH_REDIS_DB = 5
STAGING_REDIS_DB = 4  # where a backlog is queued before it is released to the nodes
NODE_COUNTS = (1, 2, 4)
# What a gpu node's pool process logs once its models are loaded (workers/startup.py); a round
# starts only then, so that no round pays for model loading.
MODELS_LOADED = "models loaded in"


@dataclass(frozen=True)
class Round:
    """One drained backlog."""

    nodes: int
    jobs: int
    drain_s: float
    wait_p50: float
    wait_p95: float
    run_p50: float
    run_p95: float
    node_rss_mb: float
    node_cpu_s: float  # CPU time the nodes' processes used during the round
    machine_cpu_s: float  # CPU time every process on the machine used meanwhile
    load_before: float

    @property
    def throughput(self) -> float:
        """Jobs per second over the drain."""
        return self.jobs / self.drain_s

    @property
    def cpu_per_job(self) -> float:
        """CPU seconds the nodes spent per job."""
        return self.node_cpu_s / self.jobs

    @property
    def cores_busy(self) -> float:
        """How many cores the nodes kept busy on average over the drain."""
        return self.node_cpu_s / self.drain_s

    @property
    def machine_busy(self) -> float:
        """How many cores everything on the machine kept busy meanwhile (Postgres, Redis, this
        benchmark and anyone else's processes included)."""
        return self.machine_cpu_s / self.drain_s


def submit_backlog(client: FlaskClient, headers: dict[str, str], jobs: int) -> list[str]:
    """Submit ``jobs`` head_circumference jobs back to back; their ids."""
    images = itertools.cycle(sorted(hc18_images().values(), key=lambda image: image.name))
    ids = []
    for image in itertools.islice(images, jobs):
        files = [(image.image_path.read_bytes(), image.image_path.name)]
        params = {"pixel_spacing_mm": image.pixel_size_mm}
        response = submit_job(client, headers, files, params, "head_circumference")
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    return ids


def release(staging: redis.Redis, broker_db: int) -> float:
    """Move every queue list of the staging database into the broker's, in one transaction;
    when (time.time())."""
    keys = [key for key in staging.scan_iter() if not key.startswith(b"_kombu.")]
    pipe = staging.pipeline(transaction=True)
    for key in keys:
        pipe.move(key, broker_db)
    released = time.time()
    if not all(pipe.execute()):
        raise RuntimeError("the broker database already had a queue list")
    return released


def drain(group: NodeGroup, client: FlaskClient, headers: dict, jobs: int, timeout: float) -> Round:
    """Queue a backlog in staging, release it to the nodes now running, measure the drain."""
    job_ids = submit_backlog(client, headers, jobs)
    load_before = os.getloadavg()[0]
    pids = [node.process.pid for node in group.nodes.values()]
    cpu_before, machine_before = sum(map(cpu_seconds, pids)), machine_busy_seconds()
    staging = client.application.extensions["celery"].conf.broker_url
    released = release(redis.Redis.from_url(staging), BENCH_REDIS_DB)
    timings = wait_for_jobs(job_ids, timeout, f"{len(group.nodes)} node(s)")
    node_cpu_s = sum(map(cpu_seconds, pids)) - cpu_before
    machine_cpu_s = machine_busy_seconds() - machine_before
    failed = [t for t in timings if t.status != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} benchmark job(s) did not succeed: {failed[:3]}")
    assert all(t.created < released for t in timings)
    wait_p50, wait_p95 = percentiles([t.claimed - released for t in timings])
    run_p50, run_p95 = percentiles([t.run for t in timings])
    return Round(
        nodes=len(group.nodes),
        jobs=jobs,
        drain_s=max(t.finished for t in timings) - released,
        wait_p50=wait_p50,
        wait_p95=wait_p95,
        run_p50=run_p50,
        run_p95=run_p95,
        node_rss_mb=max(map(rss_mb, pids)),
        node_cpu_s=node_cpu_s,
        machine_cpu_s=machine_cpu_s,
        load_before=load_before,
    )


def measure(node_counts: list[int], jobs: int, concurrency: int, timeout: float) -> list[Round]:
    """Drain one backlog per node count, adding nodes between rounds."""
    server = redis_url_for_tests().rsplit("/", 1)[0]
    broker, staging = f"{server}/{BENCH_REDIS_DB}", f"{server}/{STAGING_REDIS_DB}"
    for url in (broker, staging):
        redis.Redis.from_url(url).flushdb()
    host = socket.gethostname()
    rounds = []
    with (
        tempfile.TemporaryDirectory(prefix="scanqueue-scale-") as scratch,
        fresh_postgres_database() as database_url,
    ):
        base = Path(scratch)
        settings = {
            "SCANQUEUE_ENV": "testing",
            "DATABASE_URL": database_url,
            "REDIS_URL": broker,
            "MEDIA_ROOT": str(base / "media"),
        }
        # One user submits the whole backlog: its quota of unfinished jobs must hold it.
        app = build_app(database_url, staging, base / "media", MAX_QUEUED_JOBS_PER_USER=jobs)
        env = {**os.environ, **settings, "PYTHONUNBUFFERED": "1"}
        group = NodeGroup(
            env, base, queues="gpu,cpu", concurrency=concurrency, warm_marker=MODELS_LOADED
        )
        try:
            with app.app_context():
                client = app.test_client()
                headers = bearer(client, make_user().email)
                for count in sorted(node_counts):
                    more = range(len(group.nodes) + 1, count + 1)
                    group.add([f"node{k}@{host}" for k in more])
                    rounds.append(drain(group, client, headers, jobs, timeout))
                    print(f"  {count} node(s): {rounds[-1].throughput:.1f} jobs/s", flush=True)
        finally:
            group.stop()
    return rounds


def print_table(rounds: list[Round], concurrency: int) -> None:
    """The rounds as a Markdown table."""
    print(
        f"\nScale-out: a head_circumference backlog (HC18 800x540) released at once, Postgres + "
        f"Redis, {os.cpu_count()} CPUs, no GPU, Python {platform.python_version()}; each node a "
        f"`celery worker -Q gpu,cpu --concurrency {concurrency}` with every gpu model loaded\n"
    )
    print(
        "| nodes | jobs | drain s | jobs/s | speed-up | wait p50 s | wait p95 s | run p50 s "
        "| run p95 s | CPU s per job | cores busy: nodes | machine | node RSS MB | load before |"
    )
    print(f"|{'---|' * 14}")
    base = rounds[0].throughput  # the fewest nodes
    for r in rounds:
        print(
            f"| {r.nodes} | {r.jobs} | {r.drain_s:.1f} | {r.throughput:.1f} "
            f"| {r.throughput / base:.2f}x | {r.wait_p50:.2f} | {r.wait_p95:.2f} | "
            f"{r.run_p50:.2f} | {r.run_p95:.2f} | {r.cpu_per_job:.3f} | {r.cores_busy:.2f} | "
            f"{r.machine_busy:.2f} | {r.node_rss_mb:.0f} | {r.load_before:.1f} |"
        )


def scale_out_table(
    node_counts: list[int] | None = None, jobs: int = 120, concurrency: int = 1
) -> list[Round]:
    """Measure and print the scale-out table (also reached from `make bench`)."""
    rounds = measure(list(node_counts or NODE_COUNTS), jobs, concurrency, timeout=600)
    print_table(rounds, concurrency)
    return rounds


def main() -> None:
    """Parse the options, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=120, help="backlog size per round")
    parser.add_argument("--nodes", type=int, nargs="+", default=list(NODE_COUNTS))
    parser.add_argument("--concurrency", type=int, default=1, help="pool processes per node")
    args = parser.parse_args()
    scale_out_table(args.nodes, args.jobs, args.concurrency)


if __name__ == "__main__":
    main()
