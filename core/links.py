"""The site's paths that emails link to, defined once: the web routes them, and email links are
built from them and PUBLIC_URL in any process (a beat task has no web URL map to ask)."""

from __future__ import annotations

from werkzeug.routing import Map, Rule

from core.settings_access import current_settings

ACCOUNT_PREFIX = "/account"
# Rules relative to their blueprint's prefix, in Werkzeug's syntax.
SIGNUP = "/signup"
SIGNIN = "/signin"
CONFIRM = "/confirm/<token>"
FORGOT_PASSWORD = "/forgot"
RESET_PASSWORD = "/reset/<token>"
OUTCOME = "/outcome/<token>"

_ACCOUNT_RULES = (SIGNUP, SIGNIN, CONFIRM, FORGOT_PASSWORD, RESET_PASSWORD)
# The full path of every linked page, under the web endpoint that serves it.
EMAIL_LINKS = Map(
    [Rule(ACCOUNT_PREFIX + rule, endpoint=f"accounts:{rule}") for rule in _ACCOUNT_RULES]
    + [Rule(OUTCOME, endpoint=f"pages:{OUTCOME}")]
)


class LinkError(Exception):
    """A link that cannot be used; ``expired`` tells an old link from a broken one."""

    def __init__(self, expired: bool) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


def account_link(rule: str, **values: object) -> str:
    """An absolute link to an account page (``rule`` is one of the account rules above)."""
    return _public(f"accounts:{rule}", values)


def outcome_link(token: str) -> str:
    """An absolute link to the page that records a follow-up's answer."""
    return _public(f"pages:{OUTCOME}", {"token": token})


def _public(endpoint: str, values: dict[str, object]) -> str:
    # Emails have no request to take a host from: PUBLIC_URL is the site's address.
    path = EMAIL_LINKS.bind("localhost").build(endpoint, values)
    return current_settings().PUBLIC_URL.rstrip("/") + path
