"""Checks every request passes before any view runs."""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import BadRequest

from webapp.errors import JSON_PATH_PREFIXES, ApiError

NUL_MESSAGE = "The request contains a NUL character."


def refuse_nul_characters(parse_multipart: bool = False) -> None:
    """A 400 for a NUL character in the path, query or form fields.

    Postgres cannot store or compare text holding one: without this check such a value reaches a
    query (a subject's name, a job type filter, an artifact name) and the driver raises, a 500.
    A multipart body (an upload) is checked only when ``parse_multipart``: its view does that
    after authenticating, so that nobody can make the server parse an upload before it knows who
    is asking.
    """
    texts = [request.path, *(text for pair in request.args.items(multi=True) for text in pair)]
    if parse_multipart or request.mimetype != "multipart/form-data":
        texts += [text for pair in request.form.items(multi=True) for text in pair]
    # A multipart part without a name is filed under None.
    if not any(text is not None and "\x00" in text for text in texts):
        return
    if request.path.startswith(JSON_PATH_PREFIXES):
        raise ApiError(400, "invalid_characters", NUL_MESSAGE)
    raise BadRequest(NUL_MESSAGE)


def register_request_guards(app: Flask) -> None:
    """Run the guards before every request (after CSRF and rate limits, registered earlier)."""
    app.before_request(lambda: refuse_nul_characters(parse_multipart=False))
