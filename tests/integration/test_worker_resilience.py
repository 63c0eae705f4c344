"""Nothing a user sends halts the fleet: real worker processes that are cancelled under, killed,
slow to start, or killed by their own job, and the recovery of what they held."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from core.config import load_settings
from tests.builders import (
    bearer,
    ellipse_circumference_mm,
    ellipse_mask_png,
    face_photo,
    make_user,
    submit_job,
)
from tests.conftest import build_app, fresh_postgres_database
from tests.integration.conftest import WorkerStack, succeeded_job, wait_for_final
from tests.integration.test_classification_and_sweep import kill_worker
from workers import health
from workers.launch import start_worker, stop_worker

pytestmark = pytest.mark.integration

Client = tuple[FlaskClient, dict[str, str]]
NODE_HOST = "resilience"
# Liveness every second, a dead worker's messages returned 5 s after their delivery.
FAST_HEARTBEAT = {
    "WORKER_HEARTBEAT_SECONDS": "1",
    "WORKER_HEARTBEAT_TTL_SECONDS": "3",
    "ORPHAN_MESSAGE_GRACE_SECONDS": "5",
    "ORPHAN_SWEEP_SECONDS": "1",
}


def pool_pids(process: subprocess.Popen[bytes]) -> set[int]:
    """The pids of a worker's pool processes."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
    return set(map(int, children.split()))


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until the condition holds; the seconds it took (fails after the timeout)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.1)
    return time.monotonic() - started


@dataclass
class Fleet:
    """A database, media root and broker database of their own, for workers started per test."""

    database_url: str
    media_root: Path
    broker_url: str
    base: Path

    def settings(self, **extra: str) -> dict[str, str]:
        """Environment of a worker (and the app) on this fleet's backends."""
        return {
            "SCANQUEUE_ENV": "testing",
            "DATABASE_URL": self.database_url,
            "MEDIA_ROOT": str(self.media_root),
            "REDIS_URL": self.broker_url,
            **extra,
        }

    @contextmanager
    def worker(
        self,
        name: str,
        app: str = "workers.celery_app",
        pool: str = "prefork",
        concurrency: int = 1,
        **extra: str,
    ) -> Iterator:
        """A cpu worker (one pool process unless told), stopped (or killed) afterwards."""
        env = {**os.environ, **self.settings(**extra), "PYTHONUNBUFFERED": "1"}
        log = self.base / f"{name}.log"
        process = start_worker(
            env,
            log,
            queues="cpu",
            concurrency=concurrency,
            pool=pool,
            node=f"{name}@{NODE_HOST}",
            app=app,
        )
        try:
            yield process, log
        finally:
            if process.poll() is None:
                stop_worker(process, timeout=20)

    @contextmanager
    def client(self) -> Iterator[tuple[Flask, FlaskClient, dict[str, str]]]:
        """An app on this fleet (publishing to its broker database) and a signed-in user."""
        app = build_app(self.database_url, self.broker_url, self.media_root)
        with app.app_context():
            client = app.test_client()
            yield app, client, bearer(client, make_user().email)


