"""Task: send one outbox email over SMTP (queue ``cpu``), retried with backoff while it is down."""

from __future__ import annotations

import smtplib
from datetime import timedelta

from celery import Task, shared_task

from tasks.backoff import retry_delay
from webapp.mailer import SEND_EMAIL_TASK, claim, send_claimed, unsent_ids
from webapp.settings_access import current_settings


@shared_task(name=SEND_EMAIL_TASK, bind=True)
def send_email(self: Task, email_id: int) -> str:
    """Send the message unless it was sent already or another sender holds it."""
    settings = current_settings()
    row = claim(email_id)
    if row is None:
        return "skipped"
    try:
        send_claimed(row, settings)
    except (smtplib.SMTPException, OSError) as exc:
        delay = retry_delay(
            self.request.retries,
            settings.MAIL_RETRY_BASE_SECONDS,
            settings.MAIL_RETRY_MAX_DELAY_SECONDS,
        )
        raise self.retry(exc=exc, countdown=delay, max_retries=settings.MAIL_MAX_RETRIES) from exc
    return "sent"


# The sweep leaves a message alone while its own retries may still be under way.
SWEEP_GRACE = timedelta(minutes=5)


@shared_task(name="scanqueue.outbox.sweep", bind=True)
def sweep_outbox(self: Task) -> int:
    """Queue every unsent message whose last try is old: none is lost to a broker outage or to
    retries that ran out. Returns how many were queued."""
    settings = current_settings()
    stale = unsent_ids(timedelta(seconds=settings.MAIL_RETRY_MAX_DELAY_SECONDS) + SWEEP_GRACE)
    for email_id in stale:
        self.app.send_task(SEND_EMAIL_TASK, args=[email_id])
    return len(stale)
