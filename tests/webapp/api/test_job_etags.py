"""Status polls on SQLite and Postgres: ETag and 304, Retry-After, statements per poll."""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from core.database import db
from core.job_state import cancel, checkpoint, claim, report_progress, succeed
from core.records import ApiToken, Job, JobInput, JobStatus, Subject, utcnow
from core.settings_access import current_settings
from core.storage import MediaStorage
from pipelines.base import ArtifactData, PipelineOutput
from scheduler.housekeeping import purge_old_artifacts
from tests.builders import bearer, make_subject, make_user, submit_job
from tests.query_counter import statements_sent
from webapp.personal_tokens import create_token


def poll(
    client: FlaskClient, job_id: object, headers: dict[str, str], etag: str = ""
) -> TestResponse:
    """GET the job as a fresh request would (a new database session), conditionally if given."""
    db.session.remove()
    extra = {"If-None-Match": etag} if etag else {}
    return client.get(f"/api/v1/jobs/{job_id}", headers={**headers, **extra})


def test_an_unchanged_job_answers_304_without_a_body(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    job_id = submit_job(client, headers).get_json()["id"]
    first = poll(client, job_id, headers)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('"') and etag.endswith('"')

    for offered in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = poll(client, job_id, headers, offered)
        assert again.status_code == 304, offered
        assert again.data == b""
        assert again.headers["ETag"] == etag
        assert int(again.headers["Retry-After"]) >= 1  # queued: not final
        assert again.headers["Cache-Control"] == "no-store"
    other = poll(client, job_id, headers, '"not-the-tag"')
    assert other.status_code == 200 and other.get_json() == first.get_json()


def test_every_change_a_poll_can_show_changes_the_etag(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    """Each way a job changes (claim, progress, a stage's artifacts, success, retention, its
    subject renamed) gives a new tag; one tag never stands for two different bodies."""
    job_id = uuid.UUID(submit_job(client, headers).get_json()["id"])
    job = db.session.get(Job, job_id)
    subject_id = make_subject(job.owner).id
    job.subject_id = subject_id
    db.session.commit()
    storage = MediaStorage(current_settings().MEDIA_ROOT)
    stage = PipelineOutput({"stage": 1}, [ArtifactData("mask.png", "image/png", b"mask")])
    final = PipelineOutput({"done": True}, [ArtifactData("overlay.png", "image/png", b"overlay")])

    def rename_subject() -> None:
        db.session.get(Subject, subject_id).name = "Renamed"
        db.session.commit()

    changes = [
        lambda: claim(job_id, "worker-1"),
        lambda: report_progress(job_id, 30),
        lambda: checkpoint(job_id, stage, storage, 60),
        lambda: succeed(job_id, final, storage),
        lambda: purge_old_artifacts(utcnow() + timedelta(days=10_000)),
        rename_subject,
    ]
    bodies: dict[str, object] = {}
    response = poll(client, job_id, headers)
    bodies[response.headers["ETag"]] = response.get_json()
    for change in changes:
        etag = response.headers["ETag"]
        change()
        response = poll(client, job_id, headers, etag)
        assert response.status_code == 200, change
        assert response.headers["ETag"] != etag
        assert bodies.setdefault(response.headers["ETag"], response.get_json()) == (
            response.get_json()
        )
    assert response.get_json()["status"] == "succeeded"
    assert "Retry-After" not in response.headers
    assert response.get_json()["artifacts"][0]["purged_at"] is not None
    assert response.get_json()["subject"]["name"] == "Renamed"
    assert poll(client, job_id, headers, response.headers["ETag"]).status_code == 304
    # The poll reads Core rows, the list ORM objects: both must give the same JSON.
    body = response.get_json()
    assert len(body["artifacts"]) == 2 and body["inputs"]
    db.session.remove()
    listed = client.get("/api/v1/jobs", headers=headers).get_json()["items"]
    assert [item for item in listed if item["id"] == str(job_id)] == [body]


def _sequence_job(owner_id: int, steps: int) -> Job:
    """A fan-out job with its step jobs, as rows."""
    parent = Job(id=uuid.uuid4(), owner_id=owner_id, type="sequence_inference", params={})
    for position in range(steps):
        child = Job(
            id=uuid.uuid4(),
            owner_id=owner_id,
            type="face_extraction",
            params={},
            parent_position=position,
        )
        child.inputs.append(
            JobInput(
                position=0,
                filename=f"photo{position}.jpg",
                content_type="image/jpeg",
                size=1,
                sha256="0" * 64,
                storage_path=f"jobs/x/inputs/{position}.jpg",
            )
        )
        parent.children.append(child)
    db.session.add(parent)
    db.session.commit()
    return parent


def _owner_id(client: FlaskClient, headers: dict[str, str]) -> int:
    """The id of the user the headers authenticate (through a job they submit)."""
    job_id = submit_job(client, headers).get_json()["id"]
    return db.session.get(Job, uuid.UUID(job_id)).owner_id


def test_a_step_that_changes_changes_its_parents_etag(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    parent = _sequence_job(_owner_id(client, headers), steps=2)
    parent_id, first_step = parent.id, parent.children[0].id
    response = poll(client, parent_id, headers)
    etag = response.headers["ETag"]
    assert poll(client, parent_id, headers, etag).status_code == 304

    assert cancel(first_step)
    response = poll(client, parent_id, headers, etag)
    assert response.status_code == 200 and response.headers["ETag"] != etag
    assert response.get_json()["children"][0]["status"] == JobStatus.CANCELLED.value


def test_another_users_job_is_404_whatever_the_if_none_match(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    job_id = submit_job(client, headers).get_json()["id"]
    etag = poll(client, job_id, headers).headers["ETag"]
    intruder = bearer(client, make_user().email)
    for offered in ("", etag, "*"):
        response = poll(client, job_id, intruder, offered)
        assert response.status_code == 404, offered
        assert response.get_json()["error"]["code"] == "job_not_found"
        assert "ETag" not in response.headers


def test_statements_per_poll(client: FlaskClient, headers: dict[str, str]) -> None:
    """A signed token: one statement for the user; the job with its subject and the owner
    check: one; a full answer adds its inputs and artifacts (one union); a fan-out job adds its
    steps."""
    job_id = submit_job(client, headers).get_json()["id"]
    poll(client, job_id, headers)  # warm: the connection and its first-use queries
    with statements_sent() as full:
        etag = poll(client, job_id, headers).headers["ETag"]
    with statements_sent() as unchanged:
        assert poll(client, job_id, headers, etag).status_code == 304
    assert (len(full), len(unchanged)) == (3, 2), (full, unchanged)

    parent_id = _sequence_job(_owner_id(client, headers), steps=3).id
    with statements_sent() as full:
        etag = poll(client, parent_id, headers).headers["ETag"]
    with statements_sent() as unchanged:
        assert poll(client, parent_id, headers, etag).status_code == 304
    assert (len(full), len(unchanged)) == (4, 3), (full, unchanged)


def test_a_personal_token_costs_one_statement_and_a_write_a_minute(
    client: FlaskClient,
) -> None:
    user = make_user()
    row, secret = create_token(user, "poller")
    row_id = row.id
    headers = {"Authorization": f"Bearer {secret}"}
    job_id = submit_job(client, headers).get_json()["id"]  # first use: recorded
    etag = poll(client, job_id, headers).headers["ETag"]
    with statements_sent() as sent:
        assert poll(client, job_id, headers, etag).status_code == 304
    assert len(sent) == 2, sent

    db.session.get(ApiToken, row_id).last_used_at = utcnow() - timedelta(minutes=2)
    db.session.commit()
    with statements_sent() as sent:
        assert poll(client, job_id, headers, etag).status_code == 304
    assert any(statement.startswith("UPDATE api_tokens") for statement in sent), sent
    db.session.remove()
    used = db.session.get(ApiToken, row_id).last_used_at
    assert utcnow() - used.replace(tzinfo=utcnow().tzinfo) < timedelta(minutes=1)


def test_a_page_of_jobs_costs_as_many_statements_as_one_job(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    """The list reads each relationship once per page, not once per job."""

    def listing() -> list[str]:
        db.session.remove()
        with statements_sent() as sent:
            assert client.get("/api/v1/jobs", headers=headers).status_code == 200
        return sent

    submit_job(client, headers)
    one = listing()
    for _ in range(4):
        submit_job(client, headers)
    assert len(listing()) == len(one), one


def test_the_openapi_document_describes_the_conditional_poll(client: FlaskClient) -> None:
    get_job = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/jobs/{job_id}"]["get"]
    assert "If-None-Match" in [parameter["name"] for parameter in get_job["parameters"]]
    for status in ("200", "304"):
        assert {"ETag", "Retry-After"} <= set(get_job["responses"][status]["headers"]), status
    assert "content" not in get_job["responses"]["304"]
