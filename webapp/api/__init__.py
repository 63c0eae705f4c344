"""The JSON API, version 1, under /api/v1."""

from flask import Blueprint, request

from webapp.errors import ApiError

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.before_request
def refuse_nul_characters() -> None:
    """A 400 for a NUL character in the path, query or form: Postgres cannot compare text with it.

    Without this check such a value reaches a query and the driver raises (a 500).
    """
    texts = [request.path, *(text for pair in request.args.items(multi=True) for text in pair)]
    texts += [text for pair in request.form.items(multi=True) for text in pair]
    # A form part without a name is filed under None.
    if any(text is not None and "\x00" in text for text in texts):
        raise ApiError(400, "invalid_characters", "The request contains a NUL character.")


from webapp.api import jobs, openapi, tokens  # noqa: E402, F401  (routes register on import)
