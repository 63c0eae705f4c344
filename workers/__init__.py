"""Celery: its configuration and queues, the worker entry point, and per-process start-up."""
