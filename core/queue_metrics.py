"""Per-queue broker gauges, computed from Redis when scraped: messages waiting, the age of the
oldest, and the live worker nodes consuming each queue.

kombu's Redis transport keeps one list per priority step for a queue (the bare name, then
``name\\x06\\x163``, ``\\x06\\x166``, ``\\x06\\x169``); a publisher LPUSHes and a consumer pops
from the right, so the right end of each list is the message it delivers next. Celery's messages
carry no send time, so every message we publish is stamped with one (``stamp_sent_at``, a
``before_task_publish`` handler: web uploads, a worker handing a job to its next stage, beat's
sweeps alike), and the oldest message's age is read from those right ends: four LINDEX calls,
whatever the backlog. The broker, not Postgres, is asked: it also sees the non-job tasks (mail,
housekeeping) and a job stage handed on by a worker, and it is what the consumers drain.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from core.broker_messages import live_workers, queue_keys

# A header of every message we publish: the publisher's clock (time.time()) when it was sent.
SENT_AT_HEADER = "scanqueue_sent_at"


def stamp_sent_at(headers: dict[str, Any] | None = None, **_kwargs: Any) -> None:
    """Celery ``before_task_publish`` handler: note the send time in the message's headers."""
    # Overwritten, not kept: a retry is a new send (a restored message keeps its first stamp).
    if headers is not None:
        headers[SENT_AT_HEADER] = time.time()


def _sent_at(raw: bytes | str) -> float | None:
    """The send time stamped on a raw kombu message; None if it has none (older publishers)."""
    try:
        headers = json.loads(raw).get("headers") or {}
        return float(headers[SENT_AT_HEADER])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


@dataclass(frozen=True)
class QueueDepth:
    """What waits in one queue: the messages over its priority lists and the oldest's age."""

    messages: int
    oldest_age_seconds: float


def queue_depth(client: redis.Redis, queue: str, now: float | None = None) -> QueueDepth:
    """The queue's waiting messages (every priority list) and the oldest one's age (0 if none)."""
    keys = list(queue_keys([queue]))
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.llen(key)
            pipe.lindex(key, -1)
        replies = pipe.execute()
    messages = sum(int(length) for length in replies[0::2])
    stamps = [stamp for raw in replies[1::2] if raw and (stamp := _sent_at(raw)) is not None]
    now = time.time() if now is None else now
    # Clocks of different hosts: a message "from the future" is simply new.
    age = max(0.0, now - min(stamps)) if stamps else 0.0
    return QueueDepth(messages, age)


class BrokerCollector:
    """Prometheus collector of the queue, worker and broker gauges, read from Redis per scrape."""

    def __init__(self, redis_url: str, queues: Iterable[str]) -> None:
        self.redis_url = redis_url
        self.queues = tuple(queues)

    def collect(self) -> Iterator[Metric]:
        """The gauges; with Redis unreachable only ``scanqueue_broker_up 0``."""
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            metrics = self._read(client)
            up = 1
        except redis.RedisError:
            metrics, up = [], 0
        finally:
            client.close()
        yield from metrics
        yield GaugeMetricFamily("scanqueue_broker_up", "Whether Redis answered", value=up)

    def _read(self, client: redis.Redis) -> list[Metric]:
        records = live_workers(client)
        consumers: Counter[str] = Counter()
        ready: Counter[str] = Counter()
        for record in records:
            for queue in record.get("queues", []):
                consumers[queue] += 1
                ready[queue] += (record.get("pool") or {}).get("ready") or 0
        messages = _queue_gauge("scanqueue_queue_messages", "Messages waiting in the queue")
        oldest = _queue_gauge(
            "scanqueue_queue_oldest_message_age_seconds",
            "Age of the oldest waiting message (0 when empty)",
        )
        alive = _queue_gauge("scanqueue_queue_consumers", "Live worker nodes consuming the queue")
        workers = _queue_gauge("scanqueue_workers", "Live workers consuming a queue")
        processes = _queue_gauge(
            "scanqueue_worker_processes_ready",
            "Pool processes that finished starting up, per queue",
        )
        now = time.time()
        # Every known queue, zeros included: "no consumer on gpu" must read 0, not be absent.
        for queue in sorted({*self.queues, *consumers}):
            depth = queue_depth(client, queue, now)
            messages.add_metric([queue], depth.messages)
            oldest.add_metric([queue], depth.oldest_age_seconds)
            alive.add_metric([queue], consumers[queue])
            workers.add_metric([queue], consumers[queue])
            processes.add_metric([queue], ready[queue])
        return [messages, oldest, alive, workers, processes]


def _queue_gauge(name: str, documentation: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=["queue"])
