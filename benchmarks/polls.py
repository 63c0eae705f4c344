"""Status polls under load: p50/p95/p99 of ``GET /api/v1/jobs/<id>`` at a steady offered rate.

    python -m benchmarks --polls [--poll-rate 200] [--poll-seconds 30]    (and make bench)

The production server as deployed: gunicorn with deploy/gunicorn.conf.py (WEB_WORKERS sync
processes, or gthread when WEB_THREADS > 1), ``SCANQUEUE_ENV=production`` (secrets set here to
throwaway test values), on a fresh Postgres database (TEST_DATABASE_URL's server, as the tests
use) and the Redis at REDIS_URL (database 13). One confirmed user with a personal API token owns
20 perimeter jobs made through the real job transitions: 10 queued, 5 running at 40 %, 5
succeeded with the pipeline's real result and overlay from an HC18 mask. locust
(benchmarks/locustfile.py) runs headless in its own process on the same machine, ``StatusPoller``
users at 10 polls/s each (users x 10 = the offered rate), each on its own clock from a random
point of its period, statistics reset once every user has started:

- plain polls: every poll asks for the whole job;
- conditional polls: the client sends the last ``ETag`` as ``If-None-Match`` (304 when unchanged);
- mixed: conditional polls plus ``ScanUser`` clients uploading HC18 masks as perimeter jobs,
  polling them with ``Retry-After`` and fetching their artifacts, with one worker process
  (``cpu`` queue, concurrency 1) running the jobs; run twice, since the first run starts with
  every gunicorn process's first (cold) uploads, all at once.

Every process is started and stopped here, on loopback; the run is bounded by ``--poll-seconds``.
"""

from __future__ import annotations

import csv
import os
import re
import secrets
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
from flask_migrate import upgrade

from core.config import PROJECT_ROOT, load_settings
from core.database import db
from core.job_state import claim, report_progress, succeed
from core.records import Job, JobInput, User, utcnow
from core.storage import MediaStorage
from pipelines.perimeter import perimeter_pipeline
from tests.conftest import free_port, fresh_postgres_database
from tests.test_reverse_proxy import running
from webapp import create_app
from webapp.personal_tokens import create_token
from workers.launch import start_worker, stop_worker

BENCH_REDIS_DB = 13
GUNICORN_CONFIG = PROJECT_ROOT / "deploy" / "gunicorn.conf.py"
LOCUSTFILE = PROJECT_ROOT / "benchmarks" / "locustfile.py"
MASK = PROJECT_ROOT / "tests" / "data" / "hc18" / "images" / "000_HC_Mask.png"
MASK_SPACING_MM = 0.0691
POLLS_PER_USER = 10
JOBS = {"queued": 10, "running": 5, "succeeded": 5}
POLL_NAME = "GET /api/v1/jobs/<id>"


@dataclass(frozen=True)
class PollRow:
    """One scenario's poll latencies and the rate the server actually answered."""

    scenario: str
    offered_rps: float
    achieved_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    failures: int
    cpu_ms_per_request: float
    server_p50_ms: float = float("nan")
    server_p99_ms: float = float("nan")


def bench_env(scratch: Path, database_url: str) -> dict[str, str]:
    """The production web process's environment, with throwaway secrets."""
    parts = urlsplit(load_settings().REDIS_URL)
    return {
        **os.environ,
        "SCANQUEUE_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "PUBLIC_URL": "https://scanqueue.bench.invalid",
        "TRUSTED_PROXIES": "0",
        "DATABASE_URL": database_url,
        "REDIS_URL": urlunsplit((parts.scheme, parts.netloc, f"/{BENCH_REDIS_DB}", "", "")),
        "MEDIA_ROOT": str(scratch / "media"),
    }


def _job(owner: User, storage: MediaStorage, mask: bytes) -> Job:
    job = Job(
        id=uuid.uuid4(),
        owner=owner,
        type="perimeter",
        params={"pixel_spacing_mm": MASK_SPACING_MM},
    )
    blob = storage.write(storage.input_path(job.id, 0, "png"), mask)
    job.inputs.append(
        JobInput(
            position=0,
            filename=MASK.name,
            content_type="image/png",
            size=blob.size,
            sha256=blob.sha256,
            storage_path=blob.storage_path,
        )
    )
    db.session.add(job)
    return job


