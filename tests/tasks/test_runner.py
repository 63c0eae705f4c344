"""The job task run in-process (no broker): idempotent, cancellation-aware, failures recorded."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from celery import Task
from flask import Flask
from flask.testing import FlaskClient

import tasks.perimeter  # noqa: F401  (registers the task with the app's Celery)
from core import job_state
from core.database import db
from core.records import Artifact, Job
from pipelines.base import PipelineOutput, ProgressCallback
from tasks.runner import run_job
from tests.builders import DEFAULT_MASK_CIRCUMFERENCE_MM, bearer, blank_png, make_user, submit_job


def perimeter_task(app: Flask) -> Task:
    """The registered perimeter task of this app's Celery."""
    return app.extensions["celery"].tasks["scanqueue.perimeter"]


def new_job(client: FlaskClient, png: bytes | None = None) -> uuid.UUID:
    """A queued perimeter job submitted through the API."""
    headers = bearer(client, make_user().email)
    files = [(png, "m.png")] if png else None
    response = submit_job(client, headers, files=files)
    assert response.status_code == 202
    return uuid.UUID(response.get_json()["id"])


def claimed_max_attempts(job_id: uuid.UUID) -> int:
    """Claim the job MAX_ATTEMPTS times, none of them finishing; the number of claims."""
    from core.settings_access import current_settings

    attempts = current_settings().MAX_ATTEMPTS
    for _ in range(attempts):
        assert job_state.claim(job_id, "w@host") is not None
    return attempts


def fetch(job_id: uuid.UUID) -> Job:
    """The job as the database has it now."""
    db.session.expire_all()
    return db.session.get(Job, job_id)


def artifact_rows(job_id: uuid.UUID) -> list[Artifact]:
    """The job's artifact rows."""
    return list(db.session.scalars(db.select(Artifact).filter_by(job_id=job_id)))


def test_task_succeeds_and_a_second_run_changes_nothing(
    app: Flask, client: FlaskClient, media_root: Path
) -> None:
    job_id = new_job(client)
    assert perimeter_task(app).apply(args=[str(job_id)]).get() == "succeeded"
    job = fetch(job_id)
    assert job.status == "succeeded" and job.progress == 100 and job.attempts == 1
    assert job.result["circumference_mm"] == pytest.approx(DEFAULT_MASK_CIRCUMFERENCE_MM, rel=0.005)
    [artifact] = artifact_rows(job_id)
    assert (media_root / artifact.storage_path).read_bytes().startswith(b"\x89PNG")

    assert perimeter_task(app).apply(args=[str(job_id)]).get() == "skipped"
    assert fetch(job_id).attempts == 1
    assert len(artifact_rows(job_id)) == 1


def test_redelivery_after_a_crash_replaces_outputs_instead_of_duplicating(
    app: Flask, client: FlaskClient, media_root: Path
) -> None:
    job_id = new_job(client)
    perimeter_task(app).apply(args=[str(job_id)])
    [before] = artifact_rows(job_id)
    before_sha = before.sha256
    # As if the worker died after storing outputs but before acknowledging the message.
    job = fetch(job_id)
    job.status = "running"
    db.session.commit()

    assert perimeter_task(app).apply(args=[str(job_id)]).get() == "succeeded"
    [after] = artifact_rows(job_id)
    assert after.id == before.id and after.sha256 == before_sha
    assert fetch(job_id).attempts == 2
    files = list((media_root / f"jobs/{job_id}/artifacts").iterdir())
    assert [path.name for path in files] == ["overlay.png"]


def test_cancelled_job_is_skipped(app: Flask, client: FlaskClient) -> None:
    job_id = new_job(client)
    assert job_state.cancel(job_id)
    assert perimeter_task(app).apply(args=[str(job_id)]).get() == "skipped"
    job = fetch(job_id)
    assert job.status == "cancelled" and job.attempts == 0 and artifact_rows(job_id) == []


def test_cancel_during_the_run_discards_the_result(app: Flask, client: FlaskClient) -> None:
    job_id = new_job(client)

    def pipeline_cancelled_midway(
        inputs: list[Path], params: dict[str, Any], progress: ProgressCallback
    ) -> PipelineOutput:
        progress(50)
        assert fetch(job_id).progress == 50
        job_state.cancel(job_id)
        return PipelineOutput(result={"value": 1})

    assert run_job(perimeter_task(app), str(job_id), pipeline_cancelled_midway) == "cancelled"
    job = fetch(job_id)
    assert job.status == "cancelled" and job.result is None


