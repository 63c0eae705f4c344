"""Signed, expiring tokens (itsdangerous) for every purpose: one serializer, one salt each."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from core.links import LinkError


class Purpose(StrEnum):
    """What a token is for; each has its own salt, so one cannot stand in for another."""

    API_TOKEN = "api-token"
    CONFIRM_EMAIL = "confirm-email"
    RESET_PASSWORD = "reset-password"
    FOLLOWUP_OUTCOME = "followup-outcome"

    @property
    def salt(self) -> str:
        """The itsdangerous salt of this purpose (part of every issued token's signature)."""
        return f"scanqueue.{self.value}"


def _serializer(purpose: Purpose) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=purpose.salt)


def sign(purpose: Purpose, payload: dict[str, Any]) -> str:
    """A URL-safe token carrying ``payload``, signed with the app's secret for ``purpose``."""
    return _serializer(purpose).dumps(payload)


def unsign(purpose: Purpose, token: str, max_age: int) -> dict[str, Any]:
    """The payload of a token signed for ``purpose`` at most ``max_age`` seconds ago.

    Raises LinkError: ``expired`` for a genuine but old token, else for a forged, tampered or
    foreign one (including one whose payload is not a JSON object).
    """
    try:
        payload = _serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired:
        raise LinkError(expired=True) from None
    except BadSignature:
        raise LinkError(expired=False) from None
    if not isinstance(payload, dict):
        raise LinkError(expired=False)
    return payload
