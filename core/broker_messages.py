"""What the Redis broker holds: the task ids of messages waiting or delivered but unacked, the
live workers' liveness records, and the messages held by workers that died.

Postgres is the source of truth for a job's state, Redis only carries its message; a Redis that
restarts without its data loses messages, and this is how the sweep notices. A worker killed
outright (SIGKILL, out of memory, a lost host) leaves the messages it held unacknowledged; the
orphan sweep returns them to their queues within a minute or two.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator

import redis
from kombu import Connection
from kombu.transport.redis import Channel

# Read long queues in slices so that a backlog does not have to fit in memory at once.
SLICE = 500


def _queue_keys(queues: Iterable[str]) -> Iterator[str]:
    """The Redis lists kombu uses for a queue: one per priority step (step 0 is the bare name)."""
    for queue in queues:
        for step in Channel.priority_steps:
            yield f"{queue}{Channel.sep}{step}" if step else queue


def _task_id(payload: object) -> str | None:
    """The task id in a kombu message (Celery protocol 2 keeps it in the headers)."""
    if isinstance(payload, (bytes, str)):
        payload = json.loads(payload)
    headers = payload.get("headers") if isinstance(payload, dict) else None
    return headers.get("id") if isinstance(headers, dict) else None


def held_task_ids(broker_url: str, queues: Iterable[str]) -> set[str]:
    """Task ids of every message the broker holds for these queues, waiting or unacknowledged."""
    client = redis.Redis.from_url(broker_url, socket_connect_timeout=3, socket_timeout=10)
    try:
        ids: set[str] = set()
        for key in _queue_keys(queues):
            start = 0
            while batch := client.lrange(key, start, start + SLICE - 1):
                ids.update(filter(None, map(_task_id, batch)))
                start += SLICE
        # Delivered to a worker, not yet acknowledged (acks_late): [message, exchange, key].
        unacked = (json.loads(raw)[0] for raw in client.hvals(Channel.unacked_key))
        ids.update(filter(None, map(_task_id, unacked)))
        return ids
    finally:
        client.close()


# Every live worker's record: ``<prefix><node name>`` -> JSON with the delivery tags it holds.
LIVENESS_PREFIX = "scanqueue:worker:"


def liveness_key(node: str) -> str:
    """The Redis key of a worker's liveness record."""
    return f"{LIVENESS_PREFIX}{node}"


def live_workers(client: redis.Redis) -> list[dict]:
    """The liveness records of the workers alive now (an expired record is gone)."""
    records = []
    for key in client.scan_iter(match=f"{LIVENESS_PREFIX}*", count=100):
        raw = client.get(key)
        if raw:
            records.append(json.loads(raw))
    return records


def restore_orphaned_messages(connection: Connection, grace_seconds: float) -> list[str]:
    """Put back on its queue every message delivered more than ``grace_seconds`` ago that no
    live worker holds (its worker died without acknowledging or returning it); their tags.

    kombu itself gives such a message back only after the visibility timeout (an hour), which
    must outlast every task and every countdown. Each restore is kombu's own ``restore_by_tag``,
    a transaction watching the unacknowledged hash: a message acknowledged, or restored by
    someone else, meanwhile is not pushed twice.
    """
    channel = connection.default_channel
    client = channel.client
    held = {tag for record in live_workers(client) for tag in record.get("held", [])}
    ceiling = time.time() - grace_seconds
    delivered_before = client.zrangebyscore(channel.unacked_index_key, "-inf", ceiling)
    tags = (tag.decode() if isinstance(tag, bytes) else tag for tag in delivered_before)
    orphans = [tag for tag in tags if tag not in held]
    for tag in orphans:
        channel.qos.restore_by_tag(tag)
    return orphans
