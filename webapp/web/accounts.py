"""Account pages: sign up, confirm, sign in and out, forgotten password, personal API tokens."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from core import links
from core.database import db
from core.links import LinkError
from core.records import ApiToken
from core.settings_access import current_settings
from webapp import account_security
from webapp.account_links import LinkPurpose, read_link_token
from webapp.auth import authenticate
from webapp.forms import (
    ConfirmAddressForm,
    ConfirmForm,
    EmailForm,
    ResetPasswordForm,
    SignInForm,
    SignUpForm,
    TokenForm,
)
from webapp.login import end_session, start_session
from webapp.personal_tokens import UnconfirmedAccount, create_token, revoke_token
from webapp.rate_limits import (
    email_requests_per_address,
    forget_signin_failures,
    record_signin_failure,
    signin_per_account,
    signin_per_address,
)
from webapp.web.messages import unusable_link

bp = Blueprint("accounts", __name__, url_prefix=links.ACCOUNT_PREFIX)

# One answer whether or not the address has an account: the page must not reveal which.
SENT_IF_REGISTERED = (
    "If {email} has an account, we have sent it an email. The link in it works for {minutes} "
    "minutes."
)
SIGNED_UP = (
    "We have sent an email to {email}. Follow the link in it within {minutes} minutes to "
    "confirm the address with your password."
)
# Browsers drop tabs and newlines from URLs and read a backslash as "/": "/<tab>/evil" and
# "/\evil" both become "//evil", another site. No control character, space or backslash passes.
_NOT_IN_LOCAL_PATHS = re.compile(r"[\x00-\x20\x7f\\]")


def _sent_message(email: str, template: str = SENT_IF_REGISTERED) -> str:
    minutes = current_settings().ACCOUNT_LINK_TTL_SECONDS // 60
    return template.format(email=email.strip(), minutes=minutes)


def local_path(target: str) -> str | None:
    """``target`` if it is a path on this site, else None: a redirect elsewhere after sign-in
    would hand the user (and what they type next) to another site."""
    # "//host" and "///host" are other sites to a browser (urlsplit sees no host in the latter).
    if not target.startswith("/") or target.startswith("//"):
        return None
    if _NOT_IN_LOCAL_PATHS.search(target):
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


@bp.route(links.SIGNUP, methods=["GET", "POST"])
@email_requests_per_address
def signup() -> str | Response:
    """Create an account (or tell the address's owner it has one) and send an email."""
    form = SignUpForm()
    if form.validate_on_submit():
        email = form.email.data or ""
        account_security.sign_up(email, form.password.data or "")
        # The same words and the same next page either way: sign-up must not tell who has an
        # account (so nobody is signed in here; the confirmation link comes first).
        flash(_sent_message(email, SIGNED_UP), "info")
        return redirect(url_for("accounts.signin"))
    return render_template("accounts/signup.html", form=form)


@bp.route(links.SIGNIN, methods=["GET", "POST"])
@signin_per_address
@signin_per_account
def signin() -> str | Response:
    """Email and password; a wrong pair gets one generic message."""
    form = SignInForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data or "", form.password.data or "")
        if user is not None:
            forget_signin_failures()
            start_session(user)
            return redirect(local_path(request.args.get("next", "")) or url_for("pages.dashboard"))
        record_signin_failure()
        flash("Email or password is wrong.", "error")
    return render_template("accounts/signin.html", form=form)


@bp.post("/signout")
def signout() -> Response:
    """End the session here and on the server (a POST with the CSRF token, so a link elsewhere
    cannot sign you out)."""
    if ConfirmForm().validate_on_submit():
        end_session()
    return redirect(url_for("accounts.signin"))


@bp.route(links.CONFIRM, methods=["GET", "POST"])
@signin_per_address
def confirm(token: str) -> str | Response | tuple[str, int]:
    """Confirm the address with the account's password; every session and token issued before
    ends, and this browser is signed in.

    The password proves that whoever confirms also chose it: a link in the owner's inbox must not
    confirm an account that someone else signed up with, and a mail scanner opening the link (a
    GET) confirms nothing.
    """
    try:
        user = read_link_token(LinkPurpose.CONFIRM_EMAIL, token)
    except LinkError as error:
        return unusable_link(error, "confirmation", "changed", "accounts.resend_confirmation")
    if user.is_confirmed:
        flash("Your email address was already confirmed.", "info")
        return redirect(url_for("accounts.signin"))
    form = ConfirmAddressForm()
    if form.validate_on_submit():
        if user.check_password(form.password.data or ""):
            account_security.confirm_address(user)
            start_session(user)
            flash("Your email address is confirmed. You can submit jobs now.", "info")
            return redirect(url_for("pages.dashboard"))
        record_signin_failure()
        flash(
            "That is not the password this account was signed up with. If you did not sign up "
            "with it, sign up again: the newest sign-up replaces an unconfirmed account.",
            "error",
        )
    return render_template("accounts/confirm.html", form=form, email=user.email)


@bp.route("/confirm", methods=["GET", "POST"])
@email_requests_per_address
def resend_confirmation() -> str | Response:
    """Send the confirmation email again."""
    form = EmailForm()
    if form.validate_on_submit():
        email = form.email.data or ""
        account_security.request_confirmation(email)
        flash(_sent_message(email), "info")
        return redirect(url_for("accounts.signin"))
    return render_template(
        "accounts/email_form.html", form=form, title="Resend the confirmation email"
    )


@bp.route(links.FORGOT_PASSWORD, methods=["GET", "POST"])
@email_requests_per_address
def forgot_password() -> str | Response:
    """Email a password-reset link."""
    form = EmailForm()
    if form.validate_on_submit():
        email = form.email.data or ""
        account_security.request_password_reset(email)
        flash(_sent_message(email), "info")
        return redirect(url_for("accounts.signin"))
    return render_template("accounts/email_form.html", form=form, title="Forgotten password")


@bp.route(links.RESET_PASSWORD, methods=["GET", "POST"])
def reset_password(token: str) -> str | Response | tuple[str, int]:
    """Choose a new password; the link then stops working, other sessions end."""
    try:
        user = read_link_token(LinkPurpose.RESET_PASSWORD, token)
    except LinkError as error:
        return unusable_link(error, "password reset", "changed", "accounts.forgot_password")
    form = ResetPasswordForm()
    if form.validate_on_submit():
        account_security.reset_password(user, form.password.data or "")
        end_session()
        flash("Your password is changed. Sign in with it.", "info")
        return redirect(url_for("accounts.signin"))
    return render_template("accounts/reset.html", form=form)


@bp.route("/tokens", methods=["GET", "POST"])
@login_required
def tokens() -> str:
    """List, create and revoke personal API tokens."""
    form = TokenForm()
    new_secret = None
    if form.validate_on_submit():
        try:
            _, new_secret = create_token(current_user, form.name.data or "")
        except UnconfirmedAccount:
            flash("Confirm your email address first: unconfirmed accounts get no tokens.", "error")
    rows = db.session.scalars(
        db.select(ApiToken).filter_by(owner_id=current_user.id).order_by(ApiToken.id.desc())
    ).all()
    return render_template(
        "accounts/tokens.html", form=form, tokens=rows, new_secret=new_secret, revoke=ConfirmForm()
    )


@bp.post("/tokens/<int:token_id>/revoke")
@login_required
def revoke(token_id: int) -> Response:
    """Revoke one of your tokens."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if not revoke_token(current_user, token_id):
        abort(404)
    flash("The token is revoked; requests with it are refused from now on.", "info")
    return redirect(url_for("accounts.tokens"))
