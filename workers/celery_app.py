"""Worker and beat entry point: ``celery -A workers.celery_app worker -Q gpu,cpu`` (or ``beat``).

Workers run on the core app (settings, database, Celery), never on the web app.
"""

from __future__ import annotations

from core.app import create_core_app
from core.jobtypes import job_task_modules
from core.settings_access import SETTINGS_KEY
from scheduler.schedule import beat_schedule
from workers import startup

flask_app = create_core_app()
celery = flask_app.extensions["celery"]
celery.conf.beat_schedule = beat_schedule(flask_app.extensions[SETTINGS_KEY])
# Task modules are imported by workers only; the web publishes by name. The job tasks' modules
# come from the job-type declarations.
celery.conf.include = [*job_task_modules(), "tasks.mail", "scheduler.tasks"]
startup.register(flask_app)
