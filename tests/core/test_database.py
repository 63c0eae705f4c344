"""The two engines on one database: pooled connections a server closed, and autocommit."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from core.database import AUTOCOMMIT_BIND, autocommit_connection, db
from core.records import ApiToken, utcnow
from tests.builders import make_user, submit_job
from tests.query_counter import on_other_backends
from webapp.personal_tokens import create_token


def _token_headers() -> tuple[int, dict[str, str]]:
    row, secret = create_token(make_user(), "poller")
    return row.id, {"Authorization": f"Bearer {secret}"}


def test_a_statement_on_the_autocommit_connection_is_committed_by_itself(app: Flask) -> None:
    token_id, _ = _token_headers()
    stamp = utcnow().replace(microsecond=0)
    with app.test_request_context():
        autocommit_connection().execute(
            sa.update(ApiToken.__table__)
            .where(ApiToken.__table__.c.id == token_id)
            .values(last_used_at=stamp)
        )
        # Another connection sees it while the request is still under way: nothing to commit.
        with db.engine.connect() as other:
            seen = other.scalar(sa.select(ApiToken.last_used_at).where(ApiToken.id == token_id))
    assert seen is not None and seen.replace(tzinfo=stamp.tzinfo) == stamp


def test_each_request_gives_its_autocommit_connection_back(app: Flask) -> None:
    pool = db.engines[AUTOCOMMIT_BIND].pool
    with app.test_request_context():
        autocommit_connection().execute(sa.select(1))
        assert pool.checkedout() == 1
    assert pool.checkedout() == 0


def _terminate_other_backends() -> int:
    """Close every other server process on this database, as a database restart does, and wait
    (up to 5 s each) until they are gone: pg_terminate_backend alone only signals them."""
    return len(on_other_backends(db.engine, "pg_terminate_backend(pid, 5000)"))


@pytest.mark.parametrize("backend_app", ["postgres"], indirect=True)  # SQLite has no server
def test_a_poll_after_the_server_closed_the_pooled_connections_succeeds(
    app: Flask, client: FlaskClient
) -> None:
    """A restarted database costs no request an error: the pool replaces connections the server
    closed when they are checked out (core.database), without a round trip per checkout."""
    _, headers = _token_headers()
    job_id = submit_job(client, headers).get_json()["id"]
    assert client.get(f"/api/v1/jobs/{job_id}", headers=headers).status_code == 200
    db.session.remove()
    assert _terminate_other_backends() >= 1
    for _ in range(3):  # the pooled connections are dead; each poll must still get its job
        response = client.get(f"/api/v1/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("backend_app", ["postgres"], indirect=True)
def test_only_the_polls_engine_trades_the_pre_ping_for_the_check(app: Flask) -> None:
    """Every other request, the workers and beat keep SQLAlchemy's pre-ping."""
    assert db.engine.pool._pre_ping  # type: ignore[attr-defined]
    assert not db.engines[AUTOCOMMIT_BIND].pool._pre_ping  # type: ignore[attr-defined]
