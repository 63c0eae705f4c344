"""Account flows through the web forms, with a real SMTP server receiving the emails."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient

import tasks.mail
import tasks.perimeter  # noqa: F401
from core.database import db
from core.records import ApiToken, OutboundEmail, User
from scripts.mail_sink import MailSink
from tests.builders import (
    DEFAULT_PASSWORD,
    csrf_token,
    link_path,
    make_user,
    post_form,
    sign_in,
    submit_job,
)
from webapp.account_links import LinkPurpose, make_link_token

NEW_PASSWORD = "a brand new passphrase"


def deliver_outbox(app: Flask) -> None:
    """Run the email task for every unsent message in the order they were written, in process
    (the SMTP server is real)."""
    task = app.extensions["celery"].tasks["scanqueue.send_email"]
    unsent = db.select(OutboundEmail).filter_by(sent_at=None).order_by(OutboundEmail.id)
    for row in db.session.scalars(unsent).all():
        assert task.apply(args=[row.id]).get() == "sent"


def new_address() -> str:
    return f"person-{uuid.uuid4().hex[:8]}@example.org"


def test_sign_up_confirm_by_email_submit_and_see_the_result(
    app: Flask, client: FlaskClient, mail_sink: MailSink
) -> None:
    email = new_address()
    response = post_form(
        client,
        "/account/signup",
        {"email": email, "password": DEFAULT_PASSWORD, "repeat": DEFAULT_PASSWORD},
    )
    # Nobody is signed in by a sign-up (the answer must not tell a new address from a known one).
    assert response.status_code == 302 and response.headers["Location"] == "/account/signin"
    assert "We have sent an email to" in client.get("/account/signin").get_data(as_text=True)
    # Signed in but unconfirmed: looking around works, submitting does not.
    assert sign_in(client, email).status_code == 302
    assert "Confirm your email address" in client.get("/").get_data(as_text=True)
    token = csrf_token(client, "/upload")
    refused = submit_job(client, {"X-CSRFToken": token})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "email_unconfirmed"

    deliver_outbox(app)
    [message] = mail_sink.to(email)
    assert message["Subject"] == "Confirm your ScanQueue email address"
    # Opening the link (as a mail scanner would) confirms nothing; the password does.
    link = link_path(message)
    assert client.get(link).status_code == 200
    assert not db.session.scalar(db.select(User).filter_by(email=email)).is_confirmed
    confirmed = post_form(client, link, {"password": DEFAULT_PASSWORD})
    assert confirmed.status_code == 302 and confirmed.headers["Location"] == "/"
    assert db.session.scalar(db.select(User).filter_by(email=email)).is_confirmed
    token = csrf_token(client, "/upload")

    submitted = submit_job(client, {"X-CSRFToken": token})
    assert submitted.status_code == 202, submitted.get_json()
    job_id = submitted.get_json()["id"]
    perimeter = app.extensions["celery"].tasks["scanqueue.perimeter"]
    assert perimeter.apply(args=[job_id]).get() == "succeeded"
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Circumference" in page and " mm</strong>" in page
    assert f"/api/v1/jobs/{job_id}/artifacts/overlay.png" in page
    overlay = client.get(f"/api/v1/jobs/{job_id}/artifacts/overlay.png")
    assert overlay.status_code == 200 and overlay.data.startswith(b"\x89PNG")


def test_session_requests_to_the_api_need_the_csrf_token(client: FlaskClient) -> None:
    user = make_user()
    sign_in(client, user.email)
    response = submit_job(client, {})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "csrf_failed"
    assert client.get("/api/v1/jobs").status_code == 200  # reading needs no token


def test_forms_without_the_csrf_token_are_refused(client: FlaskClient) -> None:
    user = make_user()
    response = client.post(
        "/account/signin", data={"email": user.email, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 400
    assert client.get("/").status_code == 302  # still signed out: sent to the sign-in page


def test_password_reset_by_email_and_the_link_works_once(
    app: Flask, client: FlaskClient, mail_sink: MailSink
) -> None:
    user = make_user(new_address())
    post_form(client, "/account/forgot", {"email": user.email})
    deliver_outbox(app)
    [message] = mail_sink.to(user.email)
    path = link_path(message)

    response = post_form(client, path, {"password": NEW_PASSWORD, "repeat": NEW_PASSWORD})
    assert response.status_code == 302
    assert sign_in(client, user.email, DEFAULT_PASSWORD).status_code == 200  # old one: refused
    assert sign_in(client, user.email, NEW_PASSWORD).status_code == 302
    again = client.get(path)
    assert again.status_code == 400 and "not valid" in again.get_data(as_text=True)


def test_unknown_and_known_addresses_get_the_same_answer(
    app: Flask, client: FlaskClient, mail_sink: MailSink
) -> None:
    known = make_user(new_address())
    unknown = new_address()
    answers = []
    for email in (known.email, unknown):
        response = post_form(client, "/account/forgot", {"email": email}, page="/account/forgot")
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        # The CSRF token on every page is signed with the time (seconds): not part of the answer.
        # Both the <meta name="csrf-token" content=...> and the form's hidden input, whose
        # value comes after its type: from "csrf" to the value within one tag.
        page = re.sub(r'(csrf[-_]token"[^>]*?(?:content|value)=)"[^"]*"', r'\1"CSRF"', page)
        answers.append(page.replace(email, "EMAIL"))
    assert answers[0] == answers[1]
    signup = post_form(
        client,
        "/account/signup",
        {"email": known.email, "password": NEW_PASSWORD, "repeat": NEW_PASSWORD},
    )
    assert signup.status_code == 302  # no "already registered" on the page
    deliver_outbox(app)
    assert [m["Subject"] for m in mail_sink.to(known.email)] == [
        "Reset your ScanQueue password",
        "You already have a ScanQueue account",
    ]
    # The unknown address gets an email too (the same work, so the same timing), without a link.
    [no_account] = mail_sink.to(unknown)
    assert "has none" in no_account.get_content() and "/account/reset/" not in str(no_account)


def test_tampered_and_expired_links_change_nothing(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = make_user(new_address(), confirmed=False)
    token = make_link_token(LinkPurpose.CONFIRM_EMAIL, user)
    tampered = client.get(f"/account/confirm/{token[:-2]}xy")
    assert tampered.status_code == 400 and "not valid" in tampered.get_data(as_text=True)

    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 2 * 3600)
    old_token = make_link_token(LinkPurpose.CONFIRM_EMAIL, user)
    monkeypatch.setattr(time, "time", real_time)
    expired = client.get(f"/account/confirm/{old_token}")
    assert expired.status_code == 400 and "expired" in expired.get_data(as_text=True)

    reset_as_confirm = client.get(
        f"/account/confirm/{make_link_token(LinkPurpose.RESET_PASSWORD, user)}"
    )
    assert reset_as_confirm.status_code == 400
    db.session.expire_all()
    assert not db.session.get(User, user.id).is_confirmed


def test_sign_in_is_rate_limited_per_account(client: FlaskClient) -> None:
    user = make_user()
    for _ in range(5):
        assert sign_in(client, user.email, "wrong password").status_code == 200
    blocked = sign_in(client, user.email, DEFAULT_PASSWORD)
    assert blocked.status_code == 429
    # Another account from the same address is not blocked by this account's counter.
    assert sign_in(client, make_user().email).status_code == 302


def test_token_endpoint_shares_the_per_account_limit(client: FlaskClient) -> None:
    user = make_user()
    for _ in range(5):
        assert sign_in(client, user.email, "wrong password").status_code == 200
    from base64 import b64encode

    # The right password on the API is refused for the form's failures: 429, not a 401 or 500.
    basic = b64encode(f"{user.email}:{DEFAULT_PASSWORD}".encode()).decode()
    blocked = client.post("/api/v1/tokens", headers={"Authorization": f"Basic {basic}"})
    assert blocked.status_code == 429
    assert blocked.get_json()["error"]["code"] == "too_many_requests"


def test_personal_tokens_work_until_revoked(client: FlaskClient) -> None:
    user = make_user()
    sign_in(client, user.email)
    page = post_form(client, "/account/tokens", {"name": "nightly script"}).get_data(as_text=True)
    secret = page.split('<code id="new-token">')[1].split("</code>")[0]
    assert secret.startswith("sq_")
    other = client.application.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    assert other.get("/api/v1/jobs", headers=headers).status_code == 200

    row = db.session.scalar(db.select(ApiToken).filter_by(owner_id=user.id))
    assert row.token_sha256 != secret and secret not in row.prefix + "x"
    post_form(client, f"/account/tokens/{row.id}/revoke", {}, page="/account/tokens")
    refused = other.get("/api/v1/jobs", headers=headers)
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "invalid_token"


def test_sign_out_is_a_post_with_the_csrf_token(client: FlaskClient) -> None:
    sign_in(client, make_user().email)
    assert client.get("/account/signout").status_code == 405
    assert client.post("/account/signout").status_code == 400  # no CSRF token
    assert client.get("/").status_code == 200  # still signed in
    post_form(client, "/account/signout", {}, page="/")
    assert client.get("/").status_code == 302


def test_changing_the_password_ends_other_sessions(app: Flask, client: FlaskClient) -> None:
    user = make_user()
    sign_in(client, user.email)
    assert client.get("/").status_code == 200
    user.set_password(NEW_PASSWORD)
    db.session.commit()
    # The session names the old security stamp: it no longer loads a user.
    assert client.get("/").status_code == 302
