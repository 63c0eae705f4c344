"""Scale events mid-backlog on real worker nodes: one of three leaves (SIGTERM, warm shutdown), or
a second node joins. Every job ends exactly once, and none waits past the event by more than its
own run time.

"Waits past the event" is measured from the job records, per job claimed after the event: from the
moment the node that claimed it was free to take it (the event, the node's previous job ending,
or a new node being ready, whichever is last) until its claim. A job the fleet simply had not
reached yet (every node busy) does not wait past the event; one held by the leaving node and not
given back, or a node that idles while jobs wait, does. Each such wait must not exceed the job's
own run time (claim to end); Celery's hand-over between two jobs takes milliseconds.

The orphan sweep is put out of reach (ORPHAN_MESSAGE_GRACE_SECONDS=600): only the warm shutdown
itself can give the leaving node's messages back, so a message it kept would leave its job
unfinished and fail the test instead of being rescued a minute later. With prefetch multiplier 1
a node holds only the job it runs; a node that held more would give them back when its warm
shutdown closes the broker connection (kombu's Redis transport restores unacknowledged messages),
but only after its running job ended.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from tests.builders import ellipse_mask_png, submit_job
from tests.conftest import fresh_postgres_database
from tests.integration.scale_fleet import JobTiming, NodeGroup, job_timings, wait_for_jobs
from tests.integration.test_worker_resilience import Fleet, wait_until

pytestmark = pytest.mark.integration

HOST = "scale"
# A 2000 x 2000 mask: a perimeter job of a few tenths of a second, long enough to act
# mid-backlog, short enough to drain a backlog in seconds; no model, so the test is about the queue.
MASK = ellipse_mask_png(2000, 2000, (1000, 1000), (800, 600))
JOB_TIMEOUT = 90  # seconds for the backlog to drain, far below the sweep's 600 s grace
NO_SWEEP = {"ORPHAN_MESSAGE_GRACE_SECONDS": "600"}


@pytest.fixture
def backends(tmp_path: Path, redis_url: str) -> Iterator[Fleet]:
    """A database, media root and Redis database of this test's own."""
    broker = redis_url.rsplit("/", 1)[0] + "/6"
    redis.Redis.from_url(broker).flushdb()
    with fresh_postgres_database() as database_url:
        yield Fleet(database_url, tmp_path / "media", broker, tmp_path)


@pytest.fixture
def nodes(backends: Fleet) -> Iterator[NodeGroup]:
    """cpu worker nodes with one pool process each, on the test's backends; stopped afterwards."""
    env = {**os.environ, **backends.settings(**NO_SWEEP), "PYTHONUNBUFFERED": "1"}
    group = NodeGroup(env, backends.base, queues="cpu", concurrency=1)
    try:
        yield group
    finally:
        group.stop()


def backlog(client: FlaskClient, headers: dict[str, str], count: int) -> list[str]:
    """Queue ``count`` perimeter jobs; their ids in submission order."""
    files = [(MASK, "mask.png")]
    return [submit_job(client, headers, files).get_json()["id"] for _ in range(count)]


def count(job_ids: list[str], status: str, worker: str | None = None) -> int:
    """How many of the jobs have the status (and ran on the worker, if given)."""
    return sum(
        t.status == status and (worker is None or t.worker == worker) for t in job_timings(job_ids)
    )


def assert_each_ended_exactly_once(timings: list[JobTiming], nodes: NodeGroup) -> None:
    """Every job succeeded on its first and only claim, and its task stored a result once: one
    ``succeeded`` outcome on all the nodes together and no other (a second run would end as
    ``skipped`` or ``cancelled``)."""
    assert [t for t in timings if t.status != "succeeded" or t.attempts != 1] == []
    outcomes = nodes.outcomes()
    ours = {t.id for t in timings}
    assert {pair: n for pair, n in outcomes.items() if pair[0] in ours} == {
        (t.id, "succeeded"): 1 for t in timings
    }


