"""JSON errors: one shape, ``{"error": {"code": ..., "message": ...}}``, for every failure."""

from __future__ import annotations

import contextlib

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from core.database import db
from core.jobtypes import JobRequestError
from core.settings_access import current_settings

# Paths answered in JSON; every other error is a page.
JSON_PATH_PREFIXES = ("/api/", "/healthz", "/readyz")


class ApiError(Exception):
    """A request the API refuses, with the HTTP status, a stable code and a readable message."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    """The JSON body every API error uses."""
    return jsonify({"error": {"code": code, "message": message}}), status


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether the error means the database cannot be reached (as opposed to a bad query)."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _snake(name: str) -> str:
    return name.lower().replace(" ", "_").replace("-", "_")


def register_error_handlers(app: Flask) -> None:
    """Answer API errors and HTTP errors (404, 405, 413, 429 ...) as JSON; pages get a page."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        response, status = error_response(exc.status, exc.code, exc.message)
        response.headers.update(exc.headers)
        return response, status

    @app.errorhandler(JobRequestError)
    def _job_request_error(exc: JobRequestError) -> tuple[Response, int]:
        # The job-type table is shared with the workers, so it knows nothing of HTTP.
        return error_response(400, exc.code, exc.message)

    @app.errorhandler(DBAPIError)
    @app.errorhandler(PoolTimeoutError)
    def _database_error(exc: Exception) -> tuple[Response | str, int]:
        if not is_database_unavailable(exc):
            raise exc  # a real bug (bad query, constraint): Flask answers 500 and logs it
        app.logger.warning("database unavailable (%s %s): %s", request.method, request.path, exc)
        # The connection may be gone for good; the session is discarded at teardown anyway.
        with contextlib.suppress(Exception):
            db.session.rollback()
        retry_after = str(current_settings().DATABASE_RETRY_AFTER_SECONDS)
        message = "The database is unavailable for a moment; retry shortly."
        if request.path.startswith(JSON_PATH_PREFIXES):
            response, status = error_response(503, "database_unavailable", message)
        else:
            # Straight from Jinja: render_template's context processors would look up the
            # signed-in user (Flask-Login), which needs the database that is down.
            template = app.jinja_env.get_template("unavailable.html")
            page = template.render(message=message, retry_after=retry_after)
            response, status = Response(page, mimetype="text/html"), 503
        response.headers["Retry-After"] = retry_after
        return response, status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response | str, int]:
        status = exc.code or 500
        if not request.path.startswith(JSON_PATH_PREFIXES):
            return render_template("error.html", status=status, error=exc), status
        if status == 429:
            return error_response(
                429, "too_many_requests", f"Too many requests ({exc.description}); retry later."
            )
        if status == 413:
            return error_response(
                413,
                "request_too_large",
                f"The request exceeds {app.config['MAX_CONTENT_LENGTH']} bytes.",
            )
        return error_response(status, _snake(exc.name), exc.description or exc.name)
