"""The ScanQueue web process: validates, stores, enqueues, reports; never imports TensorFlow."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy.engine import make_url
from werkzeug.middleware.proxy_fix import ProxyFix

from webapp.config import PROJECT_ROOT, Settings, load_settings
from webapp.errors import register_error_handlers
from webapp.extensions import csrf, db, limiter, login_manager, migrate
from webapp.queueing import celery_init_app
from webapp.request_guards import register_request_guards
from webapp.security_headers import register_security_headers
from webapp.settings_access import SETTINGS_KEY

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
# Multipart overhead on top of the files themselves (form fields, part headers).
FORM_OVERHEAD_BYTES = 1024 * 1024


def _engine_options(settings: Settings) -> dict[str, Any]:
    """Postgres: test pooled connections before use (they die with a database restart) and
    give up connecting after a timeout, so an unreachable host answers 503 instead of hanging."""
    if settings.is_sqlite:
        return {}
    return {
        "pool_pre_ping": True,
        "connect_args": {"connect_timeout": settings.DATABASE_CONNECT_TIMEOUT_SECONDS},
    }


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app from environment settings; ``overrides`` win (tests use them)."""
    settings = load_settings(**(overrides or {}))
    production = settings.SCANQUEUE_ENV == "production"
    app = Flask(__name__, instance_path=str(PROJECT_ROOT / "instance"))
    app.extensions[SETTINGS_KEY] = settings
    app.config.update(
        SECRET_KEY=settings.SECRET_KEY,
        SQLALCHEMY_DATABASE_URI=settings.DATABASE_URL,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings),
        MAX_CONTENT_LENGTH=settings.MAX_UPLOAD_BYTES * settings.MAX_FILES_PER_JOB
        + FORM_OVERHEAD_BYTES,
        TESTING=settings.SCANQUEUE_ENV == "testing",
        RATELIMIT_STORAGE_URI=settings.RATELIMIT_STORAGE_URL or settings.REDIS_URL,
        RATELIMIT_KEY_PREFIX="scanqueue-limits",
        RATELIMIT_HEADERS_ENABLED=True,
        # Redis down: count in this process's memory meanwhile rather than refuse every request.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
        # The session cookie: not readable by scripts, not sent on cross-site requests; in
        # production only over HTTPS, and (the __Host- prefix) never set by another subdomain.
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=production,
        SESSION_COOKIE_NAME="__Host-session" if production else "session",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=production,
        # The CSRF token lives as long as the session (a form left open for hours still works).
        WTF_CSRF_TIME_LIMIT=None,
    )
    if settings.TRUSTED_PROXIES:
        # Behind nginx every peer is the proxy: take the client from the headers it sets, and
        # only from that many hops (a client's own X-Forwarded-For is not believed).
        hops = settings.TRUSTED_PROXIES
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    if settings.is_sqlite and (database := make_url(settings.DATABASE_URL).database):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    settings.MEDIA_ROOT.mkdir(parents=True, exist_ok=True)

    # Job JSON reads best in the order the serializer builds it.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    celery_init_app(app, settings)
    login_manager.init_app(app)
    login_manager.login_view = "accounts.signin"
    login_manager.login_message = "Sign in to see that page."
    csrf.init_app(app)
    limiter.init_app(app)

    from webapp import api, health, metrics
    from webapp.cli import register_cli
    from webapp.login import load_user
    from webapp.web import accounts, pages

    login_manager.user_loader(load_user)
    # The API authenticates every request itself (bearer token, or a session plus X-CSRFToken).
    csrf.exempt(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(accounts.bp)
    app.register_blueprint(pages.bp)
    register_error_handlers(app)
    register_security_headers(app, production)
    register_request_guards(app)
    register_cli(app)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return app
