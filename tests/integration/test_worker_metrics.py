"""A real worker node's metrics endpoint: its pool processes' job counts and times, summed by
its main process, and the web's view of the queues it consumes."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from tests.builders import blank_png, ellipse_mask_png, submit_job
from tests.integration.conftest import TEST_MODEL, WorkerStack, wait_for_final
from tests.metric_samples import id_like_labels, moved, value

pytestmark = pytest.mark.integration

Client = tuple[FlaskClient, dict[str, str]]
TYPE = "perimeter"


def settle(read: Callable[[], str], ready: Callable[[str], bool], seconds: float = 10) -> str:
    """Scrape until ``ready`` holds (a counter moves just after the job's row is final)."""
    deadline = time.monotonic() + seconds
    text = read()
    while not ready(text) and time.monotonic() < deadline:
        time.sleep(0.1)
        text = read()
    return text


def test_worker_metrics_count_each_ended_job_once_with_its_times(
    stack_client: Client, worker_stack: WorkerStack
) -> None:
    client, headers = stack_client
    before = worker_stack.metrics()

    good = submit_job(client, headers, [(ellipse_mask_png(), "m.png")])
    bad = submit_job(client, headers, [(blank_png(), "b.png")])
    assert good.status_code == bad.status_code == 202
    assert wait_for_final(client, headers, good.headers["Location"])["status"] == "succeeded"
    failed = wait_for_final(client, headers, bad.headers["Location"])
    assert failed["error"]["code"] == "empty_mask"

    after = settle(
        worker_stack.metrics,
        lambda text: moved(before, text, "scanqueue_job_run_seconds_count", type=TYPE) >= 2,
    )
    assert moved(before, after, "scanqueue_jobs_succeeded_total", type=TYPE) == 1
    failed_total = "scanqueue_jobs_failed_total"
    assert moved(before, after, failed_total, type=TYPE, error_code="empty_mask") == 1
    assert moved(before, after, "scanqueue_job_queue_wait_seconds_count", type=TYPE) == 2
    assert moved(before, after, "scanqueue_job_run_seconds_count", type=TYPE) == 2
    assert moved(before, after, "scanqueue_job_run_seconds_sum", type=TYPE) > 0
    # Node state, from the main process; the model loads, from the pool processes' warm-up.
    assert value(after, "scanqueue_worker_up", queues="cpu,gpu") == 1
    assert "scanqueue_worker_busy_processes " in after
    assert value(after, "scanqueue_model_load_seconds", model=TEST_MODEL, version="1.0.0") > 0
    assert id_like_labels(after) == set()

    # The web's side: the live worker consumes both queues, and the jobs were submitted there.
    web = client.get("/metrics").text
    assert value(web, "scanqueue_queue_consumers", queue="cpu") >= 1
    assert value(web, "scanqueue_queue_consumers", queue="gpu") >= 1
    assert value(web, "scanqueue_jobs_submitted_total", type=TYPE) >= 2
