"""Command-line administration: ``flask --app webapp users ...``."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from webapp.extensions import db
from webapp.records import User, utcnow

users_cli = AppGroup("users", help="Manage user accounts.")

MIN_PASSWORD_LENGTH = 8


@users_cli.command("create")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_user(email: str, password: str) -> None:
    """Create a user who can sign in and request API tokens."""
    email = User.normalise_email(email)
    if "@" not in email:
        raise click.BadParameter(f"{email!r} is not an email address", param_hint="EMAIL")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise click.BadParameter(
            f"must be at least {MIN_PASSWORD_LENGTH} characters", param_hint="--password"
        )
    if db.session.scalar(db.select(User).filter_by(email=email)) is not None:
        raise click.ClickException(f"user {email} already exists")
    # An operator creates the account for a known address: it counts as confirmed.
    user = User(email=email, email_confirmed_at=utcnow())
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"created user {email}")


@users_cli.command("exists")
@click.argument("email")
def user_exists(email: str) -> None:
    """Exit 0 if the user exists, 1 otherwise."""
    found = db.session.scalar(db.select(User).filter_by(email=User.normalise_email(email)))
    sys.exit(0 if found else 1)


def register_cli(app: Flask) -> None:
    """Attach the command groups to the app."""
    app.cli.add_command(users_cli)