def seed(env: dict[str, str]) -> tuple[str, list[str]]:
    """Migrate, add the user, their personal token and the jobs; (token, job ids). The
    benchmark's Redis database starts empty: no message of an earlier run is consumed."""
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    app = create_app({key: env[key] for key in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT")})
    with app.app_context():
        upgrade()
        user = User(email="polls@example.org", email_confirmed_at=utcnow())
        user.set_password(secrets.token_urlsafe(16))
        db.session.add(user)
        storage = MediaStorage(Path(env["MEDIA_ROOT"]))
        mask = MASK.read_bytes()
        jobs = {state: [_job(user, storage, mask) for _ in range(n)] for state, n in JOBS.items()}
        db.session.commit()
        _, token = create_token(user, "polls benchmark")
        output = perimeter_pipeline([MASK], {"pixel_spacing_mm": MASK_SPACING_MM})
        for job in jobs["running"] + jobs["succeeded"]:
            attempt = claim(job.id, "bench-worker")
            assert attempt is not None
            report_progress(job.id, 40, attempt.attempts)
        for job in jobs["succeeded"]:
            assert succeed(job.id, output, storage)
        ids = [str(job.id) for group in jobs.values() for job in group]
        db.engine.dispose()
    return token, ids


@contextmanager
def web_server(env: dict[str, str], port: int, log: Path) -> Iterator[int]:
    """gunicorn with the production configuration on ``port``; its arbiter's pid."""
    command = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG)]
    command += ["-b", f"127.0.0.1:{port}", "webapp:create_app()"]
    with running(command, port, log, env, ready_path="/healthz") as process:
        yield process.pid


def _cpu_ticks(pid: int | str, with_children: bool) -> int:
    # /proc/<pid>/stat after the command's closing parenthesis: utime is the 12th field,
    # stime, cutime (children waited for) and cstime follow.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11 : 15 if with_children else 13])


def server_cpu_seconds(arbiter: int) -> float:
    """CPU seconds gunicorn has used so far: the arbiter, its live processes, and the processes
    it replaced (counted in its children's time once reaped)."""
    ticks = _cpu_ticks(arbiter, with_children=True)
    for child in Path(f"/proc/{arbiter}/task/{arbiter}/children").read_text().split():
        try:
            ticks += _cpu_ticks(child, with_children=False)
        except FileNotFoundError:  # exited between the two reads
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def logged_requests(log: Path) -> list[bytes]:
    """gunicorn's access-log lines so far, one per request."""
    with log.open("rb") as handle:
        return [line.rstrip() for line in handle if b' HTTP/1.1" ' in line]


# A poll's access-log line (deploy/gunicorn.conf.py's format): its request line, and last the
# microseconds gunicorn took from reading the request to writing the answer.
_POLL_LINE = re.compile(rb'"GET /api/v1/jobs/[0-9a-f-]{36} HTTP/1\.1" .* (\d+)$')


def server_poll_ms(lines: list[bytes]) -> list[float]:
    """gunicorn's own time for each poll among these access-log lines, in ms."""
    return [int(match.group(1)) / 1000 for line in lines if (match := _POLL_LINE.search(line))]


def run_locust(
    base: str, env: dict[str, str], users: int, seconds: float, out: Path, scan_users: int = 0
) -> Path:
    """locust headless against ``base``; the path of its statistics CSV."""
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", base,
        "-u", str(users + scan_users), "-r", str(users + scan_users), "-t", f"{seconds:.0f}s",
        "--reset-stats", "--csv", str(out), "--only-summary", "--loglevel", "WARNING",
        "--stop-timeout", "10",
    ]  # fmt: skip
    command += ["StatusPoller", "ScanUser"] if scan_users else ["StatusPoller"]
    env = {**env, "SCANQUEUE_SCAN_USERS": str(scan_users)}
    with out.with_name(out.name + ".log").open("wb") as log:
        subprocess.run(
            command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            check=False, timeout=seconds + 120,
        )  # fmt: skip
    return out.with_name(out.name + "_stats.csv")


def poll_row(scenario: str, offered: float, stats_csv: Path) -> PollRow:
    """The poll route's row of locust's statistics."""
    with stats_csv.open() as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == POLL_NAME:
                return PollRow(
                    scenario,
                    offered,
                    float(row["Requests/s"]),
                    float(row["50%"]),
                    float(row["95%"]),
                    float(row["99%"]),
                    int(row["Failure Count"]),
                    cpu_ms_per_request=float("nan"),
                )
    raise RuntimeError(f"no {POLL_NAME} row in {stats_csv}")


