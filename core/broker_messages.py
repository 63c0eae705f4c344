"""What the Redis broker holds: the task ids of messages waiting or delivered but unacked, the
live workers' liveness records, and the messages held by workers that died.

Postgres is the source of truth for a job's state, Redis only carries its message; a Redis that
restarts without its data loses messages, and this is how the sweep notices. A worker killed
outright (SIGKILL, out of memory, a lost host) leaves the messages it held unacknowledged; the
orphan sweep returns them to their queues within a minute or two.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import redis
from kombu import Connection
from kombu.transport.redis import Channel

# Read long queues in slices so that a backlog does not have to fit in memory at once.
SLICE = 500


def queue_keys(queues: Iterable[str]) -> Iterator[str]:
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
        for key in queue_keys(queues):
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


# Messages seen held by no live worker: delivery tag -> when first seen so (Redis TIME).
ORPHAN_CANDIDATES = "scanqueue:orphan-candidates"


def redis_time(client: redis.Redis) -> float:
    """Now by the Redis server's clock: one clock for every host, whatever their skew."""
    seconds, microseconds = client.time()
    return seconds + microseconds / 1_000_000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def restore_orphaned_messages(
    connection: Connection, grace_seconds: float, confirm_seconds: float
) -> list[str]:
    """Put back on its queue every message that no live worker holds (its worker died without
    acknowledging or returning it), delivered more than ``grace_seconds`` ago and seen unheld
    by this sweep and by an earlier one at least ``confirm_seconds`` before; their tags.

    A missing record is not proof of death: after a Redis outage or a partition longer than the
    records' TTL every record has expired, and the first sweep afterwards would take every live
    worker for dead. So a sweep only notes the unheld messages (in Redis, with the Redis server's
    time), and a later sweep restores those still unheld once every live worker has had time to
    write its record again; one listed by any record meanwhile is forgotten.

    kombu itself gives such a message back only after the visibility timeout (an hour), which
    must outlast every task and every countdown. Each restore is kombu's own ``restore_by_tag``,
    a transaction watching the unacknowledged hash: a message acknowledged, or restored by
    someone else, meanwhile is not pushed twice.
    """
    channel = connection.default_channel
    client = channel.client
    now = redis_time(client)
    held = {tag for record in live_workers(client) for tag in record.get("held", [])}
    unacked = map(_text, client.zrange(channel.unacked_index_key, 0, -1))
    unheld = [tag for tag in unacked if tag not in held]
    seen = {_text(tag): float(at) for tag, at in client.hgetall(ORPHAN_CANDIDATES).items()}
    # Held again, acknowledged or restored since: the absence was not continuous.
    forgotten = set(seen) - set(unheld)
    if forgotten:
        client.hdel(ORPHAN_CANDIDATES, *forgotten)
    new = {tag: now for tag in unheld if tag not in seen}
    if new:
        client.hset(ORPHAN_CANDIDATES, mapping=new)
    # The delivery time is the delivering host's clock; the confirmation, Redis's own.
    delivered_before = now - grace_seconds
    old = {
        _text(tag)
        for tag in client.zrangebyscore(channel.unacked_index_key, "-inf", delivered_before)
    }
    orphans = [
        tag for tag in unheld if tag in old and tag in seen and now - seen[tag] >= confirm_seconds
    ]
    for tag in orphans:
        channel.qos.restore_by_tag(tag)
    if orphans:
        client.hdel(ORPHAN_CANDIDATES, *orphans)
    return orphans
