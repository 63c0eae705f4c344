"""A request larger than MAX_UPLOAD_BYTES * MAX_FILES_PER_JOB (plus form overhead) is refused
whole: 413 request_too_large, JSON, nothing stored; a smaller one is judged file by file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from core.database import db
from core.records import Job, JobInput
from tests.builders import bearer, make_user, submit_job
from tests.conftest import build_app
from webapp import FORM_OVERHEAD_BYTES

MAX_UPLOAD_BYTES = 1000
MAX_FILES_PER_JOB = 2
LIMIT = MAX_UPLOAD_BYTES * MAX_FILES_PER_JOB + FORM_OVERHEAD_BYTES


@pytest.fixture
def small_app(tmp_path: Path, redis_url: str) -> Iterator[Flask]:
    """An app of its own (SQLite) whose request limit is small enough to exceed cheaply."""
    app = build_app(
        f"sqlite:///{tmp_path / 'size.db'}", redis_url, tmp_path / "media",
        MAX_UPLOAD_BYTES=MAX_UPLOAD_BYTES, MAX_FILES_PER_JOB=MAX_FILES_PER_JOB,
    )  # fmt: skip
    with app.app_context():
        yield app
        db.engine.dispose()


def submit_bytes(app: Flask, size: int) -> tuple[int, dict]:
    """Submit one file of ``size`` bytes; the status and JSON body."""
    client = app.test_client()
    response = submit_job(client, bearer(client, make_user().email), [(b"\0" * size, "a.png")])
    return response.status_code, response.get_json()


def nothing_stored(media_root: Path) -> bool:
    """No job row, no input row, no file."""
    rows = sum(
        db.session.scalar(db.select(db.func.count()).select_from(t)) for t in (Job, JobInput)
    )
    return rows == 0 and [path for path in media_root.rglob("*") if path.is_file()] == []


def test_a_request_over_the_limit_is_413_request_too_large(
    small_app: Flask, tmp_path: Path
) -> None:
    status, body = submit_bytes(small_app, LIMIT + 1)
    assert status == 413
    assert body["error"]["code"] == "request_too_large"
    assert str(LIMIT) in body["error"]["message"]
    assert nothing_stored(tmp_path / "media")


def test_a_request_under_the_limit_is_judged_by_the_file_limit(
    small_app: Flask, tmp_path: Path
) -> None:
    status, body = submit_bytes(small_app, LIMIT - 10_000)
    assert (status, body["error"]["code"]) == (413, "file_too_large")
    assert nothing_stored(tmp_path / "media")
