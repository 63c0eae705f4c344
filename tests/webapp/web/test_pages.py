"""Subjects, uploads and result pages: what a signed-in user sees, and what others cannot."""

from __future__ import annotations

import uuid
from datetime import date

from flask import Flask
from flask.testing import FlaskClient

import tasks.perimeter  # noqa: F401  (registers the task with the app's Celery)
from core.database import db
from core.records import Job, Subject
from tests.builders import csrf_token, make_user, post_form, sign_in, submit_job


def new_subject(client: FlaskClient, **fields: str) -> int:
    response = post_form(client, "/subjects/new", fields)
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].rsplit("/", 1)[1])


def test_a_subject_is_created_edited_and_soft_deleted(client: FlaskClient) -> None:
    user = make_user()
    sign_in(client, user.email)
    subject_id = new_subject(client, name="Baby Doe", due_date="2026-12-24", notes="twins?")
    page = client.get(f"/subjects/{subject_id}").get_data(as_text=True)
    assert "Baby Doe" in page and "2026-12-24" in page and "twins?" in page

    post_form(client, f"/subjects/{subject_id}/edit", {"name": "Baby Roe", "due_date": ""})
    subject = db.session.get(Subject, subject_id)
    db.session.refresh(subject)
    assert subject.name == "Baby Roe" and subject.due_date is None

    headers = {"X-CSRFToken": csrf_token(client, "/upload")}
    job_id = submit_job(client, headers, subject_id=str(subject_id)).get_json()["id"]
    post_form(client, f"/subjects/{subject_id}/delete", {}, page=f"/subjects/{subject_id}")

    assert client.get(f"/subjects/{subject_id}").status_code == 404
    assert "Baby Roe" not in client.get("/").get_data(as_text=True)
    # Kept for review: the row, its job and the job's link to it.
    db.session.expire_all()
    assert db.session.get(Subject, subject_id).deleted_at is not None
    assert db.session.get(Job, uuid.UUID(job_id)).subject_id == subject_id
    # A deleted subject takes no new jobs.
    refused = submit_job(client, headers, subject_id=str(subject_id))
    assert refused.status_code == 404 and refused.get_json()["error"]["code"] == "subject_not_found"


def test_dates_and_names_are_validated(client: FlaskClient) -> None:
    sign_in(client, make_user().email)
    response = post_form(client, "/subjects/new", {"name": "x" * 201, "due_date": "soon"})
    assert response.status_code == 200
    assert "Not a valid date value" in response.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count()).select_from(Subject)) == 0


def test_a_subject_without_a_name_still_has_a_label(client: FlaskClient) -> None:
    sign_in(client, make_user().email)
    subject_id = new_subject(client, due_date=date(2027, 1, 2).isoformat())
    assert f"Subject #{subject_id}" in client.get("/").get_data(as_text=True)


def test_another_user_sees_none_of_it(app: Flask, client: FlaskClient) -> None:
    owner = make_user()
    sign_in(client, owner.email)
    subject_id = new_subject(client, name="Private Person")
    headers = {"X-CSRFToken": csrf_token(client, "/upload")}
    job_id = submit_job(client, headers, subject_id=str(subject_id)).get_json()["id"]
    assert app.extensions["celery"].tasks["scanqueue.perimeter"].apply(args=[job_id]).get()
    artifact = f"/api/v1/jobs/{job_id}/artifacts/overlay.png"
    assert client.get(artifact).status_code == 200

    intruder = app.test_client()
    sign_in(intruder, make_user().email)
    for path in (
        f"/subjects/{subject_id}",
        f"/subjects/{subject_id}/edit",
        f"/jobs/{job_id}",
        artifact,
        f"/api/v1/jobs/{job_id}",
    ):
        assert intruder.get(path).status_code == 404, path
    assert "Private Person" not in intruder.get("/").get_data(as_text=True)
    intruder_headers = {"X-CSRFToken": csrf_token(intruder, "/upload")}
    refused = submit_job(intruder, intruder_headers, subject_id=str(subject_id))
    assert refused.status_code == 404


def test_pages_need_a_sign_in(client: FlaskClient) -> None:
    for path in ("/", "/upload", "/subjects/new", "/account/tokens"):
        response = client.get(path)
        assert response.status_code == 302 and "/account/signin" in response.headers["Location"]


def test_a_failed_job_page_says_why(app: Flask, client: FlaskClient) -> None:
    from tests.builders import blank_png

    sign_in(client, make_user().email)
    headers = {"X-CSRFToken": csrf_token(client, "/upload")}
    job_id = submit_job(client, headers, [(blank_png(), "empty.png")]).get_json()["id"]
    app.extensions["celery"].tasks["scanqueue.perimeter"].apply(args=[job_id])
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Why it failed" in page and "empty_mask" in page


def test_unknown_pages_are_html_and_api_errors_stay_json(client: FlaskClient) -> None:
    page = client.get("/no/such/page")
    assert page.status_code == 404 and page.mimetype == "text/html"
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.get_json()["error"]["code"] == "not_found"


def test_a_nul_character_in_a_form_is_a_400_page_not_a_500(client: FlaskClient) -> None:
    sign_in(client, make_user().email)
    response = post_form(client, "/subjects/new", {"name": "Baby\x00Doe", "due_date": ""})
    assert response.status_code == 400
    assert "NUL character" in response.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count()).select_from(Subject)) == 0
