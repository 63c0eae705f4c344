"""Rate limits shared across views: one counter whichever form or API endpoint the attempt comes
through.

Sign-in counts FAILED attempts only (a wrong password), per account and client address: five
failures lock that account out from that address, on the web form and on POST /api/v1/tokens
alike, while its owner elsewhere is not affected (no one can lock anyone out everywhere). A right
password clears its account's count from that address. Each address also has a ceiling of
failures over all accounts, against guessing across many accounts.
"""

from __future__ import annotations

import logging

from flask import g, request
from flask.wrappers import Response
from flask_limiter.util import get_remote_address

from core.settings_access import current_settings
from webapp.extensions import limiter

log = logging.getLogger(__name__)

ACCOUNT_SCOPE = "signin-failures-account"
ADDRESS_SCOPE = "signin-failures-address"
_FAILED = "signin_failed"


def signin_account_key() -> str:
    """The account a sign-in attempt names, and the client: the API's HTTP Basic user, the web
    form's email field, never one for the other (each is what its view authenticates, so a
    decoy in the other cannot spread or clear the count)."""
    if request.blueprint == "api":
        email = (request.authorization.username or "") if request.authorization else ""
    else:
        email = request.form.get("email", "")
    return f"account:{email.strip().lower()}|from:{get_remote_address()}"


def record_signin_failure() -> None:
    """Count this request against the sign-in limits (called on a wrong password)."""
    setattr(g, _FAILED, True)


def _failed(_response: Response) -> bool:
    return bool(g.get(_FAILED))


def forget_signin_failures() -> None:
    """After a right password: clear the account's failure count from this address."""
    for current in limiter.current_limits:
        if current.request_args and current.request_args[-1] == ACCOUNT_SCOPE:
            try:
                limiter.limiter.clear(current.limit, *current.request_args)
            except Exception as exc:  # the limiter's storage is down: the count just expires
                log.warning("could not clear sign-in failures: %s", exc)


signin_per_account = limiter.shared_limit(
    lambda: current_settings().SIGNIN_LIMIT_PER_ACCOUNT,
    scope=ACCOUNT_SCOPE,
    key_func=signin_account_key,
    methods=["POST"],
    deduct_when=_failed,
)
signin_per_address = limiter.shared_limit(
    lambda: current_settings().SIGNIN_LIMIT_PER_ADDRESS,
    scope=ADDRESS_SCOPE,
    methods=["POST"],
    deduct_when=_failed,
)
# Sign-up, confirmation and reset requests each send an email: limited per address.
email_requests_per_address = limiter.shared_limit(
    lambda: current_settings().EMAIL_REQUEST_LIMIT_PER_ADDRESS,
    scope="email-requests",
    methods=["POST"],
)