def test_pipeline_error_fails_the_job_with_its_code(app: Flask, client: FlaskClient) -> None:
    job_id = new_job(client, blank_png())
    assert perimeter_task(app).apply(args=[str(job_id)]).get() == "failed"
    job = fetch(job_id)
    assert job.status == "failed" and job.error_code == "empty_mask" and job.error_message
    assert job.finished_at is not None


def test_unexpected_exception_is_recorded_not_raised(app: Flask, client: FlaskClient) -> None:
    job_id = new_job(client)

    def broken(inputs: list[Path], params: dict[str, Any], progress: ProgressCallback):
        raise ZeroDivisionError("division by zero")

    assert run_job(perimeter_task(app), str(job_id), broken) == "failed"
    job = fetch(job_id)
    assert job.error_code == "internal_error"
    assert job.error_message == "ZeroDivisionError: division by zero"


def test_missing_input_file_fails_clearly(
    app: Flask, client: FlaskClient, media_root: Path
) -> None:
    job_id = new_job(client)
    for path in (media_root / f"jobs/{job_id}/inputs").iterdir():
        path.unlink()
    perimeter_task(app).apply(args=[str(job_id)])
    assert fetch(job_id).error_code == "input_missing"


@pytest.mark.parametrize("job_id", [str(uuid.uuid4())])
def test_unknown_job_is_skipped(app: Flask, job_id: str) -> None:
    assert perimeter_task(app).apply(args=[job_id]).get() == "skipped"


def test_soft_time_limit_fails_the_job_with_time_limit(app: Flask, client: FlaskClient) -> None:
    from celery.exceptions import SoftTimeLimitExceeded

    job_id = new_job(client)

    def too_slow(inputs: list[Path], params: dict[str, Any], progress: ProgressCallback):
        raise SoftTimeLimitExceeded()

    assert run_job(perimeter_task(app), str(job_id), too_slow) == "failed"
    job = fetch(job_id)
    assert job.error_code == "time_limit" and "120 s" in job.error_message


def test_a_first_stage_checkpoints_and_hands_the_job_on(app: Flask, client: FlaskClient) -> None:
    from pipelines.base import ArtifactData
    from tasks.runner import Stage

    job_id = new_job(client)

    def stage_one(inputs: list[Path], params: dict[str, Any], progress: ProgressCallback):
        return PipelineOutput({"stage": 1}, [ArtifactData("mask.png", "image/png", b"\x89PNG")])

    task = perimeter_task(app)
    # The next task name is not routed to a live worker queue here; publishing is what counts.
    outcome = run_job(
        task, str(job_id), stage_one, Stage(next_task="scanqueue.none", progress_after=60)
    )
    assert outcome == "continued"
    job = fetch(job_id)
    assert (job.status, job.progress, job.result) == ("running", 60, {"stage": 1})
    assert [artifact.name for artifact in artifact_rows(job_id)] == ["mask.png"]

    def stage_two(inputs: list[Path], params: dict[str, Any], progress: ProgressCallback):
        return PipelineOutput({"stage": 2})

    assert run_job(task, str(job_id), stage_two, Stage(claims_job=False)) == "succeeded"
    job = fetch(job_id)
    assert (job.status, job.result, job.attempts) == ("succeeded", {"stage": 2}, 1)


def test_a_later_stage_does_not_revive_a_cancelled_job(app: Flask, client: FlaskClient) -> None:
    from tasks.runner import Stage

    job_id = new_job(client)
    job_state.cancel(job_id)

    def never(inputs: list[Path], params: dict[str, Any], progress: ProgressCallback):
        raise AssertionError("must not run")

    assert run_job(perimeter_task(app), str(job_id), never, Stage(claims_job=False)) == "skipped"
    assert fetch(job_id).status == "cancelled"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_result_fails_the_job_instead_of_being_stored(
    app: Flask, client: FlaskClient, value: float
) -> None:
    job_id = new_job(client)

    def overflowing(inputs: list[Path], params: dict[str, Any], progress: ProgressCallback):
        return PipelineOutput(result={"axes_mm": [1.0, value]})

    assert run_job(perimeter_task(app), str(job_id), overflowing) == "failed"
    job = fetch(job_id)
    assert job.status == "failed" and job.result is None
    assert job.error_code == "non_finite_result" and "result.axes_mm[1]" in job.error_message


