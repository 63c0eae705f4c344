"""Celery configuration: every job type routes to a declared queue; limits are consistent."""

from __future__ import annotations

import pytest
from flask import Flask

from core.jobtypes import JOB_TYPES
from core.queues import CPU_QUEUE, GPU_QUEUE, TASK_ROUTES, build_celery_config
from core.settings_access import current_settings

# The queue of each task as the README documents it (job types first, then background tasks).
DOCUMENTED_QUEUES = {
    "perimeter": ("scanqueue.perimeter", CPU_QUEUE),
    "segmentation": ("scanqueue.segmentation", GPU_QUEUE),
    "head_circumference": ("scanqueue.head_circumference.segment", GPU_QUEUE),
    "face_extraction": ("scanqueue.face_extraction", GPU_QUEUE),
    "sequence_inference": ("scanqueue.sequence_inference.predict", GPU_QUEUE),
    "classification": ("scanqueue.classification", GPU_QUEUE),
}
BACKGROUND_QUEUES = {
    "scanqueue.head_circumference.measure": CPU_QUEUE,
    "scanqueue.send_email": CPU_QUEUE,
    "scanqueue.outbox.sweep": CPU_QUEUE,
    "scanqueue.followups.request_due": CPU_QUEUE,
    "scanqueue.jobs.sweep_stale": CPU_QUEUE,
    "scanqueue.artifacts.purge_old": CPU_QUEUE,
}
EXPECTED_QUEUES = {**dict(DOCUMENTED_QUEUES.values()), **BACKGROUND_QUEUES}


def test_every_job_type_has_its_documented_task_and_queue() -> None:
    assert set(JOB_TYPES) == set(DOCUMENTED_QUEUES)
    for name, job_type in JOB_TYPES.items():
        task_name, queue = DOCUMENTED_QUEUES[name]
        assert job_type.task_name == task_name
        assert TASK_ROUTES[task_name]["queue"] == queue, name
    assert {name: route["queue"] for name, route in TASK_ROUTES.items()} == EXPECTED_QUEUES


def test_reliability_settings() -> None:
    config = build_celery_config(
        broker_url="redis://x", soft_time_limit=10, time_limit=20, visibility_timeout=60
    )
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    assert config["accept_content"] == ["json"] and config["task_serializer"] == "json"
    assert config["task_create_missing_queues"] is False
    assert {queue.name for queue in config["task_queues"]} == {GPU_QUEUE, CPU_QUEUE}
    for queue in config["task_queues"]:
        assert queue.exchange.name == queue.routing_key == queue.name


def test_the_apps_time_limits_come_from_its_settings(tmp_path) -> None:
    from tests.conftest import build_app

    # Three different values, none a default: a swapped or ignored setting shows.
    app = build_app(
        f"sqlite:///{tmp_path / 'l.db'}", "redis://127.0.0.1:1/0", tmp_path / "media",
        TASK_SOFT_TIME_LIMIT=111, TASK_TIME_LIMIT=222, BROKER_VISIBILITY_TIMEOUT=333,
    )  # fmt: skip
    conf = app.extensions["celery"].conf
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (111, 222)
    assert conf.broker_transport_options["visibility_timeout"] == 333


@pytest.mark.parametrize(("task_name", "queue"), sorted(EXPECTED_QUEUES.items()))
def test_app_celery_publishes_to_the_routed_queue(app: Flask, task_name: str, queue: str) -> None:
    celery = app.extensions["celery"]
    route = celery.amqp.router.route({}, task_name, args=("x",), kwargs={})
    assert route["queue"].name == queue


def test_a_routed_message_lands_in_exactly_one_queue(tmp_path, redis_url: str) -> None:
    import redis

    from tests.conftest import build_app

    # A Redis database of its own: the integration worker consumes the usual test database.
    isolated = redis_url.rsplit("/", 1)[0] + "/13"
    client = redis.Redis.from_url(isolated)
    client.flushdb()
    app = build_app(f"sqlite:///{tmp_path / 'q.db'}", isolated, tmp_path / "media")
    celery = app.extensions["celery"]
    # Declare every queue with its bindings, as a worker consuming both queues does at start-up.
    with celery.connection_for_write() as connection:
        for queue in celery.amqp.queues.values():
            queue(connection.default_channel).declare()
    for task_name, queue in EXPECTED_QUEUES.items():
        other = GPU_QUEUE if queue == CPU_QUEUE else CPU_QUEUE
        celery.send_task(task_name, args=["x"])
        assert (client.llen(queue), client.llen(other)) == (1, 0), task_name
        client.delete(queue)
    client.flushdb()


def test_pool_processes_get_time_to_load_the_models(app: Flask) -> None:
    # Celery's default (4 s) is shorter than loading the models: replacements die in a loop.
    conf = app.extensions["celery"].conf
    assert conf.worker_proc_alive_timeout == current_settings().WORKER_PROC_ALIVE_TIMEOUT > 4
