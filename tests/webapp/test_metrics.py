"""The web's GET /metrics: submissions and request latency by route, queue gauges, no ids."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.builders import bearer, make_user, submit_job
from tests.metric_samples import id_like_labels, moved, value

JOB_ROUTE = "/api/v1/jobs/<uuid:job_id>"
LATENCY = "scanqueue_http_request_duration_seconds_count"


def test_uploads_and_polls_show_as_submissions_and_latency_by_route(client: FlaskClient) -> None:
    before = client.get("/metrics").text
    headers = bearer(client, make_user().email)
    for _ in range(2):
        assert submit_job(client, headers).status_code == 202
    single = submit_job(client, headers)
    assert single.status_code == 202
    for _ in range(3):
        assert client.get(single.headers["Location"], headers=headers).status_code == 200
    assert submit_job(client, headers, job_type="no-such-type").status_code == 400
    assert client.get("/no/such/page/12345678").status_code == 404

    after = client.get("/metrics").text
    assert moved(before, after, "scanqueue_jobs_submitted_total", type="perimeter") == 3

    def requests(route: str, method: str, status: str) -> float:
        return moved(before, after, LATENCY, route=route, method=method, status=status)

    assert requests("/api/v1/jobs", "POST", "202") == 3
    assert requests("/api/v1/jobs", "POST", "400") == 1
    assert requests(JOB_ROUTE, "GET", "200") == 3
    assert requests("unmatched", "GET", "404") == 1
    # The histogram itself: its +Inf bucket holds every poll, and the time is a real duration.
    bucket = {"route": JOB_ROUTE, "method": "GET", "status": "200", "le": "+Inf"}
    assert value(after, "scanqueue_http_request_duration_seconds_bucket", **bucket) >= 3
    assert value(after, "scanqueue_http_request_duration_seconds_sum", **bucket_less(bucket)) > 0
    assert id_like_labels(after) == set()


def bucket_less(labels: dict[str, str]) -> dict[str, str]:
    """The labels without the bucket bound."""
    return {key: label for key, label in labels.items() if key != "le"}


def test_metrics_list_every_queue_with_its_depth_and_consumers(client: FlaskClient) -> None:
    text = client.get("/metrics").text
    for queue in ("gpu", "cpu"):
        for name in (
            "scanqueue_queue_messages",
            "scanqueue_queue_oldest_message_age_seconds",
            "scanqueue_queue_consumers",
        ):
            assert f'{name}{{queue="{queue}"}}' in text
    assert "scanqueue_broker_up 1.0" in text