def test_a_cancel_stops_the_pipeline_at_its_next_progress_report(
    app: Flask, client: FlaskClient
) -> None:
    job_id = new_job(client)
    reached: list[int] = []

    def cancelled_between_photos(
        inputs: list[Path], params: dict[str, Any], progress: ProgressCallback
    ) -> PipelineOutput:
        for photo in range(5):
            progress(10 + photo)
            reached.append(photo)
            if photo == 1:
                job_state.cancel(job_id)  # DELETE /jobs/<id> while photo 1 is processed
        return PipelineOutput(result={"value": 1})

    assert run_job(perimeter_task(app), str(job_id), cancelled_between_photos) == "cancelled"
    assert reached == [0, 1]  # stopped at the report after the cancel, not at the end
    job = fetch(job_id)
    assert job.status == "cancelled" and job.result is None and job.error_code is None


def test_a_job_delivered_again_after_max_attempts_fails_with_worker_lost(
    app: Flask, client: FlaskClient
) -> None:
    job_id = new_job(client)
    # Each attempt's process died mid-job (out of memory): claimed, never finished.
    attempts = claimed_max_attempts(job_id)

    def never(inputs: list[Path], params: dict[str, Any], progress: ProgressCallback):
        raise AssertionError("must not run again")

    # Returns normally, so the message is acknowledged and not delivered again.
    assert run_job(perimeter_task(app), str(job_id), never) == "failed"
    job = fetch(job_id)
    assert (job.status, job.error_code, job.attempts) == ("failed", "worker_lost", attempts)
    assert f"{attempts} attempt(s)" in job.error_message


def test_a_job_below_max_attempts_runs_again(app: Flask, client: FlaskClient) -> None:
    job_id = new_job(client)
    assert job_state.claim(job_id, "w@host") is not None  # one attempt lost its process
    assert perimeter_task(app).apply(args=[str(job_id)]).get() == "succeeded"
    assert fetch(job_id).attempts == 2


def test_database_outage_retries_do_not_count_as_lost_processes(
    app: Flask, client: FlaskClient
) -> None:
    job_id = new_job(client)
    # Every claim so far ended in a database-outage retry (the task's own retry, not a death).
    attempts = claimed_max_attempts(job_id)
    retried = perimeter_task(app).apply(args=[str(job_id)], retries=attempts)
    assert retried.get() == "succeeded"
    assert fetch(job_id).attempts == attempts + 1


def test_a_later_stage_redelivered_after_max_attempts_fails_with_worker_lost(
    app: Flask, client: FlaskClient
) -> None:
    from core.settings_access import current_settings
    from tasks.runner import Stage

    job_id = new_job(client)
    assert job_state.claim(job_id, "w@host") is not None  # stage 1 ran and handed on
    task = perimeter_task(app)
    ran: list[int] = []

    def dies(inputs: list[Path], params: dict[str, Any], progress: ProgressCallback):
        ran.append(1)
        raise SystemExit  # stands for the process being killed: nothing recorded

    def deliver(redelivered: bool) -> str | None:
        task.push_request(delivery_info={"redelivered": redelivered}, hostname="w@host")
        try:
            return run_job(task, str(job_id), dies, Stage(claims_job=False))
        except SystemExit:
            return None
        finally:
            task.pop_request()

    assert deliver(False) is None and fetch(job_id).attempts == 1  # first delivery: no count
    for _ in range(current_settings().MAX_ATTEMPTS - 1):
        assert deliver(True) is None
    assert deliver(True) == "failed"
    job = fetch(job_id)
    assert (job.status, job.error_code) == ("failed", "worker_lost")
    assert len(ran) == current_settings().MAX_ATTEMPTS


@pytest.mark.parametrize("reports_progress", [True, False])
def test_a_run_whose_job_was_claimed_again_stops_and_stores_nothing(
    app: Flask, client: FlaskClient, reports_progress: bool
) -> None:
    from pipelines.base import ArtifactData

    job_id = new_job(client)

    def superseded(inputs: list[Path], params: dict[str, Any], progress: ProgressCallback):
        # Its message was restored while it ran: another worker claims the job meanwhile.
        assert job_state.claim(job_id, "other@host").attempts == 2
        if reports_progress:
            progress(50)
        return PipelineOutput({"run": 1}, [ArtifactData("mask.png", "image/png", b"\x89PNG")])

    assert run_job(perimeter_task(app), str(job_id), superseded) == "cancelled"
    job = fetch(job_id)
    assert (job.status, job.attempts, job.progress, job.result) == ("running", 2, 0, None)
    assert artifact_rows(job_id) == []


