"""Worker entry point: ``celery -A workers.celery_app worker -Q gpu,cpu``."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init

from webapp import create_app
from webapp.extensions import db
from workers import startup  # noqa: F401  (connects the per-process start-up signals)

flask_app = create_app()
celery = flask_app.extensions["celery"]
# Task modules are imported by workers only; the web publishes by name.
celery.conf.include = ["tasks.perimeter"]


@worker_process_init.connect
def _fresh_database_connections(**_kwargs: Any) -> None:
    """Drop pooled connections inherited through the fork; each pool process opens its own."""
    with flask_app.app_context():
        db.engine.dispose(close=False)
