"""The orphan sweep against real Redis and kombu, with the workers' real Heartbeat at scaled-down
timings: a message a live worker holds is never restored because records expired meanwhile."""

from __future__ import annotations

import time
import types
from collections.abc import Iterator

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.simple import SimpleQueue

from core.broker_messages import liveness_key
from core.config import Settings, load_settings
from tests.conftest import free_port
from workers.liveness import ORPHAN_SWEEP_LOCK, Heartbeat

# The defaults (10/30/60/20 s) divided by 20, within the validator's rules.
BEAT, TTL = 0.5, 1.5
SETTLE = TTL + BEAT  # how long a record that expired takes to be trusted again


@pytest.fixture
def settings(redis_url: str) -> Iterator[Settings]:
    url = redis_url.rsplit("/", 1)[0] + "/9"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield load_settings(
        REDIS_URL=url,
        WORKER_HEARTBEAT_SECONDS=BEAT,
        WORKER_HEARTBEAT_TTL_SECONDS=TTL,
        ORPHAN_MESSAGE_GRACE_SECONDS=SETTLE,
        ORPHAN_SWEEP_SECONDS=1,
    )
    client.flushdb()
    client.close()


def consumer_of(channel: object, queue: str) -> types.SimpleNamespace:
    """What Heartbeat reads of a Celery consumer: the channel whose QoS holds the messages."""
    task_consumer = types.SimpleNamespace(
        channel=channel, queues=[types.SimpleNamespace(name=queue)]
    )
    return types.SimpleNamespace(task_consumer=task_consumer, pool=None)


def deliver(url: str, name: str) -> tuple[Connection, SimpleQueue, object]:
    """Publish a message to its own queue and take it off unacknowledged (acks_late)."""
    queue = Queue(name, Exchange(name), routing_key=name)
    connection = Connection(url)
    with connection.Producer() as producer:
        producer.publish({"job": name}, exchange=queue.exchange, routing_key=name, declare=[queue])
    simple = connection.SimpleQueue(queue)
    return connection, simple, simple.get(timeout=5)


def beat_all(heartbeats: list[Heartbeat], seconds: float) -> None:
    """Every worker beats every BEAT seconds, for this long."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for heartbeat in heartbeats:
            heartbeat.beat()
        time.sleep(BEAT)


def test_expired_records_do_not_make_a_live_workers_message_an_orphan(settings: Settings) -> None:
    url = settings.REDIS_URL
    client = redis.Redis.from_url(url)
    conn_a, queue_a, running = deliver(url, "held")  # worker a runs it
    a = Heartbeat(settings, "a@host", url, {})
    a.consumer = consumer_of(queue_a.consumer.channel, "held")
    b = Heartbeat(settings, "b@host", url, {})
    idle = Connection(url)
    b.consumer = consumer_of(idle.default_channel, "held")
    beat_all([a, b], SETTLE + 1.5)  # past their settling: they sweep
    assert client.llen("held") == 0
    # A worker killed outright: its message stays unacknowledged, and no record lists it.
    conn_dead = deliver(url, "orphan")[0]

    # Nothing beats for longer than the TTL (a partition, a paused host): every record expires.
    time.sleep(TTL + 0.5)
    assert list(client.scan_iter("scanqueue:worker:*")) == []
    b.beat()  # b's thread happens to tick first: it sweeps before a has written its record
    assert client.llen("held") == 0, "a message the live worker a runs was queued again"
    recovered_from = time.monotonic()
    deadline = recovered_from + SETTLE + 3
    while client.llen("orphan") == 0:
        assert time.monotonic() < deadline, "the dead worker's message was never restored"
        a.beat()
        b.beat()
        time.sleep(0.1)
    # Restored only after a second sweep, when every live worker had had time to beat again.
    assert time.monotonic() - recovered_from >= SETTLE - 0.1
    assert client.llen("held") == 0 and client.hexists("unacked", running.delivery_tag)
    running.ack()
    for connection in (conn_a, conn_dead, idle):
        connection.release()
    client.close()


def test_a_worker_whose_beat_failed_sweeps_again_only_after_the_others_could_beat(
    settings: Settings,
) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    idle = Connection(settings.REDIS_URL)
    heartbeat = Heartbeat(settings, "a@host", settings.REDIS_URL, {})
    heartbeat.consumer = consumer_of(idle.default_channel, "q")
    heartbeat.beat()
    assert not client.exists(ORPHAN_SWEEP_LOCK)  # just started: others' records may be stale
    time.sleep(SETTLE)
    heartbeat.beat()
    assert client.get(ORPHAN_SWEEP_LOCK) == b"a@host"
    client.delete(ORPHAN_SWEEP_LOCK)

    working = heartbeat._client
    heartbeat._client = redis.Redis(port=free_port(), socket_connect_timeout=1)  # Redis gone
    with pytest.raises(redis.ConnectionError):
        heartbeat.beat()
    heartbeat._client = working  # back, with its sweep long due
    time.sleep(settings.ORPHAN_SWEEP_SECONDS)
    heartbeat.beat()
    assert not client.exists(ORPHAN_SWEEP_LOCK), "swept before the others could beat again"
    time.sleep(SETTLE)
    heartbeat.beat()
    assert client.get(ORPHAN_SWEEP_LOCK) == b"a@host"
    idle.release()
    client.close()


class Racing:
    """A set of delivery tags the event loop keeps changing while it is copied."""

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("Set changed size during iteration")


def test_unreadable_held_messages_leave_the_record_as_it_was(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    heartbeat = Heartbeat(settings, "a@host", settings.REDIS_URL, {})
    qos = types.SimpleNamespace(_delivered={"tag-1": None})
    heartbeat.consumer = consumer_of(types.SimpleNamespace(qos=qos), "q")
    heartbeat.beat()
    before = client.get(liveness_key("a@host"))
    assert b"tag-1" in before
    qos._delivered = Racing()
    heartbeat.beat()
    # Not rewritten with an empty list, which would disown the message it still runs.
    assert client.get(liveness_key("a@host")) == before
    client.close()
