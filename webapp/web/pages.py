"""The signed-in pages: dashboard, subjects, upload with live progress, job results."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from core import links
from core.database import db
from core.head_measurements import growth_fields, subject_measurements
from core.jobtypes import FACE_DETECTOR, JOB_TYPES, JobType
from core.jobtypes.head_circumference import JOB_TYPE as HEAD_CIRCUMFERENCE
from core.links import LinkError
from core.outcomes import (
    OutcomeSource,
    answer_on_subject_page,
    latest_prediction,
    read_outcome_token,
    record_outcome,
)
from core.records import FollowUp, Job, JobStatus, Outcome, Subject, utcnow
from core.settings_access import current_settings
from webapp.api.catalogue import model_catalogue
from webapp.api.jobs import job_to_json
from webapp.forms import ConfirmForm, SubjectForm
from webapp.growth_chart import GrowthChart, growth_chart, ordinal, weeks_and_days
from webapp.model_cards import metric_rows, render_card
from webapp.web.messages import unusable_link

bp = Blueprint("pages", __name__)
bp.add_app_template_filter(weeks_and_days, "weeks_days")
bp.add_app_template_filter(ordinal, "ordinal")

RECENT_JOBS = 20


def owned_subject(subject_id: int) -> Subject:
    """The signed-in user's subject (not deleted); anyone else's is a 404."""
    subject = db.session.get(Subject, subject_id)
    if subject is None or subject.owner_id != current_user.id or subject.deleted_at is not None:
        abort(404)
    return subject


def live_subjects() -> list[Subject]:
    """The signed-in user's subjects that are not deleted, newest first."""
    return list(
        db.session.scalars(
            db.select(Subject)
            .filter_by(owner_id=current_user.id, deleted_at=None)
            .order_by(Subject.created_at.desc(), Subject.id.desc())
        )
    )


@bp.get("/")
@login_required
def dashboard() -> str:
    """Your subjects and recent jobs."""
    jobs = db.session.scalars(
        db.select(Job)
        .filter_by(owner_id=current_user.id, parent_id=None)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(RECENT_JOBS)
    ).all()
    return render_template("dashboard.html", subjects=live_subjects(), jobs=jobs)


@bp.route("/subjects/new", methods=["GET", "POST"])
@login_required
def new_subject() -> str | Response:
    """Add a subject."""
    form = SubjectForm()
    if form.validate_on_submit():
        subject = Subject(owner_id=current_user.id)
        form.populate_obj(subject)
        subject.name = (subject.name or "").strip() or None
        db.session.add(subject)
        db.session.commit()
        return redirect(url_for("pages.subject", subject_id=subject.id))
    return render_template("subject_form.html", form=form, subject=None)


@bp.route("/subjects/<int:subject_id>/edit", methods=["GET", "POST"])
@login_required
def edit_subject(subject_id: int) -> str | Response:
    """Change a subject's name, due date or notes."""
    subject = owned_subject(subject_id)
    form = SubjectForm(obj=subject)
    if form.validate_on_submit():
        form.populate_obj(subject)
        subject.name = (subject.name or "").strip() or None
        db.session.commit()
        return redirect(url_for("pages.subject", subject_id=subject.id))
    return render_template("subject_form.html", form=form, subject=subject)


