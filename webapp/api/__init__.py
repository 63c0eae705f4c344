"""The JSON API, version 1, under /api/v1."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from webapp.api import catalogue, jobs, openapi, tokens  # noqa: E402, F401  (routes register on import)
