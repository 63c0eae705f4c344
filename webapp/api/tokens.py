"""POST /api/v1/tokens: trade an email and password (HTTP Basic) for a bearer token."""

from __future__ import annotations

from flask import Response, jsonify, request

from core.settings_access import current_settings
from webapp.api import bp
from webapp.auth import authenticate, issue_token
from webapp.errors import ApiError
from webapp.rate_limits import (
    forget_signin_failures,
    record_signin_failure,
    signin_per_account,
    signin_per_address,
)


@bp.post("/tokens")
@signin_per_address
@signin_per_account
def create_token() -> tuple[Response, int]:
    """Issue a signed token that expires after TOKEN_TTL_SECONDS."""
    credentials = request.authorization
    if credentials is None or credentials.type != "basic":
        raise ApiError(
            401,
            "missing_credentials",
            "Send your email and password with HTTP Basic authentication.",
            headers={"WWW-Authenticate": 'Basic realm="scanqueue"'},
        )
    user = authenticate(credentials.username or "", credentials.password or "")
    if user is None:
        record_signin_failure()
        raise ApiError(
            401,
            "invalid_credentials",
            "Email or password is wrong.",
            headers={"WWW-Authenticate": 'Basic realm="scanqueue"'},
        )
    forget_signin_failures()
    # Whoever registered an address without owning it must not hold a token that outlives the
    # owner's confirmation: unconfirmed accounts get none.
    if not user.is_confirmed:
        raise ApiError(
            403,
            "email_unconfirmed",
            "Confirm your email address (follow the link we sent) before asking for a token.",
        )
    ttl = current_settings().TOKEN_TTL_SECONDS
    return jsonify({"token": issue_token(user), "token_type": "Bearer", "expires_in": ttl}), 201
