"""Celery beat: the schedule of periodic jobs."""
