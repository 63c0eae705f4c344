"""API authentication: signed, expiring bearer tokens issued against an email and password."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.errors import ApiError
from webapp.extensions import db
from webapp.records import User
from webapp.settings_access import current_settings

TOKEN_SALT = "scanqueue.api-token"
# Compared against when the email is unknown, so a miss costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method="scrypt")

F = TypeVar("F", bound=Callable[..., Any])


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


def issue_token(user: User) -> str:
    """A signed token naming the user; it expires after TOKEN_TTL_SECONDS."""
    return _serializer().dumps({"uid": user.id})


def user_from_token(token: str) -> User:
    """The active user a token names, or an ApiError(401) saying why not."""
    try:
        payload = _serializer().loads(token, max_age=current_settings().TOKEN_TTL_SECONDS)
    except SignatureExpired:
        raise _unauthorized("token_expired", "The token has expired; request a new one.") from None
    except BadSignature:
        raise _unauthorized("invalid_token", "The token is not valid.") from None
    user = db.session.get(User, payload.get("uid")) if isinstance(payload, dict) else None
    if user is None or not user.is_active:
        raise _unauthorized("invalid_token", "The token is not valid.")
    return user


def authenticate(email: str, password: str) -> User | None:
    """The active user with this email and password, else None (in constant-ish time)."""
    user = db.session.scalar(db.select(User).filter_by(email=User.normalise_email(email)))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not user.check_password(password) or not user.is_active:
        return None
    return user


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": 'Bearer realm="scanqueue"'})


def token_required(view: F) -> F:
    """Require ``Authorization: Bearer <token>``; the user lands in ``g.user``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("missing_token", "Send 'Authorization: Bearer <token>'.")
        g.user = user_from_token(token.strip())
        return view(*args, **kwargs)

    return cast(F, wrapper)
