"""JSON errors: one shape, ``{"error": {"code": ..., "message": ...}}``, for every failure."""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

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


def _snake(name: str) -> str:
    return name.lower().replace(" ", "_").replace("-", "_")


def register_error_handlers(app: Flask) -> None:
    """Answer API errors and HTTP errors (404, 405, 413, 429 ...) as JSON; pages get a page."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        response, status = error_response(exc.status, exc.code, exc.message)
        response.headers.update(exc.headers)
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
