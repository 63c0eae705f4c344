"""Personal API tokens: long-lived, revocable, shown once; only their sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, timedelta

import sqlalchemy as sa

from core.database import autocommit_connection, db
from core.records import ApiToken, User, utcnow

PREFIX = "sq_"
# The characters kept to tell tokens apart on the tokens page.
VISIBLE_CHARS = 10
# "Last used" is kept to within this (the tokens page shows minutes): a script polling every
# second writes the row once a minute, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


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


@dataclass(frozen=True)
class TokenOwner:
    """The owner of a personal token as the API needs it (``id``, ``is_confirmed``, as on
    ``User``): read without ORM objects, whose bookkeeping cost a poll more than its queries."""

    id: int
    is_confirmed: bool


_TOKENS = ApiToken.__table__
_USERS = User.__table__
# Built once with bound parameters (a statement built per request costs more than it runs).
_ACTIVE_TOKEN = (
    sa.select(_TOKENS.c.id, _TOKENS.c.last_used_at, _USERS.c.id.label("owner_id"))
    .join(_USERS, _TOKENS.c.owner_id == _USERS.c.id)
    .where(
        _TOKENS.c.token_sha256 == sa.bindparam("digest"),
        _TOKENS.c.revoked_at.is_(None),
        _USERS.c.is_active.is_(True),
        _USERS.c.email_confirmed_at.is_not(None),
    )
)
_RECORD_USE = (
    sa.update(_TOKENS)
    .where(_TOKENS.c.id == sa.bindparam("token_id"))
    .values(last_used_at=sa.bindparam("now"))
)


def user_for_token(secret: str) -> TokenOwner | None:
    """The active, confirmed owner of an unrevoked token, recording its use; None otherwise.

    One Core query reads the token with its owner (revoked tokens, inactive and unconfirmed
    owners excluded in SQL); the use is written at most once a LAST_USED_RESOLUTION per token.
    Both stand alone, so they run on the autocommit connection: no transaction around them.
    """
    connection = autocommit_connection()
    found = connection.execute(_ACTIVE_TOKEN, {"digest": _digest(secret)}).one_or_none()
    if found is None:
        return None
    now, last = utcnow(), found.last_used_at
    # SQLite hands timestamps back without a zone; they were written in UTC.
    if last is None or now - (last if last.tzinfo else last.replace(tzinfo=UTC)) >= (
        LAST_USED_RESOLUTION
    ):
        connection.execute(_RECORD_USE, {"token_id": found.id, "now": now})
    return TokenOwner(id=found.owner_id, is_confirmed=True)


def revoke_token(user: User, token_id: int) -> bool:
    """Revoke one of the user's tokens; False if it is not theirs or already revoked."""
    row = db.session.get(ApiToken, token_id)
    if row is None or row.owner_id != user.id or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    db.session.commit()
    return True
