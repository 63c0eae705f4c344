"""``GET /metrics``: the web node's metrics in the Prometheus text format.

Computed per scrape: jobs by status and the dead-letter jobs (Postgres), and per queue the
messages waiting, the oldest one's age and the live consumers, with the workers' started pool
processes (Redis: core/queue_metrics.py). Recorded as they happen: jobs submitted and request
latency, summed over every gunicorn process in multiprocess mode (core/metrics_export.py).
Counts only: no ids, names or addresses.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterator

import sqlalchemy as sa
from flask import Blueprint, Response, abort, request
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

from core.database import db
from core.dead_letters import count_dead_letters
from core.metrics_export import node_registry
from core.queue_metrics import BrokerCollector
from core.queue_names import QUEUES
from core.records import Job, JobStatus
from core.settings_access import current_settings

bp = Blueprint("metrics", __name__)


def _allowed() -> bool:
    """The scraper shows METRICS_TOKEN; with none configured, only this machine may read."""
    token = current_settings().METRICS_TOKEN
    if token:
        offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(offered.encode(), token.encode())
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


class _JobCounts:
    """Jobs by status and the dead-letter count, read from Postgres per scrape.

    Metric families, not Gauge objects: in multiprocess mode a Gauge writes its values to the
    shared files, and the node's sum would then count every scrape's copy.
    """

    def collect(self) -> Iterator[Metric]:
        """The two gauges."""
        counts = dict(
            db.session.execute(sa.select(Job.status, sa.func.count()).group_by(Job.status)).all()
        )
        jobs = GaugeMetricFamily("scanqueue_jobs", "Jobs by status", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], counts.get(status.value, 0))
        yield jobs
        yield GaugeMetricFamily(
            "scanqueue_dead_letter_jobs",
            "Jobs failed with worker_lost: their process died on every attempt",
            value=count_dead_letters(),
        )


@bp.get("/metrics")
def metrics() -> Response:
    """The web node's metrics (Prometheus text format); 404 to anyone not allowed to see them."""
    if not _allowed():
        abort(404)
    broker = BrokerCollector(current_settings().REDIS_URL, QUEUES)
    registry = node_registry(_JobCounts(), broker)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
