"""Thin Celery tasks: load a job, call a pure pipeline, store artifacts, record status."""
