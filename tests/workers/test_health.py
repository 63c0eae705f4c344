"""The worker health check's verdict on liveness records (the records come from real workers in
tests/integration/test_worker_resilience.py)."""

from __future__ import annotations

import json
import time

import redis

from core.broker_messages import liveness_key
from core.config import load_settings
from workers.health import check, problems

SETTINGS = load_settings()


def record(**changes: object) -> dict:
    now = time.time()
    return {"node": "gpu@h", "host": "h", "at": now, "loop_at": now, "pool": {"ready": 1}} | changes


def test_a_fresh_record_with_a_started_process_is_healthy() -> None:
    assert problems(record(), SETTINGS, time.time()) == []


def test_no_started_pool_process_is_unhealthy() -> None:
    # The state of a worker whose new processes are killed while they load the models.
    assert problems(record(pool={"processes": 1, "ready": 0}), SETTINGS, time.time()) == [
        "no pool process has finished starting up"
    ]


def test_a_stuck_event_loop_is_unhealthy() -> None:
    found = problems(record(loop_at=time.time() - 600), SETTINGS, time.time())
    assert found and found[0].startswith("event loop silent")


def test_check_reads_this_hosts_records_from_redis(redis_url: str) -> None:
    settings = load_settings(REDIS_URL=redis_url.rsplit("/", 1)[0] + "/14")
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    try:
        assert check(settings, host="h") == ["no live worker record for host h"]
        client.set(liveness_key("gpu@h"), json.dumps(record()), ex=30)
        assert check(settings, host="h") == []
        client.set(liveness_key("cpu@h"), json.dumps(record(node="cpu@h", pool={"ready": 0})))
        assert check(settings, host="h") == ["cpu@h: no pool process has finished starting up"]
        assert check(settings, node="gpu@h") == []
        assert check(load_settings(REDIS_URL="redis://127.0.0.1:1/0"), host="h")[0].startswith(
            "broker unreachable"
        )
    finally:
        client.flushdb()
        client.close()
