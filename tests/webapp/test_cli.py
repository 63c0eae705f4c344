"""``flask --app webapp users ...``: create accounts from the command line."""

from __future__ import annotations

from flask import Flask

from core.database import db
from core.records import User


def test_create_user_then_refuse_a_duplicate(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "New@Example.org", "--password", "long-enough"])
    assert result.exit_code == 0, result.output
    user = db.session.scalar(db.select(User).filter_by(email="new@example.org"))
    assert user is not None and user.check_password("long-enough")
    assert user.password_hash.startswith("scrypt:")

    again = runner.invoke(args=["users", "create", "new@example.org", "--password", "long-enough"])
    assert again.exit_code != 0 and "already exists" in again.output


def test_create_user_refuses_bad_input(app: Flask) -> None:
    runner = app.test_cli_runner()
    short = runner.invoke(args=["users", "create", "a@example.org", "--password", "short"])
    not_email = runner.invoke(args=["users", "create", "nobody", "--password", "long-enough"])
    assert short.exit_code != 0 and "at least 8" in short.output
    assert not_email.exit_code != 0 and "email" in not_email.output
    assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 0


def test_users_exists_exit_codes(app: Flask) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["users", "create", "here@example.org", "--password", "long-enough"])
    assert runner.invoke(args=["users", "exists", "HERE@example.org"]).exit_code == 0
    assert runner.invoke(args=["users", "exists", "gone@example.org"]).exit_code == 1


def test_dead_letters_lists_the_jobs_given_up_on_and_metrics_count_them(app: Flask) -> None:
    import uuid

    from core import job_state
    from core.records import Job
    from tests.builders import make_user

    owner = make_user()
    lost, other = (Job(id=uuid.uuid4(), owner=owner, type="perimeter", params={}) for _ in "ab")
    db.session.add_all([lost, other])
    db.session.commit()
    for _ in range(2):  # two attempts whose process died
        job_state.claim(lost.id, "w@host")
    assert job_state.give_up_if_exhausted(lost.id, 2) is not None
    job_state.fail(other.id, "empty_mask", "Nothing to measure.")

    result = app.test_cli_runner().invoke(args=["jobs", "dead-letters"])

    assert result.exit_code == 0, result.output
    [header, line, *rest] = result.stdout.splitlines()
    assert header.startswith("job_id\ttype") and rest == []
    assert line.startswith(f"{lost.id}\tperimeter\t{owner.email}\t2\t")
    assert "gave up after 2 attempt(s)" in line
    metrics = app.test_client().get("/metrics")
    assert metrics.status_code == 200
    assert "scanqueue_dead_letter_jobs 1.0" in metrics.text
    assert 'scanqueue_jobs{status="failed"} 2.0' in metrics.text


def test_metrics_are_not_public(app: Flask) -> None:
    from core.settings_access import current_settings

    client = app.test_client()
    outsider = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", environ_base=outsider).status_code == 404
    assert client.get("/metrics").status_code == 200  # loopback, no token configured
    settings = current_settings()
    original = settings.METRICS_TOKEN
    settings.METRICS_TOKEN = "scrape-secret"
    try:
        assert client.get("/metrics").status_code == 404
        wrong = {"Authorization": "Bearer nope"}
        assert client.get("/metrics", headers=wrong, environ_base=outsider).status_code == 404
        right = {"Authorization": "Bearer scrape-secret"}
        assert client.get("/metrics", headers=right, environ_base=outsider).status_code == 200
    finally:
        settings.METRICS_TOKEN = original
