"""Rate limits shared across views: one counter per account and per address, whichever form or
API endpoint the attempt comes through."""

from __future__ import annotations

from flask import request

from webapp.extensions import limiter
from webapp.settings_access import current_settings


def signin_account_key() -> str:
    """The account a sign-in attempt names (form field or HTTP Basic user)."""
    if request.authorization and request.authorization.username:
        email = request.authorization.username
    else:
        email = request.form.get("email", "")
    return "account:" + email.strip().lower()


signin_per_account = limiter.shared_limit(
    lambda: current_settings().SIGNIN_LIMIT_PER_ACCOUNT,
    scope="signin-account",
    key_func=signin_account_key,
    methods=["POST"],
)
signin_per_address = limiter.shared_limit(
    lambda: current_settings().SIGNIN_LIMIT_PER_ADDRESS, scope="signin-address", methods=["POST"]
)
# Sign-up, confirmation and reset requests each send an email: limited per address.
email_requests_per_address = limiter.shared_limit(
    lambda: current_settings().EMAIL_REQUEST_LIMIT_PER_ADDRESS,
    scope="email-requests",
    methods=["POST"],
)
