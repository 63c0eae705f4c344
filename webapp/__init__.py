"""The ScanQueue web process: validates, stores, enqueues, reports; never imports TensorFlow."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from core.app import create_core_app
from core.config import Settings
from core.settings_access import SETTINGS_KEY
from webapp.errors import register_error_handlers
from webapp.extensions import csrf, limiter, login_manager
from webapp.request_guards import register_request_guards
from webapp.request_metrics import register_request_metrics
from webapp.security_headers import register_security_headers

# Multipart overhead on top of the files themselves (form fields, part headers).
FORM_OVERHEAD_BYTES = 1024 * 1024


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app from environment settings; ``overrides`` win (tests use them)."""
    app = create_core_app(overrides, name=__name__)
    settings: Settings = app.extensions[SETTINGS_KEY]
    production = settings.SCANQUEUE_ENV == "production"
    app.config.update(
        MAX_CONTENT_LENGTH=settings.MAX_UPLOAD_BYTES * settings.MAX_FILES_PER_JOB
        + FORM_OVERHEAD_BYTES,
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

    # Job JSON reads best in the order the serializer builds it.
    app.json.sort_keys = False  # type: ignore[attr-defined]
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
    register_request_metrics(app)
    register_cli(app)
    return app
