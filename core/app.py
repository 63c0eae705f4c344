"""The app every process runs on: settings, database, migrations, Celery, logging.

Workers and beat run on it as it is; the web (``webapp.create_app``) adds HTTP on top.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy.engine import make_url

from core.config import PROJECT_ROOT, Settings, load_settings
from core.database import (
    AUTOCOMMIT_BIND,
    close_autocommit_connection,
    db,
    drop_connections_closed_by_server,
    migrate,
    uses_psycopg2,
)
from core.publishing import celery_init_app
from core.settings_access import SETTINGS_KEY

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


def _engine_options(settings: Settings) -> dict[str, Any]:
    """Postgres: test pooled connections before use (they die with a database restart) and
    give up connecting after a timeout, so an unreachable host answers 503 instead of hanging."""
    if settings.is_sqlite:
        return {}
    return {
        "pool_pre_ping": True,
        "connect_args": {"connect_timeout": settings.DATABASE_CONNECT_TIMEOUT_SECONDS},
        # A batching gpu worker runs GPU_BATCH_MAX jobs on threads, each holding a connection
        # while it runs: beyond SQLAlchemy's 5 + 10 the last would wait and time out.
        "max_overflow": max(10, settings.GPU_BATCH_MAX + 5),
    }


def _autocommit_engine_options(settings: Settings) -> dict[str, Any]:
    """The poll's engine (core.database.AUTOCOMMIT_BIND): autocommit, and with psycopg2 a check
    at checkout without a round trip instead of the pre-ping's ``SELECT 1``.

    The check sees a connection whose server closed it (a restart). TCP keepalives turn one that
    died silently (a crashed host, a dropped NAT entry) into a socket error within about a
    minute of idleness, which the check then sees too. Other drivers keep the pre-ping.
    """
    options = {**_engine_options(settings), "isolation_level": "AUTOCOMMIT"}
    if uses_psycopg2(settings.DATABASE_URL):
        options["pool_pre_ping"] = False
        options["connect_args"] = {
            **options["connect_args"],
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
    return options


def create_core_app(overrides: dict[str, Any] | None = None, name: str = "core") -> Flask:
    """Build the shared app from environment settings; ``overrides`` win (tests use them)."""
    settings = load_settings(**(overrides or {}))
    app = Flask(name, instance_path=str(PROJECT_ROOT / "instance"))
    app.extensions[SETTINGS_KEY] = settings
    app.config.update(
        # Signs the email links (account links, outcome follow-ups) as well as the web session.
        SECRET_KEY=settings.SECRET_KEY,
        SQLALCHEMY_DATABASE_URI=settings.DATABASE_URL,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings),
        SQLALCHEMY_BINDS={
            AUTOCOMMIT_BIND: {"url": settings.DATABASE_URL, **_autocommit_engine_options(settings)}
        },
        TESTING=settings.SCANQUEUE_ENV == "testing",
    )
    if settings.is_sqlite and (database := make_url(settings.DATABASE_URL).database):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    settings.MEDIA_ROOT.mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    if uses_psycopg2(settings.DATABASE_URL):
        with app.app_context():
            drop_connections_closed_by_server(db.engines[AUTOCOMMIT_BIND])
    # A request gives its connection back when it ends, even where tests reuse one app context.
    app.teardown_request(close_autocommit_connection)
    app.teardown_appcontext(close_autocommit_connection)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    celery_init_app(app, settings)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return app
