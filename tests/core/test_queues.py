"""Celery configuration: every job type routes to a declared queue; limits are consistent."""

from __future__ import annotations

from flask import Flask

from core.jobtypes import JOB_TYPES
from core.queues import CPU_QUEUE, GPU_QUEUE, TASK_ROUTES, build_celery_config
from core.settings_access import current_settings


def test_every_job_type_has_a_route_to_a_declared_queue() -> None:
    for job_type in JOB_TYPES.values():
        assert TASK_ROUTES[job_type.task_name]["queue"] in {GPU_QUEUE, CPU_QUEUE}


def test_reliability_settings() -> None:
    config = build_celery_config(
        broker_url="redis://x", soft_time_limit=10, time_limit=20, visibility_timeout=60
    )
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    assert config["accept_content"] == ["json"] and config["task_serializer"] == "json"
    assert config["broker_transport_options"]["visibility_timeout"] > config["task_time_limit"]
    assert config["task_soft_time_limit"] < config["task_time_limit"]
    assert {queue.name for queue in config["task_queues"]} == {GPU_QUEUE, CPU_QUEUE}
    for queue in config["task_queues"]:
        assert queue.exchange.name == queue.routing_key == queue.name


def test_app_celery_publishes_to_the_routed_queue(app: Flask) -> None:
    celery = app.extensions["celery"]
    route = celery.amqp.router.route({}, "scanqueue.perimeter", args=("x",), kwargs={})
    assert route["queue"].name == CPU_QUEUE


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
    celery.send_task("scanqueue.perimeter", args=["x"])
    assert (client.llen(CPU_QUEUE), client.llen(GPU_QUEUE)) == (1, 0)
    client.flushdb()


def test_pool_processes_get_time_to_load_the_models(app: Flask) -> None:
    # Celery's default (4 s) is shorter than loading the models: replacements die in a loop.
    conf = app.extensions["celery"].conf
    assert conf.worker_proc_alive_timeout == current_settings().WORKER_PROC_ALIVE_TIMEOUT > 4
