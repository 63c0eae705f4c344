"""What the README promises of accounts that no other test checked: the per-address sign-in
ceiling, the email-request limit shared by sign-up, resend and reset, resending the confirmation
email, and a personal token's "last used" time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.database import db
from core.records import ApiToken, OutboundEmail, User, utcnow
from scripts.mail_sink import MailSink
from tests.builders import DEFAULT_PASSWORD, link_path, make_user, post_form, sign_in
from tests.conftest import build_app
from tests.webapp.web.test_accounts import deliver_outbox, new_address
from webapp.extensions import limiter


@pytest.fixture
def strict_app(tmp_path: Path, redis_url: str) -> Iterator[Flask]:
    """An app of its own with low per-address limits (the per-account one stays at 5)."""
    app = build_app(
        f"sqlite:///{tmp_path / 'limits.db'}", redis_url, tmp_path / "media",
        SIGNIN_LIMIT_PER_ADDRESS="3 per minute", EMAIL_REQUEST_LIMIT_PER_ADDRESS="2 per minute",
    )  # fmt: skip
    with app.app_context():
        limiter.reset()
        yield app
        limiter.reset()
        db.engine.dispose()


def client_at(app: Flask, address: str) -> FlaskClient:
    """A browser at the given client address."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_failures_over_many_accounts_lock_the_address_not_the_accounts(strict_app: Flask) -> None:
    guesser, owner = client_at(strict_app, "192.0.2.1"), client_at(strict_app, "192.0.2.2")
    users = [make_user() for _ in range(4)]
    # One failure per account: far below the per-account limit, but three from one address.
    for user in users[:3]:
        assert sign_in(guesser, user.email, "wrong password").status_code == 200
    blocked = sign_in(guesser, users[3].email)  # a fourth account, even with its right password
    assert blocked.status_code == 429
    assert sign_in(owner, users[3].email).status_code == 302  # elsewhere all is well


def test_sign_up_resend_and_reset_share_one_email_request_limit(strict_app: Flask) -> None:
    client, other = client_at(strict_app, "192.0.2.3"), client_at(strict_app, "192.0.2.4")
    email = new_address()
    signup = {"email": email, "password": DEFAULT_PASSWORD, "repeat": DEFAULT_PASSWORD}
    assert post_form(client, "/account/signup", signup).status_code == 302
    assert post_form(client, "/account/confirm", {"email": email}).status_code == 302
    refused = post_form(client, "/account/forgot", {"email": email})
    assert refused.status_code == 429
    # Two emails were queued, the refused request queued none.
    assert db.session.scalar(db.select(db.func.count()).select_from(OutboundEmail)) == 2
    # Another address still may ask.
    assert post_form(other, "/account/forgot", {"email": email}).status_code == 302


def test_resending_the_confirmation_email_sends_a_link_that_confirms(
    app: Flask, client: FlaskClient, mail_sink: MailSink
) -> None:
    user = make_user(email=new_address(), confirmed=False)
    answer = post_form(client, "/account/confirm", {"email": user.email})
    assert answer.status_code == 302 and answer.headers["Location"] == "/account/signin"

    deliver_outbox(app)
    [message] = mail_sink.to(user.email)
    assert message["Subject"] == "Confirm your ScanQueue email address"
    confirmed = post_form(client, link_path(message), {"password": DEFAULT_PASSWORD})
    assert confirmed.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, user.id).is_confirmed


def test_a_personal_token_records_when_it_was_last_used(client: FlaskClient) -> None:
    user = make_user()
    sign_in(client, user.email)
    page = post_form(client, "/account/tokens", {"name": "nightly"}).get_data(as_text=True)
    secret = page.split('<code id="new-token">')[1].split("</code>")[0]
    row = db.session.scalar(db.select(ApiToken).filter_by(owner_id=user.id))
    assert row.last_used_at is None
    assert "<td>never</td>" in client.get("/account/tokens").get_data(as_text=True)

    before = utcnow()
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.application.test_client().get("/api/v1/jobs", headers=headers).status_code == 200
    after = utcnow()

    db.session.expire_all()
    used = db.session.get(ApiToken, row.id).last_used_at
    assert used is not None
    assert before - timedelta(seconds=1) <= used.replace(tzinfo=before.tzinfo) <= after
    listing = client.get("/account/tokens").get_data(as_text=True)
    assert f"<td>{used.strftime('%Y-%m-%d %H:%M')}</td>" in listing
    assert "<td>never</td>" not in listing
