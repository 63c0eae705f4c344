"""The account emails: confirm your address, reset your password."""

from __future__ import annotations

from core import links
from core.links import account_link
from core.mailer import queue_email
from core.records import OutboundEmail, User
from core.settings_access import current_settings
from webapp.account_links import LinkPurpose, make_link_token


def _minutes() -> int:
    return current_settings().ACCOUNT_LINK_TTL_SECONDS // 60


def send_confirmation(user: User) -> OutboundEmail:
    """Email the user a link that confirms their address."""
    link = account_link(links.CONFIRM, token=make_link_token(LinkPurpose.CONFIRM_EMAIL, user))
    body = (
        "Welcome to ScanQueue.\n\n"
        f"Confirm your email address by opening this link within {_minutes()} minutes:\n\n"
        f"{link}\n\n"
        "If you did not sign up, ignore this message.\n"
    )
    return queue_email(user.email, "Confirm your ScanQueue email address", body, "confirm")


def send_password_reset(user: User) -> OutboundEmail:
    """Email the user a link to choose a new password."""
    link = account_link(
        links.RESET_PASSWORD, token=make_link_token(LinkPurpose.RESET_PASSWORD, user)
    )
    body = (
        "Someone asked to reset the password of your ScanQueue account.\n\n"
        f"Choose a new password within {_minutes()} minutes here:\n\n{link}\n\n"
        "If it was not you, ignore this message; your password stays as it is.\n"
    )
    return queue_email(user.email, "Reset your ScanQueue password", body, "password_reset")


def send_already_registered(user: User) -> OutboundEmail:
    """Tell an account holder that someone tried to sign up with their address."""
    body = (
        "Someone tried to create a ScanQueue account with this address, which already has one.\n\n"
        f"Sign in: {account_link(links.SIGNIN)}\n"
        f"Forgotten your password? {account_link(links.FORGOT_PASSWORD)}\n\n"
        "If it was not you, ignore this message.\n"
    )
    return queue_email(
        user.email, "You already have a ScanQueue account", body, "already_registered"
    )


def send_no_account(address: str) -> OutboundEmail:
    """Answer a password-reset request for an address without an (active) account."""
    body = (
        "Someone asked to reset the password of a ScanQueue account for this address, but it has "
        "none.\n\n"
        f"Create an account: {account_link(links.SIGNUP)}\n\n"
        "If it was not you, ignore this message.\n"
    )
    return queue_email(address, "Reset your ScanQueue password", body, "no_account")


def send_nothing_to_confirm(address: str) -> OutboundEmail:
    """Answer a request for a confirmation link when no account at the address awaits one."""
    body = (
        "Someone asked ScanQueue to send a confirmation link to this address, but no account "
        "here is waiting for one: either there is none, or it is confirmed already.\n\n"
        f"Sign in: {account_link(links.SIGNIN)}\n"
        f"Forgotten your password? {account_link(links.FORGOT_PASSWORD)}\n"
        f"Create an account: {account_link(links.SIGNUP)}\n\n"
        "If it was not you, ignore this message.\n"
    )
    return queue_email(address, "Confirm your ScanQueue email address", body, "nothing_to_confirm")
