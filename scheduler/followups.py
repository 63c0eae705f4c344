"""Outcome follow-ups: after a subject's due date, ask the owner whether the prediction was right.

Exactly once: a follow-up row is unique per subject and is written in the same transaction as its
request email (the outbox row). Two beat ticks, two workers or a retried task race to insert it;
the database keeps one, and only the winner's email exists to be sent.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core.database import db
from core.links import outcome_link
from core.mailer import SEND_EMAIL_TASK
from core.outcomes import PREDICTION_JOB_TYPE, latest_prediction, new_followup, outcome_token
from core.publishing import current_celery
from core.records import FollowUp, Job, JobStatus, OutboundEmail, Outcome, Subject, User
from core.settings_access import current_settings

log = logging.getLogger(__name__)


def due_subject_ids(today: date) -> list[int]:
    """Subjects whose due date plus the delay has passed, not deleted, without a follow-up."""
    cutoff = today - timedelta(days=current_settings().FOLLOWUP_DELAY_DAYS)
    has_followup = sa.select(FollowUp.id).where(FollowUp.subject_id == Subject.id).exists()
    has_prediction = (
        sa.select(Job.id)
        .where(
            Job.subject_id == Subject.id,
            Job.type == PREDICTION_JOB_TYPE,
            Job.status == JobStatus.SUCCEEDED.value,
        )
        .exists()
    )
    return list(
        db.session.scalars(
            sa.select(Subject.id).where(
                Subject.deleted_at.is_(None),
                Subject.due_date.is_not(None),
                Subject.due_date <= cutoff,
                has_prediction,
                ~has_followup,
            )
        )
    )


def _request_body(subject: Subject, prediction: Job, right: str, wrong: str) -> str:
    result = prediction.result or {}
    confidence = result.get("confidence")
    said = result.get("prediction", "?")
    if confidence is not None:
        said += f" ({100 * confidence:.0f} % confidence)"
    due = subject.due_date.isoformat() if subject.due_date else "?"
    days = current_settings().FOLLOWUP_LINK_TTL_DAYS
    return (
        f"{subject.label}'s due date was {due}.\n\n"
        f"ScanQueue's prediction (model {prediction.model_name} {prediction.model_version}) "
        f"was: {said}.\n\n"
        "Was it right? One click tells us, no sign-in needed:\n\n"
        f"  It was right:  {right}\n"
        f"  It was wrong:  {wrong}\n\n"
        f"The links work for {days} days. Your answer helps us check and improve the model.\n"
    )


def request_followup(subject_id: int) -> FollowUp | None:
    """Create the subject's follow-up and its request email, once; None if it already exists
    (another run got there first) or the subject no longer qualifies."""
    subject = db.session.get(Subject, subject_id)
    prediction = latest_prediction(subject_id) if subject is not None else None
    if subject is None or subject.deleted_at is not None or prediction is None:
        return None
    followup = new_followup(subject.id, prediction)
    try:
        db.session.add(followup)
        db.session.flush()  # the unique subject_id is checked here: the race is decided
        owner = db.session.get(User, subject.owner_id)
        email = OutboundEmail(
            kind="followup",
            to_address=owner.email,
            subject=f"Was our prediction for {subject.label} right?",
            body=_request_body(
                subject,
                prediction,
                outcome_link(outcome_token(followup, Outcome.RIGHT)),
                outcome_link(outcome_token(followup, Outcome.WRONG)),
            ),
        )
        db.session.add(email)
        db.session.flush()
        followup.email_id = email.id
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return None
    return followup


def request_due_followups(today: date) -> list[int]:
    """Create every due follow-up and queue its email; the ids of those created by this call."""
    created = []
    for subject_id in due_subject_ids(today):
        followup = request_followup(subject_id)
        if followup is None:
            continue
        created.append(followup.id)
        try:
            current_celery().send_task(SEND_EMAIL_TASK, args=[followup.email_id])
        except Exception as exc:  # the outbox sweep sends it later
            log.warning("follow-up %s email left to the outbox sweep: %s", followup.id, exc)
    return created
