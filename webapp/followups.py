"""Outcome follow-ups: after a subject's due date, ask the owner whether the prediction was right.

Exactly once: a follow-up row is unique per subject and is written in the same transaction as its
request email (the outbox row). Two beat ticks, two workers or a retried task race to insert it;
the database keeps one, and only the winner's email exists to be sent.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from enum import StrEnum

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError

from webapp.account_emails import public_url
from webapp.account_links import LinkError
from webapp.extensions import db
from webapp.mailer import SEND_EMAIL_TASK
from webapp.records import (
    FollowUp,
    Job,
    JobStatus,
    OutboundEmail,
    Outcome,
    Subject,
    User,
    utcnow,
)
from webapp.settings_access import current_settings

log = logging.getLogger(__name__)

PREDICTION_JOB_TYPE = "classification"
_SALT = "scanqueue.followup-outcome"


class OutcomeSource(StrEnum):
    """Where an outcome was recorded."""

    EMAIL_LINK = "email_link"
    SUBJECT_PAGE = "subject_page"


def latest_prediction(subject_id: int) -> Job | None:
    """The subject's most recent successful classification job, if any."""
    return db.session.scalar(
        sa.select(Job)
        .where(
            Job.subject_id == subject_id,
            Job.type == PREDICTION_JOB_TYPE,
            Job.status == JobStatus.SUCCEEDED.value,
        )
        .order_by(Job.finished_at.desc(), Job.created_at.desc())
        .limit(1)
    )


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


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def outcome_token(followup: FollowUp, outcome: Outcome) -> str:
    """A signed token that records this answer for this follow-up."""
    return _serializer().dumps({"f": followup.id, "o": outcome.value})


def read_outcome_token(token: str) -> tuple[FollowUp, Outcome]:
    """The follow-up and answer a valid token names; LinkError if tampered or expired."""
    max_age = current_settings().FOLLOWUP_LINK_TTL_DAYS * 86400
    try:
        payload = _serializer().loads(token, max_age=max_age)
        outcome = Outcome(payload["o"])
        followup = db.session.get(FollowUp, int(payload["f"]))
    except SignatureExpired:
        raise LinkError(expired=True) from None
    except (BadSignature, KeyError, TypeError, ValueError):
        raise LinkError(expired=False) from None
    if followup is None:
        raise LinkError(expired=False)
    return followup, outcome


def _new_followup(subject_id: int, prediction: Job) -> FollowUp:
    return FollowUp(
        subject_id=subject_id,
        job_id=prediction.id,
        prediction=(prediction.result or {}).get("prediction", "unknown"),
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
    followup = _new_followup(subject.id, prediction)
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
                public_url("pages.outcome", token=outcome_token(followup, Outcome.RIGHT)),
                public_url("pages.outcome", token=outcome_token(followup, Outcome.WRONG)),
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
    from webapp.queueing import current_celery

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


def record_outcome(followup_id: int, outcome: Outcome, source: OutcomeSource) -> bool:
    """Record the answer if none is recorded yet; True if this call recorded it."""
    statement = (
        sa.update(FollowUp)
        .where(FollowUp.id == followup_id, FollowUp.outcome.is_(None))
        .values(outcome=outcome.value, outcome_at=utcnow(), outcome_source=source.value)
        .execution_options(synchronize_session=False)
    )
    recorded = db.session.execute(statement).rowcount == 1
    db.session.commit()
    return recorded


def answer_on_subject_page(subject: Subject, outcome: Outcome) -> FollowUp | None:
    """The owner answers on the subject page: the follow-up is created if needed (so no request
    email will be sent) and the answer recorded; None if there is no prediction to judge."""
    followup = db.session.scalar(sa.select(FollowUp).filter_by(subject_id=subject.id))
    if followup is None:
        prediction = latest_prediction(subject.id)
        if prediction is None:
            return None
        followup = _new_followup(subject.id, prediction)
        try:
            db.session.add(followup)
            db.session.commit()
        except IntegrityError:  # the beat created it meanwhile: answer that one
            db.session.rollback()
            followup = db.session.scalar(sa.select(FollowUp).filter_by(subject_id=subject.id))
    record_outcome(followup.id, outcome, OutcomeSource.SUBJECT_PAGE)
    db.session.refresh(followup)
    return followup
