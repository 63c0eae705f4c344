"""Email through a real worker: retried with backoff while SMTP is down, sent once when it is up."""

from __future__ import annotations

import time

import pytest

from core.database import db
from core.mailer import queue_email
from core.records import OutboundEmail
from scripts.mail_sink import MailSink
from tests.integration.conftest import STACK_SMTP_PORT, WorkerStack

pytestmark = pytest.mark.integration


def wait_until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def outbox_row(email_id: int) -> OutboundEmail:
    db.session.expire_all()
    return db.session.get(OutboundEmail, email_id)


def test_an_email_survives_an_smtp_outage_and_is_sent_once(worker_stack: WorkerStack) -> None:
    with worker_stack.app.app_context():
        row = queue_email("patient@example.org", "Hello", "A body with a link.", "test")
        # Nothing listens on the SMTP port yet: the worker fails, records why and retries.
        wait_until(lambda: outbox_row(row.id).attempts >= 2)
        failed = outbox_row(row.id)
        assert failed.sent_at is None
        assert "Connection refused" in failed.last_error

        sink = MailSink(port=STACK_SMTP_PORT).start()
        try:
            wait_until(lambda: outbox_row(row.id).sent_at is not None)
            time.sleep(3)  # any duplicate retry would land within the backoff cap
            [message] = sink.to("patient@example.org")
        finally:
            sink.stop()
        assert message["Subject"] == "Hello"
        assert outbox_row(row.id).last_error is None