@bp.post("/subjects/<int:subject_id>/delete")
@login_required
def delete_subject(subject_id: int) -> Response:
    """Hide a subject; its jobs and files are kept for review."""
    subject = owned_subject(subject_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    subject.deleted_at = utcnow()
    db.session.commit()
    flash(f"{subject.label} is deleted from your lists; its data is kept for review.", "info")
    return redirect(url_for("pages.dashboard"))


@bp.get("/subjects/<int:subject_id>")
@login_required
def subject(subject_id: int) -> str:
    """A subject's uploads, jobs and results."""
    found = owned_subject(subject_id)
    jobs = [job for job in found.jobs if job.parent_id is None]
    measurements = subject_measurements(found.id, current_user.id)
    chart = growth_chart(measurements, chart_title(found.label)) if measurements else None
    return render_template(
        "subject.html",
        subject=found,
        jobs=jobs,
        growth_chart=chart,
        delete_form=ConfirmForm(),
        prediction=latest_prediction(found.id),
        followup=db.session.scalar(db.select(FollowUp).filter_by(subject_id=found.id)),
    )


@bp.post("/subjects/<int:subject_id>/outcome")
@login_required
def subject_outcome(subject_id: int) -> Response:
    """The owner records whether the prediction was right."""
    found = owned_subject(subject_id)
    if not ConfirmForm().validate_on_submit() or request.form.get("outcome") not in set(Outcome):
        abort(400)
    followup = answer_on_subject_page(found, Outcome(request.form["outcome"]))
    if followup is None:
        flash("There is no prediction for this subject yet.", "error")
    else:
        flash(f"Recorded: the prediction was {followup.outcome}.", "info")
    return redirect(url_for("pages.subject", subject_id=found.id))


@bp.route(links.OUTCOME, methods=["GET", "POST"])
def outcome(token: str) -> str | tuple[str, int]:
    """The link in a follow-up email; the signed token is the authority, no sign-in needed.

    The page asks for one click (a POST) before recording: mail scanners open links, and must
    not answer for the person.
    """
    try:
        followup, answer = read_outcome_token(token)
    except LinkError as error:
        return unusable_link(error, "follow-up", "recorded")
    form = ConfirmForm()
    recorded_now = False
    if request.method == "POST" and form.validate_on_submit() and followup.outcome is None:
        recorded_now = record_outcome(followup.id, answer, OutcomeSource.EMAIL_LINK)
        db.session.refresh(followup)
    return render_template(
        "outcome.html", followup=followup, answer=answer, form=form, recorded_now=recorded_now
    )


def form_required_params(job_type: JobType) -> list[str]:
    """The params the upload form marks as required for the type (pixel spacing may also come
    from a DICOM's PixelSpacing)."""
    required = set(job_type.params_schema.get("required", ()))
    if job_type.needs_pixel_spacing:
        required.add("pixel_spacing_mm")
    return sorted(required)


def default_models() -> dict[str, str]:
    """The registry model each type uses unless told otherwise (its first declared model)."""
    settings = current_settings()
    return {
        job_type.name: getattr(settings, job_type.models[0])
        for job_type in JOB_TYPES.values()
        if job_type.models and job_type.models[0] != FACE_DETECTOR
    }


def models_by_task(models: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The registry's models grouped by task, for the upload form's model choices."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for model in models:
        grouped.setdefault(model["task"], []).append(model)
    return grouped


@bp.get("/upload")
@login_required
def upload() -> str:
    """Pick a job type and files; the page submits to the JSON API and follows the jobs. The
    fields each type shows come from its declaration."""
    return render_template(
        "upload.html",
        job_types=JOB_TYPES.values(),
        form_required={t.name: form_required_params(t) for t in JOB_TYPES.values()},
        default_models=default_models(),
        models_by_task=models_by_task(model_catalogue()),
        subjects=live_subjects(),
        csrf_form=ConfirmForm(),
    )


@bp.get("/models")
@login_required
def models() -> str:
    """The registry's models with their versions, metrics and cards."""
    return render_template(
        "models.html", models=model_catalogue(), render_card=render_card, metric_rows=metric_rows
    )


def _duration(start: datetime | None, end: datetime | None) -> str | None:
    if start is None or end is None:
        return None
    # SQLite hands timestamps back without a zone; they were written in UTC.
    start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (start, end))
    return f"{(end - start).total_seconds():.1f} s"


def chart_title(label: str) -> str:
    """The growth chart's title for a subject (or a single measurement)."""
    return f"Head circumference for gestational age: {label}"


def job_growth_chart(job: Job) -> GrowthChart | None:
    """A head measurement's place on its subject's growth chart (on its own without a subject);
    None until it has succeeded."""
    if job.status != JobStatus.SUCCEEDED.value:
        return None
    subject = job.subject
    if subject is None or subject.deleted_at is not None:
        return growth_chart([job], chart_title("this measurement"), highlight=job.id)
    measurements = subject_measurements(subject.id, current_user.id)
    return growth_chart(measurements, chart_title(subject.label), highlight=job.id)


@bp.get("/jobs/<uuid:job_id>")
@login_required
def job(job_id: uuid.UUID) -> str:
    """A job's result: images, numbers with units, model, timings, or why it failed."""
    found = db.session.get(Job, job_id)
    if found is None or found.owner_id != current_user.id:
        abort(404)
    view: dict[str, Any] = job_to_json(found)
    head = found.type == HEAD_CIRCUMFERENCE.name
    return render_template(
        "job.html",
        job=found,
        view=view,
        artifacts={artifact["name"]: artifact["url"] for artifact in view["artifacts"]},
        queued_for=_duration(found.created_at, found.started_at),
        ran_for=_duration(found.started_at, found.finished_at),
        job_type=JOB_TYPES.get(found.type),
        growth=growth_fields(found) if head else {},
        growth_chart=job_growth_chart(found) if head else None,
    )
