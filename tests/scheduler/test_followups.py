"""Outcome follow-ups: sent once and only once, after the due date, with links that record the
answer; a real SMTP server receives the emails."""

from __future__ import annotations

import csv
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

import tasks.mail  # noqa: F401  (registers the email task with the app's Celery)
from core.database import db
from core.head_measurements import utc_date
from core.mailer import claim, send_claimed
from core.outcomes import answer_on_subject_page, outcome_token
from core.records import FollowUp, Job, JobInput, JobStatus, OutboundEmail, Outcome
from core.settings_access import current_settings
from pipelines.fetal_growth import AgeSource, GestationalAge, head_growth
from scheduler.followups import request_due_followups
from scripts.mail_sink import MailSink
from tests.builders import (
    link_path,
    make_prediction,
    make_subject,
    make_user,
    post_form,
    sign_in,
)
from tests.conftest import free_port

TODAY = date(2027, 3, 20)


def due_subject(days_past_due: int = 10, **fields: object):
    owner = make_user()
    subject = make_subject(owner, due_date=TODAY - timedelta(days=days_past_due), **fields)
    make_prediction(subject)
    return owner, subject


def followup_emails() -> list[OutboundEmail]:
    return list(db.session.scalars(db.select(OutboundEmail).filter_by(kind="followup")))


def deliver(app: Flask, email_id: int) -> None:
    task = app.extensions["celery"].tasks["scanqueue.send_email"]
    assert task.apply(args=[email_id]).get() == "sent"


def test_a_due_follow_up_is_emailed_once_with_two_links(
    app: Flask, client: FlaskClient, mail_sink: MailSink
) -> None:
    owner, _ = due_subject()
    [followup_id] = request_due_followups(TODAY)
    assert request_due_followups(TODAY) == []  # the next tick finds nothing to do
    [email] = followup_emails()
    deliver(app, email.id)

    [message] = mail_sink.to(owner.email)
    body = message.get_content()
    assert "second (90 % confidence)" in body and "30 days" in body
    assert body.count("/outcome/") == 2
    db.session.expire_all()
    followup = db.session.get(FollowUp, followup_id)
    assert followup.email.sent_at is not None  # the request is recorded with its time


def test_not_before_the_delay_and_not_for_deleted_subjects_or_known_outcomes(
    client: FlaskClient,
) -> None:
    due_subject(days_past_due=6)  # the delay is 7 days
    _, deleted = due_subject()
    deleted.deleted_at = deleted.created_at
    _, answered = due_subject()
    owner = answered.owner
    sign_in(client, owner.email)
    post_form(
        client,
        f"/subjects/{answered.id}/outcome",
        {"outcome": "right"},
        page=f"/subjects/{answered.id}",
    )
    db.session.commit()
    without_prediction = make_subject(make_user(), due_date=TODAY - timedelta(days=30))
    assert without_prediction.id

    assert request_due_followups(TODAY) == []
    assert followup_emails() == []


