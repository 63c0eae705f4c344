"""Worker entry point: ``celery -A workers.celery_app worker -Q gpu,cpu``."""

from __future__ import annotations

from webapp import create_app
from workers import startup

flask_app = create_app()
celery = flask_app.extensions["celery"]
# Task modules are imported by workers only; the web publishes by name.
celery.conf.include = [
    "tasks.perimeter",
    "tasks.segmentation",
    "tasks.head_circumference",
    "tasks.face_extraction",
    "tasks.sequence_inference",
    "tasks.classification",
    "tasks.mail",
    "tasks.housekeeping",
]
startup.register(flask_app)
