"""How long the fleet takes to recover from worker faults, with the default liveness settings.

    python -m benchmarks.worker_faults [--fault kill|cancel|crash|poison ...] [--rounds 1]
        [--timeout 300]

Real ``celery worker`` processes (workers/launch.py) on a fresh Postgres database
(TEST_DATABASE_URL, as the tests) and the Redis at REDIS_URL (database 8), the app in process;
the scenarios of tests/integration/test_worker_resilience.py, measured instead of asserted:

- kill: two cpu workers (one pool process each); the one that received a 6000x6000 perimeter job
  has its main and pool process SIGKILLed while it runs (a lost host, the OOM killer). Seconds
  from the kill until the job succeeded on the other worker: the dead worker's heartbeat expires
  (WORKER_HEARTBEAT_TTL_SECONDS), the message is older than ORPHAN_MESSAGE_GRACE_SECONDS, a sweep
  (every ORPHAN_SWEEP_SECONDS, on a heartbeat tick) notes it unheld, and a sweep at least TTL +
  heartbeat later that still finds it unheld puts it back on its queue: about 80 s with the
  defaults, about 110 s at worst, depending on where the sweeps fall.
- cancel: DELETE of a running 30-photo face_extraction job (tiny stand-in models, mtcnn's
  detector): seconds until the task stopped, whether the pool processes are the same ones, and how
  long the next one-photo job then takes.
- crash: a job that SIGKILLs its own pool process on every attempt (tests/integration/
  crashing_app.py): seconds from submission until it failed with worker_lost after MAX_ATTEMPTS,
  and whether the job submitted after it succeeded.
- poison: the same job queued with three others for a threads-pool worker (a batching gpu
  worker's pool) that runs all four at once and is started again after each death, as a container
  restarts: seconds from the first start until every job was final, what became of each, and how
  many times the process died (with the process gate: MAX_ATTEMPTS, the poison's runs only).

Every wait is bounded by --timeout; all processes are started and stopped here, on loopback.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import redis

from core.config import load_settings
from tests.builders import ellipse_mask_png, face_photo, submit_job
from tests.conftest import fresh_postgres_database, redis_url_for_tests
from tests.integration.conftest import running_stack, signed_in, tiny_models
from tests.integration.test_classification_and_sweep import kill_worker
from tests.integration.test_worker_resilience import (
    Fleet,
    poison_among_batch_mates,
    pool_pids,
    status,
    wait_until,
)

BENCH_REDIS_DB = 8
FAULTS = ("kill", "cancel", "crash", "poison")
FINAL = {"succeeded", "failed", "cancelled"}
Row = tuple[str, str, str]


def killed_worker(fleet: Fleet, timeout: float) -> list[Row]:
    """SIGKILL the worker running a job; seconds until the job succeeded on the other one."""
    big = ellipse_mask_png(6000, 6000, (3000, 3000), (2500, 1800))
    with ExitStack() as stack:
        _, client, headers = stack.enter_context(fleet.client())
        workers = [stack.enter_context(fleet.worker(name)) for name in ("first", "second")]
        job_id = submit_job(client, headers, [(big, "big.png")]).get_json()["id"]
        wait_until(lambda: status(client, headers, job_id)["status"] == "running", timeout, "run")
        [doomed] = [p for p, log in workers if f"{job_id}] received" in log.read_text()]
        kill_worker(doomed)  # main and pool process: no chance to give the message back
        killed = time.monotonic()
        wait_until(lambda: status(client, headers, job_id)["status"] in FINAL, timeout, "not final")
        recovered = time.monotonic() - killed
        job = status(client, headers, job_id)
    return [
        (
            "worker (main + pool process) SIGKILLed while running a perimeter job; "
            "a second worker is up",
            f"{recovered:.1f} s from the kill until the job {job['status']} elsewhere",
            f"attempts {job['attempts']}",
        )
    ]


def cancelled_job(base: Path, broker: str, timeout: float) -> list[Row]:
    """DELETE a running multi-photo face job; how fast it stops and the next job runs."""
    photo = face_photo()
    files = [(photo, f"p{index:02d}.jpg") for index in range(30)]
    with (
        running_stack(base, broker, **tiny_models(base / "registry")) as stack,
        signed_in(stack) as (client, headers),
    ):
        job_id = submit_job(client, headers, files, {}, "face_extraction").get_json()["id"]
        wait_until(lambda: status(client, headers, job_id)["progress"] > 0, timeout, "start")
        before = pool_pids(stack.process)
        deleted = time.monotonic()
        assert client.delete(f"/api/v1/jobs/{job_id}", headers=headers).status_code == 200
        ended = f"{job_id}] succeeded in"  # the task returned (it ends no other way when stopped)
        wait_until(
            lambda: ended in stack.log() or pool_pids(stack.process) != before, timeout, "stop"
        )
        stopped = time.monotonic() - deleted
        same_pool = pool_pids(stack.process) == before
        job = status(client, headers, job_id)
        started = time.monotonic()
        next_id = submit_job(client, headers, [(photo, "next.jpg")], {}, "face_extraction")
        next_id = next_id.get_json()["id"]
        wait_until(lambda: status(client, headers, next_id)["status"] in FINAL, timeout, "next")
        next_in = time.monotonic() - started
        next_status = status(client, headers, next_id)["status"]
    return [
        (
            "DELETE of a running 30-photo face_extraction job",
            f"task stopped {stopped:.2f} s after DELETE; job {job['status']}",
            f"pool pids {'unchanged' if same_pool else 'CHANGED'}",
        ),
        (
            "the next job (1 photo) after the cancel",
            f"{next_in:.1f} s from submission to {next_status}",
            "no model reload" if same_pool else "pool process replaced",
        ),
    ]


def crashing_job(fleet: Fleet, timeout: float) -> list[Row]:
    """A job that kills its own process each attempt: time until it failed, then the next job."""
    deadly = ellipse_mask_png(4000, 4000, (2000, 2000), (1500, 1000))
    with (
        fleet.worker("oom", app="tests.integration.crashing_app") as (process, _),
        fleet.client() as (_, client, headers),
    ):
        submitted = time.monotonic()
        doomed = submit_job(client, headers, [(deadly, "huge.png")]).get_json()["id"]
        fine = submit_job(client, headers).get_json()["id"]
        ended: dict[str, float] = {}

        def both_final() -> bool:
            for job_id in {doomed, fine} - ended.keys():
                if status(client, headers, job_id)["status"] in FINAL:
                    ended[job_id] = time.monotonic() - submitted
            return len(ended) == 2

        wait_until(both_final, timeout, "the jobs did not end")
        failed_in, fine_in = ended[doomed], ended[fine]
        job, after = status(client, headers, doomed), status(client, headers, fine)
        alive = process.poll() is None
    code = (job.get("error") or {}).get("code")
    return [
        (
            "job SIGKILLs its own pool process on every attempt (crashing_app)",
            f"{failed_in:.1f} s from submission to {job['status']} ({code})",
            f"attempts {job['attempts']}; worker {'alive' if alive else 'DEAD'}",
        ),
        (
            "the job submitted right after it",
            f"{fine_in:.1f} s from submission to {after['status']}",
            "",
        ),
    ]


def poisoned_batch(fleet: Fleet, timeout: float) -> list[Row]:
    """A process-killing job among batch-mates in a threads-pool worker: who ends how, how fast."""
    # Each death costs one orphan-sweep recovery: a wait of its own.
    run = poison_among_batch_mates(fleet, 4 * timeout)
    mates = ", ".join(f"{job['status']} (attempts {job['attempts']})" for job in run.batch_mates)
    code = (run.poison.get("error") or {}).get("code")
    return [
        (
            "job SIGKILLs its threads-pool worker (4 jobs running) on every attempt",
            f"{run.seconds:.1f} s until all final; poison {run.poison['status']} ({code}) "
            f"after {run.poison['attempts']} attempts",
            f"batch-mates {mates}; the worker died {run.deaths} time(s)",
        )
    ]


def main() -> None:
    """Measure each fault and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", choices=FAULTS, action="append", help="repeatable; all if none")
    parser.add_argument("--rounds", type=int, default=1, help="times each fault is measured")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per wait, at most")
    args = parser.parse_args()
    faults = args.fault or list(FAULTS)
    broker = redis_url_for_tests().rsplit("/", 1)[0] + f"/{BENCH_REDIS_DB}"
    settings = load_settings()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="scanqueue-faults-") as scratch:
        base = Path(scratch)
        with fresh_postgres_database() as database_url:
            fleet = Fleet(database_url, base / "media", broker, base)
            for fault in [fault for fault in faults for _ in range(args.rounds)]:
                redis.Redis.from_url(broker).flushdb()
                if fault == "kill":
                    rows += killed_worker(fleet, args.timeout)
                elif fault == "crash":
                    rows += crashing_job(fleet, args.timeout)
                elif fault == "poison":
                    rows += poisoned_batch(fleet, args.timeout)
                else:
                    folder = Path(tempfile.mkdtemp(dir=base))
                    rows += cancelled_job(folder, broker, args.timeout)
    print(
        f"\nWorker faults: {os.cpu_count()} CPUs, no GPU, Python {platform.python_version()}; "
        f"WORKER_HEARTBEAT_SECONDS={settings.WORKER_HEARTBEAT_SECONDS:g}, "
        f"WORKER_HEARTBEAT_TTL_SECONDS={settings.WORKER_HEARTBEAT_TTL_SECONDS:g}, "
        f"ORPHAN_MESSAGE_GRACE_SECONDS={settings.ORPHAN_MESSAGE_GRACE_SECONDS:g}, "
        f"ORPHAN_SWEEP_SECONDS={settings.ORPHAN_SWEEP_SECONDS:g}, "
        f"MAX_ATTEMPTS={settings.MAX_ATTEMPTS}\n"
    )
    print("| fault | measured | notes |")
    print("|---|---|---|")
    for fault, measured, notes in rows:
        print(f"| {fault} | {measured} | {notes} |")


if __name__ == "__main__":
    main()
