"""Outcomes: was a prediction right? A follow-up per subject records the owner's answer, given
through a signed email link (no sign-in) or on the subject page."""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core.database import db
from core.links import LinkError
from core.records import FollowUp, Job, JobStatus, Outcome, Subject, utcnow
from core.settings_access import current_settings
from core.signing import Purpose, sign, unsign

PREDICTION_JOB_TYPE = "classification"


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


def outcome_token(followup: FollowUp, outcome: Outcome) -> str:
    """A signed token that records this answer for this follow-up."""
    return sign(Purpose.FOLLOWUP_OUTCOME, {"f": followup.id, "o": outcome.value})


def read_outcome_token(token: str) -> tuple[FollowUp, Outcome]:
    """The follow-up and answer a valid token names; LinkError if tampered or expired."""
    payload = unsign(
        Purpose.FOLLOWUP_OUTCOME, token, current_settings().FOLLOWUP_LINK_TTL_DAYS * 86400
    )
    try:
        outcome = Outcome(payload["o"])
        followup = db.session.get(FollowUp, int(payload["f"]))
    except (KeyError, TypeError, ValueError):
        raise LinkError(expired=False) from None
    if followup is None:
        raise LinkError(expired=False)
    return followup, outcome


def new_followup(subject_id: int, prediction: Job) -> FollowUp:
    """An unsaved follow-up of the subject for this prediction."""
    return FollowUp(
        subject_id=subject_id,
        job_id=prediction.id,
        prediction=(prediction.result or {}).get("prediction", "unknown"),
    )


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
        followup = new_followup(subject.id, prediction)
        try:
            db.session.add(followup)
            db.session.commit()
        except IntegrityError:  # the beat created it meanwhile: answer that one
            db.session.rollback()
            followup = db.session.scalar(sa.select(FollowUp).filter_by(subject_id=subject.id))
    record_outcome(followup.id, outcome, OutcomeSource.SUBJECT_PAGE)
    db.session.refresh(followup)
    return followup
