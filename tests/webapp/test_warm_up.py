"""The arbiter's warm-up before gunicorn forks: statements compiled, no connection kept."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from core.database import db
from tests.conftest import free_port
from tests.query_counter import on_other_backends
from webapp import create_app
from webapp.warm_up import warm_up


@pytest.fixture
def unfreeze() -> Iterator[None]:
    """Give the objects warm_up froze back to the collector, as the test session expects."""
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfreeze")
@pytest.mark.parametrize("backend_app", ["postgres"], indirect=True)
def test_warm_up_compiles_the_poll_and_leaves_no_connection_open(app: Flask) -> None:
    db.session.remove()
    for engine in db.engines.values():
        engine.dispose()
        engine._compiled_cache.clear()  # type: ignore[attr-defined]
    # Other apps of the test session may keep pooled connections to the same database.
    before = len(on_other_backends(db.engine, "pid"))
    warm_up(app)
    compiled = sum(len(engine._compiled_cache) for engine in db.engines.values())  # type: ignore[attr-defined]
    assert compiled >= 3  # the token, the job with its subject, its files
    # Nothing may be shared across the fork: no connection the warm-up opened is still open.
    assert len(on_other_backends(db.engine, "pid")) == before
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("unfreeze")
def test_warm_up_without_the_database_still_lets_the_web_start(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The web may start before its database: the warm-up logs and carries on."""
    unreachable = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    app = create_app(
        {
            "SCANQUEUE_ENV": "testing",
            "DATABASE_URL": unreachable,
            "REDIS_URL": redis_url,
            "MEDIA_ROOT": tmp_path / "media",
        }
    )
    warm_up(app)
    assert "warm-up without the database" in caplog.text
