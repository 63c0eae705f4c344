"""Shared fixtures: real Postgres and SQLite databases, a real Redis, app and client per backend."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import sqlalchemy as sa
from flask import Flask, g
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy.engine import make_url

from core.database import db
from core.settings_access import current_settings
from lab.hc18 import Hc18Image, list_images
from scripts.mail_sink import MailSink
from webapp import create_app
from webapp.extensions import limiter

REPO_ROOT = Path(__file__).resolve().parent.parent
# A small credited sample is committed (tests/data/hc18/README.md); HC18_DIR=... runs the same
# tests on another HC18 folder, such as the full development set.
HC18_SAMPLE_DIR = REPO_ROOT / "tests" / "data" / "hc18"
HC18_DIR = Path(os.environ.get("HC18_DIR") or HC18_SAMPLE_DIR)


def hc18_images() -> dict[str, Hc18Image]:
    """The annotated images of HC18_DIR by file name."""
    return {image.name: image for image in list_images(HC18_DIR)}


POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# Tests use their own Redis database so they never touch a developer's queues.
TEST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "15"))


def redis_url_for_tests() -> str:
    """REDIS_URL (as ``make test`` found or started it) with the test database index."""
    parts = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    return urlunsplit((parts.scheme, parts.netloc, f"/{TEST_REDIS_DB}", "", ""))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis URL reserved for tests, emptied at the start of the session."""
    import redis

    url = redis_url_for_tests()
    redis.Redis.from_url(url).flushdb()
    return url


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[MailSink]:
    """A real SMTP server (aiosmtpd) for the session; every app sends its email here."""
    sink = MailSink(port=free_port()).start()
    yield sink
    sink.stop()


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty Postgres database, yield its URL, drop it afterwards."""
    name = f"scanqueue_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh Postgres database for this test session."""
    with fresh_postgres_database() as url:
        yield url


def presume_limiter_storage_alive() -> None:
    """Clear the limiter's "storage dead, count in memory" mark, as a new process starts.

    The limiter is one object for every app of the session (the views' limits are declared on
    it), and init_app binds it to the newest app's storage but keeps that mark. An app whose
    Redis was unreachable (tests/webapp/api/test_jobs.py, the unreachable queue: its token
    request is rate-limited) set it, so a later app counted in memory until the limiter's own
    recheck found Redis again, mid-test, with the counts left behind: a flake of
    test_each_client_has_its_own_sign_in_limit. Flask-Limiter (pinned) has no public call for
    it; the assert fails loudly if a release renames the attribute.
    """
    assert "_storage_dead" in vars(limiter)
    limiter._storage_dead = False


def build_app(database_url: str, redis_url: str, media_root: Path, **extra: object) -> Flask:
    """An app in testing mode on the given database, with the schema migrated to head."""
    app = create_app(
        {
            "SCANQUEUE_ENV": "testing",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "MEDIA_ROOT": media_root,
            **extra,
        }
    )
    with app.app_context():
        upgrade()
    presume_limiter_storage_alive()

    @app.before_request
    def start_with_an_empty_g() -> None:
        # In production every request has its own app context, so what a request caches in g
        # (Flask-Login's user, Flask-WTF's CSRF token) dies with it. Tests keep one app context
        # open for database access and the test client's requests reuse it: empty g as a fresh
        # context would have it.
        for name in list(vars(g)):
            g.pop(name)

    return app


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend_app(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis_url: str,
    mail_sink: MailSink,
) -> Iterator[Flask]:
    """One app per database backend for the whole session."""
    base = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        database_url = f"sqlite:///{base / 'test.db'}"
    else:
        database_url = request.getfixturevalue("postgres_url")
    app = build_app(database_url, redis_url, base / "media", SMTP_PORT=mail_sink.port)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def app(backend_app: Flask) -> Iterator[Flask]:
    """The backend's app inside an app context; every table and the media root are emptied after."""
    with backend_app.app_context():
        yield backend_app
        db.session.remove()
        limiter.reset()  # sign-in counters live in Redis and would carry over to the next test
        presume_limiter_storage_alive()
        with db.engine.begin() as connection:
            for table in reversed(db.metadata.sorted_tables):
                connection.execute(table.delete())
        media = current_settings().MEDIA_ROOT
        shutil.rmtree(media, ignore_errors=True)
        media.mkdir(parents=True)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def media_root(app: Flask) -> Path:
    """Where the app stores files."""
    return current_settings().MEDIA_ROOT
