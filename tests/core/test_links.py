"""Email links are built from core's path table and PUBLIC_URL: in the web process they match the
web's routes, and a worker on the core app (no web URL map there) builds them too."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from flask import Flask, url_for

from core import links
from core.app import create_core_app
from core.database import db
from core.records import OutboundEmail
from scheduler.followups import request_due_followups
from tests.builders import make_prediction, make_subject, make_user

PUBLIC_URL = "https://scans.example.org"
TODAY = date(2027, 3, 20)

ACCOUNT_ENDPOINTS = {
    links.SIGNUP: "accounts.signup",
    links.SIGNIN: "accounts.signin",
    links.CONFIRM: "accounts.confirm",
    links.FORGOT_PASSWORD: "accounts.forgot_password",
    links.RESET_PASSWORD: "accounts.reset_password",
}


def test_email_links_are_the_web_routes(app: Flask) -> None:
    token = "a.b/c d"  # quoted the same way on both sides
    with app.test_request_context(base_url="http://localhost"):
        public = app.extensions["scanqueue.settings"].PUBLIC_URL.rstrip("/")
        for rule, endpoint in ACCOUNT_ENDPOINTS.items():
            values = {"token": token} if "<token>" in rule else {}
            assert links.account_link(rule, **values) == public + url_for(endpoint, **values)
        assert links.outcome_link(token) == public + url_for("pages.outcome", token=token)


def test_a_worker_on_the_core_app_writes_the_follow_up_links(app: Flask, tmp_path: Path) -> None:
    """The beat's follow-up task runs in a worker, whose app has no web routes."""
    owner = make_user()
    make_prediction(make_subject(owner, due_date=TODAY - timedelta(days=10)))
    db.session.commit()
    worker_app = create_core_app(
        {
            "SCANQUEUE_ENV": "testing",
            "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": app.extensions["scanqueue.settings"].REDIS_URL,
            "MEDIA_ROOT": tmp_path,
            "PUBLIC_URL": PUBLIC_URL,
            "SECRET_KEY": app.config["SECRET_KEY"],
        }
    )
    assert "pages.outcome" not in {rule.endpoint for rule in worker_app.url_map.iter_rules()}
    with worker_app.app_context():
        assert len(request_due_followups(TODAY)) == 1
        db.session.remove()
    [email] = db.session.scalars(db.select(OutboundEmail).filter_by(to_address=owner.email))
    assert email.body.count(f"{PUBLIC_URL}/outcome/") == 2
