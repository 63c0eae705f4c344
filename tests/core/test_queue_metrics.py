"""Queue gauges from real messages that Celery and kombu put on a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from prometheus_client import CollectorRegistry, generate_latest

from core.app import create_core_app
from core.broker_messages import queue_keys
from core.queue_metrics import BrokerCollector, queue_depth
from core.queue_names import CPU_QUEUE, GPU_QUEUE
from tests.metric_samples import value

# A Redis database of its own: no test worker consumes these queues.
QUEUE_TEST_DB = 11


@pytest.fixture
def broker(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, Celery, redis.Redis]]:
    """An empty Redis database, a Celery app publishing to it, and a client of it."""
    url = redis_url.rsplit("/", 1)[0] + f"/{QUEUE_TEST_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    app = create_core_app(
        {
            "SCANQUEUE_ENV": "testing",
            "REDIS_URL": url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
            "MEDIA_ROOT": tmp_path / "media",
        }
    )
    yield url, app.extensions["celery"], client
    client.flushdb()
    client.close()


def test_depth_sums_every_priority_list_and_age_is_the_oldest_message(
    broker: tuple[str, Celery, redis.Redis],
) -> None:
    url, celery, client = broker
    before_first = time.time()
    # The oldest message goes to the highest priority list: the age must look at every list.
    celery.send_task("scanqueue.example", queue=GPU_QUEUE, priority=9)
    after_first = time.time()
    time.sleep(0.3)
    for priority in (0, 0, 3, 6):
        celery.send_task("scanqueue.example", queue=GPU_QUEUE, priority=priority)
    celery.send_task("scanqueue.example", queue=CPU_QUEUE)

    lengths = [client.llen(key) for key in queue_keys([GPU_QUEUE])]
    assert lengths == [2, 1, 1, 1]  # kombu really used four lists, named as queue_keys says
    now = time.time()
    depth = queue_depth(client, GPU_QUEUE, now)
    assert depth.messages == 5
    assert now - after_first <= depth.oldest_age_seconds <= now - before_first
    assert depth.oldest_age_seconds >= 0.3

    text = generate_latest(_registry(url)).decode()
    assert value(text, "scanqueue_queue_messages", queue="gpu") == 5
    assert value(text, "scanqueue_queue_messages", queue="cpu") == 1
    assert value(text, "scanqueue_queue_oldest_message_age_seconds", queue="gpu") >= 0.3
    assert value(text, "scanqueue_broker_up") == 1


def test_an_empty_queue_reads_zero_and_no_consumer_reads_zero(
    broker: tuple[str, Celery, redis.Redis],
) -> None:
    url, _celery, _client = broker
    text = generate_latest(_registry(url)).decode()
    for queue in (GPU_QUEUE, CPU_QUEUE):
        assert f'scanqueue_queue_messages{{queue="{queue}"}} 0.0' in text
        assert f'scanqueue_queue_oldest_message_age_seconds{{queue="{queue}"}} 0.0' in text
        # Present and zero, so that "no consumer on gpu" can alert.
        assert f'scanqueue_queue_consumers{{queue="{queue}"}} 0.0' in text


def test_an_unreachable_broker_reads_down() -> None:
    text = generate_latest(_registry("redis://127.0.0.1:1/0")).decode()
    assert value(text, "scanqueue_broker_up") == 0
    assert "scanqueue_queue_messages" not in text


def _registry(url: str) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(BrokerCollector(url, (GPU_QUEUE, CPU_QUEUE)))
    return registry
