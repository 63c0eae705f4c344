"""Dynamic batching on a real threads-pool gpu worker: jobs queued together run in fewer model
calls than jobs, each gets exactly the result a lone (unbatched) call gives, a bad input fails
alone, and a worker killed while a batch waits loses none of it."""

from __future__ import annotations

import functools
import io
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from flask.testing import FlaskClient
from PIL import Image

from core.broker_messages import live_workers
from core.database import db
from core.records import Job
from core.settings_access import current_settings
from core.storage import MediaStorage
from models.face_detector import face_detector
from models.serving import LoadedModel, ModelCache
from pipelines.base import no_progress
from pipelines.classification import classify_images
from pipelines.faces import extract_faces
from pipelines.segmentation import segmentation_pipeline
from tests.builders import bearer, encode, face_photo, make_user, submit_job
from tests.conftest import build_app, fresh_postgres_database
from tests.integration.conftest import (
    TEST_CLASSIFIER,
    TEST_CLASSIFIER_THRESHOLD,
    TEST_MODEL,
    tiny_models,
    wait_for_final,
)
from tests.integration.test_classification_and_sweep import kill_worker
from tests.integration.test_worker_resilience import FAST_HEARTBEAT, wait_until
from workers.batching import worker_pool
from workers.launch import start_worker, stop_worker

pytestmark = pytest.mark.integration

BATCH_MAX = 16
MODEL_CALL = re.compile(r"model call (?P<model>.+?): (?P<jobs>\d+) job\(s\)")


def model_calls(log: str, model: str) -> list[int]:
    """Jobs per call of the model, as the worker logged each call."""
    return [int(m["jobs"]) for m in MODEL_CALL.finditer(log) if m["model"] == model]


class Backends:
    """A database, media root, broker database and model registry for these tests' workers."""

    def __init__(self, base: Path, database_url: str, broker_url: str) -> None:
        self.base = base
        self.models = tiny_models(base / "registry")
        self.env = {
            "SCANQUEUE_ENV": "testing",
            "DATABASE_URL": database_url,
            "MEDIA_ROOT": str(base / "media"),
            "REDIS_URL": broker_url,
            **self.models,
            **FAST_HEARTBEAT,
        }
        self.app = build_app(database_url, broker_url, base / "media", **self.models)

    @contextmanager
    def worker(self, name: str, **extra: str) -> Iterator[Any]:
        """A batching gpu worker (threads x GPU_BATCH_MAX) on both queues."""
        env = {**os.environ, **self.env, "GPU_BATCH_MAX": str(BATCH_MAX), **extra}
        log = self.base / f"{name}.log"
        pool, threads = worker_pool(BATCH_MAX, "gpu,cpu", 2)
        process = start_worker(
            {**env, "PYTHONUNBUFFERED": "1"}, log, concurrency=threads, pool=pool
        )
        try:
            yield process, log
        finally:
            if process.poll() is None:
                stop_worker(process, timeout=20)


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Backends]:
    broker = redis_url.rsplit("/", 1)[0] + "/9"
    redis.Redis.from_url(broker).flushdb()
    with fresh_postgres_database() as database_url:
        found = Backends(tmp_path_factory.mktemp("batching"), database_url, broker)
        with found.app.app_context():
            yield found
            db.engine.dispose()


@pytest.fixture
def client(backends: Backends) -> tuple[FlaskClient, dict[str, str]]:
    test_client = backends.app.test_client()
    return test_client, bearer(test_client, make_user().email)


def gray_scan(seed: int, size: tuple[int, int] = (90, 160)) -> bytes:
    """A scan of random bright and dark blocks: every seed segments differently."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 2, size=(size[0] // 10, size[1] // 10)) * 230
    pixels = np.kron(blocks, np.ones((10, 10))).astype(np.uint8)
    return encode(Image.fromarray(pixels), "PNG")


def shifted_face(shift: int) -> bytes:
    """The astronaut portrait, rolled sideways: the same size, the face elsewhere."""
    photo = np.asarray(Image.open(io.BytesIO(face_photo())).convert("RGB"))
    return encode(Image.fromarray(np.roll(photo, shift, axis=1)), "JPEG")


def submit(client: tuple[FlaskClient, dict[str, str]], job_type: str, files: list[bytes]) -> str:
    suffix = "jpg" if job_type == "face_extraction" else "png"
    named = [(data, f"{i}.{suffix}") for i, data in enumerate(files)]
    response = submit_job(client[0], client[1], named, {}, job_type)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def input_paths(job_id: str) -> list[Path]:
    """Where the job's uploaded files are stored."""
    storage = MediaStorage(current_settings().MEDIA_ROOT)
    job = db.session.get(Job, uuid.UUID(job_id))
    return [storage.resolve(item.storage_path) for item in job.inputs]


@functools.cache
def direct_model(registry: Path, name: str) -> LoadedModel:
    """A model loaded in the test process: its calls are never batched."""
    return ModelCache().get(registry, name)


