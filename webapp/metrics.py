"""``GET /metrics``: counts for operators in the Prometheus text format.

Jobs by status, the dead-letter jobs (``worker_lost``: given up on after MAX_ATTEMPTS
deliveries whose process died), and the live workers per queue with their started pool
processes, from the workers' liveness records. Counts only: no ids, names or addresses.
"""

from __future__ import annotations

import hmac
import ipaddress

import redis
import sqlalchemy as sa
from flask import Blueprint, Response, abort, request
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from core.broker_messages import live_workers
from core.database import db
from core.dead_letters import count_dead_letters
from core.records import Job, JobStatus
from core.settings_access import current_settings

bp = Blueprint("metrics", __name__)


def _worker_gauges(registry: CollectorRegistry) -> None:
    workers = Gauge(
        "scanqueue_workers", "Live workers consuming a queue", ["queue"], registry=registry
    )
    ready = Gauge(
        "scanqueue_worker_processes_ready",
        "Pool processes that finished starting up, per queue",
        ["queue"],
        registry=registry,
    )
    client = redis.Redis.from_url(
        current_settings().REDIS_URL, socket_connect_timeout=2, socket_timeout=2
    )
    try:
        for record in live_workers(client):
            for queue in record.get("queues", []):
                workers.labels(queue).inc()
                ready.labels(queue).inc((record.get("pool") or {}).get("ready") or 0)
    finally:
        client.close()


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


@bp.get("/metrics")
def metrics() -> Response:
    """Job and worker counts (Prometheus text format); 404 to anyone not allowed to see them."""
    if not _allowed():
        abort(404)
    registry = CollectorRegistry()
    jobs = Gauge("scanqueue_jobs", "Jobs by status", ["status"], registry=registry)
    counts = dict(
        db.session.execute(sa.select(Job.status, sa.func.count()).group_by(Job.status)).all()
    )
    for status in JobStatus:
        jobs.labels(status.value).set(counts.get(status.value, 0))
    Gauge(
        "scanqueue_dead_letter_jobs",
        "Jobs failed with worker_lost: their process died on every attempt",
        registry=registry,
    ).set(count_dead_letters())
    broker_up = Gauge("scanqueue_broker_up", "Whether Redis answered", registry=registry)
    try:
        _worker_gauges(registry)
        broker_up.set(1)
    except redis.RedisError:
        broker_up.set(0)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
