"""Account pages: sign up, confirm, sign in and out, forgotten password, personal API tokens."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from webapp.account_emails import (
    send_already_registered,
    send_confirmation,
    send_password_reset,
)
from webapp.account_links import LinkError, LinkPurpose, read_link_token
from webapp.auth import authenticate
from webapp.extensions import db
from webapp.forms import (
    ConfirmForm,
    EmailForm,
    ResetPasswordForm,
    SignInForm,
    SignUpForm,
    TokenForm,
)
from webapp.personal_tokens import create_token, revoke_token
from webapp.rate_limits import email_requests_per_address, signin_per_account, signin_per_address
from webapp.records import ApiToken, User, utcnow
from webapp.settings_access import current_settings
from webapp.web.messages import unusable_link

bp = Blueprint("accounts", __name__, url_prefix="/account")

# One answer whether or not the address has an account: the page must not reveal which.
SENT_IF_REGISTERED = (
    "If {email} has an account, we have sent it an email. The link in it works for {minutes} "
    "minutes."
)


def _user_by_email(email: str) -> User | None:
    return db.session.scalar(db.select(User).filter_by(email=User.normalise_email(email)))


def _sent_message(email: str) -> str:
    minutes = current_settings().ACCOUNT_LINK_TTL_SECONDS // 60
    return SENT_IF_REGISTERED.format(email=email.strip(), minutes=minutes)


@bp.route("/signup", methods=["GET", "POST"])
@email_requests_per_address
def signup() -> str | Response:
    """Create an account and send the confirmation email."""
    form = SignUpForm()
    if form.validate_on_submit():
        email = form.email.data or ""
        existing = _user_by_email(email)
        if existing is None:
            user = User(email=email)
            user.set_password(form.password.data or "")
            db.session.add(user)
            db.session.commit()
            send_confirmation(user)
            login_user(user)
        elif not existing.is_confirmed:
            send_confirmation(existing)
        else:
            send_already_registered(existing)
        # The same words either way: sign-up must not tell who has an account.
        flash(_sent_message(email), "info")
        return redirect(url_for("pages.dashboard"))
    return render_template("accounts/signup.html", form=form)


@bp.route("/signin", methods=["GET", "POST"])
@signin_per_address
@signin_per_account
def signin() -> str | Response:
    """Email and password; a wrong pair gets one generic message."""
    form = SignInForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data or "", form.password.data or "")
        if user is not None:
            login_user(user)
            target = request.args.get("next", "")
            # Only local paths: an open redirect would hand the session to another site.
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("pages.dashboard")
            return redirect(target)
        flash("Email or password is wrong.", "error")
    return render_template("accounts/signin.html", form=form)


@bp.post("/signout")
def signout() -> Response:
    """End the session (a POST with the CSRF token, so a link elsewhere cannot sign you out)."""
    if ConfirmForm().validate_on_submit():
        logout_user()
    return redirect(url_for("accounts.signin"))


@bp.get("/confirm/<token>")
def confirm(token: str) -> str | Response | tuple[str, int]:
    """Mark the address confirmed."""
    try:
        user = read_link_token(LinkPurpose.CONFIRM_EMAIL, token)
    except LinkError as error:
        return unusable_link(error, "confirmation", "changed", "accounts.resend_confirmation")
    if user.email_confirmed_at is None:
        user.email_confirmed_at = utcnow()
        db.session.commit()
    flash("Your email address is confirmed. You can submit jobs now.", "info")
    return redirect(url_for("pages.dashboard"))


@bp.route("/confirm", methods=["GET", "POST"])
@email_requests_per_address
def resend_confirmation() -> str | Response:
    """Send the confirmation email again."""
    form = EmailForm()
    if form.validate_on_submit():
        email = form.email.data or ""
        user = _user_by_email(email)
        if user is not None and user.is_active and not user.is_confirmed:
            send_confirmation(user)
        flash(_sent_message(email), "info")
        return redirect(url_for("accounts.signin"))
    return render_template(
        "accounts/email_form.html", form=form, title="Resend the confirmation email"
    )


@bp.route("/forgot", methods=["GET", "POST"])
@email_requests_per_address
def forgot_password() -> str | Response:
    """Email a password-reset link."""
    form = EmailForm()
    if form.validate_on_submit():
        email = form.email.data or ""
        user = _user_by_email(email)
        if user is not None and user.is_active:
            send_password_reset(user)
        flash(_sent_message(email), "info")
        return redirect(url_for("accounts.signin"))
    return render_template("accounts/email_form.html", form=form, title="Forgotten password")


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> str | Response | tuple[str, int]:
    """Choose a new password; the link then stops working, other sessions end."""
    try:
        user = read_link_token(LinkPurpose.RESET_PASSWORD, token)
    except LinkError as error:
        return unusable_link(error, "password reset", "changed", "accounts.forgot_password")
    form = ResetPasswordForm()
    if form.validate_on_submit():
        user.set_password(form.password.data or "")
        # Receiving the link proves the address too.
        user.email_confirmed_at = user.email_confirmed_at or utcnow()
        db.session.commit()
        logout_user()
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
        _, new_secret = create_token(current_user, form.name.data or "")
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
