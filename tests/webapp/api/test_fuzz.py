"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis, in-process).

Every operation gets a bounded number of generated requests, valid by the document (positive)
and invalid on purpose (negative), as a signed-in user. Whatever arrives: never a 5xx, every
error is ``{"error": {"code", "message"}}``, a refused request leaves no row and no file, and the
answer matches what the document promises (status codes, content types, schemas).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.database import db
from core.records import Job, JobInput, Subject
from tests.builders import bearer, make_user, submit_job

# Per operation and mode: 7 operations x 2 modes x 50 takes about 30 s on 2 cores.
EXAMPLES = 50
TOKENS_PATH = "/api/v1/tokens"
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


def stored_state(media_root: Path) -> tuple[int, int, frozenset[Path]]:
    """Job rows, input rows and files under the media root."""
    jobs = db.session.scalar(db.select(db.func.count()).select_from(Job))
    inputs = db.session.scalar(db.select(db.func.count()).select_from(JobInput))
    files = frozenset(path for path in media_root.rglob("*") if path.is_file())
    return jobs, inputs, files


def fuzz(test: Callable[[Case], None], strategy: object) -> None:
    """Run ``test`` on a bounded, reproducible sample of the strategy's cases."""
    bounded = settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same cases on every run: a failure reproduces
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    bounded(given(case=strategy)(test))()


# Fuzzed on Postgres, the production database (stricter types and lengths than SQLite).
@pytest.mark.parametrize("backend_app", ["postgres"], indirect=True)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_5xx_or_leaves_anything_behind(
    app: Flask, client: FlaskClient, media_root: Path, mode: GenerationMode
) -> None:
    user = make_user()
    headers = bearer(client, user.email)
    subject = Subject(owner=user, name="fuzzed")
    db.session.add(subject)
    db.session.commit()
    signed_in = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    # Every request but sign-in carries the user's token, so that it gets past the token check
    # to the part being fuzzed; sign-in is fuzzed with the credentials schemathesis makes.
    signed_in.config.generation.update(with_security_parameters=False)
    signing_in = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app).include(
        path=TOKENS_PATH
    )

    def one_request(case: Case) -> None:
        before = stored_state(media_root)
        extra = {} if case.path == TOKENS_PATH else headers
        body = case.body
        if mode is GenerationMode.POSITIVE and isinstance(body, dict) and "subject_id" in body:
            body["subject_id"] = subject.id  # a random id is only ever a 404
        response = case.call(headers=extra)
        db.session.rollback()  # see what the request committed, nothing cached
        assert response.status_code < 500, response.text[:500]
        if response.status_code >= 400:
            error = response.json()["error"]
            assert isinstance(error["code"], str) and isinstance(error["message"], str)
            assert error["code"] and error["message"]
            assert stored_state(media_root) == before, "a refused request left something behind"
        case.validate_response(response, checks=CHECKS, headers=extra)

    operations = [
        *(result.ok() for result in signed_in.exclude(path=TOKENS_PATH).get_all_operations()),
        *(result.ok() for result in signing_in.get_all_operations()),
    ]
    # Valid requests about a job are about the user's own job (a random id is only ever a 404);
    # invalid ones still get generated ids.
    job_id = submit_job(client, headers).get_json()["id"]
    for operation in operations:
        known = {"job_id": job_id} if "{job_id}" in operation.path and mode.is_positive else None
        fuzz(one_request, operation.as_strategy(generation_mode=mode, path_parameters=known))