def test_each_task_knows_its_place_from_its_job_type() -> None:
    from tasks.runner import WHOLE_JOB, Stage, stage_for

    assert stage_for("scanqueue.perimeter") == WHOLE_JOB
    # Stage 1 claims the job and hands it to stage 2 at 60 %; stage 2 resumes it and finishes.
    assert stage_for("scanqueue.head_circumference.segment") == Stage(
        claims_job=True, next_task="scanqueue.head_circumference.measure", progress_after=60
    )
    assert stage_for("scanqueue.head_circumference.measure") == Stage(claims_job=False)
    # A fan-out job was started by its children: its own task resumes it.
    assert stage_for("scanqueue.sequence_inference.predict") == Stage(claims_job=False)


def test_a_run_past_its_soft_limit_stops_at_its_next_progress_report(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Celery's threads pool enforces no time limit: the progress report does.
    from core.settings_access import current_settings

    monkeypatch.setattr(current_settings(), "TASK_SOFT_TIME_LIMIT", 1)
    job_id = new_job(client)
    reached: list[int] = []

    def slow(inputs: list[Path], params: dict[str, Any], progress: ProgressCallback):
        for percent in (10, 50):
            progress(percent)
            reached.append(percent)
            time.sleep(1.1)
        return PipelineOutput(result={"value": 1})

    assert run_job(perimeter_task(app), str(job_id), slow) == "failed"
    assert reached == [10]
    job = fetch(job_id)
    assert (job.status, job.error_code, job.progress) == ("failed", "time_limit", 10)
    assert "1 s limit" in job.error_message


def deliver_in_thread(app: Flask, job_id: uuid.UUID, redelivered: bool) -> Callable[[], str]:
    """Deliver the job's message to its task on another thread, as a pool thread would; a
    function that waits for the task's outcome."""
    task = perimeter_task(app)
    outcome: list[str] = []

    def deliver() -> None:
        with app.app_context():
            task.push_request(delivery_info={"redelivered": redelivered}, hostname="w@host")
            try:
                outcome.append(run_job(task, str(job_id), lambda *_: PipelineOutput({"v": 1})))
            finally:
                task.pop_request()
                db.session.remove()

    thread = threading.Thread(target=deliver, daemon=True)
    thread.start()

    def result() -> str:
        thread.join(10)
        return outcome[0]

    return result


@pytest.mark.parametrize("delivery", ["redelivered", "queued again", "cancelled while waiting"])
def test_a_suspect_delivery_waits_at_the_gate_before_its_claim_counts(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch, delivery: str
) -> None:
    from core.settings_access import current_settings
    from models.isolation import process_gate

    # A threads-pool worker's gate; its waiting jobs look at their job every 0.1 s.
    monkeypatch.setattr(process_gate, "enabled", True)
    monkeypatch.setattr(current_settings(), "WORKER_HEARTBEAT_SECONDS", 0.1)
    job_id = new_job(client)
    claimed = job_state.claim(job_id, "w@host")  # its process died under it
    assert claimed is not None
    last_sign = claimed.heartbeat_at
    if delivery == "queued again":
        # The stale-job sweep queues it again with a new message (not marked redelivered).
        job = fetch(job_id)
        job.status = "queued"
        db.session.commit()
    with process_gate.entered(False):  # a batch-mate runs
        outcome = deliver_in_thread(app, job_id, redelivered=delivery != "queued again")
        time.sleep(0.5)
        waiting = fetch(job_id)
        assert waiting.attempts == 1  # waiting, not claimed: a death now costs nothing
        if delivery == "redelivered":
            # Its message is held: the stale-job sweep must not take it for lost meanwhile.
            assert waiting.heartbeat_at > last_sign
        if delivery == "cancelled while waiting":
            job_state.cancel(job_id)
            assert outcome() == "skipped"  # it stopped waiting; the batch-mate still runs
            assert fetch(job_id).status == "cancelled"
            return
    assert outcome() == "succeeded"
    job = fetch(job_id)
    assert (job.status, job.attempts) == ("succeeded", 2)
