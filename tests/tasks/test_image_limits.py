"""The worker checks a stored input against its own image limits before decoding it."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from core.settings_access import SETTINGS_KEY
from tests.tasks.test_runner import fetch, new_job, perimeter_task


def test_a_stored_mask_over_the_workers_limit_fails_the_job_not_the_worker(
    app: Flask, client: FlaskClient, media_root: Path
) -> None:
    job_id = new_job(client)  # a 400 x 300 mask, accepted by the web's limits
    settings = app.extensions[SETTINGS_KEY]
    app.extensions[SETTINGS_KEY] = settings.model_copy(update={"MAX_IMAGE_PIXELS": 1000})
    try:
        assert perimeter_task(app).apply(args=[str(job_id)]).get() == "failed"
    finally:
        app.extensions[SETTINGS_KEY] = settings
    job = fetch(job_id)
    assert job.status == "failed" and job.error_code == "image_too_large"
    assert "1000 pixels" in job.error_message
