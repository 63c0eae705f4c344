"""A real Postgres behind a TCP proxy that the test cuts: the app answers 503, then recovers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.engine import make_url

from core.database import db
from tests.builders import bearer, make_user, sign_in
from tests.conftest import build_app, fresh_postgres_database
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def proxied_app(tmp_path: Path, redis_url: str) -> Iterator[tuple[Flask, TcpProxy]]:
    """An app whose every database connection goes through a proxy the test controls."""
    with fresh_postgres_database() as direct_url:
        url = make_url(direct_url)
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        app = build_app(proxied, redis_url, tmp_path / "media", DATABASE_RETRY_AFTER_SECONDS=7)
        try:
            yield app, proxy
        finally:
            proxy.cut()
            with app.app_context():
                db.engine.dispose()


def test_a_database_outage_answers_503_with_retry_after_then_recovers(
    proxied_app: tuple[Flask, TcpProxy],
) -> None:
    app, proxy = proxied_app
    with app.app_context():
        user = make_user()
        api, site = app.test_client(), app.test_client()
        headers = bearer(api, user.email)
        assert sign_in(site, user.email).status_code == 302
        assert api.get("/api/v1/jobs", headers=headers).status_code == 200
        assert site.get("/").status_code == 200

        proxy.cut()
        listing = api.get("/api/v1/jobs", headers=headers)
        page = site.get("/")
        health, ready = api.get("/healthz"), api.get("/readyz")

        proxy.start()
        recovered = api.get("/api/v1/jobs", headers=headers)
        page_again = site.get("/")

    assert listing.status_code == 503, listing.get_data(as_text=True)
    assert listing.headers["Retry-After"] == "7"
    error = listing.get_json()["error"]
    assert error["code"] == "database_unavailable" and error["message"]
    # The website gets a page, not JSON, and not the 500 of an unhandled error.
    assert page.status_code == 503 and page.mimetype == "text/html"
    assert page.headers["Retry-After"] == "7"
    assert "unavailable" in page.get_data(as_text=True)
    # Liveness needs no database (the process is fine); readiness says what is missing.
    assert health.status_code == 200
    assert ready.status_code == 503 and ready.get_json()["checks"]["database"] != "ok"
    assert recovered.status_code == 200 and page_again.status_code == 200


def test_a_query_bug_is_still_a_500_not_an_outage(proxied_app: tuple[Flask, TcpProxy]) -> None:
    from sqlalchemy import text

    app, _proxy = proxied_app

    @app.get("/api/v1/broken-query")
    def broken_query() -> str:
        db.session.execute(text("SELECT * FROM no_such_table"))
        return "unreachable"

    app.config["PROPAGATE_EXCEPTIONS"] = False  # answer as production does, not re-raise
    with app.app_context():
        response = app.test_client().get("/api/v1/broken-query")
    assert response.status_code == 500
