"""Worker and beat entry point: ``celery -A workers.celery_app worker -Q gpu,cpu`` (or ``beat``).

Workers run on the core app (settings, database, Celery), never on the web app.
"""

from __future__ import annotations

from core.app import create_core_app
from core.settings_access import SETTINGS_KEY
from scheduler.schedule import beat_schedule
from workers import startup

flask_app = create_core_app()
celery = flask_app.extensions["celery"]
celery.conf.beat_schedule = beat_schedule(flask_app.extensions[SETTINGS_KEY])
# Task modules are imported by workers only; the web publishes by name.
celery.conf.include = [
    "tasks.perimeter",
    "tasks.segmentation",
    "tasks.head_circumference",
    "tasks.face_extraction",
    "tasks.sequence_inference",
    "tasks.classification",
    "tasks.mail",
    "scheduler.tasks",
]
startup.register(flask_app)