def unbatched_result(job_type: str, paths: list[Path], registry: Path) -> dict:
    """The job's result computed here, one direct model call per job (no batching)."""
    if job_type == "segmentation":
        loaded = direct_model(registry, TEST_MODEL)
        return segmentation_pipeline(paths, {}, model=loaded.model, manifest=loaded.manifest).result
    if job_type == "classification":
        loaded = direct_model(registry, TEST_CLASSIFIER)
        return classify_images(
            paths, loaded.model, loaded.manifest, TEST_CLASSIFIER_THRESHOLD, no_progress
        ).result
    return extract_faces(face_detector().detector, paths, {}, no_progress).result


def close_to(actual: Any, expected: Any) -> bool:
    """Equal, numbers within float32 rounding of the model's output."""
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            close_to(actual[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(map(close_to, actual, expected))
    if isinstance(expected, float):
        return actual == pytest.approx(expected, abs=2e-4)
    return actual == expected


def final(client: tuple[FlaskClient, dict[str, str]], job_id: str) -> dict:
    return wait_for_final(client[0], client[1], f"/api/v1/jobs/{job_id}")


def queue_mixed_jobs(client: tuple[FlaskClient, dict[str, str]]) -> dict[str, str]:
    """Segmentation, classification (one and several images) and face jobs; id -> type."""
    jobs = {submit(client, "segmentation", [gray_scan(seed)]): "segmentation" for seed in range(6)}
    for seeds in ([10], [11, 12, 13], [14, 15]):
        jobs[submit(client, "classification", [gray_scan(s) for s in seeds])] = "classification"
    for shift in (0, 90, -120):
        jobs[submit(client, "face_extraction", [shifted_face(shift)])] = "face_extraction"
    return jobs


def test_jobs_queued_together_share_model_calls_and_each_gets_its_own_result(
    backends: Backends, client: tuple[FlaskClient, dict[str, str]]
) -> None:
    # Queued before the worker starts: it takes them all at once.
    jobs = queue_mixed_jobs(client)
    poisoned = submit(client, "segmentation", [gray_scan(99)])
    input_paths(poisoned)[0].write_bytes(b"\x89PNG\r\n\x1a\n not an image any more")
    with backends.worker("batcher", GPU_BATCH_WAIT_MS="300") as (_, log_path):
        results = {job_id: final(client, job_id) for job_id in [*jobs, poisoned]}
        log = log_path.read_text()
        [record] = live_workers(redis.Redis.from_url(backends.env["REDIS_URL"]))
    # The health check and the metrics see the one process of a threads pool as up.
    assert record["pool"] == {"processes": 1, "ready": 1}

    bad = results.pop(poisoned)
    assert bad["status"] == "failed" and bad["error"]["code"] == "invalid_image", bad
    registry = Path(backends.models["MODEL_DIR"])
    for job_id, job_type in jobs.items():
        job = results[job_id]
        assert job["status"] == "succeeded", (job, log)
        expected = unbatched_result(job_type, input_paths(job_id), registry)
        assert close_to(job["result"], expected), (job_type, job["result"], expected)
        if job_type == "face_extraction":
            assert job["result"]["faces_total"] == 1  # a box to compare, not an empty list
    for model, count in ((f"{TEST_MODEL} 1.0.0", 6), (f"{TEST_CLASSIFIER} 1.0.0", 3)):
        calls = model_calls(log, model)
        assert sum(calls) == count and len(calls) < count, (model, calls)
    faces = model_calls(log, "mtcnn")
    assert sum(faces) == 3 and len(faces) < 3, faces


def test_a_worker_killed_while_its_batch_waits_loses_none_of_it(
    backends: Backends, client: tuple[FlaskClient, dict[str, str]]
) -> None:
    jobs = {submit(client, "segmentation", [gray_scan(seed)]): "segmentation" for seed in range(4)}
    jobs[submit(client, "classification", [gray_scan(20)])] = "classification"
    # Two models, so neither batch holds every running job: both wait the full 20 s.
    with backends.worker("doomed", GPU_BATCH_WAIT_MS="20000") as (doomed, _):

        def all_running() -> bool:
            db.session.expire_all()
            return all(
                db.session.get(Job, uuid.UUID(job_id)).status == "running" for job_id in jobs
            )

        wait_until(all_running, 15, "the doomed worker claiming the batch")
        kill_worker(doomed)
    with backends.worker("rescuer", GPU_BATCH_WAIT_MS="50") as (_, log_path):
        results = {job_id: final(client, job_id) for job_id in jobs}
        log = log_path.read_text()
    registry = Path(backends.models["MODEL_DIR"])
    for job_id, job_type in jobs.items():
        job = results[job_id]
        assert job["status"] == "succeeded" and job["attempts"] == 2, (job, log)
        expected = unbatched_result(job_type, input_paths(job_id), registry)
        assert close_to(job["result"], expected)