def test_concurrent_runs_send_one_request(app: Flask) -> None:
    due_subject()
    created: list[int] = []
    start = threading.Barrier(6)

    def beat_tick() -> None:
        with app.app_context():
            start.wait()
            created.extend(request_due_followups(TODAY))
            db.session.remove()

    threads = [threading.Thread(target=beat_tick) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(created) == 1
    assert len(followup_emails()) == 1
    assert db.session.scalar(db.select(db.func.count()).select_from(FollowUp)) == 1


def test_an_smtp_failure_loses_nothing_and_a_later_try_sends(
    app: Flask, mail_sink: MailSink
) -> None:
    owner, _ = due_subject()
    request_due_followups(TODAY)
    [email] = followup_emails()
    down = current_settings().model_copy(update={"SMTP_PORT": free_port()})
    with pytest.raises(OSError):
        send_claimed(claim(email.id), down)
    db.session.refresh(email)
    assert email.sent_at is None and email.attempts == 1 and email.last_error
    deliver(app, email.id)
    assert len(mail_sink.to(owner.email)) == 1


def test_the_link_flow_right_then_again_then_wrong(client: FlaskClient) -> None:
    due_subject()
    [followup_id] = request_due_followups(TODAY)
    followup = db.session.get(FollowUp, followup_id)
    right = f"/outcome/{outcome_token(followup, Outcome.RIGHT)}"
    wrong = f"/outcome/{outcome_token(followup, Outcome.WRONG)}"

    page = client.get(right)  # opening the link (or a mail scanner) records nothing yet
    assert page.status_code == 200 and "Yes, record" in page.get_data(as_text=True)
    db.session.refresh(followup)
    assert followup.outcome is None

    recorded = post_form(client, right, {})
    assert "Thank you" in recorded.get_data(as_text=True)
    again = client.get(right).get_data(as_text=True)
    assert "the prediction was <strong>right</strong>" in again and "Yes, record" not in again
    other = post_form(client, wrong, {}).get_data(as_text=True)
    assert "the prediction was <strong>right</strong>" in other  # the first answer counts
    db.session.refresh(followup)
    assert (followup.outcome, followup.outcome_source) == ("right", "email_link")


def test_tampered_and_expired_links_record_nothing(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    due_subject()
    [followup_id] = request_due_followups(TODAY)
    followup = db.session.get(FollowUp, followup_id)
    token = outcome_token(followup, Outcome.WRONG)
    tampered = client.get(f"/outcome/{token[:-3]}abc")
    assert tampered.status_code == 400 and "not valid" in tampered.get_data(as_text=True)

    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 31 * 86400)
    old = outcome_token(followup, Outcome.WRONG)
    monkeypatch.setattr(time, "time", real_time)
    expired = client.get(f"/outcome/{old}")
    assert expired.status_code == 400 and "expired" in expired.get_data(as_text=True)
    db.session.refresh(followup)
    assert followup.outcome is None


def test_the_owner_can_answer_on_the_subject_page(client: FlaskClient) -> None:
    owner, subject = due_subject()
    sign_in(client, owner.email)
    page = f"/subjects/{subject.id}"
    assert "The prediction was right" in client.get(page).get_data(as_text=True)
    post_form(client, f"{page}/outcome", {"outcome": "wrong"}, page=page)
    shown = client.get(page).get_data(as_text=True)
    assert "Outcome recorded: the prediction was <strong>wrong</strong>" in shown
    intruder = client.application.test_client()
    sign_in(intruder, make_user().email)
    assert post_form(intruder, f"{page}/outcome", {"outcome": "right"}, page="/").status_code == 404


def test_export_writes_the_labelled_images(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    owner = make_user()
    subject = make_subject(owner, due_date=TODAY)
    job = make_prediction(subject, prediction="third", confidence=0.7, images=2)
    sign_in(client, owner.email)
    post_form(
        client,
        f"/subjects/{subject.id}/outcome",
        {"outcome": "wrong"},
        page=f"/subjects/{subject.id}",
    )
    target = tmp_path / "outcomes.csv"
    result = app.test_cli_runner().invoke(args=["outcomes", "export", "--output", str(target)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(target.open()))
    assert [row["image_filename"] for row in rows] == ["scan0.png", "scan1.png"]
    assert {row["job_id"] for row in rows} == {str(job.id)}
    assert {(row["prediction"], row["outcome"], row["outcome_source"]) for row in rows} == {
        ("third", "wrong", "subject_page")
    }


def test_export_carries_the_age_and_the_head_measurement_of_the_same_image(
    app: Flask, tmp_path: Path
) -> None:
    owner = make_user()
    subject = make_subject(owner, due_date=TODAY)
    prediction = make_prediction(subject, images=2)
    prediction.inputs[1].sha256 = "1" * 64  # only the first image also had its head measured
    growth = head_growth(250.0, GestationalAge(200, AgeSource.DUE_DATE))
    measured = Job(
        owner_id=owner.id,
        subject_id=subject.id,
        type="head_circumference",
        status=JobStatus.SUCCEEDED.value,
        params={},
        result={"head_circumference_mm": 250.0, **growth},
    )
    measured.inputs.append(
        JobInput(
            position=0,
            filename="head.png",
            content_type="image/png",
            size=1,
            sha256="0" * 64,
            storage_path="jobs/y/inputs/0.png",
        )
    )
    db.session.add(measured)
    db.session.commit()
    answer_on_subject_page(subject, Outcome.RIGHT)

    target = tmp_path / "outcomes.csv"
    result = app.test_cli_runner().invoke(args=["outcomes", "export", "--output", str(target)])

    assert result.exit_code == 0, result.output
    first, second = csv.DictReader(target.open())
    assert first["head_circumference_job_id"] == str(measured.id)
    assert first["head_circumference_mm"] == "250.0" and first["gestational_age_days"] == "200"
    assert first["hc_centile"] == str(growth["hc_centile"]) and growth["hc_centile"] is not None
    assert first["hc_z_score"] == str(growth["hc_z_score"])
    assert first["growth_flags"] == " ".join(growth["growth_flags"])
    # No measurement of the second image: only its age, from the due date and the job's day.
    age = 280 - (TODAY - utc_date(prediction.created_at)).days
    assert second["gestational_age_days"] == str(age)
    assert second["gestational_age_source"] == "due_date"
    assert second["head_circumference_job_id"] == second["hc_centile"] == ""


def test_link_path_helper_reads_email_links() -> None:
    from email.message import EmailMessage

    message = EmailMessage()
    message.set_content("Open http://127.0.0.1:5000/outcome/abc now")
    assert link_path(message) == "/outcome/abc"