@pytest.fixture(scope="module")
def fleet_backends(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("fleet")
    with fresh_postgres_database() as database_url:
        yield Fleet(database_url, base / "media", redis_url.rsplit("/", 1)[0] + "/14", base)


@pytest.fixture
def fleet(fleet_backends: Fleet) -> Fleet:
    redis.Redis.from_url(fleet_backends.broker_url).flushdb()
    return fleet_backends


FINAL = {"succeeded", "failed", "cancelled"}


def status(client: FlaskClient, headers: dict[str, str], job_id: str) -> dict:
    return client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()


def test_cancelling_a_running_job_stops_it_without_killing_the_pool_process(
    stack_client: Client, worker_stack: WorkerStack
) -> None:
    client, headers = stack_client
    photo = face_photo()
    files = [(photo, f"p{index:02d}.jpg") for index in range(30)]
    job_id = submit_job(client, headers, files, {}, "face_extraction").get_json()["id"]
    wait_until(lambda: status(client, headers, job_id)["progress"] > 0, 60, "the job never started")
    before = pool_pids(worker_stack.process)

    assert client.delete(f"/api/v1/jobs/{job_id}", headers=headers).status_code == 200
    ended = f"{job_id}] succeeded in"  # the task returned (it ends no other way when stopped)
    stopped_in = wait_until(
        lambda: ended in worker_stack.log() or pool_pids(worker_stack.process) != before,
        60,
        "the task neither ended nor lost its process",
    )
    time.sleep(1)

    assert pool_pids(worker_stack.process) == before  # the same processes, none replaced
    # It stopped at a progress report (between photos or batches), not at its end.
    stopped = f"job {job_id} was cancelled or claimed again while it ran; stopped"
    assert stopped in worker_stack.log()
    job = status(client, headers, job_id)
    assert job["status"] == "cancelled" and job["result"] is None and job["artifacts"] == []
    # The next job runs at once (no model reload, no pool process killed in a loop).
    started = time.monotonic()
    response = submit_job(client, headers, [(photo, "next.jpg")], {}, "face_extraction")
    succeeded_job(worker_stack, client, headers, response.headers["Location"])
    next_job_in = time.monotonic() - started
    assert next_job_in < 30
    assert "Timed out waiting for UP message" not in worker_stack.log()
    print(
        f"cancel: task ended {stopped_in:.1f} s after DELETE; next job done in {next_job_in:.1f} s"
    )


def test_a_replacement_pool_process_slower_to_start_than_celerys_default_is_not_killed(
    fleet: Fleet,
) -> None:
    # 6 s of start-up, as loading the models takes ~4.5 s: Celery allows a replacement process
    # 4 s by default, kills it, and starts another that is killed in turn, for ever.
    with fleet.worker("slow", WORKER_STARTUP_DELAY_SECONDS="6", **FAST_HEARTBEAT) as (
        process,
        log,
    ):
        settings = load_settings(**fleet.settings())
        node = f"slow@{NODE_HOST}"
        wait_until(lambda: health.check(settings, node) == [], 30, "the worker never came up")
        [first] = pool_pids(process)
        os.kill(first, signal.SIGKILL)  # as the OOM killer would
        wait_until(lambda: health.check(settings, node) != [], 5, "the kill went unnoticed")
        assert any("no pool process" in problem for problem in health.check(settings, node))

        with fleet.client() as (_, client, headers):
            job_id = submit_job(client, headers).get_json()["id"]
            wait_until(
                lambda: status(client, headers, job_id)["status"] == "succeeded",
                40,
                f"the job did not succeed:\n{log.read_text()}",
            )
        wait_until(lambda: health.check(settings, node) == [], 5, "the worker is not healthy")
        assert "Timed out waiting for UP message" not in log.read_text()
        assert len(pool_pids(process)) == 1 and process.poll() is None


def test_a_job_that_kills_its_process_fails_after_max_attempts_and_the_worker_serves_on(
    fleet: Fleet,
) -> None:
    with (
        fleet.worker("oom", app="tests.integration.crashing_app", MAX_ATTEMPTS="2") as (
            process,
            log,
        ),
        fleet.client() as (_, client, headers),
    ):
        deadly = ellipse_mask_png(4000, 4000, (2000, 2000), (1500, 1000))
        doomed = submit_job(client, headers, [(deadly, "huge.png")]).get_json()["id"]
        fine = submit_job(client, headers).get_json()["id"]

        submitted = time.monotonic()
        job = wait_for_final(client, headers, f"/api/v1/jobs/{doomed}")
        print(f"process-killing job failed {time.monotonic() - submitted:.1f} s after submission")

        assert job["status"] == "failed", (job, log.read_text())
        assert job["error"]["code"] == "worker_lost" and job["attempts"] == 2
        assert "2 attempt(s)" in job["error"]["message"]
        assert wait_for_final(client, headers, f"/api/v1/jobs/{fine}")["status"] == "succeeded"
        assert process.poll() is None
        time.sleep(2)  # acknowledged: not delivered again
        assert log.read_text().count(f"{doomed}] received") == 3  # 2 attempts + the last word


@dataclass
class PoisonRun:
    """What became of a poison job and its batch-mates in a threads-pool worker."""

    poison: dict
    batch_mates: list[dict]
    deaths: int  # of the worker process
    seconds: float  # from the first worker's start until every job was final


def poison_among_batch_mates(fleet: Fleet, timeout: float, **extra: str) -> PoisonRun:
    """Queue a job that kills its process and three others, then serve them with a threads-pool
    worker (all four at once) started again after each death, as a container restarts."""
    with fleet.client() as (_, client, headers):
        deadly = ellipse_mask_png(4000, 4000, (2000, 2000), (1500, 1000))
        fine = [submit_job(client, headers).get_json()["id"] for _ in range(3)]
        poison = submit_job(client, headers, [(deadly, "huge.png")]).get_json()["id"]
        jobs = [*fine, poison]

        def all_final() -> bool:
            return all(status(client, headers, job)["status"] in FINAL for job in jobs)

        deaths, started = 0, time.monotonic()
        while not all_final():
            assert time.monotonic() - started < timeout, f"not final after {deaths} death(s)"
            with fleet.worker(
                f"threads{deaths}",
                app="tests.integration.crashing_app",
                pool="threads",
                concurrency=len(jobs),
                # Long enough that the batch-mates still run when the poison kills the process.
                CRASHING_APP_WORK_SECONDS="2",
                **extra,
            ) as (process, _):
                wait_until(lambda: process.poll() is not None or all_final(), timeout, "no end")
                deaths += process.poll() is not None
        return PoisonRun(
            status(client, headers, poison),
            [status(client, headers, job) for job in fine],
            deaths,
            time.monotonic() - started,
        )


def test_a_job_that_kills_a_threads_pool_worker_fails_alone_and_its_batch_mates_succeed(
    fleet: Fleet,
) -> None:
    # Jobs sharing one process share its death. Without the gate the lost worker's messages
    # come back together, run together again and all die again, until every one of them has
    # failed worker_lost; with it, a redelivered job runs alone, so only the poison dies again.
    max_attempts = 2
    run = poison_among_batch_mates(fleet, 80, MAX_ATTEMPTS=str(max_attempts), **FAST_HEARTBEAT)

    poison = run.poison
    assert (poison["status"], poison["error"]["code"]) == ("failed", "worker_lost"), poison
    assert poison["attempts"] == max_attempts
    for job in run.batch_mates:
        # At most the first run, shared with the poison, was lost.
        assert job["status"] == "succeeded" and job["attempts"] <= 2, job
    assert run.deaths == max_attempts  # the poison's own runs only
    print(f"poison failed alone, batch-mates succeeded: {run.deaths} deaths, {run.seconds:.1f} s")


def test_a_message_held_by_a_killed_worker_is_recovered_by_another_worker(
    fleet: Fleet,
) -> None:
    with fleet.client() as (_, client, headers):
        with fleet.worker("doomed", **FAST_HEARTBEAT) as (doomed, _):
            # A 6000x6000 mask: seconds of work, time enough to kill the worker mid-job.
            big = ellipse_mask_png(6000, 6000, (3000, 3000), (2500, 1800))
            job_id = submit_job(client, headers, [(big, "big.png")]).get_json()["id"]
            wait_until(
                lambda: status(client, headers, job_id)["status"] == "running", 30, "not started"
            )
            kill_worker(doomed)  # main and pool process: no chance to give the message back
            killed_at = time.monotonic()
        with fleet.worker("rescuer", **FAST_HEARTBEAT):
            wait_until(
                lambda: status(client, headers, job_id)["status"] == "succeeded",
                60,
                "the killed worker's job was not finished elsewhere",
            )
            recovered_in = time.monotonic() - killed_at
        job = status(client, headers, job_id)
        assert job["attempts"] == 2
        expected = ellipse_circumference_mm(2500, 1800, 0.1)
        assert job["result"]["circumference_mm"] == pytest.approx(expected, rel=0.005)
        print(f"recovered {recovered_in:.1f} s after the kill (worker start-up included)")


def test_the_health_check_reports_a_worker_without_a_record(fleet: Fleet) -> None:
    settings = load_settings(**fleet.settings())
    assert health.check(settings, node=f"nobody@{NODE_HOST}") == [
        f"no live worker record for nobody@{NODE_HOST}"
    ]
