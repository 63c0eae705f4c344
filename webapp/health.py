"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from core.database import db
from core.settings_access import current_settings

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up and serving requests."""
    return jsonify({"status": "ok"})


def _database_problem() -> str | None:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:
        db.session.rollback()
        return f"database unreachable: {type(exc).__name__}"
    return None


def _broker_problem() -> str | None:
    try:
        client = redis.Redis.from_url(
            current_settings().REDIS_URL, socket_connect_timeout=2, socket_timeout=2
        )
        client.ping()
        client.close()
    except Exception as exc:
        return f"broker unreachable: {type(exc).__name__}"
    return None


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """200 when the database and the broker answer, else 503 naming what does not."""
    checks = {"database": _database_problem(), "broker": _broker_problem()}
    problems = {name: reason for name, reason in checks.items() if reason}
    body = {
        "status": "ready" if not problems else "unavailable",
        "checks": {name: reason or "ok" for name, reason in checks.items()},
    }
    return jsonify(body), 503 if problems else 200
