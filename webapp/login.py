"""Web sign-in sessions: a server-side record per signed-in browser, and Flask-Login's loader.

The session cookie (signed by Flask) names the user with their security stamp and holds a random
session key; the user is loaded only while the stamp is current and the key's record is not
ended. Signing out ends the record, so a copy of the cookie stops working too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import sqlalchemy as sa
from flask import session
from flask_login import login_user, logout_user

from core.database import db
from core.records import User, UserSession, utcnow

SESSION_KEY = "scanqueue_session_key"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def start_session(user: User) -> None:
    """Sign the user in on this browser under a new server-side session record."""
    key = secrets.token_urlsafe(32)
    db.session.add(UserSession(user_id=user.id, key_sha256=_digest(key)))
    db.session.commit()
    session[SESSION_KEY] = key
    login_user(user)


def end_session() -> None:
    """Sign this browser out and end its record, so the cookie is worthless everywhere."""
    key = session.pop(SESSION_KEY, None)
    if isinstance(key, str):
        db.session.execute(
            sa.update(UserSession)
            .where(UserSession.key_sha256 == _digest(key), UserSession.ended_at.is_(None))
            .values(ended_at=utcnow())
        )
        db.session.commit()
    logout_user()


def end_all_sessions(user: User) -> None:
    """End every session of the user (the caller commits)."""
    db.session.execute(
        sa.update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def load_user(session_id: str) -> User | None:
    """Flask-Login's user loader: the active user of ``"<id>:<security stamp>"`` if this
    browser's session record is live; None otherwise (the browser is signed out)."""
    user_id, _, stamp = session_id.partition(":")
    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.is_active:
        return None
    if not hmac.compare_digest(user.security_stamp.encode(), stamp.encode()):
        return None
    key = session.get(SESSION_KEY)
    if not isinstance(key, str):
        return None
    live = db.session.scalar(
        sa.select(UserSession.id).where(
            UserSession.key_sha256 == _digest(key),
            UserSession.user_id == user.id,
            UserSession.ended_at.is_(None),
        )
    )
    return user if live is not None else None
