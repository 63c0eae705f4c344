"""Personal API tokens: long-lived, revocable, shown once; only their sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from core.database import db
from core.records import ApiToken, User, utcnow

PREFIX = "sq_"
# The characters kept to tell tokens apart on the tokens page.
VISIBLE_CHARS = 10


class UnconfirmedAccount(Exception):
    """Tokens are for accounts whose address was confirmed."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def is_personal_token(value: str) -> bool:
    """Whether a bearer value has the personal-token shape (signed session tokens do not)."""
    return value.startswith(PREFIX)


def create_token(user: User, name: str) -> tuple[ApiToken, str]:
    """A new token row and its secret (the only time the secret exists outside the client).

    Only a confirmed account gets one: an address someone registered without owning it must not
    hold a credential that outlives its owner's confirmation.
    """
    if not user.is_confirmed:
        raise UnconfirmedAccount(user.email)
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        owner=user, name=name, token_sha256=_digest(secret), prefix=secret[:VISIBLE_CHARS]
    )
    db.session.add(row)
    db.session.commit()
    return row, secret


def user_for_token(secret: str) -> User | None:
    """The active, confirmed owner of an unrevoked token, recording its use; None otherwise."""
    row = db.session.scalar(db.select(ApiToken).filter_by(token_sha256=_digest(secret)))
    if row is None or row.revoked_at is not None:
        return None
    if not row.owner.is_active or not row.owner.is_confirmed:
        return None
    row.last_used_at = utcnow()
    db.session.commit()
    return row.owner


def revoke_token(user: User, token_id: int) -> bool:
    """Revoke one of the user's tokens; False if it is not theirs or already revoked."""
    row = db.session.get(ApiToken, token_id)
    if row is None or row.owner_id != user.id or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    db.session.commit()
    return True
