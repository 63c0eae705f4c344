"""Outgoing email: an outbox row first (never lost), then a Celery task sends it over SMTP."""

from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import sqlalchemy as sa

from core.config import Settings
from core.database import db
from core.publishing import current_celery
from core.records import OutboundEmail, utcnow

log = logging.getLogger(__name__)

SEND_EMAIL_TASK = "scanqueue.send_email"
# How long one sender holds a message (longer than an SMTP timeout plus the send itself).
CLAIM_SECONDS = 120


def queue_email(to_address: str, subject: str, body: str, kind: str) -> OutboundEmail:
    """Write the message to the outbox and ask a worker to send it.

    If the broker is down the row stays unsent and the outbox sweep queues it later.
    """
    row = OutboundEmail(kind=kind, to_address=to_address, subject=subject, body=body)
    db.session.add(row)
    db.session.commit()
    try:
        current_celery().send_task(SEND_EMAIL_TASK, args=[row.id])
    except Exception as exc:  # kombu raises several types when Redis is unreachable
        log.warning("email %s queued in the outbox only (broker unavailable): %s", row.id, exc)
    return row


def claim(email_id: int) -> OutboundEmail | None:
    """Hold an unsent message for this sender; None if it is sent, gone or held by another."""
    now = utcnow()
    statement = (
        sa.update(OutboundEmail)
        .where(
            OutboundEmail.id == email_id,
            OutboundEmail.sent_at.is_(None),
            sa.or_(OutboundEmail.claimed_until.is_(None), OutboundEmail.claimed_until < now),
        )
        .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
        .execution_options(synchronize_session=False)
    )
    claimed = db.session.execute(statement).rowcount == 1
    db.session.commit()
    return db.session.get(OutboundEmail, email_id, populate_existing=True) if claimed else None


def build_message(row: OutboundEmail, settings: Settings) -> EmailMessage:
    """The row as a plain-text email."""
    message = EmailMessage()
    message["From"] = settings.MAIL_FROM
    message["To"] = row.to_address
    message["Subject"] = row.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="scanqueue.local")
    message.set_content(row.body)
    return message


def deliver(row: OutboundEmail, settings: Settings) -> None:
    """Send one message over SMTP; raises smtplib.SMTPException or OSError on failure."""
    with smtplib.SMTP(
        settings.SMTP_HOST, settings.SMTP_PORT, timeout=settings.SMTP_TIMEOUT_SECONDS
    ) as smtp:
        if settings.SMTP_STARTTLS:
            # smtplib's default context checks nothing: verify the certificate and host name
            # against the system's authorities (SSL_CERT_FILE names another bundle).
            smtp.starttls(context=ssl.create_default_context())
        if settings.SMTP_USERNAME:
            smtp.login(settings.SMTP_USERNAME, settings.SMTP_PASSWORD)
        smtp.send_message(build_message(row, settings))


def send_claimed(row: OutboundEmail, settings: Settings) -> None:
    """Deliver a claimed message and record the outcome; re-raises a delivery failure."""
    row.attempts += 1
    row.last_attempt_at = utcnow()
    try:
        deliver(row, settings)
    except (smtplib.SMTPException, OSError) as exc:
        row.last_error = f"{type(exc).__name__}: {exc}"
        row.claimed_until = None
        db.session.commit()
        raise
    row.sent_at = utcnow()
    row.last_error = None
    row.claimed_until = None
    db.session.commit()


def unsent_ids(older_than: timedelta) -> list[int]:
    """Messages never sent whose last try (or creation) is older than this: for the sweep."""
    cutoff = utcnow() - older_than
    last_touch = sa.func.coalesce(OutboundEmail.last_attempt_at, OutboundEmail.created_at)
    return list(
        db.session.scalars(
            sa.select(OutboundEmail.id).where(OutboundEmail.sent_at.is_(None), last_touch < cutoff)
        )
    )
