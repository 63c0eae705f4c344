"""Worker liveness in Redis, the recovery of messages held by dead workers, and the worker's own
health record.

The worker's main process runs a thread that, every WORKER_HEARTBEAT_SECONDS, writes a record
with a TTL (WORKER_HEARTBEAT_TTL_SECONDS): its node name, host, pid, the delivery tags of the
messages it holds (delivered, not yet acknowledged: running, reserved or waiting for a
countdown), how many pool processes have started, and when its event loop last ran. A thread,
not the event loop, so that the record stays up while a warm shutdown waits for running tasks.

Every ORPHAN_SWEEP_SECONDS one worker (a Redis lock picks it) puts back on their queues the
messages delivered more than ORPHAN_MESSAGE_GRACE_SECONDS ago that no live worker holds: a worker
killed outright never gives its messages back, and kombu would wait for the visibility timeout
(an hour). Living in the workers, this needs neither beat nor a free slot on a queue.

An expired record is not proof of death (a Redis outage or a partition expires them all), so a
message is restored only once two sweeps, WORKER_HEARTBEAT_TTL_SECONDS + WORKER_HEARTBEAT_SECONDS
apart, found no record holding it; and a worker whose own beat failed sweeps again only that long
after its beat succeeds again, when the other workers have written their records anew. The
database fences what still slips through (tasks/runner.py): only the newest claim of a job may
report progress or store its result.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from typing import Any

import redis
from celery import bootsteps
from celery.signals import worker_shutdown
from kombu import Connection

from core.broker_messages import liveness_key, restore_orphaned_messages
from core.config import Settings

log = logging.getLogger(__name__)

ORPHAN_SWEEP_LOCK = "scanqueue:orphan-sweep"
THREADS_POOL_MODULE = "celery.concurrency.thread"


def held_delivery_tags(consumer: Any) -> list[str] | None:
    """Delivery tags of the messages this worker's task consumer holds unacknowledged; None if
    they could not be read this time."""
    task_consumer = getattr(consumer, "task_consumer", None)
    qos = getattr(getattr(task_consumer, "channel", None), "qos", None)
    delivered = getattr(qos, "_delivered", None)
    if delivered is None:
        return []
    for _ in range(5):
        try:
            # The event loop changes it meanwhile; a copy that raced is simply taken again.
            return [str(tag) for tag in list(delivered)]
        except RuntimeError:
            continue
    # Not []: a record listing nothing would disown messages this worker still runs.
    return None


def pool_state(consumer: Any) -> dict[str, int | None]:
    """How many pool processes there are and how many have reported up (finished starting)."""
    if getattr(type(getattr(consumer, "pool", None)), "__module__", "") == THREADS_POOL_MODULE:
        # A threads pool (a batching gpu worker) is this one process, which loaded its models
        # before its consumer ran.
        return {"processes": 1, "ready": 1}
    pool = getattr(getattr(consumer, "pool", None), "_pool", None)
    processes = getattr(pool, "_pool", None)
    # AsynPool files a process's input queue here when its UP message arrives, and removes it
    # when the process exits: exactly the processes that can take work.
    up = getattr(pool, "_fileno_to_inq", None)
    if processes is None or up is None:
        return {"processes": None, "ready": None}
    ready = {id(proc) for proc in list(up.values()) if proc.exitcode is None}
    return {"processes": len(list(processes)), "ready": len(ready)}


class Heartbeat:
    """The liveness thread of one worker process."""

    def __init__(self, settings: Settings, node: str, broker_url: str, options: dict) -> None:
        self.settings = settings
        self.node = node
        self.broker_url = broker_url
        self.transport_options = options
        self.consumer: Any = None
        self.loop_at = time.time()
        self.queues: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_sweep = 0.0
        # When this worker may sweep (monotonic): TTL + one beat after its record was first
        # written, or written again after a failure. None while its beats fail.
        self._sweep_from: float | None = None
        self._client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=3, socket_timeout=5
        )

    def start(self, consumer: Any) -> None:
        """Follow this consumer (again after a reconnect); start the thread once."""
        self.consumer = consumer
        self.queues = sorted(queue.name for queue in consumer.task_consumer.queues)
        if self._thread is None:
            self.beat()  # before the first message can arrive unrecorded for long
            self._thread = threading.Thread(target=self._run, name="liveness", daemon=True)
            self._thread.start()

    def record(self) -> dict[str, Any] | None:
        """This worker's liveness record; None if the messages it holds could not be read."""
        held = held_delivery_tags(self.consumer)
        if held is None:
            return None
        return {
            "node": self.node,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": self.queues,
            "at": time.time(),
            "loop_at": self.loop_at,
            "held": held,
            "pool": pool_state(self.consumer),
        }

    def beat(self) -> None:
        """Write the record, and sweep orphaned messages when it is this worker's turn."""
        settings = self.settings
        record = self.record()
        if record is None:
            log.warning("held messages unreadable; liveness record left as it was this time")
            return
        ttl_ms = int(settings.WORKER_HEARTBEAT_TTL_SECONDS * 1000)
        # Other workers' records before an outage may have expired, and they rewrite them
        # within a beat of its end: wait for that before judging any of them dead.
        settle = settings.WORKER_HEARTBEAT_TTL_SECONDS + settings.WORKER_HEARTBEAT_SECONDS
        try:
            self._client.set(liveness_key(self.node), json.dumps(record), px=ttl_ms)
        except Exception:
            self._sweep_from = None
            raise
        now = time.monotonic()
        if self._sweep_from is None:
            self._sweep_from = now + settle
        if now < self._sweep_from or now < self._next_sweep:
            return
        self._next_sweep = now + settings.ORPHAN_SWEEP_SECONDS
        lock_ms = int(settings.ORPHAN_SWEEP_SECONDS * 1000 * 0.9)
        if self._client.set(ORPHAN_SWEEP_LOCK, self.node, nx=True, px=lock_ms):
            with Connection(self.broker_url, transport_options=self.transport_options) as conn:
                restored = restore_orphaned_messages(
                    conn, settings.ORPHAN_MESSAGE_GRACE_SECONDS, confirm_seconds=settle
                )
            if restored:
                log.warning("returned messages held by dead workers: %s", restored)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.WORKER_HEARTBEAT_SECONDS):
            try:
                self.beat()
            except Exception as exc:  # a Redis outage: the record expires; try again next time
                log.warning("worker heartbeat failed: %s", exc)

    def stop(self) -> None:
        """Stop the thread and remove the record (a clean shutdown returned its messages)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with contextlib.suppress(redis.RedisError):
            self._client.delete(liveness_key(self.node))


def liveness_step(settings: Settings) -> type[bootsteps.StartStopStep]:
    """A consumer boot step that runs this worker's heartbeat thread with these settings."""

    class Liveness(bootsteps.StartStopStep):
        requires = ("celery.worker.consumer.tasks:Tasks",)

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self.heartbeat: Heartbeat | None = None

        def start(self, c: Any) -> None:
            if self.heartbeat is None:
                heartbeat = self.heartbeat = Heartbeat(
                    settings,
                    c.hostname,
                    c.app.conf.broker_url,
                    dict(c.app.conf.broker_transport_options or {}),
                )

                def tick() -> None:
                    heartbeat.loop_at = time.time()

                # Runs on the event loop: a loop that stops turning shows in the record.
                c.timer.call_repeatedly(settings.WORKER_HEARTBEAT_SECONDS, tick)
                # Not at the consumer's stop: a warm shutdown still holds the running tasks'
                # messages until they end, and they must not look orphaned meanwhile.
                worker_shutdown.connect(lambda **_: heartbeat.stop(), weak=False)
            self.heartbeat.start(c)

    return Liveness
