"""The beat schedule sends every periodic job at its configured interval to the queue a worker
consumes, and the outbox sweep queues (once) exactly the messages left unsent too long."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from celery.beat import Scheduler
from flask import Flask

# Registers the periodic tasks and the email task, as a worker does.
import scheduler.tasks  # noqa: F401
import tasks.mail  # noqa: F401
from core.database import db
from core.mailer import queue_email
from core.queues import CPU_QUEUE
from core.records import utcnow
from core.settings_access import SETTINGS_KEY, current_settings
from scheduler.schedule import beat_schedule
from scripts.mail_sink import MailSink
from tests.conftest import build_app

PERIODIC = {
    "scanqueue.outbox.sweep",
    "scanqueue.followups.request_due",
    "scanqueue.jobs.sweep_stale",
    "scanqueue.artifacts.purge_old",
}


@pytest.fixture
def beat_app(tmp_path: Path, redis_url: str) -> Iterator[tuple[Flask, redis.Redis]]:
    """An app on a Redis database no worker reads, its intervals distinct and short."""
    isolated = redis_url.rsplit("/", 1)[0] + "/13"
    broker = redis.Redis.from_url(isolated)
    broker.flushdb()
    app = build_app(
        f"sqlite:///{tmp_path / 'beat.db'}", isolated, tmp_path / "media",
        FOLLOWUP_CHECK_SECONDS=3, STALE_SWEEP_SECONDS=1, RETENTION_SWEEP_SECONDS=2,
    )  # fmt: skip
    # As workers.celery_app does for beat (the web app carries no schedule).
    celery = app.extensions["celery"]
    celery.conf.beat_schedule = beat_schedule(app.extensions[SETTINGS_KEY])
    with app.app_context():
        yield app, broker
        db.engine.dispose()
    broker.flushdb()


def test_the_schedule_has_every_periodic_job_at_its_configured_interval(
    beat_app: tuple[Flask, redis.Redis],
) -> None:
    app, _ = beat_app
    celery = app.extensions["celery"]
    schedule = {entry["task"]: entry["schedule"] for entry in celery.conf.beat_schedule.values()}
    assert schedule == {
        "scanqueue.outbox.sweep": 600,
        "scanqueue.followups.request_due": 3,
        "scanqueue.jobs.sweep_stale": 1,
        "scanqueue.artifacts.purge_old": 2,
    }
    # Each is a task the worker has, not a name nobody answers.
    assert set(celery.tasks) >= PERIODIC


def test_beat_sends_each_due_job_to_the_cpu_queue(beat_app: tuple[Flask, redis.Redis]) -> None:
    app, broker = beat_app
    celery = app.extensions["celery"]
    # Celery's own scheduler (what `celery beat` runs), in memory, the outbox sweep made due soon.
    celery.conf.beat_schedule["outbox-sweep"]["schedule"] = 1
    scheduler = Scheduler(app=celery, lazy=False)
    with celery.connection_for_write() as connection:
        for queue in celery.amqp.queues.values():
            queue(connection.default_channel).declare()
    deadline = time.monotonic() + 10
    sent: list[str] = []
    while set(sent) != PERIODIC and time.monotonic() < deadline:
        time.sleep(max(0.0, min(scheduler.tick(), 0.5)))
        sent = [json.loads(raw)["headers"]["task"] for raw in broker.lrange(CPU_QUEUE, 0, -1)]
    assert set(sent) == PERIODIC
    # Intervals of 1-3 s: within a few seconds none has been sent more than a handful of times.
    assert sent.count("scanqueue.artifacts.purge_old") <= sent.count("scanqueue.jobs.sweep_stale")


def test_the_outbox_sweep_queues_only_messages_unsent_too_long(
    app: Flask, mail_sink: MailSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = current_settings()
    old = utcnow() - timedelta(seconds=settings.MAIL_RETRY_MAX_DELAY_SECONDS + 6 * 60)
    recent = utcnow() - timedelta(seconds=settings.MAIL_RETRY_MAX_DELAY_SECONDS)
    run = uuid.uuid4().hex[:8]  # the session's mail sink keeps other runs' messages
    rows = {
        name: queue_email(f"{name}-{run}@example.org", f"about {name}", "body", "test")
        for name in ("stuck", "retrying", "never-tried", "sent")
    }
    rows["stuck"].last_attempt_at = old
    rows["retrying"].last_attempt_at = recent  # its own retries may still be under way
    rows["never-tried"].created_at = old  # the broker was down when it was written
    rows["sent"].created_at = old
    rows["sent"].sent_at = old
    db.session.commit()

    celery = app.extensions["celery"]
    queued: list[int] = []
    monkeypatch.setattr(celery, "send_task", lambda _name, args, **_: queued.append(args[0]))
    assert celery.tasks["scanqueue.outbox.sweep"].apply().get() == 2
    assert sorted(queued) == sorted([rows["stuck"].id, rows["never-tried"].id])

    # What it queued is sent by the ordinary task, once; the sweep then finds nothing.
    for email_id in queued:
        assert celery.tasks["scanqueue.send_email"].apply(args=[email_id]).get() == "sent"
    for name in ("stuck", "never-tried"):
        assert len(mail_sink.to(f"{name}-{run}@example.org")) == 1
    assert celery.tasks["scanqueue.outbox.sweep"].apply().get() == 0
