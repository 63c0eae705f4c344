"""Flask-Login's user loader: the session names the user and their password fingerprint."""

from __future__ import annotations

from webapp.extensions import db
from webapp.records import User


def load_user(session_id: str) -> User | None:
    """The active user of a session id ``"<id>:<fingerprint>"``; a changed password ends it."""
    user_id, _, fingerprint = session_id.partition(":")
    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.is_active or user.password_fingerprint != fingerprint:
        return None
    return user
