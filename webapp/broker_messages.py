"""What the Redis broker still holds: the task ids of messages waiting or delivered but unacked.

Postgres is the source of truth for a job's state, Redis only carries its message; a Redis that
restarts without its data loses messages, and this is how the sweep notices.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import redis
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
