"""Account changes that must not leak or outlive their cause: sign-up, password-reset and
confirmation requests (the same answer and the same work whether or not the address has an
account) and revoking every credential when an address is confirmed or a password reset."""

from __future__ import annotations

import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from core.database import db
from core.records import ApiToken, User, new_security_stamp, utcnow
from webapp.account_emails import (
    send_already_registered,
    send_confirmation,
    send_no_account,
    send_nothing_to_confirm,
    send_password_reset,
)
from webapp.login import end_all_sessions


def user_by_email(email: str) -> User | None:
    """The user with this address (compared normalised), if any."""
    return db.session.scalar(db.select(User).filter_by(email=User.normalise_email(email)))


def revoke_credentials(user: User) -> None:
    """A new security stamp (ends every session and signed token), every personal token revoked
    and every session record ended; the caller commits."""
    user.security_stamp = new_security_stamp()
    db.session.execute(
        sa.update(ApiToken)
        .where(ApiToken.owner_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    end_all_sessions(user)


def sign_up(email: str, password: str) -> None:
    """Register the address, or tell its owner it already has an account.

    Each branch hashes the password once and queues one email, so neither the answer nor its
    timing says whether the address was known. An unconfirmed account is replaced by the new
    sign-up: whoever registered it first (perhaps not the address's owner) loses it, with every
    session, token and subject it had; it could not have jobs (those need a confirmed address).
    """
    existing = user_by_email(email)
    if existing is not None and (existing.is_confirmed or not existing.is_active):
        # A confirmed account keeps its password; a deactivated one stays as the operator left it.
        generate_password_hash(password, method="scrypt")  # the work the other branches do
        send_already_registered(existing)
        return
    if existing is not None:
        db.session.delete(existing)
        db.session.flush()
    user = User(email=email)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    send_confirmation(user)


def request_password_reset(email: str) -> None:
    """Email a reset link to an active account, else a note that there is none: one email queued
    either way, so the timing does not tell them apart."""
    user = user_by_email(email)
    if user is not None and user.is_active:
        send_password_reset(user)
    else:
        send_no_account(User.normalise_email(email))


def request_confirmation(email: str) -> None:
    """Email a new confirmation link to an account awaiting one, else a note why there is none:
    one email queued either way."""
    user = user_by_email(email)
    if user is not None and user.is_active and not user.is_confirmed:
        send_confirmation(user)
    else:
        send_nothing_to_confirm(User.normalise_email(email))


def confirm_address(user: User) -> bool:
    """Mark the address confirmed and revoke every earlier credential; False if it already was."""
    if user.is_confirmed:
        return False
    user.email_confirmed_at = utcnow()
    revoke_credentials(user)
    db.session.commit()
    return True


def reset_password(user: User, password: str) -> None:
    """Set the new password (the link proved the address) and revoke every earlier credential."""
    user.set_password(password)
    user.email_confirmed_at = user.email_confirmed_at or utcnow()
    revoke_credentials(user)
    db.session.commit()
