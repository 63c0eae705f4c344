"""The ScanQueue web process: validates, stores, enqueues, reports; never imports TensorFlow."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy.engine import make_url

from webapp.config import PROJECT_ROOT, load_settings
from webapp.errors import register_error_handlers
from webapp.extensions import db, migrate
from webapp.queueing import celery_init_app
from webapp.settings_access import SETTINGS_KEY

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
# Multipart overhead on top of the files themselves (form fields, part headers).
FORM_OVERHEAD_BYTES = 1024 * 1024


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app from environment settings; ``overrides`` win (tests use them)."""
    settings = load_settings(**(overrides or {}))
    app = Flask(__name__, instance_path=str(PROJECT_ROOT / "instance"))
    app.extensions[SETTINGS_KEY] = settings
    app.config.update(
        SECRET_KEY=settings.SECRET_KEY,
        SQLALCHEMY_DATABASE_URI=settings.DATABASE_URL,
        SQLALCHEMY_ENGINE_OPTIONS={} if settings.is_sqlite else {"pool_pre_ping": True},
        MAX_CONTENT_LENGTH=settings.MAX_UPLOAD_BYTES * settings.MAX_FILES_PER_JOB
        + FORM_OVERHEAD_BYTES,
        TESTING=settings.SCANQUEUE_ENV == "testing",
    )
    if settings.is_sqlite and (database := make_url(settings.DATABASE_URL).database):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    settings.MEDIA_ROOT.mkdir(parents=True, exist_ok=True)

    # Job JSON reads best in the order the serializer builds it.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    celery_init_app(app, settings)

    from webapp import api, health
    from webapp.cli import register_cli

    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    register_error_handlers(app)
    register_cli(app)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return app