def waits_past(
    timings: list[JobTiming], event_at: float, ready_at: dict[str, float]
) -> list[tuple[JobTiming, float]]:
    """Each job claimed after the event, with how long it waited while the node that claimed
    it was free (see the module docstring)."""
    found = []
    for job in timings:
        if job.claimed is None or job.claimed <= event_at:
            continue
        earlier = [
            other.finished
            for other in timings
            if other.worker == job.worker and other.finished and other.finished <= job.claimed
        ]
        free_from = max([event_at, ready_at.get(job.worker or "", 0.0), *earlier])
        found.append((job, job.claimed - free_from))
    return found


def assert_none_waits_past_its_run_time(
    timings: list[JobTiming], event_at: float, nodes: NodeGroup
) -> None:
    """No job claimed after the event waited past it longer than its own run time."""
    ready_at = {name: node.ready_at for name, node in nodes.nodes.items()}
    late = [
        (job.id, job.worker, round(past, 3), round(job.run, 3))
        for job, past in waits_past(timings, event_at, ready_at)
        if past > job.run
    ]
    assert late == [], "(job, node, waited past the event s, run time s)"


def busy_node(job_ids: list[str], queued_behind: int) -> str | None:
    """A node running one of the jobs while at least ``queued_behind`` others wait; or None."""
    timings = job_timings(job_ids)
    running = [t.worker for t in timings if t.status == "running"]
    queued = sum(t.status == "queued" for t in timings)
    return running[0] if running and queued >= queued_behind else None


def test_a_node_leaving_mid_backlog_finishes_its_job_and_leaves_no_job_behind(
    backends: Fleet, nodes: NodeGroup
) -> None:
    with backends.client() as (_, client, headers):
        starting = nodes.spawn([f"{name}@{HOST}" for name in "abc"])
        job_ids = backlog(client, headers, 18)  # while the nodes start
        nodes.wait_ready(starting)
        deadline = time.monotonic() + 30
        while (leaving := busy_node(job_ids, 6)) is None:
            assert time.monotonic() < deadline, "no node running a job with 6 queued behind it"
            time.sleep(0.05)
        sigterm_at = nodes.terminate(leaving)
        timings = wait_for_jobs(job_ids, JOB_TIMEOUT, "the backlog after a node left")
        assert nodes.nodes[leaving].process.wait(timeout=30) == 0

    assert_each_ended_exactly_once(timings, nodes)
    # The warm shutdown let the leaving node end the one job it held (one pool process,
    # prefetch 1), and nothing more.
    ended_there = [t for t in timings if t.worker == leaving and t.finished > sigterm_at]
    assert len(ended_there) <= 1
    # Jobs waiting at the SIGTERM ran on the nodes that stayed, none past its run time.
    after = [t for t in timings if t.claimed > sigterm_at and t.worker != leaving]
    assert len(after) >= 5
    assert_none_waits_past_its_run_time(timings, sigterm_at, nodes)
    leaver = nodes.nodes[leaving]
    given_back = set(leaver.received()) - {task_id for task_id, _ in leaver.outcomes()}
    print(
        f"{leaving} left with {len(after)} jobs waiting; ran per node: "
        f"{dict(Counter(t.worker for t in timings))}; messages it gave back: {len(given_back)}"
    )


def test_a_node_joining_mid_backlog_takes_jobs_at_once(backends: Fleet, nodes: NodeGroup) -> None:
    first, joining = f"a@{HOST}", f"b@{HOST}"
    with backends.client() as (_, client, headers):
        starting = nodes.spawn([first])
        job_ids = backlog(client, headers, 24)
        nodes.wait_ready(starting)
        wait_until(lambda: count(job_ids, "succeeded") >= 2, 30, "the first node under way")
        [node] = nodes.add([joining])
        still_queued = count(job_ids, "queued")
        timings = wait_for_jobs(job_ids, JOB_TIMEOUT, "the backlog after a node joined")

    assert still_queued > 0, "the backlog drained before the second node was ready"
    assert_each_ended_exactly_once(timings, nodes)
    on_new = [t for t in timings if t.worker == joining]
    assert on_new, "the joining node took no job"
    assert_none_waits_past_its_run_time(timings, node.ready_at, nodes)
    print(
        f"node joined with {still_queued} jobs queued; ran per node: "
        f"{dict(Counter(t.worker for t in timings))}"
    )
