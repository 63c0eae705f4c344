"""Signed, expiring links for account emails: confirm an address, reset a password."""

from __future__ import annotations

from core.database import db
from core.links import LinkError
from core.records import User
from core.settings_access import current_settings
from core.signing import Purpose, sign, unsign

# The account-link purposes under their historical name; each has its own salt (core.signing).
LinkPurpose = Purpose


def _binding(purpose: Purpose, user: User) -> str:
    # Both die with the security stamp (a sign-up that replaced an unconfirmed account, a
    # confirmation, a password change); a confirmation is also for one address only.
    if purpose is Purpose.CONFIRM_EMAIL:
        return f"{user.email} {user.security_stamp}"
    return user.security_stamp


def make_link_token(purpose: Purpose, user: User) -> str:
    """A token naming the user, bound to their current email or security stamp."""
    return sign(purpose, {"uid": user.id, "bind": _binding(purpose, user)})


def read_link_token(purpose: Purpose, token: str) -> User:
    """The user a valid, unexpired token names; LinkError otherwise."""
    payload = unsign(purpose, token, current_settings().ACCOUNT_LINK_TTL_SECONDS)
    user = db.session.get(User, payload.get("uid"))
    if user is None or not user.is_active or payload.get("bind") != _binding(purpose, user):
        raise LinkError(expired=False)
    return user
