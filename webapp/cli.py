"""Command-line administration: ``flask --app webapp users ...``."""

from __future__ import annotations

import csv
import sys

import click
from flask import Flask
from flask.cli import AppGroup

from core.database import db
from core.dead_letters import count_dead_letters, dead_letters
from core.head_measurements import image_growth
from core.records import FollowUp, User, utcnow
from core.settings_access import current_settings
from core.storage import MediaStorage
from webapp.cli_models import models_cli

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


outcomes_cli = AppGroup("outcomes", help="Predictions and their confirmed outcomes.")

EXPORT_COLUMNS = (
    "subject_id",
    "job_id",
    "image_position",
    "image_filename",
    "image_path",
    "image_sha256",
    "model",
    "model_version",
    "prediction",
    "confidence",
    "image_most_probable",
    "outcome",
    "outcome_at",
    "outcome_source",
    # The age at the scan and, when the same image (by sha256) also had its head measured, that
    # measurement on the INTERGROWTH-21st standard.
    "gestational_age_days",
    "gestational_age_source",
    "head_circumference_job_id",
    "head_circumference_mm",
    "gestational_age_from_hc_days",
    "hc_expected_mm",
    "hc_z_score",
    "hc_centile",
    "growth_flags",
)


@outcomes_cli.command("export")
@click.option(
    "--output", type=click.Path(dir_okay=False, writable=True), help="CSV file (default: stdout)"
)
def export_outcomes(output: str | None) -> None:
    """Write the labelled image list (images, prediction, confirmed outcome, gestational age and
    head measurement) as CSV: the ground truth for retraining. One row per image of each
    prediction whose outcome is known."""
    storage = MediaStorage(current_settings().MEDIA_ROOT)
    followups = db.session.scalars(
        db.select(FollowUp).where(FollowUp.outcome.is_not(None)).order_by(FollowUp.id)
    ).all()
    handle = open(output, "w", newline="") if output else sys.stdout  # noqa: SIM115
    try:
        writer = csv.writer(handle)
        writer.writerow(EXPORT_COLUMNS)
        rows = 0
        for followup in followups:
            job = followup.job
            result = job.result or {}
            per_image = {item["position"]: item for item in result.get("images", [])}
            for item in job.inputs:
                head, growth = image_growth(job, item.sha256)
                writer.writerow(
                    [
                        followup.subject_id,
                        job.id,
                        item.position,
                        item.filename,
                        storage.resolve(item.storage_path),
                        item.sha256,
                        job.model_name,
                        job.model_version,
                        followup.prediction,
                        result.get("confidence"),
                        per_image.get(item.position, {}).get("most_probable"),
                        followup.outcome,
                        followup.outcome_at.isoformat() if followup.outcome_at else "",
                        followup.outcome_source,
                        growth["gestational_age_days"],
                        growth["gestational_age_source"],
                        head.id if head else None,
                        (head.result or {}).get("head_circumference_mm") if head else None,
                        growth["gestational_age_from_hc_days"],
                        growth["hc_expected_mm"],
                        growth["hc_z_score"],
                        growth["hc_centile"],
                        " ".join(growth["growth_flags"]),
                    ]
                )
                rows += 1
    finally:
        if output:
            handle.close()
    if output:
        click.echo(f"wrote {rows} image row(s) from {len(followups)} outcome(s) to {output}")


jobs_cli = AppGroup("jobs", help="Operate on jobs.")


@jobs_cli.command("dead-letters")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
def list_dead_letters(limit: int) -> None:
    """List the jobs given up on because their worker process kept dying under them
    (error ``worker_lost``), newest first, as tab-separated lines."""
    jobs = dead_letters(limit)
    click.echo("job_id\ttype\towner\tattempts\tfinished_at\tparent_id\tmessage")
    for job in jobs:
        finished = job.finished_at.isoformat() if job.finished_at else ""
        click.echo(
            f"{job.id}\t{job.type}\t{job.owner.email}\t{job.attempts}\t{finished}\t"
            f"{job.parent_id or ''}\t{job.error_message}"
        )
    click.echo(f"{len(jobs)} of {count_dead_letters()} dead-letter job(s)", err=True)


def register_cli(app: Flask) -> None:
    """Attach the command groups to the app."""
    app.cli.add_command(users_cli)
    app.cli.add_command(outcomes_cli)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(models_cli)