@dataclass(frozen=True)
class Target:
    """The running server under test."""

    base: str
    arbiter: int
    log: Path
    offered: float
    users: int
    seconds: float


def measure(
    target: Target, scenario: str, env: dict[str, str], out: Path, scan_users: int = 0
) -> PollRow:
    """One locust run; its poll row with the server's CPU per request."""
    cpu_before, logged_before = server_cpu_seconds(target.arbiter), len(logged_requests(target.log))
    stats = run_locust(target.base, env, target.users, target.seconds, out, scan_users)
    cpu = server_cpu_seconds(target.arbiter) - cpu_before
    logged = logged_requests(target.log)[logged_before:]
    row = poll_row(scenario, target.offered, stats)
    served = sorted(server_poll_ms(logged)) or [float("nan")]
    return replace(
        row,
        cpu_ms_per_request=1000 * cpu / max(1, len(logged)),
        server_p50_ms=served[len(served) // 2],
        server_p99_ms=served[min(len(served) - 1, int(len(served) * 0.99))],
    )


def poll_table(rate: float = 200, seconds: float = 30, scan_users: int = 4) -> list[PollRow]:
    """Measure the three scenarios; print and return their rows."""
    users = max(1, round(rate / POLLS_PER_USER))
    scratch = Path(tempfile.mkdtemp(prefix="scanqueue-polls-"))
    rows = []
    with ExitStack() as stack:
        database_url = stack.enter_context(fresh_postgres_database())
        env = bench_env(scratch, database_url)
        token, jobs = seed(env)
        settings = load_settings(**{k: env[k] for k in ("WEB_WORKERS", "WEB_THREADS") if k in env})
        port, log = free_port(), scratch / "gunicorn.log"
        arbiter = stack.enter_context(web_server(env, port, log))
        target = Target(
            f"http://127.0.0.1:{port}", arbiter, log, users * POLLS_PER_USER, users, seconds
        )
        locust_env = {
            **env,
            "SCANQUEUE_TOKEN": token,
            "SCANQUEUE_POLL_JOBS": ",".join(jobs),
            "SCANQUEUE_POLL_RATE": str(POLLS_PER_USER),
        }
        for scenario, conditional in (("plain polls", "0"), ("conditional polls", "1")):
            out = scratch / scenario.replace(" ", "-")
            env_now = {**locust_env, "SCANQUEUE_CONDITIONAL": conditional}
            rows.append(measure(target, scenario, env_now, out))
        if scan_users:
            worker = start_worker(env, scratch / "worker.log", queues="cpu", concurrency=1)
            try:
                env_now = {**locust_env, "SCANQUEUE_CONDITIONAL": "1"}
                # Twice: the first run holds every process's first uploads (cold: compiling
                # the upload's statements, the first broker connection), the second none.
                for run in ("first", "second"):
                    scenario = f"mixed: + {scan_users} uploading clients, 1 worker ({run} run)"
                    out = scratch / f"mixed-{run}"
                    rows.append(measure(target, scenario, env_now, out, scan_users))
            finally:
                stop_worker(worker)
    print(
        f"\nStatus polls (GET /api/v1/jobs/<id>): gunicorn deploy/gunicorn.conf.py "
        f"({settings.WEB_WORKERS} {'sync' if settings.WEB_THREADS == 1 else 'gthread'} "
        f"processes x {settings.WEB_THREADS} threads, production), "
        f"Postgres, personal token; locust {users} users x {POLLS_PER_USER}/s for "
        f"{seconds:.0f} s on the same {os.cpu_count()}-CPU machine; server CPU = gunicorn's "
        f"processes' CPU time per request it logged; server p50/p99 = gunicorn's own time per "
        f"poll (its access log's %(D)s: request read to answer written)\n"
    )
    print(
        "| scenario | offered rps | achieved rps | p50 ms | p95 ms | p99 ms | failures "
        "| server CPU ms/request | server p50 / p99 ms |\n|---|---|---|---|---|---|---|---|---|"
    )
    for row in rows:
        print(
            f"| {row.scenario} | {row.offered_rps:.0f} | {row.achieved_rps:.1f} | "
            f"{row.p50_ms:.0f} | {row.p95_ms:.0f} | {row.p99_ms:.0f} | {row.failures} | "
            f"{row.cpu_ms_per_request:.1f} | {row.server_p50_ms:.1f} / {row.server_p99_ms:.1f} |"
        )
    return rows
