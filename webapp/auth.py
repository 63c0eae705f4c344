"""API authentication: a bearer token (signed and expiring, or a personal token), or the web
session of a signed-in user (unsafe methods then need the CSRF token in ``X-CSRFToken``)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError, validate_csrf
from werkzeug.security import check_password_hash, generate_password_hash

from core.database import db
from core.links import LinkError
from core.records import User
from core.settings_access import current_settings
from core.signing import Purpose, sign, unsign
from webapp.errors import ApiError
from webapp.personal_tokens import TokenOwner, is_personal_token, user_for_token

TOKEN_SALT = Purpose.API_TOKEN.salt
# Compared against when the email is unknown, so a miss costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method="scrypt")

F = TypeVar("F", bound=Callable[..., Any])


def issue_token(user: User) -> str:
    """A signed token naming the user and their security stamp; it expires after
    TOKEN_TTL_SECONDS, or sooner when the stamp changes (password reset, address confirmed)."""
    return sign(Purpose.API_TOKEN, {"uid": user.id, "stamp": user.security_stamp})


def user_from_token(token: str) -> User:
    """The active user a token names, or an ApiError(401) saying why not."""
    try:
        payload = unsign(Purpose.API_TOKEN, token, current_settings().TOKEN_TTL_SECONDS)
    except LinkError as exc:
        if exc.expired:
            raise _unauthorized(
                "token_expired", "The token has expired; request a new one."
            ) from None
        raise _unauthorized("invalid_token", "The token is not valid.") from None
    user = db.session.get(User, payload.get("uid"))
    if user is None or not user.is_active or not user.is_confirmed:
        raise _unauthorized("invalid_token", "The token is not valid.")
    stamp = payload.get("stamp")
    if not isinstance(stamp, str) or not hmac.compare_digest(
        stamp.encode(), user.security_stamp.encode()
    ):
        raise _unauthorized("invalid_token", "The token is not valid or was revoked.")
    return user


def authenticate(email: str, password: str) -> User | None:
    """The active user with this email and password, else None (in constant-ish time)."""
    # No address has a NUL character, and Postgres refuses to compare text holding one.
    wanted = User.normalise_email(email)
    user = None if "\x00" in wanted else db.session.scalar(db.select(User).filter_by(email=wanted))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not user.check_password(password) or not user.is_active:
        return None
    return user


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": 'Bearer realm="scanqueue"'})


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _bearer_user(token: str) -> User | TokenOwner:
    if is_personal_token(token):
        user = user_for_token(token)
        if user is None:
            raise _unauthorized("invalid_token", "The token is not valid or was revoked.")
        return user
    return user_from_token(token)


def _session_user() -> User | None:
    """The signed-in web user, after the CSRF check for unsafe methods; None if signed out."""
    if not current_user.is_authenticated:
        return None
    if request.method not in SAFE_METHODS:
        try:
            validate_csrf(request.headers.get("X-CSRFToken", ""))
        except (CSRFError, ValueError) as exc:
            raise ApiError(403, "csrf_failed", f"CSRF check failed: {exc}") from None
    return current_user._get_current_object()  # type: ignore[no-any-return]


def token_required(view: F) -> F:
    """Require a bearer token or a signed-in web session; the user lands in ``g.user``: a
    ``User``, or for a personal token a ``TokenOwner`` (views use only ``id`` and
    ``is_confirmed``)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            g.user = _bearer_user(token.strip())
        elif (user := _session_user()) is not None:
            g.user = user
        else:
            raise _unauthorized("missing_token", "Send 'Authorization: Bearer <token>'.")
        return view(*args, **kwargs)

    return cast(F, wrapper)
