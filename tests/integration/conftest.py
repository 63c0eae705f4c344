"""A real ``celery worker`` process on real Redis and Postgres, and an app that talks to it."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from core.database import db
from tests.builders import bearer, make_user
from tests.conftest import build_app, free_port, fresh_postgres_database
from tests.model_builders import (
    BINARY_CLASSES,
    bright_pixel_model,
    write_classifier,
    write_registry_model,
    write_sequence_model,
)
from workers.launch import start_worker, stop_worker

JOB_TIMEOUT = 90
# Where the integration worker sends email: nothing listens there until a test starts a sink.
STACK_SMTP_PORT = free_port()
TEST_MODEL = "tiny-bright"
TEST_SEQUENCE_MODEL = "tiny-trend"
TEST_CLASSIFIER = "tiny-classifier"
TEST_CLASSIFIER_THRESHOLD = 0.7


@dataclass
class WorkerStack:
    """The app the tests call and the worker process that serves its queues."""

    app: Flask
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int

    def log(self) -> str:
        """Everything the worker wrote so far."""
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> str:
        """The worker node's metrics endpoint, as Prometheus scrapes it."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()


@contextmanager
def running_stack(
    base: Path,
    redis_url: str,
    *,
    queues: str = "gpu,cpu",
    worker_database: Callable[[str], str] = str,
    **model_settings: str,
) -> Iterator[WorkerStack]:
    """An app and a worker on a fresh Postgres database, a media root and the given models.

    ``worker_database`` maps the database URL to the one the worker uses (e.g. through a proxy).
    """
    metrics_port = free_port()
    with fresh_postgres_database() as database_url:
        settings = {
            "SCANQUEUE_ENV": "testing",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "MEDIA_ROOT": str(base / "media"),
            "SMTP_PORT": str(STACK_SMTP_PORT),
            "MAIL_RETRY_BASE_SECONDS": "1",
            "MAIL_RETRY_MAX_DELAY_SECONDS": "2",
            # Every test worker serves its metrics, as a deployed one does.
            "WORKER_METRICS_PORT": str(metrics_port),
            "PROMETHEUS_MULTIPROC_DIR": str(base / "metrics"),
            **model_settings,
        }
        app = build_app(database_url, redis_url, base / "media", **settings)
        env = {
            **os.environ,
            **settings,
            "DATABASE_URL": worker_database(database_url),
            "PYTHONUNBUFFERED": "1",
        }
        process = start_worker(env, base / "worker.log", queues=queues)
        try:
            yield WorkerStack(app, process, base / "worker.log", metrics_port)
        finally:
            stop_worker(process)
            with app.app_context():
                db.engine.dispose()


def tiny_models(registry: Path) -> dict[str, str]:
    """Write tiny real models into a registry; the settings that make a worker serve them."""
    # Tiny real models stand in for the released ones: the plumbing is under test here.
    write_registry_model(registry, TEST_MODEL, "1.0.0", bright_pixel_model(), BINARY_CLASSES)
    write_sequence_model(registry, TEST_SEQUENCE_MODEL)
    # Its card's threshold differs from the setting's default (0.6): tests can tell which is used.
    write_classifier(registry, TEST_CLASSIFIER, uncertain_below=TEST_CLASSIFIER_THRESHOLD)
    return {
        "MODEL_DIR": str(registry),
        "SEGMENTATION_MODEL": TEST_MODEL,
        "SEQUENCE_MODEL": TEST_SEQUENCE_MODEL,
        "CLASSIFICATION_MODEL": TEST_CLASSIFIER,
    }


@pytest.fixture(scope="session")
def worker_stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[WorkerStack]:
    """One worker for the integration tests, with tiny stand-in segmentation and sequence models."""
    base = tmp_path_factory.mktemp("integration")
    with running_stack(base, redis_url, **tiny_models(base / "registry")) as stack:
        yield stack


@pytest.fixture(scope="module")
def released_model_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[WorkerStack]:
    """A worker serving the committed registry models, on a Redis database of its own."""
    own_redis = redis_url.rsplit("/", 1)[0] + "/12"
    redis.Redis.from_url(own_redis).flushdb()
    with running_stack(tmp_path_factory.mktemp("released"), own_redis) as stack:
        yield stack


@contextmanager
def signed_in(stack: WorkerStack) -> Iterator[tuple[FlaskClient, dict[str, str]]]:
    """Inside the stack app's context: a client and a fresh user's authorization headers."""
    with stack.app.app_context():
        client = stack.app.test_client()
        yield client, bearer(client, make_user().email)


@pytest.fixture
def stack_client(worker_stack: WorkerStack) -> Iterator[tuple[FlaskClient, dict[str, str]]]:
    """A client of the integration app and a fresh user's authorization headers."""
    with signed_in(worker_stack) as client_and_headers:
        yield client_and_headers


def wait_for_final(client: FlaskClient, headers: dict[str, str], url: str) -> dict:
    """Poll the job (as a client would, honouring Retry-After loosely) until it is final."""
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        response = client.get(url, headers=headers)
        assert response.status_code == 200
        body = response.get_json()
        if body["status"] in {"succeeded", "failed", "cancelled"}:
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {url} not final after {JOB_TIMEOUT} s: {body}")


def succeeded_job(
    stack: WorkerStack, client: FlaskClient, headers: dict[str, str], url: str
) -> dict:
    """The job at url once final; it must have succeeded (the worker's log says why if not)."""
    job = wait_for_final(client, headers, url)
    assert job["status"] == "succeeded", (job, stack.log())
    return job
