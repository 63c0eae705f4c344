"""The web forms (Flask-WTF: every POST carries a CSRF token tied to the session)."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import DateField, EmailField, PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, ValidationError

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
# Deliberately loose: one @, something on each side, a dot in the domain. The confirmation
# email is the real check.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def email_address(_form: FlaskForm, field: EmailField) -> None:
    """Validate the shape of an email address."""
    if not _EMAIL.match((field.data or "").strip()):
        raise ValidationError("Enter an email address like name@example.org.")


def _email() -> EmailField:
    return EmailField("Email", validators=[DataRequired(), Length(max=320), email_address])


def _new_password() -> PasswordField:
    return PasswordField(
        "Password",
        validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH)],
    )


def _repeat() -> PasswordField:
    return PasswordField(
        "Repeat password",
        validators=[DataRequired(), EqualTo("password", message="The passwords differ.")],
    )


class SignUpForm(FlaskForm):
    """A new account."""

    email = _email()
    password = _new_password()
    repeat = _repeat()


class SignInForm(FlaskForm):
    """Email and password."""

    email = _email()
    password = PasswordField("Password", validators=[DataRequired()])


class ConfirmAddressForm(FlaskForm):
    """The account's password, to confirm its address with the emailed link."""

    password = PasswordField("Password", validators=[DataRequired()])


class EmailForm(FlaskForm):
    """Just an email: resend the confirmation, or ask for a password reset."""

    email = _email()


class ResetPasswordForm(FlaskForm):
    """A new password, twice."""

    password = _new_password()
    repeat = _repeat()


class SubjectForm(FlaskForm):
    """The person the scans are of; every field is optional."""

    name = StringField("Name", validators=[Optional(), Length(max=200)])
    due_date = DateField("Due date", validators=[Optional()])
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=10_000)])


class TokenForm(FlaskForm):
    """A personal API token's label."""

    name = StringField("Label", validators=[DataRequired(), Length(max=100)])


class ConfirmForm(FlaskForm):
    """A button that only needs its CSRF token (sign out, delete, revoke)."""
