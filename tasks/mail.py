"""Task: send one outbox email over SMTP (queue ``cpu``), retried with backoff while it is down
(the beat's outbox sweep, in scheduler.tasks, queues again what was never sent)."""

from __future__ import annotations

import smtplib

from celery import Task, shared_task

from core.mailer import SEND_EMAIL_TASK, claim, send_claimed
from core.settings_access import current_settings
from tasks.backoff import retry_delay


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
