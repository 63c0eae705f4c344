"""Worker nodes joining and leaving one Redis and Postgres, and what the job records say about it.

Shared by the scale-event tests (tests/integration/test_scale_events.py) and the scale-out
benchmark (benchmarks/scale_out.py): each node is a separate ``celery worker -n NAME`` process,
started in parallel with the others and stopped with SIGTERM (warm shutdown).
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.database import db
from core.records import Job
from workers.launch import READY_MARKER, spawn_worker, stop_worker, wait_until_ready

# Celery's log line for a task that returned; our job tasks return their outcome.
_RETURNED = re.compile(r"Task [\w.]+\[([0-9a-f-]{36})\] succeeded in [\d.e-]+s: '(\w+)'")
_RECEIVED = re.compile(r"Task [\w.]+\[([0-9a-f-]{36})\] received")


@dataclass
class Node:
    """One worker process and its log."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    ready_at: float = 0.0  # when it logged that it is ready

    def log(self) -> str:
        """Everything the node wrote so far."""
        return self.log_path.read_text(errors="replace")

    def logged_ready_at(self) -> float:
        """When the node logged that it was ready (epoch seconds, by its log's local time)."""
        ready = f"{self.name}{READY_MARKER}"
        line = next(line for line in self.log().splitlines() if ready in line)
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()

    def received(self) -> list[str]:
        """Task ids of the messages this node received, in order (a restored one may repeat)."""
        return _RECEIVED.findall(self.log())

    def outcomes(self) -> list[tuple[str, str]]:
        """(task id, outcome) of every task this node ran to its end."""
        return _RETURNED.findall(self.log())


class NodeGroup:
    """Worker nodes on the same backends, added and removed while jobs run."""

    def __init__(
        self,
        env: dict[str, str],
        logs: Path,
        *,
        queues: str,
        concurrency: int,
        app: str = "workers.celery_app",
        warm_marker: str | None = None,
    ) -> None:
        self.env = env
        # A line each pool process logs once it can take work (its models loaded), if any: a
        # node logs "ready" before its pool processes have finished starting.
        self.warm_marker = warm_marker
        self.logs = logs
        self.queues = queues
        self.concurrency = concurrency
        self.app = app
        self.nodes: dict[str, Node] = {}

    def spawn(self, names: list[str]) -> list[Node]:
        """Start a node per name at once (their start-ups overlap); not ready yet."""
        spawned = []
        for name in names:
            log = self.logs / f"{name.split('@')[0]}-{uuid.uuid4().hex[:6]}.log"
            process = spawn_worker(
                self.env,
                log,
                queues=self.queues,
                concurrency=self.concurrency,
                node=name,
                app=self.app,
            )
            spawned.append(self.nodes.setdefault(name, Node(name, process, log)))
        return spawned

    def wait_ready(self, nodes: list[Node], timeout: float = 180.0) -> list[Node]:
        """Return the nodes once each has logged that it is ready (and, given a warm marker,
        that every pool process is warm), noting when it logged ready."""
        deadline = time.monotonic() + timeout
        for node in nodes:
            wait_until_ready(node.process, node.log_path, timeout)
            node.ready_at = node.logged_ready_at()
            while self.warm_marker and node.log().count(self.warm_marker) < self.concurrency:
                assert node.process.poll() is None, f"{node.name} exited:\n{node.log()}"
                assert time.monotonic() < deadline, f"{node.name} not warm:\n{node.log()}"
                time.sleep(0.2)
        return nodes

    def add(self, names: list[str]) -> list[Node]:
        """Start a node per name at once and return once all are ready."""
        return self.wait_ready(self.spawn(names))

    def terminate(self, name: str) -> float:
        """SIGTERM the node (warm shutdown: it finishes what it runs); when it was sent."""
        self.nodes[name].process.send_signal(signal.SIGTERM)
        return time.time()

    def stop(self) -> None:
        """Stop every node still running: SIGTERM to all at once (warm shutdown), then wait for
        each, killing one that takes over 30 s."""
        running = [node.process for node in self.nodes.values() if node.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            stop_worker(process)

    def outcomes(self) -> Counter[tuple[str, str]]:
        """How often each (task id, outcome) occurred on all nodes together."""
        return Counter(pair for node in self.nodes.values() for pair in node.outcomes())


@dataclass(frozen=True)
class JobTiming:
    """A job's record: where it ran, how often it was claimed, and when (epoch seconds)."""

    id: str
    status: str
    worker: str | None
    attempts: int
    created: float
    claimed: float | None
    finished: float | None

    @property
    def wait(self) -> float:
        """Seconds in the queue: claimed - created."""
        assert self.claimed is not None, self
        return self.claimed - self.created

    @property
    def run(self) -> float:
        """Seconds from its claim until it ended (a chain's stages and hand-offs included)."""
        assert self.claimed is not None and self.finished is not None, self
        return self.finished - self.claimed


def job_timings(job_ids: list[str]) -> list[JobTiming]:
    """The jobs' records as they are now in the database, in the order of ``job_ids``."""
    db.session.expire_all()
    uuids = [uuid.UUID(job_id) for job_id in job_ids]
    jobs = {job.id: job for job in db.session.query(Job).filter(Job.id.in_(uuids))}
    db.session.rollback()
    return [
        JobTiming(
            id=str(job.id),
            status=job.status,
            worker=job.worker,
            attempts=job.attempts,
            created=job.created_at.timestamp(),
            claimed=job.started_at.timestamp() if job.started_at else None,
            finished=job.finished_at.timestamp() if job.finished_at else None,
        )
        for job in (jobs[each] for each in uuids)
    ]


def wait_for_jobs(job_ids: list[str], timeout: float, what: str) -> list[JobTiming]:
    """Poll the database until every job is final; their records (fails after the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        timings = job_timings(job_ids)
        if all(t.status in {"succeeded", "failed", "cancelled"} for t in timings):
            return timings
        waiting = Counter(t.status for t in timings)
        assert time.monotonic() < deadline, f"{what}: not all final within {timeout} s: {waiting}"
        time.sleep(0.2)
