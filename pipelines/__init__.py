"""Pure processing pipelines: bytes and parameters in, results and artifacts out; no Celery, no database."""
