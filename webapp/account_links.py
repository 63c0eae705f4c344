"""Signed, expiring links for account emails: confirm an address, reset a password."""

from __future__ import annotations

from enum import StrEnum

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from core.database import db
from core.links import LinkError
from core.records import User
from core.settings_access import current_settings


class LinkPurpose(StrEnum):
    """What a link does; each purpose has its own salt, so one cannot stand in for another."""

    CONFIRM_EMAIL = "confirm-email"
    RESET_PASSWORD = "reset-password"


def _serializer(purpose: LinkPurpose) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"scanqueue.{purpose}")


def _binding(purpose: LinkPurpose, user: User) -> str:
    # Both die with the security stamp (a sign-up that replaced an unconfirmed account, a
    # confirmation, a password change); a confirmation is also for one address only.
    if purpose is LinkPurpose.CONFIRM_EMAIL:
        return f"{user.email} {user.security_stamp}"
    return user.security_stamp


def make_link_token(purpose: LinkPurpose, user: User) -> str:
    """A token naming the user, bound to their current email or security stamp."""
    return _serializer(purpose).dumps({"uid": user.id, "bind": _binding(purpose, user)})


def read_link_token(purpose: LinkPurpose, token: str) -> User:
    """The user a valid, unexpired token names; LinkError otherwise."""
    try:
        payload = _serializer(purpose).loads(
            token, max_age=current_settings().ACCOUNT_LINK_TTL_SECONDS
        )
    except SignatureExpired:
        raise LinkError(expired=True) from None
    except BadSignature:
        raise LinkError(expired=False) from None
    user = db.session.get(User, payload.get("uid")) if isinstance(payload, dict) else None
    if user is None or not user.is_active or payload.get("bind") != _binding(purpose, user):
        raise LinkError(expired=False)
    return user
