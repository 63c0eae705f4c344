"""The kernel every ScanQueue process runs on: settings, database and records, the job state
machine, storage, job types, Celery publishing and queues, the email outbox.

It imports nothing from ``webapp``, ``workers``, ``tasks``, ``scheduler`` or ``models``
(tests/test_layering.py checks)."""
